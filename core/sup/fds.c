/*
 * fds.c — hum's standard descriptors and its open-file limit (see fds.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fds.h"
#include "state/atomic.h"

int hum_fds_stdio(void)
{
	for (int fd = 0; fd < 3; fd++) {
		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		/* open(2) returns the lowest free descriptor, and the lower
		 * standard ones are open by now: this one is fd.  Without
		 * O_CLOEXEC: a standard descriptor is what a child inherits
		 * when nothing else is given to it. */
		int nfd;
		do
			nfd = open("/dev/null", O_RDWR);
		while (nfd < 0 && errno == EINTR);
		if (nfd < 0)
			return -errno;
		if (nfd != fd) { /* cannot happen (see above); never keep a stray fd */
			close(nfd);
			return -EBADF;
		}
	}
	return 0;
}

int hum_fds_raise_limit(rlim_t *before, rlim_t *after)
{
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -errno;
	if (before)
		*before = rl.rlim_cur;
	if (after)
		*after = rl.rlim_cur;
	rlim_t want = rl.rlim_max < HUM_NOFILE_MAX ? rl.rlim_max : HUM_NOFILE_MAX;
	if (rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur >= want)
		return 0; /* already there, or raised further by the user */
	rl.rlim_cur = want;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		return -errno;
	if (after)
		*after = want;
	return 0;
}

#ifdef HUM_TSAN
/* TSan builds only (state/atomic.h, "File descriptor numbers are reused"):
 * every close acquires before it and releases after it, so that a thread
 * that gets the same number from a raw system call (pidfd_open) and
 * acquires, or closes it, is ordered after every earlier use of it.  This shadows the close TSan intercepts and calls
 * that interceptor, which closes. */
int __interceptor_close(int fd);
int close(int fd)
{
	HUM_TSAN_FD_CREATED();
	int r = __interceptor_close(fd);
	HUM_TSAN_FD_CLOSED();
	return r;
}
#endif

/*
 * fds.c — hum's standard descriptors and its open-file limit (see fds.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "fds.h"

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

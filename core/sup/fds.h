/*
 * fds.h — hum's own file descriptors: the standard ones and the open-file
 * limit.  Both are process-wide, so main() calls them first, before anything
 * opens a descriptor or starts a thread; hum_sup_new calls hum_fds_stdio
 * again for programs that embed the supervisor without main().
 */
#ifndef HUM_FDS_H
#define HUM_FDS_H

#include <sys/resource.h>

/* The most hum raises its soft limit on open files to (2^20, Linux's default
 * fs.nr_open): some hosts set a hard limit near 2^30, and children inherit
 * the soft limit (see hum_fds_raise_limit). */
#define HUM_NOFILE_MAX ((rlim_t)1 << 20)

/* Reopens each of 0, 1 and 2 that is closed on /dev/null, so that no
 * descriptor hum opens later (the event loop's epoll, a pipe, a log file)
 * lands on a standard one and is written to as stdout or closed by a dup2.
 * 0, or -errno when /dev/null cannot be opened (the fd stays closed). */
int hum_fds_stdio(void);

/* Raises the soft RLIMIT_NOFILE to the hard limit (at most HUM_NOFILE_MAX;
 * never lowers it).  Each supervised process holds two pipes in hum, so the
 * common soft limit of 1024 would stop hum near 500 processes.  Children
 * inherit the raised limit (posix_spawn cannot set a limit per child, and
 * lowering hum's around each spawn would starve its other threads).
 * *before and *after (either may be NULL) get the soft limit before and
 * after.  0 or -errno (the limit is then unchanged). */
int hum_fds_raise_limit(rlim_t *before, rlim_t *after);

#endif

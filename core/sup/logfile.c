/*
 * logfile.c — hum's own log file: a checked open and one-step rotation
 * (see logfile.h for the rules).  Owns nothing after it returns: the fd is
 * the caller's.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logfile.h"

#define OPEN_FLAGS (O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC)

static void say(char *buf, size_t len, const char *fmt, const char *a, const char *b)
{
	if (buf && len)
		snprintf(buf, len, fmt, a, b);
}

/* Why st is not a file hum may write its log into, or NULL. */
static const char *unfit(const struct stat *st)
{
	if (S_ISFIFO(st->st_mode))
		return "it was a FIFO";
	if (!S_ISREG(st->st_mode))
		return "it was not a regular file";
	if (st->st_uid != geteuid())
		return "it belonged to another user";
	if (st->st_nlink != 1)
		return "it had another link (a hard link)";
	return NULL;
}

static int open_retry(const char *path, int flags)
{
	int fd;
	do
		fd = open(path, flags, 0600);
	while (fd < 0 && errno == EINTR);
	return fd;
}

int hum_logfile_open(const char *path, int flags, char *note, size_t notelen,
		     char *err, size_t errlen)
{
	struct stat st;
	if (note && notelen)
		note[0] = 0;
	if (flags & HUM_LOGFILE_ROTATE) {
		char older[PATH_MAX];
		if ((size_t)snprintf(older, sizeof older, "%s.1", path) >= sizeof older) {
			say(err, errlen, "%s: %s", path, strerror(ENAMETOOLONG));
			return -ENAMETOOLONG;
		}
		/* Only a log of our own moves aside; anything else at the
		 * path is replaced below and must not become path.1.  An
		 * empty one stays (a first run's: path.1 is the run before,
		 * if any). */
		if (lstat(path, &st) == 0 && !unfit(&st) && st.st_size > 0 && rename(path, older) != 0) {
			int e = errno;
			say(err, errlen, "rename %s: %s", path, strerror(e));
			return -e;
		}
	}
	const char *why = NULL;
	int fd = open_retry(path, OPEN_FLAGS);
	if (fd < 0) {
		int e = errno;
		if (e == ELOOP)
			why = "it was a symbolic link";
		else if (e == ENXIO)
			why = "it was a FIFO or a socket"; /* nobody reading / a socket */
		else {
			say(err, errlen, "open %s: %s", path, strerror(e));
			return -e;
		}
	} else if (fstat(fd, &st) != 0 || (why = unfit(&st)) != NULL) {
		if (!why)
			why = strerror(errno);
		close(fd);
		fd = -1;
	}
	if (why) {
		/* The directory is hum's (0700): replacing the entry is ours to
		 * do.  O_EXCL: whatever appears in between is not followed. */
		if (unlink(path) != 0 && errno != ENOENT) {
			int e = errno;
			say(err, errlen, "cannot replace %s: %s", path, strerror(e));
			return -e;
		}
		fd = open_retry(path, OPEN_FLAGS | O_EXCL);
		if (fd < 0) {
			int e = errno;
			say(err, errlen, "create %s: %s", path, strerror(e));
			return -e;
		}
		if (fstat(fd, &st) != 0 || unfit(&st)) {
			close(fd);
			say(err, errlen, "create %s: %s", path, "not a regular file of ours");
			return -EPERM;
		}
		say(note, notelen, "replaced %s: %s", path, why);
	}
	/* O_NONBLOCK only kept the open from waiting on a FIFO. */
	int fl = fcntl(fd, F_GETFL);
	if (fl >= 0)
		(void)fcntl(fd, F_SETFL, fl & ~O_NONBLOCK);
	return fd;
}

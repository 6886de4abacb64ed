/*
 * logfile_test.c — hum's log file is opened only as a regular file of its
 * own: a symbolic link, a FIFO (no hang), a hard link or another user's
 * file at its path is replaced, never written through; a directory is an
 * error; rotation moves our own log to path.1 and only that.
 */
#include <errno.h>
#include <stdbool.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "sup/logfile.h"
#include "tap.h"

static char dir[] = "/tmp/hum-logfile-XXXXXX";
static char path[96], older[96], other[96];

static const char *slurp(const char *p)
{
	static char buf[4096];
	FILE *f = fopen(p, "r");
	size_t n = f ? fread(buf, 1, sizeof buf - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	return buf;
}

static void put(const char *p, const char *text)
{
	FILE *f = fopen(p, "w");
	fputs(text, f);
	fclose(f);
}

/* Opens the log, writes `text`, closes; the note (or error) into msg. */
static int open_write(int flags, const char *text, char *msg, size_t len)
{
	char note[256], err[256];
	int fd = hum_logfile_open(path, flags, note, sizeof note, err, sizeof err);
	snprintf(msg, len, "%s", fd < 0 ? err : note);
	if (fd < 0)
		return fd;
	int fl = fcntl(fd, F_GETFL), fdfl = fcntl(fd, F_GETFD);
	if (write(fd, text, strlen(text)) < 0 || (fl & O_NONBLOCK) || !(fdfl & FD_CLOEXEC))
		fd = -EBADF;
	close(fd);
	return fd < 0 ? fd : 0;
}

static bool regular_own(void)
{
	struct stat st;
	return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && st.st_uid == geteuid() &&
	       st.st_nlink == 1 && (st.st_mode & 0777) == 0600;
}

int main(void)
{
	if (!mkdtemp(dir))
		return 1;
	snprintf(path, sizeof path, "%s/hum.log", dir);
	snprintf(older, sizeof older, "%s/hum.log.1", dir);
	snprintf(other, sizeof other, "%s/victim", dir);
	char msg[256];

	ok(open_write(0, "one\n", msg, sizeof msg) == 0 && regular_own() && !msg[0],
	   "a new log: created 0600, blocking, close-on-exec");
	ok(open_write(0, "two\n", msg, sizeof msg) == 0 && !strcmp(slurp(path), "one\ntwo\n"),
	   "our own log: appended to");
	ok(open_write(HUM_LOGFILE_ROTATE, "three\n", msg, sizeof msg) == 0 &&
	   !strcmp(slurp(older), "one\ntwo\n") && !strcmp(slurp(path), "three\n"),
	   "rotate: the old log becomes hum.log.1, a new one starts");

	put(other, "precious\n");
	unlink(path);
	symlink(other, path);
	ok(open_write(HUM_LOGFILE_ROTATE, "four\n", msg, sizeof msg) == 0 && regular_own() &&
	   !strcmp(slurp(other), "precious\n") && !strcmp(slurp(path), "four\n") &&
	   strstr(msg, "symbolic link") && !strcmp(slurp(older), "one\ntwo\n"),
	   "a symbolic link is replaced, its target untouched, and not rotated (%s)", msg);

	unlink(path);
	mkfifo(path, 0600);
	ok(open_write(0, "five\n", msg, sizeof msg) == 0 && regular_own() && strstr(msg, "FIFO"),
	   "a FIFO nobody reads: replaced, no hang (%s)", msg);

	unlink(path);
	link(other, path);
	ok(open_write(0, "six\n", msg, sizeof msg) == 0 && regular_own() &&
	   !strcmp(slurp(other), "precious\n") && strstr(msg, "link"),
	   "a hard link is replaced, the other name's file untouched (%s)", msg);

	if (geteuid() == 0) {
		put(path, "theirs\n");
		int keep = open(path, O_RDONLY | O_CLOEXEC);
		chown(path, 65534, 65534);
		char theirs[64] = "";
		ok(open_write(0, "seven\n", msg, sizeof msg) == 0 && regular_own() &&
		   pread(keep, theirs, sizeof theirs - 1, 0) > 0 && !strcmp(theirs, "theirs\n") &&
		   strstr(msg, "another user"), "another user's file is replaced, not written (%s)", msg);
		close(keep);
	} else {
		ok(1, "# SKIP not root: cannot make a file of another user");
	}

	unlink(path);
	mkdir(path, 0700);
	ok(open_write(0, "eight\n", msg, sizeof msg) == -EISDIR && strstr(msg, "hum.log"),
	   "a directory is an error, never removed (%s)", msg);
	rmdir(path);

	unlink(older);
	unlink(other);
	rmdir(dir);
	return done_testing();
}

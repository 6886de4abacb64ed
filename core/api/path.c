/*
 * path.c — where a project's control socket lives and making sure only
 * one hum serves it: <project>/.hum (0700) with hum.sock (0600) and an
 * flock'd hum.lock; a per-user runtime directory when the path is too long
 * for a socket address; a socket left by a crashed hum is detected (nobody
 * answers) and removed.  Runs on the loop thread, before the API thread.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api_priv.h"
#include "state/atomic.h"

/* Paths ---------------------------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

void hum_api_fallback_dir_(char *out, size_t n)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	if (x && x[0] == '/' && strlen(x) + 32 < sizeof(((struct sockaddr_un *)0)->sun_path))
		snprintf(out, n, "%s/hum", x);
	else
		snprintf(out, n, "/tmp/hum-%u", (unsigned)geteuid());
}

int hum_api_socket_path_(const char *real, char *out, size_t outlen, bool *fallback)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
	int k = snprintf(out, outlen, "%s/.hum/hum.sock", strcmp(real, "/") ? real : "");
	*fallback = false;
	if (k > 0 && (size_t)k < max && (size_t)k < outlen)
		return 0;
	char dir[PATH_MAX];
	hum_api_fallback_dir_(dir, sizeof dir);
	k = snprintf(out, outlen, "%s/%016llx.sock", dir, (unsigned long long)fnv1a(real));
	*fallback = true;
	if (k < 0 || (size_t)k >= max || (size_t)k >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

int hum_api_socket_path(const char *project_dir, char *out, size_t outlen)
{
	char real[PATH_MAX];
	if (!realpath(project_dir, real))
		return -errno;
	bool fb;
	return hum_api_socket_path_(real, out, outlen, &fb);
}

/* mkdir 0700 if missing; then it must be a directory (not a symlink) owned
 * by us; `strict`: refuse group/other permissions (a shared /tmp), else fix
 * them. */
int hum_api_secure_dir_(const char *dir, bool strict, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int e = errno;
		hum_api_seterr_(err, errlen, "cannot create %s: %s", dir, strerror(e));
		return -e;
	}
	struct stat sb;
	if (lstat(dir, &sb) < 0) {
		int e = errno;
		hum_api_seterr_(err, errlen, "cannot check %s: %s", dir, strerror(e));
		return -e;
	}
	if (!S_ISDIR(sb.st_mode) || sb.st_uid != geteuid()) {
		hum_api_seterr_(err, errlen, "%s is not a directory owned by uid %u; refusing to use it", dir,
		       (unsigned)geteuid());
		return -EPERM;
	}
	if ((sb.st_mode & 0777) != 0700) {
		if (strict) {
			hum_api_seterr_(err, errlen, "%s is accessible to other users (mode %03o); refusing to use it",
			       dir, (unsigned)(sb.st_mode & 0777));
			return -EPERM;
		}
		if (chmod(dir, 0700) < 0) {
			int e = errno;
			hum_api_seterr_(err, errlen, "cannot chmod %s: %s", dir, strerror(e));
			return -e;
		}
	}
	return 0;
}

int hum_api_state_dir(const char *project_dir, char *out, size_t outlen, char *err, size_t errlen)
{
	char real[PATH_MAX];
	if (!realpath(project_dir, real)) {
		int e = errno;
		hum_api_seterr_(err, errlen, "cannot resolve %s: %s", project_dir, strerror(e));
		return -e;
	}
	int k = snprintf(out, outlen, "%s/.hum", strcmp(real, "/") ? real : "");
	if (k < 0 || (size_t)k >= outlen) {
		hum_api_seterr_(err, errlen, "path too long: %s/.hum", real);
		return -ENAMETOOLONG;
	}
	return hum_api_secure_dir_(out, false, err, errlen);
}

int hum_api_probe_existing_(const char *path, bool *stale, char *err, size_t errlen)
{
	struct stat sb;
	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(sb.st_mode)) {
		hum_api_seterr_(err, errlen, "%s exists and is not a socket; remove it", path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int rc;
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (rc < 0 && errno == EINTR);
	int e = rc < 0 ? errno : 0;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
		hum_api_seterr_(err, errlen, "another hum is already listening on %s", path);
		return -EADDRINUSE;
	}
	if (e == ECONNREFUSED) {
		/* nobody listens: left behind by a hum that crashed */
		if (unlink(path) < 0 && errno != ENOENT) {
			e = errno;
			hum_api_seterr_(err, errlen, "cannot remove the stale socket %s: %s", path, strerror(e));
			return -e;
		}
		if (stale)
			*stale = true;
		return 0;
	}
	hum_api_seterr_(err, errlen, "cannot check %s: %s", path, strerror(e));
	return -e;
}

int hum_api_take_lock_(const char *humdir, int *lock_fd, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/hum.lock", humdir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;
		hum_api_seterr_(err, errlen, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	int rc;
	do
		rc = flock(fd, LOCK_EX | LOCK_NB);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		int e = errno;
		if (e == EWOULDBLOCK) {
			char pid[32] = "";
			ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
			pid[n > 0 ? n : 0] = 0;
			pid[strcspn(pid, "\n")] = 0;
			hum_api_seterr_(err, errlen, "another hum is already running for %.*s%s%s%s", (int)(strlen(humdir) - 5),
			       humdir, *pid ? " (pid " : "", pid, *pid ? ")" : "");
			close(fd);
			return -EADDRINUSE;
		}
		hum_api_seterr_(err, errlen, "cannot lock %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	char pid[32];
	int k = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)k, 0) < 0) {
		/* the pid is only for the message above; not fatal */
	}
	*lock_fd = fd;
	return 0;
}

int hum_api_open_listener_(hum_api *a, char *err, size_t errlen)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		int e = errno;
		hum_api_seterr_(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, a->path, strlen(a->path) + 1);
	struct stat sb;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(a->path, 0600) < 0 ||
	    listen(fd, SOMAXCONN) < 0 || stat(a->path, &sb) < 0) {
		int e = errno;
		hum_api_seterr_(err, errlen, "cannot listen on %s: %s", a->path, strerror(e));
		close(fd);
		return -e;
	}
	a->sock_dev = sb.st_dev;
	a->sock_ino = sb.st_ino;
	a->listen_fd = fd;
	return 0;
}

void hum_api_unlink_ours_(hum_api *a)
{
	struct stat sb;
	/* only if the file is still the socket we bound */
	if (stat(a->path, &sb) == 0 && sb.st_dev == a->sock_dev && sb.st_ino == a->sock_ino)
		unlink(a->path);
}

/*
 * path.c — where a project's control socket lives and making sure only
 * one hum serves it: <project>/.hum (0700) with hum.sock (0600) and an
 * flock'd hum.lock; when the path is too long for a socket address,
 * $XDG_RUNTIME_DIR/hum/ or else a private mkdtemp directory in /tmp, whose
 * socket path is recorded in .hum/hum.sock.path for clients; a socket left
 * by a crashed hum is detected (nobody answers) and removed.  Every file hum
 * opens in .hum/ is opened with O_NOFOLLOW and must be a regular file of
 * ours with one link (hum_api_own_file_).  Runs on the loop thread, before
 * the API thread (the client side uses hum_api_socket_path too).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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

/* The record of a fallback socket: <project>/.hum/hum.sock.path holds the
 * socket's path, so that clients find a directory made by mkdtemp. */
#define RECORD "hum.sock.path"

/* The shared socket directory when $XDG_RUNTIME_DIR is set and short enough
 * (a per-user, private directory by definition); "" otherwise. */
static void xdg_dir(char *out, size_t n)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	if (x && x[0] == '/' && strlen(x) + 32 < sizeof(((struct sockaddr_un *)0)->sun_path))
		snprintf(out, n, "%s/hum", x);
	else
		snprintf(out, n, "%s", "");
}

int hum_api_own_file_(int fd)
{
	struct stat sb;
	if (fstat(fd, &sb) < 0)
		return -errno;
	/* a hard link (st_nlink > 1) may name a victim elsewhere */
	if (!S_ISREG(sb.st_mode) || sb.st_uid != geteuid() || sb.st_nlink != 1)
		return -EPERM;
	return 0;
}

/* A directory (not a symlink) owned by us that nobody else may enter. */
static bool private_dir(const char *dir)
{
	struct stat sb;
	return lstat(dir, &sb) == 0 && S_ISDIR(sb.st_mode) && sb.st_uid == geteuid() && !(sb.st_mode & 077);
}

/* Reads the record in humdir: the socket path, checked as the server wrote
 * it (our own regular file with one link, naming a socket in a private
 * directory of ours).  0 or -errno. */
static int read_record(const char *humdir, char *out, size_t n)
{
	char path[PATH_MAX];
	if (snprintf(path, sizeof path, "%s/" RECORD, humdir) >= (int)sizeof path)
		return -ENAMETOOLONG;
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	int rc = hum_api_own_file_(fd);
	ssize_t k = 0;
	if (rc == 0) {
		do
			k = pread(fd, out, n - 1, 0);
		while (k < 0 && errno == EINTR);
		rc = k < 0 ? -errno : 0;
	}
	close(fd);
	if (rc < 0)
		return rc;
	out[k] = 0;
	out[strcspn(out, "\n")] = 0;
	char dir[PATH_MAX];
	snprintf(dir, sizeof dir, "%s", out);
	char *slash = strrchr(dir, '/');
	if (out[0] != '/' || !slash || slash == dir || strlen(out) >= sizeof(((struct sockaddr_un *)0)->sun_path))
		return -EINVAL;
	*slash = 0;
	return private_dir(dir) ? 0 : -EPERM;
}

/* Writes the record: a fresh file (O_EXCL, O_NOFOLLOW) renamed over the
 * old one, so a planted link is replaced, never written through. */
static int write_record(const char *humdir, const char *sock, char *err, size_t errlen)
{
	char tmp[PATH_MAX], path[PATH_MAX];
	snprintf(tmp, sizeof tmp, "%s/" RECORD ".new", humdir);
	snprintf(path, sizeof path, "%s/" RECORD, humdir);
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
	int rc = fd < 0 ? -errno : 0;
	size_t len = strlen(sock);
	if (rc == 0) {
		ssize_t k;
		do
			k = write(fd, sock, len);
		while (k < 0 && errno == EINTR);
		rc = k < 0 ? -errno : (size_t)k != len ? -EIO : 0;
		close(fd);
	}
	if (rc == 0 && rename(tmp, path) < 0)
		rc = -errno;
	if (rc < 0) {
		unlink(tmp);
		hum_api_seterr_(err, errlen, "cannot record the socket's path in %s: %s", path, strerror(-rc));
	}
	return rc;
}

int hum_api_socket_path_(const char *real, char *out, size_t outlen, bool *fallback)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
	int k = snprintf(out, outlen, "%s/.hum/hum.sock", strcmp(real, "/") ? real : "");
	*fallback = false;
	if (k > 0 && (size_t)k < max && (size_t)k < outlen)
		return 0;
	*fallback = true;
	/* a running hum recorded where it listens */
	char humdir[PATH_MAX];
	snprintf(humdir, sizeof humdir, "%s/.hum", strcmp(real, "/") ? real : "");
	if (read_record(humdir, out, outlen) == 0)
		return 0;
	char dir[PATH_MAX];
	xdg_dir(dir, sizeof dir);
	if (!dir[0])
		return -ENOENT; /* no record, no runtime directory: nobody listens */
	k = snprintf(out, outlen, "%s/%016llx.sock", dir, (unsigned long long)fnv1a(real));
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

int hum_api_fallback_place_(hum_api *a, const char *humdir, const char *real, char *err, size_t errlen)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
	char dir[PATH_MAX];
	int rc;
	xdg_dir(dir, sizeof dir);
	if (dir[0]) {
		/* $XDG_RUNTIME_DIR is the user's own (0700, per the spec) */
		if ((rc = hum_api_secure_dir_(dir, true, err, errlen)) < 0)
			return rc;
		if (snprintf(a->path, sizeof a->path, "%s/%016llx.sock", dir, (unsigned long long)fnv1a(real)) >=
		    (int)sizeof a->path)
			return -ENAMETOOLONG; /* xdg_dir leaves room: cannot happen */
	} else if (read_record(humdir, a->path, sizeof a->path) == 0) {
		/* the private directory of an earlier run that did not clean up */
		memcpy(a->tmpdir, a->path, sizeof a->tmpdir); /* same size */
		*strrchr(a->tmpdir, '/') = 0;
	} else {
		/* A directory of our own that nobody could have taken first: a
		 * fixed name in /tmp (/tmp/hum-$UID) can be squatted by another
		 * user, which would keep us from running at all. */
		snprintf(a->tmpdir, sizeof a->tmpdir, "/tmp/hum-%u-XXXXXX", (unsigned)geteuid());
		if (!mkdtemp(a->tmpdir)) {
			rc = -errno;
			hum_api_seterr_(err, errlen, "cannot create a socket directory in /tmp: %s", strerror(-rc));
			a->tmpdir[0] = 0;
			return rc;
		}
		if (snprintf(a->path, sizeof a->path, "%s/hum.sock", a->tmpdir) >= (int)sizeof a->path)
			a->path[sizeof a->path - 1] = 0; /* cannot happen: ~30 bytes */
	}
	if (strlen(a->path) >= max) {
		hum_api_seterr_(err, errlen, "no usable socket path for %s", real);
		return -ENAMETOOLONG;
	}
	if ((rc = write_record(humdir, a->path, err, errlen)) < 0)
		return rc;
	snprintf(a->record, sizeof a->record, "%s/" RECORD, humdir);
	return 0;
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

/* Opens <humdir>/hum.lock as a file of our own: never through a symlink,
 * never a file of another owner or one with another name (a hard link to a
 * victim elsewhere, which writing our pid would overwrite).  Such an entry
 * is replaced: unlinked (we own .hum) and created afresh with O_EXCL.  The
 * file is only truncated and written once it passed the checks. */
static int open_lock(const char *path, char *err, size_t errlen)
{
	for (int tries = 0; tries < 16; tries++) {
		/* O_NONBLOCK: a FIFO planted here must not block the open */
		int fd = open(path, O_RDWR | O_NOFOLLOW | O_CLOEXEC | O_NONBLOCK);
		if (fd < 0 && errno == ENOENT) {
			fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
			if (fd < 0 && errno == EEXIST)
				continue; /* another hum created it first */
		}
		if (fd < 0 && errno != ELOOP && errno != ENXIO && errno != EACCES) {
			int e = errno;
			hum_api_seterr_(err, errlen, "cannot open %s: %s", path, strerror(e));
			return -e;
		}
		if (fd >= 0 && hum_api_own_file_(fd) == 0)
			return fd;
		if (fd >= 0)
			close(fd);
		if (unlink(path) < 0 && errno != ENOENT) {
			int e = errno;
			hum_api_seterr_(err, errlen, "%s is not hum's own file and cannot be replaced: %s", path,
					strerror(e));
			return -e;
		}
	}
	hum_api_seterr_(err, errlen, "cannot open %s: it keeps being replaced", path);
	return -EAGAIN;
}

int hum_api_take_lock_(const char *humdir, int *lock_fd, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/hum.lock", humdir);
	int fd = open_lock(path, err, errlen);
	if (fd < 0)
		return fd;
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
	if (stat(a->path, &sb) == 0 && sb.st_dev == a->sock_dev && sb.st_ino == a->sock_ino) {
		unlink(a->path);
		if (a->record[0])
			unlink(a->record);
		if (a->tmpdir[0])
			rmdir(a->tmpdir);
	}
}

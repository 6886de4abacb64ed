/*
 * cgroup_fs.c — what the cgroup files (cgroup_find.c, cgroup_spawn.c,
 * cgroup_kill.c) share to reach cgroupfs: small files opened, read and
 * joined into paths with raw system calls on the caller's memory, and the
 * name of a run's cgroup.  Declared in sup_priv.h.
 *
 * sup_open_retry, sup_read_file and sup_join are async-signal-safe (no
 * malloc, no stdio, no locks): the hum_cgroup_* operations built on them run
 * in the sentinel after fork (cgroup.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sup_priv.h"

int sup_open_retry(int dirfd, const char *path, int flags)
{
	int fd;
	do
		fd = openat(dirfd, path, flags | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd;
}

/* Reads up to len-1 bytes of a small file (NUL terminated); length or -errno. */
ssize_t sup_read_file(int dirfd, const char *path, char *buf, size_t len)
{
	int fd = sup_open_retry(dirfd, path, O_RDONLY);
	if (fd < 0)
		return -errno;
	size_t have = 0;
	while (have + 1 < len) {
		ssize_t r = read(fd, buf + have, len - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			close(fd);
			return -e;
		}
		if (r == 0)
			break;
		have += (size_t)r;
	}
	close(fd);
	buf[have] = '\0';
	return (ssize_t)have;
}

/* dst = a + b (+ c); false if it does not fit. */
bool sup_join(char *dst, size_t len, const char *a, const char *b, const char *c)
{
	size_t la = strlen(a), lb = strlen(b), lc = c ? strlen(c) : 0;
	if (la + lb + lc + 1 > len)
		return false;
	memcpy(dst, a, la);
	memcpy(dst + la, b, lb);
	if (c)
		memcpy(dst + la + lb, c, lc);
	dst[la + lb + lc] = '\0';
	return true;
}

void sup_cgroup_name(char buf[static 32], uint32_t id, uint32_t run)
{
	snprintf(buf, 32, "%u.%u", id, run);
}

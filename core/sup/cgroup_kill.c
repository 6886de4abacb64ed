/*
 * cgroup_kill.c — signals and removal (see cgroup.h): signalling every
 * member of a cgroup and its child cgroups, cgroup.kill, waiting for a
 * cgroup to empty, rmdir; and the supervisor's side: a run's (or every
 * run's) cgroup signalled, a run's cgroup removed once empty, the top
 * destroyed when the supervisor is freed.
 *
 * Killing.  Stop signals go to each member through a pidfd, opened before
 * a second read of cgroup.procs confirms the member (a pid may be recycled
 * between the first read and the pidfd; see `walk`): no /proc file is
 * read, so the loop thread does it at once, and the stop signal always
 * comes before the SIGKILL that may follow.  SIGKILL goes through
 * cgroup.kill, one write that the kernel applies to the whole subtree
 * atomically, forks in flight included.
 *
 * Removal.  A cgroup can be removed once no process lives in it (zombies
 * do not count).  When a run ends its cgroup is removed at once if empty,
 * else an inotify watch on its cgroup.events (the kernel reports a change
 * of "populated" as a modification) removes it when the last member dies:
 * no polling, no /proc pass.  The top is killed and removed when the
 * supervisor is freed, or by the sentinel after kill -9.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "state/atomic.h"
#include "sup_priv.h"

/* ---- small async-signal-safe helpers ------------------------------------ */

static int write_str(int dirfd, const char *path, const char *s)
{
	int fd = sup_open_retry(dirfd, path, O_WRONLY);
	if (fd < 0)
		return -errno;
	ssize_t n;
	do
		n = write(fd, s, strlen(s));
	while (n < 0 && errno == EINTR);
	int e = n < 0 ? errno : 0;
	close(fd);
	return -e;
}

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

/* ---- signals, kill, removal ---------------------------------------------- */

#define CG_DEPTH 32 /* child cgroups deeper than this are not visited */

/* Calls fn(dirfd of the child cgroup, its name) for each child cgroup. */
static int each_child(int dirfd, int (*fn)(int fd, const char *name, void *ud), void *ud)
{
	int dfd = sup_open_retry(dirfd, ".", O_RDONLY | O_DIRECTORY);
	if (dfd < 0)
		return -errno;
	char buf[4096] __attribute__((aligned(8)));
	ssize_t n;
	int rc = 0;
	while (rc == 0 && (n = getdents64(dfd, buf, sizeof buf)) > 0)
		for (ssize_t off = 0; off < n && rc == 0;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			off += d->d_reclen;
			if (d->d_type != DT_DIR || strcmp(d->d_name, ".") == 0 || strcmp(d->d_name, "..") == 0)
				continue;
			rc = fn(dfd, d->d_name, ud);
		}
	close(dfd);
	return rc;
}

/* Calls fn(pid, ud) for each pid in the cgroup's cgroup.procs (decimal,
 * one a line); 0 or -errno. */
static int each_pid(int dirfd, void (*fn)(pid_t pid, void *ud), void *ud)
{
	int fd = sup_open_retry(dirfd, "cgroup.procs", O_RDONLY);
	if (fd < 0)
		return -errno;
	char buf[4096];
	unsigned long pid = 0;
	bool digits = false;
	ssize_t n;
	for (;;) {
		do
			n = read(fd, buf, sizeof buf);
		while (n < 0 && errno == EINTR);
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++) {
			if (buf[i] >= '0' && buf[i] <= '9') {
				pid = pid * 10 + (unsigned long)(buf[i] - '0');
				digits = true;
				continue;
			}
			if (digits && pid > 0)
				fn((pid_t)pid, ud);
			pid = 0;
			digits = false;
		}
	}
	int e = n < 0 ? errno : 0;
	close(fd);
	return -e;
}

#define CG_CHUNK 512 /* members pinned at once */

/* Members being signalled: pinned by pidfds, then checked to be listed
 * still.  A pid read from cgroup.procs may be recycled before its pidfd is
 * open; if the pid is listed again after the pidfd was opened, the process
 * behind the pidfd is the member (or, if it died meanwhile, the signal
 * fails).  So a recycled pid is never hit, and no /proc file is read. */
typedef struct walk {
	pid_t pid[CG_CHUNK];
	int fd[CG_CHUNK];
	unsigned char listed[CG_CHUNK];
	int n, dirfd, sig, count, depth;
	pid_t skip;
} walk;

static void mark_listed(pid_t pid, void *ud)
{
	walk *w = ud;
	int lo = 0, hi = w->n;
	while (lo < hi) {
		int mid = (lo + hi) / 2;
		if (w->pid[mid] < pid)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < w->n && w->pid[lo] == pid)
		w->listed[lo] = 1;
}

static void flush(walk *w)
{
	for (int i = 1; i < w->n; i++) /* insertion sort by pid, for the search */
		for (int j = i; j > 0 && w->pid[j - 1] > w->pid[j]; j--) {
			pid_t p = w->pid[j];
			int f = w->fd[j];
			w->pid[j] = w->pid[j - 1], w->fd[j] = w->fd[j - 1];
			w->pid[j - 1] = p, w->fd[j - 1] = f;
		}
	memset(w->listed, 0, (size_t)w->n);
	if (w->n)
		each_pid(w->dirfd, mark_listed, w);
	for (int i = 0; i < w->n; i++) {
		if (w->listed[i] && syscall(SYS_pidfd_send_signal, w->fd[i], w->sig, NULL, 0) == 0)
			w->count++;
		close(w->fd[i]);
	}
	w->n = 0;
}

static void pin(pid_t pid, void *ud)
{
	walk *w = ud;
	if (w->skip && getpgid(pid) == w->skip)
		return;
	int fd = (int)syscall(SYS_pidfd_open, pid, 0);
	HUM_TSAN_FD_CREATED();
	if (fd < 0 && (errno == EMFILE || errno == ENFILE) && w->n) {
		flush(w); /* out of fds: signal what is pinned, go on */
		fd = (int)syscall(SYS_pidfd_open, pid, 0);
		HUM_TSAN_FD_CREATED();
	}
	if (fd < 0)
		return; /* gone */
	w->pid[w->n] = pid;
	w->fd[w->n++] = fd;
	if (w->n == CG_CHUNK)
		flush(w);
}

static int signal_tree(int dirfd, walk *w);

static int signal_child(int dfd, const char *name, void *ud)
{
	walk *w = ud;
	if (w->depth >= CG_DEPTH)
		return 0;
	int fd = sup_open_retry(dfd, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return 0; /* removed meanwhile */
	w->depth++;
	signal_tree(fd, w);
	w->depth--;
	close(fd);
	return 0;
}

static int signal_tree(int dirfd, walk *w)
{
	int saved = w->dirfd;
	w->dirfd = dirfd;
	int rc = each_pid(dirfd, pin, w);
	flush(w);
	w->dirfd = saved;
	if (rc < 0)
		return rc;
	return each_child(dirfd, signal_child, w);
}

int hum_cgroup_signal(int dirfd, int sig, pid_t skip_pgid)
{
	walk w;
	w.n = w.count = w.depth = 0;
	w.dirfd = dirfd;
	w.sig = sig;
	w.skip = skip_pgid;
	int rc = signal_tree(dirfd, &w);
	return rc < 0 && w.count == 0 ? rc : w.count;
}

int hum_cgroup_kill(int dirfd)
{
	int rc = write_str(dirfd, "cgroup.kill", "1");
	if (rc != -ENOENT)
		return rc;
	/* Before Linux 5.14: passes over the members until none is left or
	 * the passes run out (killed members stay listed until they exit). */
	for (int pass = 0; pass < 8; pass++) {
		rc = hum_cgroup_signal(dirfd, SIGKILL, 0);
		if (rc <= 0 || hum_cgroup_populated(dirfd) == 0)
			return rc < 0 ? rc : 0;
	}
	return 0;
}

int hum_cgroup_populated(int dirfd)
{
	char buf[256];
	ssize_t n = sup_read_file(dirfd, "cgroup.events", buf, sizeof buf);
	if (n < 0)
		return (int)n;
	const char *p = strstr(buf, "populated ");
	return p ? p[10] == '1' : -EINVAL;
}

static int remove_at(int parentfd, const char *name, int *depth);

static int remove_child(int dfd, const char *name, void *ud)
{
	int *depth = ud;
	if (*depth >= CG_DEPTH)
		return -EBUSY;
	(*depth)++;
	int rc = remove_at(dfd, name, depth);
	(*depth)--;
	return rc == -ENOENT ? 0 : rc;
}

static int remove_at(int parentfd, const char *name, int *depth)
{
	int fd = sup_open_retry(parentfd, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -errno;
	int rc = each_child(fd, remove_child, depth);
	close(fd);
	if (rc < 0)
		return rc;
	if (unlinkat(parentfd, name, AT_REMOVEDIR) != 0)
		return -errno;
	return 0;
}

int hum_cgroup_remove(int parentfd, const char *name)
{
	int depth = 0;
	return remove_at(parentfd, name, &depth);
}

int hum_cgroup_destroy(const char *dir, double timeout)
{
	char parent[PATH_MAX];
	const char *slash = strrchr(dir, '/');
	size_t pl = slash ? (size_t)(slash - dir) : 0;
	if (slash == NULL || pl + 1 > sizeof parent || slash[1] == '\0')
		return -EINVAL;
	memcpy(parent, dir, pl);
	parent[pl ? pl : 1] = '\0';
	if (pl == 0)
		parent[0] = '/';
	int fd = sup_open_retry(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY);
	if (fd < 0)
		return -errno;
	int rc = hum_cgroup_kill(fd);
	if (rc < 0 && rc != -ENOENT) {
		close(fd);
		return rc;
	}
	double end = mono() + timeout;
	int pop;
	while ((pop = hum_cgroup_populated(fd)) == 1 && mono() < end) {
		sleep_ms(2);
		hum_cgroup_kill(fd); /* what forked past a pass-based kill */
	}
	close(fd);
	if (pop == 1)
		return -EBUSY;
	int pfd = sup_open_retry(AT_FDCWD, parent, O_RDONLY | O_DIRECTORY);
	if (pfd < 0)
		return -errno;
	rc = hum_cgroup_remove(pfd, slash + 1);
	close(pfd);
	return rc == -ENOENT ? 0 : rc;
}

/* ---- the supervisor's cgroups -------------------------------------------- */

/* The cgroup of run `run` of `id` (id 0 and run 0: the top), opened; its
 * rel in rel.  fd, or -1 (gone, or no top). */
static int open_run(const hum_sup *s, uint32_t id, uint32_t run, char *rel, size_t len)
{
	const hum_cgroups *c = &s->cg;
	if (c->top_fd < 0) {
		errno = ENOENT;
		return -1;
	}
	if (id == 0 && run == 0) {
		sup_join(rel, len, c->rel, "", NULL);
		return sup_open_retry(c->top_fd, ".", O_RDONLY | O_DIRECTORY);
	}
	char name[32];
	sup_cgroup_name(name, id, run);
	if (!sup_join(rel, len, c->rel, "/", name)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return sup_open_retry(c->top_fd, name, O_RDONLY | O_DIRECTORY);
}

void sup_cgroup_signal(hum_sup *s, uint32_t id, uint32_t run, int sig, pid_t skip_pgid)
{
	char rel[PATH_MAX];
	int fd = open_run(s, id, run, rel, sizeof rel);
	if (fd < 0)
		return; /* no cgroup, or removed: nothing lives there */
	int rc;
	if (sig == SIGKILL) {
		rc = hum_cgroup_kill(fd);
	} else {
		rc = hum_cgroup_signal(fd, sig, skip_pgid);
		/* as for the group (hum_proc_stop): a stopped member cannot act
		 * on the stop signal */
		if (rc > 0 && sig != SIGCONT)
			hum_cgroup_signal(fd, SIGCONT, skip_pgid);
	}
	close(fd);
	if (rc < 0 && rc != -ENOENT && rc != -ENODEV) {
		char b[32];
		sup_log(s, NULL, "cgroup: %s to %s: %s", sup_signame(sig, b, sizeof b), rel, strerror(-rc));
	}
}

static void pending_drop(hum_cgroups *c, size_t i)
{
	c->pending[i] = c->pending[--c->npending];
}

void sup_cgroup_release(hum_sup *s, uint32_t id, uint32_t run)
{
	hum_cgroups *c = &s->cg;
	if (c->top_fd < 0 || (id == 0 && run == 0))
		return;
	char name[32], path[PATH_MAX];
	sup_cgroup_name(name, id, run);
	int rc = hum_cgroup_remove(c->top_fd, name);
	if (rc != -EBUSY || c->ino_fd < 0)
		return; /* removed, gone, or left for hum's exit */
	/* Watch first, then try again: it may have emptied in between. */
	if ((size_t)snprintf(path, sizeof path, "%s/%s/cgroup.events", c->dir, name) >= sizeof path)
		return;
	int wd = inotify_add_watch(c->ino_fd, path, IN_MODIFY);
	if (wd < 0)
		return;
	size_t i;
	for (i = 0; i < c->npending && c->pending[i].wd != wd; i++)
		;
	if (i == c->npending) {
		if (c->npending == c->pending_cap) {
			size_t cap = c->pending_cap ? c->pending_cap * 2 : 16;
			struct hum_cg_pending *v = realloc(c->pending, cap * sizeof *v);
			if (v == NULL) {
				inotify_rm_watch(c->ino_fd, wd);
				return; /* left for hum's exit */
			}
			c->pending = v;
			c->pending_cap = cap;
		}
		c->pending[c->npending++] = (struct hum_cg_pending){ wd, id, run };
	}
	if (hum_cgroup_remove(c->top_fd, name) != -EBUSY)
		pending_drop(c, i); /* its watch went with it */
}

/* A watched cgroup.events changed (or the queue overflowed): try again. */
void sup_cgroup_ino_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	hum_sup *s = (hum_sup *)((char *)w - offsetof(hum_sup, cg.ino_w));
	hum_cgroups *c = &s->cg;
	char buf[4096] __attribute__((aligned(__alignof__(struct inotify_event))));
	bool all = false;
	ssize_t n;
	while ((n = read(c->ino_fd, buf, sizeof buf)) > 0 || (n < 0 && errno == EINTR)) {
		for (ssize_t off = 0; off < n;) {
			const struct inotify_event *ev = (const struct inotify_event *)(buf + off);
			off += (ssize_t)(sizeof *ev + ev->len);
			if (ev->mask & IN_Q_OVERFLOW)
				all = true;
			for (size_t i = 0; i < c->npending; i++) {
				if (c->pending[i].wd != ev->wd)
					continue;
				char name[32];
				sup_cgroup_name(name, c->pending[i].id, c->pending[i].run);
				if ((ev->mask & IN_IGNORED) || hum_cgroup_remove(c->top_fd, name) != -EBUSY)
					pending_drop(c, i);
				break;
			}
		}
	}
	for (size_t i = c->npending; all && i-- > 0;) {
		char name[32];
		sup_cgroup_name(name, c->pending[i].id, c->pending[i].run);
		if (hum_cgroup_remove(c->top_fd, name) != -EBUSY) {
			inotify_rm_watch(c->ino_fd, c->pending[i].wd);
			pending_drop(c, i);
		}
	}
}

void sup_cgroup_fini(hum_sup *s)
{
	hum_cgroups *c = &s->cg;
	if (c->ino_fd >= 0) {
		ev_ref(s->loop);
		ev_io_stop(s->loop, &c->ino_w);
		close(c->ino_fd);
		c->ino_fd = -1;
	}
	free(c->pending);
	c->pending = NULL;
	c->npending = c->pending_cap = 0;
	if (c->top_fd < 0)
		return;
	close(c->top_fd);
	c->top_fd = -1;
	c->placing = false;
	int rc = hum_cgroup_destroy(c->dir, 5.0);
	if (rc < 0)
		sup_log(s, NULL, "cgroup: remove %s: %s", c->dir, strerror(-rc));
}

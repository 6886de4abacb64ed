/*
 * cgroup.c — cgroup v2 containment (see cgroup.h): finding cgroup2 and
 * hum's place in it, the cgroup operations the supervisor and the sentinel
 * share, starting a child inside a cgroup, and the supervisor's glue
 * (sup_cgroup_*: the top, a cgroup per run, signals, removal once empty).
 *
 * Placement before exec.  A child must be in its cgroup before it runs a
 * single instruction of the program: a program that forks at once (a shell
 * running `setsid env -i daemon &`) would otherwise leave a descendant
 * outside it.  Writing the pid into cgroup.procs after posix_spawn is too
 * late (the program already runs), and a write from the child before exec
 * costs a percpu-rwsem write lock (an RCU grace period: ~2 ms per spawn,
 * measured here).  clone3(CLONE_INTO_CGROUP) creates the child inside the
 * cgroup for the price of a fork.  glibc (2.36) has no clone3 wrapper and
 * its posix_spawn takes no cgroup (posix_spawnattr_setcgroup_np came in
 * 2.41), so the child side of posix_spawn is done here: CLONE_VM|CLONE_VFORK
 * like glibc's posix_spawn (the parent waits until exec, the child borrows
 * its memory, nothing is copied), and a trampoline in assembly, because a
 * vfork-style child returning through a C function would overwrite the
 * return address the parent still has to use (glibc's vfork.S does the
 * same).  The child then does only raw system calls and writes only its
 * error code into the parent's frame.
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
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <dirent.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "state/atomic.h"
#include "lineage.h"
#include "sup_priv.h"

/* ---- small async-signal-safe helpers ------------------------------------ */

static int open_retry(int dirfd, const char *path, int flags)
{
	int fd;
	do
		fd = openat(dirfd, path, flags | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd;
}

/* Reads up to len-1 bytes of a small file (NUL terminated); length or -errno. */
static ssize_t read_file(int dirfd, const char *path, char *buf, size_t len)
{
	int fd = open_retry(dirfd, path, O_RDONLY);
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

static int write_str(int dirfd, const char *path, const char *s)
{
	int fd = open_retry(dirfd, path, O_WRONLY);
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

/* dst = a + b (+ c); false if it does not fit. */
static bool join(char *dst, size_t len, const char *a, const char *b, const char *c)
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

/* ---- where cgroup v2 is -------------------------------------------------- */

/* Copies the space-separated field at *p into out, decoding mountinfo's
 * octal escapes (\040 is a space); advances *p.  false if too long. */
static bool field(const char **p, char *out, size_t len)
{
	const char *s = *p;
	size_t k = 0;
	while (*s == ' ')
		s++;
	while (*s && *s != ' ' && *s != '\n') {
		char c = *s++;
		if (c == '\\' && s[0] >= '0' && s[0] <= '3' && s[1] >= '0' && s[1] <= '7' &&
		    s[2] >= '0' && s[2] <= '7') {
			c = (char)((s[0] - '0') * 64 + (s[1] - '0') * 8 + (s[2] - '0'));
			s += 3;
		}
		if (k + 1 >= len)
			return false;
		out[k++] = c;
	}
	out[k] = '\0';
	*p = s;
	return true;
}

/* Whether rel is root or below it ("/a" is below "/", "/a/b" below "/a",
 * "/ab" is not below "/a"). */
static bool below(const char *rel, const char *root)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return rel[0] == '/';
	return strncmp(rel, root, n) == 0 && (rel[n] == '\0' || rel[n] == '/');
}

int hum_cgroup_where_parse(const char *mountinfo, const char *proc_cgroup, hum_cgroup_where *w)
{
	/* hum's cgroup: the "0::<path>" line (cgroup v2) */
	const char *l = proc_cgroup;
	while (l && strncmp(l, "0::", 3) != 0) {
		l = strchr(l, '\n');
		l = l ? l + 1 : NULL;
	}
	if (l == NULL)
		return -ENOENT;
	size_t n = strcspn(l + 3, "\n");
	if (n == 0 || n >= sizeof w->self_rel || l[3] != '/')
		return n ? -ENAMETOOLONG : -ENOENT;
	memcpy(w->self_rel, l + 3, n);
	w->self_rel[n] = '\0';
	if (n > 10 && strcmp(w->self_rel + n - 10, " (deleted)") == 0)
		return -ENOENT;

	bool found = false, found_rw = false;
	char root[PATH_MAX], mnt[PATH_MAX], opts[256], f[PATH_MAX];
	for (const char *p = mountinfo; p && *p;) {
		const char *eol = strchr(p, '\n');
		/* id parent major:minor root mount-point options [optional...] - type source super */
		const char *q = p;
		bool ok = field(&q, f, sizeof f) && field(&q, f, sizeof f) && field(&q, f, sizeof f) &&
			  field(&q, root, sizeof root) && field(&q, mnt, sizeof mnt) &&
			  field(&q, opts, sizeof opts);
		while (ok && field(&q, f, sizeof f) && f[0] && strcmp(f, "-") != 0)
			;
		ok = ok && strcmp(f, "-") == 0 && field(&q, f, sizeof f) && strcmp(f, "cgroup2") == 0 &&
		     below(w->self_rel, root);
		bool rw = ok && (strncmp(opts, "rw", 2) == 0 && (opts[2] == '\0' || opts[2] == ','));
		if (ok && (!found || (rw && !found_rw))) {
			const char *rest = w->self_rel + (strcmp(root, "/") == 0 ? 0 : strlen(root));
			if (!join(w->self, sizeof w->self, mnt, strcmp(rest, "/") == 0 ? "" : rest, NULL) ||
			    !join(w->mnt, sizeof w->mnt, mnt, "", NULL) ||
			    !join(w->mnt_rel, sizeof w->mnt_rel, root, "", NULL))
				return -ENAMETOOLONG;
			found = true;
			found_rw = rw;
		}
		p = eol ? eol + 1 : NULL;
	}
	return found ? 0 : -ENOENT;
}

int hum_cgroup_where_self(hum_cgroup_where *w)
{
	size_t cap = 1 << 16;
	char *mi = malloc(cap), cg[PATH_MAX + 64];
	if (mi == NULL)
		return -ENOMEM;
	ssize_t n;
	/* mountinfo can be long (containers, snaps): grow until it fits */
	while ((n = read_file(AT_FDCWD, "/proc/self/mountinfo", mi, cap)) >= 0 && (size_t)n + 1 >= cap &&
	       cap < (1u << 24)) {
		char *m = realloc(mi, cap *= 2);
		if (m == NULL) {
			free(mi);
			return -ENOMEM;
		}
		mi = m;
	}
	int rc = n < 0 ? (int)n : 0;
	if (rc == 0 && (n = read_file(AT_FDCWD, "/proc/self/cgroup", cg, sizeof cg)) < 0)
		rc = (int)n;
	if (rc == 0)
		rc = hum_cgroup_where_parse(mi, cg, w);
	free(mi);
	return rc;
}

/* ---- membership, signals, kill, removal ---------------------------------- */

bool hum_cgroup_holds(pid_t pid, const char *rel)
{
	char path[48], buf[PATH_MAX + 512];
	if (read_file(AT_FDCWD, hum_lineage_path(path, pid, "cgroup"), buf, sizeof buf) < 0)
		return false;
	for (char *l = buf; l && *l;) {
		char *eol = strchr(l, '\n');
		if (eol)
			*eol = '\0';
		if (strncmp(l, "0::", 3) == 0)
			return below(l + 3, rel);
		l = eol ? eol + 1 : NULL;
	}
	return false;
}

#define CG_DEPTH 32 /* child cgroups deeper than this are not visited */

/* Calls fn(dirfd of the child cgroup, its name) for each child cgroup. */
static int each_child(int dirfd, int (*fn)(int fd, const char *name, void *ud), void *ud)
{
	int dfd = open_retry(dirfd, ".", O_RDONLY | O_DIRECTORY);
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
	int fd = open_retry(dirfd, "cgroup.procs", O_RDONLY);
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
	int fd = open_retry(dfd, name, O_RDONLY | O_DIRECTORY);
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
	ssize_t n = read_file(dirfd, "cgroup.events", buf, sizeof buf);
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
	int fd = open_retry(parentfd, name, O_RDONLY | O_DIRECTORY);
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
	int fd = open_retry(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY);
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
	int pfd = open_retry(AT_FDCWD, parent, O_RDONLY | O_DIRECTORY);
	if (pfd < 0)
		return -errno;
	rc = hum_cgroup_remove(pfd, slash + 1);
	close(pfd);
	return rc == -ENOENT ? 0 : rc;
}

/* ---- starting a child inside a cgroup -------------------------------------- */

/* struct clone_args of <linux/sched.h> (including it next to <sched.h>
 * redefines glibc's CLONE_* macros). */
struct cg_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		set_tid, set_tid_size, cgroup;
};
#define CG_CLONE_VM 0x100ULL
#define CG_CLONE_VFORK 0x4000ULL
#define CG_CLONE_INTO_CGROUP 0x200000000ULL

#define CG_STR_(x) #x
#define CG_STR(x) CG_STR_(x)

#if defined(__x86_64__) || defined(__aarch64__)
#define CG_TRAMPOLINE 1
/* long hum_cg_clone3(struct cg_clone_args *, size_t): clone3, returning
 * twice like vfork.  x86-64: the return address is popped into rdx (which
 * the syscall preserves) before the call, so the child, sharing the stack,
 * cannot overwrite it for the parent; the parent pushes it back and
 * returns; the child jumps to it, touching neither the stack nor a shadow
 * stack.  arm64: the return address is in x30, a register, so a plain
 * svc/ret is already safe. */
long hum_cg_clone3(struct cg_clone_args *args, size_t size)
	__attribute__((returns_twice, visibility("hidden")));
#if defined(__x86_64__)
__asm__(".text\n"
	".globl hum_cg_clone3\n"
	".hidden hum_cg_clone3\n"
	".type hum_cg_clone3, @function\n"
	"hum_cg_clone3:\n"
	"	popq %rdx\n"
	"	movl $" CG_STR(SYS_clone3) ", %eax\n"
	"	syscall\n"
	"	testq %rax, %rax\n"
	"	jz 1f\n"
	"	pushq %rdx\n"
	"	ret\n"
	"1:	jmp *%rdx\n"
	".size hum_cg_clone3, .-hum_cg_clone3\n");
#else
__asm__(".text\n"
	".globl hum_cg_clone3\n"
	".hidden hum_cg_clone3\n"
	".type hum_cg_clone3, %function\n"
	"hum_cg_clone3:\n"
	"	mov x8, #" CG_STR(SYS_clone3) "\n"
	"	svc #0\n"
	"	ret\n"
	".size hum_cg_clone3, .-hum_cg_clone3\n");
#endif
#endif

typedef struct cg_child {
	const hum_cgroup_exec *x;
	volatile int err, step; /* written by the child before it exits */
} cg_child;

/* The kernel's struct sigaction: all zero is SIG_DFL, no flags, no mask
 * (whether or not the architecture has sa_restorer). */
struct cg_ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static long cg_dup(int from, int to)
{
	if (from == to) /* keep it open across exec */
		return syscall(SYS_fcntl, to, F_SETFD, 0);
	return syscall(SYS_dup3, from, to, 0);
}

/* The child, between clone3 and execve, on the parent's stack and memory:
 * raw system calls only, no sanitizer runtime, writes only to c. */
__attribute__((noreturn, noinline, no_sanitize("address", "thread", "undefined")))
static void cg_child_main(cg_child *c)
{
	const hum_cgroup_exec *x = c->x;
	static const struct cg_ksigaction dfl;
	int step = HUM_CG_SETUP;
	/* Every disposition to SIG_DFL (the child has its own table: no
	 * CLONE_SIGHAND), while every signal is still blocked. */
	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, (size_t)8);
	if (syscall(SYS_setsid) < 0)
		goto fail;
	if (x->cwd && syscall(SYS_chdir, x->cwd) != 0) {
		step = HUM_CG_CHDIR;
		goto fail;
	}
	long in = x->in_fd;
	if (in < 0 && (in = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		goto fail;
	if (cg_dup((int)in, 0) < 0 || cg_dup(x->out_fd, 1) < 0 || cg_dup(x->err_fd, 2) < 0)
		goto fail;
	/* hum's fds are CLOEXEC; this drops fds hum inherited without it */
	if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
		for (int fd = 3; fd < 4096; fd++)
			syscall(SYS_close, fd);
	static const uint64_t none;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
	syscall(SYS_execve, x->path, x->argv, x->envp);
	step = HUM_CG_EXEC;
fail:
	c->err = errno;
	c->step = step;
	syscall(SYS_exit_group, 127);
	__builtin_unreachable();
}

int hum_cgroup_spawn(const hum_cgroup_exec *x, pid_t *pid, int *step)
{
	*pid = 0;
#ifndef CG_TRAMPOLINE
	*step = HUM_CG_CLONE;
	return -ENOSYS;
#else
	cg_child c = { x, 0, 0 };
	struct cg_clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CG_CLONE_VM | CG_CLONE_VFORK | CG_CLONE_INTO_CGROUP;
	ca.exit_signal = SIGCHLD;
	ca.cgroup = (uint64_t)x->cgroup_fd;
	/* Every signal blocked across the clone, glibc's internal ones too
	 * (pthread_sigmask would leave them): a handler of hum's must never
	 * run in the child, on borrowed memory.  The child unblocks after it
	 * reset every disposition. */
	uint64_t all = ~0ull, old = 0;
	int saved = errno;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof all);
	long r = hum_cg_clone3(&ca, sizeof ca);
	if (r == 0)
		cg_child_main(&c);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, sizeof old);
	errno = saved; /* the child shared it */
	if (r < 0) {
		*step = HUM_CG_CLONE;
		return (int)r;
	}
	/* CLONE_VFORK: the child has exec'd or exited by now. */
	if (c.err) {
		while (waitpid((pid_t)r, NULL, 0) < 0 && errno == EINTR)
			;
		*step = c.step;
		return -c.err;
	}
	*pid = (pid_t)r;
	return 0;
#endif
}

/* ---- the supervisor's cgroups ------------------------------------------------- */

static void run_name(char buf[static 32], uint32_t id, uint32_t run)
{
	snprintf(buf, 32, "%u.%u", id, run);
}

static void ino_cb(struct ev_loop *loop, ev_io *w, int revents);

/* Tops beside ours left by a hum that died together with its sentinel
 * (both SIGKILLed: `pkill -9 -f`, which matches the sentinel's command
 * line too): "hum-<pid namespace>-<pid>-..." of our pid namespace whose pid
 * is gone.  What is in one is killed and it is removed, briefly (1 s). */
static void remove_stale(hum_sup *s, const char *parent, unsigned long ns)
{
	DIR *d = opendir(parent);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		unsigned long ens;
		int pid, n = 0;
		if (e->d_type != DT_DIR || sscanf(e->d_name, "hum-%lu-%d-%*x-%*u%n", &ens, &pid, &n) != 2 ||
		    n == 0 || e->d_name[n] != '\0' || ens != ns || pid <= 0 || pid == getpid() ||
		    kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		char dir[PATH_MAX];
		if ((size_t)snprintf(dir, sizeof dir, "%s/%s", parent, e->d_name) >= sizeof dir)
			continue;
		int rc = hum_cgroup_destroy(dir, 1.0);
		sup_log(s, NULL, "cgroup: %s, left by hum %d killed with its sentinel: %s", dir, pid,
			     rc == 0 ? "removed" : strerror(-rc));
	}
	closedir(d);
}

/* The top as name under the cgroup dir/rel; true if made and opened. */
static bool make_top(hum_sup *s, const char *dir, const char *rel, const char *name)
{
	hum_cgroups *c = &s->cg;
	if (!join(c->dir, sizeof c->dir, dir, "/", name) ||
	    !join(c->rel, sizeof c->rel, strcmp(rel, "/") == 0 ? "" : rel, "/", name))
		return false;
	if (mkdir(c->dir, 0755) != 0) {
		if (errno != EACCES && errno != EPERM && errno != EROFS && errno != ENOENT)
			sup_log(s, NULL, "cgroup: mkdir %s: %s", c->dir, strerror(errno));
		return false;
	}
	c->top_fd = open_retry(AT_FDCWD, c->dir, O_RDONLY | O_DIRECTORY);
	if (c->top_fd < 0) {
		sup_log(s, NULL, "cgroup: open %s: %s", c->dir, strerror(errno));
		rmdir(c->dir);
		return false;
	}
	return true;
}

void sup_cgroup_init(hum_sup *s)
{
	hum_cgroups *c = &s->cg;
	c->top_fd = c->ino_fd = -1;
	c->dir[0] = c->rel[0] = '\0';
	const char *off = getenv("HUM_CGROUP");
	if (off && (strcmp(off, "off") == 0 || strcmp(off, "0") == 0 || strcmp(off, "no") == 0))
		return;
	hum_cgroup_where *w = malloc(sizeof *w);
	if (w == NULL || hum_cgroup_where_self(w) < 0) {
		free(w);
		return;
	}
	/* "hum-<pid namespace>-<pid>-<ms>-<n>": the token prefix without its
	 * dot, and the namespace its pid is in (remove_stale) */
	struct stat st;
	unsigned long ns = stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long)st.st_ino : 0;
	char name[128];
	size_t pl = strlen(s->prefix);
	if (pl > 0 && (size_t)snprintf(name, sizeof name, "hum-%lu-%.*s", ns, (int)(pl - 1), s->prefix) < sizeof name &&
	    !make_top(s, w->self, w->self_rel, name) && strcmp(w->self, w->mnt) != 0)
		make_top(s, w->mnt, w->mnt_rel, name);
	free(w);
	if (c->top_fd >= 0) {
		char parent[PATH_MAX];
		memcpy(parent, c->dir, sizeof parent);
		*strrchr(parent, '/') = '\0'; /* c->dir is <parent>/<name> */
		remove_stale(s, parent, ns);
	}
	if (c->top_fd < 0) {
		c->dir[0] = c->rel[0] = '\0';
		return;
	}
	c->placing = true;
	s->sentinel.cgroup = c->dir; /* hum_sup_new starts it after this */
	c->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (c->ino_fd >= 0) {
		ev_io_init(&c->ino_w, ino_cb, c->ino_fd, EV_READ);
		ev_io_start(s->loop, &c->ino_w);
		ev_unref(s->loop); /* removals must not keep ev_run going */
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

int sup_cgroup_open(hum_sup *s, uint32_t id, uint32_t run)
{
	hum_cgroups *c = &s->cg;
	if (!c->placing)
		return 0;
	char name[32];
	run_name(name, id, run);
	if (mkdirat(c->top_fd, name, 0755) != 0 && errno != EEXIST) {
		sup_log(s, NULL, "cgroup: mkdir %s/%s: %s", c->dir, name, strerror(errno));
		return 0;
	}
	int fd = open_retry(c->top_fd, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		sup_log(s, NULL, "cgroup: open %s/%s: %s", c->dir, name, strerror(errno));
		return 0;
	}
	return fd; /* > 2: hum_sup_new keeps 0, 1 and 2 open */
}

bool sup_cgroup_spawned(hum_sup *s, uint32_t id, uint32_t run, int fd, bool started, int cg_err)
{
	if (fd <= 0)
		return false;
	close(fd);
	if (cg_err) {
		/* Placement is all or nothing per run, and what failed once
		 * (no clone3, no permission, a threaded cgroup) fails again. */
		s->cg.placing = false;
		sup_log(s, NULL, "cgroup: clone3 into %s: %s; new processes are found by "
			     "token, session and parentage instead", s->cg.dir, strerror(cg_err));
	}
	if (!started || cg_err) {
		sup_cgroup_release(s, id, run);
		return false;
	}
	return true;
}

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
		join(rel, len, c->rel, "", NULL);
		return open_retry(c->top_fd, ".", O_RDONLY | O_DIRECTORY);
	}
	char name[32];
	run_name(name, id, run);
	if (!join(rel, len, c->rel, "/", name)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	return open_retry(c->top_fd, name, O_RDONLY | O_DIRECTORY);
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

bool sup_cgroup_holds_run(const hum_sup *s, uint32_t id, uint32_t run, pid_t pid)
{
	char rel[PATH_MAX], name[32];
	run_name(name, id, run);
	return s->cg.rel[0] && join(rel, sizeof rel, s->cg.rel, "/", name) && hum_cgroup_holds(pid, rel);
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
	run_name(name, id, run);
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
static void ino_cb(struct ev_loop *loop, ev_io *w, int revents)
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
				run_name(name, c->pending[i].id, c->pending[i].run);
				if ((ev->mask & IN_IGNORED) || hum_cgroup_remove(c->top_fd, name) != -EBUSY)
					pending_drop(c, i);
				break;
			}
		}
	}
	for (size_t i = c->npending; all && i-- > 0;) {
		char name[32];
		run_name(name, c->pending[i].id, c->pending[i].run);
		if (hum_cgroup_remove(c->top_fd, name) != -EBUSY) {
			inotify_rm_watch(c->ino_fd, c->pending[i].wd);
			pending_drop(c, i);
		}
	}
}

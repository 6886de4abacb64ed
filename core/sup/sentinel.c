/*
 * sentinel.c — the kill -9 guard and the HUM_TOKEN scan (see sentinel.h).
 *
 * Owns: the sentinel process and the write end of its pipe.  Wire format:
 * native int32 records, each written with one write(2) (4 bytes < PIPE_BUF,
 * so records never interleave or split): pgid > 0 adds a group, -pgid forgets
 * it, 0 disarms the group kills.  The sentinel keeps the groups in a static
 * bitmap indexed by pgid (PID_MAX_LIMIT bits = 512 KiB of bss, untouched and
 * so free in hum; in the sentinel only the pages of recorded pgids are
 * touched).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cgroup.h"
#include "state/atomic.h"
#include "lineage.h"
#include "sentinel.h"

#define PGID_LIMIT (1u << 22) /* PID_MAX_LIMIT on 64-bit Linux */
#define TOKEN_KEY "HUM_TOKEN="
#define TOKEN_KEYLEN 10
#define VALUE_MAX 128

static uint64_t groups[PGID_LIMIT / 64]; /* the sentinel's only state */

/* ---- small async-signal-safe helpers ----------------------------------- */

static ssize_t read_retry(int fd, void *buf, size_t n)
{
	ssize_t r;
	do
		r = read(fd, buf, n);
	while (r < 0 && errno == EINTR);
	return r;
}

/* Finds HUM_TOKEN=... in the NUL-separated environ file fd; copies the value
 * into val (NUL terminated) and returns its length, or -1. */
static int environ_token(int fd, char *val)
{
	char buf[4096];
	size_t k = 0;     /* bytes of "HUM_TOKEN=" matched at entry start */
	size_t vlen = 0;
	int skipping = 0; /* inside an entry that is not ours */
	ssize_t n;
	while ((n = read_retry(fd, buf, sizeof buf)) > 0) {
		for (ssize_t i = 0; i < n;) {
			if (skipping) {
				char *z = memchr(buf + i, '\0', (size_t)(n - i));
				if (z == NULL)
					break;
				i = z - buf + 1;
				skipping = 0;
				k = vlen = 0;
				continue;
			}
			char c = buf[i++];
			if (k < TOKEN_KEYLEN) {
				if (c == TOKEN_KEY[k])
					k++;
				else if (c == '\0')
					k = 0;
				else
					skipping = 1;
			} else if (c == '\0') {
				val[vlen] = '\0';
				return (int)vlen;
			} else if (vlen < VALUE_MAX - 1) {
				val[vlen++] = c;
			} else {
				skipping = 1; /* absurdly long: not one of ours */
			}
		}
	}
	if (k == TOKEN_KEYLEN && n == 0) { /* last entry without its NUL */
		val[vlen] = '\0';
		return (int)vlen;
	}
	return -1;
}

static int open_environ(int dirfd, const char *pidname)
{
	char path[32];
	size_t l = strlen(pidname);
	if (l > 16)
		return -1;
	memcpy(path, pidname, l);
	memcpy(path + l, "/environ", 9);
	int fd;
	do
		fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	return fd;
}

int hum_token_scan(const char *prefix, hum_token_fn fn, void *ud)
{
	return hum_token_scan_range(prefix, 0, 0, fn, ud);
}

typedef struct scan {
	const char *prefix;
	size_t plen;
	hum_token_fn fn;
	void *ud;
	int matches;
} scan;

static int scan_one(int procfd, const char *name, pid_t pid, void *ud)
{
	scan *sc = ud;
	int fd = open_environ(procfd, name);
	if (fd < 0)
		return 0; /* gone, or not ours to read */
	char val[VALUE_MAX];
	int vlen = environ_token(fd, val);
	close(fd);
	if (vlen < 0 || (size_t)vlen < sc->plen || memcmp(val, sc->prefix, sc->plen) != 0)
		return 0;
	sc->matches++;
	return sc->fn && sc->fn(pid, val, (size_t)vlen, sc->ud);
}

int hum_token_scan_range(const char *prefix, pid_t lo, pid_t hi, hum_token_fn fn, void *ud)
{
	scan sc = { prefix, strlen(prefix), fn, ud, 0 };
	int rc = hum_lineage_each(lo, hi, scan_one, &sc);
	return rc < 0 ? rc : sc.matches;
}

int hum_token_of(pid_t pid, char *val, size_t len)
{
	char path[48], v[VALUE_MAX];
	int fd = open(hum_lineage_path(path, pid, "environ"), O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	int vlen = environ_token(fd, v);
	close(fd);
	if (vlen < 0 || (size_t)vlen >= len)
		return -ENOENT;
	memcpy(val, v, (size_t)vlen + 1);
	return vlen;
}

/* Whether pid (held through a pidfd by the caller, or not) carries
 * HUM_TOKEN=value right now. */
static int carries(pid_t pid, const char *value, size_t len)
{
	char val[VALUE_MAX];
	int vlen = hum_token_of(pid, val, sizeof val);
	return vlen >= 0 && (size_t)vlen == len && memcmp(val, value, len) == 0;
}

int hum_token_kill(pid_t pid, const char *value, size_t len, int sig)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	HUM_TSAN_FD_CREATED();
	if (pfd < 0 && errno != ENOSYS)
		return -errno;
	/* With the pidfd held, the pid cannot name another process while we
	 * look at its environment and signal it. */
	int rc = -ESRCH;
	if (carries(pid, value, len)) {
		long r = pfd >= 0 ? syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0)
				  : kill(pid, sig);
		rc = r == 0 ? 0 : -errno;
	}
	if (pfd >= 0)
		close(pfd);
	return rc;
}

int hum_token_pidfd(pid_t pid, const char *value, size_t len)
{
	/* pidfd_open sets close-on-exec: no child inherits it. */
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	HUM_TSAN_FD_CREATED();
	if (pfd < 0)
		return -errno;
	if (carries(pid, value, len))
		return pfd;
	close(pfd);
	return -ESRCH;
}

/* ---- the sentinel process ------------------------------------------------ */

static int sentinel_kill(pid_t pid, const char *value, size_t len, void *ud)
{
	int *killed = ud;
	if (hum_token_kill(pid, value, len, SIGKILL) == 0)
		(*killed)++;
	return 0;
}

__attribute__((noreturn)) static void sentinel_main(int rfd, const char *prefix, const char *cgroup)
{
	static const int ignored[] = { SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGPIPE, SIGTSTP,
				       SIGTTIN, SIGTTOU, SIGUSR1, SIGUSR2, SIGALRM };
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = SIG_IGN;
	for (size_t i = 0; i < sizeof ignored / sizeof ignored[0]; i++)
		sigaction(ignored[i], &sa, NULL);
	sigset_t none;
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	setsid(); /* out of hum's session: terminal and group signals miss us */
	prctl(PR_SET_NAME, "hum-sentinel", 0, 0, 0);
	if (chdir("/") != 0) {
		/* keep going: only a busy mount point is at stake */
	}
	/* Keep only the pipe: not hum's stdout (a reader would never see EOF),
	 * not other sentinels' write ends, not children's pipes. */
	if (rfd != 3) {
		dup2(rfd, 3);
		rfd = 3;
	}
	int nul = open("/dev/null", O_RDWR);
	if (nul >= 0) {
		dup2(nul, 0), dup2(nul, 1), dup2(nul, 2);
	}
	if (syscall(SYS_close_range, 4u, ~0u, 0u) != 0)
		for (int fd = 4; fd < 65536; fd++)
			close(fd);

	int armed = 1;
	int32_t rec[1024];
	size_t have = 0; /* bytes in rec */
	for (;;) {
		ssize_t n = read_retry(rfd, (char *)rec + have, sizeof rec - have);
		if (n <= 0)
			break; /* EOF: hum is gone (or the pipe broke: same thing) */
		have += (size_t)n;
		size_t whole = have / sizeof rec[0];
		for (size_t i = 0; i < whole; i++) {
			int32_t v = rec[i];
			uint32_t g = (uint32_t)(v < 0 ? -(int64_t)v : v);
			if (v == 0)
				armed = 0;
			else if (g < PGID_LIMIT && v > 0)
				groups[g / 64] |= 1ull << (g % 64);
			else if (g < PGID_LIMIT)
				groups[g / 64] &= ~(1ull << (g % 64));
		}
		have -= whole * sizeof rec[0];
		if (have)
			memmove(rec, (char *)rec + whole * sizeof rec[0], have);
	}
	/* Runs without a cgroup (lineage.h): the recorded groups' sessions
	 * and every descendant of their members, computed while the mains
	 * still live (killing one re-parents its children away). */
	if (armed)
		hum_lineage_kill_sessions(groups, PGID_LIMIT);
	/* Runs with one (cgroup.h): one write kills them all, wherever they
	 * went; waiting for them and removing the cgroups comes last. */
	int cgfd = cgroup ? open(cgroup, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
	if (cgfd >= 0) {
		hum_cgroup_kill(cgfd);
		close(cgfd);
	}
	if (armed)
		for (uint32_t w = 0; w < PGID_LIMIT / 64; w++)
			for (uint64_t bits = groups[w]; bits; bits &= bits - 1)
				kill(-(pid_t)(w * 64 + (uint32_t)__builtin_ctzll(bits)), SIGKILL);
	/* Processes can fork while we scan; rescan until a pass finds none. */
	for (int pass = 0; pass < 20; pass++) {
		int killed = 0;
		if (hum_token_scan(prefix, sentinel_kill, &killed) <= 0)
			break;
		/* Give the killed (or already dying) ones a moment to go. */
		struct timespec ts = { 0, (killed ? 2 : 20) * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	if (cgfd >= 0)
		hum_cgroup_destroy(cgroup, 5.0);
	_exit(0);
}

int hum_sentinel_start(hum_sentinel *s, const char *prefix)
{
	char pfx[VALUE_MAX];
	size_t l = strlen(prefix);
	if (l >= sizeof pfx)
		return -EINVAL;
	memcpy(pfx, prefix, l + 1);
	int p[2];
	if (pipe2(p, O_CLOEXEC) != 0)
		return -errno;
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return -e;
	}
	if (pid == 0) /* the strings are in the child's copy of our memory */
		sentinel_main(p[0], pfx, s->cgroup);
	close(p[0]);
	fcntl(p[1], F_SETFL, O_NONBLOCK); /* never block the loop on it */
	s->pid = pid;
	s->fd = p[1];
	return 0;
}

static int send_rec(hum_sentinel *s, int32_t v)
{
	if (s->fd < 0)
		return -EBADF;
	ssize_t n;
	do
		n = write(s->fd, &v, sizeof v);
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof v)
		return 0;
	return n < 0 ? -errno : -EIO;
}

int hum_sentinel_add(hum_sentinel *s, pid_t pgid) { return send_rec(s, (int32_t)pgid); }
int hum_sentinel_forget(hum_sentinel *s, pid_t pgid) { return send_rec(s, -(int32_t)pgid); }
int hum_sentinel_disarm(hum_sentinel *s) { return send_rec(s, 0); }

void hum_sentinel_stop(hum_sentinel *s)
{
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
	if (s->pid > 0) {
		/* ECHILD: libev's SIGCHLD handling reaped it already. */
		while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	s->pid = 0;
}

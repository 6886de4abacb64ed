/*
 * lineage.c — walking /proc by parent, group and session (see lineage.h).
 *
 * Owns the /proc directory walk that the token scan (sentinel.c) and the
 * session and parentage passes share, and the sentinel's bitmap of the
 * processes it is about to kill (static: 512 KiB of bss, untouched and so
 * free in hum; only touched pages cost, in the sentinel).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "lineage.h"
#include "state/atomic.h"

#define KIN_LIMIT (1u << 22) /* PID_MAX_LIMIT on 64-bit Linux */
#define PINS 4096            /* pidfds held at once by the sentinel */

static uint64_t kin[KIN_LIMIT / 64]; /* the sentinel's set to kill */

static int has(const uint64_t *set, uint32_t limit, pid_t pid)
{
	return pid > 0 && (uint32_t)pid < limit && (set[(uint32_t)pid / 64] >> ((uint32_t)pid % 64) & 1);
}

static int in_range(unsigned pid, pid_t lo, pid_t hi)
{
	if (lo <= 0)
		return 1;
	if (lo <= hi)
		return pid >= (unsigned)lo && pid <= (unsigned)hi;
	return pid >= (unsigned)lo || pid <= (unsigned)hi;
}

int hum_lineage_each(pid_t lo, pid_t hi, int (*fn)(int procfd, const char *name, pid_t pid, void *ud),
		     void *ud)
{
	int dfd;
	do
		dfd = open("/proc", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	while (dfd < 0 && errno == EINTR);
	if (dfd < 0)
		return -errno;
	pid_t self = getpid();
	int seen = 0, stop = 0;
	char dbuf[8192] __attribute__((aligned(8)));
	ssize_t n;
	while (!stop && (n = getdents64(dfd, dbuf, sizeof dbuf)) > 0) {
		for (ssize_t off = 0; off < n && !stop;) {
			struct dirent64 *d = (struct dirent64 *)(dbuf + off);
			off += d->d_reclen;
			const char *s = d->d_name;
			unsigned pid = 0;
			if (*s < '1' || *s > '9')
				continue;
			for (; *s >= '0' && *s <= '9'; s++)
				pid = pid * 10 + (unsigned)(*s - '0');
			if (*s != '\0' || (pid_t)pid == self || !in_range(pid, lo, hi))
				continue;
			seen++;
			stop = fn(dfd, d->d_name, (pid_t)pid, ud);
		}
	}
	close(dfd);
	return seen;
}

/* "pid (comm) S ppid pgrp session ...": comm may hold anything, up to the
 * last ')'. */
static int parse_stat(const char *buf, pid_t pid, hum_kin *k)
{
	const char *p = strrchr(buf, ')');
	if (p == NULL || p[1] != ' ' || p[2] == '\0')
		return -EINVAL;
	k->pid = pid;
	k->state = p[2];
	p += 3;
	long v[3];
	for (int i = 0; i < 3; i++) {
		while (*p == ' ')
			p++;
		int neg = *p == '-';
		p += neg;
		if (*p < '0' || *p > '9')
			return -EINVAL;
		long x = 0;
		while (*p >= '0' && *p <= '9')
			x = x * 10 + (*p++ - '0');
		v[i] = neg ? -x : x;
	}
	k->ppid = (pid_t)v[0];
	k->pgid = (pid_t)v[1];
	k->sid = (pid_t)v[2];
	return 0;
}

static int stat_at(int dirfd, const char *path, pid_t pid, hum_kin *k)
{
	int fd;
	do
		fd = openat(dirfd, path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -errno;
	char buf[512];
	ssize_t n;
	do
		n = read(fd, buf, sizeof buf - 1);
	while (n < 0 && errno == EINTR);
	int e = n < 0 ? errno : 0;
	close(fd);
	if (n <= 0)
		return e ? -e : -ESRCH;
	buf[n] = '\0';
	return parse_stat(buf, pid, k);
}

char *hum_lineage_path(char buf[static 48], pid_t pid, const char *file)
{
	char tmp[12], *p = buf + 6;
	unsigned v = (unsigned)pid;
	int n = 0;
	memcpy(buf, "/proc/", 6);
	do
		tmp[n++] = (char)('0' + v % 10);
	while ((v /= 10) != 0);
	while (n)
		*p++ = tmp[--n];
	*p++ = '/';
	size_t l = strlen(file);
	if (l > 24)
		l = 24;
	memcpy(p, file, l);
	p[l] = '\0';
	return buf;
}

int hum_lineage_stat(pid_t pid, hum_kin *k)
{
	char path[48];
	return stat_at(AT_FDCWD, hum_lineage_path(path, pid, "stat"), pid, k);
}

static int stat_of(int procfd, const char *name, pid_t pid, hum_kin *k)
{
	char path[32];
	size_t l = strlen(name);
	if (l > 16)
		return -EINVAL;
	memcpy(path, name, l);
	memcpy(path + l, "/stat", 6);
	return stat_at(procfd, path, pid, k);
}

/* A pidfd of pid if its stat satisfies ok now; -errno otherwise. */
static int pin(pid_t pid, int (*ok)(const hum_kin *k, void *ud), void *ud)
{
	int pfd = (int)syscall(SYS_pidfd_open, pid, 0);
	HUM_TSAN_FD_CREATED();
	if (pfd < 0)
		return -errno;
	hum_kin k;
	if (hum_lineage_stat(pid, &k) != 0 || !ok(&k, ud)) {
		close(pfd);
		return -ESRCH;
	}
	return pfd;
}

int hum_lineage_kill(pid_t pid, int (*ok)(const hum_kin *k, void *ud), void *ud, int sig)
{
	int pfd = pin(pid, ok, ud);
	if (pfd < 0)
		return pfd;
	int rc = syscall(SYS_pidfd_send_signal, pfd, sig, NULL, 0) == 0 ? 0 : -errno;
	close(pfd);
	return rc;
}

/* ---- hum's exit ------------------------------------------------------------ */

typedef struct escaped {
	pid_t self, spare, sid;
	int found, killed;
} escaped;

static int is_escaped(const hum_kin *k, void *ud)
{
	const escaped *e = ud;
	return k->ppid == e->self && k->pid != e->spare && k->sid != e->sid && k->state != 'Z';
}

static int kill_escaped(int procfd, const char *name, pid_t pid, void *ud)
{
	escaped *e = ud;
	hum_kin k;
	if (stat_of(procfd, name, pid, &k) != 0 || !is_escaped(&k, e))
		return 0;
	e->found++;
	e->killed += hum_lineage_kill(pid, is_escaped, e, SIGKILL) == 0;
	return 0;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

int hum_lineage_kill_escaped(pid_t self, pid_t spare, double timeout)
{
	escaped e = { self, spare, getsid(0), 0, 0 };
	double end = mono() + timeout;
	do {
		e.found = 0;
		if (hum_lineage_each(0, 0, kill_escaped, &e) < 0 || e.found == 0)
			break;
		/* the killed ones' children are re-parented to us as they die */
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	} while (mono() < end);
	return e.killed;
}

/* ---- the sentinel ------------------------------------------------------------- */

typedef struct sessions {
	const uint64_t *sid;
	uint32_t limit;
	int added;
	int pins[PINS];
	int npins, killed;
} sessions;

/* In one of the sessions, or a child of a process already in the set. */
static int is_kin(const hum_kin *k, void *ud)
{
	const sessions *s = ud;
	return k->state != 'Z' && (has(s->sid, s->limit, k->sid) || has(kin, KIN_LIMIT, k->ppid));
}

static int collect(int procfd, const char *name, pid_t pid, void *ud)
{
	sessions *s = ud;
	hum_kin k;
	if (has(kin, KIN_LIMIT, pid) || (uint32_t)pid >= KIN_LIMIT || stat_of(procfd, name, pid, &k) != 0 ||
	    !is_kin(&k, s))
		return 0;
	kin[(uint32_t)pid / 64] |= 1ull << ((uint32_t)pid % 64);
	s->added++;
	return 0;
}

static void kill_pins(sessions *s)
{
	for (int i = 0; i < s->npins; i++) {
		s->killed += syscall(SYS_pidfd_send_signal, s->pins[i], SIGKILL, NULL, 0) == 0;
		close(s->pins[i]);
	}
	s->npins = 0;
}

int hum_lineage_kill_sessions(const uint64_t *sessions_set, uint32_t limit)
{
	static sessions s; /* PINS ints: not on the stack */
	s.sid = sessions_set;
	s.limit = limit;
	s.npins = s.killed = 0;
	memset(kin, 0, sizeof kin);
	/* The set, to a fixed point: members of the sessions, their children,
	 * their children's children... (one more pass per generation). */
	for (int pass = 0; pass < 64; pass++) {
		s.added = 0;
		if (hum_lineage_each(0, 0, collect, &s) < 0 || s.added == 0)
			break;
	}
	/* Pin every member first, while every parent link still holds, then
	 * kill: a kill re-parents the victim's children away from the set. */
	for (uint32_t w = 0; w < KIN_LIMIT / 64; w++)
		for (uint64_t bits = kin[w]; bits; bits &= bits - 1) {
			pid_t pid = (pid_t)(w * 64 + (uint32_t)__builtin_ctzll(bits));
			int pfd = pin(pid, is_kin, &s);
			if (pfd == -EMFILE || pfd == -ENFILE) { /* out of fds: kill these first */
				kill_pins(&s);
				pfd = pin(pid, is_kin, &s);
			}
			if (pfd >= 0)
				s.pins[s.npins++] = pfd;
			if (s.npins == PINS)
				kill_pins(&s);
		}
	kill_pins(&s);
	return s.killed;
}

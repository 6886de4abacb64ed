/*
 * baseline.c — the floor hum is compared with: a minimal C supervisor, one
 * loop of posix_spawnp (the attributes hum uses: own session, empty signal
 * mask, default dispositions, stdin /dev/null, stdout/stderr pipes,
 * closefrom 3), poll() over a SIGCHLD signalfd and every pipe,
 * waitpid(WNOHANG) for every exited child, a child's pipes drained before
 * it counts as ended; output read 64 KiB at a time, split with memchr,
 * written as "HH:MM:SS name | line" in 256 KiB batches (M_FLOOD, M_STAMP;
 * M_SILENT only counts lines).  It runs as `sup_bench --base WORKLOAD ...`,
 * a process the driver starts exactly as it starts hum (run.c), so start-up,
 * CPU and RSS are measured alike; each workload's base_*() (burst.c,
 * flood.c, cycle.c, idle.c) is written on the calls below.  The baseline
 * does less than hum by design (no state, no snapshots, no Lua, no
 * sentinel, no descendant sweeps): it is the floor.
 *
 * One baseline per process: the state below is global, set up by b_init().
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sup_bench.h"

extern char **environ;

struct bstream {
	int fd;          /* -1 once closed */
	char *part;      /* partial last line */
	size_t plen, pcap;
};
struct bchild {
	pid_t pid;       /* 0 once reaped */
	int idx;
	char name[16];
	struct bstream s[2];
};

static int b_mode;
static int b_sfd;                 /* SIGCHLD (+ SIGTERM) signalfd */
static struct bchild *b_kids;
static int b_nkids, b_cap, b_live_pids, b_live_fds;
static char *b_out;               /* formatted output batch (flood) */
static size_t b_outlen;
#define B_OUTCAP (256 * 1024)
static char b_clock[16];          /* "HH:MM:SS " of this wakeup */
long b_lines;
double b_last_stamp;
int b_got_term;

static void b_flush(void)
{
	size_t off = 0;
	while (off < b_outlen) {
		ssize_t w = write(1, b_out + off, b_outlen - off);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		off += (size_t)w;
	}
	b_outlen = 0;
}

static void b_line(struct bchild *c, int stream, const char *l, size_t n)
{
	b_lines++;
	if (b_mode == M_STAMP) {
		char tmp[80];
		size_t k = n < sizeof tmp - 1 ? n : sizeof tmp - 1;
		memcpy(tmp, l, k);
		tmp[k] = 0;
		double a, b;
		if (sscanf(tmp, "%lf %lf", &a, &b) == 2)
			b_last_stamp = b;
	}
	if (b_mode == M_FLOOD || b_mode == M_STAMP) { /* printed, as hum does */
		size_t need = 9 + 16 + 3 + n + 1;
		if (b_outlen + need > B_OUTCAP)
			b_flush();
		if (need > B_OUTCAP)
			return;
		char *o = b_out + b_outlen;
		memcpy(o, b_clock, 9), o += 9;
		size_t nl = strlen(c->name);
		memcpy(o, c->name, nl), o += nl;
		*o++ = ' ', *o++ = stream ? '!' : '|', *o++ = ' ';
		memcpy(o, l, n), o += n;
		*o++ = '\n';
		b_outlen = (size_t)(o - b_out);
	}
}

/* Reads until EAGAIN or EOF; splits lines with memchr. */
static void b_drain(struct bchild *c, int k)
{
	struct bstream *s = &c->s[k];
	static char buf[65536];
	while (s->fd >= 0) {
		ssize_t r = read(s->fd, buf, sizeof buf);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN)
				return;
			r = 0;
		}
		if (r == 0) {
			if (s->plen)
				b_line(c, k, s->part, s->plen);
			s->plen = 0;
			close(s->fd);
			s->fd = -1;
			b_live_fds--;
			return;
		}
		const char *p = buf, *end = buf + r;
		while (p < end) {
			const char *nl = memchr(p, '\n', (size_t)(end - p));
			if (!nl) {
				size_t n = (size_t)(end - p);
				if (s->plen + n > s->pcap) {
					s->pcap = (s->plen + n) * 2;
					s->part = realloc(s->part, s->pcap);
				}
				memcpy(s->part + s->plen, p, n);
				s->plen += n;
				break;
			}
			if (s->plen) {
				size_t n = (size_t)(nl - p);
				if (s->plen + n > s->pcap) {
					s->pcap = (s->plen + n) * 2;
					s->part = realloc(s->part, s->pcap);
				}
				memcpy(s->part + s->plen, p, n);
				b_line(c, k, s->part, s->plen + n);
				s->plen = 0;
			} else {
				b_line(c, k, p, (size_t)(nl - p));
			}
			p = nl + 1;
		}
		if (r < (ssize_t)sizeof buf)
			return; /* short read: the pipe is empty for now */
	}
}

struct bchild *b_spawn(char *const argv[])
{
	if (b_nkids == b_cap) {
		b_cap = b_cap ? b_cap * 2 : 64;
		b_kids = realloc(b_kids, (size_t)b_cap * sizeof *b_kids);
	}
	struct bchild *c = &b_kids[b_nkids];
	memset(c, 0, sizeof *c);
	c->idx = b_nkids++;
	snprintf(c->name, sizeof c->name, "c%d", c->idx + 1);
	int po[2], pe[2];
	if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0)
		die("pipe2: %s", strerror(errno));
	fcntl(po[0], F_SETFL, O_NONBLOCK);
	fcntl(pe[0], F_SETFL, O_NONBLOCK);
	posix_spawnattr_t attr;
	posix_spawn_file_actions_t fa;
	sigset_t none, all;
	sigemptyset(&none);
	memset(&all, 0xff, sizeof all);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	int rc = posix_spawnp(&c->pid, argv[0], &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(po[1]);
	close(pe[1]);
	if (rc != 0)
		die("posix_spawn %s: %s", argv[0], strerror(rc));
	c->s[0].fd = po[0];
	c->s[1].fd = pe[0];
	b_live_pids++;
	b_live_fds += 2;
	return c;
}

/* Handles one poll wakeup's signals: reaps every exited child (draining its
 * pipes first).  Returns the number reaped. */
static int b_reap(void (*on_exit)(struct bchild *))
{
	struct signalfd_siginfo si[16];
	ssize_t r;
	while ((r = read(b_sfd, si, sizeof si)) > 0)
		for (size_t i = 0; i < (size_t)r / sizeof si[0]; i++)
			if (si[i].ssi_signo == SIGTERM)
				b_got_term = 1;
	int n = 0;
	for (;;) {
		int st;
		pid_t pid = waitpid(-1, &st, WNOHANG);
		if (pid <= 0)
			break;
		for (int i = b_nkids - 1; i >= 0; i--) {
			struct bchild *c = &b_kids[i];
			if (c->pid == pid) {
				b_drain(c, 0);
				b_drain(c, 1);
				c->pid = 0;
				b_live_pids--;
				n++;
				if (on_exit)
					on_exit(c);
				break;
			}
		}
	}
	return n;
}

/* One poll() wakeup: signals first, then pipes.  timeout_ms -1 = block.
 * Returns 1 if the signalfd was readable (sig_time: when poll returned). */
int b_wait(int timeout_ms, double *sig_time, void (*on_exit)(struct bchild *))
{
	static struct pollfd *pf;
	static int *who, pcap;
	int need = 1 + 2 * b_nkids;
	if (need > pcap) {
		pcap = need * 2;
		pf = realloc(pf, (size_t)pcap * sizeof *pf);
		who = realloc(who, (size_t)pcap * sizeof *who);
	}
	int n = 0;
	pf[n].fd = b_sfd, pf[n].events = POLLIN, who[n++] = -1;
	for (int i = 0; i < b_nkids; i++)
		for (int k = 0; k < 2; k++)
			if (b_kids[i].s[k].fd >= 0)
				pf[n].fd = b_kids[i].s[k].fd, pf[n].events = POLLIN, who[n++] = i * 2 + k;
	int r = poll(pf, (nfds_t)n, timeout_ms);
	double t = mono();
	if (r < 0 && errno != EINTR)
		die("poll: %s", strerror(errno));
	if (r <= 0)
		return 0;
	if (b_mode == M_FLOOD || b_mode == M_STAMP) {
		time_t now = time(NULL);
		struct tm tm;
		localtime_r(&now, &tm);
		snprintf(b_clock, sizeof b_clock, "%02d:%02d:%02d ", tm.tm_hour, tm.tm_min, tm.tm_sec);
	}
	for (int i = 1; i < n; i++)
		if (pf[i].revents)
			b_drain(&b_kids[who[i] / 2], who[i] % 2);
	int sig = 0;
	if (pf[0].revents) {
		sig = 1;
		if (sig_time)
			*sig_time = t;
		b_reap(on_exit);
	}
	if (b_outlen)
		b_flush();
	return sig;
}

/* Wakeups until every child is reaped and every pipe is at EOF; then what
 * is left of the output batch is written. */
void b_wait_all(void)
{
	while (b_live_pids > 0 || b_live_fds > 0)
		b_wait(-1, NULL, NULL);
	b_flush();
}

/* SIGTERM to the session of every child not reaped yet (each child leads
 * its own). */
void b_term_all(void)
{
	for (int i = 0; i < b_nkids; i++)
		if (b_kids[i].pid)
			kill(-b_kids[i].pid, SIGTERM);
}

void b_init(int mode)
{
	b_mode = mode;
	sigset_t ss;
	sigemptyset(&ss);
	sigaddset(&ss, SIGCHLD);
	sigaddset(&ss, SIGTERM);
	sigprocmask(SIG_BLOCK, &ss, NULL);
	b_sfd = signalfd(-1, &ss, SFD_NONBLOCK | SFD_CLOEXEC);
	if (b_sfd < 0)
		die("signalfd: %s", strerror(errno));
	if (mode == M_FLOOD || mode == M_STAMP)
		b_out = malloc(B_OUTCAP);
	struct rlimit rl;
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
	}
}

/* $SUP_OUT, where a baseline run writes its "key value" lines. */
FILE *b_outfile(void)
{
	const char *p = getenv("SUP_OUT");
	FILE *f = p ? fopen(p, "a") : NULL;
	if (!f)
		die("cannot open $SUP_OUT");
	return f;
}

/* user+sys CPU seconds of this process so far (children excluded). */
double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

/*
 * sup_bench.c — issue 4: the supervisor end to end, hum (`hum up -f
 * bench/sup_*.lua`) against a minimal C baseline measured in the same run.
 *
 * Cases (hum and baseline runs interleaved; each repeated 3 times and the
 * median reported):
 *   startup                 exec of the supervisor -> its first line of code
 *                           (hum: first line of the config; baseline: main)
 *   spawn-burst-N-running   exec -> all N (100, 500) `sleep 1000` children
 *                           running (hum: the N-th `start` reaction; baseline:
 *                           the N-th posix_spawn returned)
 *   spawn-burst-N-stopped   stop request (hum: hum.shutdown(0) in that same
 *                           reaction) -> all N reaped and the supervisor
 *                           process exited (seen by the driver's pidfd)
 *   log-cpu, log-wall       4 children x `seq 1 1000000`, supervisor stdout
 *                           /dev/null: CPU (user+sys of all its threads,
 *                           children excluded; hum: os.clock() in the last
 *                           exit reaction, baseline: getrusage) and wall time,
 *                           per million lines; lines counted on both sides
 *   restart-latency         child that exits at once, restart always with
 *                           zero backoff: the child's last clock reading
 *                           before exit -> respawned (hum: the `start`
 *                           reaction; baseline: posix_spawn returned); 200
 *                           restarts per repetition; mean and p99
 *   restart-cpu             the same run: supervisor CPU (hum: os.clock(),
 *                           baseline: getrusage) from its first line to the
 *                           last restart, per restart
 *   exit-reaction           child sleeps 20 ms, reads CLOCK_MONOTONIC, writes
 *                           it to stdout and exits -> the reaction runs (hum:
 *                           Lua `exit` reaction; baseline: poll() woken by the
 *                           SIGCHLD signalfd); 100 exits; mean and p99
 *   exit-reaction-busy      the same while 500 unrelated `sleep` processes
 *                           exist on the machine (hum sweeps /proc on every
 *                           restart; see bench/RESULTS.md)
 *   idle-cpu, idle-wakeups, idle-rss
 *                           10 `sleep 1000` children for 10 s: CPU (sum of
 *                           /proc/PID/task/ * /schedstat, ns resolution) and
 *                           times scheduled over the window, VmRSS at its end
 *                           (hum: CPU includes the sentinel; its RSS is an
 *                           extra field)
 *
 * The baseline is this binary run as `sup_bench --base CASE ...`: one loop
 * of posix_spawnp (the attributes hum uses: own session, empty signal mask,
 * default dispositions, stdin /dev/null, stdout/stderr pipes, closefrom 3),
 * poll() over a SIGCHLD signalfd and every pipe, waitpid(WNOHANG) for every
 * exited child, a child's pipes drained before it counts as ended; output
 * read 64 KiB at a time, split with memchr, written as "HH:MM:SS name | line"
 * in 256 KiB batches.  Both supervisors are processes started by the driver
 * the same way (own process group, stdin /dev/null, $SUP_T0 = the driver's
 * CLOCK_MONOTONIC before fork), so start-up, CPU and RSS are measured alike.
 * The baseline does less than hum by design (no state, no snapshots, no
 * Lua, no sentinel, no descendant sweeps): it is the floor.
 *
 * hum: $HUM, else the `hum` beside this binary's directory (B/bench/sup_bench
 * -> B/hum).  Configs: bench/sup_{burst,flood,cycle,idle}.lua relative to the
 * current directory (bench/run.sh runs from the repository root) or in
 * $SUP_BENCH_DIR; they write "key value" lines to $SUP_OUT.
 *
 * Output: JSON lines {"case","impl","value","unit","runs",...} for both, a
 * {"case","ratio"} line per case (hum / baseline: above 1 means hum costs
 * more or is slower), then markdown tables.  HUM_BENCH_QUICK=1: smaller N,
 * shorter runs, one repetition (~9 s instead of ~50 s);
 * SUP_BENCH_CASES=burst,flood,restart,exit,busy,idle runs only those.
 * Every supervisor and child carries SUP_BENCH_MARK in its environment;
 * after each run and at the end, a process that still has it is reported and
 * killed, and the bench exits non-zero.
 *
 * Helper subcommands: --child-stamp SECONDS (sleeps, prints "start exit" in
 * monotonic seconds, exits 0), --base ... (the baseline).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "sup_bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

static char self_exe[PATH_MAX];

/* ==========================================================================
 * Child helper: --child-stamp SECONDS
 * ========================================================================== */
static int child_stamp(double s)
{
	double t_start = mono();
	if (s > 0)
		sleep_s(s);
	char buf[64];
	double t_exit = mono();
	int n = snprintf(buf, sizeof buf, "%.9f %.9f\n", t_start, t_exit);
	if (write(1, buf, (size_t)n) != n)
		_exit(1);
	_exit(0);
}

/* ==========================================================================
 * The baseline: one poll loop, posix_spawn, waitpid.
 * ========================================================================== */
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

enum { M_SILENT, M_FLOOD, M_STAMP };
static int b_mode;
static int b_sfd;                 /* SIGCHLD (+ SIGTERM) signalfd */
static struct bchild *b_kids;
static int b_nkids, b_cap, b_live_pids, b_live_fds;
static char *b_out;               /* formatted output batch (flood) */
static size_t b_outlen;
#define B_OUTCAP (256 * 1024)
static char b_clock[16];          /* "HH:MM:SS " of this wakeup */
static long b_lines;
static double b_last_stamp;       /* M_STAMP: exit time printed by the last child */
static int b_got_term;

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

static struct bchild *b_spawn(char *const argv[])
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
static int b_wait(int timeout_ms, double *sig_time, void (*on_exit)(struct bchild *))
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

static void b_init(int mode)
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

static FILE *b_outfile(void)
{
	const char *p = getenv("SUP_OUT");
	FILE *f = p ? fopen(p, "a") : NULL;
	if (!f)
		die("cannot open $SUP_OUT");
	return f;
}

static int base_burst(int n)
{
	double first = mono();
	b_init(M_SILENT);
	char *argv[] = { "sleep", "1000", NULL };
	for (int i = 0; i < n; i++)
		b_spawn(argv);
	double running = mono();
	double stop = mono();
	for (int i = 0; i < b_nkids; i++)
		kill(-b_kids[i].pid, SIGTERM);
	while (b_live_pids > 0 || b_live_fds > 0)
		b_wait(-1, NULL, NULL);
	double reaped = mono();
	FILE *f = b_outfile();
	fprintf(f, "first %.9f\nrunning %.9f\nstop %.9f\nreaped %.9f\n", first, running, stop, reaped);
	fclose(f);
	return 0;
}

static int base_flood(int k, long lines)
{
	double first = mono();
	b_init(M_FLOOD);
	char num[32];
	snprintf(num, sizeof num, "%ld", lines);
	char *argv[] = { "seq", "1", num, NULL };
	for (int i = 0; i < k; i++)
		b_spawn(argv);
	while (b_live_pids > 0 || b_live_fds > 0)
		b_wait(-1, NULL, NULL);
	b_flush();
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	double cpu = (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
		     (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
	FILE *f = b_outfile();
	fprintf(f, "first %.9f\ndone %.9f\ncpu %.9f\nlines %ld\n", first, mono(), cpu, b_lines);
	fclose(f);
	return 0;
}

/* cycle: one child at a time; respawned as soon as it is reaped.  Records
 * s (posix_spawn returned), w (poll woke for SIGCHLD), e (child's stamp). */
static double *cy_s, *cy_w, *cy_e;
static int cy_runs, cy_n;
static double cy_wake;
static char *cy_argv[4];

static void cy_exit(struct bchild *c)
{
	(void)c;
	cy_w[cy_n] = cy_wake;
	cy_e[cy_n] = b_last_stamp;
	cy_n++;
	if (cy_n < cy_runs) {
		b_spawn(cy_argv);
		cy_s[cy_n] = mono();
	}
}

static double self_cpu(void)
{
	struct rusage ru;
	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static int base_cycle(int runs, const char *sleep_arg)
{
	double first = mono(), cpu0 = self_cpu();
	b_init(M_STAMP);
	cy_runs = runs;
	cy_s = calloc((size_t)runs, sizeof(double));
	cy_w = calloc((size_t)runs, sizeof(double));
	cy_e = calloc((size_t)runs, sizeof(double));
	cy_argv[0] = self_exe, cy_argv[1] = "--child-stamp", cy_argv[2] = (char *)sleep_arg, cy_argv[3] = NULL;
	b_spawn(cy_argv);
	cy_s[0] = mono();
	while (cy_n < runs)
		b_wait(-1, &cy_wake, cy_exit);
	double cpu1 = self_cpu();
	FILE *f = b_outfile();
	fprintf(f, "first %.9f\ncpu0 %.6f\ncpu1 %.6f\n", first, cpu0, cpu1);
	for (int i = 0; i < runs; i++)
		fprintf(f, "s %.9f\nw %.9f\ne %.9f\n", cy_s[i], cy_w[i], cy_e[i]);
	fclose(f);
	return 0;
}

static int base_idle(int n)
{
	b_init(M_SILENT);
	char *argv[] = { "sleep", "1000", NULL };
	for (int i = 0; i < n; i++)
		b_spawn(argv);
	FILE *f = b_outfile();
	fprintf(f, "ready %.9f\n", mono());
	fclose(f);
	while (!b_got_term)
		b_wait(-1, NULL, NULL);
	for (int i = 0; i < b_nkids; i++)
		if (b_kids[i].pid)
			kill(-b_kids[i].pid, SIGTERM);
	while (b_live_pids > 0 || b_live_fds > 0)
		b_wait(-1, NULL, NULL);
	return 0;
}

static int base_main(int argc, char **argv)
{
	if (argc >= 3 && strcmp(argv[2], "burst") == 0 && argc == 4)
		return base_burst(atoi(argv[3]));
	if (argc >= 3 && strcmp(argv[2], "flood") == 0 && argc == 5)
		return base_flood(atoi(argv[3]), atol(argv[4]));
	if (argc >= 3 && strcmp(argv[2], "cycle") == 0 && argc == 5)
		return base_cycle(atoi(argv[3]), argv[4]);
	if (argc >= 3 && strcmp(argv[2], "idle") == 0 && argc == 4)
		return base_idle(atoi(argv[3]));
	die("usage: sup_bench --base burst N | flood K LINES | cycle RUNS SLEEP | idle N");
	return 2;
}

/* ==========================================================================
 * The driver.
 * ========================================================================== */
static char tmpdir[64];
static char mark[64];            /* SUP_BENCH_MARK value */
static const char *hum_bin;
static char cfg_dir[PATH_MAX / 2];

struct kv {
	char key[24];
	double val;
};
struct kvs {
	struct kv *v;
	int n;
};

static void kv_load(struct kvs *k, const char *path)
{
	k->v = NULL, k->n = 0;
	FILE *f = fopen(path, "r");
	if (!f)
		return;
	char line[256];
	int cap = 0;
	while (fgets(line, sizeof line, f)) {
		struct kv e;
		if (sscanf(line, "%23s %lf", e.key, &e.val) != 2)
			continue;
		if (k->n == cap) {
			cap = cap ? cap * 2 : 64;
			k->v = realloc(k->v, (size_t)cap * sizeof *k->v);
		}
		k->v[k->n++] = e;
	}
	fclose(f);
}

static int kv_has(const struct kvs *k, const char *key)
{
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->v[i].key, key) == 0)
			return 1;
	return 0;
}

static double kv_get(const struct kvs *k, const char *key)
{
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->v[i].key, key) == 0)
			return k->v[i].val;
	return NAN;
}

/* Every value of key, in order; returns the count. */
static int kv_all(const struct kvs *k, const char *key, double **out)
{
	int n = 0;
	*out = malloc(((size_t)k->n + 1) * sizeof(double));
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->v[i].key, key) == 0)
			(*out)[n++] = k->v[i].val;
	return n;
}

/* A supervisor run: hum or the baseline, in its own process group. */
struct run {
	pid_t pid;
	int pidfd;
	double t0, t_end;
	char out[128], log[128];
	int status;
	double own_ticks_s;  /* utime+stime of the process itself (from /proc, at exit) */
	int failed;
	struct kvs kv;
};

static int run_seq;

static void run_start(struct run *r, char *const argv[], const char *const envs[], int stdout_null)
{
	memset(r, 0, sizeof *r);
	snprintf(r->out, sizeof r->out, "%s/out.%d", tmpdir, run_seq);
	snprintf(r->log, sizeof r->log, "%s/log.%d", tmpdir, run_seq);
	run_seq++;
	unlink(r->out);
	char t0s[64];
	r->t0 = mono();
	snprintf(t0s, sizeof t0s, "%.9f", r->t0);
	pid_t pid = fork();
	if (pid < 0)
		die("fork: %s", strerror(errno));
	if (pid == 0) {
		setpgid(0, 0);
		setenv("SUP_T0", t0s, 1);
		setenv("SUP_OUT", r->out, 1);
		setenv("SUP_BENCH_MARK", mark, 1);
		setenv("SUP_CHILD", self_exe, 1);
		for (int i = 0; envs && envs[i]; i += 2)
			setenv(envs[i], envs[i + 1], 1);
		int dn = open("/dev/null", O_RDWR);
		int lg = open(r->log, O_WRONLY | O_CREAT | O_TRUNC, 0644);
		dup2(dn, 0);
		dup2(stdout_null ? dn : lg, 1);
		dup2(lg, 2);
		sigset_t none;
		sigemptyset(&none);
		sigprocmask(SIG_SETMASK, &none, NULL);
		execv(argv[0], argv);
		fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	setpgid(pid, pid);
	r->pid = pid;
	r->pidfd = (int)syscall(SYS_pidfd_open, pid, 0);
}

/* utime+stime (seconds) of pid from /proc/pid/stat; also works on a zombie. */
static double proc_ticks(pid_t pid)
{
	char p[64], buf[1024];
	snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return NAN;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return NAN;
	buf[n] = 0;
	char *s = strrchr(buf, ')');
	if (!s)
		return NAN;
	unsigned long ut = 0, st = 0;
	/* fields after ')': 3 state ... 14 utime 15 stime */
	if (sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return NAN;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/* Processes that still carry our marker (other than this one); with kill_them,
 * each is reported and SIGKILLed. */
static int sweep_leftovers(int kill_them)
{
	char want[96];
	int wl = snprintf(want, sizeof want, "SUP_BENCH_MARK=%s", mark);
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *de;
	int found = 0;
	static char buf[1 << 16];
	while ((de = readdir(d))) {
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid <= 0 || pid == getpid())
			continue;
		char q[64];
		snprintf(q, sizeof q, "/proc/%d/environ", (int)pid);
		int fd = open(q, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof buf);
		close(fd);
		for (ssize_t i = 0; i < n; i += (ssize_t)strlen(buf + i) + 1) {
			if (n - i >= wl && memcmp(buf + i, want, (size_t)wl) == 0 && buf[i + wl] == 0) {
				found++;
				if (!kill_them)
					break;
				char cmd[256] = "?";
				snprintf(q, sizeof q, "/proc/%d/cmdline", (int)pid);
				int cf = open(q, O_RDONLY);
				if (cf >= 0) {
					ssize_t m = read(cf, cmd, sizeof cmd - 1);
					close(cf);
					for (ssize_t j = 0; j < m - 1; j++)
						if (!cmd[j])
							cmd[j] = ' ';
					cmd[m > 0 ? m : 0] = 0;
				}
				fprintf(stderr, "sup_bench: left running: pid %d (%s); killing it\n", (int)pid, cmd);
				kill(pid, SIGKILL);
				break;
			}
		}
	}
	closedir(d);
	return found;
}

/* After a run: its processes must all be gone.  Waits up to 2 s for ones
 * that are still exiting (hum's sentinel ends right after hum), then
 * reports and kills what is left. */
static int leftovers_total;
static void check_leftovers(const char *what)
{
	double t0 = mono();
	int n;
	while ((n = sweep_leftovers(0)) > 0 && mono() - t0 < 2)
		sleep_s(0.005);
	if (n > 0) {
		fprintf(stderr, "sup_bench: after %s, %d process(es) still running 2 s after the supervisor exited\n", what, n);
		leftovers_total += sweep_leftovers(1);
	} else if (mono() - t0 > 0.05) {
		fprintf(stderr, "sup_bench: after %s, processes took %.0f ms to disappear\n", what, (mono() - t0) * 1e3);
	}
}

/* Waits for the run to exit (timeout: SIGTERM, then SIGKILL the group);
 * reads /proc before reaping; loads $SUP_OUT. */
static void run_wait(struct run *r, double timeout)
{
	double deadline = mono() + timeout;
	int killed = 0;
	for (;;) {
		siginfo_t si;
		memset(&si, 0, sizeof si);
		if (r->pidfd >= 0) {
			struct pollfd pf = { r->pidfd, POLLIN, 0 };
			double left = deadline - mono();
			int ms = left > 0 ? (int)(left * 1000) + 1 : 0;
			if (poll(&pf, 1, killed ? 1000 : ms) > 0) {
				r->t_end = mono();
				break;
			}
		} else {
			if (waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOHANG | WNOWAIT) == 0 && si.si_pid == r->pid) {
				r->t_end = mono();
				break;
			}
			sleep_s(0.0002);
			if (mono() < deadline)
				continue;
		}
		if (mono() >= deadline) {
			fprintf(stderr, "sup_bench: %s timed out; killing its process group\n", r->log);
			kill(-r->pid, killed ? SIGKILL : SIGTERM);
			killed++;
			r->failed = 1;
			deadline = mono() + 5;
		}
	}
	siginfo_t si;
	waitid(P_PID, (id_t)r->pid, &si, WEXITED | WNOWAIT);
	r->own_ticks_s = proc_ticks(r->pid);
	waitpid(r->pid, &r->status, 0);
	if (r->pidfd >= 0)
		close(r->pidfd);
	kv_load(&r->kv, r->out);
	check_leftovers(r->log);
}

static void run_free(struct run *r)
{
	free(r->kv.v);
	r->kv.v = NULL;
	r->kv.n = 0;
}

static void run_fail(struct run *r, const char *what)
{
	r->failed = 1;
	fprintf(stderr, "sup_bench: %s: %s (status %d); its output (%s):\n", what,
		WIFEXITED(r->status) ? "missing results" : "killed", r->status, r->log);
	FILE *f = fopen(r->log, "r");
	if (f) {
		char line[512];
		int n = 0;
		while (fgets(line, sizeof line, f) && n++ < 30)
			fprintf(stderr, "  %s", line);
		fclose(f);
	}
	run_free(r);
}

static void cfg_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", cfg_dir, name);
}

static void start_hum(struct run *r, const char *cfg, const char *const envs[], int stdout_null)
{
	char path[PATH_MAX];
	cfg_path(path, sizeof path, cfg);
	char *argv[] = { (char *)hum_bin, "up", "-f", path, NULL };
	run_start(r, argv, envs, stdout_null);
}

static void start_base(struct run *r, const char *a1, const char *a2, const char *a3)
{
	char *argv[] = { self_exe, "--base", (char *)a1, (char *)a2, (char *)a3, NULL };
	run_start(r, argv, NULL, 1);
}

/* ---- results ---- */
#define MAXRES 64
struct result {
	char name[48], unit[24], what[160];
	double hum, base;
	double hum_runs[8], base_runs[8];
	int nh, nb;
	char hum_extra[256], base_extra[256];
};
static struct result res[MAXRES];
static int nres;

static struct result *result(const char *name, const char *unit, const char *what)
{
	for (int i = 0; i < nres; i++)
		if (strcmp(res[i].name, name) == 0)
			return &res[i];
	struct result *x = &res[nres++];
	memset(x, 0, sizeof *x);
	snprintf(x->name, sizeof x->name, "%s", name);
	snprintf(x->unit, sizeof x->unit, "%s", unit);
	snprintf(x->what, sizeof x->what, "%s", what);
	x->hum = x->base = NAN;
	return x;
}

static void add_run(struct result *x, int is_hum, double v)
{
	if (is_hum && x->nh < 8)
		x->hum_runs[x->nh++] = v;
	if (!is_hum && x->nb < 8)
		x->base_runs[x->nb++] = v;
}

static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

static double median(const double *v, int n)
{
	if (n == 0)
		return NAN;
	double t[8];
	memcpy(t, v, (size_t)n * sizeof *t);
	qsort(t, (size_t)n, sizeof *t, dcmp);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

static void json_num(char *b, size_t n, double v)
{
	if (isnan(v) || isinf(v))
		snprintf(b, n, "null");
	else
		snprintf(b, n, "%.6g", v);
}

/* ---- cases ---- */
static int quick;
static int reps;

static void case_burst(int n, int first_burst)
{
	char ns[16], name[64];
	snprintf(ns, sizeof ns, "%d", n);
	const char *envs[] = { "SUP_N", ns, NULL };
	struct result *xu = result("startup", "ms", "exec of the supervisor -> its first line (config / main)");
	snprintf(name, sizeof name, "spawn-burst-%d-running", n);
	struct result *xr = result(name, "ms", "exec of the supervisor -> all N `sleep 1000` running");
	snprintf(name, sizeof name, "spawn-burst-%d-stopped", n);
	struct result *xs = result(name, "ms", "stop request -> all N reaped and the supervisor exited");
	for (int rep = 0; rep < reps; rep++) {
		for (int h = 1; h >= 0; h--) {
			struct run r;
			if (h)
				start_hum(&r, "sup_burst.lua", envs, 0);
			else
				start_base(&r, "burst", ns, NULL);
			run_wait(&r, 60 + n * 0.2);
			if (!kv_has(&r.kv, "running") || !kv_has(&r.kv, "stop")) {
				run_fail(&r, h ? "hum burst" : "baseline burst");
				continue;
			}
			add_run(xr, h, (kv_get(&r.kv, "running") - r.t0) * 1e3);
			add_run(xs, h, (r.t_end - kv_get(&r.kv, "stop")) * 1e3);
			if (first_burst)
				add_run(xu, h, (kv_get(&r.kv, "first") - r.t0) * 1e3);
			char *ex = h ? xs->hum_extra : xs->base_extra;
			double reaped = kv_get(&r.kv, "reaped");
			if (!isnan(reaped))
				snprintf(ex, sizeof xs->hum_extra, "\"all_exits_seen_ms\":%.3f,\"exit_status\":%d",
					 (reaped - kv_get(&r.kv, "stop")) * 1e3, WEXITSTATUS(r.status));
			run_free(&r);
		}
	}
}

static void case_flood(int k, long lines)
{
	char ks[16], ls[32];
	snprintf(ks, sizeof ks, "%d", k);
	snprintf(ls, sizeof ls, "%ld", lines);
	const char *envs[] = { "SUP_K", ks, "SUP_LINES", ls, NULL };
	struct result *x = result("log-cpu", "ms CPU / 1M lines",
				  "4 x `seq 1 1000000`, output to /dev/null: supervisor CPU (user+sys) per million lines");
	struct result *w = result("log-wall", "ms / 1M lines", "the same run: exec -> all lines handled, wall time per million lines");
	double total = (double)k * (double)lines;
	for (int rep = 0; rep < reps; rep++) {
		for (int h = 1; h >= 0; h--) {
			struct run r;
			if (h)
				start_hum(&r, "sup_flood.lua", envs, 1);
			else
				start_base(&r, "flood", ks, ls);
			run_wait(&r, 180);
			if (!kv_has(&r.kv, "cpu")) {
				run_fail(&r, h ? "hum flood" : "baseline flood");
				continue;
			}
			double seen = kv_get(&r.kv, "lines");
			add_run(x, h, kv_get(&r.kv, "cpu") * 1e3 / (total / 1e6));
			add_run(w, h, (kv_get(&r.kv, "done") - r.t0) * 1e3 / (total / 1e6));
			char *ex = h ? x->hum_extra : x->base_extra;
			snprintf(ex, sizeof x->hum_extra,
				 "\"lines_seen\":%.0f,\"lines_expected\":%.0f,\"cpu_s_at_exit_proc_ticks\":%.2f",
				 seen, total, r.own_ticks_s);
			if (seen != total)
				fprintf(stderr, "sup_bench: %s saw %.0f lines of %.0f\n", h ? "hum" : "baseline", seen, total);
			run_free(&r);
		}
	}
}

static double pct(double *v, int n, double p)
{
	if (n == 0)
		return NAN;
	qsort(v, (size_t)n, sizeof *v, dcmp);
	int i = (int)ceil(p * n) - 1;
	if (i < 0)
		i = 0;
	if (i >= n)
		i = n - 1;
	return v[i];
}

/* mode "restart": latency e[k] -> s[k+1]; mode "exit": e[k] -> w[k].
 * Mean and p99 per repetition; the reported value is the median over the
 * repetitions (a burst of load from elsewhere spoils one of them, not the
 * result); the extras give p50/min/max over all samples. */
/* extra: that many unrelated `sleep 1000` processes exist on the machine
 * during the runs (their own process group, killed afterwards). */
static void case_cycle(int restart, int runs, const char *sleep_arg, int extra)
{
	char rs[16];
	snprintf(rs, sizeof rs, "%d", runs);
	const char *envs[] = { "SUP_RUNS", rs, "SUP_SLEEP", sleep_arg, "SUP_MODE", restart ? "restart" : "exit", NULL };
	const char *base = restart ? "restart-latency" : extra ? "exit-reaction-busy" : "exit-reaction";
	char n1[48], n2[48];
	snprintf(n1, sizeof n1, "%s-mean", base);
	snprintf(n2, sizeof n2, "%s-p99", base);
	struct result *xm = result(n1, "us", restart
		? "child's clock before exit -> respawned (hum: `start` reaction; baseline: posix_spawn returned)"
		: extra ? "exit-reaction with 500 unrelated processes on the machine"
		: "child's clock before exit -> reaction runs (hum: Lua `exit` reaction; baseline: poll woke on SIGCHLD)");
	pid_t *others = extra ? calloc((size_t)extra, sizeof *others) : NULL;
	if (extra) {
		posix_spawnattr_t a;
		char *sargv[] = { "sleep", "1000", NULL };
		for (int i = 0; i < extra; i++) {
			posix_spawnattr_init(&a);
			posix_spawnattr_setflags(&a, POSIX_SPAWN_SETPGROUP);
			posix_spawnattr_setpgroup(&a, i ? others[0] : 0);
			int rc = posix_spawnp(&others[i], "sleep", NULL, &a, sargv, environ);
			posix_spawnattr_destroy(&a);
			if (rc != 0)
				die("posix_spawn sleep: %s", strerror(rc));
		}
	}
	struct result *xp = result(n2, "us", "the same, 99th percentile");
	struct result *xc = NULL;
	if (restart)
		xc = result("restart-cpu", "us CPU / restart",
			    "the restart run: supervisor CPU from its first line to the last restart, per restart");
	double *all[2] = { NULL, NULL };
	int nall[2] = { 0, 0 };
	for (int rep = 0; rep < reps; rep++) {
		for (int h = 1; h >= 0; h--) {
			struct run r;
			if (h)
				start_hum(&r, "sup_cycle.lua", envs, 1);
			else
				start_base(&r, "cycle", rs, sleep_arg);
			run_wait(&r, 60 + runs * 0.2);
			double *s, *w, *e;
			int ns = kv_all(&r.kv, "s", &s), nw = kv_all(&r.kv, "w", &w), ne = kv_all(&r.kv, "e", &e);
			int nlat = restart ? (ns < ne + 1 ? ns - 1 : ne) : (nw < ne ? nw : ne);
			if (nlat < runs - 1) {
				fprintf(stderr, "sup_bench: %s: %d samples of %d (s %d, w %d, e %d)\n", base, nlat, runs, ns, nw, ne);
				run_fail(&r, h ? "hum cycle" : "baseline cycle");
				free(s), free(w), free(e);
				continue;
			}
			all[h] = realloc(all[h], (size_t)(nall[h] + nlat) * sizeof(double));
			double *mine = all[h] + nall[h], sum = 0;
			for (int i = 0; i < nlat; i++) {
				double v = (restart ? s[i + 1] - e[i] : w[i] - e[i]) * 1e6;
				mine[i] = v;
				sum += v;
			}
			add_run(xm, h, sum / nlat);
			if (xc && kv_has(&r.kv, "cpu1"))
				add_run(xc, h, (kv_get(&r.kv, "cpu1") - kv_get(&r.kv, "cpu0")) * 1e6 / (runs - 1));
			double *tmp = malloc((size_t)nlat * sizeof *tmp);
			memcpy(tmp, mine, (size_t)nlat * sizeof *tmp);
			add_run(xp, h, pct(tmp, nlat, 0.99));
			free(tmp);
			nall[h] += nlat;
			free(s), free(w), free(e);
			run_free(&r);
		}
	}
	for (int h = 0; h < 2; h++) {
		double p50 = pct(all[h], nall[h], 0.50); /* sorts */
		char *ex = h ? xm->hum_extra : xm->base_extra;
		snprintf(ex, sizeof xm->hum_extra, "\"samples\":%d,\"p50_all\":%.1f,\"min_all\":%.1f,\"max_all\":%.1f",
			 nall[h], p50, nall[h] ? all[h][0] : NAN, nall[h] ? all[h][nall[h] - 1] : NAN);
		if (extra)
			snprintf(ex + strlen(ex), sizeof xm->hum_extra - strlen(ex), ",\"other_processes\":%d", extra);
		free(all[h]);
	}
	if (extra) {
		kill(-others[0], SIGKILL);
		for (int i = 0; i < extra; i++)
			waitpid(others[i], NULL, 0);
		free(others);
	}
}

/* CPU seconds of every thread of pid (schedstat), or ticks if that is
 * missing; *slices (optional): how many times its threads ran on a CPU. */
static double proc_cpu_s(pid_t pid, double *slices)
{
	if (slices)
		*slices = 0;
	char p[64];
	snprintf(p, sizeof p, "/proc/%d/task", (int)pid);
	DIR *d = opendir(p);
	if (!d)
		return NAN;
	double sum = 0;
	int ok = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		char q[320];
		snprintf(q, sizeof q, "/proc/%d/task/%s/schedstat", (int)pid, de->d_name);
		FILE *f = fopen(q, "r");
		if (!f)
			continue;
		unsigned long long ns, wait, cnt;
		if (fscanf(f, "%llu %llu %llu", &ns, &wait, &cnt) == 3) {
			sum += (double)ns * 1e-9, ok = 1;
			if (slices)
				*slices += (double)cnt;
		}
		fclose(f);
	}
	closedir(d);
	return ok ? sum : proc_ticks(pid);
}

static long proc_status_kb(pid_t pid, const char *key)
{
	char p[64], line[256];
	snprintf(p, sizeof p, "/proc/%d/status", (int)pid);
	FILE *f = fopen(p, "r");
	if (!f)
		return -1;
	long v = -1;
	size_t kl = strlen(key);
	while (fgets(line, sizeof line, f))
		if (strncmp(line, key, kl) == 0 && line[kl] == ':') {
			v = atol(line + kl + 1);
			break;
		}
	fclose(f);
	return v;
}

/* hum's sentinel: a child of hum running the same executable. */
static pid_t find_sentinel(pid_t hum)
{
	char exe[PATH_MAX], me[PATH_MAX], p[64];
	snprintf(p, sizeof p, "/proc/%d/exe", (int)hum);
	ssize_t n = readlink(p, me, sizeof me - 1);
	if (n <= 0)
		return 0;
	me[n] = 0;
	DIR *d = opendir("/proc");
	if (!d)
		return 0;
	struct dirent *de;
	pid_t found = 0;
	while ((de = readdir(d)) && !found) {
		pid_t pid = (pid_t)atoi(de->d_name);
		if (pid <= 0 || pid == hum)
			continue;
		char q[64], buf[512];
		snprintf(q, sizeof q, "/proc/%d/stat", (int)pid);
		FILE *f = fopen(q, "r");
		if (!f)
			continue;
		size_t k = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[k] = 0;
		char *s = strrchr(buf, ')');
		int ppid = 0;
		if (!s || sscanf(s + 2, "%*c %d", &ppid) != 1 || ppid != hum)
			continue;
		snprintf(q, sizeof q, "/proc/%d/exe", (int)pid);
		n = readlink(q, exe, sizeof exe - 1);
		if (n > 0) {
			exe[n] = 0;
			if (strcmp(exe, me) == 0)
				found = pid;
		}
	}
	closedir(d);
	return found;
}

static void case_idle(int n, double secs)
{
	char ns[16];
	snprintf(ns, sizeof ns, "%d", n);
	const char *envs[] = { "SUP_N", ns, NULL };
	struct result *xc = result("idle-cpu", "ms CPU / 10 s", "10 `sleep 1000` children, supervisor CPU over the window (hum: + sentinel)");
	struct result *xw = result("idle-wakeups", "per 10 s", "the same, times a supervisor thread was scheduled (schedstat)");
	struct result *xm = result("idle-rss", "MiB", "the same, VmRSS at the end of the window (hum: main process)");
	for (int h = 1; h >= 0; h--) {
		struct run r;
		if (h)
			start_hum(&r, "sup_idle.lua", envs, 0);
		else
			start_base(&r, "idle", ns, NULL);
		double deadline = mono() + 30;
		struct kvs kv = { 0 };
		while (mono() < deadline) {
			kv_load(&kv, r.out);
			int ok = kv_has(&kv, "ready");
			free(kv.v);
			if (ok)
				break;
			sleep_s(0.01);
		}
		sleep_s(0.5); /* let start-up work (reactions, snapshots) settle */
		pid_t sent = h ? find_sentinel(r.pid) : 0;
		double w0, w1, ws0 = 0, ws1 = 0;
		double c0 = proc_cpu_s(r.pid, &w0), s0 = sent ? proc_cpu_s(sent, &ws0) : 0;
		double t0 = mono();
		sleep_s(secs);
		double c1 = proc_cpu_s(r.pid, &w1), s1 = sent ? proc_cpu_s(sent, &ws1) : 0;
		double dt = mono() - t0;
		long rss = proc_status_kb(r.pid, "VmRSS");
		long srss = sent ? proc_status_kb(sent, "VmRSS") : 0;
		kill(r.pid, SIGTERM);
		run_wait(&r, 30);
		if (isnan(c0) || isnan(c1) || rss < 0) {
			run_fail(&r, h ? "hum idle" : "baseline idle");
			continue;
		}
		double cpu = (c1 - c0) + (s1 - s0);
		add_run(xc, h, cpu * 1e3 * 10.0 / dt);
		add_run(xm, h, (double)rss / 1024.0);
		add_run(xw, h, ((w1 - w0) + (ws1 - ws0)) * 10.0 / dt);
		char *ex = h ? xc->hum_extra : xc->base_extra;
		snprintf(ex, sizeof xc->hum_extra, "\"window_s\":%.2f,\"cpu_main_ms\":%.3f,\"cpu_sentinel_ms\":%.3f", dt,
			 (c1 - c0) * 1e3, (s1 - s0) * 1e3);
		if (h)
			snprintf(xm->hum_extra, sizeof xm->hum_extra, "\"sentinel_rss_mib\":%.2f", (double)srss / 1024.0);
		run_free(&r);
	}
}

static void fmt_cell(char *b, size_t n, double v)
{
	if (isnan(v))
		snprintf(b, n, "failed");
	else
		snprintf(b, n, "%.*f", v < 10 ? 3 : 1, v);
}

static void print_results(void)
{
	for (int i = 0; i < nres; i++) {
		struct result *x = &res[i];
		x->hum = median(x->hum_runs, x->nh);
		x->base = median(x->base_runs, x->nb);
		for (int h = 1; h >= 0; h--) {
			char v[32], runs[256] = "";
			json_num(v, sizeof v, h ? x->hum : x->base);
			int nr = h ? x->nh : x->nb;
			const double *rv = h ? x->hum_runs : x->base_runs;
			size_t o = 0;
			for (int k = 0; k < nr; k++) {
				char b[32];
				json_num(b, sizeof b, rv[k]);
				o += (size_t)snprintf(runs + o, sizeof runs - o, "%s%s", k ? "," : "", b);
			}
			const char *ex = h ? x->hum_extra : x->base_extra;
			printf("{\"case\":\"%s\",\"impl\":\"%s\",\"value\":%s,\"unit\":\"%s\",\"runs\":[%s]%s%s}\n", x->name,
			       h ? "hum" : "baseline", v, x->unit, runs, *ex ? "," : "", ex);
		}
		char rb[32];
		json_num(rb, sizeof rb, x->base > 0 ? x->hum / x->base : NAN);
		printf("{\"case\":\"%s\",\"ratio\":%s}\n", x->name, rb);
	}
	printf("\n| case | unit | hum | baseline | hum / baseline |\n|---|---|---:|---:|---:|\n");
	for (int i = 0; i < nres; i++) {
		struct result *x = &res[i];
		char ratio[32];
		if (x->base > 0 && !isnan(x->hum))
			snprintf(ratio, sizeof ratio, "%.2fx", x->hum / x->base);
		else if (x->base == 0 && x->hum == 0)
			snprintf(ratio, sizeof ratio, "equal (both 0)");
		else
			snprintf(ratio, sizeof ratio, "n/a");
		char hv[32], bv[32];
		fmt_cell(hv, sizeof hv, x->hum);
		fmt_cell(bv, sizeof bv, x->base);
		printf("| %s | %s | %s | %s | %s |\n", x->name, x->unit, hv, bv, ratio);
	}
	printf("\n| case | what is measured |\n|---|---|\n");
	for (int i = 0; i < nres; i++)
		printf("| %s | %s |\n", res[i].name, res[i].what);
}

static void cleanup_tmp(void)
{
	if (!tmpdir[0])
		return;
	DIR *d = opendir(tmpdir);
	if (d) {
		struct dirent *de;
		while ((de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			char p[PATH_MAX];
			snprintf(p, sizeof p, "%s/%s", tmpdir, de->d_name);
			unlink(p);
		}
		closedir(d);
	}
	rmdir(tmpdir);
}

/* SUP_BENCH_CASES=burst,flood,restart,exit,busy,idle (default: all). */
static int want(const char *name)
{
	const char *c = getenv("SUP_BENCH_CASES");
	if (!c || !*c)
		return 1;
	size_t n = strlen(name);
	for (const char *p = c; (p = strstr(p, name)) != NULL; p += n)
		if ((p == c || p[-1] == ',') && (p[n] == 0 || p[n] == ','))
			return 1;
	return 0;
}

static int driver(const char *argv0)
{
	quick = getenv("HUM_BENCH_QUICK") && strcmp(getenv("HUM_BENCH_QUICK"), "0") != 0;
	reps = quick ? 1 : 3;
	static char humbuf[PATH_MAX + 16];
	hum_bin = getenv("HUM");
	if (!hum_bin || !*hum_bin) {
		char tmp[PATH_MAX];
		memcpy(tmp, self_exe, sizeof tmp);
		char *slash = strrchr(tmp, '/');
		if (slash)
			*slash = 0;
		snprintf(humbuf, sizeof humbuf, "%s/../hum", tmp);
		hum_bin = humbuf;
	}
	if (access(hum_bin, X_OK) != 0)
		die("no hum binary at %s (set $HUM or run make all)", hum_bin);
	const char *cd = getenv("SUP_BENCH_DIR");
	char rp[PATH_MAX];
	if (!realpath(cd && *cd ? cd : "bench", rp) || strlen(rp) >= sizeof cfg_dir)
		die("no directory %s (run from the repository root or set $SUP_BENCH_DIR)", cd && *cd ? cd : "bench");
	memcpy(cfg_dir, rp, strlen(rp) + 1);
	char probe[PATH_MAX];
	cfg_path(probe, sizeof probe, "sup_burst.lua");
	if (access(probe, R_OK) != 0)
		die("no %s (run from the repository root or set $SUP_BENCH_DIR)", probe);
	snprintf(tmpdir, sizeof tmpdir, "/tmp/sup_bench.XXXXXX");
	if (!mkdtemp(tmpdir))
		die("mkdtemp: %s", strerror(errno));
	snprintf(mark, sizeof mark, "%d.%ld", (int)getpid(), (long)time(NULL));
	signal(SIGPIPE, SIG_IGN);
	(void)argv0;

	double t_begin = mono();
	char load[128] = "";
	FILE *lf = fopen("/proc/loadavg", "r");
	if (lf) {
		if (!fgets(load, sizeof load, lf))
			load[0] = 0;
		load[strcspn(load, "\n")] = 0;
		fclose(lf);
	}
	printf("# sup_bench: %ld cpus, %s, %d repetition(s) per case (median), hum %s, loadavg at start %s\n",
	       sysconf(_SC_NPROCESSORS_ONLN), quick ? "quick" : "full", reps, hum_bin, load);
	fflush(stdout);

	int b1 = quick ? 50 : 100, b2 = quick ? 200 : 500;
	if (want("burst")) {
		case_burst(b1, 1);
		case_burst(b2, 0);
	}
	if (want("flood"))
		case_flood(4, quick ? 200000 : 1000000);
	if (want("restart"))
		case_cycle(1, quick ? 60 : 200, "0", 0);
	if (want("exit"))
		case_cycle(0, quick ? 30 : 100, "0.02", 0);
	if (want("busy"))
		case_cycle(0, quick ? 30 : 50, "0.02", 500);
	if (want("idle"))
		case_idle(10, quick ? 2.0 : 10.0);

	print_results();
	int left = sweep_leftovers(1) + leftovers_total;
	int failed = left > 0;
	for (int i = 0; i < nres; i++)
		if (res[i].nh == 0 || res[i].nb == 0)
			failed = 1;
	if (nres == 0)
		failed = 1;
	if (failed)
		fprintf(stderr, "sup_bench: outputs of every run kept in %s\n", tmpdir);
	else
		cleanup_tmp();
	printf("\n# sup_bench: %.1f s in total; %d process(es) left running%s\n", mono() - t_begin, left,
	       failed ? "; FAILED" : "");
	return failed ? 1 : 0;
}

int main(int argc, char **argv)
{
	ssize_t n = readlink("/proc/self/exe", self_exe, sizeof self_exe - 1);
	if (n <= 0)
		die("readlink /proc/self/exe");
	self_exe[n] = 0;
	if (argc >= 2 && strcmp(argv[1], "--child-stamp") == 0)
		return child_stamp(argc > 2 ? atof(argv[2]) : 0);
	if (argc >= 2 && strcmp(argv[1], "--base") == 0)
		return base_main(argc, argv);
	if (argc >= 2) {
		fprintf(stderr, "usage: sup_bench (HUM_BENCH_QUICK=1 for a short run; HUM=path to hum)\n");
		return 2;
	}
	return driver(argv[0]);
}

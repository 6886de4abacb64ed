/*
 * run.c — a supervisor run, the same for hum and for the baseline: the
 * driver forks it into its own process group with stdin /dev/null, stdout
 * to /dev/null or to the run's log, stderr to the log, an empty signal mask
 * and in its environment $SUP_T0 (the driver's CLOCK_MONOTONIC before fork),
 * $SUP_OUT (where it writes its "key value" lines), $SUP_CHILD (this binary,
 * for --child-stamp) and $SUP_BENCH_MARK.  run_wait() sees the exit through
 * a pidfd (t_end), reads the process's own CPU from /proc before reaping it,
 * loads $SUP_OUT, then checks that no process carrying the mark is left
 * (waiting up to 2 s, then reporting and killing what remains).
 *
 * hum runs as `hum up -f CFG_DIR/CFG`; the baseline as `sup_bench --base
 * WORKLOAD ARGS...` (baseline.c and the workload files).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sup_bench.h"

/* Set by the driver before the first run. */
char tmpdir[64];
char mark[64];            /* SUP_BENCH_MARK value */
const char *hum_bin;
char cfg_dir[PATH_MAX / 2];

int leftovers_total;      /* killed by check_leftovers() */

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
double proc_ticks(pid_t pid)
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
int sweep_leftovers(int kill_them)
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
void run_wait(struct run *r, double timeout)
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

void run_free(struct run *r)
{
	free(r->kv.v);
	r->kv.v = NULL;
	r->kv.n = 0;
}

void run_fail(struct run *r, const char *what)
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

void cfg_path(char *buf, size_t len, const char *name)
{
	snprintf(buf, len, "%s/%s", cfg_dir, name);
}

void start_side(struct run *r, const struct sides *s, int is_hum)
{
	if (is_hum) {
		char path[PATH_MAX];
		cfg_path(path, sizeof path, s->cfg);
		char *argv[] = { (char *)hum_bin, "up", "-f", path, NULL };
		run_start(r, argv, s->envs, s->hum_stdout_null);
	} else {
		char *argv[] = { self_exe, "--base", (char *)s->base[0], (char *)s->base[1], (char *)s->base[2], NULL };
		run_start(r, argv, NULL, 1);
	}
}

/*
 * cycle.c — a child that exits over and over, restarted at once each time:
 * how long the supervisor takes to react to an exit.  The child is this
 * binary as `--child-stamp SECONDS`: it sleeps that long, prints "start exit"
 * (CLOCK_MONOTONIC seconds, exit read just before it exits) and exits 0.
 * hum runs bench/sup_cycle.lua (one service, restart always with zero
 * backoff; SUP_MODE chooses the reaction); the baseline respawns the child
 * as soon as it has reaped it (baseline.c in M_STAMP mode).
 *
 *   restart-latency         sleep 0: the child's last clock reading before
 *                           exit -> respawned (hum: the `start` reaction;
 *                           baseline: posix_spawn returned); 200 restarts
 *                           per repetition; mean and p99
 *   restart-cpu             the same run: supervisor CPU (hum: os.clock(),
 *                           baseline: getrusage) from its first line to the
 *                           last restart, per restart
 *   exit-reaction           sleep 20 ms: the child's last clock reading
 *                           -> the reaction runs (hum: Lua `exit` reaction;
 *                           baseline: poll() woken by the SIGCHLD signalfd);
 *                           100 exits; mean and p99
 *   exit-reaction-busy      the same while 500 unrelated `sleep` processes
 *                           exist on the machine (hum sweeps /proc on every
 *                           restart; see bench/RESULTS.md)
 *
 * Ratio: hum / baseline, above 1 means hum reacts later or costs more.
 */
#include <math.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "sup_bench.h"

extern char **environ;

/* The child of both sides: `sup_bench --child-stamp SECONDS`. */
int child_stamp(double s)
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

/* The baseline's side, `sup_bench --base cycle RUNS SLEEP`: one child at a
 * time; respawned as soon as it is reaped.  Records s (posix_spawn
 * returned), w (poll woke for SIGCHLD), e (child's stamp). */
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

int base_cycle(int runs, const char *sleep_arg)
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

/* The driver's side.  restart 1: restart-latency and restart-cpu; 0:
 * exit-reaction, or exit-reaction-busy when extra > 0.
 * mode "restart": latency e[k] -> s[k+1]; mode "exit": e[k] -> w[k].
 * Mean and p99 per repetition; the reported value is the median over the
 * repetitions (a burst of load from elsewhere spoils one of them, not the
 * result); the extras give p50/min/max over all samples.
 * extra: that many unrelated `sleep 1000` processes exist on the machine
 * during the runs (their own process group, killed afterwards). */
void case_cycle(int restart, int runs, const char *sleep_arg, int extra)
{
	char rs[16];
	snprintf(rs, sizeof rs, "%d", runs);
	const char *envs[] = { "SUP_RUNS", rs, "SUP_SLEEP", sleep_arg, "SUP_MODE", restart ? "restart" : "exit", NULL };
	const struct sides sd = { "sup_cycle.lua", envs, 1, { "cycle", rs, sleep_arg } };
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
			start_side(&r, &sd, h);
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

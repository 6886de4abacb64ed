/*
 * burst.c — the spawn burst: N `sleep 1000` children started at once, then
 * all stopped.  hum runs bench/sup_burst.lua (N services; the N-th `start`
 * reaction records the time and calls hum.shutdown(0)); the baseline
 * posix_spawns N children, then sends each SIGTERM and reaps them all.
 *
 *   startup                 exec of the supervisor -> its first line of code
 *                           (hum: first line of the config; baseline: main);
 *                           taken from the first burst only
 *   spawn-burst-N-running   exec -> all N children running (hum: the N-th
 *                           `start` reaction; baseline: the N-th posix_spawn
 *                           returned)
 *   spawn-burst-N-stopped   stop request (hum: hum.shutdown(0) in that same
 *                           reaction; baseline: just before the first kill)
 *                           -> all N reaped and the supervisor process exited
 *                           (seen by the driver's pidfd)
 *
 * Times run from $SUP_T0, the driver's clock before fork, so both sides pay
 * for their own exec and start-up.  Ratio: hum's time / the baseline's, so
 * above 1 means hum is slower.  The baseline also records when it had seen
 * every exit (extra field all_exits_seen_ms).
 */
#include <math.h>
#include <stdio.h>
#include <sys/wait.h>

#include "sup_bench.h"

/* The baseline's side: `sup_bench --base burst N`. */
int base_burst(int n)
{
	double first = mono();
	b_init(M_SILENT);
	char *argv[] = { "sleep", "1000", NULL };
	for (int i = 0; i < n; i++)
		b_spawn(argv);
	double running = mono();
	double stop = mono();
	b_term_all();
	b_wait_all();
	double reaped = mono();
	FILE *f = b_outfile();
	fprintf(f, "first %.9f\nrunning %.9f\nstop %.9f\nreaped %.9f\n", first, running, stop, reaped);
	fclose(f);
	return 0;
}

/* The driver's side; first_burst: also record startup. */
void case_burst(int n, int first_burst)
{
	char ns[16], name[64];
	snprintf(ns, sizeof ns, "%d", n);
	const char *envs[] = { "SUP_N", ns, NULL };
	const struct sides sd = { "sup_burst.lua", envs, 0, { "burst", ns, NULL } };
	struct result *xu = result("startup", "ms", "exec of the supervisor -> its first line (config / main)");
	snprintf(name, sizeof name, "spawn-burst-%d-running", n);
	struct result *xr = result(name, "ms", "exec of the supervisor -> all N `sleep 1000` running");
	snprintf(name, sizeof name, "spawn-burst-%d-stopped", n);
	struct result *xs = result(name, "ms", "stop request -> all N reaped and the supervisor exited");
	for (int rep = 0; rep < reps; rep++) {
		for (int h = 1; h >= 0; h--) {
			struct run r;
			start_side(&r, &sd, h);
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

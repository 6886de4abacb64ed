/*
 * flood.c — log throughput: K children each print `seq 1 LINES` (the full
 * run: 4 x 1000000) as fast as they can; the supervisor reads, splits and
 * prints every line ("HH:MM:SS name | line") to its stdout, which is
 * /dev/null.  hum runs bench/sup_flood.lua (K tasks; the last `exit`
 * reaction records os.clock() and the lines hum counted); the baseline is
 * the loop of baseline.c in M_FLOOD mode.
 *
 *   log-cpu    supervisor CPU (user+sys of all its threads, children
 *              excluded; hum: os.clock() in the last exit reaction,
 *              baseline: getrusage) per million lines
 *   log-wall   the same run: exec ($SUP_T0) -> all lines handled, per
 *              million lines
 *
 *   log-cpu-line-reaction
 *              hum's log-cpu with an on("line") reaction on every task
 *              (a pattern no line matches, so what is measured is turning
 *              each line into an event for Lua and matching it) against
 *              hum's log-cpu without one, measured in the same repetition:
 *              the "baseline" column of this row is hum without reactions
 *
 * Both sides count the lines they saw; a count short of K x LINES is
 * reported on stderr.  Ratio: hum / baseline, above 1 means hum costs more.
 */
#include <stdio.h>

#include "sup_bench.h"

/* The baseline's side: `sup_bench --base flood K LINES`. */
int base_flood(int k, long lines)
{
	double first = mono();
	b_init(M_FLOOD);
	char num[32];
	snprintf(num, sizeof num, "%ld", lines);
	char *argv[] = { "seq", "1", num, NULL };
	for (int i = 0; i < k; i++)
		b_spawn(argv);
	b_wait_all();
	double cpu = self_cpu();
	FILE *f = b_outfile();
	fprintf(f, "first %.9f\ndone %.9f\ncpu %.9f\nlines %ld\n", first, mono(), cpu, b_lines);
	fclose(f);
	return 0;
}

/* The driver's side. */
void case_flood(int k, long lines)
{
	char ks[16], ls[32];
	snprintf(ks, sizeof ks, "%d", k);
	snprintf(ls, sizeof ls, "%ld", lines);
	const char *envs[] = { "SUP_K", ks, "SUP_LINES", ls, NULL };
	const struct sides sd = { "sup_flood.lua", envs, 1, { "flood", ks, ls } };
	const char *renvs[] = { "SUP_K", ks, "SUP_LINES", ls, "SUP_LINE_REACTION", "1", NULL };
	const struct sides rsd = { "sup_flood.lua", renvs, 1, { "flood", ks, ls } };
	struct result *x = result("log-cpu", "ms CPU / 1M lines",
				  "4 x `seq 1 1000000`, output to /dev/null: supervisor CPU (user+sys) per million lines");
	struct result *w = result("log-wall", "ms / 1M lines", "the same run: exec -> all lines handled, wall time per million lines");
	struct result *xr = result("log-cpu-line-reaction", "ms CPU / 1M lines",
				   "log-cpu with an on(\"line\") reaction per task (no line matches); baseline column: hum without one");
	double total = (double)k * (double)lines;
	for (int rep = 0; rep < reps; rep++) {
		double hum_cpu = -1;
		for (int h = 1; h >= 0; h--) {
			struct run r;
			start_side(&r, &sd, h);
			run_wait(&r, 180);
			if (!kv_has(&r.kv, "cpu")) {
				run_fail(&r, h ? "hum flood" : "baseline flood");
				continue;
			}
			double seen = kv_get(&r.kv, "lines");
			add_run(x, h, kv_get(&r.kv, "cpu") * 1e3 / (total / 1e6));
			if (h)
				hum_cpu = kv_get(&r.kv, "cpu") * 1e3 / (total / 1e6);
			add_run(w, h, (kv_get(&r.kv, "done") - r.t0) * 1e3 / (total / 1e6));
			char *ex = h ? x->hum_extra : x->base_extra;
			snprintf(ex, sizeof x->hum_extra,
				 "\"lines_seen\":%.0f,\"lines_expected\":%.0f,\"cpu_s_at_exit_proc_ticks\":%.2f",
				 seen, total, r.own_ticks_s);
			if (seen != total)
				fprintf(stderr, "sup_bench: %s saw %.0f lines of %.0f\n", h ? "hum" : "baseline", seen, total);
			run_free(&r);
		}
		struct run r;
		start_side(&r, &rsd, 1);
		run_wait(&r, 300);
		if (!kv_has(&r.kv, "cpu")) {
			run_fail(&r, "hum flood with a line reaction");
			continue;
		}
		if (kv_get(&r.kv, "lines") != total)
			fprintf(stderr, "sup_bench: hum with a line reaction saw %.0f lines of %.0f\n",
				kv_get(&r.kv, "lines"), total);
		if (hum_cpu >= 0) {
			add_run(xr, 1, kv_get(&r.kv, "cpu") * 1e3 / (total / 1e6));
			add_run(xr, 0, hum_cpu);
		}
		run_free(&r);
	}
}

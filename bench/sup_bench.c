/*
 * sup_bench.c — issue 4: the supervisor end to end, hum (`hum up -f
 * bench/sup_*.lua`) against a minimal C baseline measured in the same run.
 * This file is the driver: it reads the environment, runs the chosen
 * workloads and prints the results and their ratios.  Each workload is a
 * file of its own in bench/sup_bench/, with both its sides (the driver's
 * case and the baseline's) and a header saying what it measures:
 *
 *   burst.c   startup, spawn-burst-N-running, spawn-burst-N-stopped
 *             (N = 100 and 500)
 *   flood.c   log-cpu, log-wall (4 x `seq 1 1000000`)
 *   cycle.c   restart-latency, restart-cpu, exit-reaction,
 *             exit-reaction-busy
 *   idle.c    idle-cpu, idle-wakeups, idle-rss
 *
 * and the shared pieces: baseline.c (the baseline supervisor: posix_spawn,
 * poll, waitpid), run.c (starting and waiting for a supervisor run, the
 * left-over check), common.c (clock, "key value" files, results table,
 * statistics), sup_bench.h.
 *
 * hum and baseline runs are interleaved (hum first); each case is repeated
 * 3 times and the median reported (idle: once).
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
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sup_bench/sup_bench.h"

/* `sup_bench --base WORKLOAD ARGS...`: the baseline's side of a workload. */
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

/* ---- the output: JSON lines, then the ratios table ---- */
static void json_num(char *b, size_t n, double v)
{
	if (isnan(v) || isinf(v))
		snprintf(b, n, "null");
	else
		snprintf(b, n, "%.6g", v);
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
	int quick = getenv("HUM_BENCH_QUICK") && strcmp(getenv("HUM_BENCH_QUICK"), "0") != 0;
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

/*
 * idle.c — the idle cost: a supervisor with N (10) `sleep 1000` children
 * and nothing to do.  hum runs bench/sup_idle.lua (N services; the `ready`
 * reaction says so in $SUP_OUT); the baseline spawns them, says so and
 * waits in poll().  0.5 s after that, the driver samples the supervisor
 * from /proc over a window (10 s; 2 s quick), then sends SIGTERM.
 *
 *   idle-cpu       CPU over the window, scaled to 10 s (sum of
 *                  /proc/PID/task/ * /schedstat, ns resolution; hum: main
 *                  process + its sentinel)
 *   idle-wakeups   times a supervisor thread was scheduled over the window,
 *                  per 10 s (schedstat; hum: + sentinel)
 *   idle-rss       VmRSS at the end of the window (hum: main process; the
 *                  sentinel's RSS is an extra field)
 *
 * Ratio: hum / baseline, above 1 means hum costs more; with both at 0 the
 * table says so.
 */
#include <dirent.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sup_bench.h"

/* The baseline's side: `sup_bench --base idle N`; runs until SIGTERM. */
int base_idle(int n)
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
	b_term_all();
	b_wait_all();
	return 0;
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

/* The driver's side: one run each (no repetitions), hum first. */
void case_idle(int n, double secs)
{
	char ns[16];
	snprintf(ns, sizeof ns, "%d", n);
	const char *envs[] = { "SUP_N", ns, NULL };
	const struct sides sd = { "sup_idle.lua", envs, 0, { "idle", ns, NULL } };
	struct result *xc = result("idle-cpu", "ms CPU / 10 s", "10 `sleep 1000` children, supervisor CPU over the window (hum: + sentinel)");
	struct result *xw = result("idle-wakeups", "per 10 s", "the same, times a supervisor thread was scheduled (schedstat)");
	struct result *xm = result("idle-rss", "MiB", "the same, VmRSS at the end of the window (hum: main process)");
	for (int h = 1; h >= 0; h--) {
		struct run r;
		start_side(&r, &sd, h);
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

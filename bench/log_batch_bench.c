/*
 * log_batch_bench.c — the writer's cost of one batch of log lines as the
 * number of processes grows.
 *
 * A batch is what one pipe read becomes: 16 lines appended to one process's
 * ring, one commit, then the per-iteration flush (hum_store_flush).  Since
 * log counters live in the rings, a batch publishes nothing: the flush
 * finds the world clean and only polls the epoch.  The baseline is the
 * earlier rule, emulated in the same run with the same store: each batch
 * also republished the process's snapshot (to copy its counters) and so the
 * whole world, O(processes).  Both sides do the same appends and commits.
 *
 *   log-batch-N   ns per batch with N processes (N = 10, 100, 1000, 10000);
 *                 the hum column is the current rule, the baseline column
 *                 the old one; ratio hum / baseline (below 1: cheaper)
 *
 * Output: one JSON object per line, then a markdown table.  HUM_BENCH_MS
 * bounds each measurement (default 300 ms).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state/logring.h"
#include "state/snap.h"
#include "state/store.h"

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

enum { BATCH = 16 };

/* ns per batch over `ms` milliseconds; old: republish the snapshot too. */
static double measure(hum_store *st, hum_entry **e, int n, int old, double ms)
{
	static const char line[] = "GET /assets/app.js 200 0.4ms";
	long batches = 0;
	double t0 = now(), end = t0 + ms / 1e3, t;
	do {
		for (int k = 0; k < 64; k++) {
			hum_entry *x = e[(batches + k) % n];
			for (int i = 0; i < BATCH; i++)
				hum_logring_append(&x->log, HUM_STREAM_OUT, 0, 0, line, sizeof line - 1);
			hum_logring_commit(&x->log);
			if (old) {
				hum_snap *s = hum_snap_clone(x->snap, NULL);
				if (s)
					hum_store_publish(st, x, s);
			}
			hum_store_flush(st);
		}
		batches += 64;
	} while ((t = now()) < end);
	return (t - t0) * 1e9 / (double)batches;
}

int main(void)
{
	const char *msenv = getenv("HUM_BENCH_MS");
	double ms = msenv ? atof(msenv) : 300;
	static const int sizes[] = { 10, 100, 1000, 10000 };
	double res[4][2];
	for (int si = 0; si < 4; si++) {
		int n = sizes[si];
		/* small rings: the benchmark is about publishing, not memory */
		hum_store *st = hum_store_new(64 * 1024);
		hum_entry **e = calloc((size_t)n, sizeof *e);
		if (!st || !e) {
			fprintf(stderr, "log_batch_bench: out of memory\n");
			return 1;
		}
		char name[32];
		for (int i = 0; i < n; i++) {
			snprintf(name, sizeof name, "p%d", i);
			e[i] = hum_store_add(st, hum_snap_new(NULL, name, NULL, NULL));
			if (!e[i]) {
				fprintf(stderr, "log_batch_bench: cannot add %s\n", name);
				return 1;
			}
		}
		hum_store_flush(st);
		measure(st, e, n, 0, ms / 4); /* warm up */
		for (int old = 0; old <= 1; old++) {
			res[si][old] = measure(st, e, n, old, ms);
			printf("{\"case\":\"log-batch-%d\",\"impl\":\"%s\",\"value\":%.1f,\"unit\":\"ns\"}\n", n,
			       old ? "baseline" : "hum", res[si][old]);
		}
		free(e);
		hum_store_free(st);
	}
	printf("\n| case | unit | hum (rings only) | baseline (snapshot + world per batch) | ratio |\n"
	       "| --- | --- | ---: | ---: | ---: |\n");
	for (int si = 0; si < 4; si++)
		printf("| log-batch-%d | ns / batch of %d lines | %.0f | %.0f | %.2fx |\n", sizes[si], BATCH,
		       res[si][0], res[si][1], res[si][0] / res[si][1]);
	return 0;
}

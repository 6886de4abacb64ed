/*
 * common.c — what every part of sup_bench uses: the monotonic clock, die()
 * and sleep_s(), this binary's path, the "key value" files a supervisor
 * writes to $SUP_OUT (both hum's configs and the baseline write them), the
 * results table the cases record into (one row per case, up to 8 runs each
 * for hum and for the baseline; the driver prints it) and the statistics
 * over it (median of the runs, percentiles of a run's samples).
 */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sup_bench.h"

double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

void die(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "sup_bench: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

void sleep_s(double s)
{
	struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

char self_exe[PATH_MAX];

/* ---- "key value" files: what a supervisor wrote to $SUP_OUT ---- */

void kv_load(struct kvs *k, const char *path)
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

int kv_has(const struct kvs *k, const char *key)
{
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->v[i].key, key) == 0)
			return 1;
	return 0;
}

double kv_get(const struct kvs *k, const char *key)
{
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->v[i].key, key) == 0)
			return k->v[i].val;
	return NAN;
}

/* Every value of key, in order; returns the count. */
int kv_all(const struct kvs *k, const char *key, double **out)
{
	int n = 0;
	*out = malloc(((size_t)k->n + 1) * sizeof(double));
	for (int i = 0; i < k->n; i++)
		if (strcmp(k->v[i].key, key) == 0)
			(*out)[n++] = k->v[i].val;
	return n;
}

/* ---- results ---- */
/* In the order the cases first name them: the order of the output. */
struct result res[MAXRES];
int nres;
int reps;

struct result *result(const char *name, const char *unit, const char *what)
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

void add_run(struct result *x, int is_hum, double v)
{
	if (is_hum && x->nh < 8)
		x->hum_runs[x->nh++] = v;
	if (!is_hum && x->nb < 8)
		x->base_runs[x->nb++] = v;
}

/* ---- statistics ---- */
static int dcmp(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

double median(const double *v, int n)
{
	if (n == 0)
		return NAN;
	double t[8];
	memcpy(t, v, (size_t)n * sizeof *t);
	qsort(t, (size_t)n, sizeof *t, dcmp);
	return n % 2 ? t[n / 2] : (t[n / 2 - 1] + t[n / 2]) / 2;
}

/* The p-quantile of v[0..n) (0 < p <= 1); sorts v. */
double pct(double *v, int n, double p)
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

/*
 * sup_bench.h — what the files of sup_bench share.  The driver
 * (bench/sup_bench.c) calls the workloads (burst.c, flood.c, cycle.c,
 * idle.c); a workload's driver side starts hum and the baseline through
 * run.c and records into the results table of common.c; its baseline side
 * (`sup_bench --base WORKLOAD ...`) is written on the loop of baseline.c.
 * Nothing here calls back into the driver or into a workload.
 */
#ifndef SUP_BENCH_H
#define SUP_BENCH_H

#include <limits.h>
#include <stdio.h>
#include <sys/types.h>

/* ---- common.c: clock, errors, "key value" files, results, statistics ---- */
double mono(void);
void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void sleep_s(double s);
extern char self_exe[PATH_MAX];  /* this binary: the baseline and --child-stamp run it */

/* The "key value" lines a supervisor writes to $SUP_OUT. */
struct kv {
	char key[24];
	double val;
};
struct kvs {
	struct kv *v;
	int n;
};
void kv_load(struct kvs *k, const char *path);
int kv_has(const struct kvs *k, const char *key);
double kv_get(const struct kvs *k, const char *key);
int kv_all(const struct kvs *k, const char *key, double **out);

/* One row of the output: a case's runs for hum and for the baseline; the
 * driver prints the medians and their ratio. */
#define MAXRES 64
struct result {
	char name[48], unit[24], what[160];
	double hum, base;
	double hum_runs[8], base_runs[8];
	int nh, nb;
	char hum_extra[256], base_extra[256];
};
extern struct result res[MAXRES];
extern int nres;
extern int reps;                 /* repetitions per case (set by the driver) */
struct result *result(const char *name, const char *unit, const char *what);
void add_run(struct result *x, int is_hum, double v);
double median(const double *v, int n);
double pct(double *v, int n, double p);

/* ---- run.c: a supervisor run, hum or the baseline ---- */
extern char tmpdir[64];          /* the runs' $SUP_OUT files and logs */
extern char mark[64];            /* SUP_BENCH_MARK value */
extern const char *hum_bin;
extern char cfg_dir[PATH_MAX / 2];
extern int leftovers_total;      /* processes found and killed after the runs */

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
/* How a workload runs on each side. */
struct sides {
	const char *cfg;              /* hum: `hum up -f CFG_DIR/cfg` */
	const char *const *envs;      /* hum: extra NAME, VALUE, ... pairs, NULL-terminated */
	int hum_stdout_null;          /* hum's stdout to /dev/null, else to the run's log */
	const char *base[3];          /* the baseline: `sup_bench --base base[0] base[1] base[2]` */
};
/* Starts hum (is_hum) or the baseline, as s says. */
void start_side(struct run *r, const struct sides *s, int is_hum);
void run_wait(struct run *r, double timeout);
void run_free(struct run *r);
void run_fail(struct run *r, const char *what);
void cfg_path(char *buf, size_t len, const char *name);
double proc_ticks(pid_t pid);
int sweep_leftovers(int kill_them);

/* ---- baseline.c: the baseline supervisor's loop ---- */
enum { M_SILENT, M_FLOOD, M_STAMP };
struct bchild;
extern long b_lines;             /* lines read from the children */
extern double b_last_stamp;      /* M_STAMP: exit time printed by the last child */
extern int b_got_term;           /* SIGTERM arrived */
void b_init(int mode);
struct bchild *b_spawn(char *const argv[]);
int b_wait(int timeout_ms, double *sig_time, void (*on_exit)(struct bchild *));
void b_wait_all(void);
void b_term_all(void);
FILE *b_outfile(void);
double self_cpu(void);

/* ---- the workloads: the driver's case and the baseline's side ---- */
void case_burst(int n, int first_burst);        /* burst.c */
int base_burst(int n);
void case_flood(int k, long lines);             /* flood.c */
int base_flood(int k, long lines);
void case_cycle(int restart, int runs, const char *sleep_arg, int extra); /* cycle.c */
int base_cycle(int runs, const char *sleep_arg);
int child_stamp(double s);
void case_idle(int n, double secs);             /* idle.c */
int base_idle(int n);

#endif

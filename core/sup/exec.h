/*
 * exec.h — one-shot commands with captured output, for hum.exec and exec
 * probes.  The child runs in its own session (so a timeout kills its whole
 * group), stdin is fed from `input` without blocking the loop, stdout and
 * stderr are collected up to a bound, and the callback runs exactly once
 * after the child has exited and both pipes reached EOF (or the group was
 * killed).  A job ends with its child: whatever the child left running (in
 * its group, or — with a supervisor, through the job's own token — outside
 * it) is killed when the child is reaped.  Loop thread only; the loop must
 * be the default loop (ev_child).
 */
#ifndef HUM_EXEC_H
#define HUM_EXEC_H

#include <stddef.h>
#include <ev.h>

struct hum_sup;

#define HUM_EXEC_MAX_OUTPUT (16u << 20) /* per stream; the rest is counted, not kept */

typedef struct hum_exec_result {
	int code;         /* exit code, or -1 when killed or not started */
	int term_signal;  /* 0 if none */
	const char *out, *err; /* NUL terminated, valid during the callback */
	size_t out_len, err_len;
	const char *error; /* NULL, "timeout", or a spawn error text */
} hum_exec_result;

typedef void (*hum_exec_cb)(void *ud, const hum_exec_result *r);

typedef struct hum_exec_spec {
	char *const *argv;  /* or NULL with shell */
	const char *shell;
	const char *cwd;
	char *const *env;   /* NULL: inherit */
	const char *input;  /* may be NULL */
	size_t input_len;
	double timeout;     /* seconds; 0 = none */
	struct hum_sup *sup; /* if set, the child carries a token of its own
			       (HUM_TOKEN=<prefix>0.<job>), its leftovers
			       are swept by it, and its group is guarded, so
			       it cannot outlive hum (kill -9) */
} hum_exec_spec;

/* 0, or -errno when it could not start (then cb is never called). */
int hum_exec_start(struct ev_loop *loop, const hum_exec_spec *spec, hum_exec_cb cb, void *ud,
		   char *errbuf, size_t errlen);

#endif

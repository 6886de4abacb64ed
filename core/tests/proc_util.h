/*
 * proc_util.h — harness shared by the supervisor tests: a real supervisor on
 * the default loop, hooks that record every state and line per process, and
 * WAIT(cond, seconds), which turns the loop until cond holds or the deadline
 * passes (never a fixed sleep: generous deadlines, early exit).
 */
#ifndef HUM_PROC_UTIL_H
#define HUM_PROC_UTIL_H

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sup/proc.h"
#include "state/store.h"
#include "tap.h"

#define UTIL static __attribute__((unused)) /* not every test uses all */

typedef struct rec {
	int states[256];
	double state_t[256];
	int nstates;
	char *text[3];        /* by stream: lines joined with '\n' */
	size_t textlen[3], textcap[3];
	size_t nlines[3];
	size_t ncont, npartial, nbytes;
	size_t lines_at_final; /* lines seen when a final state was published */
	int mode;              /* 0: keep text; 1: flood check only; 2: stop
				* from the lines hook; 3: restart from it once */
	long flood_next;       /* next expected "line N" */
	long flood_bad;
	uint64_t last_seq;
	int seq_bad;
	char flags[64];        /* flags of the first 64 lines */
} rec;

static struct ev_loop *L;
static hum_store *ST;
static hum_sup *S;
static const char *FIX;
static ev_prepare flush_w;

UTIL double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

UTIL int is_final(int s)
{
	return s == HUM_STOPPED || s == HUM_SUCCEEDED || s == HUM_FAILED;
}

UTIL void on_state(hum_proc *p, const hum_snap *old, const hum_snap *snap, void *ud)
{
	rec *r = hum_proc_udata(p);
	if (!r || r->nstates >= 256)
		return;
	r->state_t[r->nstates] = now();
	r->states[r->nstates++] = snap->state;
	if (is_final(snap->state))
		r->lines_at_final = r->nlines[1] + r->nlines[2];
}

UTIL void append(rec *r, int st, const char *d, size_t n)
{
	if (r->textlen[st] + n + 1 > r->textcap[st]) {
		size_t cap = r->textcap[st] ? r->textcap[st] : 4096;
		while (cap < r->textlen[st] + n + 1)
			cap *= 2;
		r->text[st] = realloc(r->text[st], cap);
		r->textcap[st] = cap;
	}
	memcpy(r->text[st] + r->textlen[st], d, n);
	r->textlen[st] += n;
	r->text[st][r->textlen[st]] = 0;
}

UTIL void on_lines(hum_proc *p, const hum_line *l, size_t n, void *ud)
{
	rec *r = hum_proc_udata(p);
	if (!r)
		return;
	for (size_t i = 0; i < n; i++) {
		int st = l[i].stream;
		if (st < 1 || st > 2)
			continue;
		size_t k = r->nlines[1] + r->nlines[2];
		if (k < sizeof r->flags)
			r->flags[k] = (char)l[i].flags;
		r->nlines[st]++;
		r->nbytes += l[i].len;
		r->ncont += (l[i].flags & HUM_LINE_CONT) != 0;
		r->npartial += (l[i].flags & HUM_LINE_PARTIAL) != 0;
		if (l[i].seq <= r->last_seq)
			r->seq_bad++;
		r->last_seq = l[i].seq;
		if (r->mode == 2) /* re-entrancy: stop from inside the hook */
			hum_proc_stop(p);
		if (r->mode == 3 && !r->flood_bad++) /* restart once from the hook */
			hum_proc_restart(p);
		if (r->mode == 1) {
			char num[32];
			size_t len = l[i].len < 31 ? l[i].len : 31;
			memcpy(num, l[i].data, len);
			num[len] = 0;
			if (strncmp(num, "line ", 5) != 0 || atol(num + 5) != r->flood_next)
				r->flood_bad++;
			r->flood_next++;
			continue;
		}
		append(r, st, l[i].data, l[i].len);
		append(r, st, "\n", 1);
	}
}

UTIL void on_log(hum_proc *p, const char *msg, void *ud)
{
	fprintf(stderr, "# log %s: %s\n", p ? hum_proc_name(p) : "-", msg);
}

UTIL void flush_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	hum_store_flush(ST);
}

UTIL void tick_cb(struct ev_loop *loop, ev_timer *w, int revents) {}

/* One loop iteration, waking up after at most 50 ms. */
UTIL void tick(void)
{
	static ev_timer t;
	static int init;
	if (!init) {
		ev_timer_init(&t, tick_cb, 0.05, 0.05);
		init = 1;
	}
	if (!ev_is_active(&t))
		ev_timer_start(L, &t);
	ev_run(L, EVRUN_ONCE);
}

#define WAIT(cond, secs) ({                                         \
	double dl_ = now() + (secs);                                \
	while (!(cond) && now() < dl_)                              \
		tick();                                             \
	(cond); })

UTIL void harness_init(void)
{
	static const hum_sup_hooks hooks = { .state = on_state, .lines = on_lines, .log = on_log };
	FIX = getenv("HUM_FIXTURES");
	if (!FIX || !*FIX)
		FIX = "build/fixtures";
	L = ev_default_loop(0);
	ST = hum_store_new(0);
	S = hum_sup_new(L, ST, &hooks, NULL);
	if (!ST || !S) {
		printf("Bail out! cannot create the supervisor: %s\n", strerror(errno));
		exit(1);
	}
	ev_prepare_init(&flush_w, flush_cb);
	ev_prepare_start(L, &flush_w);
	ev_unref(L);
}

UTIL void harness_fini(void)
{
	hum_sup_free(S);
	S = NULL;
	ev_ref(L);
	ev_prepare_stop(L, &flush_w);
	hum_store_free(ST);
}

UTIL char *fix(const char *name)
{
	static char buf[8][512];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 512, "%s/%s", FIX, name);
	return b;
}

UTIL hum_spec spec_argv(char *const *argv)
{
	hum_spec sp;
	memset(&sp, 0, sizeof sp);
	sp.argv = argv;
	sp.grace = 5;
	sp.restart.max = -1;
	return sp;
}

UTIL hum_spec spec_sh(const char *cmd)
{
	hum_spec sp = spec_argv(NULL);
	sp.shell = cmd;
	return sp;
}

/* Adds and records a process (rec owned by the caller, zeroed). */
UTIL hum_proc *add(const char *name, const hum_spec *sp, rec *r)
{
	int err = 0;
	hum_proc *p = hum_sup_add(S, name, sp, &err);
	if (!p) {
		printf("Bail out! hum_sup_add(%s): %s\n", name, strerror(-err));
		exit(1);
	}
	memset(r, 0, sizeof *r);
	r->flood_next = 1;
	hum_proc_set_udata(p, r);
	return p;
}

static int unhook(hum_proc *p, void *ud)
{
	if (hum_proc_udata(p) == ud)
		hum_proc_set_udata(p, NULL);
	return 0;
}

/* Frees r and detaches it from its process: a rec lives on a test's stack,
 * and its process may still publish (a count of what remains of its run)
 * after the test returned. */
UTIL void rec_free(rec *r)
{
	for (int i = 0; i < 3; i++)
		free(r->text[i]);
	if (S)
		hum_sup_foreach(S, unhook, r);
}

UTIL int state(hum_proc *p) { return hum_proc_snap(p)->state; }

/* Alive and not a zombie. */
UTIL int alive(pid_t pid)
{
	if (pid <= 0 || kill(pid, 0) != 0)
		return 0;
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	FILE *f = fopen(path, "r");
	if (!f)
		return 0;
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	char *rp = strrchr(buf, ')');
	return !(rp && rp[1] == ' ' && rp[2] == 'Z');
}

/* Forks a child that runs fn(wfd, ud) (it must not return) and reads the
 * first message it writes to wfd: up to len-1 bytes, NUL terminated, ""
 * if none came within secs.  The child's pid (it keeps running), or -1. */
UTIL pid_t fork_reporter(void (*fn)(int wfd, void *ud), void *ud, char *buf, size_t len, double secs)
{
	int p[2];
	buf[0] = 0;
	if (pipe(p) != 0)
		return -1;
	pid_t pid = fork();
	if (pid == 0) {
		close(p[0]);
		fn(p[1], ud);
		_exit(1);
	}
	close(p[1]);
	struct pollfd pfd = { p[0], POLLIN, 0 };
	ssize_t n = 0;
	if (pid > 0 && poll(&pfd, 1, (int)(secs * 1000)) == 1)
		n = read(p[0], buf, len - 1);
	close(p[0]);
	buf[n > 0 ? n : 0] = 0;
	return pid;
}

/* The number after "key " in text (first occurrence), or 0. */
UTIL pid_t find_pid(const char *text, const char *key)
{
	if (!text)
		return 0;
	char pat[32];
	snprintf(pat, sizeof pat, "%s ", key);
	for (const char *s = text; (s = strstr(s, pat)); s++)
		if (s == text || s[-1] == '\n')
			return (pid_t)atoi(s + strlen(pat));
	return 0;
}

#endif

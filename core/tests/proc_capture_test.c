/*
 * proc_capture_test.c — output capture against real children: partial
 * lines, a 1 MiB line, NUL and invalid UTF-8, stdout/stderr apart, a flood
 * of numbered lines (every line, in order, drained before the final state),
 * a descendant that keeps the pipe open after the main process exits, and
 * the log ring's contents.
 */
#include "proc_util.h"

static void test_partial(void)
{
	rec r;
	char *a[] = { fix("partial"), NULL };
	hum_spec sp = spec_argv(a);
	hum_proc *p = add("partial", &sp, &r);
	hum_proc_start(p);
	WAIT(is_final(state(p)) && hum_sup_active(S) == 0, 20);
	ok(r.text[1] && !strcmp(r.text[1], "first\nsecond\ntail\n"),
	   "a line split across writes is one line; the tail arrives at EOF");
	ok(r.nlines[1] == 3 && r.npartial == 1 && r.flags[2] == HUM_LINE_PARTIAL && r.flags[0] == 0 &&
	   r.flags[1] == 0, "only the unterminated tail is PARTIAL");
	rec_free(&r);
}

static void test_bigline(void)
{
	rec r;
	char *a[] = { fix("bigline"), NULL };
	hum_spec sp = spec_argv(a);
	hum_proc *p = add("bigline", &sp, &r);
	hum_proc_start(p);
	WAIT(is_final(state(p)) && hum_sup_active(S) == 0, 20);
	int flags_ok = 1;
	for (int i = 0; i < 15; i++)
		flags_ok &= r.flags[i] == HUM_LINE_CONT;
	flags_ok &= r.flags[15] == 0 && r.flags[16] == 0;
	ok(r.nlines[1] == 17 && r.ncont == 15 && flags_ok,
	   "1 MiB line: 16 pieces, CONT on all but the last (%zu lines, %zu CONT)", r.nlines[1], r.ncont);
	int bytes_ok = r.text[1] && r.textlen[1] == (1u << 20) + 16 + 6;
	for (size_t i = 0, k = 0; bytes_ok && k < (1u << 20); i++) {
		if ((i + 1) % (HUM_LINE_MAX + 1) == 0) { /* our '\n' between pieces */
			bytes_ok = r.text[1][i] == '\n';
			continue;
		}
		bytes_ok = r.text[1][i] == (char)('a' + k % 26);
		k++;
	}
	ok(bytes_ok && !strcmp(r.text[1] + r.textlen[1] - 6, "after\n"), "every byte, in order");
	rec_free(&r);
}

static void test_binary_and_streams(void)
{
	rec r1, r2;
	char *a1[] = { fix("binary"), NULL };
	char *a2[] = { fix("outerr"), "50", NULL };
	hum_spec s1 = spec_argv(a1), s2 = spec_argv(a2);
	hum_proc *p1 = add("binary", &s1, &r1), *p2 = add("outerr", &s2, &r2);
	hum_proc_start(p1), hum_proc_start(p2);
	WAIT(is_final(state(p1)) && is_final(state(p2)) && hum_sup_active(S) == 0, 20);
	ok(r1.textlen[1] == 10 && !memcmp(r1.text[1], "a\0b\n\xff\xfe\n\xc3\x28\n", 10),
	   "NUL bytes and invalid UTF-8 pass through untouched");
	char want_out[2048] = "", want_err[2048] = "";
	for (int i = 1; i <= 50; i++) {
		snprintf(want_out + strlen(want_out), 32, "out %d\n", i);
		snprintf(want_err + strlen(want_err), 32, "err %d\n", i);
	}
	ok(r2.text[1] && r2.text[2] && !strcmp(r2.text[1], want_out) && !strcmp(r2.text[2], want_err),
	   "stdout and stderr kept apart, each in order");
	ok(r2.seq_bad == 0, "sequence numbers increase across both streams");
	rec_free(&r1), rec_free(&r2);
}

typedef struct tail_ctx {
	size_t n;
	long first;
	long last;
	int stream_bad;
} tail_ctx;

static int tail_fn(const hum_line *l, void *ud)
{
	tail_ctx *c = ud;
	char num[32];
	size_t len = l->len < 31 ? l->len : 31;
	memcpy(num, l->data, len);
	num[len] = 0;
	long v = atol(num + 5);
	if (c->n++ == 0)
		c->first = v;
	c->last = v;
	c->stream_bad += l->stream != HUM_STREAM_OUT;
	return 0;
}

static void test_flood(void)
{
	rec r;
	const char *env = getenv("HUM_FLOOD_LINES");
	long n = env && atol(env) > 0 ? atol(env) : 2000000;
	char num[32];
	snprintf(num, sizeof num, "%ld", n);
	char *a[] = { fix("flood"), num, NULL };
	hum_spec sp = spec_argv(a);
	hum_proc *p = add("flood", &sp, &r);
	r.mode = 1;
	double t0 = now();
	hum_proc_start(p);
	WAIT(is_final(state(p)) && hum_sup_active(S) == 0, 120);
	double dt = now() - t0;
	ok(state(p) == HUM_SUCCEEDED && r.flood_next == n + 1 && r.flood_bad == 0,
	   "flood: all %ld lines arrived in order (%ld bad) in %.2fs", n, r.flood_bad, dt);
	ok(r.lines_at_final == (size_t)n,
	   "pipes drained before the final state (%zu of %ld lines seen then)", r.lines_at_final, n);
	hum_store_flush(ST);
	const hum_snap *sn = hum_proc_snap(p);
	tail_ctx c = { 0, 0, 0, 0 };
	hum_logring_tail(&hum_proc_entry(p)->log, 100, tail_fn, &c);
	uint64_t counted = hum_logring_counts(sn->log).lines;
	ok(counted == (uint64_t)n && c.n == 100 && c.first == n - 99 && c.last == n && !c.stream_bad,
	   "ring: %llu lines counted, tail holds the last 100", (unsigned long long)counted);
	rec_free(&r);
}

static void test_pipe_outlives_main(void)
{
	rec r;
	hum_spec sp = spec_sh("echo early; (sleep 0.3; echo late) & exit 0");
	hum_proc *p = add("lingering", &sp, &r);
	hum_proc_start(p);
	WAIT(is_final(state(p)), 20);
	ok(state(p) == HUM_SUCCEEDED && r.lines_at_final == 1 && hum_sup_active(S) == 1,
	   "main exited: state final while a descendant still holds the pipe");
	WAIT(hum_sup_active(S) == 0, 20);
	ok(r.text[1] && !strcmp(r.text[1], "early\nlate\n"),
	   "the descendant's later line is still captured, until EOF");
	rec_free(&r);
}

static void test_many_at_once(void)
{
	enum { N = 50 };
	static rec r[N];
	hum_proc *p[N];
	char *a[] = { fix("outerr"), "20", NULL };
	for (int i = 0; i < N; i++) {
		char name[32];
		snprintf(name, sizeof name, "burst%d", i);
		hum_spec sp = spec_argv(a);
		p[i] = add(name, &sp, &r[i]);
	}
	double t0 = now();
	for (int i = 0; i < N; i++)
		hum_proc_start(p[i]);
	int done = 0;
	WAIT((done = 0, ({ for (int i = 0; i < N; i++) done += is_final(state(p[i])); }), done == N &&
	     hum_sup_active(S) == 0), 30);
	int good = 0;
	for (int i = 0; i < N; i++)
		good += state(p[i]) == HUM_SUCCEEDED && r[i].nlines[1] == 20 && r[i].nlines[2] == 20;
	ok(good == N, "%d children at once: all reaped with all their lines (%.2fs)", N, now() - t0);
	for (int i = 0; i < N; i++)
		rec_free(&r[i]);
}

int main(void)
{
	harness_init();
	test_partial();
	test_bigline();
	test_binary_and_streams();
	test_flood();
	test_pipe_outlives_main();
	test_many_at_once();
	harness_fini();
	return done_testing();
}

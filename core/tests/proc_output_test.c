/*
 * proc_output_test.c — the foreground printer: format, padding, stderr
 * mark, colour rules (TTY, NO_COLOR), one write per flush, dropping whole
 * lines when the reader is slow and saying so afterwards, EPIPE, and that
 * the caller's file description is never left non-blocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sup/output.h"
#include "tap.h"

static struct ev_loop *L;

static hum_line mk(const char *s, int stream, int64_t t)
{
	hum_line l = { 0 };
	l.data = s;
	l.len = (uint32_t)strlen(s);
	l.stream = (uint8_t)stream;
	l.time_ms = t;
	return l;
}

static size_t slurp(int fd, char *buf, size_t cap)
{
	size_t n = 0;
	ssize_t r;
	while (n < cap - 1 && (r = read(fd, buf + n, cap - 1 - n)) > 0)
		n += (size_t)r;
	buf[n] = 0;
	return n;
}

static void test_format(void)
{
	int p[2];
	if (pipe(p) != 0)
		exit(1);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	hum_output *o = hum_output_new(L, p[1]);
	ok(o && !hum_output_color(o), "pipe: no colour");
	ok(!(fcntl(p[1], F_GETFL) & O_NONBLOCK), "the caller's description stays blocking");
	int64_t t = 1700000000123LL; /* fixed time, local HH:MM:SS computed below */
	time_t tt = (time_t)(t / 1000);
	struct tm tm;
	localtime_r(&tt, &tm);
	char ts[16];
	strftime(ts, sizeof ts, "%H:%M:%S", &tm);
	hum_line a[2] = { mk("hello", HUM_STREAM_OUT, t), mk("oops", HUM_STREAM_ERR, t) };
	hum_line b[1] = { mk("ready", HUM_STREAM_OUT, t) };
	hum_output_lines(o, 1, "web", a, 2);
	hum_output_lines(o, 2, "database", b, 1);
	hum_output_lines(o, 1, "web", b, 1);
	ok(hum_output_flush(o) == 0, "flush");
	char got[4096], want[4096];
	slurp(p[0], got, sizeof got);
	snprintf(want, sizeof want,
		 "%s web \xe2\x94\x82 hello\n%s web ! oops\n%s database \xe2\x94\x82 ready\n"
		 "%s web      \xe2\x94\x82 ready\n", ts, ts, ts, ts);
	ok(!strcmp(got, want), "`HH:MM:SS name │ line`, stderr marked `!`, names padded to the longest");
	if (strcmp(got, want))
		printf("# got:\n%s# want:\n%s", got, want);
	hum_output_sys(o, "started %d processes", 3);
	hum_output_flush(o);
	slurp(p[0], got, sizeof got);
	ok(strlen(got) > 9 && !strcmp(got + 8, " [hum] started 3 processes\n"), "hum's own line: `HH:MM:SS [hum] message`");
	hum_output_set_color(o, true);
	hum_output_lines(o, 3, "api", a, 2);
	hum_output_flush(o);
	slurp(p[0], got, sizeof got);
	ok(strstr(got, "\033[") && strstr(got, "\033[31m!\033[0m oops\n") && strstr(got, "hello\n"),
	   "with colour: coloured name, red stderr mark");
	hum_output_free(o);
	close(p[0]);
	close(p[1]);
}

static void test_slow_reader(void)
{
	int p[2];
	if (pipe(p) != 0)
		exit(1);
	hum_output *o = hum_output_new(L, p[1]);
	static char line[1001];
	memset(line, 'z', 1000);
	hum_line l = mk(line, HUM_STREAM_OUT, 1700000000000LL);
	/* 3000 lines of ~1 KiB: the pipe takes 64 KiB, the buffer 1 MiB. */
	for (int i = 0; i < 3000; i++) {
		hum_output_lines(o, 1, "flood", &l, 1);
		if (i % 100 == 0)
			hum_output_flush(o); /* never blocks */
	}
	uint64_t dropped = hum_output_dropped(o);
	ok(dropped > 0 && dropped < 3000, "a full output drops whole lines and counts them (%llu)",
	   (unsigned long long)dropped);
	/* Read it all while the loop turns: whole lines only, then the notice. */
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	static char buf[4 << 20];
	size_t n = 0;
	for (int i = 0; i < 2000 && !strstr(buf, "lines dropped from output\n"); i++) {
		ssize_t r = read(p[0], buf + n, sizeof buf - 1 - n);
		if (r > 0)
			n += (size_t)r;
		buf[n] = 0;
		hum_output_flush(o);
		ev_run(L, EVRUN_NOWAIT);
	}
	size_t lines = 0, torn = 0;
	for (char *s = buf, *e; (e = strchr(s, '\n')); s = e + 1) {
		if (strstr(s, "[hum]") && strstr(s, "[hum]") < e)
			continue;
		lines++;
		torn += (size_t)(e - s) != 8 + 1 + 5 + 5 + 1000;
	}
	char want[64];
	snprintf(want, sizeof want, "[hum] %llu lines dropped from output\n", (unsigned long long)dropped);
	ok(strstr(buf, want) != NULL, "after draining: \"%.*s\"", (int)strlen(want) - 1, want);
	ok(lines + dropped == 3000 && torn == 0, "%zu lines written whole, none torn", lines);
	hum_output_free(o);
	close(p[0]);
	close(p[1]);
}

static void test_epipe(void)
{
	int p[2];
	if (pipe(p) != 0)
		exit(1);
	hum_output *o = hum_output_new(L, p[1]);
	close(p[0]);
	hum_line l = mk("nobody reads", HUM_STREAM_OUT, 0);
	hum_output_lines(o, 1, "x", &l, 1);
	int rc = hum_output_flush(o);
	hum_output_lines(o, 1, "x", &l, 1);
	ok(rc == -EPIPE && hum_output_flush(o) == -EPIPE, "EPIPE: output stops, hum lives on");
	hum_output_free(o);
	close(p[1]);
}

static void test_tty(void)
{
	int m, s;
	if (openpty(&m, &s, NULL, NULL, NULL) != 0) {
		ok(1, "# SKIP no pty");
		return;
	}
	unsetenv("NO_COLOR");
	setenv("TERM", "xterm", 1);
	hum_output *o = hum_output_new(L, s);
	ok(o && hum_output_color(o), "terminal: colour");
	ok(!(fcntl(s, F_GETFL) & O_NONBLOCK), "the terminal's shared description stays blocking");
	hum_output_free(o);
	setenv("NO_COLOR", "1", 1);
	o = hum_output_new(L, s);
	ok(!hum_output_color(o), "NO_COLOR=1: no colour");
	hum_output_free(o);
	setenv("NO_COLOR", "", 1);
	o = hum_output_new(L, s);
	ok(hum_output_color(o), "NO_COLOR empty: colour (no-color.org)");
	hum_output_free(o);
	unsetenv("NO_COLOR");
	close(m);
	close(s);
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	L = ev_default_loop(0);
	test_format();
	test_slow_reader();
	test_epipe();
	test_tty();
	return done_testing();
}

/*
 * proc_output_test.c — the foreground printer: format (one name width, long
 * names cut with an ellipsis, hum's own lines aligned, stderr mark, colour
 * rules, a reset after a line that leaves a colour on on a terminal), and
 * flow: a file gets every line (blocking writes, never dropped); a pipe that
 * falls behind asks for back-pressure and releases it once drained; one
 * that takes nothing for the stall time has whole lines dropped, counted and
 * reported; a failing write (EPIPE, EFBIG as an injected full disk) is
 * counted and retried, and writing resumes with a line that says how many
 * lines were not written; the log file rotates at its bound and reopens;
 * the caller's file description is never left non-blocking.
 */
#include <errno.h>
#include <fcntl.h>
#include <pty.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <termios.h>
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

static char *read_file(const char *path, size_t *len)
{
	static char *buf;
	static size_t cap;
	FILE *f = fopen(path, "r");
	size_t n = 0;
	if (!f) {
		*len = 0;
		return "";
	}
	for (;;) {
		if (cap - n < 65536) {
			cap = cap ? cap * 2 : 1 << 20;
			buf = realloc(buf, cap);
		}
		size_t r = fread(buf + n, 1, cap - n - 1, f);
		if (r == 0)
			break;
		n += r;
	}
	fclose(f);
	buf[n] = 0;
	*len = n;
	return buf;
}

/* Runs the loop for about ms milliseconds (timers and watchers fire). */
static void spin(int ms)
{
	struct timespec t0, t;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	do {
		ev_run(L, EVRUN_NOWAIT);
		struct timespec d = { 0, 2000000 };
		nanosleep(&d, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t);
	} while ((t.tv_sec - t0.tv_sec) * 1000 + (t.tv_nsec - t0.tv_nsec) / 1000000 < ms);
}

static void local_ts(int64_t t, char *ts)
{
	time_t tt = (time_t)(t / 1000);
	struct tm tm;
	localtime_r(&tt, &tm);
	strftime(ts, 16, "%H:%M:%S", &tm);
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
	char ts[16];
	local_ts(t, ts);
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
	ok(!strcmp(got, want), "`HH:MM:SS name │ line`, stderr marked `!`; without a set width, names "
	   "grow the column");
	if (strcmp(got, want))
		printf("# got:\n%s# want:\n%s", got, want);
	hum_line sys = mk("started 3 processes", HUM_STREAM_SYS, t);
	hum_output_lines(o, 0, "hum", &sys, 1);
	hum_output_flush(o);
	slurp(p[0], got, sizeof got);
	ok(strlen(got) > 9 && !strcmp(got + 8, " hum      * started 3 processes\n"),
	   "hum's own line: `HH:MM:SS hum <pad> * message`, in the same column");
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

static void test_width(void)
{
	int p[2];
	if (pipe(p) != 0)
		exit(1);
	fcntl(p[0], F_SETFL, O_NONBLOCK);
	hum_output *o = hum_output_new(L, p[1]);
	hum_output_set_width(o, 6);
	int64_t t = 1700000000123LL;
	char ts[16];
	local_ts(t, ts);
	hum_line l = mk("x", HUM_STREAM_OUT, t), s = mk("note", HUM_STREAM_SYS, t);
	hum_output_lines(o, 1, "ab", &l, 1);
	hum_output_lines(o, 2, "abcdefghij", &l, 1);
	hum_output_lines(o, 3, "h\xc3\xa9llo w\xc3\xb6rld", &l, 1); /* héllo wörld */
	hum_output_lines(o, 0, "hum", &s, 1);
	hum_output_flush(o);
	char got[4096], want[4096];
	slurp(p[0], got, sizeof got);
	snprintf(want, sizeof want,
		 "%s ab     \xe2\x94\x82 x\n%s abcde\xe2\x80\xa6 \xe2\x94\x82 x\n"
		 "%s h\xc3\xa9llo\xe2\x80\xa6 \xe2\x94\x82 x\n%s hum    * note\n", ts, ts, ts, ts);
	ok(!strcmp(got, want), "a set width is every line's: short names padded, long ones cut with "
	   "an ellipsis at a character boundary, hum's lines aligned");
	if (strcmp(got, want))
		printf("# got:\n%s# want:\n%s", got, want);
	hum_output_set_width(o, 100);
	hum_output_lines(o, 1, "a-process-with-a-name-of-forty-chars-xyz", &l, 1);
	hum_output_flush(o);
	slurp(p[0], got, sizeof got);
	ok(!strcmp(got + 8, " a-process-with-a-name-of-forty-\xe2\x80\xa6 \xe2\x94\x82 x\n"),
	   "the width is at most %d columns", HUM_OUTPUT_WIDTH_MAX);
	hum_output_free(o);
	close(p[0]);
	close(p[1]);
}

static void test_tty_reset(void)
{
	int m, s;
	if (openpty(&m, &s, NULL, NULL, NULL) != 0) {
		ok(1, "# SKIP no pty");
		return;
	}
	struct termios tio;
	tcgetattr(s, &tio);
	cfmakeraw(&tio);
	tcsetattr(s, TCSANOW, &tio);
	setenv("NO_COLOR", "1", 1); /* the reset is for the child's colours */
	hum_output *o = hum_output_new(L, s);
	hum_line l[2] = { mk("\033[31mred, never reset", HUM_STREAM_OUT, 0), mk("plain", HUM_STREAM_OUT, 0) };
	hum_output_lines(o, 1, "c", l, 2);
	hum_output_flush(o);
	char got[4096];
	fcntl(m, F_SETFL, O_NONBLOCK);
	spin(50);
	slurp(m, got, sizeof got);
	ok(strstr(got, "never reset\033[0m\n") && strstr(got, "plain\n") && !strstr(got, "plain\033"),
	   "terminal: a line that leaves a colour on is followed by a reset (others are not)");
	hum_output_free(o);
	unsetenv("NO_COLOR");
	close(m);
	close(s);
}

/* 3000 lines of 1000 bytes, none torn: how many whole lines buf holds, and
 * how many pieces are torn. */
static void count_k(const char *buf, size_t *lines, size_t *torn, size_t *hum)
{
	*lines = *torn = *hum = 0;
	for (const char *s = buf, *e; (e = strchr(s, '\n')); s = e + 1) {
		if (e - s > 14 && !memcmp(s + 8, " hum ", 5)) {
			(*hum)++;
			continue;
		}
		if ((size_t)(e - s) == 8 + 1 + 5 + 5 + 1000)
			(*lines)++;
		else
			(*torn)++;
	}
}

static char kline[1001];

static void test_file_keeps_everything(void)
{
	char path[] = "/tmp/hum-out-XXXXXX";
	int fd = mkstemp(path);
	hum_output *o = hum_output_new(L, fd);
	hum_output_set_width(o, 5);
	hum_line l = mk(kline, HUM_STREAM_OUT, 1700000000000LL);
	/* 3 MiB queued without a flush: more than the buffer holds */
	for (int i = 0; i < 3000; i++)
		hum_output_lines(o, 1, "flood", &l, 1);
	hum_output_flush(o);
	size_t len, lines, torn, hum;
	count_k(read_file(path, &len), &lines, &torn, &hum);
	ok(lines == 3000 && torn == 0 && hum_output_dropped(o) == 0 && !hum_output_paused(o),
	   "a regular file gets every line (written when the buffer fills), none dropped (%zu)", lines);
	hum_output_free(o);
	close(fd);
	unlink(path);
}

static int pressure_calls, pressure_on;
static void on_pressure(void *ud, bool pause)
{
	pressure_calls++;
	pressure_on = pause;
}
static char notes[8192];
static void on_note(void *ud, const char *msg, size_t len)
{
	size_t n = strlen(notes);
	snprintf(notes + n, sizeof notes - n, "%.*s\n", (int)len, msg);
}

/* Reads the pipe while the loop turns (flushing o, as the host's prepare
 * watcher does) until `until` appears (or 5 s). */
static size_t read_while_spinning(hum_output *o, int fd, char *buf, size_t cap, const char *until)
{
	size_t n = 0;
	fcntl(fd, F_SETFL, O_NONBLOCK);
	for (int i = 0; i < 2500 && !(until && strstr(buf, until)); i++) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r > 0)
			n += (size_t)r;
		buf[n] = 0;
		ev_run(L, EVRUN_NOWAIT);
		hum_output_flush(o);
		if (r <= 0) {
			struct timespec d = { 0, 2000000 };
			nanosleep(&d, NULL);
		}
		if (!until && r <= 0 && i > 50)
			break;
	}
	return n;
}

static void test_backpressure(void)
{
	int p[2];
	if (pipe(p) != 0)
		exit(1);
	hum_output *o = hum_output_new(L, p[1]);
	hum_output_set_hooks(o, on_pressure, on_note, NULL);
	hum_output_set_width(o, 5);
	hum_line l = mk(kline, HUM_STREAM_OUT, 1700000000000LL);
	pressure_calls = pressure_on = 0;
	for (int i = 0; i < 3000; i++)
		hum_output_lines(o, 1, "flood", &l, 1);
	ok(pressure_on && hum_output_paused(o) && hum_output_dropped(o) == 0,
	   "a pipe that falls behind by 1 MiB asks for back-pressure, and nothing is dropped");
	static char buf[8 << 20];
	buf[0] = 0;
	read_while_spinning(o, p[0], buf, sizeof buf, NULL);
	size_t lines, torn, hum;
	count_k(buf, &lines, &torn, &hum);
	ok(!pressure_on && pressure_calls == 2 && lines == 3000 && torn == 0,
	   "once it has caught up the back-pressure is released; all %zu lines arrived whole", lines);
	hum_output_free(o);
	close(p[0]);
	close(p[1]);
}

static void test_stall_drops(void)
{
	int p[2];
	if (pipe(p) != 0)
		exit(1);
	hum_output *o = hum_output_new(L, p[1]);
	hum_output_set_hooks(o, on_pressure, on_note, NULL);
	hum_output_set_stall(o, 0.2);
	hum_output_set_width(o, 5);
	hum_line l = mk(kline, HUM_STREAM_OUT, 1700000000000LL);
	notes[0] = 0;
	for (int i = 0; i < 3000; i++)
		hum_output_lines(o, 1, "flood", &l, 1);
	ok(pressure_on, "paused while nobody reads");
	spin(600); /* nobody reads for longer than the stall time */
	ok(!pressure_on && !hum_output_paused(o),
	   "an output that takes nothing for the stall time lets the children go");
	for (int i = 0; i < 3000; i++)
		hum_output_lines(o, 1, "flood", &l, 1);
	uint64_t dropped = hum_output_dropped(o);
	ok(dropped > 0 && dropped < 3000, "then whole lines are dropped and counted (%llu), within a "
	   "bounded buffer", (unsigned long long)dropped);
	static char buf[16 << 20];
	buf[0] = 0;
	read_while_spinning(o, p[0], buf, sizeof buf, "lines dropped from output");
	read_while_spinning(o, p[0], buf + strlen(buf), sizeof buf - strlen(buf), NULL);
	size_t lines, torn, hum;
	count_k(buf, &lines, &torn, &hum);
	char want[96];
	snprintf(want, sizeof want, "%llu lines dropped from output (it did not keep up)\n",
		 (unsigned long long)dropped);
	ok(strstr(buf, want) && strstr(notes, want), "once drained, a line says so (and the note hook "
	   "gets it for hum's log): \"%.*s\"", (int)strlen(want) - 1, want);
	ok(lines + dropped == 6000 && torn == 0, "%zu lines written whole, none torn", lines);
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
	ok(rc == -EPIPE && hum_output_flush(o) == -EPIPE && hum_output_error(o) == EPIPE,
	   "EPIPE: writing fails, hum lives on (and tries again later)");
	hum_output_free(o);
	ok(1, "freed while failing");
	close(p[1]);
}

static void test_failure_resumes(void)
{
	char path[] = "/tmp/hum-out-XXXXXX";
	int fd = mkstemp(path);
	struct rlimit old, lim;
	getrlimit(RLIMIT_FSIZE, &old);
	lim = old;
	lim.rlim_cur = 4096; /* a full disk, injected: writes past 4 KiB fail */
	signal(SIGXFSZ, SIG_IGN);
	setrlimit(RLIMIT_FSIZE, &lim);
	hum_output *o = hum_output_new(L, fd);
	hum_output_set_hooks(o, on_pressure, on_note, NULL);
	hum_output_set_width(o, 5);
	notes[0] = 0;
	char text[200][64];
	hum_line l[200];
	for (int i = 0; i < 200; i++) {
		snprintf(text[i], sizeof text[i], "line %03d %040d", i, 0);
		l[i] = mk(text[i], HUM_STREAM_OUT, 1700000000000LL);
	}
	hum_output_lines(o, 1, "flood", l, 100);
	int rc = hum_output_flush(o);
	hum_output_lines(o, 1, "flood", l + 100, 100); /* while failing */
	ok(rc == -EFBIG && hum_output_error(o) == EFBIG && strstr(notes, "cannot write the output"),
	   "a write that fails (EFBIG) is reported to hum's log");
	spin(1300); /* a retry fails quietly */
	ok(hum_output_error(o) == EFBIG, "still failing: writing is tried again, quietly");
	setrlimit(RLIMIT_FSIZE, &old);
	spin(1300);
	ok(hum_output_error(o) == 0, "room again: writing works at the next retry");
	hum_output_flush(o);
	size_t len;
	char *got = read_file(path, &len);
	size_t whole = 0, cut = 0;
	const char *notice = strstr(got, "lines were not written");
	for (const char *s = got, *e; (e = strchr(s, '\n')); s = e + 1) {
		const char *m = memmem(s, (size_t)(e - s), "line ", 5);
		if (m && e - m == 49)
			whole++;
		else if (m)
			cut++;
	}
	char want[64];
	snprintf(want, sizeof want, " %llu lines were not written", (unsigned long long)hum_output_unwritten(o));
	ok(notice && memmem(got, len, want, strlen(want)) && cut == 1 && whole + hum_output_unwritten(o) == 200,
	   "after the line the failure cut, a line says how many were not written (%llu), then the "
	   "lines kept meanwhile (%zu)", (unsigned long long)hum_output_unwritten(o), whole);
	ok(notice && notice[-1] != '\n' && strstr(got, "\n") < notice &&
	   memmem(got, (size_t)(notice - got), "\n\n", 2) == NULL,
	   "the notice starts a line of its own");
	ok(strstr(notes, "lines were not written") != NULL, "the note hook gets it too");
	hum_output_free(o);
	close(fd);
	unlink(path);
}

/* Far more than the bound queued between two drains (a slow loop): the
 * file still rotates at the first line end past its bound, so neither file
 * holds more than the bound, one line and the note. */
static void test_rotation_in_one_drain(const char *path, const char *older)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND | O_CLOEXEC, 0600);
	hum_output *o = hum_output_new(L, fd);
	hum_output_set_width(o, 5);
	ok(hum_output_set_file(o, path, 3000, 0) == 0, "a log file bounded at 3000 bytes");
	hum_line ls[40];
	for (int i = 0; i < 40; i++)
		ls[i] = mk(kline, HUM_STREAM_OUT, 1700000000000LL);
	hum_output_lines(o, 1, "flood", ls, 40); /* 40 kB queued at once */
	hum_output_flush(o);
	struct stat st = { 0 }, st1 = { 0 };
	size_t len;
	const char *got = read_file(path, &len);
	bool bounded = stat(older, &st1) == 0 && stat(path, &st) == 0 && st.st_size <= 3000 + 1100 + 300 &&
		       st1.st_size <= 3000 + 1100 + 300;
	ok(bounded && strstr(got, "log continued from") && strstr(got, "log continued from") < strchr(got, '\n'),
	   "rotation happens within one drain: %lld and %lld bytes, bound 3000", (long long)st.st_size,
	   (long long)st1.st_size);
	hum_output_free(o);
	close(fd);
	unlink(path);
	unlink(older);
}

static void test_rotation(void)
{
	char dir[] = "/tmp/hum-rot-XXXXXX", path[64], older[64], moved[64];
	if (!mkdtemp(dir))
		exit(1);
	snprintf(path, sizeof path, "%s/hum.log", dir);
	snprintf(older, sizeof older, "%s/hum.log.1", dir);
	snprintf(moved, sizeof moved, "%s/moved.log", dir);
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
	hum_output *o = hum_output_new(L, fd);
	hum_output_set_width(o, 5);
	ok(hum_output_set_file(o, path, 20000, 0) == 0, "the output is a log file");
	hum_line l = mk(kline, HUM_STREAM_OUT, 1700000000000LL);
	for (int i = 0; i < 30; i++) {
		hum_output_lines(o, 1, "flood", &l, 1);
		hum_output_flush(o);
	}
	struct stat st, st1;
	size_t len;
	const char *got = read_file(path, &len);
	ok(stat(older, &st1) == 0 && stat(path, &st) == 0 && st.st_size < 20000 + 2000 &&
	   strstr(got, "log continued from") && strstr(got, "log continued from") < strchr(got, '\n'),
	   "at its bound the log moves to hum.log.1 and the new one starts with a line that says so");
	ok(fstat(fd, &st1) == 0 && st1.st_ino == st.st_ino, "the caller's fd now is the new file");
	rename(path, moved);
	ok(hum_output_reopen(o) == 0, "reopen");
	hum_output_lines(o, 1, "flood", &l, 1);
	hum_output_flush(o);
	got = read_file(path, &len);
	ok(len > 1000 && strstr(got, kline), "after reopen, lines go to a new file at the path");
	hum_output_free(o);
	close(fd);
	unlink(path);
	unlink(older);
	unlink(moved);
	test_rotation_in_one_drain(path, older);
	rmdir(dir);
	hum_output *o2 = hum_output_new(L, 1);
	ok(hum_output_reopen(o2) == -EINVAL, "reopen of an output that is no log file: -EINVAL");
	hum_output_free(o2);
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
	memset(kline, 'z', 1000);
	test_format();
	test_width();
	test_tty_reset();
	test_file_keeps_everything();
	test_backpressure();
	test_stall_drops();
	test_epipe();
	test_failure_resumes();
	test_rotation();
	test_tty();
	return done_testing();
}

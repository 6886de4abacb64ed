/*
 * api_unit.c — the control socket in-process: the JSON writer, request
 * parsing and validation, and the API thread against a real store.  This
 * thread plays the loop thread: it owns the store (the writer) and the
 * default loop that receives commands, and it runs that loop while it
 * waits for answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <regex.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>
#include <jansson.h>

#include "api/api.h"
#include "api/jsonw.h"
#include "api/grep.h"
#include "api/request.h"
#include "state/store.h"
#include "tap.h"

/* Writer --------------------------------------------------------------------- */

static int enc_is(void (*fn)(hum_buf *), const char *want)
{
	hum_buf b = { 0 };
	fn(&b);
	int r = !b.oom && b.len == strlen(want) && memcmp(b.p, want, b.len) == 0;
	if (!r)
		fprintf(stderr, "got [%.*s] want [%s]\n", (int)b.len, b.p, want);
	hum_buf_free(&b);
	return r;
}

static void e1(hum_buf *b) { hum_json_str(b, "a\"b\\c\n\t\x01", 8); }
static void e2(hum_buf *b) { hum_json_str(b, "ok \xc3\xa9 \xff bad \xe2\x82", 14); }
static void e3(hum_buf *b) { hum_json_u64(b, 0); hum_buf_putc(b, ' '); hum_json_i64(b, -42); hum_buf_putc(b, ' '); hum_json_u64(b, UINT64_MAX); }
static void e4(hum_buf *b) { hum_json_ms(b, 1700000000123LL); hum_buf_putc(b, ' '); hum_json_ms(b, 5); hum_buf_putc(b, ' '); hum_json_ms(b, INT64_MIN); }
static void e5(hum_buf *b) { hum_json_cstr(b, NULL); }
/* overlong, surrogate, past U+10FFFF, never-valid bytes, a lone
 * continuation byte, a cut 4-byte sequence, then NUL, DEL and a valid
 * 4-byte character */
static void e6(hum_buf *b)
{
	hum_json_str(b, "\xc0\xaf|\xe0\x80\x80|\xed\xa0\x80|\xf4\x90\x80\x80|\xf5\xfe|\x80|\xf0\x9f\x98|\0\x7f\xf0\x9f\x98\x80", 31);
}

#define FFFD "\xef\xbf\xbd"

/* The writer's output for s[0..n) is one valid JSON string (jansson, which
 * checks UTF-8, is the judge), and when s is valid UTF-8 it decodes to s. */
static int writes_valid(const char *s, size_t n)
{
	hum_buf b = { 0 };
	hum_json_str(&b, s, n);
	json_error_t je;
	json_t *v = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
	json_t *orig = json_stringn(s, n); /* NULL unless s is valid UTF-8 */
	int r = json_is_string(v) && (!orig || json_equal(v, orig));
	if (!r)
		fprintf(stderr, "writer: [%.*s]: %s\n", (int)b.len, b.p, v ? "decodes to other text" : je.text);
	json_decref(v);
	json_decref(orig);
	hum_buf_free(&b);
	return r;
}

static void test_writer(void)
{
	ok(enc_is(e1, "\"a\\\"b\\\\c\\n\\t\\u0001\""), "escapes quotes, backslashes and controls");
	ok(enc_is(e2, "\"ok \xc3\xa9 " FFFD " bad " FFFD FFFD "\""),
	   "keeps valid UTF-8, replaces invalid bytes with U+FFFD");
	ok(enc_is(e3, "0 -42 18446744073709551615"), "integers");
	ok(enc_is(e4, "1700000000.123 0.005 -9223372036854775.808"), "milliseconds as seconds, INT64_MIN too");
	ok(enc_is(e5, "null"), "NULL string is null");
	ok(enc_is(e6, "\"" FFFD FFFD "|" FFFD FFFD FFFD "|" FFFD FFFD FFFD "|" FFFD FFFD FFFD FFFD "|" FFFD FFFD "|" FFFD
		      "|" FFFD FFFD FFFD "|\\u0000\x7f\xf0\x9f\x98\x80\""),
	   "overlong, surrogate, too large, cut short: one U+FFFD per byte");

	/* every string of one and two bytes, and random ones of up to 12
	 * bytes drawn mostly from lead and continuation bytes */
	int all = 1;
	for (unsigned x = 0; x < 65536 && all; x++) {
		char two[2] = { (char)(x >> 8), (char)x };
		all = writes_valid(two + 1, 1) && writes_valid(two, 2);
	}
	static const unsigned char pool[] = { 0x00, 0x1f, '"', '\\', 'a', 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf,
					      0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0, 0xf4, 0xf5, 0xff };
	unsigned rnd = 99;
	for (int k = 0; k < 200000 && all; k++) {
		char s[12];
		rnd = rnd * 1103515245u + 12345u;
		size_t n = (rnd >> 16) % sizeof s + 1;
		for (size_t i = 0; i < n; i++) {
			rnd = rnd * 1103515245u + 12345u;
			s[i] = (char)pool[(rnd >> 16) % sizeof pool];
		}
		all = writes_valid(s, n);
	}
	ok(all, "any bytes become valid JSON; valid UTF-8 round-trips (jansson as the judge)");
}

/* Requests ------------------------------------------------------------------- */

static hum_req rq;
static char rerr[400];

static int parse(const char *s)
{
	hum_req_free(&rq);
	rerr[0] = 0;
	return hum_req_parse(&rq, s, strlen(s), rerr, sizeof rerr);
}

/* s is refused with an error containing want */
static int refused(const char *s, const char *want)
{
	int r = parse(s) < 0 && strstr(rerr, want) != NULL;
	if (!r)
		fprintf(stderr, "request %s: got [%s], want [%s]\n", s, rerr, want);
	return r;
}

static void test_request(void)
{
	ok(parse("{\"cmd\":\"ps\"}") == 0 && rq.kind == HUM_REQ_PS && rq.idlen == 0, "ps");
	ok(parse(" {\"id\":7,\"cmd\":\"ping\",\"extra\":{\"x\":[[],{}]}}\r\n") == 0 && rq.kind == HUM_REQ_PING &&
	   strcmp(rq.id, "7") == 0, "ping with an integer id; unknown fields ignored");
	ok(parse("{\"id\":\"a\\u00e9\\n\",\"cmd\":\"ps\"}") == 0 && strcmp(rq.id, "\"a\xc3\xa9\\n\"") == 0 &&
	   rq.idlen == strlen(rq.id), "a string id is re-encoded for the echo");
	ok(parse("{\"id\":-9223372036854775808,\"cmd\":\"ps\"}") == 0 && strcmp(rq.id, "-9223372036854775808") == 0,
	   "the smallest integer id");
	ok(parse("{\"id\":null,\"cmd\":\"ps\"}") == 0 && rq.idlen == 0, "a null id is no id");
	ok(parse("{\"cmd\":\"status\",\"name\":\"web\"}") == 0 && rq.kind == HUM_REQ_STATUS && rq.nnames == 1 &&
	   strcmp(hum_req_name(&rq, 0), "web") == 0, "status of a name");
	ok(parse("{\"cmd\":\"status\",\"names\":[\"a\",\"b\\ud83d\\ude00\"],\"name\":\"x\"}") == 0 && rq.nnames == 2 &&
	   strcmp(hum_req_name(&rq, 1), "b\xf0\x9f\x98\x80") == 0, "names (surrogate pair) win over name");
	ok(parse("{\"cmd\":\"status\",\"names\":null,\"name\":[\"db\"]}") == 0 && rq.nnames == 1 &&
	   strcmp(hum_req_name(&rq, 0), "db") == 0, "null names: name is used");
	ok(parse("{\"cmd\":\"logs\"}") == 0 && rq.kind == HUM_REQ_LOGS && rq.nnames == 0 && rq.n == 100 &&
	   !rq.follow && !rq.stream && !rq.since_ms && !rq.grep, "logs defaults");
	ok(parse("{\"cmd\":\"logs\",\"names\":[],\"n\":0,\"follow\":true,\"stream\":\"err\",\"since\":1700000000.5,"
		 "\"grep\":\"x|y\"}") == 0 && rq.nnames == 0 && rq.n == 0 && rq.follow &&
	   rq.stream == HUM_STREAM_ERR && rq.since_ms == 1700000000500LL && rq.greplen == 3 &&
	   strcmp(rq.grep, "x|y") == 0, "logs with every field");
	ok(parse("{\"cmd\":\"logs\",\"n\":1e2,\"grep\":\"\",\"stream\":null}") == 0 && rq.n == 100 && !rq.grep &&
	   !rq.stream, "whole n as a real, empty grep, null stream");
	ok(parse("{\"cmd\":\"logs\",\"n\":1000000000000000}") == 0 && rq.n == 1000000000, "n capped at 1e9 lines");
	ok(parse("{\"cmd\":\"start\",\"targets\":[\"web\"],\"timeout\":5}") == 0 && rq.kind == HUM_REQ_COMMAND &&
	   parse("{\"cmd\":\"signal\",\"signal\":15,\"targets\":\"web\"}") == 0 &&
	   parse("{\"cmd\":\"eval\",\"code\":\"return 1\"}") == 0 && parse("{\"cmd\":\"down\"}") == 0,
	   "commands for the loop thread");
	char deep[100];
	snprintf(deep, sizeof deep, "{\"cmd\":\"ps\",\"x\":%.*s%.*s}", HUM_REQ_MAX_DEPTH - 1,
		 "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[", HUM_REQ_MAX_DEPTH - 1, "]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]");
	ok(parse(deep) == 0, "nested %d deep: accepted", HUM_REQ_MAX_DEPTH);

	/* every kind of bad request, with the error it gets */
	char longid[200], longesc[300], toodeep[100];
	snprintf(longid, sizeof longid, "{\"cmd\":\"ps\",\"id\":\"%0129d\"}", 0);
	snprintf(longesc, sizeof longesc, "{\"cmd\":\"ps\",\"id\":\"%s\"}", "\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001"
		 "\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001\\u0001");
	snprintf(toodeep, sizeof toodeep, "{\"cmd\":\"ps\",\"x\":%.*s}", HUM_REQ_MAX_DEPTH, "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[");
	size_t nv = HUM_REQ_MAX_VALUES;
	char *many = malloc(2 * nv + 32);
	size_t k = (size_t)sprintf(many, "{\"cmd\":\"ps\",\"x\":[");
	for (size_t i = 0; i < nv; i++)
		k += (size_t)sprintf(many + k, i ? ",0" : "0");
	strcpy(many + k, "]}");
	const struct { const char *req, *want; } bad[] = {
		/* not JSON */
		{ "", "malformed request: at byte 0: " },
		{ "nonsense", "malformed request: at byte 8: invalid token" },
		{ "{\"cmd\":\"ps\"", "malformed request" },
		{ "{\"cmd\":\"ps\"} x", "end of file expected" },
		{ "{'cmd':'ps'}", "malformed request" },
		{ "{\"cmd\":\"ps\",}", "malformed request" },
		{ "{\"cmd\":\"logs\",\"n\":01}", "malformed request" },
		/* not an object */
		{ "[1,2]", "a request must be a JSON object" },
		{ "\"ps\"", "a request must be a JSON object" },
		{ "null", "a request must be a JSON object" },
		/* cmd and id */
		{ "{\"id\":3}", "missing \"cmd\" (a string)" },
		{ "{\"cmd\":1}", "missing \"cmd\" (a string)" },
		{ "{\"cmd\":null}", "missing \"cmd\" (a string)" },
		{ "{\"cmd\":\"fly\"}", "unknown command \"fly\"" },
		{ "{\"cmd\":\"ps\",\"id\":[]}", "id must be an integer or a string" },
		{ "{\"cmd\":\"ps\",\"id\":1.5}", "id must be an integer or a string" },
		{ "{\"cmd\":\"ps\",\"id\":true}", "id must be an integer or a string" },
		{ longid, "id too long (more than 128 bytes)" },
		{ longesc, "id too long (more than 128 bytes)" }, /* 22 bytes, 132 as JSON */
		/* fields of the wrong type or out of range */
		{ "{\"cmd\":\"status\"}", "status needs \"name\" (a string) or \"names\" (strings)" },
		{ "{\"cmd\":\"status\",\"names\":[]}", "status needs \"name\"" },
		{ "{\"cmd\":\"status\",\"names\":5}", "names must be a string or an array of strings" },
		{ "{\"cmd\":\"status\",\"names\":[\"a\",1]}", "names must be a string or an array of strings" },
		{ "{\"cmd\":\"logs\",\"name\":{}}", "name must be a string or an array of strings" },
		{ "{\"cmd\":\"logs\",\"n\":-1}", "n must be a whole number >= 0" },
		{ "{\"cmd\":\"logs\",\"n\":1.5}", "n must be a whole number >= 0" },
		{ "{\"cmd\":\"logs\",\"n\":\"5\"}", "n must be a whole number >= 0" },
		{ "{\"cmd\":\"logs\",\"n\":1e16}", "n must be a whole number >= 0" },
		{ "{\"cmd\":\"logs\",\"n\":9223372036854775807}", "n must be a whole number >= 0" },
		{ "{\"cmd\":\"logs\",\"follow\":1}", "follow must be true or false" },
		{ "{\"cmd\":\"logs\",\"stream\":\"both\"}", "stream must be \"out\" or \"err\"" },
		{ "{\"cmd\":\"logs\",\"stream\":2}", "stream must be \"out\" or \"err\"" },
		{ "{\"cmd\":\"logs\",\"since\":-1}", "since must be seconds since the epoch" },
		{ "{\"cmd\":\"logs\",\"since\":1e300}", "since must be seconds since the epoch" },
		{ "{\"cmd\":\"logs\",\"grep\":[\"x\"]}", "grep must be a string" },
		{ "{\"cmd\":\"stop\",\"targets\":[1]}", "targets must be a string or an array of strings" },
		{ "{\"cmd\":\"start\",\"timeout\":\"5\"}", "timeout must be a number of seconds >= 0" },
		{ "{\"cmd\":\"signal\",\"signal\":[]}", "signal must be a name or a number" },
		{ "{\"cmd\":\"eval\",\"code\":5}", "eval needs \"code\" (a string)" },
		/* bounds */
		{ toodeep, "request nested too deeply (more than 32 levels)" },
		{ many, "request has too many values (more than 65536)" },
		{ "{\"cmd\":\"ps\",\"cmd\":\"eval\"}", "duplicate object key near '\"cmd\"'" },
		{ "{\"cmd\":\"ps\",\"x\":{\"a\":1,\"a\":1}}", "duplicate object key" },
		{ "{\"cmd\":\"ps\",\"id\":99999999999999999999}", "too big integer" },
		{ "{\"cmd\":\"logs\",\"n\":1e400}", "real number overflow" },
		/* \u0000 in a name or a key */
		{ "{\"cmd\":\"status\",\"name\":\"web\\u0000x\"}", "at byte 35: \\u0000 in a string is not allowed" },
		{ "{\"cmd\":\"ps\",\"x\\u0000\":1}", "\\u0000 in a string is not allowed" },
		/* invalid UTF-8: a bad byte, overlong, a surrogate, cut short;
		 * a lone surrogate escape */
		{ "{\"cmd\":\"status\",\"name\":\"w\xff" "eb\"}", "unable to decode byte 0xff" },
		{ "{\"cmd\":\"status\",\"name\":\"\xc0\xaf\"}", "unable to decode byte 0xc0" },
		{ "{\"cmd\":\"status\",\"name\":\"\xed\xa0\x80\"}", "unable to decode byte 0xed" },
		{ "{\"cmd\":\"status\",\"name\":\"\xf0\x9f\x98\"}", "malformed request" },
		{ "{\"cmd\":\"status\",\"name\":\"\\ud800\"}", "invalid Unicode '\\uD800'" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
		ok(refused(bad[i].req, bad[i].want), "bad request %zu refused: %s", i + 1, bad[i].want);
	free(many);
	ok(parse("{\"cmd\":\"ps\",\"n\":\"x\",\"names\":5}") == 0, "fields a command does not use are not checked");
	ok(refused("{\"id\":5,\"cmd\":\"logs\",\"n\":-1}", "n must be") && strcmp(rq.id, "5") == 0,
	   "a validation error keeps the id");
	ok(parse("{\"cmd\":\"ps\",\"x\":\"[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[\\\"[[[\"}") == 0,
	   "brackets inside strings do not count");

	/* mutations of a valid request: never a crash, never a read past the
	 * end (ASan), always a verdict */
	const char *seed = "{\"id\":12,\"cmd\":\"logs\",\"names\":[\"a\",\"b\\u00e9\"],\"n\":1.5e2,"
			   "\"grep\":\"x\\\"y\",\"follow\":true,\"z\":null}";
	size_t sl = strlen(seed);
	unsigned rnd = 12345;
	int verdicts = 0;
	for (int iter = 0; iter < 20000; iter++) {
		char buf[256];
		size_t m = sl;
		memcpy(buf, seed, sl);
		int edits = 1 + iter % 4;
		for (int e = 0; e < edits; e++) {
			rnd = rnd * 1103515245u + 12345u;
			size_t at = (rnd >> 8) % m;
			rnd = rnd * 1103515245u + 12345u;
			switch ((rnd >> 8) % 3) {
			case 0: buf[at] = (char)(rnd >> 16); break;                 /* replace */
			case 1: m = at; break;                                      /* truncate */
			default: memmove(buf + at, buf + at + 1, m - at - 1); m--; /* delete */
			}
			if (m == 0)
				break;
		}
		char *copy = malloc(m ? m : 1); /* exact size: ASan sees any overread */
		memcpy(copy, buf, m);
		hum_req_free(&rq);
		rerr[0] = 0;
		int rc = hum_req_parse(&rq, copy, m, rerr, sizeof rerr);
		verdicts += rc == 0 || rerr[0] != 0;
		free(copy);
	}
	ok(verdicts == 20000, "20000 mutated requests parsed or refused with a message");
	hum_req_free(&rq);
}

/* grep patterns -------------------------------------------------------------- */

static void test_grep(void)
{
	/* NULL: compiles; else the error it gets */
	static const struct { const char *re, *want; } cases[] = {
		{ "ERROR|WARN(ING)?|fatal: .*", NULL },
		{ "[[:digit:]]{4}-[0-9]{2}-[0-9]{2}T", NULL },
		{ "^(GET|POST) /api/[^ ]+ (2|3)[0-9]{2}$", NULL },
		/* what regcomp could not take: PCRE2 compiles them, bounded */
		{ "hi++++++++++++++++++++++++++++++++++++++++++++++++++$", "quantifier does not follow" },
		{ "((a{100}){100}){100}", "too large" },
		{ "(a|){0,3}+{2}{0,3}{2}", "quantifier does not follow" },
		{ "(a|){0,3}+", NULL },
		{ "(a)\\1", NULL },
		{ "x{", NULL }, /* a literal in PCRE2 */
		{ "(", "missing closing parenthesis" },
		{ "a{70000}", "number too big" },
	};
	for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
		char err[300] = "";
		hum_grep g;
		int rc = hum_grep_compile(&g, cases[i].re, strlen(cases[i].re), err, sizeof err);
		hum_grep_free(&g);
		ok(cases[i].want ? rc < 0 && strstr(err, cases[i].want) != NULL : rc == 0 && !err[0], "grep %s: %s",
		   cases[i].re, err[0] ? err : "compiles");
	}
	char nest[200], err[300];
	snprintf(nest, sizeof nest, "%.65s%.65s", "((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((((",
		 "))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))))");
	hum_grep g;
	ok(hum_grep_compile(&g, nest, strlen(nest), err, sizeof err) < 0 && strstr(err, "parentheses"),
	   "grep groups nested more than 64 deep: %s", err);
	hum_grep_free(&g);
	char big[HUM_GREP_MAX_LEN + 2];
	memset(big, '.', sizeof big - 1);
	big[sizeof big - 1] = 0;
	ok(hum_grep_compile(&g, big, strlen(big), err, sizeof err) < 0 && strstr(err, "too long"), "grep too long");
	hum_grep_free(&g);
	/* matching is bounded: a catastrophic pattern is an error, quickly */
	const char *evil = "(x*)*(x*)*\\2\\1y";
	char xs[153];
	memset(xs, 'x', 150);
	memcpy(xs + 150, "zy", 3); /* a 'y' for PCRE2's required-character check to find */
	ok(hum_grep_compile(&g, evil, strlen(evil), err, sizeof err) == 0, "evil pattern compiles");
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	err[0] = 0;
	int m = hum_grep_match(&g, xs, 152, err, sizeof err);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	double secs = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	ok(m < 0 && strstr(err, "too costly") && secs < 2, "a backtracking blow-up hits the match limit in %.3f s: %s",
	   secs, err);
	ok(hum_grep_match(&g, "xxy", 3, err, sizeof err) == 1, "the same pattern matches a short line");
	hum_grep_free(&g);
	ok(hum_grep_compile(&g, "needle", 6, err, sizeof err) == 0 && hum_grep_match(&g, "a needle!", 9, err, sizeof err) == 1 &&
	   hum_grep_match(&g, "a needl", 7, err, sizeof err) == 0, "plain text is a substring search");
	hum_grep_free(&g);
}

/* The API thread ------------------------------------------------------------- */

static hum_store *st;
static hum_api *api;
static struct ev_loop *loop;
static int commands_seen;

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void on_command(void *ud, uint32_t id, const char *req, size_t len)
{
	/* the loop thread's answer: echo the request back */
	commands_seen++;
	hum_buf b = { 0 };
	hum_buf_puts(&b, "{\"echo\":");
	hum_json_str(&b, req, len);
	hum_buf_putc(&b, '}');
	hum_api_reply(api, id, true, b.p, b.len);
	hum_buf_free(&b);
}

static int connect_to(const char *path)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	snprintf(sa.sun_path, sizeof sa.sun_path, "%s", path);
	if (connect(fd, (struct sockaddr *)&sa, sizeof sa) < 0) {
		close(fd);
		return -errno;
	}
	return fd;
}

static void send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		s += k;
		n -= (size_t)k;
	}
}

static void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

typedef struct conn {
	int fd;
	char buf[1 << 20];
	size_t len;
	int eof;
} conn;

/* Reads one line (without the newline) into out, running the default loop
 * while waiting.  Returns its length, or -1 on EOF/timeout. */
static long read_line(conn *c, char *out, size_t cap, double timeout)
{
	double end = mono() + timeout;
	while (1) {
		char *nl = memchr(c->buf, '\n', c->len);
		if (nl) {
			size_t n = (size_t)(nl - c->buf);
			size_t k = n < cap - 1 ? n : cap - 1;
			memcpy(out, c->buf, k);
			out[k] = 0;
			memmove(c->buf, nl + 1, c->len - n - 1);
			c->len -= n + 1;
			return (long)n;
		}
		if (c->eof || mono() > end)
			return -1;
		ev_run(loop, EVRUN_NOWAIT);
		struct pollfd p = { c->fd, POLLIN, 0 };
		if (poll(&p, 1, 5) > 0) {
			ssize_t k = recv(c->fd, c->buf + c->len, sizeof c->buf - c->len, 0);
			if (k > 0)
				c->len += (size_t)k;
			else if (k == 0 || (errno != EINTR && errno != EAGAIN))
				c->eof = 1;
		}
	}
}

static conn *open_conn(void)
{
	conn *c = calloc(1, sizeof *c);
	c->fd = connect_to(hum_api_path(api));
	return c;
}

static void close_conn(conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static char line[1 << 20];

static long ask(conn *c, const char *req)
{
	send_all(c->fd, req, strlen(req));
	return read_line(c, line, sizeof line, 10);
}

/* Sends one request line; true if the answer is one JSON object
 * {"ok":false[,"id":ID],"error":E} with E containing want and the id's JSON
 * text equal to id (NULL: no id). */
static int error_reply(conn *c, const char *request, const char *want, const char *id)
{
	int r = ask(c, request) > 0;
	json_t *v = r ? json_loads(line, 0, NULL) : NULL;
	const char *e = json_string_value(json_object_get(v, "error"));
	char *idtext = json_object_get(v, "id") ? json_dumps(json_object_get(v, "id"), JSON_ENCODE_ANY) : NULL;
	r = r && json_is_false(json_object_get(v, "ok")) && e && strstr(e, want) &&
	    (id ? idtext && strcmp(idtext, id) == 0 : !idtext) && json_object_size(v) == (id ? 3u : 2u);
	if (!r)
		fprintf(stderr, "request %s: answer %s, want error [%s] id %s\n", request, line, want, id ? id : "none");
	free(idtext);
	json_decref(v);
	return r;
}

static hum_entry *add_proc(const char *name, const char *groups, int state, int pid)
{
	/* "worker.1": a replica of "worker" (the supervisor is told so by its spec) */
	const char *dot = strchr(name, '.');
	hum_snap t = { .state = (uint8_t)state, .pid = pid, .exit_code = -1, .started_at_ms = 1700000000000LL,
		       .base_len = dot ? (uint32_t)(dot - name) : 0 };
	hum_snap *s = hum_snap_new(&t, name, groups, "because");
	hum_entry *e = hum_store_add(st, s);
	return e;
}

static void log_line(hum_entry *e, int stream, const char *text)
{
	hum_logring_append(&e->log, stream, 0, 1700000000500LL, text, strlen(text));
	hum_logring_commit(&e->log);
}

static char tmpdir[256];

static void test_api(void)
{
	loop = ev_default_loop(0);
	st = hum_store_new(0);
	hum_entry *web = add_proc("web", "front,back", HUM_RUNNING, 101);
	hum_entry *db = add_proc("db", "back", HUM_READY, 102);
	hum_entry *w1 = add_proc("worker.1", "", HUM_RUNNING, 103);
	hum_entry *w2 = add_proc("worker.2", "", HUM_STOPPED, 0);
	(void)w2;
	log_line(web, HUM_STREAM_OUT, "web one");
	log_line(db, HUM_STREAM_OUT, "db one");
	log_line(web, HUM_STREAM_ERR, "web two \"quoted\"");
	log_line(w1, HUM_STREAM_OUT, "worker says hi");
	log_line(db, HUM_STREAM_OUT, "db two ERROR here");
	hum_store_flush(st);

	snprintf(tmpdir, sizeof tmpdir, "/tmp/hum-apitest-XXXXXX");
	ok(mkdtemp(tmpdir) != NULL, "temp project dir");
	hum_api_opts o = { .store = st, .loop = loop, .on_command = on_command, .max_request = 4096 };
	char err[300];
	bool stale = true;
	int rc = hum_api_start(&api, tmpdir, &o, &stale, err, sizeof err);
	ok(rc == 0 && !stale, "api starts (%s)", err);
	if (rc)
		return;
	char want[400];
	snprintf(want, sizeof want, "%s/.hum/hum.sock", tmpdir);
	ok(strcmp(hum_api_path(api), want) == 0, "socket in .hum/ (%s)", hum_api_path(api));
	struct stat sb;
	ok(stat(want, &sb) == 0 && (sb.st_mode & 0777) == 0600, "socket mode 0600");
	snprintf(want, sizeof want, "%s/.hum", tmpdir);
	ok(stat(want, &sb) == 0 && (sb.st_mode & 0777) == 0700, ".hum mode 0700");
	char path2[200];
	ok(hum_api_socket_path(tmpdir, path2, sizeof path2) == 0 && strcmp(path2, hum_api_path(api)) == 0,
	   "clients compute the same path");

	/* a second instance is refused */
	hum_api *api2 = NULL;
	rc = hum_api_start(&api2, tmpdir, &o, NULL, err, sizeof err);
	ok(rc == -EADDRINUSE && strstr(err, "already running"), "second instance refused: %s", err);

	conn *c = open_conn();
	ok(c->fd >= 0, "client connects");
	ok(ask(c, "{\"cmd\":\"ping\",\"id\":1}\n") > 0 && strstr(line, "\"pong\":true") &&
	   strncmp(line, "{\"ok\":true,\"id\":1,", 18) == 0, "ping with id: %s", line);
	ok(ask(c, "{\"cmd\":\"ps\"}\n") > 0 && strstr(line, "\"name\":\"web\"") && strstr(line, "\"name\":\"db\"") &&
	   strstr(line, "\"state\":\"ready\"") && strstr(line, "\"pid\":101") && strstr(line, "\"group\":\"front\"") &&
	   strstr(line, "\"groups\":[\"front\",\"back\"]") && strstr(line, "\"pid\":null"), "ps lists processes");
	ok(ask(c, "{\"cmd\":\"status\",\"name\":\"db\",\"id\":\"s\"}\n") > 0 &&
	   strncmp(line, "{\"ok\":true,\"id\":\"s\"", 19) == 0 && strstr(line, "\"name\":\"db\"") &&
	   !strstr(line, "\"name\":\"web\""), "status of one: %.80s", line);
	ok(ask(c, "{\"cmd\":\"status\",\"name\":\"worker\"}\n") > 0 && strstr(line, "worker.1") &&
	   strstr(line, "worker.2"), "status of replicas");
	ok(ask(c, "{\"cmd\":\"status\",\"names\":[\"back\"]}\n") > 0 && strstr(line, "\"web\"") &&
	   strstr(line, "\"db\"") && !strstr(line, "worker"), "status of a group");
	ok(ask(c, "{\"cmd\":\"status\",\"name\":\"w*r.?\"}\n") > 0 && strstr(line, "worker.1") && !strstr(line, "\"web\""),
	   "status of a glob");
	ok(ask(c, "{\"cmd\":\"status\",\"name\":\"nope\"}\n") > 0 &&
	   strstr(line, "{\"ok\":false,\"error\":\"no process matches \\\"nope\\\"\"}"), "unknown name: %s", line);

	/* logs */
	ask(c, "{\"cmd\":\"logs\",\"names\":[\"web\"]}\n");
	ok(strstr(line, "\"line\":\"web one\"") && strstr(line, "\"stream\":\"out\"") && strstr(line, "\"name\":\"web\""),
	   "logs line 1: %s", line);
	read_line(c, line, sizeof line, 10);
	ok(strstr(line, "\"line\":\"web two \\\"quoted\\\"\"") && strstr(line, "\"stream\":\"err\""), "logs line 2: %s", line);
	read_line(c, line, sizeof line, 10);
	ok(strcmp(line, "{\"ok\":true,\"end\":true,\"lines\":2}") == 0, "logs end: %s", line);
	/* merged, last 3 of all */
	ask(c, "{\"cmd\":\"logs\",\"n\":3}\n");
	int okm = strstr(line, "web two") != NULL;
	read_line(c, line, sizeof line, 10);
	okm = okm && strstr(line, "worker says hi");
	read_line(c, line, sizeof line, 10);
	okm = okm && strstr(line, "db two");
	read_line(c, line, sizeof line, 10);
	ok(okm && strstr(line, "\"lines\":3"), "merged tail in seq order");
	/* grep (regex and plain) and stream */
	ask(c, "{\"cmd\":\"logs\",\"grep\":\"E[R]+OR|hi$\"}\n");
	okm = strstr(line, "worker says hi") != NULL;
	read_line(c, line, sizeof line, 10);
	okm = okm && strstr(line, "db two ERROR");
	read_line(c, line, sizeof line, 10);
	ok(okm && strstr(line, "\"lines\":2"), "grep with a regex");
	ask(c, "{\"cmd\":\"logs\",\"grep\":\"one\",\"names\":[\"back\"],\"n\":1}\n");
	okm = strstr(line, "db one") != NULL;
	read_line(c, line, sizeof line, 10);
	ok(okm && strstr(line, "\"lines\":1"), "plain grep, group, n=1");
	ask(c, "{\"cmd\":\"logs\",\"stream\":\"err\"}\n");
	okm = strstr(line, "web two") != NULL;
	read_line(c, line, sizeof line, 10);
	ok(okm && strstr(line, "\"lines\":1"), "stream filter");
	ask(c, "{\"cmd\":\"logs\",\"since\":1800000000}\n");
	ok(strstr(line, "\"lines\":0") != NULL, "since filter");
	ask(c, "{\"cmd\":\"logs\",\"grep\":\"(\"}\n");
	ok(strstr(line, "bad grep pattern") != NULL, "bad regex: %s", line);
	ask(c, "{\"cmd\":\"logs\",\"n\":-1}\n");
	ok(strstr(line, "n must be") != NULL, "bad n");
	ask(c, "{\"cmd\":\"logs\",\"n\":1e400}\n");
	ok(strstr(line, "real number overflow") != NULL, "huge n");
	ask(c, "{\"cmd\":\"logs\",\"since\":1e300}\n");
	ok(strstr(line, "since must be") != NULL, "huge since");

	/* errors */
	ok(ask(c, "{\"cmd\":\n") > 0 && strstr(line, "malformed request") && strstr(line, "\"ok\":false"), "malformed: %s", line);
	ok(ask(c, "[1,2]\n") > 0 && strstr(line, "must be a JSON object"), "not an object");
	ok(ask(c, "{\"id\":3}\n") > 0 && strstr(line, "missing \\\"cmd\\\"") && strstr(line, "\"id\":3"), "missing cmd");
	ok(ask(c, "{\"cmd\":\"fly\",\"id\":4}\n") > 0 && strstr(line, "unknown command \\\"fly\\\""), "unknown cmd");
	ok(ask(c, "{\"cmd\":\"ps\",\"id\":{}}\n") > 0 && strstr(line, "id must be"), "bad id");
	ok(ask(c, "\n  \r\n{\"cmd\":\"ping\"}\r\n") > 0 && strstr(line, "pong"), "blank lines skipped, CRLF ok");
	/* each kind of bad request, through the socket: the whole reply */
	ok(error_reply(c, "{\"cmd\":\"ps\",\"id\":1,\"cmd\":\"eval\"}\n", "malformed request: at byte 24: duplicate object key", NULL),
	   "duplicate key: error reply");
	ok(error_reply(c, "{\"id\":2,\"cmd\":\"status\",\"name\":\"web\\u0000x\"}\n",
		       "malformed request: at byte 42: \\u0000 in a string is not allowed", NULL) &&
	   strcmp(line, "{\"ok\":false,\"error\":\"malformed request: at byte 42: \\\\u0000 in a string is not allowed\"}") == 0,
	   "\\u0000 in a name: error reply, not a match for web: %s", line);
	ok(error_reply(c, "{\"cmd\":\"status\",\"name\":\"we\xff\xfe\"}\n", "unable to decode byte 0xff", NULL),
	   "invalid UTF-8 in a request: an error reply that is valid JSON");
	ok(error_reply(c, "{\"cmd\":\"ps\",\"x\":[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]}\n",
		       "request nested too deeply (more than 32 levels)", NULL), "too deep: error reply");
	ok(error_reply(c, "{\"id\":\"v\",\"cmd\":\"logs\",\"follow\":\"yes\"}\n", "follow must be true or false", "\"v\"") &&
	   strcmp(line, "{\"ok\":false,\"id\":\"v\",\"error\":\"follow must be true or false\"}") == 0,
	   "wrong field type: error reply with the id");
	ok(error_reply(c, "{\"id\":[1],\"cmd\":\"ps\"}\n", "id must be an integer or a string", NULL) &&
	   error_reply(c, "{\"id\":7,\"cmd\":\"stop\",\"targets\":{}}\n", "targets must be", "7") &&
	   error_reply(c, "\"ps\"\n", "a request must be a JSON object", NULL) &&
	   error_reply(c, "{\"cmd\":\"ps\"} {}\n", "malformed request: at byte", NULL), "more error replies");
	ok(ask(c, "{\"id\":\"\\u00e9\\t\",\"cmd\":\"ping\"}\n") > 0 && strncmp(line, "{\"ok\":true,\"id\":\"\xc3\xa9\\t\",", 21) == 0,
	   "a string id is echoed as JSON");
	ok(commands_seen == 0, "no bad request reached the loop thread");
	/* grep patterns glibc's regcomp would take gigabytes or seconds over:
	 * PCRE2 refuses them at once (test_grep has its bounds) */
	double t_re = mono();
	ok(error_reply(c, "{\"cmd\":\"logs\",\"grep\":\"hi++++++++++++++++++++++++++++++++++++++++++++++++++$\",\"id\":1}\n",
		       "bad grep pattern: quantifier does not follow a repeatable item", "1") &&
	   error_reply(c, "{\"cmd\":\"logs\",\"grep\":\"time*??????????????~\"}\n",
		       "bad grep pattern: quantifier does not follow a repeatable item", NULL) &&
	   mono() - t_re < 1, "grep patterns regcomp cannot bound: error replies (%.3fs)", mono() - t_re);
	long got_re = ask(c, "{\"cmd\":\"logs\",\"grep\":\"(one|two|ERR?OR)+[[:space:]]*$\"}\n");
	int lines_re = 0;
	while (got_re > 0 && strstr(line, "\"seq\"")) {
		lines_re++;
		got_re = read_line(c, line, sizeof line, 10);
	}
	ok(lines_re == 2 && strstr(line, "\"ok\":true,\"end\":true,\"lines\":2"), "an ordinary pattern still works: %s", line);

	/* commands go to the loop thread and come back with the id */
	ok(ask(c, "{\"cmd\":\"eval\",\"code\":\"1+1\",\"id\":\"e1\"}\n") > 0 &&
	   strncmp(line, "{\"ok\":true,\"id\":\"e1\",\"echo\":", 28) == 0 && commands_seen == 1, "command round trip: %s", line);
	/* pipelined: a read after a command is answered after the command */
	send_str(c->fd, "{\"cmd\":\"stop\",\"id\":10}\n{\"cmd\":\"ping\",\"id\":11}\n");
	read_line(c, line, sizeof line, 10);
	okm = strstr(line, "\"id\":10") != NULL;
	read_line(c, line, sizeof line, 10);
	ok(okm && strstr(line, "\"id\":11"), "requests answered in order");

	/* oversized (limit 4096 here) */
	conn *big = open_conn();
	char *huge = malloc(10000);
	memset(huge, ' ', 10000);
	memcpy(huge, "{\"cmd\":\"ps\",\"x\":\"", 17);
	send_all(big->fd, huge, 10000);
	ok(read_line(big, line, sizeof line, 10) > 0 && strstr(line, "request too large"), "oversized: %s", line);
	ok(read_line(big, line, sizeof line, 10) < 0 && big->eof, "then closed");
	close_conn(big);
	free(huge);

	/* truncated: no newline before EOF */
	conn *tr = open_conn();
	send_str(tr->fd, "{\"cmd\":\"ps\"");
	shutdown(tr->fd, SHUT_WR);
	ok(read_line(tr, line, sizeof line, 10) > 0 && strstr(line, "truncated request"), "truncated: %s", line);
	ok(read_line(tr, line, sizeof line, 10) < 0 && tr->eof, "then closed");
	close_conn(tr);
	/* half-closed after a complete request: answered, then closed */
	conn *hc = open_conn();
	send_str(hc->fd, "{\"cmd\":\"ping\"}\n");
	shutdown(hc->fd, SHUT_WR);
	ok(read_line(hc, line, sizeof line, 10) > 0 && strstr(line, "pong"), "half-closed request answered");
	ok(read_line(hc, line, sizeof line, 10) < 0 && hc->eof, "then closed");
	close_conn(hc);
	/* half-closed while a command is in flight: the reply still comes */
	hc = open_conn();
	send_str(hc->fd, "{\"cmd\":\"down\"}\n");
	shutdown(hc->fd, SHUT_WR);
	ok(read_line(hc, line, sizeof line, 10) > 0 && strstr(line, "echo"), "command after half-close answered");
	close_conn(hc);

	/* 50 concurrent clients */
	conn *many[50];
	for (int i = 0; i < 50; i++) {
		many[i] = open_conn();
		send_str(many[i]->fd, "{\"cmd\":\"ps\"}\n{\"cmd\":\"logs\",\"n\":1}\n");
	}
	int good = 0;
	for (int i = 0; i < 50; i++) {
		if (read_line(many[i], line, sizeof line, 10) > 0 && strstr(line, "\"procs\":[") &&
		    read_line(many[i], line, sizeof line, 10) > 0 && strstr(line, "db two") &&
		    read_line(many[i], line, sizeof line, 10) > 0 && strstr(line, "\"end\":true"))
			good++;
		close_conn(many[i]);
	}
	ok(good == 50, "50 concurrent clients answered (%d)", good);

	/* a client that never reads does not block others */
	conn *lazy = open_conn();
	fcntl(lazy->fd, F_SETFL, O_NONBLOCK);
	size_t sent = 0;
	const char *req = "{\"cmd\":\"ps\"}\n";
	for (int i = 0; i < 200000; i++) {
		ssize_t k = send(lazy->fd, req, strlen(req), MSG_NOSIGNAL);
		if (k <= 0)
			break;
		sent += (size_t)k;
	}
	double t0 = mono();
	int fast = 1;
	for (int i = 0; i < 20; i++) {
		if (ask(c, "{\"cmd\":\"ps\"}\n") <= 0 || !strstr(line, "procs"))
			fast = 0;
	}
	ok(fast && mono() - t0 < 5, "others are served while a client never reads (%zu bytes queued, %.3fs)", sent,
	   mono() - t0);
	hum_api_stats stats;
	hum_api_get_stats(api, &stats);
	ok(stats.clients >= 2, "the lazy client is still connected (%u clients)", stats.clients);
	close_conn(lazy);

	/* follow */
	conn *f = open_conn();
	send_str(f->fd, "{\"cmd\":\"logs\",\"names\":[\"web\",\"db\"],\"n\":0,\"follow\":true,\"id\":9}\n");
	/* let the request arrive before lines are added */
	ok(ask(c, "{\"cmd\":\"ping\"}\n") > 0, "ping while following");
	for (int i = 0; i < 200 && !stats.reads; i++) {
		hum_api_get_stats(api, &stats);
	}
	double until = mono() + 0.3;
	while (mono() < until)
		ev_run(loop, EVRUN_NOWAIT);
	log_line(web, HUM_STREAM_OUT, "web three");
	log_line(w1, HUM_STREAM_OUT, "not followed");
	log_line(db, HUM_STREAM_OUT, "db three");
	hum_store_flush(st);
	ok(read_line(f, line, sizeof line, 10) > 0 && strstr(line, "web three"), "follow: new line 1: %s", line);
	ok(read_line(f, line, sizeof line, 10) > 0 && strstr(line, "db three"), "follow: new line 2 (in order): %s", line);

	/* stale socket: stop, leave a dead socket file, start again */
	hum_api_stop(api);
	ok(read_line(f, line, sizeof line, 10) > 0 && strstr(line, "\"end\":true") && strstr(line, "server stopping") &&
	   strstr(line, "\"id\":9"), "follow ends when the server stops: %s", line);
	close_conn(f);
	close_conn(c);
	snprintf(want, sizeof want, "%s/.hum/hum.sock", tmpdir);
	ok(access(want, F_OK) != 0, "socket removed at stop");
	int s = socket(AF_UNIX, SOCK_STREAM, 0);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, want, strlen(want) + 1 < sizeof sa.sun_path ? strlen(want) + 1 : sizeof sa.sun_path - 1);
	ok(bind(s, (struct sockaddr *)&sa, sizeof sa) == 0, "made a stale socket");
	close(s);
	rc = hum_api_start(&api, tmpdir, &o, &stale, err, sizeof err);
	ok(rc == 0 && stale, "stale socket replaced (%s)", err);
	c = open_conn();
	ok(ask(c, "{\"cmd\":\"ping\"}\n") > 0 && strstr(line, "pong"), "new instance answers");
	close_conn(c);
	hum_api_stop(api);

	/* a file that is not a socket is not removed */
	int fd = open(want, O_CREAT | O_WRONLY, 0600);
	close(fd);
	rc = hum_api_start(&api, tmpdir, &o, &stale, err, sizeof err);
	ok(rc < 0 && strstr(err, "not a socket"), "refuses to replace a regular file: %s", err);
	unlink(want);

	/* long project path: fallback socket path */
	char longdir[400];
	int k = snprintf(longdir, sizeof longdir, "%s/", tmpdir);
	memset(longdir + k, 'd', 120);
	longdir[k + 120] = 0;
	mkdir(longdir, 0700);
	unsetenv("XDG_RUNTIME_DIR");
	char fb[200];
	ok(hum_api_socket_path(longdir, fb, sizeof fb) == -ENOENT, "long path, nobody listens: no socket path");
	rc = hum_api_start(&api, longdir, &o, &stale, err, sizeof err);
	ok(rc == 0, "listens on the fallback (%s)", err);
	ok(hum_api_socket_path(longdir, fb, sizeof fb) == 0 && strncmp(fb, "/tmp/hum-", 9) == 0 &&
	   strlen(fb) < sizeof sa.sun_path && strcmp(hum_api_path(api), fb) == 0,
	   "long path falls back to a recorded private directory: %s", fb);
	struct stat fsb;
	char fbdir[200];
	snprintf(fbdir, sizeof fbdir, "%s", fb);
	*strrchr(fbdir, '/') = 0;
	ok(lstat(fbdir, &fsb) == 0 && S_ISDIR(fsb.st_mode) && (fsb.st_mode & 0777) == 0700,
	   "the fallback directory is private (%s)", fbdir);
	if (rc == 0) {
		c = open_conn();
		ok(ask(c, "{\"cmd\":\"ps\"}\n") > 0 && strstr(line, "procs"), "fallback answers");
		close_conn(c);
		hum_api_stop(api);
		ok(lstat(fbdir, &fsb) < 0 && errno == ENOENT, "the fallback directory is removed at stop");
	}
	hum_store_free(st);
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", tmpdir);
}

/* A follower that does not read: its output stays bounded, the lines it
 * could not take are counted and reported once it reads again. */
static void test_slow_follower(void)
{
	st = hum_store_new(64 * 1024);
	hum_entry *e = add_proc("fast", "", HUM_RUNNING, 1);
	hum_store_flush(st);
	char dir[64] = "/tmp/hum-apitest2-XXXXXX";
	ok(mkdtemp(dir) != NULL, "temp dir");
	hum_api_opts o = { .store = st, .loop = loop, .on_command = on_command, .max_output = 65536,
			   .follow_interval = 0.01 };
	char err[300];
	if (hum_api_start(&api, dir, &o, NULL, err, sizeof err) != 0) {
		ok(0, "api starts: %s", err);
		return;
	}
	conn *f = open_conn();
	send_str(f->fd, "{\"cmd\":\"logs\",\"n\":0,\"follow\":true}\n");
	conn *c = open_conn();
	ok(ask(c, "{\"cmd\":\"ping\"}\n") > 0, "ping");
	double until = mono() + 0.2;
	while (mono() < until)
		ev_run(loop, EVRUN_NOWAIT);
	char text[128];
	int total = 30000;
	for (int i = 1; i <= total; i++) {
		snprintf(text, sizeof text, "line %06d %s", i, "................................................");
		hum_logring_append(&e->log, HUM_STREAM_OUT, 0, 1700000000000LL, text, strlen(text));
		if (i % 100 == 0) {
			hum_logring_commit(&e->log);
			hum_store_flush(st);
			ev_run(loop, EVRUN_NOWAIT);
			if (i % 5000 == 0) {
				until = mono() + 0.05;
				while (mono() < until)
					ev_run(loop, EVRUN_NOWAIT);
			}
		}
	}
	hum_logring_commit(&e->log);
	hum_store_flush(st);
	ok(ask(c, "{\"cmd\":\"ps\"}\n") > 0 && strstr(line, "\"lines\":30000"), "server fine while the follower lags");
	long got = 0, dropped = 0, last = 0, order = 1;
	while (got + dropped < total) {
		if (read_line(f, line, sizeof line, 10) < 0)
			break;
		if (strncmp(line, "{\"dropped\":", 11) == 0) {
			dropped += atol(line + 11);
		} else {
			const char *p = strstr(line, "line ");
			long k = p ? atol(p + 5) : -1;
			if (k <= last)
				order = 0;
			last = k;
			got++;
		}
	}
	ok(dropped > 0 && got > 0 && order, "lines in order, some dropped (%ld got, %ld dropped)", got, dropped);
	ok(got + dropped == total, "every line delivered or counted (%ld + %ld = %d)", got, dropped, total);
	close_conn(f);
	close_conn(c);
	hum_api_stop(api);
	hum_store_free(st);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* Slots: followers can never take the last FOLLOW_RESERVE (32); a follower
 * that goes away is freed though it follows a quiet process; an idle
 * connection is closed after idle_timeout. */
static void test_slots(void)
{
	st = hum_store_new(64 * 1024);
	hum_entry *e = add_proc("quiet", "", HUM_RUNNING, 1);
	log_line(e, HUM_STREAM_OUT, "hello");
	hum_store_flush(st);
	char dir[64] = "/tmp/hum-apitest3-XXXXXX";
	ok(mkdtemp(dir) != NULL, "temp dir");
	hum_api_opts o = { .store = st, .loop = loop, .on_command = on_command, .max_clients = 40,
			   .idle_timeout = 0.4, .follow_interval = 0.01 };
	char err[300];
	if (hum_api_start(&api, dir, &o, NULL, err, sizeof err) != 0) {
		ok(0, "api starts: %s", err);
		return;
	}
	conn *f[9];
	int followed = 0;
	for (int i = 0; i < 9; i++) {
		f[i] = open_conn();
		if (ask(f[i], "{\"cmd\":\"logs\",\"names\":[\"quiet\"],\"n\":1,\"follow\":true}\n") > 0 &&
		    strstr(line, "hello"))
			followed++;
	}
	ok(followed == 8 && strstr(line, "too many followers"), "8 of 40 slots may follow, the 9th is refused: %s",
	   line);
	conn *c = open_conn();
	ok(ask(c, "{\"cmd\":\"ps\"}\n") > 0 && strstr(line, "\"procs\""), "ps gets a reserved slot");
	hum_api_stats stats;
	for (int i = 0; i < 8; i++)
		close_conn(f[i]); /* they go away without a word */
	double until = mono() + 10;
	do {
		ev_run(loop, EVRUN_NOWAIT);
		hum_api_get_stats(api, &stats);
	} while (stats.clients > 2 && mono() < until);
	ok(stats.clients <= 2, "followers of a quiet process that went away are freed (%u left)", stats.clients);
	/* c and f[8] sit idle: closed after 0.4 s */
	ok(read_line(c, line, sizeof line, 10) < 0 && c->eof, "an idle connection is closed");
	close_conn(c);
	close_conn(f[8]);
	hum_api_stop(api);
	hum_store_free(st);
	char cmd[200];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

int main(void)
{
	test_writer();
	test_request();
	test_grep();
	test_api();
	test_slow_follower();
	test_slots();
	return done_testing();
}

/*
 * api_parse_unit.c — what the control socket parses and writes, without a
 * socket or a thread: the JSON writer every answer goes through, request
 * parsing and validation (every kind of bad request and the error it gets,
 * mutated requests), and --grep patterns (PCRE2's bounds).
 *
 * Separate from api_socket_unit.c and api_limits_unit.c, which run the API
 * thread against a real store: these are pure functions, fast and
 * deterministic, with the bulk of the cases.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <jansson.h>

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

int main(void)
{
	test_writer();
	test_request();
	test_grep();
	return done_testing();
}

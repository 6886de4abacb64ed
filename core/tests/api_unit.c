/*
 * api_unit.c — the control socket in-process: JSON encoder and parser, and
 * the API thread against a real store.  This thread plays the loop thread:
 * it owns the store (the writer) and the default loop that receives
 * commands, and it runs that loop while it waits for answers.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
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

#include "api/api.h"
#include "api/json.h"
#include "state/store.h"
#include "tap.h"

/* JSON ----------------------------------------------------------------------- */

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
static void e4(hum_buf *b) { hum_json_ms(b, 1700000000123LL); hum_buf_putc(b, ' '); hum_json_ms(b, 5); }
static void e5(hum_buf *b) { hum_json_cstr(b, NULL); }

static void test_encoder(void)
{
	ok(enc_is(e1, "\"a\\\"b\\\\c\\n\\t\\u0001\""), "escapes quotes, backslashes and controls");
	ok(enc_is(e2, "\"ok \xc3\xa9 \xef\xbf\xbd bad \xef\xbf\xbd\xef\xbf\xbd\""),
	   "keeps valid UTF-8, replaces invalid bytes with U+FFFD");
	ok(enc_is(e3, "0 -42 18446744073709551615"), "integers");
	ok(enc_is(e4, "1700000000.123 0.005"), "milliseconds as seconds");
	ok(enc_is(e5, "null"), "NULL string is null");
}

static void test_parser(void)
{
	hum_jarena *a = hum_jarena_new();
	char err[200];
	const char *good = " {\"id\": 7, \"cmd\":\"logs\",\"names\":[\"a\",\"b\\u00e9\\ud83d\\ude00\"],"
			   "\"n\":-1.5e2,\"f\":true,\"z\":null,\"o\":{\"x\":[[],{}]}} ";
	hum_jval *v = hum_json_parse(a, good, strlen(good), err, sizeof err);
	ok(v && v->type == HUM_JOBJ && v->count == 7, "parses an object (%s)", v ? "" : err);
	const hum_jval *id = hum_json_get(v, "id");
	ok(id && id->type == HUM_JNUM && id->num == 7 && id->rawlen == 1 && id->raw[0] == '7', "number with raw text");
	const hum_jval *names = hum_json_get(v, "names");
	ok(names && names->type == HUM_JARR && names->count == 2 && strcmp(names->child->str, "a") == 0 &&
	   strcmp(names->child->next->str, "b\xc3\xa9\xf0\x9f\x98\x80") == 0, "array of strings, \\u and surrogates");
	ok(hum_json_get(v, "n")->num == -150, "exponent");
	ok(hum_json_get(v, "f")->type == HUM_JTRUE && hum_json_get(v, "z")->type == HUM_JNULL, "literals");
	ok(hum_json_get(v, "missing") == NULL, "missing key");

	static const char *bad[] = {
		"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "[1,]", "{'a':1}", "{\"a\":01}",
		"{\"a\":1} x", "\"\\x\"", "\"\\ud800\"", "\"a\nb\"", "{\"a\":tru}", "-", "1.", "{\"a\" 1}",
		"nul", "[1 2]", "\"abc",
	};
	int all = 1;
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		hum_jarena_reset(a);
		if (hum_json_parse(a, bad[i], strlen(bad[i]), err, sizeof err) != NULL) {
			fprintf(stderr, "accepted bad JSON: %s\n", bad[i]);
			all = 0;
		} else if (!strstr(err, "at byte")) {
			all = 0;
		}
	}
	ok(all, "rejects %zu malformed documents with a position", sizeof bad / sizeof bad[0]);

	char deep[200];
	memset(deep, '[', 100);
	memset(deep + 100, ']', 100);
	hum_jarena_reset(a);
	ok(hum_json_parse(a, deep, 200, err, sizeof err) == NULL && strstr(err, "deeply"), "depth limit");
	/* many values: the node limit */
	size_t n = 2 * HUM_JSON_MAX_NODES + 8;
	char *many = malloc(n + 2);
	many[0] = '[';
	for (size_t i = 1; i < n; i += 2) {
		many[i] = '0';
		many[i + 1] = ',';
	}
	many[n - 1] = '0';
	many[n] = ']';
	hum_jarena_reset(a);
	ok(hum_json_parse(a, many, n + 1, err, sizeof err) == NULL && strstr(err, "too many"), "node limit");
	free(many);
	/* a big string uses its own block and the arena survives reset */
	size_t bn = 300000;
	char *big = malloc(bn + 3);
	big[0] = '"';
	memset(big + 1, 'q', bn);
	big[bn + 1] = '"';
	hum_jarena_reset(a);
	v = hum_json_parse(a, big, bn + 2, err, sizeof err);
	ok(v && v->type == HUM_JSTR && v->len == bn, "large string");
	hum_jarena_reset(a);
	v = hum_json_parse(a, "{\"k\":\"v\"}", 9, err, sizeof err);
	ok(v && strcmp(hum_json_get(v, "k")->str, "v") == 0, "arena reusable after reset");
	free(big);

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
		for (int k = 0; k < edits; k++) {
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
		hum_jarena_reset(a);
		hum_jval *r = hum_json_parse(a, copy, m, err, sizeof err);
		verdicts += r != NULL || err[0] != 0;
		free(copy);
	}
	ok(verdicts == 20000, "20000 mutated requests parsed or rejected");
	hum_jarena_free(a);
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
	hum_buf_puts(&b, "{\"ok\":true,\"echo\":");
	hum_json_str(&b, req, len);
	hum_buf_putc(&b, '}');
	hum_api_reply(api, id, b.p, b.len);
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
	ok(strstr(line, "n must be") != NULL, "huge n");
	ask(c, "{\"cmd\":\"logs\",\"since\":1e300}\n");
	ok(strstr(line, "since must be") != NULL, "huge since");

	/* errors */
	ok(ask(c, "{\"cmd\":\n") > 0 && strstr(line, "malformed request") && strstr(line, "\"ok\":false"), "malformed: %s", line);
	ok(ask(c, "[1,2]\n") > 0 && strstr(line, "must be a JSON object"), "not an object");
	ok(ask(c, "{\"id\":3}\n") > 0 && strstr(line, "missing \\\"cmd\\\"") && strstr(line, "\"id\":3"), "missing cmd");
	ok(ask(c, "{\"cmd\":\"fly\",\"id\":4}\n") > 0 && strstr(line, "unknown command \\\"fly\\\""), "unknown cmd");
	ok(ask(c, "{\"cmd\":\"ps\",\"id\":{}}\n") > 0 && strstr(line, "id must be"), "bad id");
	ok(ask(c, "\n  \r\n{\"cmd\":\"ping\"}\r\n") > 0 && strstr(line, "pong"), "blank lines skipped, CRLF ok");

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
	ok(hum_api_socket_path(longdir, fb, sizeof fb) == 0 && strncmp(fb, "/tmp/hum-", 9) == 0 &&
	   strlen(fb) < sizeof sa.sun_path, "long path falls back: %s", fb);
	rc = hum_api_start(&api, longdir, &o, &stale, err, sizeof err);
	ok(rc == 0 && strcmp(hum_api_path(api), fb) == 0, "listens on the fallback (%s)", err);
	if (rc == 0) {
		c = open_conn();
		ok(ask(c, "{\"cmd\":\"ps\"}\n") > 0 && strstr(line, "procs"), "fallback answers");
		close_conn(c);
		hum_api_stop(api);
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

int main(void)
{
	test_encoder();
	test_parser();
	test_api();
	test_slow_follower();
	return done_testing();
}

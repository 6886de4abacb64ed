/*
 * api_socket_unit.c — the control socket end to end, in-process: the API
 * thread against a real store, through real client sockets.  Where the
 * socket lives and its modes, one instance per project, every read (ping,
 * ps, status, logs with each filter), error replies to bad requests,
 * commands round-tripped through the loop thread, pipelining, oversized,
 * truncated and half-closed requests, 50 clients at once, a client that
 * never reads, a follower until the server stops, a stale socket replaced,
 * and the fallback path for a long project directory.
 *
 * Separate from api_parse_unit.c (the parser and writer alone, no socket)
 * and api_limits_unit.c (the bounds on slow followers and slots, which
 * need their own servers with small limits).  Harness: api_util.h.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <ev.h>
#include <jansson.h>

#include "api_util.h"

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

/* Asks a logs request; true if its answer's lines contain want[0],
 * want[1], ... (NULL-terminated), one each in that order, and the line
 * after them contains end. */
static int logs_answer(conn *c, const char *req, const char *const want[], const char *end)
{
	ask(c, req);
	int r = 1;
	for (size_t i = 0; want[i]; i++) {
		r = r && strstr(line, want[i]) != NULL;
		read_line(c, line, sizeof line, 10);
	}
	return r && strstr(line, end) != NULL;
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
	ok(logs_answer(c, "{\"cmd\":\"logs\",\"n\":3}\n", (const char *const[]){ "web two", "worker says hi", "db two", NULL },
		       "\"lines\":3"), "merged tail in seq order");
	/* grep (regex and plain) and stream */
	ok(logs_answer(c, "{\"cmd\":\"logs\",\"grep\":\"E[R]+OR|hi$\"}\n",
		       (const char *const[]){ "worker says hi", "db two ERROR", NULL }, "\"lines\":2"),
	   "grep with a regex");
	ok(logs_answer(c, "{\"cmd\":\"logs\",\"grep\":\"one\",\"names\":[\"back\"],\"n\":1}\n",
		       (const char *const[]){ "db one", NULL }, "\"lines\":1"), "plain grep, group, n=1");
	ok(logs_answer(c, "{\"cmd\":\"logs\",\"stream\":\"err\"}\n", (const char *const[]){ "web two", NULL },
		       "\"lines\":1"), "stream filter");
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
	int okm = strstr(line, "\"id\":10") != NULL;
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
	remove_dir(tmpdir);
}

int main(void)
{
	test_api();
	return done_testing();
}

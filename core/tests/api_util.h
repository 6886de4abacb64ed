/*
 * api_util.h — harness shared by the tests that run the API thread against
 * a real store (api_socket_unit.c, api_limits_unit.c).  The test's thread
 * plays the loop thread: it owns the store (the writer) and the default
 * loop that receives commands (on_command echoes each back), and it runs
 * that loop while it waits for answers (read_line).  Clients are plain
 * sockets (conn) that send request lines and read answer lines.
 *
 * A header of static functions, not a library: each test program is one
 * .c file (Makefile), and not every test uses every helper.
 */
#ifndef HUM_API_UTIL_H
#define HUM_API_UTIL_H

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <ev.h>

#include "api/api.h"
#include "api/jsonw.h"
#include "state/store.h"
#include "tap.h"

#define API_UTIL static __attribute__((unused)) /* not every test uses all */

static hum_store *st;
static hum_api *api;
static struct ev_loop *loop; /* the default loop: set it before hum_api_start */
static int commands_seen;

/* Seconds on the monotonic clock. */
API_UTIL double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* The host's command callback, on the default loop. */
API_UTIL void on_command(void *ud, uint32_t id, const char *req, size_t len)
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

/* A connected socket to path, or -errno. */
API_UTIL int connect_to(const char *path)
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

/* Sends all n bytes, blocking (gives up on an error). */
API_UTIL void send_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t k = send(fd, s, n, MSG_NOSIGNAL);
		if (k <= 0)
			return;
		s += k;
		n -= (size_t)k;
	}
}

API_UTIL void send_str(int fd, const char *s) { send_all(fd, s, strlen(s)); }

typedef struct conn {
	int fd;
	char buf[1 << 20];
	size_t len;
	int eof;
} conn;

/* Reads one line (without the newline) into out, running the default loop
 * while waiting.  Returns its length, or -1 on EOF/timeout. */
API_UTIL long read_line(conn *c, char *out, size_t cap, double timeout)
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

/* A new client of the running API (fd < 0 if it could not connect). */
API_UTIL conn *open_conn(void)
{
	conn *c = calloc(1, sizeof *c);
	c->fd = connect_to(hum_api_path(api));
	return c;
}

/* Closes and frees a client. */
API_UTIL void close_conn(conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static char line[1 << 20]; /* the last answer line ask() read */

/* Sends one request line, reads one answer line into `line`: its length,
 * or -1 on EOF or after 10 s. */
API_UTIL long ask(conn *c, const char *req)
{
	send_all(c->fd, req, strlen(req));
	return read_line(c, line, sizeof line, 10);
}

/* A process in the store, its snapshot as the supervisor would publish it. */
API_UTIL hum_entry *add_proc(const char *name, const char *groups, int state, int pid)
{
	/* "worker.1": a replica of "worker" (the supervisor is told so by its spec) */
	const char *dot = strchr(name, '.');
	hum_snap t = { .state = (uint8_t)state, .pid = pid, .exit_code = -1, .started_at_ms = 1700000000000LL,
		       .base_len = dot ? (uint32_t)(dot - name) : 0 };
	hum_snap *s = hum_snap_new(&t, name, groups, "because");
	hum_entry *e = hum_store_add(st, s);
	return e;
}

/* One committed log line of e, at a fixed time. */
API_UTIL void log_line(hum_entry *e, int stream, const char *text)
{
	hum_logring_append(&e->log, stream, 0, 1700000000500LL, text, strlen(text));
	hum_logring_commit(&e->log);
}

/* Removes a test's temporary project directory. */
API_UTIL void remove_dir(const char *dir)
{
	char cmd[600];
	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
}

/* Makes a temporary project directory from the template in dir (filled in)
 * and starts the API there, with two assertions: "temp dir", and only when
 * the API does not start, a failed "api starts" with its error.  True if
 * it listens. */
API_UTIL bool start_in_temp(char *dir, const hum_api_opts *o)
{
	ok(mkdtemp(dir) != NULL, "temp dir");
	char err[300];
	if (hum_api_start(&api, dir, o, NULL, err, sizeof err) != 0) {
		ok(0, "api starts: %s", err);
		return false;
	}
	return true;
}

/* The end of a test started with start_in_temp: stops the API, frees the
 * store, removes the directory. */
API_UTIL void stop_in_temp(const char *dir)
{
	hum_api_stop(api);
	hum_store_free(st);
	remove_dir(dir);
}

#endif

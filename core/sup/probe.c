/*
 * probe.c — TCP and HTTP readiness checks as small state machines on libev.
 * A check owns its socket and watchers and frees itself after calling back.
 */
#include <errno.h>
#include <netdb.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe.h"

typedef struct check {
	ev_io io;
	ev_timer timer;
	struct ev_loop *loop;
	hum_probe_cb cb;
	void *ud;
	int fd;
	char *request; /* NULL for tcp */
	size_t req_len, req_sent;
	char resp[256];
	size_t resp_len;
} check;

static void finish(check *c, int ok, int status, const char *err)
{
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	if (c->fd >= 0)
		close(c->fd);
	c->cb(c->ud, ok, status, err);
	free(c->request);
	free(c);
}

/* "HTTP/1.1 200 OK\r\n" -> 200 once the status line is complete; 0 = need more; -1 bad. */
static int status_code(const char *buf, size_t len)
{
	const char *eol = memchr(buf, '\n', len);
	if (!eol)
		return len >= sizeof(((check *)0)->resp) - 1 ? -1 : 0;
	int code;
	if (sscanf(buf, "HTTP/%*d.%*d %3d", &code) == 1 && code >= 100 && code <= 599)
		return code;
	return -1;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	check *c = (check *)w;
	char msg[128];
	if (c->req_sent == 0 && (revents & EV_WRITE)) {
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) {
			snprintf(msg, sizeof msg, "connect: %s", strerror(err));
			return finish(c, 0, 0, msg);
		}
		if (!c->request)
			return finish(c, 1, 0, NULL);
	}
	if (c->request && c->req_sent < c->req_len) {
		ssize_t n = send(c->fd, c->request + c->req_sent, c->req_len - c->req_sent, MSG_NOSIGNAL);
		if (n < 0 && errno != EAGAIN && errno != EINTR) {
			snprintf(msg, sizeof msg, "send: %s", strerror(errno));
			return finish(c, 0, 0, msg);
		}
		if (n > 0)
			c->req_sent += (size_t)n;
		if (c->req_sent == c->req_len) {
			ev_io_stop(loop, &c->io);
			ev_io_set(&c->io, c->fd, EV_READ);
			ev_io_start(loop, &c->io);
		}
		return;
	}
	if (revents & EV_READ) {
		ssize_t n = recv(c->fd, c->resp + c->resp_len, sizeof c->resp - 1 - c->resp_len, 0);
		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				return;
			snprintf(msg, sizeof msg, "recv: %s", strerror(errno));
			return finish(c, 0, 0, msg);
		}
		c->resp_len += (size_t)n;
		int code = status_code(c->resp, c->resp_len);
		if (code > 0)
			return finish(c, 1, code, NULL);
		if (code < 0 || n == 0)
			return finish(c, 0, 0, n == 0 ? "connection closed before a status line" : "not an HTTP response");
	}
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	check *c = (check *)((char *)w - offsetof(check, timer));
	finish(c, 0, 0, "timeout");
}

int hum_probe_start(struct ev_loop *loop, const char *host, int port, const char *path,
		    double timeout, hum_probe_cb cb, void *ud)
{
	struct addrinfo hints, *ai = NULL;
	char portbuf[16];
	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portbuf, sizeof portbuf, "%d", port);
	int rc = getaddrinfo(host, portbuf, &hints, &ai);
	if (rc != 0)
		return rc == EAI_SYSTEM ? -errno : -EHOSTUNREACH;
	check *c = calloc(1, sizeof *c);
	if (!c) {
		freeaddrinfo(ai);
		return -ENOMEM;
	}
	c->loop = loop;
	c->cb = cb;
	c->ud = ud;
	c->fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (c->fd < 0) {
		rc = -errno;
		goto fail;
	}
	if (path) {
		size_t n = strlen(path) + strlen(host) + 96;
		c->request = malloc(n);
		if (!c->request) {
			rc = -ENOMEM;
			goto fail;
		}
		c->req_len = (size_t)snprintf(c->request, n,
			"GET %s HTTP/1.1\r\nHost: %s:%d\r\nUser-Agent: hum\r\nConnection: close\r\n\r\n",
			path, host, port);
	}
	/* A non-blocking connect completes (or fails) when the socket turns
	 * writable; SO_ERROR then says which. */
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) < 0 && errno != EINPROGRESS) {
		int e = errno;
		freeaddrinfo(ai);
		ev_io_init(&c->io, io_cb, c->fd, EV_WRITE);
		ev_timer_init(&c->timer, timeout_cb, 0, 0);
		char msg[128];
		snprintf(msg, sizeof msg, "connect: %s", strerror(e));
		/* report asynchronously-shaped but immediately: the caller expects a callback */
		finish(c, 0, 0, msg);
		return 0;
	}
	freeaddrinfo(ai);
	ev_io_init(&c->io, io_cb, c->fd, EV_WRITE);
	ev_io_start(loop, &c->io);
	ev_timer_init(&c->timer, timeout_cb, timeout > 0 ? timeout : 5, 0);
	ev_timer_start(loop, &c->timer);
	return 0;
fail:
	freeaddrinfo(ai);
	if (c->fd >= 0)
		close(c->fd);
	free(c->request);
	free(c);
	return rc;
}

/*
 * probe.c — TCP and HTTP readiness checks as small state machines on libev.
 *
 * A check: addresses -> connect to each in turn -> (http) request, status
 * line.  It owns its socket and watchers and frees itself after calling back
 * (finish(), the only way out).
 *
 * Addresses.  A numeric address is parsed here.  `localhost` is ::1 and
 * 127.0.0.1, both, without asking the resolver: dev servers listen on
 * either (Node 17+ and Vite bind ::1 when the name resolves there first,
 * most others 127.0.0.1), and glibc answers `localhost` from /etc/hosts,
 * which on many machines lists only one of them, so a probe that trusted the
 * resolver could knock on the wrong one for ever.  RFC 6761 makes the name
 * loopback-only, so nothing is lost.  Any other name goes to getaddrinfo,
 * which may block for seconds (DNS), so it runs off the loop (below).
 * Addresses are tried in order, one at a time; a refused connect to a local
 * address fails at once, so the next one is tried at once.  Only connect
 * failures move on: once connected, an HTTP failure is the answer.
 *
 * Resolution: threads and ownership.  Each lookup runs getaddrinfo on a
 * detached worker thread of its own (a hung DNS query then holds up only its
 * own check; HUM_PROBE_MAX_LOOKUPS bounds the threads, and a lookup over the
 * bound fails its check: refuse, not queue).  The `lookup` record moves
 * between threads in one direction only:
 *   - the loop thread allocates it and fills host/port before pthread_create
 *     (which orders those writes before the worker's reads);
 *   - the worker owns the result fields (res, rc, err) until it links the
 *     record into `R.done` under R.mu, then wakes the loop with ev_async_send
 *     and never touches the record again;
 *   - the loop thread takes the done list under R.mu (so the worker's writes
 *     are visible) and frees every record there: the record is freed exactly
 *     once, by the loop thread, in delivered().
 * The check and the record point at each other through fields that only the
 * loop thread reads or writes (lookup->c, check->lookup); the worker never
 * follows them.  When the check ends first (its timeout fired while
 * getaddrinfo still runs), finish() clears lookup->c and frees the check;
 * delivered() then finds no check and just frees the result.  So the check
 * is freed once (finish) and the record once (delivered), whichever ends
 * first.  The async watcher and R live as long as the process (the default
 * loop is never destroyed), so a worker that finishes after everything else
 * still has something valid to wake; the watcher is unref'd so that it never
 * keeps ev_run going by itself (a waiting check's timer does that).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "probe.h"

typedef struct lookup lookup;

typedef struct check {
	ev_io io;          /* first member: the current attempt's socket */
	ev_timer timer;    /* the whole check: resolution, connects, exchange */
	ev_timer kick;     /* 0 s: the first step, so cb never runs inside start */
	struct ev_loop *loop;
	hum_probe_cb cb;
	void *ud;
	lookup *lookup;    /* the resolution this check waits for, or NULL */
	int fd;
	bool connected;
	int port;
	int naddrs, next;  /* addresses, and the next one to try */
	struct sockaddr_storage addrs[HUM_PROBE_MAX_ADDRS];
	socklen_t addrlen[HUM_PROBE_MAX_ADDRS];
	char *request;     /* NULL for tcp */
	size_t req_len, req_sent;
	char resp[256];
	size_t resp_len;
	char err[160];     /* the last failure */
	char host[];
} check;

struct lookup {
	lookup *next;          /* R.done (R.mu) */
	check *c;              /* loop thread only: the waiting check, or NULL */
	struct addrinfo *res;  /* worker, then loop once delivered */
	int rc, err;           /* getaddrinfo's result; errno for EAI_SYSTEM */
	char port[8];
	char host[];
};

/* The resolver's shared part: `done` under mu; the rest loop thread only,
 * set before the first worker starts and never changed after. */
static struct {
	pthread_mutex_t mu;
	lookup *done;
	ev_async async;
	struct ev_loop *loop;
	unsigned inflight; /* started, not yet delivered (loop thread only) */
} R = { .mu = PTHREAD_MUTEX_INITIALIZER };

static void finish(check *c, int ok, int status, const char *err)
{
	ev_io_stop(c->loop, &c->io);
	ev_timer_stop(c->loop, &c->timer);
	ev_timer_stop(c->loop, &c->kick);
	if (c->fd >= 0)
		close(c->fd);
	if (c->lookup) /* still resolving: the record is freed when it arrives */
		c->lookup->c = NULL;
	c->cb(c->ud, ok, status, err);
	free(c->request);
	free(c);
}

static void add_addr(check *c, const struct sockaddr *sa, socklen_t len)
{
	if (c->naddrs >= HUM_PROBE_MAX_ADDRS || len > sizeof c->addrs[0])
		return;
	memcpy(&c->addrs[c->naddrs], sa, len);
	c->addrlen[c->naddrs++] = len;
}

/* Fills the addresses of a numeric host or of `localhost`; false when the
 * name needs the resolver. */
static bool local_addrs(check *c)
{
	struct sockaddr_in6 a6;
	struct sockaddr_in a4;
	memset(&a6, 0, sizeof a6);
	memset(&a4, 0, sizeof a4);
	a6.sin6_family = AF_INET6;
	a6.sin6_port = htons((uint16_t)c->port);
	a4.sin_family = AF_INET;
	a4.sin_port = htons((uint16_t)c->port);
	if (inet_pton(AF_INET6, c->host, &a6.sin6_addr) == 1) {
		add_addr(c, (struct sockaddr *)&a6, sizeof a6);
		return true;
	}
	if (inet_pton(AF_INET, c->host, &a4.sin_addr) == 1) {
		add_addr(c, (struct sockaddr *)&a4, sizeof a4);
		return true;
	}
	if (strcasecmp(c->host, "localhost") != 0 && strcasecmp(c->host, "localhost.") != 0)
		return false;
	a6.sin6_addr = in6addr_loopback;
	a4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	add_addr(c, (struct sockaddr *)&a6, sizeof a6);
	add_addr(c, (struct sockaddr *)&a4, sizeof a4);
	return true;
}

/* Starts a connect to the next address that takes one; finishes the check
 * with the last failure when none is left. */
static void try_next(check *c)
{
	while (c->next < c->naddrs) {
		int i = c->next++;
		int fd = socket(c->addrs[i].ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
		if (fd < 0) { /* e.g. no IPv6 here: the next address may do */
			snprintf(c->err, sizeof c->err, "socket: %s", strerror(errno));
			continue;
		}
		/* Non-blocking: it completes (or fails) when the socket turns
		 * writable, and SO_ERROR says which.  EINTR is the same case
		 * (the connect goes on; calling it again would say EALREADY). */
		if (connect(fd, (struct sockaddr *)&c->addrs[i], c->addrlen[i]) < 0 &&
		    errno != EINPROGRESS && errno != EINTR) {
			snprintf(c->err, sizeof c->err, "connect: %s", strerror(errno));
			close(fd);
			continue;
		}
		c->fd = fd;
		ev_io_set(&c->io, fd, EV_WRITE);
		ev_io_start(c->loop, &c->io);
		return;
	}
	finish(c, 0, 0, c->err[0] ? c->err : "no address");
}

/* ---- resolution off the loop ------------------------------------------------ */

static void *resolve_main(void *arg)
{
	lookup *l = arg;
	struct addrinfo hints;
	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	l->rc = getaddrinfo(l->host, l->port, &hints, &l->res);
	l->err = l->rc == EAI_SYSTEM ? errno : 0;
	pthread_mutex_lock(&R.mu);
	l->next = R.done;
	R.done = l;
	pthread_mutex_unlock(&R.mu);
	/* l belongs to the loop thread now (it may be freed already) */
	ev_async_send(R.loop, &R.async);
	return NULL;
}

/* Loop thread: hands each finished lookup to its check, if it still waits,
 * and frees it (the one place a lookup is freed). */
static void delivered(struct ev_loop *loop, ev_async *w, int revents)
{
	pthread_mutex_lock(&R.mu);
	lookup *l = R.done;
	R.done = NULL;
	pthread_mutex_unlock(&R.mu);
	while (l) {
		lookup *next = l->next;
		check *c = l->c;
		R.inflight--;
		if (c) {
			c->lookup = NULL;
			for (struct addrinfo *ai = l->res; l->rc == 0 && ai; ai = ai->ai_next)
				add_addr(c, ai->ai_addr, ai->ai_addrlen);
			if (l->rc != 0)
				snprintf(c->err, sizeof c->err, "resolve %s: %s", c->host,
					 l->rc == EAI_SYSTEM ? strerror(l->err) : gai_strerror(l->rc));
			try_next(c); /* with no address: finishes with c->err */
		}
		if (l->res)
			freeaddrinfo(l->res);
		free(l);
		l = next;
	}
}

/* Starts a worker for c's name; on failure finishes c. */
static void start_lookup(check *c)
{
	if (!R.loop) {
		R.loop = c->loop;
		ev_async_init(&R.async, delivered);
		ev_async_start(R.loop, &R.async);
		ev_unref(R.loop); /* a waiting check's timer keeps the loop going */
	}
	if (R.loop != c->loop)
		return finish(c, 0, 0, "resolve: probes on a second loop");
	if (R.inflight >= HUM_PROBE_MAX_LOOKUPS) {
		snprintf(c->err, sizeof c->err, "resolve %s: %d lookups in flight already", c->host,
			 HUM_PROBE_MAX_LOOKUPS);
		return finish(c, 0, 0, c->err);
	}
	size_t hl = strlen(c->host);
	lookup *l = calloc(1, sizeof *l + hl + 1);
	if (!l)
		return finish(c, 0, 0, "resolve: out of memory");
	memcpy(l->host, c->host, hl + 1);
	snprintf(l->port, sizeof l->port, "%d", c->port);
	l->c = c;
	pthread_attr_t attr;
	pthread_t t;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	pthread_attr_setstacksize(&attr, 1 << 20);
	/* The worker inherits the mask: block everything so process-directed
	 * signals (SIGCHLD, SIGTERM) go to the loop thread. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	int rc = pthread_create(&t, &attr, resolve_main, l);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	pthread_attr_destroy(&attr);
	if (rc != 0) {
		free(l);
		snprintf(c->err, sizeof c->err, "resolve %s: pthread_create: %s", c->host, strerror(rc));
		return finish(c, 0, 0, c->err);
	}
	R.inflight++;
	c->lookup = l;
}

/* ---- the exchange ---------------------------------------------------------- */

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
	if (!c->connected) {
		int err = 0;
		socklen_t len = sizeof err;
		if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
			err = errno;
		if (err) { /* this address failed: on to the next */
			snprintf(c->err, sizeof c->err, "connect: %s", strerror(err));
			ev_io_stop(loop, &c->io);
			close(c->fd);
			c->fd = -1;
			return try_next(c);
		}
		c->connected = true;
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
	if (c->lookup) {
		snprintf(c->err, sizeof c->err, "timeout resolving %s", c->host);
		return finish(c, 0, 0, c->err);
	}
	finish(c, 0, 0, "timeout");
}

static void kick_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	check *c = (check *)((char *)w - offsetof(check, kick));
	if (local_addrs(c))
		try_next(c);
	else
		start_lookup(c);
}

int hum_probe_start(struct ev_loop *loop, const char *host, int port, const char *path,
		    double timeout, hum_probe_cb cb, void *ud)
{
	if (!host || !*host || port < 1 || port > 65535 || !cb)
		return -EINVAL;
	size_t hl = strlen(host);
	if (hl > 255) /* longer than any DNS name */
		return -EINVAL;
	check *c = calloc(1, sizeof *c + hl + 1);
	if (!c)
		return -ENOMEM;
	memcpy(c->host, host, hl + 1);
	c->loop = loop;
	c->cb = cb;
	c->ud = ud;
	c->fd = -1;
	c->port = port;
	if (path) {
		/* An IPv6 literal goes in brackets in the Host header. */
		bool v6 = strchr(host, ':') != NULL;
		size_t n = strlen(path) + hl + 96;
		c->request = malloc(n);
		if (!c->request) {
			free(c);
			return -ENOMEM;
		}
		c->req_len = (size_t)snprintf(c->request, n,
			"GET %s HTTP/1.1\r\nHost: %s%s%s:%d\r\nUser-Agent: hum\r\nConnection: close\r\n\r\n",
			path, v6 ? "[" : "", host, v6 ? "]" : "", port);
	}
	ev_io_init(&c->io, io_cb, -1, EV_WRITE);
	ev_timer_init(&c->timer, timeout_cb, timeout > 0 ? timeout : 5, 0);
	ev_timer_start(loop, &c->timer);
	ev_timer_init(&c->kick, kick_cb, 0, 0);
	ev_timer_start(loop, &c->kick);
	return 0;
}

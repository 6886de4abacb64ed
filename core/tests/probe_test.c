/*
 * probe_test.c — tcp/http readiness checks (core/sup/probe.c): every address
 * of a name is tried (`localhost` is ::1 and 127.0.0.1), names resolve off
 * the loop, the timeout covers resolution, and a lookup that outlives its
 * check is freed once, when it ends.
 *
 * Resolution is made deterministic by interposing getaddrinfo/freeaddrinfo:
 * names under .hum.test get answers made here (one resolves only after the
 * test releases it); any other name goes to the real resolver.  Servers are
 * sockets on this test's loop, listening on one loopback each.
 */
#include <arpa/inet.h>
#include <dlfcn.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sys/socket.h>

#include "sup/probe.h"
#include "proc_util.h"

/* ---- a resolver under the test's control ----------------------------------- */

static pthread_mutex_t fake_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t fake_cv = PTHREAD_COND_INITIALIZER;
static int slow_released, slow_waiting, fake_made, fake_freed;
static char fake_mark[] = "hum-test-answer"; /* ai_canonname of our answers */

typedef struct fake_node {
	struct addrinfo ai;
	struct sockaddr_storage ss;
} fake_node;

static struct addrinfo *fake_answer(const char *const *addrs, const char *service)
{
	struct addrinfo *head = NULL, **tail = &head;
	for (; *addrs; addrs++) {
		fake_node *n = calloc(1, sizeof *n);
		struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&n->ss;
		struct sockaddr_in *a4 = (struct sockaddr_in *)&n->ss;
		if (inet_pton(AF_INET6, *addrs, &a6->sin6_addr) == 1) {
			a6->sin6_family = AF_INET6;
			a6->sin6_port = htons((uint16_t)atoi(service));
			n->ai.ai_addrlen = sizeof *a6;
		} else {
			inet_pton(AF_INET, *addrs, &a4->sin_addr);
			a4->sin_family = AF_INET;
			a4->sin_port = htons((uint16_t)atoi(service));
			n->ai.ai_addrlen = sizeof *a4;
		}
		n->ai.ai_family = n->ss.ss_family;
		n->ai.ai_socktype = SOCK_STREAM;
		n->ai.ai_addr = (struct sockaddr *)&n->ss;
		n->ai.ai_canonname = fake_mark;
		*tail = &n->ai;
		tail = &n->ai.ai_next;
	}
	pthread_mutex_lock(&fake_mu);
	fake_made++;
	pthread_mutex_unlock(&fake_mu);
	return head;
}

int getaddrinfo(const char *node, const char *service, const struct addrinfo *hints,
		struct addrinfo **res)
{
	static const char *v6[] = { "::1", NULL }, *v4[] = { "127.0.0.1", NULL },
			  *both[] = { "127.0.0.1", "::1", NULL };
	if (!strcmp(node, "v6.hum.test"))
		return *res = fake_answer(v6, service), 0;
	if (!strcmp(node, "v4.hum.test"))
		return *res = fake_answer(v4, service), 0;
	if (!strcmp(node, "both.hum.test"))
		return *res = fake_answer(both, service), 0;
	if (!strcmp(node, "none.hum.test"))
		return EAI_NONAME;
	if (!strcmp(node, "slow.hum.test")) {
		/* A DNS server that does not answer, until the test says so. */
		pthread_mutex_lock(&fake_mu);
		slow_waiting++;
		while (!slow_released)
			pthread_cond_wait(&fake_cv, &fake_mu);
		slow_waiting--;
		pthread_mutex_unlock(&fake_mu);
		return *res = fake_answer(v6, service), 0;
	}
	int (*real)(const char *, const char *, const struct addrinfo *, struct addrinfo **) =
		(int (*)(const char *, const char *, const struct addrinfo *, struct addrinfo **))
			dlsym(RTLD_NEXT, "getaddrinfo");
	return real(node, service, hints, res);
}

void freeaddrinfo(struct addrinfo *ai)
{
	if (ai && ai->ai_canonname == fake_mark) {
		while (ai) {
			struct addrinfo *next = ai->ai_next;
			free(ai);
			ai = next;
		}
		pthread_mutex_lock(&fake_mu);
		fake_freed++;
		pthread_mutex_unlock(&fake_mu);
		return;
	}
	void (*real)(struct addrinfo *) = (void (*)(struct addrinfo *))dlsym(RTLD_NEXT, "freeaddrinfo");
	real(ai);
}

static int fake_count(int *v)
{
	pthread_mutex_lock(&fake_mu);
	int n = *v;
	pthread_mutex_unlock(&fake_mu);
	return n;
}

static void release_slow(void)
{
	pthread_mutex_lock(&fake_mu);
	slow_released = 1;
	pthread_cond_broadcast(&fake_cv);
	pthread_mutex_unlock(&fake_mu);
}

/* ---- servers on the loop ---------------------------------------------------------- */

typedef struct conn {
	ev_io io;
	char buf[1024];
	size_t len;
} conn;

typedef struct server {
	ev_io io;
	int port;
	int accepted;
	char last_request[1024];
} server;

static void conn_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	conn *c = (conn *)w;
	server *s = w->data;
	ssize_t n = read(w->fd, c->buf + c->len, sizeof c->buf - 1 - c->len);
	if (n > 0) {
		c->len += (size_t)n;
		c->buf[c->len] = 0;
		if (!strstr(c->buf, "\r\n\r\n"))
			return;
		snprintf(s->last_request, sizeof s->last_request, "%s", c->buf);
		static const char ok[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
		if (write(w->fd, ok, sizeof ok - 1) < 0)
			perror("write");
	} else if (n < 0 && errno == EAGAIN) {
		return;
	}
	ev_io_stop(loop, w);
	close(w->fd);
	free(c);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	server *s = (server *)w;
	int fd = accept4(w->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
	if (fd < 0)
		return;
	s->accepted++;
	conn *c = calloc(1, sizeof *c);
	ev_io_init(&c->io, conn_cb, fd, EV_READ);
	c->io.data = s;
	ev_io_start(loop, &c->io);
}

/* Listens on addr (::1 or 127.0.0.1), port 0 or the given one; 0 or -1. */
static int server_start(server *s, const char *addr, int port)
{
	memset(s, 0, sizeof *s);
	struct sockaddr_storage ss;
	socklen_t len;
	memset(&ss, 0, sizeof ss);
	struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)&ss;
	struct sockaddr_in *a4 = (struct sockaddr_in *)&ss;
	if (strchr(addr, ':')) {
		a6->sin6_family = AF_INET6;
		a6->sin6_port = htons((uint16_t)port);
		inet_pton(AF_INET6, addr, &a6->sin6_addr);
		len = sizeof *a6;
	} else {
		a4->sin_family = AF_INET;
		a4->sin_port = htons((uint16_t)port);
		inet_pton(AF_INET, addr, &a4->sin_addr);
		len = sizeof *a4;
	}
	int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	if (ss.ss_family == AF_INET6) { /* ::1 only, never the v4 side too */
		int one = 1;
		setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof one);
	}
	if (bind(fd, (struct sockaddr *)&ss, len) != 0 || listen(fd, 16) != 0) {
		close(fd);
		return -1;
	}
	len = sizeof ss;
	getsockname(fd, (struct sockaddr *)&ss, &len);
	s->port = ntohs(ss.ss_family == AF_INET6 ? a6->sin6_port : a4->sin_port);
	ev_io_init(&s->io, accept_cb, fd, EV_READ);
	ev_io_start(L, &s->io);
	return 0;
}

static void server_stop(server *s)
{
	if (!ev_is_active(&s->io))
		return;
	ev_io_stop(L, &s->io);
	close(s->io.fd);
}

/* A port with nothing listening on either loopback (for a moment). */
static int free_port(void)
{
	server a, b;
	for (int i = 0; i < 50; i++) {
		if (server_start(&a, "127.0.0.1", 0) != 0)
			break;
		int ok6 = server_start(&b, "::1", a.port) == 0;
		server_stop(&a);
		if (ok6)
			server_stop(&b);
		if (ok6 || errno != EADDRINUSE)
			return a.port;
	}
	return 0;
}

/* ---- probes -------------------------------------------------------------------------- */

typedef struct result {
	int calls;
	int ok, status;
	char err[160];
	double at;
} result;

static int in_start; /* a callback during hum_probe_start would see 1 */
static int called_inside;

static void done(void *ud, int ok_, int status, const char *err)
{
	result *r = ud;
	called_inside += in_start;
	r->calls++;
	r->ok = ok_;
	r->status = status;
	r->at = now();
	snprintf(r->err, sizeof r->err, "%s", err ? err : "");
}

static int probe(result *r, const char *host, int port, const char *path, double timeout)
{
	memset(r, 0, sizeof *r);
	in_start = 1;
	int rc = hum_probe_start(L, host, port, path, timeout, done, r);
	in_start = 0;
	return rc;
}

/* Runs one probe to its end (the callback), within 10 s. */
static result run(const char *host, int port, const char *path, double timeout)
{
	result r;
	if (probe(&r, host, port, path, timeout) == 0)
		WAIT(r.calls, 10);
	else
		snprintf(r.err, sizeof r.err, "did not start");
	return r;
}

static void test_loopbacks(int have6)
{
	server s4, s6;
	int ok4 = server_start(&s4, "127.0.0.1", 0) == 0;
	result r = run("localhost", s4.port, NULL, 5);
	ok(ok4 && r.calls == 1 && r.ok && s4.accepted == 1,
	   "tcp localhost: a listener on 127.0.0.1 only is reached (ok=%d err=%s)", r.ok, r.err);
	r = run("localhost", s4.port, "/health", 5);
	ok(ok4 && r.ok && r.status == 204 && strstr(s4.last_request, "GET /health HTTP/1.1\r\n") &&
		   strstr(s4.last_request, "\r\nHost: localhost:"),
	   "http localhost: 127.0.0.1 only answers 204 (err=%s)", r.err);
	server_stop(&s4);

	if (!have6) {
		for (int i = 0; i < 4; i++)
			ok(1, "# SKIP no IPv6 loopback here");
		return;
	}
	int ok6 = server_start(&s6, "::1", 0) == 0;
	r = run("localhost", s6.port, NULL, 5);
	ok(ok6 && r.calls == 1 && r.ok && s6.accepted == 1,
	   "tcp localhost: a listener on ::1 only is reached (ok=%d err=%s)", r.ok, r.err);
	r = run("localhost", s6.port, "/", 5);
	ok(ok6 && r.ok && r.status == 204,
	   "http localhost: ::1 only answers 204 (err=%s)", r.err);
	r = run("::1", s6.port, "/x", 5);
	ok(r.ok && strstr(s6.last_request, "\r\nHost: [::1]:"),
	   "http to an IPv6 literal: reached, Host header in brackets");
	r = run("127.0.0.1", s6.port, NULL, 5);
	ok(r.calls == 1 && !r.ok && !strcmp(r.err, "connect: Connection refused"),
	   "a numeric address is that address only: 127.0.0.1 is refused (%s)", r.err);
	server_stop(&s6);
}

static void test_refused(void)
{
	int port = free_port();
	result r = run("localhost", port, NULL, 5);
	ok(port && r.calls == 1 && !r.ok && !strcmp(r.err, "connect: Connection refused"),
	   "nothing on either loopback: fails at once with the last failure (%s)", r.err);
	ok(called_inside == 0, "no callback ever ran inside hum_probe_start");
}

static void test_resolved(int have6)
{
	server s6, s4;
	if (have6 && server_start(&s6, "::1", 0) == 0) {
		int made = fake_count(&fake_made);
		result r = run("v6.hum.test", s6.port, NULL, 5);
		ok(r.ok && fake_count(&fake_made) == made + 1, "a name resolved off the loop to ::1 (err=%s)", r.err);
		r = run("both.hum.test", s6.port, "/", 5);
		ok(r.ok && r.status == 204,
		   "a name with two addresses: 127.0.0.1 refused, then ::1 answers (err=%s)", r.err);
		WAIT(fake_count(&fake_freed) == fake_count(&fake_made), 5);
		ok(fake_count(&fake_freed) == fake_count(&fake_made), "every answer was freed (%d of %d)",
		   fake_count(&fake_freed), fake_count(&fake_made));
		server_stop(&s6);
	} else {
		for (int i = 0; i < 3; i++)
			ok(1, "# SKIP no IPv6 loopback here");
	}
	int ok4 = server_start(&s4, "127.0.0.1", 0) == 0;
	result r = run("v4.hum.test", s4.port, NULL, 5);
	ok(ok4 && r.ok, "a name resolved to 127.0.0.1 (err=%s)", r.err);
	/* The real resolver, off the loop, without DNS: "127.1" is not an
	 * address to inet_pton, but getaddrinfo reads it as 127.0.0.1. */
	r = run("127.1", s4.port, NULL, 5);
	ok(r.ok && s4.accepted == 2, "the real getaddrinfo on the worker: 127.1 reached (err=%s)", r.err);
	server_stop(&s4);
	r = run("none.hum.test", 80, NULL, 5);
	ok(r.calls == 1 && !r.ok && !strcmp(r.err, "resolve none.hum.test: Name or service not known"),
	   "a name that does not resolve: %s", r.err);
}

static void test_timeout_while_resolving(void)
{
	result r;
	double t0 = now();
	int rc = probe(&r, "slow.hum.test", 80, NULL, 0.3);
	/* the loop keeps turning while the worker waits in getaddrinfo */
	int turned = WAIT(r.calls, 10);
	ok(rc == 0 && turned && r.calls == 1 && !r.ok && !strcmp(r.err, "timeout resolving slow.hum.test"),
	   "the timeout covers resolution: %s after %.2fs", r.err, r.at - t0);
	ok(fake_count(&slow_waiting) == 1, "getaddrinfo is still running after the check ended");

	/* The bound on lookups in flight: the hung one counts. */
	result many[HUM_PROBE_MAX_LOOKUPS];
	for (int i = 0; i < HUM_PROBE_MAX_LOOKUPS; i++)
		probe(&many[i], "slow.hum.test", 80, NULL, 30);
	int refused = 0, waiting = 0;
	const char *why = "";
	WAIT(({
		refused = waiting = 0;
		for (int i = 0; i < HUM_PROBE_MAX_LOOKUPS; i++) {
			if (many[i].calls)
				refused++, why = many[i].err;
			waiting += !many[i].calls;
		}
		refused; }), 10);
	ok(refused == 1 && waiting == HUM_PROBE_MAX_LOOKUPS - 1 && strstr(why, "lookups in flight already"),
	   "over %d lookups in flight a check fails at once (%d refused, %d waiting): %s",
	   HUM_PROBE_MAX_LOOKUPS, refused, waiting, why);

	int made = fake_count(&fake_made);
	release_slow();
	int all = WAIT(fake_count(&fake_made) == made + HUM_PROBE_MAX_LOOKUPS &&
		       fake_count(&fake_freed) == fake_count(&fake_made), 10);
	ok(all && r.calls == 1,
	   "released: every late answer freed once (%d made, %d freed), the timed-out check not called again",
	   fake_count(&fake_made), fake_count(&fake_freed));
	int ended = WAIT(({
		int n = 0;
		for (int i = 0; i < HUM_PROBE_MAX_LOOKUPS; i++)
			n += many[i].calls;
		n == HUM_PROBE_MAX_LOOKUPS; }), 10);
	int once = 1;
	for (int i = 0; i < HUM_PROBE_MAX_LOOKUPS; i++)
		once &= many[i].calls == 1;
	ok(ended && once, "the waiting checks got their answer (port 80 on ::1: %s)",
	   many[0].err[0] ? many[0].err : "connected");
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	signal(SIGPIPE, SIG_IGN);
	L = ev_default_loop(0);
	server probe6;
	int have6 = server_start(&probe6, "::1", 0) == 0;
	if (have6)
		server_stop(&probe6);
	test_loopbacks(have6);
	test_refused();
	test_resolved(have6);
	test_timeout_while_resolving();
	ok(hum_probe_start(L, "", 80, NULL, 1, done, NULL) == -EINVAL &&
		   hum_probe_start(L, "localhost", 0, NULL, 1, done, NULL) == -EINVAL,
	   "bad host or port: -EINVAL, no callback");
	return done_testing();
}

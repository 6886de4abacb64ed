/*
 * server.c — the control socket: the API thread, per-client buffers,
 * dispatch of requests, the command and reply queues between the API thread
 * and the loop thread.
 *
 * Threads and ownership.
 *   - hum_api_start/stop and the command ev_async run on the loop thread.
 *   - Everything else (accept, clients, parsing, reads, follow polls) runs
 *     on the API thread, in its own ev_loop; clients and scratch buffers are
 *     owned by it alone.
 *   - Two lock-free MPSC stacks cross the threads: `cmds` (API thread ->
 *     loop thread) and `replies` (any thread -> API thread).  A producer
 *     pushes with a CAS (release), the consumer takes the whole stack with
 *     an exchange (acquire) and reverses it, so there is no ABA and no lock.
 *     ev_async_send wakes the consumer; libev coalesces wakeups, which is fine
 *     because the consumer always takes everything.
 *
 * Files.  This one: the API thread, clients, dispatch, the queues, start
 *   and stop.  request.c parses a request line (jansson) and validates it;
 *   read_procs.c, read_logs.c and follow.c answer ps/status, logs and
 *   follow from the store (no lock, no allocation per read beyond the
 *   client's buffer and reused scratch);
 *   path.c places the socket and takes the per-project lock; jsonw.c writes
 *   every answer.  api_priv.h holds what they share.
 *
 * Wire format (newline-delimited JSON; every response carries "ok"):
 *   {"id":1,"cmd":"ps"}
 *      -> {"ok":true,"id":1,"generation":G,"time":T,"procs":[PROC...]}
 *   {"cmd":"status","name":"web"}  (or "names":[...])
 *      -> {"ok":true,"time":T,"procs":[PROC...]}
 *   {"cmd":"logs","names":[...],"n":100,"grep":"RE","since":T,"stream":"err",
 *    "follow":true}
 *      -> LINE... then {"ok":true,"end":true,"lines":N[,"truncated":K]}
 *         with follow, LINE... until {"ok":true,"end":true,"reason":R}
 *         (R: "removed" or "server stopping"); a follower too slow to read
 *         gets {"dropped":N} in place of lines it missed.
 *   {"cmd":"ping"} -> {"ok":true,"pong":true,"pid":P}
 *   start/stop/restart/signal/down/eval/run: forwarded to the loop thread as
 *   the raw request line; the reply comes from hum.control (Lua).
 *   Any error: {"ok":false[,"id":..],"error":"message"}; what a request may
 *   hold, and the bounds on it, are request.h's.
 *   PROC = {"name","id","kind","state","pid","restarts","exit_code","signal",
 *           "started_at","ended_at","changed_at","group","groups","ready",
 *           "reason","lines","bytes","dropped","first_seq","last_seq",
 *           "generation"}
 *   LINE = {"seq":N,"time":T,"name":S,"stream":"out"|"err"|"sys","line":S
 *           [,"cont":true]}
 *   Times are seconds since the epoch with millisecond precision; absent
 *   values are null.  A request line may be up to 1 MiB, nested 32 deep,
 *   with 65536 values.
 *
 * Bounds (a client can never block the API thread, the loop thread or other
 * clients; the socket is non-blocking and every wait is a watcher):
 *   - requests are answered in order, one at a time per client; while a
 *     command is with the loop thread, or a logs answer is being streamed,
 *     the client's later requests wait;
 *   - a logs answer is streamed (read_logs.c): produced in slices while the
 *     client has less than PAUSE_OUT (256 KiB) unsent and all clients
 *     together less than TOTAL_OUT (32 MiB), resumed by write_cb as the
 *     client drains, by an idle watcher after a slice used its time, and by
 *     the follow timer when the total bound paused it;
 *   - a client that does not read stops being read once PAUSE_OUT of its
 *     answers are unsent (backpressure: its requests stay in the kernel);
 *   - a follower's unsent output is bounded by max_output (256 KiB) and
 *     TOTAL_OUT: lines beyond, and lines its process wrote faster than the
 *     ring keeps them between two polls (every follow_interval, 50 ms), are
 *     counted and reported with {"dropped":N} once it reads again;
 *   - a follower is always read (its input discarded), so its EOF frees it
 *     even while the process it follows is quiet; followers may take at
 *     most max_clients - FOLLOW_RESERVE slots, so `hum ps`/`hum down` get in;
 *   - a connection idle for idle_timeout (60 s: no byte in or out, no
 *     command pending, not following) is closed;
 *   - hum_api_stop sets `stopping`, which a long search checks per line;
 *   - a request line over max_request gets an error, then the connection is
 *     closed; EOF in the middle of a line gets an error; an unparseable or
 *     unknown request gets an error and the connection stays usable.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "api_priv.h"
#include "state/atomic.h"

/* Small helpers ------------------------------------------------------------- */

int64_t hum_api_now_ms_(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

bool hum_api_grow_(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap : 16;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return false;
	*p = q;
	*cap = n;
	return true;
}

void hum_api_seterr_(char *err, size_t n, const char *fmt, ...)
{
	if (!n)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

/* MPSC stacks --------------------------------------------------------------- */

static void mpsc_push(msg **head, msg *m)
{
	msg *h = __atomic_load_n(head, __ATOMIC_RELAXED);
	do {
		m->next = h;
		/* Release: m's contents are visible before m is.  (acq_rel only
		 * so TSan sees the chain of earlier pushes as one sequence.) */
	} while (!__atomic_compare_exchange_n(head, &h, m, true, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
}

/* Takes every message, oldest first. */
static msg *mpsc_take(msg **head)
{
	/* Acquire: pairs with the pushes' release. */
	msg *m = __atomic_exchange_n(head, NULL, __ATOMIC_ACQUIRE), *r = NULL;
	while (m) {
		msg *n = m->next;
		m->next = r;
		r = m;
		m = n;
	}
	return r;
}

static msg *msg_new(uint32_t id, const char *data, size_t len)
{
	msg *m = malloc(sizeof *m + len + 1);
	if (!m)
		return NULL;
	m->next = NULL;
	m->id = id;
	m->len = len;
	memcpy(m->data, data, len);
	m->data[len] = 0;
	return m;
}
/* Clients: output ------------------------------------------------------------ */

void hum_api_put_id_(hum_buf *b, const char *id, size_t idlen)
{
	if (idlen) {
		hum_buf_put(b, ",\"id\":", 6);
		hum_buf_put(b, id, idlen);
	}
}

void hum_api_send_error_(client *c, const char *id, size_t idlen, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	hum_buf_put(&c->out, "{\"ok\":false", 11);
	hum_api_put_id_(&c->out, id, idlen);
	hum_buf_put(&c->out, ",\"error\":", 9);
	hum_json_cstr(&c->out, text);
	hum_buf_put(&c->out, "}\n", 2);
	STAT_INC(c->api, errors);
}

/* Writes what it can without blocking; arms the write watcher for the rest. */
static void flush_out(client *c)
{
	hum_api *a = c->api;
	if (c->out.oom) {
		c->broken = true; /* a response could not be built; do not send half */
		return;
	}
	while (hum_api_unsent_(c) && !c->broken) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, hum_api_unsent_(c), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->out_off += (size_t)n;
			c->active = ev_now(a->loop);
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else {
			c->broken = true;
		}
	}
	if (c->out_off == c->out.len) {
		c->out_off = c->out.len = 0;
		/* a burst (a large answer) need not keep its memory */
		if (c->out.cap > PAUSE_OUT) {
			free(c->out.p);
			c->out.p = NULL;
			c->out.cap = 0;
		}
	} else if (c->out_off > c->out.len / 2 && c->out_off > 65536) {
		memmove(c->out.p, c->out.p + c->out_off, hum_api_unsent_(c));
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
	bool want = hum_api_unsent_(c) && !c->broken;
	if (want && !c->writing)
		ev_io_start(a->loop, &c->wio);
	else if (!want && c->writing)
		ev_io_stop(a->loop, &c->wio);
	c->writing = want;
}

void hum_api_cursors_free_(client *c)
{
	for (size_t i = 0; i < c->ncur; i++)
		free(c->cur[i].name);
	free(c->cur);
	c->cur = NULL;
	c->ncur = c->capcur = 0;
}

void hum_api_filter_free_(filter *f)
{
	hum_grep_free(&f->grep);
	memset(f, 0, sizeof *f);
}

static void client_free(client *c)
{
	hum_api *a = c->api;
	ev_io_stop(a->loop, &c->rio);
	ev_io_stop(a->loop, &c->wio);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		a->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->nclients--;
	if (c->following)
		a->nfollow--;
	if (c->streaming)
		a->nstream--;
	hum_api_cursors_free_(c);
	hum_api_filter_free_(&c->flt);
	hum_api_watch_free_(c);
	free(c->in);
	hum_buf_free(&c->out);
	free(c);
	__atomic_store_n(&a->stats.clients, (uint32_t)a->nclients, __ATOMIC_RELAXED);
}

/* Clients: input ---------------------------------------------------------------- */

static bool all_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/* Handles every complete request that may be handled now. */
static void process_input(client *c)
{
	hum_api *a = c->api;
	while (!c->busy && !c->following && !c->streaming && !c->closing && !c->broken &&
	       hum_api_unsent_(c) <= PAUSE_OUT) {
		char *start = c->in + c->in_off;
		size_t avail = c->in_len - c->in_off;
		if (c->scan < c->in_off)
			c->scan = c->in_off;
		char *nl = c->in_len > c->scan ? memchr(c->in + c->scan, '\n', c->in_len - c->scan) : NULL;
		if (!nl) {
			c->scan = c->in_len;
			if (avail > a->max_request) {
				hum_api_send_error_(c, NULL, 0, "request too large (more than %zu bytes)", a->max_request);
				c->closing = true;
				c->in_off = c->in_len;
			} else if (c->eof && avail) {
				if (!all_space(start, avail))
					hum_api_send_error_(c, NULL, 0, "truncated request (no newline before the end of input)");
				c->in_off = c->in_len;
			}
			break;
		}
		size_t len = (size_t)(nl - start);
		c->in_off += len + 1;
		c->scan = c->in_off;
		if (len > a->max_request) {
			hum_api_send_error_(c, NULL, 0, "request too large (more than %zu bytes)", a->max_request);
			c->closing = true;
			c->in_off = c->in_len;
			break;
		}
		if (all_space(start, len))
			continue;
		STAT_INC(a, requests);
		hum_api_handle_line_(c, start, len);
	}
	if (c->in_off == c->in_len) {
		c->in_off = c->in_len = c->scan = 0;
	} else if (c->in_off > 0 && c->in_off >= c->in_cap / 2) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->scan -= c->in_off;
		c->in_off = 0;
	}
	if (c->eof && !c->busy && !c->following && !c->streaming && c->in_len == c->in_off)
		c->closing = true;
}

/* After hum_api_stream_ stopped: for time, the idle watcher (and the timer,
 * in case the loop never idles) goes on with it; for a full output, write_cb
 * does, or the timer when all clients together are over TOTAL_OUT. */
static void stream_later(client *c, bool for_time)
{
	hum_api *a = c->api;
	if (!c->streaming)
		return;
	if (for_time)
		ev_idle_start(a->loop, &a->stream_idle);
	if (!ev_is_active(&a->follow_timer))
		ev_timer_again(a->loop, &a->follow_timer);
}

void hum_api_resume_(client *c)
{
	if (c->streaming)
		stream_later(c, hum_api_stream_(c));
	if (!c->streaming)
		process_input(c);
}

static void stream_idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	hum_api *a = w->data;
	bool more = false;
	for (client *c = a->clients, *next; c; c = next) {
		next = c->next;
		if (!c->streaming || c->broken || hum_api_unsent_(c) >= PAUSE_OUT)
			continue;
		if (hum_api_stream_(c))
			more = true;
		else if (!c->streaming)
			process_input(c);
		hum_api_settle_(c);
	}
	if (!more)
		ev_idle_stop(loop, w);
}

/* Flushes, adjusts watchers, and frees the client when it is finished or
 * broken.  Returns false if c is gone.  Every callback ends with this. */
bool hum_api_answer_failed_(const client *c)
{
	return c->broken || c->out.oom;
}

/* Sums every client's unsent bytes into a->total_unsent (the TOTAL_OUT
 * bound), and returns it. */
size_t hum_api_count_unsent_(hum_api *a)
{
	size_t t = 0;
	for (client *c = a->clients; c; c = c->next)
		t += hum_api_unsent_(c);
	a->total_unsent = t;
	return t;
}

bool hum_api_settle_(client *c)
{
	hum_api *a = c->api;
	/* An answer an allocation cut short is never sent as if it were whole
	 * (its last line may be torn): the connection is closed instead, and
	 * the client sees the answer end without its final line. */
	if (hum_api_answer_failed_(c))
		c->broken = true;
	if (!c->broken)
		flush_out(c);
	if (c->broken || (c->closing && !hum_api_unsent_(c))) {
		client_free(c);
		return false;
	}
	/* A follower is always read, whatever it has unsent: its input is
	 * discarded, and reading is how its end (EOF, reset) is seen at all
	 * while the process it follows is quiet. */
	bool want = !c->eof && !c->closing &&
		    (c->following || (!c->streaming && hum_api_unsent_(c) <= PAUSE_OUT &&
				      c->in_len - c->in_off < a->max_request + READ_CHUNK));
	if (want && !c->reading)
		ev_io_start(a->loop, &c->rio);
	else if (!want && c->reading)
		ev_io_stop(a->loop, &c->rio);
	c->reading = want;
	return true;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	client *c = (client *)((char *)w - offsetof(client, rio));
	hum_api *a = c->api;
	size_t got = 0;
	if (c->following) {
		/* a follow is a connection's last request: what comes after it
		 * is dropped; its end frees the client */
		char sink[4096];
		ssize_t n;
		do
			n = recv(c->fd, sink, sizeof sink, 0);
		while ((n > 0 && (got += (size_t)n) < READ_BUDGET) || (n < 0 && errno == EINTR));
		if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
			c->broken = true;
		hum_api_settle_(c);
		return;
	}
	while (got < READ_BUDGET && c->in_len - c->in_off < a->max_request + READ_CHUNK) {
		if (c->in_cap - c->in_len < READ_CHUNK) {
			void *p = c->in;
			if (!hum_api_grow_(&p, &c->in_cap, c->in_len + READ_CHUNK, 1)) {
				c->broken = true;
				break;
			}
			c->in = p;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			got += (size_t)n;
			c->active = ev_now(loop);
		} else if (n == 0) {
			c->eof = true;
			break;
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			break;
		} else {
			c->broken = true;
			break;
		}
	}
	if (!c->broken)
		process_input(c);
	hum_api_settle_(c);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	client *c = (client *)((char *)w - offsetof(client, wio));
	flush_out(c);
	if (hum_api_unsent_(c) <= PAUSE_OUT)
		hum_api_resume_(c);
	hum_api_settle_(c);
}

/* Accepting --------------------------------------------------------------------- */

static void refuse(hum_api *a, int fd, const char *text)
{
	hum_buf b = { 0 };
	hum_buf_puts(&b, "{\"ok\":false,\"error\":");
	hum_json_cstr(&b, text);
	hum_buf_puts(&b, "}\n");
	if (!b.oom) {
		ssize_t n;
		do
			n = send(fd, b.p, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
	}
	hum_buf_free(&b);
	/* No half-read requests: tell the peer we are done before closing. */
	shutdown(fd, SHUT_WR);
	close(fd);
	STAT_INC(a, refused);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	hum_api *a = w->data;
	for (int k = 0; k < 64; k++) {
		int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: stop accepting for a moment instead
				 * of spinning on a listener that stays readable. */
				ev_io_stop(loop, &a->accept_w);
				ev_timer_set(&a->accept_retry, 0.1, 0.);
				ev_timer_start(loop, &a->accept_retry);
			}
			return;
		}
		struct ucred cr;
		socklen_t cl = sizeof cr;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
			refuse(a, fd, "cannot check the peer's credentials");
			continue;
		}
		if (cr.uid != a->uid) {
			char text[160];
			snprintf(text, sizeof text, "permission denied: uid %u may not use this hum (owner uid %u)",
				 (unsigned)cr.uid, (unsigned)a->uid);
			refuse(a, fd, text);
			continue;
		}
		if (a->nclients >= a->max_clients) {
			refuse(a, fd, "too many clients");
			continue;
		}
		client *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->api = a;
		c->fd = fd;
		c->active = ev_now(loop);
		ev_io_init(&c->rio, read_cb, fd, EV_READ);
		ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
		c->next = a->clients;
		if (a->clients)
			a->clients->prev = c;
		a->clients = c;
		a->nclients++;
		ev_io_start(loop, &c->rio);
		c->reading = true;
		STAT_INC(a, accepted);
		__atomic_store_n(&a->stats.clients, (uint32_t)a->nclients, __ATOMIC_RELAXED);
	}
}

static void accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_api *a = w->data;
	ev_io_start(loop, &a->accept_w);
}

/* Every idle_timeout/4: closes connections that did nothing (no byte in or
 * out) for idle_timeout while no command of theirs is with the loop thread
 * and they follow nothing: a client that connected and went quiet, sent
 * half a request, or stopped reading its answer.  Without this, such
 * connections would hold their slots (and memory) forever. */
static void idle_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_api *a = w->data;
	ev_tstamp now = ev_now(loop);
	for (client *c = a->clients, *next; c; c = next) {
		next = c->next;
		if (!c->busy && !c->following && now - c->active >= a->idle_timeout) {
			c->broken = true;
			hum_api_settle_(c);
		}
	}
}
/* Requests --------------------------------------------------------------------- */

/* Hands a validated command to the loop thread; the client waits for its
 * reply before its next request. */
static void forward(client *c, const hum_req *r, const char *line, size_t len)
{
	hum_api *a = c->api;
	if (!a->on_command) {
		hum_api_send_error_(c, r->id, r->idlen, "commands are not available");
		return;
	}
	uint32_t cid = ++a->next_cmd;
	if (cid == 0)
		cid = ++a->next_cmd;
	msg *m = msg_new(cid, line, len);
	if (!m) {
		hum_api_send_error_(c, r->id, r->idlen, "out of memory");
		return;
	}
	c->busy = true;
	c->cmd_id = cid;
	c->idlen = r->idlen;
	memcpy(c->idraw, r->id, r->idlen);
	mpsc_push(&a->cmds, m);
	ev_async_send(a->main_loop, &a->cmd_async);
	STAT_INC(a, commands);
}

void hum_api_handle_line_(client *c, const char *line, size_t len)
{
	hum_api *a = c->api;
	char err[320];
	hum_req r;
	if (hum_req_parse(&r, line, len, err, sizeof err) < 0) {
		hum_api_send_error_(c, r.id, r.idlen, "%s", err);
		hum_req_free(&r);
		return;
	}
	switch (r.kind) {
	case HUM_REQ_PS:
		hum_api_do_ps_(c, r.id, r.idlen);
		STAT_INC(a, reads);
		break;
	case HUM_REQ_STATUS:
		hum_api_do_status_(c, &r);
		STAT_INC(a, reads);
		break;
	case HUM_REQ_LOGS:
		hum_api_do_logs_(c, &r);
		stream_later(c, hum_api_stream_(c));
		break;
	case HUM_REQ_WATCH:
		hum_api_do_watch_(c, &r);
		break;
	case HUM_REQ_PING:
		hum_buf_puts(&c->out, "{\"ok\":true");
		hum_api_put_id_(&c->out, r.id, r.idlen);
		hum_buf_puts(&c->out, ",\"pong\":true,\"pid\":");
		hum_json_i64(&c->out, getpid());
		hum_buf_puts(&c->out, "}\n");
		break;
	case HUM_REQ_COMMAND:
		forward(c, &r, line, len);
		break;
	}
	hum_req_free(&r);
}

/* Commands and replies ---------------------------------------------------------- */

/* Loop thread: hands queued commands to the host. */
static void cmd_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	hum_api *a = w->data;
	msg *m = mpsc_take(&a->cmds);
	while (m) {
		msg *next = m->next;
		a->on_command(a->ud, m->id, m->data, m->len);
		free(m);
		m = next;
	}
}

void hum_api_reply(hum_api *a, uint32_t id, bool ok, const char *body, size_t len)
{
	msg *m = msg_new(id, body, len);
	if (!m)
		return; /* the client's command stays unanswered; it can time out */
	m->ok = ok;
	mpsc_push(&a->replies, m);
	ev_async_send(a->loop, &a->reply_async);
}

/* The envelope of a command's reply, built here and nowhere else:
 * {"ok":..,"id":.., then the body's fields}, encoded by jansson from the
 * parsed body (whatever bytes the loop thread sent, the line is valid JSON
 * with "ok" first).  The id is the request's, already JSON text. */
static void put_reply(hum_buf *b, const msg *m, const char *id, size_t idlen)
{
	json_error_t jerr;
	json_t *body = json_loadb(m->data, m->len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *rep = json_object(), *idv = idlen ? json_loadb(id, idlen, JSON_DECODE_ANY, NULL) : NULL;
	bool good = body && json_is_object(body) && rep;
	if (rep) {
		json_object_set_new(rep, "ok", json_boolean(good && m->ok));
		if (idv)
			json_object_set(rep, "id", idv);
		if (good) {
			json_object_del(body, "ok");
			json_object_del(body, "id");
			json_object_update(rep, body);
		} else {
			char msgbuf[256];
			snprintf(msgbuf, sizeof msgbuf, "hum produced a reply that is not a JSON object%s%s",
				 body ? "" : ": ", body ? "" : jerr.text);
			json_object_set_new(rep, "error", json_string(msgbuf));
		}
	}
	char *text = rep ? json_dumps(rep, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	if (text) {
		hum_buf_puts(b, text);
		hum_buf_putc(b, '\n');
	} else {
		hum_buf_puts(b, "{\"ok\":false");
		hum_api_put_id_(b, id, idlen);
		hum_buf_puts(b, ",\"error\":\"out of memory\"}\n");
	}
	free(text);
	json_decref(rep);
	json_decref(idv);
	json_decref(body);
}

static void reply_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	hum_api *a = w->data;
	msg *m = mpsc_take(&a->replies);
	while (m) {
		msg *next = m->next;
		for (client *c = a->clients; c; c = c->next) {
			if (c->busy && c->cmd_id == m->id) {
				put_reply(&c->out, m, c->idraw, c->idlen);
				c->busy = false;
				c->idlen = 0;
				c->active = ev_now(loop);
				process_input(c);
				hum_api_settle_(c);
				break;
			}
		}
		free(m);
		m = next;
	}
}

/* Stop: on the API thread. */
static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	hum_api *a = w->data;
	/* A follower gets everything until the end: what was committed since
	 * the last poll (lines processes printed while stopping, hum's last
	 * message) goes out before the end object. */
	if (a->nfollow)
		hum_api_follow_cb_(loop, &a->follow_timer, 0);
	while (a->clients) {
		client *c = a->clients;
		if (c->following && !c->broken) {
			/* the last lines and states first: a follower or watcher
			 * gets everything until the end, then why it ends */
			hum_api_follow_poll_(a, c);
			if (c->watching && c->following && !c->broken)
				hum_api_watch_poll_(a, c);
		}
		if (c->following)
			hum_api_end_follow_(c, "server stopping");
		else if (c->busy)
			hum_api_send_error_(c, c->idraw, c->idlen, "hum is stopping");
		if (!c->broken)
			flush_out(c); /* best effort: one non-blocking attempt */
		client_free(c);
	}
	ev_io_stop(loop, &a->accept_w);
	ev_timer_stop(loop, &a->accept_retry);
	ev_timer_stop(loop, &a->follow_timer);
	ev_timer_stop(loop, &a->idle_timer);
	ev_idle_stop(loop, &a->stream_idle);
	ev_async_stop(loop, &a->reply_async);
	ev_async_stop(loop, &a->stop_async);
	ev_break(loop, EVBREAK_ALL);
}

static void *thread_main(void *arg)
{
	hum_api *a = arg;
	pthread_setname_np(pthread_self(), "hum-api");
	ev_run(a->loop, 0);
	return NULL;
}
/* Setup ------------------------------------------------------------------------ */

static void api_free(hum_api *a)
{
	if (a->listen_fd >= 0)
		close(a->listen_fd);
	if (a->lock_fd >= 0)
		close(a->lock_fd);
	if (a->loop)
		ev_loop_destroy(a->loop);
	if (a->rd)
		hum_reader_free(a->rd);
	hum_buf_free(&a->bytes);
	free(a->refs);
	free(a->recs);
	free(a->sels);
	free(a->mark);
	free(a->ents);
	free(a->hz);
	for (msg *m = mpsc_take(&a->replies), *n; m; m = n) {
		n = m->next;
		free(m);
	}
	for (msg *m = mpsc_take(&a->cmds), *n; m; m = n) {
		n = m->next;
		free(m);
	}
	free(a);
}

int hum_api_start(hum_api **out, const char *project_dir, const hum_api_opts *o, bool *stale,
		  char *err, size_t errlen)
{
	*out = NULL;
	if (stale)
		*stale = false;
	if (errlen)
		err[0] = 0;
	char humdir[PATH_MAX], real[PATH_MAX];
	int rc = hum_api_state_dir(project_dir, humdir, sizeof humdir, err, errlen);
	if (rc < 0)
		return rc;
	if (!realpath(project_dir, real)) {
		rc = -errno;
		hum_api_seterr_(err, errlen, "cannot resolve %s: %s", project_dir, strerror(-rc));
		return rc;
	}
	hum_api *a = calloc(1, sizeof *a);
	if (!a) {
		hum_api_seterr_(err, errlen, "out of memory");
		return -ENOMEM;
	}
	a->listen_fd = a->lock_fd = -1;
	a->st = o->store;
	a->main_loop = o->loop;
	a->on_command = o->on_command;
	a->ud = o->ud;
	a->max_request = o->max_request ? o->max_request : HUM_API_MAX_REQUEST;
	a->max_output = o->max_output ? o->max_output : PAUSE_OUT;
	a->max_clients = o->max_clients ? o->max_clients : 1024;
	a->follow_interval = o->follow_interval > 0 ? o->follow_interval : 0.05;
	a->idle_timeout = o->idle_timeout > 0 ? o->idle_timeout : 60;
	a->uid = geteuid();

	if ((rc = hum_api_take_lock_(humdir, &a->lock_fd, err, errlen)) < 0)
		goto fail;
	bool fallback;
	if ((rc = hum_api_socket_path_(real, a->path, sizeof a->path, &fallback)) < 0 && !fallback) {
		hum_api_seterr_(err, errlen, "no usable socket path for %s", real);
		goto fail;
	}
	if (fallback && (rc = hum_api_fallback_place_(a, humdir, real, err, errlen)) < 0)
		goto fail;
	if ((rc = hum_api_probe_existing_(a->path, stale, err, errlen)) < 0) {
		if (!err[0])
			hum_api_seterr_(err, errlen, "cannot check %s: %s", a->path, strerror(-rc));
		goto fail;
	}
	if ((rc = hum_api_open_listener_(a, err, errlen)) < 0)
		goto fail;

	a->rd = hum_reader_new(a->st);
	/* EVFLAG_NOSIGMASK: this loop has no signal watchers and must never
	 * touch the signal mask (the default loop's thread owns signals). */
	a->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!a->rd || !a->loop) {
		rc = -ENOMEM;
		hum_api_seterr_(err, errlen, "cannot set up the API thread: out of memory");
		goto fail;
	}
	ev_io_init(&a->accept_w, accept_cb, a->listen_fd, EV_READ);
	a->accept_w.data = a;
	ev_io_start(a->loop, &a->accept_w);
	ev_timer_init(&a->accept_retry, accept_retry_cb, 0.1, 0.);
	a->accept_retry.data = a;
	ev_timer_init(&a->follow_timer, hum_api_follow_cb_, 0., a->follow_interval);
	a->follow_timer.data = a;
	ev_timer_init(&a->idle_timer, idle_cb, a->idle_timeout / 4, a->idle_timeout / 4);
	a->idle_timer.data = a;
	ev_timer_start(a->loop, &a->idle_timer);
	ev_idle_init(&a->stream_idle, stream_idle_cb);
	a->stream_idle.data = a;
	ev_async_init(&a->reply_async, reply_cb);
	a->reply_async.data = a;
	ev_async_start(a->loop, &a->reply_async);
	ev_async_init(&a->stop_async, stop_cb);
	a->stop_async.data = a;
	ev_async_start(a->loop, &a->stop_async);
	ev_async_init(&a->cmd_async, cmd_cb);
	a->cmd_async.data = a;
	ev_async_start(a->main_loop, &a->cmd_async);

	/* The thread starts with every signal blocked: process signals are the
	 * loop thread's (ev_signal on the default loop). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&a->thread, NULL, thread_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		ev_async_stop(a->main_loop, &a->cmd_async);
		hum_api_seterr_(err, errlen, "cannot start the API thread: %s", strerror(-rc));
		goto fail;
	}
	a->thread_started = true;
	*out = a;
	return 0;
fail:
	if (a->listen_fd >= 0)
		hum_api_unlink_ours_(a);
	else if (a->tmpdir[0])
		rmdir(a->tmpdir);
	api_free(a);
	return rc;
}

void hum_api_stop(hum_api *a)
{
	if (!a)
		return;
	if (a->thread_started) {
		/* a request in progress on the API thread gives up on this */
		__atomic_store_n(&a->stopping, true, __ATOMIC_RELAXED);
		ev_async_send(a->loop, &a->stop_async);
		pthread_join(a->thread, NULL);
	}
	ev_async_stop(a->main_loop, &a->cmd_async);
	hum_api_unlink_ours_(a);
	api_free(a);
}

const char *hum_api_path(const hum_api *a) { return a->path; }

void hum_api_get_stats(hum_api *a, hum_api_stats *s)
{
	s->accepted = __atomic_load_n(&a->stats.accepted, __ATOMIC_RELAXED);
	s->refused = __atomic_load_n(&a->stats.refused, __ATOMIC_RELAXED);
	s->requests = __atomic_load_n(&a->stats.requests, __ATOMIC_RELAXED);
	s->reads = __atomic_load_n(&a->stats.reads, __ATOMIC_RELAXED);
	s->commands = __atomic_load_n(&a->stats.commands, __ATOMIC_RELAXED);
	s->errors = __atomic_load_n(&a->stats.errors, __ATOMIC_RELAXED);
	s->dropped_lines = __atomic_load_n(&a->stats.dropped_lines, __ATOMIC_RELAXED);
	s->clients = __atomic_load_n(&a->stats.clients, __ATOMIC_RELAXED);
}

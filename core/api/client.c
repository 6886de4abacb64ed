/*
 * client.c — the API thread's connections: accepting them (peer uid, the
 * slot limit), reading request lines, writing answers without blocking,
 * settling a client after every event (flush, close, or resume reading),
 * resuming streamed answers, and closing idle ones.
 *
 * Separate from dispatch.c, which decides what a request line means and
 * answers it into the client's output: this file owns the bytes in and out
 * and a client's life, never the content of an answer.
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
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "api_priv.h"

/* Clients: output ------------------------------------------------------------ */

/* ,"id":ID when the request had one (id is already JSON text). */
void hum_api_put_id_(hum_buf *b, const char *id, size_t idlen)
{
	if (idlen) {
		hum_buf_put(b, ",\"id\":", 6);
		hum_buf_put(b, id, idlen);
	}
}

/* An error reply {"ok":false[,"id":..],"error":MESSAGE} into c->out. */
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
void hum_api_flush_out_(client *c)
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

/* Frees c's cursors (a logs answer's or a follower's). */
void hum_api_cursors_free_(client *c)
{
	for (size_t i = 0; i < c->ncur; i++)
		free(c->cur[i].name);
	free(c->cur);
	c->cur = NULL;
	c->ncur = c->capcur = 0;
}

/* Frees a logs filter's compiled pattern and clears it. */
/* Frees what a request left in c (follow cursors, the logs filter, a
 * watch's table of what was sent) and its buffers; not c itself, its fd or
 * its place in the client list.  The one place a client's state is freed:
 * the fake API of the tests and the fuzz target call it too. */
void hum_api_client_release_(client *c)
{
	hum_api_cursors_free_(c);
	hum_api_filter_free_(&c->flt);
	hum_api_watch_free_(c);
	free(c->in);
	c->in = NULL;
	hum_buf_free(&c->out);
}

void hum_api_filter_free_(filter *f)
{
	hum_grep_free(&f->grep);
	memset(f, 0, sizeof *f);
}

/* Stops c's watchers, closes its socket, unlinks it from the client list
 * and the counts, and frees it with everything it holds. */
void hum_api_client_free_(client *c)
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
	hum_api_client_release_(c);
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
void hum_api_process_input_(client *c)
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

/* Streamed answers: who goes on with them ------------------------------------- */

/* After hum_api_stream_ stopped: for time, the idle watcher (and the timer,
 * in case the loop never idles) goes on with it; for a full output, write_cb
 * does, or the timer when all clients together are over TOTAL_OUT. */
void hum_api_stream_later_(client *c, bool for_time)
{
	hum_api *a = c->api;
	if (!c->streaming)
		return;
	if (for_time)
		ev_idle_start(a->loop, &a->stream_idle);
	if (!ev_is_active(&a->follow_timer))
		ev_timer_again(a->loop, &a->follow_timer);
}

/* c's next step once output drained or time passed: more of its streamed
 * answer, or its next requests. */
void hum_api_resume_(client *c)
{
	if (c->streaming)
		hum_api_stream_later_(c, hum_api_stream_(c));
	if (!c->streaming)
		hum_api_process_input_(c);
}

/* The idle watcher: more of every streamed answer that stopped for time
 * (and whose client has room); stops when none wants more. */
void hum_api_stream_idle_cb_(struct ev_loop *loop, ev_idle *w, int revents)
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
			hum_api_process_input_(c);
		hum_api_settle_(c);
	}
	if (!more)
		ev_idle_stop(loop, w);
}

/* Settling --------------------------------------------------------------------- */

/* Broken, or its output buffer ran out of memory (see api_priv.h). */
bool hum_api_answer_failed_(const client *c)
{
	return c->broken || c->out.oom;
}

/* Flushes, adjusts watchers, and frees the client when it is finished or
 * broken.  Returns false if c is gone.  Every callback ends with this. */
bool hum_api_settle_(client *c)
{
	hum_api *a = c->api;
	/* An answer an allocation cut short is never sent as if it were whole
	 * (its last line may be torn): the connection is closed instead, and
	 * the client sees the answer end without its final line. */
	if (hum_api_answer_failed_(c))
		c->broken = true;
	if (!c->broken)
		hum_api_flush_out_(c);
	if (c->broken || (c->closing && !hum_api_unsent_(c))) {
		hum_api_client_free_(c);
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

/* Clients: the socket's events ---------------------------------------------------- */

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
		hum_api_process_input_(c);
	hum_api_settle_(c);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	client *c = (client *)((char *)w - offsetof(client, wio));
	hum_api_flush_out_(c);
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

/* The listener is readable: up to 64 connections accepted, each checked
 * (peer uid, the client limit) and given a client, or refused. */
void hum_api_accept_cb_(struct ev_loop *loop, ev_io *w, int revents)
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

/* Accepting again after it was out of descriptors. */
void hum_api_accept_retry_cb_(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_api *a = w->data;
	ev_io_start(loop, &a->accept_w);
}

/* Idle connections ------------------------------------------------------------- */

/* Every idle_timeout/4: closes connections that did nothing (no byte in or
 * out) for idle_timeout while no command of theirs is with the loop thread
 * and they follow nothing: a client that connected and went quiet, sent
 * half a request, or stopped reading its answer.  Without this, such
 * connections would hold their slots (and memory) forever. */
void hum_api_idle_cb_(struct ev_loop *loop, ev_timer *w, int revents)
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

/*
 * server.c — the control socket's lifecycle: hum_api_start opens the socket
 * and starts the API thread with its watchers, hum_api_stop tells every
 * client and closes it, joins the thread and frees everything; and the
 * small helpers every file of core/api uses.
 *
 * Separate from what the API thread does between the two: client.c owns
 * the connections, dispatch.c the requests, commands and replies.  Only
 * this file creates, stops and frees the thread and its loop.
 *
 * Threads and ownership.
 *   - hum_api_start/stop and the command ev_async run on the loop thread.
 *   - Everything else (accept, clients, parsing, reads, follow polls) runs
 *     on the API thread, in its own ev_loop; clients and scratch buffers are
 *     owned by it alone.
 *   - Two lock-free MPSC stacks cross the threads (dispatch.c): commands to
 *     the loop thread, replies back.
 *
 * Files.  This one: start and stop of the API thread.  client.c: the
 *   connections (accept, input, output, idle); dispatch.c: a request line's
 *   answer or its way to the loop thread, the queues and the reply
 *   envelope; request.c parses a request line (jansson) and validates it;
 *   read_procs.c, read_logs.c and follow.c answer ps/status, logs and
 *   follow from the store (no lock, no allocation per read beyond the
 *   client's buffer and reused scratch); watch.c the change feed; path.c
 *   places the socket and takes the per-project lock; jsonw.c writes every
 *   answer.  api_priv.h holds what they share.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "api_priv.h"

/* Small helpers ------------------------------------------------------------- */

/* Wall-clock time in milliseconds since the epoch (answers' "time"). */
int64_t hum_api_now_ms_(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Grows *p (a *cap-element array of elem bytes) to hold at least need,
 * doubling from 16; false, with *p unchanged, when out of memory. */
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

/* A message into err (n bytes; none when n is 0). */
void hum_api_seterr_(char *err, size_t n, const char *fmt, ...)
{
	if (!n)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

/* The API thread ---------------------------------------------------------------- */

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
			hum_api_flush_out_(c); /* best effort: one non-blocking attempt */
		hum_api_client_free_(c);
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

/* Frees the scratch the reads grow and reuse (hum_api's "API thread only"
 * arrays); also how the request-path tests' fake API is freed
 * (core/tests/api_fixture.h), so a new scratch array is freed in both. */
void hum_api_scratch_free_(hum_api *a)
{
	hum_buf_free(&a->bytes);
	free(a->refs);
	free(a->recs);
	free(a->sels);
	free(a->mark);
	free(a->ents);
	free(a->hz);
}

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
	hum_api_scratch_free_(a);
	hum_api_queues_free_(a);
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
	ev_io_init(&a->accept_w, hum_api_accept_cb_, a->listen_fd, EV_READ);
	a->accept_w.data = a;
	ev_io_start(a->loop, &a->accept_w);
	ev_timer_init(&a->accept_retry, hum_api_accept_retry_cb_, 0.1, 0.);
	a->accept_retry.data = a;
	ev_timer_init(&a->follow_timer, hum_api_follow_cb_, 0., a->follow_interval);
	a->follow_timer.data = a;
	ev_timer_init(&a->idle_timer, hum_api_idle_cb_, a->idle_timeout / 4, a->idle_timeout / 4);
	a->idle_timer.data = a;
	ev_timer_start(a->loop, &a->idle_timer);
	ev_idle_init(&a->stream_idle, hum_api_stream_idle_cb_);
	a->stream_idle.data = a;
	ev_async_init(&a->reply_async, hum_api_reply_cb_);
	a->reply_async.data = a;
	ev_async_start(a->loop, &a->reply_async);
	ev_async_init(&a->stop_async, stop_cb);
	a->stop_async.data = a;
	ev_async_start(a->loop, &a->stop_async);
	ev_async_init(&a->cmd_async, hum_api_cmd_cb_);
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

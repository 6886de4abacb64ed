/*
 * capture.c — children's stdout/stderr: pipes to lines to the log ring.
 *
 * Each readable event reads 64 KiB at a time (one read(2) per 64 KiB, into
 * the supervisor's shared scratch buffer), splits with memchr (lines.c),
 * appends the lines to the process's ring, commits once and calls the lines
 * hook once per read — no per-line syscall or allocation.  Up to 4 full
 * reads per event per pipe (a short read means the pipe is empty), so one
 * flooding child cannot starve the others.  EOF flushes the partial last line
 * and closes the pipe.  The child is never blocked by hum except by the pipe
 * itself: hum reads whenever the pipe is readable and never writes to it —
 * unless a bounded consumer of the lines asks to pause (the Lua line queue
 * for one process, the foreground printer behind a slow terminal for all:
 * hum_proc_pause_output, hum_sup_pause_output); then the child waits on its
 * full pipe, as it would writing to that terminal itself.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sup_priv.h"

#define READS_PER_EVENT 4
#define READS_PER_DRAIN 64 /* 4 MiB: more than any pipe buffer holds */

static void deliver(hum_stream *st, size_t n)
{
	hum_proc *p = st->p;
	hum_sup *s = p->sup;
	hum_logring *ring = &p->entry->log;
	int64_t t = sup_now_ms();
	for (size_t i = 0; i < n; i++) {
		hum_line *l = &s->lines[i];
		l->stream = st->kind;
		l->time_ms = t;
		l->seq = hum_logring_append(ring, st->kind, l->flags, t, l->data, l->len);
	}
	hum_logring_commit(ring);
	if (s->hooks.lines)
		s->hooks.lines(p, s->lines, n, s->ud);
}

static void stream_close(hum_stream *st)
{
	hum_proc *p = st->p;
	hum_sup *s = p->sup;
	ev_io_stop(s->loop, &st->io);
	close(st->io.fd);
	if (st->prev)
		st->prev->next = st->next;
	else
		s->streams = st->next;
	if (st->next)
		st->next->prev = st->prev;
	if (p->out == st)
		p->out = NULL;
	if (p->err == st)
		p->err = NULL;
	p->nstreams--;
	hum_lbuf_free(&st->lb);
	free(st);
	/* The main process's last pipe closed (pipes an earlier run left to
	 * its descendants do not count): it is most likely exiting.
	 * Watch its exit through a pidfd (reap.c, "exit watches"), not the
	 * signal alone; without one, look now (libev's SIGCHLD path:
	 * waitpid(-1, WNOHANG) until none is left; nothing happens if it
	 * still runs). */
	if (!p->out && !p->err && p->pid && !sup_exit_watch(s->loop, &p->exit_w, p->pid))
		ev_feed_signal_event(s->loop, SIGCHLD);
}

/* One read.  Returns the bytes read (> 0), 0 on EAGAIN, -1 when the stream
 * reached EOF (or failed) and was closed. */
static ssize_t read_once(hum_stream *st)
{
	hum_sup *s = st->p->sup;
	ssize_t r;
	do
		r = read(st->io.fd, s->scratch + HUM_LBUF_READ_AT, HUM_READ_SIZE);
	while (r < 0 && errno == EINTR);
	if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	if (r < 0)
		sup_log(s, st->p, "read %s pipe: %s",
			     st->kind == HUM_STREAM_ERR ? "stderr" : "stdout", strerror(errno));
	bool eof = r <= 0;
	size_t n = hum_lbuf_split(&st->lb, s->scratch, eof ? 0 : (size_t)r, eof, s->lines);
	if (n)
		deliver(st, n);
	if (eof) {
		stream_close(st);
		return -1;
	}
	return r;
}

static void io_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	hum_stream *st = (hum_stream *)w;
	for (int i = 0; i < READS_PER_EVENT; i++)
		if (read_once(st) < HUM_READ_SIZE || !ev_is_active(w))
			break; /* empty, closed, drained by a short read, or paused
				* by a consumer of the lines it just read */
}

/* Whether st's pipe is read: neither its process nor every process is
 * paused (hum_proc_pause_output, hum_sup_pause_output). */
static bool wanted(const hum_stream *st)
{
	return !st->p->output_paused && !st->p->sup->output_paused;
}

static void rewatch(hum_stream *st)
{
	hum_sup *s = st->p->sup;
	if (wanted(st) && !ev_is_active(&st->io))
		ev_io_start(s->loop, &st->io);
	else if (!wanted(st) && ev_is_active(&st->io))
		ev_io_stop(s->loop, &st->io);
}

int sup_stream_open(hum_proc *p, int fd, int kind)
{
	hum_sup *s = p->sup;
	hum_stream *st = calloc(1, sizeof *st);
	if (st == NULL) {
		close(fd);
		return -ENOMEM;
	}
	st->p = p;
	st->kind = (uint8_t)kind;
	ev_io_init(&st->io, io_cb, fd, EV_READ);
	if (wanted(st))
		ev_io_start(s->loop, &st->io);
	st->next = s->streams;
	if (s->streams)
		s->streams->prev = st;
	s->streams = st;
	p->nstreams++;
	if (kind == HUM_STREAM_ERR)
		p->err = st;
	else
		p->out = st;
	return 0;
}

static void drain(hum_stream *st)
{
	/* Everything the exited child wrote is in the pipe already; read
	 * until it is empty.  Bounded, for a descendant that keeps writing. */
	for (int i = 0; i < READS_PER_DRAIN; i++)
		if (read_once(st) <= 0)
			break;
}

void sup_proc_drain(hum_proc *p)
{
	/* A hook may restart p while we drain: take the pointers first. */
	hum_stream *out = p->out, *err = p->err;
	if (out)
		drain(out);
	if (err && err == p->err)
		drain(err);
}

void hum_proc_pause_output(hum_proc *p, bool pause)
{
	hum_sup *s = p->sup;
	if (p->output_paused == pause)
		return;
	p->output_paused = pause;
	/* Every open pipe of p, also those of earlier runs that a descendant
	 * still holds.  A paused pipe at EOF is closed when it is read again. */
	for (hum_stream *st = s->streams; st; st = st->next)
		if (st->p == p)
			rewatch(st);
}

void hum_sup_pause_output(hum_sup *s, bool pause)
{
	if (s->output_paused == pause)
		return;
	s->output_paused = pause;
	for (hum_stream *st = s->streams; st; st = st->next)
		rewatch(st);
}

void sup_stream_close_all(hum_sup *s)
{
	while (s->streams) {
		hum_stream *st = s->streams;
		ev_io_stop(s->loop, &st->io);
		close(st->io.fd);
		s->streams = st->next;
		st->p->nstreams--;
		st->p->out = st->p->err = NULL;
		hum_lbuf_free(&st->lb);
		free(st);
	}
}

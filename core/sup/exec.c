/*
 * exec.c — one-shot children with captured output (hum.exec, exec probes).
 *
 * The child is started by hum_spawn (launch.c): its own session and process
 * group (a timeout kills the whole group), default signal state, exec
 * failures reported as errors rather than as exit 127.  With a supervisor,
 * the child carries hum's token and its group is guarded by the sentinel, so
 * hum.exec children are cleaned up after kill -9 like supervised ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"
#include "launch.h"
#include "proc.h"

typedef struct buf {
	char *data;
	size_t len, cap;
} buf;

typedef struct job {
	ev_child child;
	ev_io out, err, in;
	ev_timer timer;
	struct ev_loop *loop;
	struct hum_sup *sup;
	hum_exec_cb cb;
	void *ud;
	pid_t pid;
	int status;
	int exited;
	int open;       /* pipes still open for reading */
	int timed_out;
	buf bout, berr;
	char *input;
	size_t input_len, input_off;
} job;

#define JOB_OF(ptr, member) ((job *)((char *)(ptr) - offsetof(job, member)))

static void append(buf *b, const char *p, size_t n)
{
	if (b->len + n > HUM_EXEC_MAX_OUTPUT)
		n = HUM_EXEC_MAX_OUTPUT - b->len;
	if (!n)
		return;
	if (b->len + n + 1 > b->cap) {
		size_t cap = b->cap ? b->cap : 4096;
		while (cap < b->len + n + 1)
			cap *= 2;
		char *d = realloc(b->data, cap);
		if (!d)
			return; /* out of memory: output is truncated, never a crash */
		b->data = d;
		b->cap = cap;
	}
	memcpy(b->data + b->len, p, n);
	b->len += n;
	b->data[b->len] = 0;
}

static void maybe_finish(job *j)
{
	if (!j->exited || j->open)
		return;
	ev_timer_stop(j->loop, &j->timer);
	hum_exec_result r;
	memset(&r, 0, sizeof r);
	r.code = -1;
	if (WIFEXITED(j->status))
		r.code = WEXITSTATUS(j->status);
	else if (WIFSIGNALED(j->status))
		r.term_signal = WTERMSIG(j->status);
	r.out = j->bout.data ? j->bout.data : "";
	r.err = j->berr.data ? j->berr.data : "";
	r.out_len = j->bout.len;
	r.err_len = j->berr.len;
	r.error = j->timed_out ? "timeout" : NULL;
	j->cb(j->ud, &r);
	free(j->bout.data);
	free(j->berr.data);
	free(j->input);
	free(j);
}

static void close_io(job *j, ev_io *w)
{
	ev_io_stop(j->loop, w);
	close(w->fd);
	w->fd = -1;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	job *j = w->data;
	buf *b = (w == &j->out) ? &j->bout : &j->berr;
	char tmp[65536];
	for (;;) {
		ssize_t n = read(w->fd, tmp, sizeof tmp);
		if (n > 0) {
			append(b, tmp, (size_t)n);
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		close_io(j, w); /* EOF or error */
		j->open--;
		maybe_finish(j);
		return;
	}
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	job *j = w->data;
	while (j->input_off < j->input_len) {
		ssize_t n = write(w->fd, j->input + j->input_off, j->input_len - j->input_off);
		if (n > 0) {
			j->input_off += (size_t)n;
			continue;
		}
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return;
		break; /* EPIPE: the child does not read its input; that is its business */
	}
	close_io(j, w);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	job *j = JOB_OF(w, child);
	ev_child_stop(loop, w);
	if (j->sup) /* reaped: the group id may be recycled from now on */
		hum_sup_unguard_group(j->sup, j->pid);
	j->status = w->rstatus;
	j->exited = 1;
	if (j->in.fd >= 0)
		close_io(j, &j->in);
	maybe_finish(j);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	job *j = JOB_OF(w, timer);
	j->timed_out = 1;
	/* the whole group: a shell's children go too */
	kill(-j->pid, SIGKILL);
	/* descendants may hold the pipes open past the group's death only if
	 * they left the group; stop waiting for them */
	if (j->out.fd >= 0) {
		close_io(j, &j->out);
		j->open--;
	}
	if (j->err.fd >= 0) {
		close_io(j, &j->err);
		j->open--;
	}
	maybe_finish(j);
}

int hum_exec_start(struct ev_loop *loop, const hum_exec_spec *spec, hum_exec_cb cb, void *ud,
		   char *errbuf, size_t errlen)
{
	job *j = calloc(1, sizeof *j);
	if (!j)
		return -ENOMEM;
	hum_spawn_req req = { spec->argv, spec->shell, spec->cwd, spec->env,
			      spec->sup ? hum_sup_token(spec->sup) : NULL, 1 };
	hum_spawned sp;
	int rc = hum_spawn(&req, &sp, errbuf, errlen);
	if (rc < 0) {
		free(j);
		return rc;
	}
	j->pid = sp.pid;
	j->loop = loop;
	j->sup = spec->sup;
	j->cb = cb;
	j->ud = ud;
	j->open = 2;
	if (j->sup)
		hum_sup_guard_group(j->sup, j->pid);
	ev_io_init(&j->out, read_cb, sp.out_fd, EV_READ);
	ev_io_init(&j->err, read_cb, sp.err_fd, EV_READ);
	j->out.data = j->err.data = j;
	ev_io_start(loop, &j->out);
	ev_io_start(loop, &j->err);
	ev_io_init(&j->in, write_cb, sp.in_fd, EV_WRITE);
	j->in.data = j;
	if (spec->input && spec->input_len) {
		j->input = malloc(spec->input_len);
		if (j->input) {
			memcpy(j->input, spec->input, spec->input_len);
			j->input_len = spec->input_len;
		}
		ev_io_start(loop, &j->in);
	} else {
		close(sp.in_fd); /* EOF at once */
		j->in.fd = -1;
	}
	/* No race with the exit: libev reaps in the loop, after this returns. */
	ev_child_init(&j->child, child_cb, j->pid, 0);
	ev_child_start(loop, &j->child);
	ev_timer_init(&j->timer, timeout_cb, spec->timeout > 0 ? spec->timeout : 0, 0);
	if (spec->timeout > 0)
		ev_timer_start(loop, &j->timer);
	return 0;
}

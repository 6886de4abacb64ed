/*
 * exec.c — one-shot children with captured output (hum.exec, exec probes).
 *
 * posix_spawn (glibc: clone with CLONE_VM|CLONE_VFORK) is the cheapest way to
 * start a child from a large process and reports exec failures as its return
 * value, so "could not exec" never looks like "exited 127".  POSIX_SPAWN_SETSID
 * puts the child in its own session and process group, and the child gets
 * default dispositions and an empty signal mask.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "exec.h"

extern char **environ;

typedef struct buf {
	char *data;
	size_t len, cap;
} buf;

typedef struct job {
	ev_child child;
	ev_io out, err, in;
	ev_timer timer;
	struct ev_loop *loop;
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
	int pout[2] = { -1, -1 }, perr[2] = { -1, -1 }, pin[2] = { -1, -1 };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t at;
	sigset_t none, all;
	int rc;
	job *j = calloc(1, sizeof *j);
	if (!j)
		return -ENOMEM;
	if (pipe2(pout, O_CLOEXEC) < 0 || pipe2(perr, O_CLOEXEC) < 0 || pipe2(pin, O_CLOEXEC) < 0) {
		rc = -errno;
		snprintf(errbuf, errlen, "pipe2: %s", strerror(-rc));
		goto fail;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
	posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
	posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
	if (spec->cwd)
		posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
	posix_spawnattr_init(&at);
	sigemptyset(&none);
	sigfillset(&all);
	sigdelset(&all, SIGKILL);
	sigdelset(&all, SIGSTOP);
	posix_spawnattr_setsigmask(&at, &none);
	posix_spawnattr_setsigdefault(&at, &all);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	char *shargv[] = { "/bin/sh", "-c", (char *)spec->shell, NULL };
	char *const *argv = spec->argv ? spec->argv : shargv;
	rc = posix_spawnp(&j->pid, argv[0], &fa, &at, argv, spec->env ? spec->env : environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&at);
	if (rc != 0) {
		if (spec->cwd && (rc == ENOENT || rc == ENOTDIR || rc == EACCES) && access(spec->cwd, X_OK) != 0)
			snprintf(errbuf, errlen, "chdir %s: %s", spec->cwd, strerror(rc));
		else
			snprintf(errbuf, errlen, "exec %s: %s", argv[0], strerror(rc));
		rc = -rc;
		goto fail;
	}
	close(pin[0]);
	close(pout[1]);
	close(perr[1]);
	fcntl(pout[0], F_SETFL, O_NONBLOCK);
	fcntl(perr[0], F_SETFL, O_NONBLOCK);
	fcntl(pin[1], F_SETFL, O_NONBLOCK);
	j->loop = loop;
	j->cb = cb;
	j->ud = ud;
	j->open = 2;
	ev_io_init(&j->out, read_cb, pout[0], EV_READ);
	ev_io_init(&j->err, read_cb, perr[0], EV_READ);
	j->out.data = j->err.data = j;
	ev_io_start(loop, &j->out);
	ev_io_start(loop, &j->err);
	ev_io_init(&j->in, write_cb, pin[1], EV_WRITE);
	j->in.data = j;
	if (spec->input && spec->input_len) {
		j->input = malloc(spec->input_len);
		if (j->input) {
			memcpy(j->input, spec->input, spec->input_len);
			j->input_len = spec->input_len;
		}
		ev_io_start(loop, &j->in);
	} else {
		close(pin[1]); /* EOF at once */
		j->in.fd = -1;
	}
	ev_child_init(&j->child, child_cb, j->pid, 0);
	ev_child_start(loop, &j->child);
	ev_timer_init(&j->timer, timeout_cb, spec->timeout > 0 ? spec->timeout : 0, 0);
	if (spec->timeout > 0)
		ev_timer_start(loop, &j->timer);
	return 0;
fail:
	for (int i = 0; i < 2; i++) {
		if (pout[i] >= 0) close(pout[i]);
		if (perr[i] >= 0) close(perr[i]);
		if (pin[i] >= 0) close(pin[i]);
	}
	free(j);
	return rc;
}

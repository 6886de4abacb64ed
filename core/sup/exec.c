/*
 * exec.c — one-shot children with captured output (hum.exec, exec probes).
 *
 * The child is started by hum_spawn (launch.c): its own session and process
 * group (a timeout kills the whole group), default signal state, exec
 * failures reported as errors rather than as exit 127.
 *
 * Leftovers.  A job is its whole group and every descendant: when the
 * leader exits (or the timeout kills it), what it left behind is killed too
 * (`cmd &` in a shell, a daemon that setsid'd).  With a supervisor each job
 * carries a token of its own, HUM_TOKEN=<prefix>0.<job> (process ids start at
 * 1; id 0 is "not a process"), so its own leftovers can be swept without
 * touching another job's, and its group is guarded by the sentinel while
 * the leader lives, so hum.exec children are cleaned up after kill -9 like
 * supervised ones.
 *
 * Cgroups.  With a supervisor that places runs in cgroups, each job has
 * one too, 0.<job> (cgroup_spawn.c), killed and removed with the job's
 * sweep (cgroup_kill.c).
 *
 * Group ids.  kill(-pgid) is only correct while the id is ours: while the
 * leader is unreaped (running or a zombie pins the id) and right at its
 * reap, the rule reap.c keeps.  Here it holds by construction: signal_group()
 * is the only kill(-pgid) and does nothing once `live` is false, and the
 * only place that clears `live` is reaped(), which sends the last group
 * signal itself just before.  After that, leftovers are found by token only
 * (sweep.c verifies each kill through a pidfd).
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
#include "sup_priv.h"

typedef struct buf {
	char *data;
	size_t len, cap;
} buf;

typedef struct job {
	ev_child child;
	ev_io exit_w;   /* a pidfd of the leader until reaped (reap.c) */
	ev_io out, err, in;
	ev_timer timer;
	struct ev_loop *loop;
	struct hum_sup *sup;
	hum_exec_cb cb;
	void *ud;
	pid_t pid;      /* the leader; also its group's id */
	bool live;      /* leader not reaped yet: see signal_group() */
	uint32_t serial; /* token <prefix>0.<serial>; 0 without a supervisor */
	uint64_t forks0; /* forks on the machine before the spawn (sweep range) */
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

/* The only kill(-pgid) of a job (see "Group ids" above). */
static void signal_group(job *j, int sig)
{
	if (j->live && kill(-j->pid, sig) != 0 && errno != ESRCH && j->sup)
		sup_log(j->sup, NULL, "exec: kill(-%d): %s", (int)j->pid, strerror(errno));
}

/* The leader was reaped (status): the group's last signal, then tokens only. */
static void reaped(job *j, int status)
{
	/* Members left in the group keep its id reserved: it is still ours. */
	signal_group(j, SIGKILL);
	j->live = false;
	if (j->sup) {
		hum_sup_unguard_group(j->sup, j->pid);
		sup_scan_job(j->sup, j->serial, SIGKILL, j->pid, j->forks0);
	}
	j->status = status;
	j->exited = 1;
	if (j->in.fd >= 0)
		close_io(j, &j->in);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	job *j = JOB_OF(w, child);
	ev_child_stop(loop, w);
	sup_exit_unwatch(loop, &j->exit_w);
	reaped(j, w->rstatus);
	maybe_finish(j);
}

static void timeout_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	job *j = JOB_OF(w, timer);
	j->timed_out = 1;
	/* The whole group, a shell's children too (nothing once reaped: then
	 * reaped() killed the group and queued the token sweep already). */
	signal_group(j, SIGKILL);
	/* Pipes held past that by a descendant that left the group and
	 * escaped the token (a scrubbed environment): stop waiting for them. */
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
	static uint32_t jobs; /* loop thread only */
	char token[128];
	hum_spawn_req req = { spec->argv, spec->shell, spec->cwd, spec->env, NULL, 1, 0 };
	if (spec->sup) {
		if (++jobs == 0) /* 0 is "no job" (and 0.0 other spawners' token) */
			jobs = 1;
		j->serial = jobs;
		snprintf(token, sizeof token, "HUM_TOKEN=%s0.%u", spec->sup->prefix, j->serial);
		req.token = token;
		/* before the fork: forks since then bound the pids of its leftovers */
		j->forks0 = spec->sup->sweeper.pid_max ? sup_total_forks() : 0;
	}
	/* cgroup_spawn.c: a job's cgroup is 0.<job>, like its token */
	int cgfd = spec->sup ? sup_cgroup_open(spec->sup, 0, j->serial) : 0;
	req.cgroup_fd = cgfd;
	hum_spawned sp;
	int rc = hum_spawn(&req, &sp, errbuf, errlen);
	if (spec->sup)
		sup_cgroup_spawned(spec->sup, 0, j->serial, cgfd, rc == 0, sp.cgroup_err);
	if (rc < 0) {
		free(j);
		return rc;
	}
	j->pid = sp.pid;
	j->live = true;
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
	sup_exit_init(&j->exit_w);
	sup_exit_watch(loop, &j->exit_w, j->pid);
	ev_timer_init(&j->timer, timeout_cb, spec->timeout > 0 ? spec->timeout : 0, 0);
	if (spec->timeout > 0)
		ev_timer_start(loop, &j->timer);
	return 0;
}

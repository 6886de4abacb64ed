/*
 * proc.c — the supervisor's records and its control API (see proc.h).
 *
 * Owns: hum_sup, every hum_proc (spec copies, watchers, run bookkeeping),
 * the sentinel, and a run's spawn.  The control API on a process (start,
 * stop, restart, signal, readiness) is in proc_control.c.  Exits, restarts and kill sweeps live in reap.c, pipes in
 * capture.c, the spawn itself in launch.c; the start gate in proc_gate.c,
 * removal (hum_sup_remove) in proc_remove.c, a spec's defaults and spec
 * equality in proc_spec.c.
 *
 * State machine (one process, loop thread):
 *   pending --start--> running --set_ready--> ready
 *   running/ready --exit--> succeeded | failed | backoff --timer--> running
 *   running/ready --stop--> stopping --exit (+sweep)--> stopped
 *   backoff/pending --stop--> stopped
 *   any idle state --start/restart--> running (spawn error: failed; short
 *     of descriptors, memory or processes: backoff, retried by its timer)
 *   any start while the gate is closed --> pending (deferred: proc_gate.c)
 * `starting` is never published here: posix_spawn is synchronous, so a spawn
 * either failed (failed, spawn_error) or the child is running.  A stopped run
 * stays stopped whatever its exit status.  restart on a live process is stop,
 * then a new run once the old one is over (no `stopped` in between); it
 * counts in `restarts` like a policy restart.  `restarts` in the snapshot is
 * cumulative; the policy's own attempt counter (for max and the backoff
 * delay) is reset by reset_after and by an explicit start.
 *
 * Errors: 0 or -errno everywhere; failures are logged as "<name>: <call>:
 * <errno text>" through the log hook (stderr without one).
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "sup_priv.h"
#include "fds.h"
#include "launch.h"
#include "lineage.h"

/* ---- helpers ------------------------------------------------------------------ */

int64_t sup_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

double sup_mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void sup_log(hum_sup *s, hum_proc *p, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (s->hooks.log)
		s->hooks.log(p, msg, s->ud);
	else
		fprintf(stderr, "hum: %s%s%s\n", p ? p->entry->name : "", p ? ": " : "", msg);
}

hum_snap *sup_proc_next(hum_proc *p, const char *reason)
{
	hum_snap *n = hum_snap_clone(p->entry->snap, reason);
	if (n == NULL) {
		sup_log(p->sup, p, "state change lost: out of memory");
		return NULL;
	}
	n->changed_at_ms = sup_now_ms();
	return n;
}

void sup_proc_publish(hum_proc *p, hum_snap *n)
{
	hum_sup *s = p->sup;
	/* old stays valid until the next hum_store_flush: fine for the hook. */
	const hum_snap *old = p->entry->snap;
	/* "Ready now", one definition for every reader (socket, p:status(),
	 * gating): the flag follows the state, so a clone of a ready snapshot
	 * (stopping, backoff...) can never carry it along. */
	n->ready = n->state == HUM_READY;
	/* cgroup_kill.c: a run that is over gives up its cgroup (removed once the
	 * last of what it left there is gone) */
	if (p->cg == 1 && n->pid == 0 &&
	    (n->state == HUM_STOPPED || n->state == HUM_SUCCEEDED || n->state == HUM_FAILED ||
	     n->state == HUM_BACKOFF)) {
		p->cg = 2;
		sup_cgroup_release(s, p->id, p->run);
	}
	hum_store_publish(s->st, p->entry, n);
	if (s->hooks.state)
		s->hooks.state(p, old, n, s->ud);
}

void sup_set_state(hum_proc *p, int state, const char *reason)
{
	hum_snap *n = sup_proc_next(p, reason);
	if (n == NULL)
		return;
	n->state = (uint8_t)state;
	sup_proc_publish(p, n);
}

static char **strv_dup(char *const *v)
{
	if (v == NULL)
		return NULL;
	size_t n = 0;
	while (v[n])
		n++;
	char **c = calloc(n + 1, sizeof *c);
	if (c == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if ((c[i] = strdup(v[i])) == NULL) {
			while (i--)
				free(c[i]);
			free(c);
			return NULL;
		}
	return c;
}

static void strv_free(char **v)
{
	for (char **q = v; q && *q; q++)
		free(*q);
	free(v);
}

void sup_proc_free(hum_proc *p)
{
	sup_exit_unwatch(p->sup->loop, &p->exit_w); /* none once reaped */
	sup_gate_free(p);
	strv_free(p->argv);
	strv_free(p->env);
	free(p->shell);
	free(p->cwd);
	free(p->groups);
	free(p->base);
	free(p);
}

/* ---- spawn --------------------------------------------------------------------- */

/* Publishes the snapshot that begins a start attempt (a new run): running
 * with its pid; failed to spawn (pid 0, reason = the error, ended now); or
 * back-off when the spawn failed for lack of a resource and is retried. */
static void publish_attempt(hum_proc *p, int state, pid_t pid, const char *reason)
{
	hum_snap *n = sup_proc_next(p, reason);
	if (n == NULL)
		return;
	n->state = (uint8_t)state;
	n->pid = pid;
	n->ready = 0;
	n->paused = 0;
	n->counting = 0;
	sup_remain_fill(p, n);
	n->spawn_error = state == HUM_FAILED;
	n->exit_code = -1;
	n->term_signal = 0;
	n->restarts = p->restarts;
	n->run = p->run;
	if (state != HUM_RUNNING) {
		n->ended_at_ms = n->changed_at_ms;
	} else {
		n->started_at_ms = n->changed_at_ms;
		n->ended_at_ms = 0;
	}
	sup_proc_publish(p, n);
}

/* A spawn that failed for lack of descriptors, memory or processes says
 * nothing about the program: hum (or the machine) is short of them for now,
 * and will have them again once something exits.  So it is not `failed`
 * (which would stay so for ever under policy "no", and is never retried):
 * the process waits in `backoff` and is spawned again after
 * SPAWN_RETRY_FIRST seconds, doubling up to SPAWN_RETRY_CAP, whatever its
 * restart policy and without using its restart budget, until a spawn works
 * or it is stopped.  The reason says why; Lua logs the first of a series
 * (a state change), so a long shortage is not a flood of messages. */
static void retry_spawn(hum_proc *p, const char *err)
{
	double d = SPAWN_RETRY_FIRST * (double)(1u << (p->spawn_retries < 6 ? p->spawn_retries : 6));
	if (d > SPAWN_RETRY_CAP)
		d = SPAWN_RETRY_CAP;
	p->spawn_retries++;
	char reason[640];
	snprintf(reason, sizeof reason, "cannot spawn now: %s (retry %u in %gs)", err,
		 p->spawn_retries, d);
	ev_timer_set(&p->backoff_timer, d, 0);
	ev_timer_start(p->sup->loop, &p->backoff_timer);
	publish_attempt(p, HUM_BACKOFF, 0, reason);
}

int sup_proc_spawn(hum_proc *p, int why)
{
	hum_sup *s = p->sup;
	/* Never two copies: whatever is left of the previous run goes first.
	 * Its pipes, if still open, stay watched until EOF. */
	sup_cleanup_run(p);
	if (p->gate) {
		/* Every start passes here (first start, restart, policy restart
		 * after backoff, restart after a stop), so the gate holds for
		 * all of them by construction: a closed gate turns the start
		 * into `pending`, to be carried out by the next hum_proc_start. */
		ev_timer_stop(s->loop, &p->backoff_timer);
		p->restart_after = WHY_NONE;
		p->deferred = (uint8_t)why;
		sup_set_state(p, HUM_PENDING, p->gate);
		return -EAGAIN;
	}
	p->deferred = WHY_NONE;
	p->failing = 0;
	sup_remain_reset(p);
	p->out = p->err = NULL;
	p->run++;
	p->stopping = p->killed = 0;
	p->restart_after = WHY_NONE;
	if (why != WHY_START && why != WHY_RETRY)
		p->restarts++;

	char token[128], err[512];
	snprintf(token, sizeof token, "HUM_TOKEN=%s%u.%u", s->prefix, p->id, p->run);
	/* cgroup_spawn.c: the run's own cgroup, the child in it from the start */
	int cgfd = sup_cgroup_open(s, p->id, p->run);
	hum_spawn_req req = { p->argv, p->shell, p->cwd, p->env, token, 0, cgfd };
	hum_spawned sp;
	/* before the fork: forks since then bound the pids the run can have */
	p->forks0 = s->sweeper.pid_max ? sup_total_forks() : 0;
	int rc = hum_spawn(&req, &sp, err, sizeof err);
	p->cg = sup_cgroup_spawned(s, p->id, p->run, cgfd, rc == 0, sp.cgroup_err);
	if (rc < 0) {
		p->cleaned = 1;
		if (hum_spawn_transient(rc)) {
			retry_spawn(p, err);
			return 0; /* under way: it runs once the resource is back */
		}
		sup_log(s, p, "%s", err);
		publish_attempt(p, HUM_FAILED, 0, err);
		return rc;
	}
	p->spawn_retries = 0;
	p->pid = p->pgid = sp.pid;
	p->cleaned = 0;
	p->started_mono = sup_mono();
	sup_pidmap_add(s, p);
	rc = hum_sentinel_add(&s->sentinel, sp.pid);
	if (rc < 0)
		sup_log(s, p, "sentinel: add group %d: %s", (int)sp.pid, strerror(-rc));
	/* Each call takes its fd (closed on failure: the child then gets
	 * EPIPE on that stream, it is not blocked). */
	if ((rc = sup_stream_open(p, sp.out_fd, HUM_STREAM_OUT)) < 0)
		sup_log(s, p, "capture stdout: %s", strerror(-rc));
	if ((rc = sup_stream_open(p, sp.err_fd, HUM_STREAM_ERR)) < 0)
		sup_log(s, p, "capture stderr: %s", strerror(-rc));
	if (!p->out && !p->err) /* no pipe whose closing would say it exits */
		sup_exit_watch(s->loop, &p->exit_w, sp.pid);
	publish_attempt(p, HUM_RUNNING, sp.pid, "");
	return 0;
}

/* ---- supervisor ------------------------------------------------------------------ */

hum_sup *hum_sup_new(struct ev_loop *loop, hum_store *st, const hum_sup_hooks *hooks, void *ud)
{
	static unsigned instances;
	if (loop == NULL || !ev_is_default_loop(loop) || st == NULL) {
		errno = EINVAL;
		return NULL;
	}
	/* Pipes must never land on 0/1/2 (dup2 onto itself would keep
	 * CLOEXEC).  main() did this first thing; a program that embeds the
	 * supervisor may not have. */
	(void)hum_fds_stdio();
	/* A dead sentinel or output reader must not kill hum. */
	signal(SIGPIPE, SIG_IGN);

	hum_sup *s = calloc(1, sizeof *s);
	if (s == NULL)
		return NULL;
	s->loop = loop;
	s->st = st;
	if (hooks)
		s->hooks = *hooks;
	s->ud = ud;
	s->sentinel.fd = -1;
	ev_prepare_init(&s->retire_w, sup_retire_cb);
	s->scratch = malloc(HUM_LBUF_SCRATCH);
	s->lines = malloc(HUM_LBUF_MAX_LINES * sizeof *s->lines);
	if (s->scratch == NULL || s->lines == NULL) {
		free(s->scratch);
		free(s->lines);
		free(s);
		errno = ENOMEM;
		return NULL;
	}
	snprintf(s->prefix, sizeof s->prefix, "%d-%llx-%u.", (int)getpid(),
		 (unsigned long long)sup_now_ms(), ++instances);
	snprintf(s->token, sizeof s->token, "HUM_TOKEN=%s0.0", s->prefix);
	if (prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0)
		sup_log(s, NULL, "prctl(PR_SET_CHILD_SUBREAPER): %s", strerror(errno));
	/* Before the sentinel, which learns where the cgroups are. */
	sup_cgroup_init(s);
	/* Early, while hum is small; before any child exists. */
	int rc = hum_sentinel_start(&s->sentinel, s->prefix);
	if (rc < 0)
		sup_log(s, NULL, "sentinel: fork: %s (children may outlive a killed hum)",
			     strerror(-rc));
	sup_reap_init(s);
	return s;
}

static int kill_sweep(pid_t pid, const char *value, size_t len, void *ud)
{
	hum_token_kill(pid, value, len, SIGKILL);
	return 0;
}

void hum_sup_free(hum_sup *s)
{
	if (s == NULL)
		return;
	s->freeing = true;
	sup_sweeper_stop(s);
	/* 1. Kill: live groups, then every token carrier (what is left of
	 * finished runs, and other spawners' children with hum_sup_token). */
	sup_cgroup_signal(s, 0, 0, SIGKILL, 0); /* every run's and job's cgroup */
	for (size_t i = 0; i < s->nprocs; i++) {
		hum_proc *p = s->procs[i];
		ev_timer_stop(s->loop, &p->grace_timer);
		ev_timer_stop(s->loop, &p->backoff_timer);
		sup_remain_unwatch(p);
		if (p->pid)
			sup_kill_group(p, SIGKILL);
	}
	for (int pass = 0; pass < 10; pass++) {
		if (hum_token_scan(s->prefix, kill_sweep, NULL) <= 0)
			break;
		struct timespec ts = { 0, 2 * 1000 * 1000 };
		nanosleep(&ts, NULL);
	}
	/* 2. Reap the main processes; record the end of every unfinished run
	 * in the store (no hooks: the caller is tearing down). */
	for (size_t i = 0; i < s->nprocs; i++) {
		hum_proc *p = s->procs[i];
		int status = 0, reaped = 0;
		if (p->pid) {
			pid_t r;
			sup_exit_unwatch(s->loop, &p->exit_w);
			while ((r = waitpid(p->pid, &status, 0)) < 0 && errno == EINTR)
				;
			reaped = r == p->pid;
			p->pid = 0;
		} else if (p->finish_pending) {
			status = p->wstatus;
			reaped = 1;
		}
		int st = p->entry->snap->state;
		if (st == HUM_PENDING || st == HUM_STOPPED || st == HUM_SUCCEEDED || st == HUM_FAILED)
			continue;
		hum_snap *n = hum_snap_clone(p->entry->snap, "stopped (hum exited)");
		if (n == NULL)
			continue;
		n->state = HUM_STOPPED;
		n->pid = 0;
		n->ready = 0;
		n->changed_at_ms = sup_now_ms();
		if (reaped) {
			n->ended_at_ms = n->changed_at_ms;
			n->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
			n->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
		}
		hum_store_publish(s->st, p->entry, n);
	}
	/* Runs outside cgroups: what they left that lost group, session and
	 * token was re-parented to hum (lineage.h).  Then the cgroups: wait
	 * for them to empty, remove them. */
	if (!s->cg.placing)
		hum_lineage_kill_escaped(getpid(), s->sentinel.pid, 2.0);
	sup_cgroup_fini(s);
	/* 3. Everything is dead: the sentinel need not kill groups whose ids
	 * may be recycled from now on; it still sweeps tokens. */
	hum_sentinel_disarm(&s->sentinel);
	hum_sentinel_stop(&s->sentinel);
	/* 4. Watchers and memory. */
	ev_prepare_stop(s->loop, &s->retire_w);
	sup_stream_close_all(s);
	sup_reap_fini(s);
	for (size_t i = 0; i < s->nprocs; i++) {
		s->procs[i]->entry->owner = NULL;
		sup_proc_free(s->procs[i]);
	}
	free(s->procs);
	free(s->scratch);
	free(s->lines);
	free(s);
}

const char *hum_sup_token(hum_sup *s)
{
	return s->token;
}

int hum_sup_guard_group(hum_sup *s, pid_t pgid)
{
	return pgid > 0 ? hum_sentinel_add(&s->sentinel, pgid) : -EINVAL;
}

int hum_sup_unguard_group(hum_sup *s, pid_t pgid)
{
	return pgid > 0 ? hum_sentinel_forget(&s->sentinel, pgid) : -EINVAL;
}

hum_proc *hum_sup_add(hum_sup *s, const char *name, const hum_spec *spec, int *err)
{
	int e = 0;
	if (err == NULL)
		err = &e;
	if (s == NULL || name == NULL || *name == '\0' || spec == NULL ||
	    (spec->argv == NULL && spec->shell == NULL) ||
	    (spec->argv && spec->argv[0] == NULL) ||
	    (spec->kind != HUM_SERVICE && spec->kind != HUM_TASK) ||
	    spec->restart.policy < HUM_RESTART_NO || spec->restart.policy > HUM_RESTART_ALWAYS ||
	    spec->stop_signal < 0 || spec->stop_signal >= NSIG) {
		*err = -EINVAL;
		return NULL;
	}
	/* a replica's name is its base, a dot and something after it */
	size_t base_len = spec->base ? strlen(spec->base) : 0;
	if (base_len > 0 && (base_len > UINT32_MAX || strncmp(name, spec->base, base_len) != 0 ||
			     name[base_len] != '.' || name[base_len + 1] == '\0')) {
		*err = -EINVAL;
		return NULL;
	}
	if (s->nprocs == s->procs_cap) {
		size_t cap = s->procs_cap ? s->procs_cap * 2 : 16;
		hum_proc **v = realloc(s->procs, cap * sizeof *v);
		if (v == NULL) {
			*err = -ENOMEM;
			return NULL;
		}
		s->procs = v;
		s->procs_cap = cap;
	}
	hum_proc *p = calloc(1, sizeof *p);
	if (p == NULL) {
		*err = -ENOMEM;
		return NULL;
	}
	p->sup = s;
	sup_exit_init(&p->exit_w);
	p->argv = spec->shell ? NULL : strv_dup(spec->argv);
	p->shell = spec->shell ? strdup(spec->shell) : NULL;
	p->cwd = spec->cwd ? strdup(spec->cwd) : NULL;
	p->env = strv_dup(spec->env);
	p->groups = strdup(spec->groups ? spec->groups : "");
	p->base = strdup(spec->base ? spec->base : "");
	if ((spec->shell ? !p->shell : !p->argv) || (spec->cwd && !p->cwd) ||
	    (spec->env && !p->env) || !p->groups || !p->base) {
		sup_proc_free(p);
		*err = -ENOMEM;
		return NULL;
	}
	p->stop_signal = sup_norm_signal(spec);
	p->grace = sup_norm_grace(spec);
	p->kind = spec->kind;
	p->restart = sup_norm_restart(spec);
	p->cleaned = 1;

	hum_snap *n = hum_snap_new(NULL, name, p->groups, "not started");
	if (n == NULL) {
		sup_proc_free(p);
		*err = -ENOMEM;
		return NULL;
	}
	n->kind = (uint8_t)spec->kind;
	n->base_len = (uint32_t)base_len;
	n->state = HUM_PENDING;
	n->exit_code = -1;
	n->changed_at_ms = sup_now_ms();
	hum_entry *entry = hum_store_add(s->st, n);
	if (entry == NULL) {
		*err = errno == EEXIST ? -EEXIST : -ENOMEM;
		hum_snap_free(n);
		sup_proc_free(p);
		return NULL;
	}
	entry->owner = p;
	p->entry = entry;
	p->id = entry->id;
	ev_timer_init(&p->grace_timer, sup_grace_cb, 0, 0);
	ev_timer_init(&p->backoff_timer, sup_backoff_cb, 0, 0);
	sup_remain_init(p);
	s->procs[s->nprocs++] = p;
	if (s->hooks.state)
		s->hooks.state(p, NULL, entry->snap, s->ud);
	return p;
}

static uint32_t proc_id(const void *elem)
{
	return (*(hum_proc *const *)elem)->id;
}

hum_proc *hum_sup_get(hum_sup *s, uint32_t id)
{
	/* s->procs is in id order (store.h: ids only grow; removal keeps the order) */
	size_t i = hum_id_lower_bound(s->procs, s->nprocs, sizeof s->procs[0], proc_id, id);
	return i < s->nprocs && s->procs[i]->id == id ? s->procs[i] : NULL;
}

hum_proc *hum_sup_find(hum_sup *s, const char *name)
{
	/* The writer may read its own registry without a section. */
	hum_entry *e = hum_store_lookup(s->st, name);
	if (e == NULL || e->owner == NULL)
		return NULL;
	hum_proc *p = e->owner;
	return p->sup == s ? p : NULL;
}

void hum_sup_foreach(hum_sup *s, int (*fn)(hum_proc *p, void *ud), void *ud)
{
	for (size_t i = 0; i < s->nprocs; i++)
		if (fn(s->procs[i], ud))
			break;
}

size_t hum_sup_active(hum_sup *s)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nprocs; i++) {
		hum_proc *p = s->procs[i];
		n += p->pid || p->nstreams || p->finish_pending || p->count_queued || p->zero_counts;
	}
	return n;
}

void hum_sup_kill_all(hum_sup *s)
{
	for (size_t i = 0; i < s->nprocs; i++) {
		hum_proc *p = s->procs[i];
		if (p->pid) {
			/* The user wants them gone: the outcome is `stopped`. */
			if (!p->stopping) {
				p->stopping = 1;
				sup_set_state(p, HUM_STOPPING, "stopping (SIGKILL)");
			}
			p->failing = 0;
			p->restart_after = WHY_NONE;
			p->killed = 2;
			ev_timer_stop(s->loop, &p->grace_timer);
			sup_kill_group(p, SIGKILL);
		} else if (ev_is_active(&p->backoff_timer)) {
			hum_proc_stop(p);
		} else if (p->finish_pending) {
			/* A stop whose main process exited: no rest of the
			 * grace for what remains. */
			p->restart_after = WHY_NONE;
			sup_remain_kill(p);
		} else {
			p->restart_after = WHY_NONE;
			if (p->leftover_stop || p->nremain > 0 || p->count_queued)
				sup_remain_kill(p);
			else
				sup_cleanup_run(p);
		}
	}
	sup_scan_request(s, NULL, SIGKILL, AFTER_NONE, 0); /* every token of ours */
}

size_t hum_sup_pause_all(hum_sup *s, bool pause)
{
	size_t n = 0;
	for (size_t i = 0; i < s->nprocs; i++) {
		hum_proc *p = s->procs[i];
		if (pause && p->pid && !p->stopping && !p->entry->snap->paused) {
			/* The leader lives: the group id is ours. */
			sup_kill_group(p, SIGSTOP);
			p->suspended = 1;
			n++;
		} else if (!pause && p->suspended) {
			p->suspended = 0;
			if (p->pid) {
				sup_kill_group(p, SIGCONT);
				n++;
			}
		}
	}
	return n;
}

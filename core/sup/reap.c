/*
 * reap.c — what happens after a child exits, and making sure nothing of it
 * is left: reaping, exit states, restart policy and backoff, stop escalation
 * (stop signal, grace, SIGKILL), token sweeps, and empty-group bookkeeping.
 *
 * Reaping.  hum is a child subreaper, so orphaned descendants of its
 * children are re-parented to it.  libev reaps every child of the process on
 * every SIGCHLD wake-up (waitpid(-1, WNOHANG) in a loop until none is left)
 * and dispatches each status to the matching ev_child watchers; hum has one
 * watcher with pid 0 that sees them all and looks the pid up in a small hash
 * map.  Unknown pids are adopted orphans (or other code's children: libev
 * reaped them for it and their own watchers get the status too).
 *
 * Stop.  stop_signal (then SIGCONT, for a stopped group) goes to the whole
 * group and, through a token sweep, to descendants that left the group.
 * The run is the whole group and every carrier of its token, not the main
 * process (systemd's KillMode=control-group): when the main process exits
 * during a stop (a launcher that exits at once on SIGTERM while the program
 * it started cleans up), whatever remains keeps the REST of the grace
 * (remain.c counts and watches it).  `stopped` is published when nothing
 * remains, or after `grace` once the group (while its id is provably still
 * the run's, see "Groups") and the token carriers had SIGKILL — so a hook
 * that sees `stopped` may rely on the run being gone (or SIGKILL'd).
 *
 * Sweeps read /proc/<pid>/environ (of every process, or of the pids the run
 * can have: sweep.c), so they never run on the loop thread: they are queued
 * by stop/kill/restart and run by the worker in sweep.c, one /proc pass for
 * all that queued up meanwhile.
 *
 * Restart.  After an exit that the policy restarts (on-failure: not exit 0;
 * always: any), the run's leftovers are killed (a restart must never leave
 * two copies) and the state is `backoff` with reason "restarting in 1.5s
 * (attempt 3)"; delays start at `initial` and double up to `cap`; a run that
 * stayed up `reset_after` seconds resets the attempt count; after `max`
 * attempts the state stays failed ("... (gave up after N restarts)").
 * Spawn errors are never retried by the policy (they are not transient in
 * practice: missing binary, bad cwd), except a lack of descriptors, memory
 * or processes, which is hum's, not the program's: that attempt waits in
 * `backoff` on the same timer and is retried whatever the policy (proc.c,
 * retry_spawn).  A run ended by hum_proc_fail (a liveness probe gave up) is
 * stopped with the stop signal and grace, and its exit is then a failure
 * for the policy (policy "no" counts as on-failure there), never a stop and
 * never an immediate respawn.  Whether the new run may begin is not decided
 * here: the backoff timer calls sup_proc_spawn, which defers it to
 * `pending` while the process's start gate is closed (proc_gate.c,
 * hum_proc_set_gate).
 *
 * Groups and recycled ids.  A process group id is ours only while the group
 * is not empty, and hum cannot see it empty out (a member may be reaped by
 * another member).  It is certainly ours while its leader lives, and at the
 * moment hum reaps the leader (members left then keep the id reserved).  So
 * kill(-pgid) is only used then: stop, grace, kill_all, and the exit that
 * ends a stop or precedes a restart; the sentinel is told to forget the
 * group as soon as the leader is reaped.  One exception, with a proof: if
 * members were alive at the leader's reap, the id stays reserved while any
 * of them lives, and once the group is empty the number comes back only
 * after the kernel's cyclic pid allocator has gone round; fewer forks on
 * the machine than half of pid_max since the run began rule that out (the
 * same argument and margin as the sweep's pid range, sweep.c), so
 * sup_group_reserved() allows kill(-pgid) then.  Later (a new start after a run
 * whose descendants outlived it, stop of a finished process, kill_all,
 * hum_sup_free, the sentinel) what is left of a run is found only through
 * its token, and each such kill is verified against the process's token
 * through a pidfd — never a blind signal to a number that may have been
 * recycled.
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "state/atomic.h"
#include "sup_priv.h"

const char *sup_signame(int sig, char *buf, size_t len)
{
	const char *abbrev = sigabbrev_np(sig);
	if (abbrev)
		snprintf(buf, len, "SIG%s", abbrev);
	else
		snprintf(buf, len, "signal %d", sig);
	return buf;
}

/* ---- exit watches ------------------------------------------------------------ */

/* Why, when libev already reaps on SIGCHLD: every thread but the loop's
 * blocks SIGCHLD, and under ThreadSanitizer (which defers signals to its
 * own safe points) a SIGCHLD was seen lost: a zombie main process never
 * reaped, the loop idle in epoll_wait with nothing pending.  A pidfd makes
 * an exit a readable descriptor, which cannot be lost.  The pid is our
 * unreaped child while watched, so it cannot be recycled under the pidfd.
 *
 * When: a main process is watched once its last pipe closed (capture.c),
 * which is how nearly every exit begins (the kernel closes a process's
 * files before it becomes a zombie and signals its parent), not for its
 * whole run: every descriptor hum holds is copied into each child it
 * spawns and closed again at its exec, so a pidfd per running process
 * made a burst of 100 spawns about 20% slower.  A job (exec.c) is watched
 * from its start: jobs are few and short. */
static void exit_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	ev_io_stop(loop, w); /* readable for good: the reap closes it */
	ev_feed_signal_event(loop, SIGCHLD); /* waitpid(-1, WNOHANG) until none is left */
}

void sup_exit_init(ev_io *w)
{
	ev_io_init(w, exit_cb, -1, EV_READ);
}

bool sup_exit_watch(struct ev_loop *loop, ev_io *w, pid_t pid)
{
	if (w->fd >= 0)
		return true; /* watched already */
	int fd = (int)syscall(SYS_pidfd_open, pid, 0); /* close-on-exec */
	HUM_TSAN_FD_CREATED(); /* a raw system call: see state/atomic.h */
	if (fd < 0)
		return false;
	ev_io_set(w, fd, EV_READ);
	ev_io_start(loop, w);
	return true;
}

void sup_exit_unwatch(struct ev_loop *loop, ev_io *w)
{
	if (w->fd < 0)
		return;
	ev_io_stop(loop, w);
	close(w->fd);
	ev_io_set(w, -1, EV_READ);
}

/* ---- pid map and groups ---------------------------------------------------- */

void sup_pidmap_add(hum_sup *s, hum_proc *p)
{
	hum_proc **b = &s->pidmap[(unsigned)p->pid & (PIDMAP_SIZE - 1)];
	p->pid_next = *b;
	*b = p;
}

static hum_proc *pidmap_find(hum_sup *s, pid_t pid)
{
	for (hum_proc *p = s->pidmap[(unsigned)pid & (PIDMAP_SIZE - 1)]; p; p = p->pid_next)
		if (p->pid == pid)
			return p;
	return NULL;
}

static hum_proc *pidmap_take(hum_sup *s, pid_t pid)
{
	for (hum_proc **pp = &s->pidmap[(unsigned)pid & (PIDMAP_SIZE - 1)]; *pp; pp = &(*pp)->pid_next)
		if ((*pp)->pid == pid) {
			hum_proc *p = *pp;
			*pp = p->pid_next;
			p->pid_next = NULL;
			sup_exit_unwatch(s->loop, &p->exit_w);
			return p;
		}
	return NULL;
}

void sup_kill_group(hum_proc *p, int sig)
{
	/* Only while the leader lives or was reaped just now (see above). */
	if (p->pgid <= 0)
		return;
	if (kill(-p->pgid, sig) != 0 && errno != ESRCH) {
		char b[32];
		sup_log(p->sup, p, "kill(-%d, %s): %s", (int)p->pgid,
			     sup_signame(sig, b, sizeof b), strerror(errno));
	}
}

static void forget(hum_sup *s, pid_t pgid)
{
	int rc = hum_sentinel_forget(&s->sentinel, pgid);
	if (rc < 0 && rc != -EBADF)
		sup_log(s, NULL, "sentinel: forget group %d: %s", (int)pgid, strerror(-rc));
}

/* ---- token sweeps (run by sweep.c) ------------------------------------------- */

void sup_cleanup_run(hum_proc *p)
{
	/* The leader is gone: its group id may be recycled, tokens only. */
	if (p->cleaned || p->run == 0)
		return;
	p->cleaned = 1;
	sup_scan_request(p->sup, p, SIGKILL, AFTER_NONE, 0);
}

/* ---- exits ---------------------------------------------------------------------- */

bool sup_group_reserved(hum_proc *p)
{
	hum_sup *s = p->sup;
	if (p->pid)
		return true; /* the leader lives */
	if (!p->group_left || p->pgid <= 0 || s->sweeper.pid_max < 4096 || p->forks0 == 0)
		return false;
	uint64_t forks = sup_total_forks();
	return forks >= p->forks0 && forks - p->forks0 < (uint64_t)s->sweeper.pid_max / 2;
}

void sup_describe(int status, char *buf, size_t len)
{
	char b[32];
	if (WIFEXITED(status))
		snprintf(buf, len, "exited with code %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "killed by %s%s", sup_signame(WTERMSIG(status), b, sizeof b),
			 WCOREDUMP(status) ? " (core dumped)" : "");
	else
		snprintf(buf, len, "status 0x%x", status);
}

static void set_exit(hum_snap *n, int status)
{
	n->pid = 0;
	n->ready = 0;
	n->paused = 0;
	n->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
	n->term_signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
	n->ended_at_ms = n->changed_at_ms;
}

/* The final state of a stopped run: nothing of it remains, or the group and
 * the token carriers had SIGKILL. */
void sup_reap_finish(hum_proc *p)
{
	p->finish_pending = 0;
	p->cleaned = 1;
	ev_timer_stop(p->sup->loop, &p->grace_timer);
	/* Published even when a restart follows at once: every run that ends
	 * shows as ended (exit code, signal), so an `exit` reaction and
	 * hum.wait(p, "exit") see a restart's old run too. */
	char what[96], reason[192];
	sup_describe(p->wstatus, what, sizeof what);
	if (p->killed == 1)
		snprintf(reason, sizeof reason, "stopped (%s after %gs grace)", what, p->grace);
	else if (p->killed_remaining)
		snprintf(reason, sizeof reason, "stopped (%s; what remained was killed after %gs grace)",
			 what, p->grace);
	else
		snprintf(reason, sizeof reason, "stopped (%s)", what);
	sup_remain_reset(p);
	hum_snap *n = sup_proc_next(p, reason);
	if (n) {
		n->state = HUM_STOPPED;
		set_exit(n, p->wstatus);
		n->counting = 0;
		sup_remain_fill(p, n);
		sup_proc_publish(p, n);
	}
	if (p->restart_after) {
		int why = p->restart_after;
		p->restart_after = WHY_NONE;
		sup_proc_spawn(p, why);
	}
}

static double backoff_delay(const hum_proc *p)
{
	double d = p->restart.initial * ldexp(1.0, (int)(p->attempts > 60 ? 60 : p->attempts) - 1);
	return d > p->restart.cap ? p->restart.cap : d;
}

static void exited(hum_proc *p, int status)
{
	hum_sup *s = p->sup;
	/* While the pipes drain (hooks run), control calls must not see an
	 * idle process: finish_pending makes start/restart/stop defer. */
	p->finish_pending = 1;
	sup_proc_drain(p);
	p->wstatus = status;
	/* A run ended by hum_proc_fail (liveness) is not a stop: its exit goes
	 * to the restart policy below, like any failure. */
	bool failing = p->failing;
	p->failing = 0;
	bool stopping = p->stopping && !failing;
	/* Right at the reap the group id is surely ours: are members left? */
	p->group_left = kill(-p->pgid, 0) == 0;
	if (stopping && !p->killed && !ev_is_active(&p->grace_timer)) {
		/* Asked to stop while the pipes drained (a hook): the stop
		 * signal and the grace begin now, for whatever remains. */
		int sig = p->stop_signal;
		sup_kill_group(p, sig);
		if (sig != SIGKILL && sig != SIGCONT)
			sup_kill_group(p, SIGCONT);
		sup_scan_request(s, p, sig, AFTER_NONE, sig != SIGKILL ? p->pgid : 0);
		if (sig == SIGKILL || p->grace <= 0) {
			p->killed = 2;
		} else {
			ev_timer_set(&p->grace_timer, p->grace, 0);
			ev_timer_start(s->loop, &p->grace_timer);
		}
	}
	if (stopping && p->killed) {
		/* SIGKILL was sent already (grace over, or a kill at once):
		 * kill what is left, publish after the sweep. */
		ev_timer_stop(s->loop, &p->grace_timer);
		p->cleaned = 1;
		sup_kill_group(p, SIGKILL);
		forget(s, p->pgid);
		sup_scan_request(s, p, SIGKILL, AFTER_FINISH, 0);
		return;
	}
	if (stopping) {
		/* Whatever remains keeps the rest of the grace: the grace timer
		 * goes on; `stopped` once a count finds nothing (remain.c) or
		 * after the SIGKILL that ends the grace (sup_grace_cb). */
		char what[96], b[32];
		sup_describe(status, what, sizeof what);
		snprintf(p->end_reason, sizeof p->end_reason, "stopping (%s), main process %s",
			 sup_signame(p->stop_signal, b, sizeof b), what);
		forget(s, p->pgid);
		sup_remain_count(p);
		return;
	}
	ev_timer_stop(s->loop, &p->grace_timer);
	p->finish_pending = 0;
	p->stopping = 0;
	int asked = p->restart_after; /* start/restart called while draining */
	p->restart_after = WHY_NONE;

	bool ok = !failing && WIFEXITED(status) && WEXITSTATUS(status) == 0;
	const hum_restart *r = &p->restart;
	if (r->reset_after > 0 && sup_mono() - p->started_mono >= r->reset_after)
		p->attempts = 0;
	/* a liveness probe asks for restarts: policy "no" acts as on-failure */
	bool want = r->policy == HUM_RESTART_ALWAYS ||
		    ((r->policy == HUM_RESTART_ON_FAILURE || failing) && !ok);
	bool can = r->max < 0 || p->attempts < (unsigned)r->max;
	char what[192], reason[320];
	if (failing)
		snprintf(what, sizeof what, "%s", p->fail_why);
	else
		sup_describe(status, what, sizeof what);
	if (failing && !(want && can)) {
		/* it had the stop signal: nothing of the run stays */
		sup_kill_group(p, SIGKILL);
		sup_cleanup_run(p);
	}
	if (want && can) {
		/* A restart must not meet the old run: kill its group while the
		 * id is surely ours, and its token carriers. */
		sup_kill_group(p, SIGKILL);
		sup_cleanup_run(p);
		p->attempts++;
		double d = backoff_delay(p);
		snprintf(reason, sizeof reason, "restarting in %gs (attempt %u%s%s)", d, p->attempts,
			 failing ? "; " : "", failing ? what : "");
		ev_timer_set(&p->backoff_timer, d, 0);
		ev_timer_start(s->loop, &p->backoff_timer);
	} else if (want) {
		snprintf(reason, sizeof reason, "%s (gave up after %u restarts)", what, p->attempts);
	} else {
		snprintf(reason, sizeof reason, "%s", what);
	}
	forget(s, p->pgid);
	/* The run is over unless something of it remains: count that now
	 * (the snapshot says `counting` until the count is published). */
	bool count = !(want && can) && !asked;
	snprintf(p->end_reason, sizeof p->end_reason, "%s", reason);
	if (count)
		sup_remain_count(p);
	hum_snap *n = sup_proc_next(p, reason);
	if (n) {
		set_exit(n, status);
		n->counting = count;
		if (want && can)
			n->state = HUM_BACKOFF;
		else if (ok && !(r->policy == HUM_RESTART_ALWAYS && p->kind == HUM_SERVICE))
			n->state = HUM_SUCCEEDED;
		else
			n->state = HUM_FAILED; /* an `always` service that gave up failed */
		sup_proc_publish(p, n);
	}
	if (asked && !p->pid) {
		ev_timer_stop(s->loop, &p->backoff_timer);
		sup_proc_spawn(p, asked);
	}
}

static void respawn_sentinel(hum_sup *s)
{
	hum_sentinel_stop(&s->sentinel);
	int rc = hum_sentinel_start(&s->sentinel, s->prefix);
	if (rc < 0) {
		sup_log(s, NULL, "sentinel: fork: %s", strerror(-rc));
		return;
	}
	for (size_t i = 0; i < s->nprocs; i++)
		if (s->procs[i]->pid)
			hum_sentinel_add(&s->sentinel, s->procs[i]->pgid);
}

static void child_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	hum_sup *s = (hum_sup *)((char *)w - offsetof(hum_sup, child_w));
	pid_t pid = w->rpid;
	int status = w->rstatus;
	if (WIFSTOPPED(status) || WIFCONTINUED(status)) {
		/* Not an exit (the watcher traces): a main process was stopped
		 * (SIGSTOP, SIGTSTP...) or continued.  Shown as `paused`. */
		hum_proc *p = pidmap_find(s, pid);
		if (p && p->pid == pid && p->entry->snap->paused != (uint8_t)WIFSTOPPED(status)) {
			hum_snap *n = sup_proc_next(p, NULL);
			if (n) {
				n->paused = WIFSTOPPED(status) ? 1 : 0;
				sup_proc_publish(p, n);
			}
		}
		return;
	}
	if (pid == s->sentinel.pid && pid > 0) {
		char what[96];
		sup_describe(status, what, sizeof what);
		sup_log(s, NULL, "sentinel %s; starting a new one", what);
		s->sentinel.pid = 0; /* reaped already */
		respawn_sentinel(s);
		return;
	}
	hum_proc *p = pidmap_take(s, pid);
	if (p == NULL)
		return; /* an adopted orphan (reaped: that was all it needed) */
	p->pid = 0;
	exited(p, status);
}

/* ---- timers ------------------------------------------------------------------------- */

void sup_grace_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_proc *p = (hum_proc *)((char *)w - offsetof(hum_proc, grace_timer));
	char b[32];
	if (p->pid) {
		sup_log(p->sup, p, "still running %gs after %s: sending SIGKILL", p->grace,
			     sup_signame(p->stop_signal, b, sizeof b));
		p->killed = 1;
		sup_kill_group(p, SIGKILL);
		sup_scan_request(p->sup, p, SIGKILL, AFTER_NONE, 0);
		return;
	}
	if (!p->finish_pending && !p->leftover_stop)
		return;
	/* The main process is gone; what remained of the run had the stop
	 * signal `grace` seconds ago. */
	if (p->nremain > 0)
		sup_log(p->sup, p, "%u remaining process%s still running %gs after %s: sending SIGKILL",
			p->nremain, p->nremain == 1 ? "" : "es", p->grace,
			sup_signame(p->stop_signal, b, sizeof b));
	else
		sup_log(p->sup, p, "what remains still runs %gs after %s: sending SIGKILL", p->grace,
			sup_signame(p->stop_signal, b, sizeof b));
	sup_remain_kill(p);
}

void sup_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_proc *p = (hum_proc *)((char *)w - offsetof(hum_proc, backoff_timer));
	sup_proc_spawn(p, p->spawn_retries ? WHY_RETRY : WHY_POLICY);
}

/* ---- setup ---------------------------------------------------------------------------- */

void sup_reap_init(hum_sup *s)
{
	/* trace = 1: also stops and continues of children (shown as paused) */
	ev_child_init(&s->child_w, child_cb, 0, 1);
	ev_child_start(s->loop, &s->child_w);
	ev_unref(s->loop); /* watching for exits must not keep ev_run going */
	sup_sweeper_init(s);
}

void sup_reap_fini(hum_sup *s)
{
	ev_ref(s->loop);
	ev_child_stop(s->loop, &s->child_w);
	sup_sweeper_fini(s);
}

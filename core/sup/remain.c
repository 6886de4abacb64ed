/*
 * remain.c — remaining processes: what is left of a run once its main
 * process has exited.  A daemonizing command (`pg_ctl start`, a double fork),
 * `cmd &` in a shell string, or a launcher that exits on SIGTERM before the
 * program it started (`npm run dev` -> `sh -c vite`) all leave processes
 * that belong to the run but that hum never reaps as its main process.
 *
 * Counting.  The run's processes carry its HUM_TOKEN (sentinel.h), so a
 * count is a token sweep (sweep.c, on the worker thread) that signals
 * nothing and reports how many carriers it found, with a pidfd for each of
 * the first HUM_SNAP_PIDS (checked against the token while held, so a pidfd
 * names the process that was counted even if its pid is recycled later).
 * A count is queued when the main process exits (not when a policy restart
 * follows: the restart kills the leftovers first), and again whenever every
 * watched pidfd has reported its process's exit.  The processes named and
 * watched are the tops of what remains (whose parent is not one of them),
 * so children that come and go under them (a shell loop's `sleep`) cost
 * nothing.  Without pidfds (Linux < 5.3, out of descriptors) a timer counts
 * again every second instead.
 *
 * A count of 0 is believed only when it is confirmed: a process in the
 * middle of an execve has no readable environment for a moment, and that is
 * exactly when `cmd &` is counted (the shell exits as its child execs).  So
 * a 0 is counted again, 20 ms later and then with doubling delays while the
 * run's pipes are still open (someone holds them), and accepted after two
 * zeros with the pipes closed, or after ZERO_COUNTS_MAX zeros (about 2.5 s:
 * a pipe passed to a process that cannot be identified).  Until then the
 * snapshot keeps what it said (`counting`, or the last count).  The first 0
 * is believed when the run's pipes are closed and its group was empty when
 * the main process was reaped (only an escapee that closed its output could
 * be missed then): the common exit costs one count.
 *
 * Publishing.  The snapshot that reports the main process's exit carries
 * `counting` (the count is on its way); the next one carries the count
 * (`remaining`, `remaining_pids`, and the reason "exited with code 0; 1
 * process remains (pid 4242)").  Lua treats a process with `counting` or
 * `remaining` as alive for the order of a shutdown.
 *
 * Stopping.  During a stop, once the main process exited, the state stays
 * `stopping` while anything remains: the grace timer keeps running, and
 * `stopped` is published when a count finds nothing, or after the SIGKILL
 * that ends the grace (reap.c).  A stop of a finished run whose processes
 * remain (hum_proc_stop) sends them the stop signal and gives them the
 * grace, the same way; its outcome (succeeded, failed) does not change.
 *
 * Everything here runs on the loop thread.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "sup_priv.h"

static void watch_cb(struct ev_loop *loop, ev_io *w, int revents);
static void recount_cb(struct ev_loop *loop, ev_timer *w, int revents);

void sup_remain_init(hum_proc *p)
{
	for (int k = 0; k < HUM_SNAP_PIDS; k++) {
		ev_io_init(&p->watch[k].io, watch_cb, -1, EV_READ);
		p->watch[k].p = p;
	}
	ev_timer_init(&p->recount_timer, recount_cb, 1., 0.);
}

void sup_remain_count(hum_proc *p)
{
	if (p->count_queued || p->run == 0)
		return;
	p->count_queued = 1;
	sup_scan_request(p->sup, p, 0, AFTER_COUNT, 0);
}

void sup_remain_unwatch(hum_proc *p)
{
	struct ev_loop *loop = p->sup->loop;
	for (int k = 0; k < HUM_SNAP_PIDS; k++) {
		ev_io *w = &p->watch[k].io;
		if (w->fd < 0)
			continue;
		ev_io_stop(loop, w);
		close(w->fd);
		ev_io_set(w, -1, EV_READ);
	}
	p->nwatch = 0;
	ev_timer_stop(loop, &p->recount_timer);
}

void sup_remain_reset(hum_proc *p)
{
	sup_remain_unwatch(p);
	/* A count still on its way belongs to the old run: its result is
	 * dropped (count_queued is 0, or the run number changed). */
	p->count_queued = 0;
	p->nremain = 0;
	p->zero_counts = 0;
	memset(p->remain_pids, 0, sizeof p->remain_pids);
	if (p->leftover_stop && !p->pid)
		ev_timer_stop(p->sup->loop, &p->grace_timer);
	p->leftover_stop = 0;
	p->killed_remaining = 0;
}

void sup_remain_fill(const hum_proc *p, hum_snap *n)
{
	n->remaining = p->nremain;
	for (int k = 0; k < HUM_SNAP_PIDS; k++)
		n->remaining_pids[k] = p->nremain ? p->remain_pids[k] : 0;
}

void sup_remain_reason(const hum_proc *p, const char *base, char *buf, size_t len)
{
	if (p->nremain == 0) {
		snprintf(buf, len, "%s", base);
		return;
	}
	/* The pids are the tops of what remains; "..." when there is more. */
	uint32_t shown = 0;
	while (shown < HUM_SNAP_PIDS && p->remain_pids[shown] > 0)
		shown++;
	int n = snprintf(buf, len, "%s; %u process%s remain%s (pid%s", base, p->nremain,
			 p->nremain == 1 ? "" : "es", p->nremain == 1 ? "s" : "",
			 shown == 1 ? "" : "s");
	for (uint32_t k = 0; k < shown && n > 0 && (size_t)n < len; k++)
		n += snprintf(buf + n, len - (size_t)n, "%s %d", k ? "," : "", (int)p->remain_pids[k]);
	if (n > 0 && (size_t)n < len)
		snprintf(buf + n, len - (size_t)n, "%s)", p->nremain > shown ? ", ..." : "");
}

/* Publishes the count: the state does not change (stopping, or the outcome
 * of the run); the reason names what remains. */
static void publish_count(hum_proc *p)
{
	char reason[320], b[32];
	sup_remain_reason(p, p->end_reason, reason, sizeof reason);
	if (p->leftover_stop && p->nremain > 0) {
		size_t l = strlen(reason);
		snprintf(reason + l, sizeof reason - l, ", stopping (%s)",
			 sup_signame(p->stop_signal, b, sizeof b));
	}
	const hum_snap *cur = p->entry->snap;
	hum_snap *n = sup_proc_next(p, reason);
	if (n == NULL)
		return;
	/* Only `counting` ends (nothing remained): no visible change, so the
	 * time of the last change stays that of the exit. */
	if (p->nremain == 0 && cur->remaining == 0 && strcmp(cur->reason, reason) == 0)
		n->changed_at_ms = cur->changed_at_ms;
	n->counting = 0;
	n->pid = 0;
	n->ready = 0;
	if (p->finish_pending)
		n->state = HUM_STOPPING; /* (also when the stop came while draining) */
	sup_remain_fill(p, n);
	sup_proc_publish(p, n);
}

#define ZERO_COUNTS_MAX 8

static void count_in(hum_proc *p, double delay)
{
	ev_timer_set(&p->recount_timer, delay, 0.);
	ev_timer_start(p->sup->loop, &p->recount_timer);
}

void sup_remain_counted(hum_proc *p, hum_scan_req *r)
{
	struct ev_loop *loop = p->sup->loop;
	p->count_queued = 0;
	sup_remain_unwatch(p);
	if (r->found == 0) {
		/* Confirm it (see the top of the file): the snapshot keeps
		 * what it said until then. */
		bool pipes = p->out || p->err;
		/* Nobody holds the pipes and the group was empty at the reap:
		 * only an escapee that also closed its output could be in an
		 * exec now; believe the 0 (the common exit). */
		bool sure = !pipes && !p->group_left;
		p->zero_counts++;
		if (!sure && p->zero_counts < ZERO_COUNTS_MAX && (p->zero_counts < 2 || pipes)) {
			count_in(p, 0.01 * (1 << p->zero_counts));
			return;
		}
	}
	p->zero_counts = 0; /* accepted: the next 0 needs confirming again */
	p->nremain = r->found;
	memset(p->remain_pids, 0, sizeof p->remain_pids);
	for (int k = 0; k < HUM_SNAP_PIDS && r->pids[k] > 0; k++) {
		p->remain_pids[k] = r->pids[k];
		if (r->pidfds[k] < 0)
			continue;
		/* The pidfd is ours now; readable once that process exited. */
		ev_io_set(&p->watch[k].io, r->pidfds[k], EV_READ);
		ev_io_start(loop, &p->watch[k].io);
		r->pidfds[k] = -1;
		p->nwatch++;
	}
	if (p->nremain > 0 && p->nwatch == 0)
		count_in(p, 1.); /* no pidfds: poll */
	if (p->finish_pending) {
		/* A stop whose main process exited: over once nothing remains
		 * (the rest of the grace is not needed). */
		if (p->nremain == 0) {
			sup_reap_finish(p);
			return;
		}
	} else if (p->nremain == 0 && p->leftover_stop) {
		ev_timer_stop(loop, &p->grace_timer);
		p->leftover_stop = 0;
	}
	const hum_snap *cur = p->entry->snap;
	bool same = !cur->counting && cur->remaining == p->nremain;
	for (int k = 0; same && k < HUM_SNAP_PIDS; k++)
		same = cur->remaining_pids[k] == (p->nremain ? p->remain_pids[k] : 0);
	if (!same)
		publish_count(p);
}

/* A watched remaining process exited.  Once every watched one has, count
 * again: there may be others (more than were watched, or their children,
 * re-parented to hum as the subreaper). */
static void watch_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	hum_remain_w *x = (hum_remain_w *)w;
	hum_proc *p = x->p;
	ev_io_stop(loop, w);
	close(w->fd);
	ev_io_set(w, -1, EV_READ);
	if (p->nwatch > 0 && --p->nwatch == 0)
		sup_remain_count(p);
}

static void recount_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_proc *p = (hum_proc *)((char *)w - offsetof(hum_proc, recount_timer));
	sup_remain_count(p);
}

/* ---- stopping what remains --------------------------------------------------- */

int sup_remain_stop(hum_proc *p)
{
	hum_sup *s = p->sup;
	if (p->leftover_stop)
		return 0;
	int sig = p->stop_signal;
	bool group = sup_group_reserved(p);
	p->leftover_stop = 1;
	/* The group (when its id is provably still the run's) and, by
	 * token, whoever left it; SIGCONT after, for a stopped one. */
	if (group)
		sup_kill_group(p, sig);
	sup_scan_request(s, p, sig, AFTER_NONE, group && sig != SIGKILL ? p->pgid : 0);
	if (sig != SIGKILL && sig != SIGCONT) {
		if (group)
			sup_kill_group(p, SIGCONT);
		sup_scan_request(s, p, SIGCONT, AFTER_NONE, 0);
	}
	if (sig == SIGKILL || p->grace <= 0) {
		sup_remain_kill(p);
	} else {
		ev_timer_set(&p->grace_timer, p->grace, 0);
		ev_timer_start(s->loop, &p->grace_timer);
		if (p->nremain > 0)
			publish_count(p); /* the reason says it is being stopped */
	}
	return 0;
}

void sup_remain_kill(hum_proc *p)
{
	hum_sup *s = p->sup;
	ev_timer_stop(s->loop, &p->grace_timer);
	if (sup_group_reserved(p))
		sup_kill_group(p, SIGKILL);
	sup_remain_unwatch(p);
	if (p->finish_pending) {
		/* a stop: `stopped` once the carriers had SIGKILL */
		p->killed_remaining = 1;
		sup_scan_request(s, p, SIGKILL, AFTER_FINISH, 0);
		return;
	}
	p->leftover_stop = 0;
	p->cleaned = 1;
	sup_scan_request(s, p, SIGKILL, AFTER_NONE, 0);
	/* Count again after the kill: they may take a moment to die, and
	 * the count is published when it reaches 0. */
	p->count_queued = 0;
	sup_remain_count(p);
}

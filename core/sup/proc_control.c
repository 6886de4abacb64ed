/*
 * proc_control.c — the control API on one process (proc.h): start, stop,
 * restart, signal, fail, pending, ready, reason, and the accessors.  What
 * each does to the state machine is described in proc.c; the spawn, exits
 * and stop escalation it sets going live in proc.c and reap.c.  Loop
 * thread only.  Errors: 0 or -errno.
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sup_priv.h"

int hum_proc_start(hum_proc *p)
{
	if (p->pid || p->finish_pending) {
		/* Running: nothing to do.  On its way out: run again after. */
		if ((p->stopping || p->finish_pending) && !p->restart_after)
			p->restart_after = WHY_START;
		return 0;
	}
	ev_timer_stop(p->sup->loop, &p->backoff_timer);
	/* A start the gate held back is carried out as what it was: a policy
	 * restart stays one (counted, its attempts kept); otherwise an
	 * explicit start is a fresh start. */
	int why = p->deferred ? p->deferred : WHY_START;
	if (why != WHY_POLICY)
		p->attempts = 0;
	return sup_proc_spawn(p, why);
}

int hum_proc_stop(hum_proc *p)
{
	hum_sup *s = p->sup;
	p->restart_after = WHY_NONE;
	p->deferred = WHY_NONE;
	p->failing = 0; /* asked to stop: the end is `stopped`, not a failure */
	if (p->pid) {
		if (p->stopping)
			return 0;
		p->stopping = 1;
		int sig = p->stop_signal;
		char b[32], reason[64];
		sup_kill_group(p, sig);
		if (sig != SIGKILL && sig != SIGCONT)
			sup_kill_group(p, SIGCONT); /* a stopped group cannot act on it */
		/* the group had sig just now: only those who left it get it */
		sup_scan_request(s, p, sig, AFTER_NONE, sig != SIGKILL ? p->pgid : 0);
		if (sig == SIGKILL) {
			p->killed = 2;
		} else if (p->grace <= 0) {
			p->killed = 2;
			sup_kill_group(p, SIGKILL);
			sup_scan_request(s, p, SIGKILL, AFTER_NONE, 0);
		} else {
			ev_timer_set(&p->grace_timer, p->grace, 0);
			ev_timer_start(s->loop, &p->grace_timer);
		}
		snprintf(reason, sizeof reason, "stopping (%s)", sup_signame(sig, b, sizeof b));
		sup_set_state(p, HUM_STOPPING, reason);
		return 0;
	}
	if (p->finish_pending) {
		p->stopping = 1; /* exited while draining: the outcome is stopped */
		return 0;
	}
	int state = p->entry->snap->state;
	if (ev_is_active(&p->backoff_timer)) {
		ev_timer_stop(s->loop, &p->backoff_timer);
		sup_set_state(p, HUM_STOPPED, "stopped");
	} else if (state == HUM_PENDING || state == HUM_STARTING || state == HUM_RUNNING ||
		   state == HUM_READY || state == HUM_STOPPING || state == HUM_BACKOFF) {
		sup_set_state(p, HUM_STOPPED, "stopped");
	}
	/* succeeded / failed / stopped keep their outcome.  What remains of
	 * the run (counted, or still being counted) gets the stop signal and
	 * the grace; otherwise a descendant nobody counted goes now. */
	if (p->nremain > 0 || p->count_queued || p->leftover_stop)
		return sup_remain_stop(p);
	sup_cleanup_run(p);
	return 0;
}

int hum_proc_restart(hum_proc *p)
{
	if (p->pid) {
		hum_proc_stop(p);
		p->restart_after = WHY_RESTART;
		return 0;
	}
	if (p->finish_pending) {
		p->restart_after = WHY_RESTART;
		return 0;
	}
	ev_timer_stop(p->sup->loop, &p->backoff_timer);
	return sup_proc_spawn(p, p->run ? WHY_RESTART : WHY_START);
}

int hum_proc_signal(hum_proc *p, int sig)
{
	if (!p->pid)
		return -ESRCH;
	/* The group: `sh -c` wrappers and npm scripts would swallow it. */
	if (kill(-p->pgid, sig) != 0)
		return -errno;
	return 0;
}

int hum_proc_fail(hum_proc *p, const char *why)
{
	if (!p->pid || p->finish_pending)
		return -ESRCH;
	if (p->stopping)
		return 0; /* on its way out already: a stop or restart wins */
	snprintf(p->fail_why, sizeof p->fail_why, "%s", why ? why : "failed");
	int rc = hum_proc_stop(p);
	/* after hum_proc_stop, which clears it: the exit goes to the policy */
	p->failing = 1;
	return rc;
}

int hum_proc_set_pending(hum_proc *p, const char *reason)
{
	if (p->pid || p->finish_pending)
		return -EBUSY;
	ev_timer_stop(p->sup->loop, &p->backoff_timer);
	const hum_snap *cur = p->entry->snap;
	if (cur->state == HUM_PENDING && strcmp(cur->reason, reason ? reason : "") == 0)
		return 0; /* nothing changes: no snapshot, no event */
	sup_set_state(p, HUM_PENDING, reason ? reason : "");
	return 0;
}

int hum_proc_set_ready(hum_proc *p)
{
	const hum_snap *cur = p->entry->snap;
	if (cur->state == HUM_READY)
		return 0;
	if (cur->state != HUM_RUNNING)
		return -EINVAL;
	hum_snap *n = sup_proc_next(p, NULL);
	if (n == NULL)
		return -ENOMEM;
	n->state = HUM_READY;
	n->ready = 1;
	sup_proc_publish(p, n);
	return 0;
}

int hum_proc_set_reason(hum_proc *p, const char *reason)
{
	if (strcmp(p->entry->snap->reason, reason ? reason : "") == 0)
		return 0; /* nothing changes: no snapshot, no event */
	hum_snap *n = sup_proc_next(p, reason ? reason : "");
	if (n == NULL)
		return -ENOMEM;
	sup_proc_publish(p, n);
	return 0;
}

uint32_t hum_proc_id(const hum_proc *p) { return p->id; }
const char *hum_proc_name(const hum_proc *p) { return p->entry->name; }
const hum_snap *hum_proc_snap(const hum_proc *p) { return p->entry->snap; }
hum_entry *hum_proc_entry(hum_proc *p) { return p->entry; }
void *hum_proc_udata(const hum_proc *p) { return p->udata; }
void hum_proc_set_udata(hum_proc *p, void *ud) { p->udata = ud; }

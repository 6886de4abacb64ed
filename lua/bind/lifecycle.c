/*
 * lifecycle.c — the lifecycle lines: what hum prints, as lines of its own,
 * when a process starts, becomes ready, ends a run or has its restart
 * cancelled.  Called by the host's state hook at every publish.  Loop
 * thread only.
 */
#include <stdio.h>

#include "bind_priv.h"
#include "signames.h"

/* "exited with code 3", "killed by SIGKILL" */
static void describe_exit(const hum_snap *s, char *buf, size_t len)
{
	if (s->term_signal > 0)
		snprintf(buf, len, "killed by SIG%s", hum_signame(s->term_signal));
	else if (s->exit_code >= 0)
		snprintf(buf, len, "exited with code %d", s->exit_code);
	else
		snprintf(buf, len, "ended");
}

/* A process's lifecycle as lines of hum's own, written when the state is
 * published, so they sit in order with the process's output (an exit is
 * published after its pipes are drained): started (with its pid), ready
 * (when a probe said so; without a probe a service is ready as it starts),
 * and how a run ended.  A spawn error was logged when it happened
 * (sup_log); a process stopped before it ever ran, and waiting states, say
 * nothing (`hum ps` shows them; hum.messages says why a process will never
 * start). */
void bind_lifecycle(hum_host *h, const hum_snap *old, const hum_snap *now, bool began, bool ended)
{
	char what[64];
	const char *name = now->name;
	bool probe = now->id < h->lineq_cap && h->lineq[now->id].ready_probe;
	if (began && now->state == HUM_RUNNING) {
		hum_host_report(h, "%s: %s (pid %d)%s", name, now->restarts ? "restarted" : "started",
				(int)now->pid, !probe && now->kind == HUM_SERVICE ? ", ready" : "");
	} else if (now->state == HUM_READY && old && old->state != HUM_READY && probe) {
		hum_host_report(h, "%s: ready (%.1fs after it started)", name,
				(double)(now->changed_at_ms - now->started_at_ms) / 1000.0);
	} else if (began && now->state == HUM_BACKOFF && (!old || old->state != HUM_BACKOFF)) {
		/* a spawn short of descriptors, memory or processes: the first
		 * of a series of retries says so (proc.c, retry_spawn) */
		hum_host_report(h, "%s: %s", name, now->reason);
	} else if (old && old->state == HUM_BACKOFF && now->state == HUM_STOPPED) {
		hum_host_report(h, "%s: stopped (restart cancelled)", name);
	} else if (ended && !now->spawn_error && old && (old->state == HUM_STARTING ||
		   old->state == HUM_RUNNING || old->state == HUM_READY || old->state == HUM_STOPPING)) {
		if (now->state == HUM_BACKOFF) { /* the reason says what comes next */
			describe_exit(now, what, sizeof what);
			hum_host_report(h, "%s: %s; %s", name, what, now->reason);
		} else {
			hum_host_report(h, "%s: %s", name, now->reason && *now->reason ? now->reason
										 : hum_state_name(now->state));
		}
	}
}

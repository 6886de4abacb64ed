/*
 * proc_gate_test.c — the start gate (hum_proc_set_gate), the `ready` flag
 * derived from the state, and hum_proc_fail (a liveness failure goes
 * through the restart policy).  What Lua's dependency gating and probes
 * stand on: every spawn passes the gate, whoever asked for it.
 */
#include "proc_util.h"

static const char *reason(hum_proc *p) { return hum_proc_snap(p)->reason; }

/* A closed gate turns every kind of start into `pending` with its reason. */
static void test_gate_every_start_path(void)
{
	rec r;
	hum_spec sp = spec_sh("exec sleep 100");
	sp.restart.policy = HUM_RESTART_ALWAYS;
	sp.restart.initial = sp.restart.cap = 0.05;
	hum_proc *p = add("gated", &sp, &r);

	ok(hum_proc_set_gate(p, "waiting for cache (ready)") == 0, "close the gate");
	int rc = hum_proc_start(p);
	ok(rc == -EAGAIN && state(p) == HUM_PENDING && hum_proc_snap(p)->pid == 0 &&
	   strcmp(reason(p), "waiting for cache (ready)") == 0,
	   "first start: pending with the gate's reason (%s, '%s')", hum_state_name(state(p)), reason(p));
	ok(hum_proc_restart(p) == -EAGAIN && state(p) == HUM_PENDING, "restart of a process that never ran: pending");

	hum_proc_set_gate(p, NULL);
	ok(hum_proc_start(p) == 0 && state(p) == HUM_RUNNING, "gate open: start runs");
	ok(hum_proc_snap(p)->restarts == 0, "a deferred first start is not a restart");

	/* a policy restart while the gate is closed: backoff, then pending */
	hum_proc_set_gate(p, "cache stopped");
	pid_t pid = hum_proc_snap(p)->pid;
	kill(pid, SIGKILL);
	WAIT(state(p) == HUM_PENDING, 20);
	ok(state(p) == HUM_PENDING && strcmp(reason(p), "cache stopped") == 0 && hum_proc_snap(p)->pid == 0,
	   "policy restart after backoff: pending with the reason (%s, '%s')", hum_state_name(state(p)), reason(p));
	int n = r.nstates;
	int saw_backoff = 0;
	for (int i = 0; i < n; i++)
		saw_backoff |= r.states[i] == HUM_BACKOFF;
	ok(saw_backoff, "it went through backoff first");
	/* nothing starts it while the gate stays closed */
	double until = now() + 0.4;
	WAIT(now() > until, 2);
	ok(state(p) == HUM_PENDING && r.nstates == n, "still pending, no new state");

	/* opening the gate starts nothing by itself; the next start is the
	 * deferred policy restart (it counts as a restart) */
	hum_proc_set_gate(p, NULL);
	ok(state(p) == HUM_PENDING, "opening the gate starts nothing by itself");
	rc = hum_proc_start(p);
	ok(rc == 0 && state(p) == HUM_RUNNING && hum_proc_snap(p)->restarts == 1,
	   "start after opening: runs, counted as the policy restart (restarts %u)", hum_proc_snap(p)->restarts);

	/* restart of a live run with the gate closed: stopped, then pending */
	hum_proc_set_gate(p, "waiting for db (ready)");
	hum_proc_restart(p);
	WAIT(state(p) == HUM_PENDING, 20);
	ok(state(p) == HUM_PENDING && hum_proc_snap(p)->pid == 0, "restart with the gate closed: the new run waits");
	int stopped = 0;
	for (int i = n; i < r.nstates; i++)
		stopped |= r.states[i] == HUM_STOPPED;
	ok(stopped, "the old run ended stopped");

	/* a stop forgets the deferred start */
	hum_proc_stop(p);
	hum_proc_set_gate(p, NULL);
	ok(state(p) == HUM_STOPPED, "stop of a deferred start: stopped");
	hum_proc_stop(p);
	rec_free(&r);
}

/* ready iff state ready: a clone for stopping or backoff never carries it. */
static void test_ready_follows_state(void)
{
	rec r;
	hum_spec sp = spec_sh("trap 'sleep 0.3; exit 0' TERM; while :; do sleep 0.05; done");
	hum_proc *p = add("readyflag", &sp, &r);
	hum_proc_start(p);
	hum_proc_set_ready(p);
	ok(state(p) == HUM_READY && hum_proc_snap(p)->ready, "ready: the flag is set");
	hum_proc_stop(p);
	ok(state(p) == HUM_STOPPING && !hum_proc_snap(p)->ready, "stopping: never ready");
	WAIT(state(p) == HUM_STOPPED, 20);
	ok(!hum_proc_snap(p)->ready, "stopped: never ready");
	rec_free(&r);
}

/* hum_proc_fail: stop signal, then the policy (backoff) — never a respawn
 * at once; with policy "no" too; a stop meanwhile wins. */
static void test_fail_through_policy(void)
{
	rec r;
	hum_spec sp = spec_sh("exec sleep 100");
	sp.restart.policy = HUM_RESTART_NO;
	sp.restart.initial = sp.restart.cap = 0.3;
	sp.restart.max = 1;
	hum_proc *p = add("unhealthy", &sp, &r);
	ok(hum_proc_fail(p, "liveness") == -ESRCH, "fail without a run: -ESRCH");
	hum_proc_start(p);
	int rc = hum_proc_fail(p, "liveness probe failed 3 times in a row (exit code 1)");
	ok(rc == 0 && state(p) == HUM_STOPPING, "fail: the run is stopped first");
	WAIT(state(p) == HUM_BACKOFF, 20);
	ok(state(p) == HUM_BACKOFF && strstr(reason(p), "restarting in 0.3s (attempt 1; liveness probe failed"),
	   "then backoff, naming the failure ('%s')", reason(p));
	WAIT(state(p) == HUM_RUNNING, 20);
	ok(state(p) == HUM_RUNNING && hum_proc_snap(p)->restarts == 1, "restarted after the backoff");
	/* max = 1: the next failure gives up */
	hum_proc_fail(p, "liveness again");
	WAIT(state(p) == HUM_FAILED, 20);
	ok(state(p) == HUM_FAILED && strstr(reason(p), "liveness again (gave up after 1 restarts)"),
	   "after max restarts: failed ('%s')", reason(p));
	/* a stop while failing: the end is stopped */
	hum_proc_start(p);
	hum_proc_fail(p, "liveness");
	hum_proc_stop(p);
	WAIT(state(p) == HUM_STOPPED || state(p) == HUM_BACKOFF, 20);
	ok(state(p) == HUM_STOPPED, "a stop during the failure wins (%s)", hum_state_name(state(p)));
	rec_free(&r);
}

int main(void)
{
	harness_init();
	test_gate_every_start_path();
	test_ready_follows_state();
	test_fail_through_policy();
	harness_fini();
	return done_testing();
}

/*
 * proc_stop_test.c — the stop side of a run: the run is its whole group and
 * every carrier of its token, not its main process.  Remaining processes
 * (what outlives the main process) are counted and shown, keep the rest of
 * the grace when the main process exits during a stop, and get it when a
 * finished run is stopped; a stopped main process shows as paused.
 */
#include "proc_util.h"

/* Starts a launcher that exits at once on SIGTERM, and the program it
 * started (same group) that needs `clean` seconds to clean up, then prints
 * "clean" (ignore: the program ignores SIGTERM instead); *prog: its pid. */
static hum_proc *launch(const char *name, const char *clean, bool ignore, double grace, rec *r, pid_t *prog)
{
	static char cmd[8][512];
	static int k;
	char *c = cmd[k++ % 8];
	if (ignore)
		snprintf(c, 512, "trap 'exit 143' TERM; sh -c 'trap \"\" TERM; echo prog $$; "
			 "while :; do sleep 0.05; done' & wait");
	else
		snprintf(c, 512, "trap 'exit 143' TERM; sh -c 'trap \"sleep %s; echo clean; exit 0\" TERM; "
			 "echo prog $$; while :; do sleep 0.05; done' & wait", clean);
	hum_spec sp = spec_sh(c);
	sp.grace = grace;
	hum_proc *p = add(name, &sp, r);
	hum_proc_start(p);
	WAIT(find_pid(r->text[1], "prog"), 20);
	*prog = find_pid(r->text[1], "prog");
	return p;
}

/* Stops p and waits for its final state; the seconds it took.  *saw: a
 * snapshot on the way said `stopping`, main process gone, something
 * remaining (polled every loop turn). */
static double stop_timed(hum_proc *p, int *saw)
{
	double t0 = now();
	hum_proc_stop(p);
	WAIT(((*saw |= state(p) == HUM_STOPPING && hum_proc_snap(p)->pid == 0 &&
			hum_proc_snap(p)->remaining >= 1 && hum_proc_snap(p)->remaining_pids[0] > 0),
	      is_final(state(p))), 20);
	return now() - t0;
}

static void test_rest_of_grace(void)
{
	rec r;
	pid_t prog;
	int saw = 0;
	hum_proc *p = launch("launcher", "1", false, 5, &r, &prog);
	double dt = stop_timed(p, &saw);
	const hum_snap *n = hum_proc_snap(p);
	ok(n->state == HUM_STOPPED && r.text[1] && strstr(r.text[1], "clean\n"),
	   "the program behind a launcher finished its cleanup within the grace (\"%s\")", n->reason);
	ok(saw, "while it cleaned up: stopping, main pid gone, remaining >= 1");
	ok(dt >= 0.9 && dt < 4.9 && n->exit_code == 143 && !strcmp(n->reason, "stopped (exited with code 143)"),
	   "stopped once nothing remained (%.2fs), with the main process's exit: \"%s\"", dt, n->reason);
	ok(n->remaining == 0 && n->remaining_pids[0] == 0 && !alive(prog), "nothing remains");
	rec_free(&r);
}

static void test_grace_runs_out(void)
{
	rec r;
	pid_t prog;
	int saw = 0;
	hum_proc *p = launch("stubborn-prog", "0", true, 0.5, &r, &prog);
	double dt = stop_timed(p, &saw);
	const hum_snap *n = hum_proc_snap(p);
	ok(n->state == HUM_STOPPED && strstr(n->reason, "killed after 0.5s grace") && dt >= 0.45 && dt < 4,
	   "what remained got SIGKILL when the grace ran out (%.2fs, \"%s\")", dt, n->reason);
	ok(WAIT(!alive(prog), 5), "the TERM-ignoring program is gone");
	rec_free(&r);
}

static void test_remaining_shown(void)
{
	rec r;
	hum_spec sp = spec_sh("sleep 100 & echo bg $!");
	sp.kind = HUM_TASK;
	hum_proc *p = add("daemonizer", &sp, &r);
	hum_proc_start(p);
	WAIT(is_final(state(p)) && !hum_proc_snap(p)->counting, 20);
	pid_t bg = find_pid(r.text[1], "bg");
	const hum_snap *n = hum_proc_snap(p);
	ok(n->state == HUM_SUCCEEDED && n->remaining == 1 && n->remaining_pids[0] == bg && bg > 0,
	   "the run succeeded; 1 process remains, named by pid (%d)", (int)bg);
	ok(strstr(n->reason, "exited with code 0; 1 process remains (pid ") != NULL, "reason: \"%s\"", n->reason);
	ok(hum_sup_active(S) >= 1, "it holds the pipe: still active");
	kill(bg, SIGKILL);
	ok(WAIT(hum_proc_snap(p)->remaining == 0, 10) && !strcmp(hum_proc_snap(p)->reason, "exited with code 0"),
	   "it exited by itself: remaining 0 again, reason back (\"%s\")", hum_proc_snap(p)->reason);
	ok(state(p) == HUM_SUCCEEDED, "the outcome does not change");
	rec_free(&r);
}

static void test_stop_finished(void)
{
	rec r;
	hum_spec sp = spec_sh("sh -c 'trap \"echo left-got-term; exit 0\" TERM; echo trapped; "
			      "while :; do sleep 0.05; done' & echo up");
	hum_proc *p = add("leaver", &sp, &r);
	hum_proc_start(p);
	/* (a count may meet a process in the middle of an exec, whose
	 * environment cannot be read: it names it at the next count) */
	WAIT(is_final(state(p)) && hum_proc_snap(p)->remaining_pids[0] > 0 && r.text[1] &&
	     strstr(r.text[1], "trapped"), 20);
	ok(state(p) == HUM_SUCCEEDED && hum_proc_snap(p)->remaining >= 1 &&
	   hum_proc_snap(p)->remaining_pids[0] > 0 && hum_proc_snap(p)->remaining_pids[1] == 0,
	   "finished, what remains is one tree (its shell, and the sleep it runs): \"%s\"",
	   hum_proc_snap(p)->reason);
	hum_proc_stop(p);
	ok(strstr(hum_proc_snap(p)->reason, "stopping (SIGTERM)") != NULL,
	   "being stopped: \"%s\"", hum_proc_snap(p)->reason);
	ok(WAIT(hum_proc_snap(p)->remaining == 0 && hum_sup_active(S) == 0, 10), "what remained is gone");
	ok(r.text[1] && strstr(r.text[1], "left-got-term"), "it had the stop signal, not SIGKILL (%s)",
	   r.text[1] ? r.text[1] : "no output");
	ok(state(p) == HUM_SUCCEEDED && !strcmp(hum_proc_snap(p)->reason, "exited with code 0"),
	   "the outcome stays (\"%s\")", hum_proc_snap(p)->reason);
	rec_free(&r);
}

static void test_paused(void)
{
	rec r;
	char *a[] = { "sleep", "100", NULL };
	hum_spec sp = spec_argv(a);
	hum_proc *p = add("pausable", &sp, &r);
	hum_proc_start(p);
	pid_t pid = hum_proc_snap(p)->pid;
	kill(pid, SIGSTOP);
	ok(WAIT(hum_proc_snap(p)->paused, 10) && state(p) == HUM_RUNNING, "SIGSTOP: paused, still running");
	kill(pid, SIGCONT);
	ok(WAIT(!hum_proc_snap(p)->paused, 10), "SIGCONT: not paused");
	ok(hum_sup_pause_all(S, true) == 1 && WAIT(hum_proc_snap(p)->paused, 10),
	   "pause_all stops the group: paused");
	ok(hum_sup_pause_all(S, false) == 1 && WAIT(!hum_proc_snap(p)->paused, 10),
	   "and continues what it stopped");
	kill(pid, SIGSTOP);
	WAIT(hum_proc_snap(p)->paused, 10);
	hum_proc_stop(p);
	ok(WAIT(state(p) == HUM_STOPPED, 10) && !hum_proc_snap(p)->paused &&
	   hum_proc_snap(p)->term_signal == SIGTERM, "a paused process stops with its stop signal (SIGCONT after)");
	rec_free(&r);
}

static void test_kill_all_remaining(void)
{
	rec r;
	pid_t prog;
	hum_proc *p = launch("killall-remaining", "0", true, 30, &r, &prog);
	hum_proc_stop(p);
	WAIT(hum_proc_snap(p)->pid == 0 && hum_proc_snap(p)->remaining >= 1, 20);
	double t0 = now();
	hum_sup_kill_all(S);
	WAIT(is_final(state(p)), 20);
	ok(state(p) == HUM_STOPPED && now() - t0 < 5 && WAIT(!alive(prog), 5),
	   "kill_all during the rest of the grace: killed at once, stopped (%.2fs)", now() - t0);
	rec_free(&r);
}

int main(void)
{
	harness_init();
	test_rest_of_grace();
	test_grace_runs_out();
	test_remaining_shown();
	test_stop_finished();
	test_paused();
	test_kill_all_remaining();
	harness_fini();
	return done_testing();
}

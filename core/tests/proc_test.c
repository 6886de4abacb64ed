/*
 * proc_test.c — the supervisor's lifecycle against real children: exit
 * codes and signals, spawn errors, stop (group, grace, setsid'd daemons),
 * restart policies and backoff, restart/kill_all, child environment.
 * Output capture is in proc_capture_test.c, the kill -9 guard in
 * proc_sentinel_test.c.
 */
#include <spawn.h>

#include "proc_util.h"

static void test_exits(void)
{
	rec r1, r2, r3;
	char *a1[] = { fix("exit_code"), "3", NULL };
	char *a2[] = { fix("exit_code"), "0", NULL };
	hum_spec s1 = spec_argv(a1), s2 = spec_argv(a2), s3 = spec_sh("kill -KILL $$");
	s2.kind = HUM_TASK;
	hum_proc *p1 = add("exit3", &s1, &r1), *p2 = add("exit0", &s2, &r2), *p3 = add("killed", &s3, &r3);
	ok(state(p1) == HUM_PENDING && !strcmp(hum_proc_snap(p1)->reason, "not started"),
	   "added: pending, \"not started\"");
	ok(hum_proc_start(p1) == 0 && state(p1) == HUM_RUNNING && hum_proc_snap(p1)->pid > 0,
	   "start: running with a pid");
	hum_proc_start(p2);
	hum_proc_start(p3);
	WAIT(is_final(state(p1)) && is_final(state(p2)) && is_final(state(p3)), 20);
	const hum_snap *n1 = hum_proc_snap(p1), *n2 = hum_proc_snap(p2), *n3 = hum_proc_snap(p3);
	ok(n1->state == HUM_FAILED && n1->exit_code == 3 && n1->term_signal == 0 &&
	   !strcmp(n1->reason, "exited with code 3") && n1->pid == 0 && !n1->spawn_error,
	   "exit 3: failed, code 3, \"%s\"", n1->reason);
	ok(n2->state == HUM_SUCCEEDED && n2->exit_code == 0, "task exit 0: succeeded");
	ok(n3->state == HUM_FAILED && n3->term_signal == SIGKILL && n3->exit_code == -1 &&
	   !strcmp(n3->reason, "killed by SIGKILL"), "killed: term_signal 9, \"%s\"", n3->reason);
	ok(n1->started_at_ms > 0 && n1->ended_at_ms >= n1->started_at_ms &&
	   n1->changed_at_ms == n1->ended_at_ms, "started/ended/changed times");
	ok(r1.text[1] && strstr(r1.text[1], "exiting with 3"), "its output was captured");
	ok(hum_sup_find(S, "exit3") == p1 && hum_sup_get(S, hum_proc_id(p2)) == p2 &&
	   hum_sup_find(S, "nope") == NULL, "find by name and id");
	rec_free(&r1), rec_free(&r2), rec_free(&r3);
}

static void test_spawn_errors(void)
{
	rec r1, r2, r3, r4;
	char *a1[] = { "/nonexistent/hum-nope", NULL };
	char *a2[] = { "hum-no-such-program-xyz", NULL };
	char *a3[] = { "/bin/true", NULL };
	hum_spec s1 = spec_argv(a1), s2 = spec_argv(a2), s3 = spec_argv(a3), s4 = spec_sh("exit 127");
	s3.cwd = "/nonexistent-hum-dir";
	hum_proc *p1 = add("nobin", &s1, &r1), *p2 = add("nopath", &s2, &r2);
	hum_proc *p3 = add("badcwd", &s3, &r3), *p4 = add("exit127", &s4, &r4);
	int rc1 = hum_proc_start(p1), rc2 = hum_proc_start(p2), rc3 = hum_proc_start(p3);
	const hum_snap *n1 = hum_proc_snap(p1), *n2 = hum_proc_snap(p2), *n3 = hum_proc_snap(p3);
	ok(rc1 == -ENOENT && n1->state == HUM_FAILED && n1->spawn_error &&
	   !strcmp(n1->reason, "exec /nonexistent/hum-nope: No such file or directory"),
	   "missing binary: -ENOENT, failed, spawn_error, \"%s\"", n1->reason);
	ok(rc2 == -ENOENT && n2->spawn_error && !strcmp(n2->reason, "exec hum-no-such-program-xyz: No such file or directory"),
	   "not on PATH: \"%s\"", n2->reason);
	ok(rc3 == -ENOENT && n3->spawn_error &&
	   !strcmp(n3->reason, "chdir /nonexistent-hum-dir: No such file or directory"),
	   "bad cwd: \"%s\"", n3->reason);
	ok(hum_proc_start(p4) == 0, "sh -c 'exit 127' starts");
	WAIT(is_final(state(p4)), 20);
	ok(state(p4) == HUM_FAILED && hum_proc_snap(p4)->exit_code == 127 &&
	   !hum_proc_snap(p4)->spawn_error, "exit 127 is an exit, not a spawn error");
	rec_free(&r1), rec_free(&r2), rec_free(&r3), rec_free(&r4);
}

static void test_stop(void)
{
	rec r1, r2, r3;
	char *a1[] = { fix("exit_on_term"), "3", NULL };
	char *a2[] = { fix("ignore_term"), NULL };
	char *a3[] = { fix("grandkids"), NULL };
	hum_spec s1 = spec_argv(a1), s2 = spec_argv(a2), s3 = spec_argv(a3);
	s1.restart.policy = HUM_RESTART_ALWAYS; /* a stop must still win */
	s2.grace = 0.3;
	hum_proc *p1 = add("termexit", &s1, &r1), *p2 = add("stubborn", &s2, &r2);
	hum_proc *p3 = add("family", &s3, &r3);
	hum_proc_start(p1), hum_proc_start(p2), hum_proc_start(p3);
	WAIT(r1.text[1] && r2.text[1] && find_pid(r3.text[1], "main"), 20);
	pid_t kid = find_pid(r3.text[1], "child"), daemon = find_pid(r3.text[1], "daemon");
	pid_t main_pid = find_pid(r3.text[1], "main");
	ok(kid > 0 && daemon > 0 && main_pid == hum_proc_snap(p3)->pid && alive(daemon),
	   "grandkids: child %d, setsid daemon %d, main %d", (int)kid, (int)daemon, (int)main_pid);

	double t0 = now();
	hum_proc_stop(p1), hum_proc_stop(p2), hum_proc_stop(p3);
	ok(state(p1) == HUM_STOPPING && !strcmp(hum_proc_snap(p1)->reason, "stopping (SIGTERM)"),
	   "stop: stopping (SIGTERM)");
	WAIT(is_final(state(p1)) && is_final(state(p3)), 20);
	const hum_snap *n1 = hum_proc_snap(p1);
	ok(n1->state == HUM_STOPPED && n1->exit_code == 3,
	   "exit 3 on SIGTERM: stopped, not failed, not restarted (\"%s\")", n1->reason);
	ok(state(p3) == HUM_STOPPED, "grandkids: stopped");
	ok(WAIT(!alive(kid) && !alive(daemon) && !alive(main_pid), 5),
	   "child and the TERM-ignoring setsid'd double-forked daemon are gone");
	WAIT(is_final(state(p2)), 20);
	double dt = r2.state_t[r2.nstates - 1] - t0;
	const hum_snap *n2 = hum_proc_snap(p2);
	ok(n2->state == HUM_STOPPED && n2->term_signal == SIGKILL && dt >= 0.29 && dt < 5,
	   "TERM ignored: SIGKILL after the 0.3 s grace (%.2fs, \"%s\")", dt, n2->reason);
	ok(hum_proc_stop(p2) == 0 && state(p2) == HUM_STOPPED, "stop again: no-op");
	rec_free(&r1), rec_free(&r2), rec_free(&r3);
}

static void test_graceful_sweep(void)
{
	rec r;
	/* The main shell waits for the escapee, so the final SIGKILL sweep
	 * cannot race its trap. */
	hum_spec sp = spec_sh("setsid sh -c 'trap \"echo got-term; exit 0\" TERM; echo up; "
			      "while :; do sleep 0.05; done' & c=$!; trap 'wait $c; exit 0' TERM; wait");
	hum_proc *p = add("escapee", &sp, &r);
	hum_proc_start(p);
	WAIT(r.text[1] && strstr(r.text[1], "up\n"), 20);
	hum_proc_stop(p);
	WAIT(is_final(state(p)) && hum_sup_active(S) == 0, 20);
	ok(r.text[1] && strstr(r.text[1], "got-term\n"),
	   "a descendant in its own session gets the stop signal too (by token)");
	rec_free(&r);
}

static void test_backoff(void)
{
	rec r1, r2, r3;
	char *a1[] = { fix("exit_code"), "1", NULL };
	char *a3[] = { fix("exit_code"), "0", NULL };
	hum_spec s1 = spec_argv(a1), s2 = spec_argv(a1), s3 = spec_argv(a3);
	s1.restart = (hum_restart){ HUM_RESTART_ON_FAILURE, 3, 0.1, 0.2, 60 };
	s2.restart = (hum_restart){ HUM_RESTART_ON_FAILURE, -1, 30, 30, 60 };
	s3.restart = (hum_restart){ HUM_RESTART_ALWAYS, 1, 0, 0, 60 };
	hum_proc *p1 = add("crashy", &s1, &r1), *p2 = add("slowback", &s2, &r2);
	hum_proc *p3 = add("always", &s3, &r3);
	hum_proc_start(p1), hum_proc_start(p2), hum_proc_start(p3);
	/* (active: also the counts of what remains of the finished runs) */
	WAIT(is_final(state(p1)) && state(p2) == HUM_BACKOFF && is_final(state(p3)) &&
	     hum_sup_active(S) == 0, 20);
	const hum_snap *n1 = hum_proc_snap(p1);
	double runs[8];
	int nruns = 0, nbackoff = 0;
	for (int i = 0; i < r1.nstates; i++) {
		if (r1.states[i] == HUM_RUNNING && nruns < 8)
			runs[nruns++] = r1.state_t[i];
		nbackoff += r1.states[i] == HUM_BACKOFF;
	}
	ok(n1->state == HUM_FAILED && n1->restarts == 3 && nruns == 4 && nbackoff == 3,
	   "on-failure max 3: 4 runs, 3 backoffs, restarts=3, then failed (\"%s\")", n1->reason);
	ok(!strcmp(n1->reason, "exited with code 1 (gave up after 3 restarts)"), "gave-up reason");
	ok(nruns == 4 && runs[1] - runs[0] >= 0.09 && runs[2] - runs[1] >= 0.19 &&
	   runs[3] - runs[2] >= 0.19 && runs[3] - runs[0] < 10,
	   "backoff spacing 0.1, 0.2, 0.2 (cap): %.2f %.2f %.2f", runs[1] - runs[0],
	   runs[2] - runs[1], runs[3] - runs[2]);
	ok(!strcmp(hum_proc_snap(p2)->reason, "restarting in 30s (attempt 1)"),
	   "backoff reason: \"%s\"", hum_proc_snap(p2)->reason);
	ok(hum_proc_stop(p2) == 0 && state(p2) == HUM_STOPPED && hum_sup_active(S) == 0,
	   "stop during backoff: stopped, restart cancelled");
	ok(state(p3) == HUM_FAILED && hum_proc_snap(p3)->restarts == 1 && hum_proc_snap(p3)->exit_code == 0,
	   "always + exit 0: restarted; a service that gave up is failed");
	ok(hum_proc_start(p2) == 0 && state(p2) == HUM_RUNNING, "start after stop: runs again");
	WAIT(state(p2) == HUM_BACKOFF, 20);
	hum_proc_stop(p2);
	rec_free(&r1), rec_free(&r2), rec_free(&r3);
}

static void test_restart_and_kill_all(void)
{
	rec r1, r2, r3;
	char *a[] = { fix("sleeper"), NULL };
	char *at[] = { fix("ignore_term"), NULL };
	hum_spec s1 = spec_argv(a), s2 = spec_argv(at), s3 = spec_argv(a);
	hum_proc *p1 = add("sleep1", &s1, &r1), *p2 = add("sleep2", &s2, &r2), *p3 = add("sleep3", &s3, &r3);
	hum_proc_start(p1), hum_proc_start(p2), hum_proc_start(p3);
	pid_t old = hum_proc_snap(p1)->pid;
	ok(hum_proc_set_ready(p1) == 0 && state(p1) == HUM_READY && hum_proc_snap(p1)->ready,
	   "set_ready: running -> ready");
	ok(hum_proc_restart(p1) == 0 && state(p1) == HUM_STOPPING, "restart: stopping first");
	WAIT(state(p1) == HUM_RUNNING, 20);
	const hum_snap *n = hum_proc_snap(p1);
	int saw_stopped = 0;
	for (int i = 0; i < r1.nstates; i++)
		saw_stopped |= r1.states[i] == HUM_STOPPED;
	ok(n->pid > 0 && n->pid != old && n->restarts == 1 && !n->ready && saw_stopped,
	   "restart: a new pid, restarts=1, the old run published as `stopped` in between");
	ok(WAIT(!alive(old), 5), "the old run is gone");
	ok(hum_proc_signal(p3, 0) == 0, "signal 0 to a live group");
	pid_t p2pid = hum_proc_snap(p2)->pid;
	hum_sup_kill_all(S);
	WAIT(is_final(state(p1)) && is_final(state(p2)) && is_final(state(p3)), 20);
	ok(state(p1) == HUM_STOPPED && state(p2) == HUM_STOPPED && state(p3) == HUM_STOPPED &&
	   hum_proc_snap(p2)->term_signal == SIGKILL, "kill_all: every group SIGKILLed, all stopped");
	ok(!alive(p2pid) && hum_proc_signal(p2, 0) == -ESRCH, "kill_all: gone; signal -> -ESRCH");
	ok(hum_proc_set_ready(p2) == -EINVAL, "set_ready on a stopped process: -EINVAL");
	ok(hum_proc_set_pending(p2, "waiting for db") == 0 && state(p2) == HUM_PENDING &&
	   !strcmp(hum_proc_snap(p2)->reason, "waiting for db"), "set_pending with a reason");
	ok(hum_proc_stop(p2) == 0 && state(p2) == HUM_STOPPED, "stop a pending process: stopped");
	rec_free(&r1), rec_free(&r2), rec_free(&r3);
}

static void test_child_env(void)
{
	rec r1, r2, r3, r4;
	char *a1[] = { "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL };
	char *a2[] = { "ls", "/proc/self/fd", NULL };
	char *env[] = { "FOO=bar baz", "PATH=/usr/bin:/bin", "HUM_TOKEN=forged", NULL };
	hum_spec s1 = spec_argv(a1), s2 = spec_argv(a2);
	hum_spec s3 = spec_sh("echo \"$FOO|$HUM_TOKEN|$(pwd)|$(ps -o sid= -p $$ | tr -d ' ')|$(ps -o pgid= -p $$ | tr -d ' ')|$$\"; cat");
	s3.env = env;
	s3.cwd = "/tmp";
	hum_spec s4 = spec_sh("printf 'x\\n'");
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old); /* must not leak into children */
	signal(SIGUSR2, SIG_IGN);
	hum_proc *p1 = add("sigs", &s1, &r1), *p2 = add("fds", &s2, &r2);
	hum_proc *p3 = add("envy", &s3, &r3), *p4 = add("dup", &s4, &r4);
	hum_proc_start(p1), hum_proc_start(p2), hum_proc_start(p3);
	sigprocmask(SIG_SETMASK, &old, NULL);
	signal(SIGUSR2, SIG_DFL);
	WAIT(is_final(state(p1)) && is_final(state(p2)) && is_final(state(p3)), 20);
	ok(r1.text[1] && !strcmp(r1.text[1], "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"),
	   "child: empty signal mask, nothing ignored");
	ok(r2.text[1] && !strcmp(r2.text[1], "0\n1\n2\n3\n"),
	   "child: only fds 0, 1, 2 (3 is ls's own directory)");
	if (!r1.text[1] || !r2.text[1] || strstr(r1.text[1], "1") || strcmp(r2.text[1], "0\n1\n2\n3\n"))
		fprintf(stderr, "# signals:\n%s# fds:\n%s", r1.text[1] ? r1.text[1] : "-",
			r2.text[1] ? r2.text[1] : "-");
	int shpid = r3.text[1] && strrchr(r3.text[1], '|') ? atoi(strrchr(r3.text[1], '|') + 1) : -1;
	const char *got = r3.text[1] ? r3.text[1] : "";
	const char *tok = strchr(got, '|');
	ok(tok && !strncmp(got, "bar baz|", 8) && strstr(got, "|/tmp|") && strncmp(tok + 1, "forged", 6),
	   "env given, HUM_TOKEN replaced, cwd set: %.*s", (int)strcspn(got, "\n"), got);
	char sidpart[64];
	snprintf(sidpart, sizeof sidpart, "|%d|%d|%d\n", shpid, shpid, shpid);
	ok(strstr(got, sidpart) != NULL, "own session and group (sid = pgid = pid)");
	ok(state(p3) == HUM_SUCCEEDED, "stdin is /dev/null: cat ends at once");
	hum_proc_start(p4);
	WAIT(is_final(state(p4)), 20);
	ok(r4.text[1] && !strcmp(r4.text[1], "x\n"), "shell string runs under /bin/sh -c");
	rec_free(&r1), rec_free(&r2), rec_free(&r3), rec_free(&r4);
}

static void test_leftovers(void)
{
	rec r1, r2;
	char *a[] = { fix("grandkids"), "--exit", NULL };
	hum_spec s1 = spec_argv(a), s2 = spec_argv(a);
	s1.restart = (hum_restart){ HUM_RESTART_ALWAYS, 1, 0.05, 0.05, 60 };
	hum_proc *p1 = add("respawner", &s1, &r1), *p2 = add("rerun", &s2, &r2);
	hum_proc_start(p1), hum_proc_start(p2);
	WAIT(is_final(state(p2)) && find_pid(r1.text[1], "main"), 20);
	pid_t kid1 = find_pid(r1.text[1], "child"), dae1 = find_pid(r1.text[1], "daemon");
	pid_t kid2 = find_pid(r2.text[1], "child"), dae2 = find_pid(r2.text[1], "daemon");
	ok(state(p2) == HUM_SUCCEEDED && alive(kid2) && alive(dae2) && hum_sup_active(S) >= 1,
	   "a finished run's descendants may outlive it (its pipe stays watched)");
	WAIT(is_final(state(p1)), 20);
	ok(hum_proc_snap(p1)->restarts == 1 && WAIT(!alive(kid1) && !alive(dae1), 5),
	   "policy restart: the old run's group child and setsid'd daemon were killed first");
	hum_proc_start(p2);
	ok(WAIT(!alive(kid2) && !alive(dae2), 5), "a new start: the previous run's leftovers go first");
	hum_proc_stop(p1), hum_proc_stop(p2);
	ok(WAIT(hum_sup_active(S) == 0, 10), "stop of finished runs: their leftovers go too");
	rec_free(&r1), rec_free(&r2);
}

static void test_reentrant(void)
{
	rec r1, r2;
	char *a1[] = { fix("exit_code"), "1", NULL };
	char *a2[] = { fix("exit_code"), "0", NULL };
	hum_spec s1 = spec_argv(a1), s2 = spec_argv(a2);
	s1.restart = (hum_restart){ HUM_RESTART_ON_FAILURE, 5, 0.01, 0.01, 60 };
	s2.kind = HUM_TASK;
	hum_proc *p1 = add("hookstop", &s1, &r1), *p2 = add("hookrestart", &s2, &r2);
	r1.mode = 2;
	r2.mode = 3;
	hum_proc_start(p1), hum_proc_start(p2);
	WAIT(is_final(state(p1)) && is_final(state(p2)) && r2.nlines[1] >= 2 && hum_sup_active(S) == 0, 20);
	ok(state(p1) == HUM_STOPPED && hum_proc_snap(p1)->restarts == 0,
	   "stop from the lines hook (line read while running or while draining): stopped");
	ok(state(p2) == HUM_SUCCEEDED && hum_proc_snap(p2)->restarts == 1 && r2.nlines[1] == 2,
	   "restart from the lines hook: ran twice, restarts=1");
	rec_free(&r1), rec_free(&r2);
}

static void test_free_kills(void)
{
	rec r1;
	char *a[] = { fix("grandkids"), NULL };
	hum_spec s1 = spec_argv(a);
	hum_proc *p1 = add("lastfamily", &s1, &r1);
	hum_proc_start(p1);
	WAIT(find_pid(r1.text[1], "main"), 20);
	pid_t pids[4] = { find_pid(r1.text[1], "child"), find_pid(r1.text[1], "daemon"),
			  find_pid(r1.text[1], "main"), 0 };
	/* A child started by someone else (hum.exec) with the token. */
	char *tenv[] = { (char *)hum_sup_token(S), NULL };
	char *targv[] = { "sleep", "100", NULL };
	posix_spawnattr_t at;
	posix_spawnattr_init(&at);
	posix_spawnattr_setflags(&at, POSIX_SPAWN_SETSID);
	int rc = posix_spawn(&pids[3], "/bin/sleep", NULL, &at, targv, tenv);
	posix_spawnattr_destroy(&at);
	ok(rc == 0 && !strncmp(tenv[0], "HUM_TOKEN=", 10) && hum_sup_guard_group(S, pids[3]) == 0,
	   "another spawner's child carries hum_sup_token() and is guarded");
	double t0 = now();
	harness_fini();
	double dt = now() - t0;
	int left = 0;
	for (int i = 0; i < 4; i++)
		left += alive(pids[i]);
	ok(pids[0] > 0 && pids[1] > 0 && left == 0 && dt < 2,
	   "hum_sup_free kills everything (child, daemon, main, token carrier) in %.3fs", dt);
	for (int i = 0; i < 4; i++)
		if (pids[i] > 0 && alive(pids[i]))
			kill(pids[i], SIGKILL);
	rec_free(&r1);
}

/* An exit is seen without SIGCHLD (reap.c, "exit watches"): with the
 * signal blocked, a main process that closed its pipes first (so their
 * closing says nothing) and exits later is still reaped through its pidfd. */
static void test_exit_without_sigchld(void)
{
	rec r;
	hum_spec sp = spec_sh("exec >/dev/null 2>&1; sleep 0.3; exit 3");
	hum_proc *p = add("nosigchld", &sp, &r);
	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	hum_proc_start(p);
	WAIT(is_final(state(p)), 20);
	const hum_snap *n = hum_proc_snap(p);
	ok(n->state == HUM_FAILED && n->exit_code == 3,
	   "SIGCHLD blocked: the exit is still seen (%s, \"%s\")", hum_state_name(n->state), n->reason);
	sigprocmask(SIG_SETMASK, &old, NULL);
	rec_free(&r);
}

int main(void)
{
	harness_init();
	test_exit_without_sigchld();
	test_exits();
	test_spawn_errors();
	test_stop();
	test_graceful_sweep();
	test_backoff();
	test_restart_and_kill_all();
	test_child_env();
	test_leftovers();
	test_reentrant();
	test_free_kills();
	return done_testing();
}

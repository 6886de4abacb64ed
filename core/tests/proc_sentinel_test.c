/*
 * proc_sentinel_test.c — kill -9 of hum leaves nothing behind.
 *
 * A forked child plays hum: it creates a supervisor, starts a sleeper and
 * `grandkids` (a child in the group and a setsid'd, double-forked,
 * TERM-ignoring daemon), and reports every pid through a pipe.  The test
 * SIGKILLs it and expects all of them, and the sentinel itself, gone within
 * 2 s.  Then, in this process: a sentinel killed by someone is replaced.
 */
#include <poll.h>
#include <time.h>
#include <sys/wait.h>

#include "sup/sup_priv.h"
#include "proc_util.h"

static __attribute__((noreturn)) void play_hum(int wfd, void *ud)
{
	rec r1, r2;
	harness_init();
	char *a1[] = { fix("sleeper"), NULL };
	char *a2[] = { fix("grandkids"), NULL };
	hum_spec s1 = spec_argv(a1), s2 = spec_argv(a2);
	hum_proc *p1 = add("sleeper", &s1, &r1), *p2 = add("grandkids", &s2, &r2);
	hum_proc_start(p1);
	hum_proc_start(p2);
	WAIT(find_pid(r1.text[1], "pid") && find_pid(r2.text[1], "main"), 20);
	char msg[128];
	int n = snprintf(msg, sizeof msg, "%d %d %d %d %d\n", (int)find_pid(r1.text[1], "pid"),
			 (int)find_pid(r2.text[1], "child"), (int)find_pid(r2.text[1], "daemon"),
			 (int)find_pid(r2.text[1], "main"), (int)S->sentinel.pid);
	if (write(wfd, msg, (size_t)n) != n)
		_exit(1);
	for (;;)
		pause(); /* until SIGKILL */
}

static void test_kill9(void)
{
	char buf[128];
	pid_t hum = fork_reporter(play_hum, NULL, buf, sizeof buf, 20);
	if (hum < 0) {
		printf("Bail out! fork\n");
		exit(1);
	}
	int pid[5] = { 0 };
	int got = sscanf(buf, "%d %d %d %d %d", &pid[0], &pid[1], &pid[2], &pid[3], &pid[4]);
	ok(got == 5 && pid[0] > 0 && pid[1] > 0 && pid[2] > 0 && pid[3] > 0 && pid[4] > 0,
	   "hum started sleeper %d, child %d, daemon %d, main %d; sentinel %d", pid[0], pid[1],
	   pid[2], pid[3], pid[4]);
	kill(hum, SIGKILL);
	waitpid(hum, NULL, 0);
	double t0 = now(), dl = t0 + 2.0;
	int left;
	for (;;) {
		left = 0;
		for (int i = 0; i < 4; i++)
			left += alive(pid[i]);
		if (!left || now() > dl)
			break;
		poll(NULL, 0, 5);
	}
	ok(got == 5 && left == 0, "after kill -9 of hum every process it started is gone (%.3fs)",
	   now() - t0);
	int s_left = 1;
	for (double dl2 = now() + 5; (s_left = alive(pid[4])) && now() < dl2;)
		poll(NULL, 0, 5);
	ok(!s_left, "the sentinel exits after its sweep");
	for (int i = 0; i < 4; i++)
		if (pid[i] > 0 && alive(pid[i]))
			kill(pid[i], SIGKILL); /* never leave them behind, even on failure */
}

static void test_respawn(void)
{
	harness_init();
	pid_t first = S->sentinel.pid;
	kill(first, SIGKILL);
	int replaced = WAIT(S->sentinel.pid != first && S->sentinel.pid > 0, 20);
	pid_t now_pid = S->sentinel.pid;
	ok(replaced && alive(now_pid), "a killed sentinel is replaced (%d -> %d)", (int)first,
	   (int)now_pid);
	harness_fini();
}

static int count_fn(pid_t pid, const char *value, size_t len, void *ud)
{
	(*(int *)ud)++;
	return 0;
}

static int scan_count(const char *prefix, pid_t lo, pid_t hi)
{
	int n = 0;
	int rc = hum_token_scan_range(prefix, lo, hi, count_fn, &n);
	return rc < 0 ? rc : n;
}

/* The sweep looks only at the pids a run can have (sweep.c): the range
 * filter must keep every pid inside a cyclic range and none outside. */
static void test_scan_range(void)
{
	char prefix[64], env[96];
	snprintf(prefix, sizeof prefix, "rangetest-%d-%ld.", (int)getpid(), (long)time(NULL));
	snprintf(env, sizeof env, "HUM_TOKEN=%s1.1", prefix);
	pid_t kids[3];
	for (int i = 0; i < 3; i++) {
		kids[i] = fork();
		if (kids[i] == 0) {
			char *argv[] = { "sleep", "100", NULL }, *envp[] = { env, NULL };
			execve("/bin/sleep", argv, envp);
			_exit(127);
		}
	}
	pid_t lo = kids[0], hi = kids[0];
	for (int i = 1; i < 3; i++) {
		if (kids[i] < lo)
			lo = kids[i];
		if (kids[i] > hi)
			hi = kids[i];
	}
	/* exec has happened once the token is readable */
	int all = 0;
	for (double dl = now() + 10; (all = scan_count(prefix, 0, 0)) < 3 && now() < dl;)
		poll(NULL, 0, 5);
	ok(all == 3, "a full scan finds the 3 carriers (%d)", all);
	int in = scan_count(prefix, lo, hi);
	ok(in == 3, "the range %d..%d finds them (%d)", (int)lo, (int)hi, in);
	ok(scan_count(prefix, hi + 1, lo - 1) == 0, "the wrapped range %d..%d (everything else) finds none",
	   (int)hi + 1, (int)lo - 1);
	int ends = scan_count(prefix, hi, lo); /* wraps: >= hi or <= lo */
	ok(ends == 2, "the wrapped range %d..%d keeps both ends, not the middle pid (%d)", (int)hi,
	   (int)lo, ends);
	ok(scan_count(prefix, lo + 0, lo) == 1, "a one-pid range finds that pid");
	for (int i = 0; i < 3; i++) {
		kill(kids[i], SIGKILL);
		waitpid(kids[i], NULL, 0);
	}
}

int main(void)
{
	test_kill9(); /* first: before this process is a subreaper with a loop */
	test_scan_range();
	test_respawn();
	return done_testing();
}

/*
 * proc_resources_test.c — the supervisor when hum is short of resources:
 * closed standard descriptors reopened on /dev/null, the open-file limit
 * raised, and a spawn that fails for lack of descriptors retried (backoff)
 * instead of failing for ever.
 */
#include <fcntl.h>
#include <sys/resource.h>

#include "proc_util.h"
#include "sup/fds.h"
#include "sup/launch.h"

/* What /proc/self/fd/<fd> points to ("" when closed). */
static const char *fd_target(int fd)
{
	static char buf[256];
	char path[64];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	ssize_t n = readlink(path, buf, sizeof buf - 1);
	buf[n > 0 ? n : 0] = 0;
	return buf;
}

static void test_stdio(void)
{
	/* fd 0 and 2 are closed and must come back as /dev/null; 1 (TAP
	 * output) is saved and restored around the test. */
	int save0 = fcntl(0, F_DUPFD_CLOEXEC, 10), save2 = fcntl(2, F_DUPFD_CLOEXEC, 10);
	close(0);
	close(2);
	int rc = hum_fds_stdio();
	int null0 = strcmp(fd_target(0), "/dev/null") == 0, null2 = strcmp(fd_target(2), "/dev/null") == 0;
	int fl = fcntl(0, F_GETFD);
	dup2(save0, 0);
	dup2(save2, 2);
	close(save0);
	close(save2);
	ok(rc == 0 && null0 && null2, "closed 0 and 2 are reopened on /dev/null");
	ok(fl >= 0 && !(fl & FD_CLOEXEC), "as standard descriptors: inherited (no CLOEXEC)");
	char before[256];
	snprintf(before, sizeof before, "%s", fd_target(0));
	int fl0 = fcntl(0, F_GETFD);
	ok(hum_fds_stdio() == 0 && strcmp(fd_target(0), before) == 0 && fcntl(0, F_GETFD) == fl0,
	   "open ones are left alone");
}

static void test_raise_limit(void)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rlim_t want = rl.rlim_max < HUM_NOFILE_MAX ? rl.rlim_max : HUM_NOFILE_MAX;
	if (want <= 64) {
		ok(1, "# SKIP hard limit on open files is %llu", (unsigned long long)rl.rlim_max);
		return;
	}
	struct rlimit low = { 64, rl.rlim_max };
	setrlimit(RLIMIT_NOFILE, &low);
	rlim_t before = 0, after = 0;
	int rc = hum_fds_raise_limit(&before, &after);
	getrlimit(RLIMIT_NOFILE, &rl);
	ok(rc == 0 && before == 64 && after == want && rl.rlim_cur == want,
	   "the soft limit is raised to the hard one (or %llu): %llu -> %llu",
	   (unsigned long long)HUM_NOFILE_MAX, (unsigned long long)before, (unsigned long long)after);
	rc = hum_fds_raise_limit(&before, &after);
	ok(rc == 0 && before == want && after == want, "a second call changes nothing");
}

/* The soft limit set so that no new descriptor can be opened: every number
 * below it is taken (the lowest free one is the limit). */
static rlim_t starve(void)
{
	int lowest = fcntl(0, F_DUPFD, 0);
	close(lowest);
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rlim_t old = rl.rlim_cur;
	rl.rlim_cur = (rlim_t)lowest;
	setrlimit(RLIMIT_NOFILE, &rl);
	return old;
}

static void unstarve(rlim_t old)
{
	struct rlimit rl;
	getrlimit(RLIMIT_NOFILE, &rl);
	rl.rlim_cur = old;
	setrlimit(RLIMIT_NOFILE, &rl);
}

static void test_transient_spawn(void)
{
	ok(hum_spawn_transient(-EMFILE) && hum_spawn_transient(-ENFILE) && hum_spawn_transient(-EAGAIN) &&
	   hum_spawn_transient(-ENOMEM) && !hum_spawn_transient(-ENOENT) && !hum_spawn_transient(-EACCES),
	   "lack of descriptors, processes or memory is transient; a missing program is not");
	rec r1, r2;
	char *argv[] = { fix("sleeper"), NULL };
	hum_spec sp = spec_argv(argv); /* restart policy "no": retried all the same */
	hum_proc *p1 = add("starved", &sp, &r1), *p2 = add("starved-stop", &sp, &r2);

	rlim_t old = starve();
	int rc1 = hum_proc_start(p1), rc2 = hum_proc_start(p2);
	const hum_snap *n = hum_proc_snap(p1);
	ok(rc1 == 0 && n->state == HUM_BACKOFF && !n->spawn_error && n->pid == 0 &&
	   strstr(n->reason, "cannot spawn now: pipe2: Too many open files (retry 1 in 0.1s)"),
	   "no descriptors: backoff, not a spawn error: \"%s\"", n->reason);
	ok(rc2 == 0 && state(p2) == HUM_BACKOFF, "the same for a second process");
	int retried = WAIT(strstr(hum_proc_snap(p1)->reason, "retry 3 in 0.4s") != NULL, 20);
	ok(retried && state(p1) == HUM_BACKOFF,
	   "retried while the shortage lasts, the delay doubling: \"%s\"", hum_proc_snap(p1)->reason);
	hum_proc_stop(p2);
	ok(state(p2) == HUM_STOPPED, "stop during the retry: stopped");
	unstarve(old);

	ok(WAIT(state(p1) == HUM_RUNNING, 20), "runs once descriptors are back");
	n = hum_proc_snap(p1);
	ok(n->pid > 0 && n->restarts == 0 && n->run >= 4,
	   "retries are start attempts (run %u), not restarts (%u)", n->run, n->restarts);
	WAIT(0, 0.5); /* any retry still queued for p2 would have run by now */
	ok(state(p2) == HUM_STOPPED && hum_proc_snap(p2)->pid == 0, "a stopped retry never spawns");
	hum_proc_stop(p1);
	ok(WAIT(state(p1) == HUM_STOPPED, 20), "and stops as usual");
	rec_free(&r1), rec_free(&r2);
}

int main(void)
{
	test_stdio();
	test_raise_limit();
	harness_init();
	test_transient_spawn();
	harness_fini();
	return done_testing();
}

/*
 * containment_test.c — containment of descendants by the supervisor
 * (core/sup/cgroup_*.c, lineage.c, the sentinel).
 *
 *  1. The supervisor with cgroups: five kinds of escapee (left the group or
 *     the session, lost HUM_TOKEN, orphaned or not, process title over the
 *     environment) killed by stop, restart, hum_sup_free and — through the
 *     sentinel — kill -9; a hum.exec job's escapee killed with its leader;
 *     every cgroup removed.
 *  2. Without cgroups (HUM_CGROUP=off): the session found at stop, every
 *     escapee at hum_sup_free (parentage), the sentinel's sessions and
 *     descendants after kill -9 — and what it cannot find (lineage.h).
 * Where cgroup2 is not writable, the cgroup half (kill -9 with cgroups, part
 * 1) is TAP skips.  The cgroup operations on their own: cgroup_test.c.
 */
#include "sup/exec.h"
#include "sup/lineage.h"
#include "sup/sup_priv.h"
#include "cgroup_util.h"

/* ---- helpers --------------------------------------------------------------------- */

/* A run that starts the five kinds of escapee, then becomes `sleep`. */
static void five_cmd(char *cmd, size_t len, const char *d)
{
	snprintf(cmd, len,
		 "for m in setsid double setpgid title title-double; do %s/escapee $m %s/$m.pid & done; "
		 "exec sleep 1000", FIX, d);
}

/* Which kinds are alive, as "setsid double ..." */
static const char *which(const pid_t pids[5])
{
	static char buf[128];
	buf[0] = 0;
	for (int i = 0; i < 5; i++)
		if (alive(pids[i]))
			snprintf(buf + strlen(buf), sizeof buf - strlen(buf), "%s ", kinds[i]);
	return buf[0] ? buf : "none";
}

/* Every escapee left the main's group and carries no HUM_TOKEN: else the
 * test would not test what it says. */
static bool escaped(const pid_t pids[5], pid_t main_pgid)
{
	for (int i = 0; i < 5; i++) {
		hum_kin k;
		char val[128];
		if (hum_lineage_stat(pids[i], &k) != 0 || k.pgid == main_pgid ||
		    hum_token_of(pids[i], val, sizeof val) >= 0)
			return false;
	}
	return true;
}

/* ---- kill -9 of a supervisor --------------------------------------------------- */

/* A forked child plays hum: a supervisor (cgroups on or off), the five
 * kinds started, their pids and hum's cgroup reported, then SIGKILL. */
typedef struct play {
	const char *d;
	bool cgroups;
} play;

static __attribute__((noreturn)) void play_hum(int wfd, void *ud)
{
	const char *d = ((play *)ud)->d;
	if (!((play *)ud)->cgroups)
		setenv("HUM_CGROUP", "off", 1);
	harness_init();
	rec r;
	char cmd[1024];
	five_cmd(cmd, sizeof cmd, d);
	hum_spec sp = spec_sh(cmd);
	hum_proc *p = add("five", &sp, &r);
	hum_proc_start(p);
	pid_t pids[5];
	WAIT(five_pids(d, pids) == 5, 20);
	char msg[PATH_MAX + 128];
	int n = snprintf(msg, sizeof msg, "%d %d %d %d %d %d %s\n", (int)pids[0], (int)pids[1],
			 (int)pids[2], (int)pids[3], (int)pids[4], (int)hum_proc_snap(p)->pid,
			 S->cg.dir[0] ? S->cg.dir : "-");
	if (write(wfd, msg, (size_t)n) != n)
		_exit(1);
	for (;;)
		pause();
}

/* Returns the pids and hum's cgroup ("-": none) after kill -9 and after
 * the kinds in `expect` (bit i: kinds[i]) are gone or 5 s passed; or false. */
static bool kill9(bool cgroups, const char *d, pid_t pids[5], char *top, unsigned expect, double *took)
{
	char buf[PATH_MAX + 128];
	play pl = { d, cgroups };
	pid_t hum = fork_reporter(play_hum, &pl, buf, sizeof buf, 30);
	if (hum < 0)
		return false;
	int mainpid = 0;
	int got = sscanf(buf, "%d %d %d %d %d %d %4095s", &pids[0], &pids[1], &pids[2], &pids[3], &pids[4],
			 &mainpid, top);
	kill(hum, SIGKILL);
	reap(hum);
	double t0 = now();
	pid_t want[5];
	int nw = 0;
	for (int i = 0; i < 5; i++)
		if (expect >> i & 1)
			want[nw++] = pids[i];
	if (got == 7 && escaped(pids, mainpid))
		UNTIL(n_alive(want, nw) == 0, 5);
	*took = now() - t0;
	return got == 7;
}

static void test_kill9_cgroups(void)
{
	pid_t pids[5] = { 0 };
	char top[PATH_MAX] = "";
	double took;
	bool ran = kill9(true, scratch("k9cg"), pids, top, 31, &took);
	ok(ran && top[0] == '/' && n_alive(pids, 5) == 0,
	   "cgroups, kill -9 of hum: all five kinds of escapee are gone in %.3fs (left: %s; top %s)", took,
	   which(pids), top);
	ok(ran && UNTIL(!is_dir(top), 10), "and the sentinel removed hum's cgroup %s", top);
	kill_all(pids, 5);
}

static void test_kill9_lineage(void)
{
	pid_t pids[5] = { 0 };
	char top[PATH_MAX] = "";
	double took;
	/* setsid and title: children of the main; setpgid: in its session.
	 * The double-forked ones were orphans of hum, and after its death of
	 * hum's own reaper: nothing tells them apart any more (lineage.h). */
	bool ran = kill9(false, scratch("k9ln"), pids, top, 1 | 4 | 8, &took);
	pid_t found[3] = { pids[0], pids[2], pids[3] };
	ok(ran && !strcmp(top, "-") && n_alive(found, 3) == 0,
	   "no cgroups, kill -9 of hum: in %.3fs the sentinel killed the escapees that kept the main "
	   "as parent or the session (alive: %s)", took, which(pids));
	kill_all(pids, 5);
}

/* ---- 1. the supervisor with cgroups -------------------------------------------- */

static char *run_dir(hum_proc *p, char *buf)
{
	snprintf(buf, PATH_MAX + 32, "%s/%u.%u", S->cg.dir, hum_proc_id(p), hum_proc_snap(p)->run);
	return buf;
}

static void exec_cb(void *ud, const hum_exec_result *r)
{
	(*(int *)ud)++;
}

static void test_sup_cgroups(void)
{
	/* The top of a hum killed together with its sentinel: its pid gone,
	 * a process still in it.  The next hum beside it removes it. */
	pid_t dead = fork();
	if (dead == 0)
		_exit(0);
	reap(dead);
	struct stat st;
	char stale[PATH_MAX + 64], staler[PATH_MAX + 96];
	snprintf(stale, sizeof stale, "%s", base);
	*strrchr(stale, '/') = 0;
	snprintf(stale + strlen(stale), sizeof stale - strlen(stale), "/hum-%lu-%d-1a2b-1",
		 stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long)st.st_ino : 0ul, (int)dead);
	snprintf(staler, sizeof staler, "%s/1.1", stale);
	mkdir(stale, 0755);
	mkdir(staler, 0755);
	int sfd = open(staler, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	char *slp[] = { "sleep", "1000", NULL };
	hum_spawned left;
	int lrc = spawn_in(sfd, slp, NULL, &left);
	close(sfd);
	if (lrc == 0)
		close_spawned(&left);

	harness_init();
	ok(S->cg.placing && is_dir(S->cg.dir), "the supervisor made its cgroup %s", S->cg.dir);
	ok(lrc == 0 && !is_dir(stale) && UNTIL(!alive(left.pid), 5),
	   "a top left by a hum killed with its sentinel is emptied and removed by the next hum");
	if (lrc == 0)
		kill(left.pid, SIGKILL), reap(left.pid);
	rec r;
	char cmd[1024], rdir[PATH_MAX + 32], rdir2[PATH_MAX + 32];
	const char *d = scratch("stop");
	five_cmd(cmd, sizeof cmd, d);
	hum_spec sp = spec_sh(cmd);
	sp.grace = 2;
	hum_proc *p = add("five", &sp, &r);
	hum_proc_start(p);
	pid_t pids[5] = { 0 };
	WAIT(five_pids(d, pids) == 5, 20);
	run_dir(p, rdir);
	pid_t mainpid = hum_proc_snap(p)->pid;
	ok(escaped(pids, mainpid) && is_dir(rdir), "five kinds escaped group and token; the run's cgroup %s",
	   rdir);
	hum_proc_stop(p);
	WAIT(state(p) == HUM_STOPPED, 20);
	/* `stopped`: each had SIGKILL at least; dying takes a moment */
	ok(state(p) == HUM_STOPPED && WAIT(n_alive(pids, 5) == 0, 10),
	   "stop: stopped, and none of the five is left (alive: %s)", which(pids));
	ok(WAIT(!is_dir(rdir), 10), "the run's cgroup is removed once empty");

	/* the stop signal reaches the cgroup's members before any SIGKILL:
	 * the main ignores it, so nothing else ends them meanwhile */
	d = scratch("term");
	snprintf(cmd, sizeof cmd, "trap '' TERM; %s/escapee double %s/double.pid %s/termed & "
		 "%s/escapee setpgid %s/setpgid.pid %s/termed2 & while :; do sleep 0.1; done",
		 FIX, d, d, FIX, d, d);
	sp = spec_sh(cmd);
	sp.grace = 30;
	rec r3;
	hum_proc *t = add("term", &sp, &r3);
	hum_proc_start(t);
	char termed[2][300];
	snprintf(termed[0], sizeof termed[0], "%s/termed", d);
	snprintf(termed[1], sizeof termed[1], "%s/termed2", d);
	WAIT(five_pids(d, pids) >= 0 && pids[1] > 0 && pids[2] > 0, 20);
	hum_proc_stop(t);
	int termed_both = WAIT(access(termed[0], F_OK) == 0 && access(termed[1], F_OK) == 0, 10);
	ok(termed_both && state(t) == HUM_STOPPING,
	   "stop: the stop signal reached the escapees through the cgroup, within the grace");
	hum_proc_stop(t); /* no-op: already stopping */
	hum_sup_kill_all(S);
	WAIT(state(t) == HUM_STOPPED, 20);

	/* restart: the old run's escapees go, the new run gets a new cgroup */
	d = scratch("restart");
	five_cmd(cmd, sizeof cmd, d);
	sp = spec_sh(cmd);
	rec r2;
	hum_proc *q = add("again", &sp, &r2);
	hum_proc_start(q);
	WAIT(five_pids(d, pids) == 5, 20);
	run_dir(q, rdir);
	char pf[512];
	for (int i = 0; i < 5; i++) /* the new run writes them again */
		snprintf(pf, sizeof pf, "%s/%s.pid", d, kinds[i]), unlink(pf);
	hum_proc_restart(q);
	pid_t pids2[5] = { 0 };
	WAIT(n_alive(pids, 5) == 0 && five_pids(d, pids2) == 5, 20);
	run_dir(q, rdir2);
	ok(n_alive(pids, 5) == 0 && n_alive(pids2, 5) == 5 && strcmp(rdir, rdir2) != 0 &&
	   WAIT(!is_dir(rdir), 10) && is_dir(rdir2),
	   "restart: the old run and its escapees gone, its cgroup removed; the new run in %s", rdir2);

	/* a run that ends leaving a daemon keeps its cgroup until the daemon
	 * dies, however it dies: then the cgroup goes (inotify, no polling) */
	d = scratch("left");
	snprintf(cmd, sizeof cmd, "%s/escapee double %s/double.pid & "
		 "while [ ! -f %s/double.pid ]; do sleep 0.01; done", FIX, d, d);
	sp = spec_sh(cmd);
	rec r4;
	hum_proc *l = add("leaves", &sp, &r4);
	hum_proc_start(l);
	char ldir[PATH_MAX + 32];
	run_dir(l, ldir);
	WAIT(state(l) == HUM_SUCCEEDED, 20);
	pid_t daemon[5] = { 0 };
	five_pids(d, daemon);
	int kept = state(l) == HUM_SUCCEEDED && alive(daemon[1]) && is_dir(ldir);
	kill(daemon[1], SIGKILL); /* hum reaps it; only the watch can see the cgroup empty */
	ok(kept && WAIT(!is_dir(ldir), 10),
	   "a run that left a daemon keeps its cgroup; the daemon's death removes it");

	/* a job: its escapee dies with its leader */
	d = scratch("job");
	snprintf(cmd, sizeof cmd, "%s/escapee setsid %s/setsid.pid & while [ ! -f %s/setsid.pid ]; do sleep 0.01; done",
		 FIX, d, d);
	hum_exec_spec es;
	memset(&es, 0, sizeof es);
	es.shell = cmd;
	es.sup = S;
	int calls = 0;
	char err[256];
	int rc = hum_exec_start(L, &es, exec_cb, &calls, err, sizeof err);
	WAIT(calls == 1, 20);
	pid_t jp[5];
	five_pids(d, jp);
	ok(rc == 0 && calls == 1 && jp[0] > 0 && WAIT(!alive(jp[0]), 10),
	   "a hum.exec job's escapee (new session, no token) is killed with its leader");

	/* hum_sup_free: the new run's escapees, and every cgroup */
	char top[PATH_MAX];
	snprintf(top, sizeof top, "%s", S->cg.dir);
	harness_fini();
	ok(n_alive(pids2, 5) == 0 && !is_dir(top), "hum_sup_free: none left (alive: %s), %s removed",
	   which(pids2), top);
	kill_all(pids, 5);
	kill_all(pids2, 5);
	kill_all(jp, 1);
	rec_free(&r), rec_free(&r2), rec_free(&r3), rec_free(&r4);
}

/* ---- 2. without cgroups ---------------------------------------------------------- */

static void test_sup_lineage(void)
{
	setenv("HUM_CGROUP", "off", 1);
	harness_init();
	unsetenv("HUM_CGROUP");
	ok(!S->cg.placing && S->cg.top_fd < 0, "HUM_CGROUP=off: no cgroup");
	rec r;
	char cmd[1024];
	const char *d = scratch("lineage");
	five_cmd(cmd, sizeof cmd, d);
	hum_spec sp = spec_sh(cmd);
	hum_proc *p = add("five", &sp, &r);
	hum_proc_start(p);
	pid_t pids[5] = { 0 };
	WAIT(five_pids(d, pids) == 5, 20);
	ok(escaped(pids, hum_proc_snap(p)->pid), "five kinds escaped group and token");
	hum_proc_stop(p);
	WAIT(state(p) == HUM_STOPPED, 20);
	ok(state(p) == HUM_STOPPED && WAIT(!alive(pids[2]), 10),
	   "stop: the one in the run's session (setpgid) is gone");
	harness_fini();
	ok(n_alive(pids, 5) == 0, "hum_sup_free: every escapee, orphans adopted by hum included, is gone "
				  "(alive: %s)", which(pids));
	kill_all(pids, 5);
	rec_free(&r);
}

int main(void)
{
	if (!cg_start())
		return 1;
	const char *why = writable();
	/* first: before this process is a subreaper with a loop */
	if (why)
		skip("kill -9 with cgroups", why);
	else
		test_kill9_cgroups();
	test_kill9_lineage();
	if (why)
		skip("the supervisor with cgroups", why);
	else
		test_sup_cgroups();
	test_sup_lineage();
	return cg_finish();
}

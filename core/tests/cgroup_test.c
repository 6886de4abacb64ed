/*
 * cgroup_test.c — containment of descendants (core/sup/cgroup_*.c, lineage.c).
 *
 *  1. Finding cgroup2 and hum's cgroup in mountinfo texts (hybrid, unified,
 *     a container's bind mount, escapes, read-only mounts, cgroup v1 only).
 *  2. Where cgroup2 is writable here: a child created inside its cgroup (the
 *     first thing the program sees is its cgroup), the child-side work of
 *     posix_spawn redone (signals, fds, session, errors by step), the start
 *     without a cgroup when it cannot be used; signals through a cgroup
 *     (the group skipped, child cgroups included), cgroup.kill, removal.
 *  3. The supervisor with cgroups: five kinds of escapee (left the group or
 *     the session, lost HUM_TOKEN, orphaned or not, process title over the
 *     environment) killed by stop, restart, hum_sup_free and — through the
 *     sentinel — kill -9; a hum.exec job's escapee killed with its leader;
 *     every cgroup removed.
 *  4. Without cgroups (HUM_CGROUP=off): the session found at stop, every
 *     escapee at hum_sup_free (parentage), the sentinel's sessions and
 *     descendants after kill -9 — and what it cannot find (lineage.h).
 * Where cgroup2 is not writable, part 2 and 3 are TAP skips.
 */
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "sup/cgroup.h"
#include "sup/exec.h"
#include "sup/launch.h"
#include "sup/lineage.h"
#include "sup/sup_priv.h"
#include "proc_util.h"

/* WAIT without a loop (part 2 runs before the supervisor exists). */
#define UNTIL(cond, secs) ({                                        \
	double dl_ = now() + (secs);                                \
	while (!(cond) && now() < dl_)                              \
		poll(NULL, 0, 5);                                   \
	(cond); })

static void skip(const char *what, const char *why)
{
	printf("ok %d - # SKIP %s: %s\n", ++tap_n, what, why);
}

/* ---- 1. where cgroup2 is ---------------------------------------------------- */

static void test_parse(void)
{
	hum_cgroup_where w;
	const char *hybrid =
		"31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n"
		"35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n"
		"41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
	int rc = hum_cgroup_where_parse(hybrid, "4:memory:/x\n0::/\n", &w);
	ok(rc == 0 && !strcmp(w.mnt, "/sys/fs/cgroup/unified") && !strcmp(w.self, "/sys/fs/cgroup/unified") &&
	   !strcmp(w.self_rel, "/") && !strcmp(w.mnt_rel, "/"),
	   "hybrid: cgroup2 at /sys/fs/cgroup/unified, hum in its root (%d %s)", rc, rc ? "" : w.self);

	const char *unified = "25 1 0:22 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
	rc = hum_cgroup_where_parse(unified, "0::/user.slice/user-1000.slice/session-2.scope\n", &w);
	ok(rc == 0 && !strcmp(w.self, "/sys/fs/cgroup/user.slice/user-1000.slice/session-2.scope") &&
	   !strcmp(w.self_rel, "/user.slice/user-1000.slice/session-2.scope"),
	   "unified, optional fields: hum's cgroup directory below the mount (%s)", rc ? "-" : w.self);

	const char *bind = "600 590 0:30 /docker/abc /sys/fs/cgroup ro,nosuid - cgroup2 cgroup rw\n"
			   "601 590 0:30 /docker/abc /mnt/my\\040cg rw,nosuid - cgroup2 cgroup rw\n";
	rc = hum_cgroup_where_parse(bind, "0::/docker/abc/app\n", &w);
	ok(rc == 0 && !strcmp(w.mnt, "/mnt/my cg") && !strcmp(w.self, "/mnt/my cg/app") &&
	   !strcmp(w.mnt_rel, "/docker/abc"),
	   "a bind mount of a subtree: the read-write one, \\040 decoded, path below its root (%s)",
	   rc ? "-" : w.self);

	rc = hum_cgroup_where_parse(bind, "0::/docker/abcd\n", &w);
	ok(rc == -ENOENT, "a mount whose root is not above hum's cgroup is not used (%d)", rc);
	ok(hum_cgroup_where_parse(hybrid, "4:memory:/x\n1:name=systemd:/\n", &w) == -ENOENT,
	   "cgroup v1 only (no 0:: line): -ENOENT");
	ok(hum_cgroup_where_parse(hybrid + 0, "0::/", &w) == 0 &&
	   hum_cgroup_where_parse("35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n", "0::/\n", &w) == -ENOENT,
	   "no cgroup2 mount: -ENOENT (a last line without newline is read too)");
}

/* ---- helpers --------------------------------------------------------------------- */

static char tmp[] = "/tmp/hum-cgroup-test-XXXXXX";
static char base[PATH_MAX], base_rel[PATH_MAX]; /* where this test makes cgroups */
static int base_fd = -1;

/* Up to len-1 bytes from fd (non-blocking) until EOF or secs pass. */
static size_t drain(int fd, char *buf, size_t len, double secs)
{
	size_t have = 0;
	double dl = now() + secs;
	while (have + 1 < len && now() < dl) {
		struct pollfd p = { fd, POLLIN, 0 };
		poll(&p, 1, 100);
		ssize_t n = read(fd, buf + have, len - 1 - have);
		if (n == 0)
			break;
		if (n > 0)
			have += (size_t)n;
	}
	buf[have] = 0;
	return have;
}

static void reap(pid_t pid)
{
	while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

static bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A fresh directory for one test's pid files. */
static char *scratch(const char *name)
{
	static char buf[8][256];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 256, "%s/%s", tmp, name);
	mkdir(b, 0755);
	return b;
}

static const char *const kinds[5] = { "setsid", "double", "setpgid", "title", "title-double" };

/* A run that starts the five kinds of escapee, then becomes `sleep`. */
static void five_cmd(char *cmd, size_t len, const char *d)
{
	snprintf(cmd, len,
		 "for m in setsid double setpgid title title-double; do %s/escapee $m %s/$m.pid & done; "
		 "exec sleep 1000", FIX, d);
}

/* The escapees' pids once every pid file is complete; how many. */
static int five_pids(const char *d, pid_t pids[5])
{
	int n = 0;
	for (int i = 0; i < 5; i++) {
		char path[512], buf[32] = "";
		snprintf(path, sizeof path, "%s/%s.pid", d, kinds[i]);
		FILE *f = fopen(path, "r");
		if (f) {
			size_t k = fread(buf, 1, sizeof buf - 1, f);
			buf[k] = 0;
			fclose(f);
		}
		pids[i] = strchr(buf, '\n') ? (pid_t)atoi(buf) : 0;
		n += pids[i] > 0;
	}
	return n;
}

static int n_alive(const pid_t *pids, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += alive(pids[i]);
	return k;
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

static void kill_all(const pid_t *pids, int n)
{
	for (int i = 0; i < n; i++)
		if (pids[i] > 0 && alive(pids[i]))
			kill(pids[i], SIGKILL);
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

/* ---- 2. cgroup operations ------------------------------------------------------- */

/* Makes base: the test's cgroup, under hum's own or the mount's root. */
static const char *writable(void)
{
	static char why[PATH_MAX + 64];
	hum_cgroup_where *w = malloc(sizeof *w);
	int rc = w ? hum_cgroup_where_self(w) : -ENOMEM;
	if (rc < 0) {
		snprintf(why, sizeof why, "no cgroup2 mount showing this process (%s)", strerror(-rc));
		free(w);
		return why;
	}
	const char *dirs[2] = { w->self, w->mnt }, *rels[2] = { w->self_rel, w->mnt_rel };
	int e = 0;
	for (int i = 0; i < 2 && base_fd < 0; i++) {
		snprintf(base, sizeof base, "%s/humtest-%d", dirs[i], (int)getpid());
		snprintf(base_rel, sizeof base_rel, "%s/humtest-%d", strcmp(rels[i], "/") ? rels[i] : "",
			 (int)getpid());
		if (mkdir(base, 0755) == 0)
			base_fd = open(base, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		else
			e = errno;
	}
	snprintf(why, sizeof why, "cgroup2 at %s is not writable (%s)", w->mnt, strerror(e));
	free(w);
	return base_fd >= 0 ? NULL : why;
}

/* A child cgroup of base: its fd, dir and rel. */
static int make_cg(const char *name, char *dir, char *rel)
{
	if (snprintf(dir, PATH_MAX, "%s/%s", base, name) >= PATH_MAX ||
	    snprintf(rel, PATH_MAX, "%s/%s", base_rel, name) >= PATH_MAX)
		return -1;
	if (mkdir(dir, 0755) != 0 && errno != EEXIST)
		return -1;
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

static int spawn_in(int cgfd, char *const *argv, const char *shell, hum_spawned *sp)
{
	hum_spawn_req req = { argv, shell, NULL, NULL, NULL, 0, cgfd };
	char err[256];
	return hum_spawn(&req, sp, err, sizeof err);
}

static void close_spawned(hum_spawned *sp)
{
	close(sp->out_fd);
	close(sp->err_fd);
}

static void test_spawn(void)
{
	char dir[PATH_MAX], rel[PATH_MAX], out[PATH_MAX + 64], want[PATH_MAX + 8];
	int cg = make_cg("spawn", dir, rel);
	char *cat[] = { "cat", "/proc/self/cgroup", NULL };
	hum_spawned sp;
	int rc = spawn_in(cg, cat, NULL, &sp);
	if (rc == 0) {
		drain(sp.out_fd, out, sizeof out, 10);
		close_spawned(&sp);
		reap(sp.pid);
	}
	snprintf(want, sizeof want, "0::%s\n", rel);
	ok(cg > 2 && rc == 0 && sp.cgroup_err == 0 && strstr(out, want) != NULL,
	   "the first thing a program sees is its cgroup: %s", rel);

	/* The child-side work posix_spawn did, redone: nothing blocked or
	 * ignored, only fds 0-2, a session of its own. */
	sigset_t set, old;
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	sigprocmask(SIG_BLOCK, &set, &old);
	signal(SIGUSR2, SIG_IGN);
	int leak = open("/dev/null", O_RDONLY); /* no CLOEXEC: as if inherited */
	char *sigs[] = { "grep", "-E", "^Sig(Blk|Ign)", "/proc/self/status", NULL };
	char *fds[] = { "ls", "/proc/self/fd", NULL };
	char *slp[] = { "sleep", "30", NULL };
	hum_spawned a, b, c;
	int ra = spawn_in(cg, sigs, NULL, &a), rb = spawn_in(cg, fds, NULL, &b), rc2 = spawn_in(cg, slp, NULL, &c);
	sigprocmask(SIG_SETMASK, &old, NULL);
	signal(SIGUSR2, SIG_DFL);
	close(leak);
	char os[256] = "", of[256] = "";
	if (ra == 0)
		drain(a.out_fd, os, sizeof os, 10), close_spawned(&a), reap(a.pid);
	if (rb == 0)
		drain(b.out_fd, of, sizeof of, 10), close_spawned(&b), reap(b.pid);
	hum_kin k = { 0 };
	if (rc2 == 0)
		hum_lineage_stat(c.pid, &k), kill(c.pid, SIGKILL), close_spawned(&c), reap(c.pid);
	ok(!strcmp(os, "SigBlk:\t0000000000000000\nSigIgn:\t0000000000000000\n"),
	   "in a cgroup: empty signal mask, nothing ignored");
	ok(!strcmp(of, "0\n1\n2\n3\n"), "in a cgroup: only fds 0, 1, 2 (3 is ls's directory)");
	ok(rc2 == 0 && k.sid == c.pid && k.pgid == c.pid, "in a cgroup: own session and group");

	/* Errors, by step; the failed child is reaped. */
	hum_cgroup_exec x = { "/nonexistent/prog", slp, NULL, NULL, -1, 1, 2, cg };
	pid_t pid = 0;
	int step = 0;
	int e1 = hum_cgroup_spawn(&x, &pid, &step);
	ok(e1 == -ENOENT && step == HUM_CG_EXEC && pid == 0, "exec failure: -ENOENT at the exec step");
	x.path = "/bin/sleep";
	x.cwd = "/nonexistent/dir";
	int e2 = hum_cgroup_spawn(&x, &pid, &step);
	ok(e2 == -ENOENT && step == HUM_CG_CHDIR, "bad cwd: -ENOENT at the chdir step");
	ok(waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD, "failed children were reaped");
	hum_spawn_req req = { slp, NULL, "/nonexistent/dir", NULL, NULL, 0, cg };
	char err[256] = "";
	hum_spawned d;
	ok(hum_spawn(&req, &d, err, sizeof err) == -ENOENT && !strcmp(err, "chdir /nonexistent/dir: No such file or directory"),
	   "hum_spawn names the step: %s", err);

	/* A directory that is not a cgroup: started anyway, without it. */
	int notcg = open(tmp, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	out[0] = 0;
	rc = spawn_in(notcg, cat, NULL, &sp);
	if (rc == 0) {
		drain(sp.out_fd, out, sizeof out, 10);
		close_spawned(&sp);
		reap(sp.pid);
	}
	close(notcg);
	ok(rc == 0 && sp.cgroup_err != 0 && strncmp(out, want, strlen(want)) != 0,
	   "an unusable cgroup: the child starts without it, cgroup_err %d (%s)", sp.cgroup_err,
	   strerror(sp.cgroup_err));
	close(cg);
	ok(hum_cgroup_remove(base_fd, "spawn") == 0 && !is_dir(dir), "an empty cgroup is removed");
}

static void test_signal_kill_remove(void)
{
	char dir[PATH_MAX], rel[PATH_MAX], subdir[PATH_MAX + 8], cmd[1024];
	int cg = make_cg("sig", dir, rel);
	const char *d = scratch("sig");
	/* the leader, a member of its group, two escapees outside it */
	snprintf(cmd, sizeof cmd,
		 "%s/escapee setsid %s/setsid.pid & %s/escapee double %s/double.pid & "
		 "sleep 1000 & echo $! > %s/member.tmp; mv %s/member.tmp %s/member.pid; exec sleep 1000",
		 FIX, d, FIX, d, d, d, d);
	hum_spawned sp;
	int rc = spawn_in(cg, NULL, cmd, &sp);
	pid_t pids[5] = { 0 }, member = 0;
	double dl = now() + 20;
	while (rc == 0 && now() < dl && (five_pids(d, pids) < 2 || !member)) {
		char path[512], b[32] = "";
		snprintf(path, sizeof path, "%s/member.pid", d);
		FILE *f = fopen(path, "r");
		if (f) {
			size_t k = fread(b, 1, sizeof b - 1, f);
			b[k] = 0;
			fclose(f);
		}
		member = strchr(b, '\n') ? atoi(b) : 0;
		poll(NULL, 0, 10);
	}
	pid_t esc[2] = { pids[0], pids[1] };
	ok(rc == 0 && esc[0] > 0 && esc[1] > 0 && member > 0 && hum_cgroup_holds(esc[1], rel) &&
	   hum_cgroup_holds(member, rel) && !hum_cgroup_holds(getpid(), rel),
	   "membership: the double-forked escapee and the group member are in it, we are not");
	int n = hum_cgroup_signal(cg, SIGTERM, sp.pid);
	int gone = UNTIL(n_alive(esc, 2) == 0, 10);
	ok(n == 2 && gone && alive(sp.pid) && alive(member),
	   "a signal to the cgroup but the group: exactly the 2 escapees (%d), the group untouched", n);
	ok(hum_cgroup_populated(cg) == 1 && hum_cgroup_remove(base_fd, "sig") == -EBUSY,
	   "populated: removal is -EBUSY");
	/* a member moved into a child cgroup is still killed, and removed */
	snprintf(subdir, sizeof subdir, "%s/sub", dir);
	mkdir(subdir, 0755);
	char procs[PATH_MAX + 32], num[16];
	snprintf(procs, sizeof procs, "%s/cgroup.procs", subdir);
	int fd = open(procs, O_WRONLY | O_CLOEXEC);
	int moved = fd >= 0 && write(fd, num, (size_t)snprintf(num, sizeof num, "%d", (int)member)) > 0;
	if (fd >= 0)
		close(fd);
	rc = hum_cgroup_kill(cg);
	int empty = UNTIL(hum_cgroup_populated(cg) == 0, 10);
	ok(moved && rc == 0 && empty && !alive(sp.pid) && !alive(member),
	   "cgroup.kill: the leader and the member in a child cgroup are gone");
	close_spawned(&sp);
	reap(sp.pid);
	close(cg);
	ok(hum_cgroup_remove(base_fd, "sig") == 0 && !is_dir(dir), "removed, child cgroup first");
	kill_all(esc, 2);
	if (member > 0 && alive(member))
		kill(member, SIGKILL);

	/* destroy: kill, wait, remove in one */
	cg = make_cg("destroy", dir, rel);
	char *slp[] = { "sleep", "1000", NULL };
	rc = spawn_in(cg, slp, NULL, &sp);
	close(cg);
	int drc = hum_cgroup_destroy(dir, 5);
	ok(rc == 0 && drc == 0 && !is_dir(dir) && !alive(sp.pid), "destroy: killed, waited for, removed");
	if (rc == 0)
		close_spawned(&sp), reap(sp.pid);
}

/* ---- 3. the supervisor with cgroups -------------------------------------------- */

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

/* ---- 4. without cgroups ---------------------------------------------------------- */

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
	setvbuf(stdout, NULL, _IONBF, 0);
	FIX = getenv("HUM_FIXTURES");
	if (!FIX || !*FIX)
		FIX = "build/fixtures";
	if (!mkdtemp(tmp)) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	test_parse();
	const char *why = writable();
	/* first: before this process is a subreaper with a loop */
	if (why)
		skip("kill -9 with cgroups", why);
	else
		test_kill9_cgroups();
	test_kill9_lineage();
	if (why) {
		skip("a child created in its cgroup", why);
		skip("signals, kill and removal through a cgroup", why);
		skip("the supervisor with cgroups", why);
	} else {
		test_spawn();
		test_signal_kill_remove();
		test_sup_cgroups();
	}
	test_sup_lineage();
	if (base_fd >= 0) {
		close(base_fd);
		ok(rmdir(base) == 0, "the test's cgroup is removed");
	}
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
	if (system(cmd) != 0)
		return 1;
	return done_testing();
}

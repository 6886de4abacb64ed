/*
 * cgroup_test.c — the cgroup v2 operations (core/sup/cgroup_*.c) on their
 * own, without a supervisor.
 *
 *  1. Finding cgroup2 and hum's cgroup in mountinfo texts (hybrid, unified,
 *     a container's bind mount, escapes, read-only mounts, cgroup v1 only).
 *  2. Where cgroup2 is writable here: a child created inside its cgroup (the
 *     first thing the program sees is its cgroup), the child-side work of
 *     posix_spawn redone (signals, fds, session, errors by step), the start
 *     without a cgroup when it cannot be used; signals through a cgroup
 *     (the group skipped, child cgroups included), cgroup.kill, removal.
 * Where cgroup2 is not writable, part 2 is TAP skips.  Containment by the
 * supervisor (cgroups and lineage): containment_test.c.
 */
#include "sup/cgroup.h"
#include "sup/launch.h"
#include "sup/lineage.h"
#include "cgroup_util.h"

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

/* ---- 2. cgroup operations ------------------------------------------------------- */

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

int main(void)
{
	if (!cg_start())
		return 1;
	test_parse();
	const char *why = writable();
	if (why) {
		skip("a child created in its cgroup", why);
		skip("signals, kill and removal through a cgroup", why);
	} else {
		test_spawn();
		test_signal_kill_remove();
	}
	return cg_finish();
}

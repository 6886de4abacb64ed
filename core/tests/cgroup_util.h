/*
 * cgroup_util.h — what the cgroup tests share (cgroup_test.c and
 * containment_test.c): a scratch directory and a cgroup of the test's own
 * (where cgroup2 is writable), the escapee fixtures' pid files, a child
 * spawned into a cgroup, TAP skips, and UNTIL.
 */
#ifndef HUM_CGROUP_UTIL_H
#define HUM_CGROUP_UTIL_H

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdbool.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include "sup/cgroup.h"
#include "sup/launch.h"
#include "proc_util.h"

/* WAIT without a loop (the cgroup operations run without a supervisor, the
 * kill -9 tests before one exists). */
#define UNTIL(cond, secs) ({                                        \
	double dl_ = now() + (secs);                                \
	while (!(cond) && now() < dl_)                              \
		poll(NULL, 0, 5);                                   \
	(cond); })

UTIL void skip(const char *what, const char *why)
{
	printf("ok %d - # SKIP %s: %s\n", ++tap_n, what, why);
}

static char tmp[] = "/tmp/hum-cgroup-test-XXXXXX";
static char base[PATH_MAX], base_rel[PATH_MAX]; /* where this test makes cgroups */
static int base_fd = -1;

UTIL void reap(pid_t pid)
{
	while (pid > 0 && waitpid(pid, NULL, 0) < 0 && errno == EINTR)
		;
}

UTIL bool is_dir(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* A fresh directory for one test's pid files. */
UTIL char *scratch(const char *name)
{
	static char buf[8][256];
	static int k;
	char *b = buf[k++ % 8];
	snprintf(b, 256, "%s/%s", tmp, name);
	mkdir(b, 0755);
	return b;
}

static const char *const kinds[5] = { "setsid", "double", "setpgid", "title", "title-double" };

/* The escapees' pids once every pid file is complete; how many. */
UTIL int five_pids(const char *d, pid_t pids[5])
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

UTIL int n_alive(const pid_t *pids, int n)
{
	int k = 0;
	for (int i = 0; i < n; i++)
		k += alive(pids[i]);
	return k;
}

UTIL void kill_all(const pid_t *pids, int n)
{
	for (int i = 0; i < n; i++)
		if (pids[i] > 0 && alive(pids[i]))
			kill(pids[i], SIGKILL);
}

/* Makes base: the test's cgroup, under hum's own or the mount's root. */
UTIL const char *writable(void)
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

UTIL int spawn_in(int cgfd, char *const *argv, const char *shell, hum_spawned *sp)
{
	hum_spawn_req req = { argv, shell, NULL, NULL, NULL, 0, cgfd };
	char err[256];
	return hum_spawn(&req, sp, err, sizeof err);
}

UTIL void close_spawned(hum_spawned *sp)
{
	close(sp->out_fd);
	close(sp->err_fd);
}

/* FIX and the scratch directory tmp; false (after a "Bail out!") if it
 * cannot be made. */
UTIL bool cg_start(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	FIX = getenv("HUM_FIXTURES");
	if (!FIX || !*FIX)
		FIX = "build/fixtures";
	if (!mkdtemp(tmp)) {
		printf("Bail out! mkdtemp\n");
		return false;
	}
	return true;
}

/* Removes the test's cgroup (if writable() made one) and tmp; the exit
 * status. */
UTIL int cg_finish(void)
{
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

#endif

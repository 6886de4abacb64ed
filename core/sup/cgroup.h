/*
 * cgroup.h — containment by cgroup v2: each run of a process (and each
 * hum.exec job) lives in a cgroup of its own that hum created, from the
 * child's first instruction, so whatever it starts is found through the
 * cgroup — in any session or process group, with any environment.
 *
 *   <hum's cgroup>/hum-<pid ns>-<instance>/   "the top": one per supervisor
 *       <id>.<run>/                       run `run` of process `id`
 *       0.<job>/                          hum.exec job `job`
 *
 * The names are the HUM_TOKEN suffixes (sentinel.h) of the same runs; the
 * instance is the token prefix (<pid>-<start ms>-<n>), and with the pid
 * namespace it tells a top whose hum is gone: the sentinel removes a top
 * after kill -9, and a top left when both died is removed by the next hum
 * started beside it.  The
 * top goes under hum's own cgroup where that is writable (systemd
 * delegates a user's service subtree to the user), else under the root of
 * the cgroup2 mount (root, a container with a writable cgroupfs); neither:
 * cgroups are off and descendants are found by token, session and
 * parentage (lineage.h).  The top never holds a process itself, and hum
 * enables no controller anywhere, so cgroup v2's "no internal processes"
 * rule never applies: plain child cgroups are enough for membership and
 * cgroup.kill.
 *
 * Everything below named hum_cgroup_* except hum_cgroup_where_self uses
 * raw system calls on stack memory only (no malloc, no stdio, no locks), so
 * the sentinel may call it after fork.  Errors: 0 or -errno.
 *
 * Files: cgroup_find.c (where, holds; the supervisor's top), cgroup_spawn.c
 * (hum_cgroup_spawn; a run's cgroup made), cgroup_kill.c (signal, kill,
 * populated, remove, destroy; a run's cgroup removed), cgroup_fs.c (the
 * cgroupfs helpers they share).
 */
#ifndef HUM_CGROUP_H
#define HUM_CGROUP_H

#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <ev.h>

/* Where cgroup v2 is mounted and where hum is in it.  `rel` paths are as
 * /proc/PID/cgroup names them ("0::<rel>"); `dir` paths are directories. */
typedef struct hum_cgroup_where {
	char mnt[PATH_MAX];      /* the cgroup2 mount point */
	char mnt_rel[PATH_MAX];  /* the cgroup at the mount point ("/" usually) */
	char self[PATH_MAX];     /* hum's own cgroup's directory */
	char self_rel[PATH_MAX];
} hum_cgroup_where;

/* From the texts of /proc/self/mountinfo and /proc/self/cgroup: the first
 * read-write cgroup2 mount that shows hum's cgroup (a read-only one if
 * there is no other).  0; -ENOENT: no cgroup2 mount showing it, or no
 * "0::" line (cgroup v1 only); -ENAMETOOLONG.  Pure: for tests. */
int hum_cgroup_where_parse(const char *mountinfo, const char *proc_cgroup, hum_cgroup_where *w);
/* The same from this process's files. */
int hum_cgroup_where_self(hum_cgroup_where *w);

/* Whether pid is in the cgroup `rel` or below it (/proc/PID/cgroup). */
bool hum_cgroup_holds(pid_t pid, const char *rel);
/* sig to every process in the cgroup dirfd and in its child cgroups,
 * except members of process group skip_pgid (0: none).  Each pid read from
 * cgroup.procs is opened as a pidfd and confirmed by a second read before
 * the signal goes through the pidfd: a pid recycled since the first read
 * is never hit.  No /proc file is read.  The number signalled, or -errno. */
int hum_cgroup_signal(int dirfd, int sig, pid_t skip_pgid);
/* SIGKILL to everything in the cgroup and below: cgroup.kill (Linux >=
 * 5.14: one write, and a fork racing with it is killed too), else a few
 * hum_cgroup_signal passes (a process forking faster than the passes may
 * be missed until the next kill of that cgroup).  0 or -errno. */
int hum_cgroup_kill(int dirfd);
/* 1 while a process lives in the cgroup or below (cgroup.events
 * "populated"; zombies do not count), 0 when empty, or -errno. */
int hum_cgroup_populated(int dirfd);
/* rmdir of the cgroup `name` under parentfd, its child cgroups first.
 * 0; -EBUSY while populated; -ENOENT if gone. */
int hum_cgroup_remove(int parentfd, const char *name);
/* Kill, wait until empty (at most `timeout` seconds), remove: the end of a
 * top (hum's exit, the sentinel).  0, or -errno of the step that failed. */
int hum_cgroup_destroy(const char *dir, double timeout);

/* Starting a child inside a cgroup: what launch.c does with posix_spawn
 * (own session, every signal at SIG_DFL and none blocked, stdin, stdout,
 * stderr, cwd, no other fd), with the child created in the cgroup by
 * clone3(CLONE_INTO_CGROUP) — vfork-style, as glibc's posix_spawn, so the
 * cost does not grow with hum's memory. */
typedef struct hum_cgroup_exec {
	const char *path;      /* resolved program */
	char *const *argv, *const *envp;
	const char *cwd;       /* NULL: inherit */
	int in_fd;             /* dup'd onto 0; -1: /dev/null */
	int out_fd, err_fd;    /* dup'd onto 1 and 2 */
	int cgroup_fd;         /* the cgroup's directory */
} hum_cgroup_exec;

/* Which step failed (hum_cgroup_spawn's *step). */
enum { HUM_CG_CLONE = 1, HUM_CG_CHDIR, HUM_CG_SETUP, HUM_CG_EXEC };

/* 0 with *pid; or -errno with *step.  HUM_CG_CLONE: no child was created
 * (-EAGAIN/-ENOMEM: try later; anything else, e.g. -ENOSYS under a seccomp
 * filter, -EACCES, -EBUSY, -EOPNOTSUPP: this cgroup cannot be used, start
 * the child without it).  Other steps: the child exited before exec.
 * -ENOSYS on an architecture without the vfork trampoline (x86-64 and
 * arm64 have it). */
int hum_cgroup_spawn(const hum_cgroup_exec *x, pid_t *pid, int *step);

/* A supervisor's cgroups (sup_cgroup_* in sup_priv.h; loop thread).  dir
 * and rel are fixed once set up, before any other thread exists: the sweep
 * worker and the sentinel read them without a lock. */
typedef struct hum_cgroups {
	int top_fd;          /* the top's directory; -1: none */
	bool placing;        /* new runs go into cgroups (false once a spawn
			      * found them unusable: runs placed before keep
			      * theirs) */
	char dir[PATH_MAX];  /* the top, absolute ("" without one) */
	char rel[PATH_MAX];  /* the top as /proc/PID/cgroup names it */
	/* cgroups to remove once empty: an inotify watch on each one's
	 * cgroup.events (modified when "populated" changes).  As many as runs
	 * whose leftovers still live; none is dropped (at worst, when a watch
	 * cannot be added, the cgroup waits for hum's exit). */
	int ino_fd;
	ev_io ino_w;
	struct hum_cg_pending { int wd; uint32_t id, run; } *pending;
	size_t npending, pending_cap;
} hum_cgroups;

#endif

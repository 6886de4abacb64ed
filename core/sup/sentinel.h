/*
 * sentinel.h — nothing hum started survives hum, even after kill -9.
 *
 * Every child hum spawns carries HUM_TOKEN=<instance>.<proc id>.<run> in its
 * environment, inherited by all its descendants, whatever sessions or
 * process groups they move to.  Two mechanisms use it:
 *
 *  - The sentinel: a tiny process forked by hum_sup_new (before hum grows),
 *    in its own session, ignoring terminal and termination signals, holding
 *    only the read end of a pipe whose write end only hum holds (CLOEXEC, so
 *    no child inherits it).  hum writes each new process group id to it, and
 *    a "forget" record as soon as the group's leader is reaped (after that
 *    the id may be recycled; what is left of the group is found by token).
 *    When the pipe reaches EOF — hum exited or was killed, even with
 *    SIGKILL — the sentinel, in this order: kills the recorded groups'
 *    sessions and every descendant of their members (lineage.h: the set is
 *    computed before the first kill), writes cgroup.kill of hum's cgroup
 *    (cgroup.h) when runs were placed in cgroups, SIGKILLs every recorded
 *    group, scans /proc/<pid>/environ for the instance's token prefix and
 *    SIGKILLs those processes, repeating the scan until it finds none, and
 *    last waits (5 s at most) for the cgroups to empty and removes them;
 *    then it exits.
 *  - The token scan on stop (reap.c): descendants that left the group are
 *    found the same way and signalled.
 *
 * Limit of the token alone: a descendant that both left the process group
 * (setsid/setpgid) and rewrote or cleared its environment block (or one
 * that a setuid binary made unreadable to us) escapes it.  Those are found
 * by cgroup (cgroup.h) where hum can create cgroups, else by session and
 * parentage as lineage.h says, with the limits the README's "Containment"
 * lists.  A process stopped with SIGSTOP is still killed (SIGKILL needs no
 * cooperation).
 *
 * Everything the sentinel runs after fork is a raw system call on stack or
 * static memory (no malloc, no stdio), so forking from a multi-threaded hum
 * is safe.
 */
#ifndef HUM_SENTINEL_H
#define HUM_SENTINEL_H

#include <stddef.h>
#include <sys/types.h>

typedef struct hum_sentinel {
	pid_t pid; /* 0 when not running */
	int fd;    /* write end, O_NONBLOCK|O_CLOEXEC; -1 when closed */
	/* Set before start when runs go into cgroups (cgroup.h): the
	 * directory of hum's cgroup, which the sentinel kills and removes.
	 * NULL: none. */
	const char *cgroup;
} hum_sentinel;

/* Forks the sentinel for the token prefix (e.g. "1234-18c0a.."); 0 or -errno. */
int hum_sentinel_start(hum_sentinel *s, const char *prefix);
/* Records a group to kill / a group whose leader was reaped.  0 or -errno (-EAGAIN: the
 * pipe is full; the token scan still covers the group). */
int hum_sentinel_add(hum_sentinel *s, pid_t pgid);
int hum_sentinel_forget(hum_sentinel *s, pid_t pgid);
/* Graceful shutdown: hum has killed everything itself; the sentinel skips
 * the group kills (their ids may be recycled soon) but still scans. */
int hum_sentinel_disarm(hum_sentinel *s);
/* Closes the pipe and waits for the sentinel to finish its sweep. */
void hum_sentinel_stop(hum_sentinel *s);

/* Calls fn(pid, value, len, ud) for every other process whose environment
 * holds HUM_TOKEN=value with value starting with prefix; fn returns non-zero
 * to stop.  Returns the number of matches, or -errno if /proc cannot be
 * read.  Raw syscalls only (usable in the sentinel). */
typedef int (*hum_token_fn)(pid_t pid, const char *value, size_t len, void *ud);
int hum_token_scan(const char *prefix, hum_token_fn fn, void *ud);
/* The same, looking only at pids in the cyclic range lo..hi (lo > hi: the
 * range wraps past pid_max; lo == 0: every pid). */
int hum_token_scan_range(const char *prefix, pid_t lo, pid_t hi, hum_token_fn fn, void *ud);
/* The value of pid's HUM_TOKEN into val (NUL terminated): its length, or
 * -errno (-ENOENT: none, or longer than len - 1). */
int hum_token_of(pid_t pid, char *val, size_t len);
/* Sends sig to pid if it still carries HUM_TOKEN=value: the check and the
 * signal go through a pidfd, so a pid recycled in between is never hit.
 * 0 or -errno. */
int hum_token_kill(pid_t pid, const char *value, size_t len, int sig);
/* A pidfd (close-on-exec) for pid if it carries HUM_TOKEN=value, checked
 * while the pidfd is held, so the pidfd names that process even if the pid
 * is recycled later; -errno otherwise (-ENOSYS: no pidfds, Linux < 5.3). */
int hum_token_pidfd(pid_t pid, const char *value, size_t len);

#endif

/*
 * lineage.h — descendants found by session and parentage, for when cgroups
 * are not writable (cgroup.h): /proc/PID/stat's parent, group and session.
 *
 * What they tell, and the rules hum draws from them:
 *  - Session.  Every run starts in a session of its own whose id is the
 *    main pid (launch.c), and a process can leave a session only for a new
 *    one of its own (setsid) — never join another.  So a process in a run's
 *    session belongs to that run, whatever its group and environment
 *    (setpgid + env -i).  The id stays reserved while any member lives, so
 *    it is trusted while fewer than half of pid_max pids were handed out
 *    since the run began (the sweep's bound, sweep.c).
 *  - Parentage.  hum is a child subreaper: a descendant whose parent dies
 *    is re-parented to hum.  A child of hum outside hum's own session is
 *    something a run or a job left (hum's own direct children — io.popen,
 *    os.execute — share its session, the sentinel is known).  Which run it
 *    came from is not recorded anywhere once it left its session and its
 *    environment: it belongs to hum as a whole, and is killed, with all of
 *    its descendants, when hum exits.
 *  - The sentinel (after kill -9 of hum) kills the sessions of the groups
 *    hum recorded and every descendant of their members, computed before
 *    the first kill (a kill re-parents the children to init).
 *
 * Every function here uses raw system calls on stack or static memory (no
 * malloc, no stdio), so the sentinel may call them after fork.
 */
#ifndef HUM_LINEAGE_H
#define HUM_LINEAGE_H

#include <stdint.h>
#include <sys/types.h>

typedef struct hum_kin {
	pid_t pid, ppid, pgid, sid;
	char state; /* 'R', 'S', 'Z', ... */
} hum_kin;

/* "/proc/<pid>/<file>" into buf (file: at most 24 bytes); returns buf. */
char *hum_lineage_path(char buf[static 48], pid_t pid, const char *file);
/* /proc/<pid>/stat: 0 or -errno. */
int hum_lineage_stat(pid_t pid, hum_kin *k);
/* Calls fn(procfd, name, pid, ud) for every pid directory under /proc in
 * the cyclic range lo..hi (lo > hi: it wraps past pid_max; lo 0: every
 * pid), except this process; fn returns non-zero to stop.  The number of
 * pids visited, or -errno if /proc cannot be read. */
int hum_lineage_each(pid_t lo, pid_t hi, int (*fn)(int procfd, const char *name, pid_t pid, void *ud),
		     void *ud);
/* sig to pid through a pidfd if its stat, read after the pidfd was opened
 * (so it is the same process), satisfies ok(k, ud).  0, or -errno (-ESRCH:
 * gone or no longer satisfying ok). */
int hum_lineage_kill(pid_t pid, int (*ok)(const hum_kin *k, void *ud), void *ud, int sig);
/* hum's exit without cgroups: SIGKILL to every child of `self` outside its
 * session except `spare` (the sentinel), pass after pass (a killed one's
 * children are re-parented to self, a subreaper) until a pass finds none
 * or `timeout` seconds pass.  The number killed. */
int hum_lineage_kill_escaped(pid_t self, pid_t spare, double timeout);
/* The sentinel: SIGKILL to every process whose session is set in the
 * bitmap `sessions` (bit N: session N, N < limit) and to every descendant
 * of those, the whole set computed and each member pinned by a pidfd
 * before the first kill.  The number killed. */
int hum_lineage_kill_sessions(const uint64_t *sessions, uint32_t limit);

#endif

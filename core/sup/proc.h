/*
 * proc.h — the supervisor: spawn, capture, stop, restart, reap.
 *
 * Everything here runs on the loop thread (the libev default loop, because
 * ev_child only works there).  A hum_proc is the mutable record of one
 * process: its spec, its libev watchers (embedded), pid/pgid and timers.  Its
 * observable state is the immutable snapshot in its store entry; every state
 * change builds a new snapshot and publishes it (store.h).
 *
 * Output: stdout/stderr come through non-blocking CLOEXEC pipes, are split
 * into lines here (partial last line flushed at EOF, lines over HUM_LINE_MAX
 * split and marked HUM_LINE_CONT) and appended to the entry's log ring, one
 * commit per read batch.  When the child exits, its pipes are drained before
 * the final state is published; if a descendant keeps a pipe open, the pipe
 * stays watched until EOF or until the group is killed.
 *
 * Stop: stop_signal to the whole process group, then SIGKILL to the group
 * after `grace`; descendants that left the group are found through the
 * run's cgroup where hum can create cgroups (cgroup.h), through the
 * HUM_TOKEN environment marker (sentinel.h), and without cgroups through
 * the run's session (lineage.h), and get the same signals.
 */
#ifndef HUM_PROC_H
#define HUM_PROC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <ev.h>

#include "state/store.h"

typedef struct hum_sup hum_sup;
typedef struct hum_proc hum_proc;

enum { HUM_RESTART_NO = 0, HUM_RESTART_ON_FAILURE, HUM_RESTART_ALWAYS };

typedef struct hum_restart {
	int policy;          /* HUM_RESTART_* */
	int max;             /* restarts allowed; < 0 = unlimited */
	double initial;      /* first backoff delay, seconds (0 allowed) */
	double cap;          /* backoff doubles up to this */
	double reset_after;  /* up this long => backoff and restart count reset */
} hum_restart;

typedef struct hum_spec {
	char *const *argv;   /* NULL terminated argv, or NULL when shell is set */
	const char *shell;   /* string run as /bin/sh -c shell */
	const char *cwd;     /* NULL: hum's cwd */
	char *const *env;    /* complete environment; NULL: inherit hum's */
	int stop_signal;     /* 0: SIGTERM */
	double grace;        /* seconds before SIGKILL; < 0: 5; 0: SIGKILL at once */
	hum_restart restart;
	int kind;            /* hum_kind */
	const char *groups;  /* comma separated, may be NULL */
	const char *base;    /* a replica: the definition's name, and the
	                      * process's name is "<base>.<something>"
	                      * (state/select.h); NULL or "": not a replica */
} hum_spec;

typedef struct hum_sup_hooks {
	/* After every published state change of p (old may equal NULL at add). */
	void (*state)(hum_proc *p, const hum_snap *old, const hum_snap *now, void *ud);
	/* After each committed batch of lines of p (pointers valid during the call). */
	void (*lines)(hum_proc *p, const hum_line *lines, size_t n, void *ud);
	/* Optional: a failure or an escalation worth telling the user, e.g.
	 * "exec: No such file or directory", "still running 5s after SIGTERM:
	 * sending SIGKILL".  p is NULL for the supervisor's own (sentinel,
	 * /proc).  NULL: printed to stderr as "hum: <name>: <msg>". */
	void (*log)(hum_proc *p, const char *msg, void *ud);
	/* Optional: p is about to be retired by hum_sup_remove (its final
	 * state was published before); p's id names no process afterwards. */
	void (*removed)(hum_proc *p, void *ud);
} hum_sup_hooks;

/* loop must be the default loop.  The supervisor becomes a child subreaper. */
hum_sup *hum_sup_new(struct ev_loop *loop, hum_store *st,
		     const hum_sup_hooks *hooks, void *ud);
/* Kills every group with SIGKILL, reaps, frees every record. */
void hum_sup_free(hum_sup *s);

/* Registers a process in state `pending` with reason "not started".  The spec
 * is deep-copied.  Returns NULL with *err = -EEXIST / -EINVAL (also: a base
 * that is not the start of name followed by '.') / -ENOMEM. */
hum_proc *hum_sup_add(hum_sup *s, const char *name, const hum_spec *spec, int *err);
hum_proc *hum_sup_get(hum_sup *s, uint32_t id);
/* Removes p: stops it (as hum_proc_stop) if a run is live, and once the run
 * is over — main pid reaped, final state published, pipes at EOF — calls
 * the removed hook and retires p's store entry (readers holding it keep it
 * until their section ends; a follower of its log sees it gone).  p must
 * not be used by the caller afterwards, and its id never names another
 * process.  Retirement happens on a later loop iteration, or at once when
 * nothing runs.  0, or -EALREADY if removal was already asked for. */
int hum_sup_remove(hum_sup *s, hum_proc *p);
/* Whether p was registered with a spec equal to `spec` (every field that
 * changes how it runs: argv or shell, cwd, env, stop signal, grace, restart
 * policy, kind, groups, replica base), after the same defaults hum_sup_add
 * applies (grace < 0 is 5, stop signal 0 is SIGTERM).  What live reload
 * asks before it keeps a running process. */
bool hum_proc_spec_equal(const hum_proc *p, const hum_spec *spec);
hum_proc *hum_sup_find(hum_sup *s, const char *name);
void hum_sup_foreach(hum_sup *s, int (*fn)(hum_proc *p, void *ud), void *ud);
/* Number of processes with a live pid or an open pipe. */
size_t hum_sup_active(hum_sup *s);
/* SIGKILL to every group now (second Ctrl-C). */
void hum_sup_kill_all(hum_sup *s);

/* For children started outside the supervisor (exec.c instead gives each job
 * a token of its own, <prefix>0.<job>, to sweep its leftovers by), so
 * they cannot outlive hum either: put hum_sup_token() ("HUM_TOKEN=<this
 * instance>.0.0") in their environment — descendants that leave the group
 * are then found by the sentinel and by hum_sup_free/kill_all — and guard
 * their process group while its leader lives (unguard when you reap the
 * leader: the id may be recycled after that).  0 or -errno. */
const char *hum_sup_token(hum_sup *s);
int hum_sup_guard_group(hum_sup *s, pid_t pgid);
int hum_sup_unguard_group(hum_sup *s, pid_t pgid);

/* Control (0 or -errno).  start: spawn now unless already running; a spawn
 * error publishes state failed with spawn_error=1 and reason "<call>: <errno
 * text>" and returns the -errno.  stop: cancels a pending restart; the state
 * ends as `stopped`.  restart: stop, then start once exited. */
int hum_proc_start(hum_proc *p);
int hum_proc_stop(hum_proc *p);
int hum_proc_restart(hum_proc *p);
int hum_proc_signal(hum_proc *p, int sig);
/* State set from outside the supervisor (Lua gating and probes). */
int hum_proc_set_pending(hum_proc *p, const char *reason);
int hum_proc_set_ready(hum_proc *p); /* running -> ready */
int hum_proc_set_reason(hum_proc *p, const char *reason);
/* Stops reading p's pipes (of every run, including pipes a new run opens)
 * or reads them again.  While paused the child blocks once its pipe is full,
 * as behind a slow terminal; nothing is lost.  For a consumer of the lines
 * hook that is bounded (the Lua event queue).  Pipes are still drained when
 * the main process exits, so a final state never waits for the consumer. */
void hum_proc_pause_output(hum_proc *p, bool pause);

uint32_t hum_proc_id(const hum_proc *p);
const char *hum_proc_name(const hum_proc *p);
const hum_snap *hum_proc_snap(const hum_proc *p); /* writer: no section needed */
hum_entry *hum_proc_entry(hum_proc *p);
void *hum_proc_udata(const hum_proc *p);
void hum_proc_set_udata(hum_proc *p, void *ud);

#endif

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
 * Stop: a process is its whole run — its group and every descendant that
 * carries the run's HUM_TOKEN (sentinel.h), also one that left the group;
 * where hum can create cgroups every process of the run's cgroup
 * (cgroup.h), and without cgroups the run's session (lineage.h).
 * stop_signal goes to all of it; whatever is still there after `grace` gets
 * SIGKILL, also when the main process exited in between (what remained
 * keeps the rest of the grace; the state stays `stopping` until nothing
 * remains).  Remaining processes — what outlives a main process that exits
 * by itself — are counted and shown in the snapshot (`remaining`,
 * `remaining_pids`; remain.c), and a stop of the finished run gives them the
 * stop signal and the grace.  A main process stopped by a signal shows as
 * `paused`.
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
/* The process whose id is `id` (hum_proc_id), or NULL: none was given it,
 * or it was removed (hum_sup_remove). */
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
/* Number of processes with a live pid, an open pipe, or a stop or a count
 * of remaining processes still being finished (remaining processes that
 * hold no pipe do not count: they show in the snapshot). */
size_t hum_sup_active(hum_sup *s);
/* SIGKILL to every group now (second Ctrl-C). */
void hum_sup_kill_all(hum_sup *s);
/* pause: SIGSTOP to the group of every live main process that is neither
 * paused already nor stopping; !pause: SIGCONT to the groups an earlier
 * call stopped.  Returns how many groups it signalled.  (SIGTSTP to hum:
 * the whole environment is suspended with it.) */
size_t hum_sup_pause_all(hum_sup *s, bool pause);

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

/* Control (0 or -errno).  start: spawn now unless already running (what
 * remains of the previous run is killed first; while a run is being
 * stopped: once it is over); with the start gate closed, -EAGAIN and
 * `pending` instead (hum_proc_set_gate); a spawn error publishes state
 * failed with spawn_error=1 and reason "<call>: <errno text>" and returns
 * the -errno — except a lack of descriptors, memory or processes
 * (hum_spawn_transient), which publishes `backoff` with reason "cannot spawn
 * now: <call>: <errno text> (retry N in Xs)", returns 0 and is spawned
 * again later (0.1 s doubling to 5 s) until it works or is stopped.  stop:
 * cancels a pending restart or retry; a live run ends as `stopped` once all
 * of it is gone; a finished run keeps its outcome and its remaining
 * processes get the stop signal and the grace.  restart: stop, then start
 * once the whole old run is gone. */
int hum_proc_start(hum_proc *p);
int hum_proc_stop(hum_proc *p);
int hum_proc_restart(hum_proc *p);
int hum_proc_signal(hum_proc *p, int sig);
/* The start gate ("may start", decided by Lua's dependency gating): while
 * it is closed no run of p begins, whatever asks for it — hum_proc_start,
 * hum_proc_restart, a restart by policy when its backoff ends, a restart
 * after a stop.  Such a start is deferred instead: p is published `pending`
 * with the gate's reason ("waiting for cache (ready)") and the next
 * hum_proc_start carries it out (a deferred policy restart keeps counting
 * as one: `restarts` + 1, the policy's attempts kept).  reason NULL opens
 * the gate (it does not start anything by itself); a closed gate is never
 * opened by running out of memory.  Open at registration.  0 or -ENOMEM
 * (the gate is then closed with a generic reason). */
int hum_proc_set_gate(hum_proc *p, const char *reason);
/* Ends the current run as a failure (a liveness probe gave up): the stop
 * signal and grace as for hum_proc_stop, then the exit goes through the
 * restart policy like any failure — backoff, `max`, the reason naming
 * `why`.  A liveness probe asks for restarts, so policy "no" counts as
 * "on-failure" here.  A hum_proc_stop or restart meanwhile wins (the run
 * then ends stopped).  0, or -ESRCH when no run is live. */
int hum_proc_fail(hum_proc *p, const char *why);
/* State set from outside the supervisor (Lua gating and probes). */
int hum_proc_set_pending(hum_proc *p, const char *reason);
int hum_proc_set_ready(hum_proc *p); /* running -> ready */
/* A snapshot's `ready` flag is derived from its state when published
 * (ready iff state is `ready`): stopping, stopped, backoff and failed are
 * never ready, whatever the flag of the snapshot they were cloned from. */
int hum_proc_set_reason(hum_proc *p, const char *reason);
/* Stops reading p's pipes (of every run, including pipes a new run opens)
 * or reads them again.  While paused the child blocks once its pipe is full,
 * as behind a slow terminal; nothing is lost.  For a consumer of the lines
 * hook that is bounded (the Lua event queue).  Pipes are still drained when
 * the main process exits, so a final state never waits for the consumer. */
void hum_proc_pause_output(hum_proc *p, bool pause);
/* The same for every process at once, those added later included: for a
 * consumer of every process's lines (the foreground printer behind a slow
 * terminal).  Independent of hum_proc_pause_output: a pipe is read when
 * neither pauses it. */
void hum_sup_pause_output(hum_sup *s, bool pause);

uint32_t hum_proc_id(const hum_proc *p);
const char *hum_proc_name(const hum_proc *p);
const hum_snap *hum_proc_snap(const hum_proc *p); /* writer: no section needed */
hum_entry *hum_proc_entry(hum_proc *p);
void *hum_proc_udata(const hum_proc *p);
void hum_proc_set_udata(hum_proc *p, void *ud);

#endif

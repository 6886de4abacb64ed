/*
 * sup_priv.h — what the supervisor's files share; not a public API.
 *
 *   proc.c     process records, the state machine's publishing, the control
 *              API of proc.h, spawning a run
 *   proc_gate.c    the start gate (hum_proc_set_gate)
 *   proc_remove.c  removal (hum_sup_remove): retiring a record once its run
 *              is over
 *   proc_spec.c    a spec's defaults, spec equality (hum_proc_spec_equal)
 *   capture.c  a run's pipes: reading, splitting into lines, the log ring
 *   reap.c     child exits, the pid map, stop escalation (grace, SIGKILL),
 *              restart back-off, killing a run's group
 *   sweep.c    the token-sweep worker thread (descendants that left the group)
 *   exec.c     one-shot children (hum.exec, exec probes): job N carries the
 *              token <prefix>0.N and is swept with sup_scan_job
 *   remain.c   remaining processes: what is left of a run after its main
 *              process exited (counted by sweeps, watched through pidfds)
 *   cgroup_find.c   a cgroup per run and per job (cgroup v2 where
 *              writable): where cgroup2 and hum are, membership, the top
 *   cgroup_spawn.c  a child created inside its run's cgroup (clone3)
 *   cgroup_kill.c   the sweep requests signal a run's cgroup first, a
 *              run's end removes it, the top's end
 *   cgroup_fs.c     the cgroupfs helpers those three share
 *   lineage.c  session and parentage, where there are no cgroups
 *   outfmt.c   the foreground line format (timestamp, name column, colours,
 *              marks) that output.c's printer writes with
 *
 * Functions here are named sup_<verb> (no hum_ prefix: they are not API).
 * Everything is loop thread only, except what sweep.c says of its worker.
 */
#ifndef HUM_SUP_PRIV_H
#define HUM_SUP_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "cgroup.h"
#include "lines.h"
#include "output.h"
#include "proc.h"
#include "sentinel.h"

#define PIDMAP_SIZE 1024 /* buckets of the pid -> record map (power of two) */

/* Why a run starts: also the value of hum_proc.restart_after.  WHY_RETRY:
 * again after a spawn that failed for lack of a resource (not a restart). */
enum { WHY_NONE = 0, WHY_START, WHY_RESTART, WHY_POLICY, WHY_RETRY };

/* Delays before a spawn that failed for lack of a resource is tried again
 * (proc.c, retry_spawn): seconds, doubling from the first up to the cap. */
#define SPAWN_RETRY_FIRST 0.1
#define SPAWN_RETRY_CAP 5.0

/* One pipe being read.  A stream belongs to one run of one process; when a
 * new run starts while a descendant of the old one still holds its pipe,
 * the old stream stays open (its lines still go to the same process's log)
 * until EOF. */
typedef struct hum_stream {
	ev_io io;                        /* first member: the callback's argument */
	hum_proc *p;
	struct hum_stream *next, *prev;  /* hum_sup.streams: every open pipe */
	hum_lbuf lb;
	uint8_t kind;                    /* HUM_STREAM_OUT / HUM_STREAM_ERR */
} hum_stream;

/* What the loop does once a sweep request has been swept. */
enum {
	AFTER_NONE = 0,
	AFTER_FINISH,  /* publish p's final state (sup_reap_finish) */
	AFTER_COUNT,   /* sig is 0: count the carriers, hand over pidfds of
			* the first HUM_SNAP_PIDS (sup_remain_counted) */
};

/* A pending token sweep: signal every process carrying the token of run
 * `run` (0: any run) of process `id`; id 0 and run 0: every token of ours;
 * id 0 and run N: exec job N (exec.c); or, with AFTER_COUNT, count them. */
typedef struct hum_scan_req {
	uint32_t id, run;
	int sig;
	uint8_t after;   /* AFTER_* */
	pid_t skip_pgid; /* members of this group had sig already (0: none) */
	pid_t floor;     /* the run's first pid: its descendants' pids follow
			  * it (cyclically); 0: unknown, scan every pid */
	uint64_t forks;  /* forks on the machine before the run started */
	/* AFTER_COUNT results, filled by the worker: the carriers found, and
	 * the first tops among them (whose parent is not a carrier of the
	 * run; 0-filled) with a pidfd for each (verified against the token
	 * while held, so it names that process; -1: none).  The pidfds belong
	 * to the request until the loop takes them (sup_remain_counted) or
	 * closes them (sup_scan_req_release). */
	uint32_t found;
	pid_t pids[HUM_SNAP_PIDS];
	int pidfds[HUM_SNAP_PIDS];
	bool cg;         /* the run is in its cgroup, which had sig already:
			  * carriers in it are skipped (sig != SIGKILL) */
	pid_t sid;       /* no cgroup: the run's session, whose members get
			  * sig too (lineage.h); 0: none */
} hum_scan_req;

/* One watched remaining process: its pidfd becomes readable when it exits. */
typedef struct hum_remain_w {
	ev_io io; /* first member: the callback's argument; fd -1 when idle */
	hum_proc *p;
} hum_remain_w;

/* The token-sweep worker (sweep.c).  q, done, err, lost, busy, quit: guarded
 * by mu; started, nothread and the watcher: loop thread only. */
typedef struct hum_sweeper {
	pthread_mutex_t mu;
	pthread_cond_t cv;
	pthread_t thread;
	hum_scan_req *q, *done;  /* queued; swept, waiting for the loop */
	size_t nq, qcap, ndone, done_cap;
	int err;                 /* errno of a failed /proc pass, for the log */
	bool lost;               /* a request was lost to ENOMEM */
	bool busy, quit, started, nothread;
	ev_async done_w;         /* worker -> loop: a batch is swept */
	pid_t pid_max;           /* /proc/sys/kernel/pid_max; 0: scan every pid */
} hum_sweeper;

struct hum_proc {
	hum_sup *sup;
	hum_entry *entry;
	uint32_t id;
	/* spec (deep copies) */
	char **argv, *shell, *cwd, **env, *groups;
	int stop_signal, kind;
	double grace;
	hum_restart restart;
	/* the current or last run */
	pid_t pid;           /* live main process, 0 once reaped */
	pid_t pgid;          /* its group (== its pid); kill(-pgid) only while
				* pid != 0 or right at its reap (reap.c) */
	uint32_t run;        /* runs so far; part of the token */
	hum_proc *pid_next;  /* pid map chain while pid != 0 */
	ev_io exit_w;        /* a pidfd of the main process once its last pipe
			      * closed, until reaped (fd -1: none) */
	hum_stream *out, *err; /* this run's pipes while open */
	unsigned nstreams;   /* open pipes of any run */
	ev_timer grace_timer, backoff_timer;
	double started_mono;
	uint64_t forks0;     /* sup_total_forks() before this run's spawn */
	unsigned attempts;   /* policy restarts since the last reset */
	unsigned spawn_retries; /* spawns in a row that failed for lack of a
				 * resource (the backoff timer retries them) */
	uint32_t restarts;   /* every restart ever (policy and manual) */
	int wstatus;         /* exit status kept for a deferred final state */
	uint8_t stopping;    /* stop requested for this run */
	uint8_t killed;      /* SIGKILL sent: 1 when the grace ran out, 2 at once */
	uint8_t restart_after; /* WHY_*: start again once this run is over */
	uint8_t finish_pending; /* exited; final state waits for a sweep */
	uint8_t cleaned;     /* this run's leftovers were killed (or none) */
	uint8_t output_paused; /* hum_proc_pause_output: pipes not watched */
	uint8_t removing;    /* hum_sup_remove: retire once the run is over */
	uint8_t failing;     /* hum_proc_fail: this run's end is a failure for
				* the restart policy, not a stop */
	uint8_t deferred;    /* WHY_*: a start the closed gate held back */
	char *gate;          /* NULL: may start; else why not (hum_proc_set_gate) */
	char fail_why[160];  /* hum_proc_fail's reason for this run */
	uint8_t suspended;   /* hum_sup_pause_all stopped its group */
	/* Remaining processes (remain.c): what is left of the run once its
	 * main process exited.  nremain: the last count; remain_pids: the
	 * tops of what remains (0-filled); watch: a pidfd for each top. */
	uint8_t count_queued; /* a count sweep for this run is on its way */
	uint8_t leftover_stop; /* a finished run's remaining processes had the
				* stop signal; the grace timer runs */
	uint8_t killed_remaining; /* the grace ran out for what remained after
				   * the main process exited: SIGKILL */
	uint8_t group_left;  /* members of the group were alive when the
			      * main process was reaped during a stop */
	uint32_t nremain;
	pid_t remain_pids[HUM_SNAP_PIDS];
	hum_remain_w watch[HUM_SNAP_PIDS];
	unsigned nwatch;
	ev_timer recount_timer; /* the next count: to confirm a 0, or every
				 * second without pidfds */
	uint8_t zero_counts;  /* consecutive counts that found nothing */
	char end_reason[320]; /* the run's end without the remaining suffix */
	uint8_t cg;          /* this run was started in its cgroup (cgroup_spawn.c):
			      * 1, 2 once the run's end released it; 0: not */
	char *base;          /* replica base ("" if none): for spec equality */
	void *udata;
};

struct hum_sup {
	struct ev_loop *loop;
	hum_store *st;
	hum_sup_hooks hooks;
	void *ud;
	ev_child child_w;    /* pid 0: every child, including adopted orphans */
	hum_proc **procs;    /* by id (ids only grow: appended in order) */
	size_t nprocs, procs_cap;
	hum_proc *pidmap[PIDMAP_SIZE];
	hum_stream *streams;
	char *scratch;       /* HUM_LBUF_SCRATCH bytes: every pipe reads here */
	hum_line *lines;     /* HUM_LBUF_MAX_LINES: one batch */
	char prefix[64];     /* "<hum pid>-<start ms hex>-<n>." */
	char token[96];      /* "HUM_TOKEN=<prefix>0.0": for other spawners */
	hum_sentinel sentinel;
	hum_sweeper sweeper;
	hum_cgroups cg;
	ev_prepare retire_w; /* active while a removal waits for its run's end */
	size_t nremoving;
	bool freeing;
	bool output_paused;  /* hum_sup_pause_output: no pipe is watched */
};

/* proc.c */
int64_t sup_now_ms(void);
double sup_mono(void);
void sup_log(hum_sup *s, hum_proc *p, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
hum_snap *sup_proc_next(hum_proc *p, const char *reason); /* NULL: ENOMEM, logged */
void sup_proc_publish(hum_proc *p, hum_snap *n);
int sup_proc_spawn(hum_proc *p, int why);
/* Frees p and its spec copies (its store entry is the caller's). */
void sup_proc_free(hum_proc *p);
/* A new snapshot of p with only its state (and reason) changed, published. */
void sup_set_state(hum_proc *p, int state, const char *reason);

/* proc_gate.c */
void sup_gate_free(hum_proc *p); /* opens p's gate, freeing its reason */

/* proc_remove.c */
/* hum_sup.retire_w's callback: retires every removed record whose run is
 * over; stops itself once no removal waits. */
void sup_retire_cb(struct ev_loop *loop, ev_prepare *w, int revents);

/* proc_spec.c: the defaults hum_sup_add applies, in one place for add and
 * equality (stop signal 0: SIGTERM; grace < 0: 5 s; backoff initial < 0:
 * 0, cap below initial: initial). */
int sup_norm_signal(const hum_spec *sp);
double sup_norm_grace(const hum_spec *sp);
hum_restart sup_norm_restart(const hum_spec *sp);

/* reap.c */
void sup_reap_init(hum_sup *s);
void sup_reap_fini(hum_sup *s);
void sup_pidmap_add(hum_sup *s, hum_proc *p);
/* An exit watch: w (initialised with sup_exit_init) follows pid through a
 * pidfd and, once pid exited, reaps at once through libev's SIGCHLD path,
 * so that no exit waits on the signal alone (reap.c, "exit watches").
 * false without a pidfd (Linux < 5.3, out of descriptors): the signal
 * still reaps, nothing is lost.  True if w watches already.
 * sup_exit_unwatch stops it and closes the pidfd. */
void sup_exit_init(ev_io *w);
bool sup_exit_watch(struct ev_loop *loop, ev_io *w, pid_t pid);
void sup_exit_unwatch(struct ev_loop *loop, ev_io *w);
void sup_kill_group(hum_proc *p, int sig);
void sup_cleanup_run(hum_proc *p); /* SIGKILL the run's token carriers */
void sup_reap_finish(hum_proc *p); /* the final state of a stopped run */
bool sup_group_reserved(hum_proc *p); /* kill(-pgid) after the reap is safe */
void sup_grace_cb(struct ev_loop *loop, ev_timer *w, int revents);
void sup_backoff_cb(struct ev_loop *loop, ev_timer *w, int revents);
const char *sup_signame(int sig, char *buf, size_t len);
/* "exited with code 3", "killed by SIGKILL" for a wait status. */
void sup_describe(int status, char *buf, size_t len);

/* sweep.c */
void sup_sweeper_init(hum_sup *s);
void sup_sweeper_stop(hum_sup *s); /* join the worker (hum_sup_free) */
void sup_sweeper_fini(hum_sup *s);
/* Queues a sweep: sig to the carriers of p's current run (p NULL: of every
 * run of every process), except members of skip_pgid (0: none); after:
 * what the loop does once it is swept (AFTER_*). */
void sup_scan_request(hum_sup *s, hum_proc *p, int sig, int after, pid_t skip_pgid);
/* Closes the pidfds a swept request still holds. */
void sup_scan_req_release(hum_scan_req *r);

/* remain.c */
void sup_remain_init(hum_proc *p);
/* Counts the remaining processes of p's current run (a sweep; the result
 * comes to sup_remain_counted).  At most one count is queued per run. */
void sup_remain_count(hum_proc *p);
void sup_remain_counted(hum_proc *p, hum_scan_req *r); /* takes r's pidfds */
/* Stops watching (pidfds closed, recount timer stopped); the count stays. */
void sup_remain_unwatch(hum_proc *p);
/* A new run, a removal, or the end: forget the previous run's remaining
 * processes (after they were killed) and any stop of them in progress. */
void sup_remain_reset(hum_proc *p);
/* Sets the remaining fields of snapshot n from p (count and pids). */
void sup_remain_fill(const hum_proc *p, hum_snap *n);
/* "<base>; 2 processes remain (pids 10, 11)" into buf (base alone if none). */
void sup_remain_reason(const hum_proc *p, const char *base, char *buf, size_t len);
/* A finished run's remaining processes: the stop signal (group while its id
 * is provably the run's, and by token), SIGKILL after the grace.  0. */
int sup_remain_stop(hum_proc *p);
/* SIGKILL to what remains now (grace over, kill_all); during a stop whose
 * main process exited, `stopped` is published after that sweep. */
void sup_remain_kill(hum_proc *p);
/* Queues a sweep: sig to the carriers of exec job `job`'s token (job 0:
 * nothing), started as pid after forks0 forks (0: unknown). */
void sup_scan_job(hum_sup *s, uint32_t job, int sig, pid_t pid, uint64_t forks0);
uint64_t sup_total_forks(void); /* /proc/stat "processes"; 0 if unknown */

/* cgroup_*.c (loop thread, except sup_cgroup_holds_run and cgroup_fs.c) */
/* cgroup_find.c */
void sup_cgroup_init(hum_sup *s);  /* before the sentinel starts */
/* Any thread: whether pid is in the cgroup of run `run` of `id`. */
bool sup_cgroup_holds_run(const hum_sup *s, uint32_t id, uint32_t run, pid_t pid);
/* cgroup_spawn.c */
/* A new cgroup for run `run` of `id` (0: an exec job): its directory fd
 * (> 2) for hum_spawn_req.cgroup_fd, or 0 when runs are not placed. */
int sup_cgroup_open(hum_sup *s, uint32_t id, uint32_t run);
/* After the spawn: closes fd, turns placement off if the spawn found the
 * cgroup unusable (cg_err), removes it if nothing runs in it.  Whether the
 * run is in its cgroup. */
bool sup_cgroup_spawned(hum_sup *s, uint32_t id, uint32_t run, int fd, bool started, int cg_err);
/* cgroup_kill.c */
void sup_cgroup_fini(hum_sup *s);  /* kills what is left, removes them all */
/* sig to the run's cgroup (id 0 and run 0: to all), except members of
 * skip_pgid, then SIGCONT; SIGKILL through cgroup.kill.  No /proc pass:
 * the kernel lists the members.  Nothing if there is no such cgroup. */
void sup_cgroup_signal(hum_sup *s, uint32_t id, uint32_t run, int sig, pid_t skip_pgid);
/* The run is over: remove its cgroup now if empty, else once it empties. */
void sup_cgroup_release(hum_sup *s, uint32_t id, uint32_t run);
/* The removal watch's callback (started by sup_cgroup_init): a watched
 * cgroup.events changed, or the inotify queue overflowed. */
void sup_cgroup_ino_cb(struct ev_loop *loop, ev_io *w, int revents);
/* cgroup_fs.c: any thread.  sup_open_retry, sup_read_file and sup_join are
 * async-signal-safe (raw system calls on the caller's memory: no malloc,
 * no stdio, no locks), because the hum_cgroup_* operations built on them
 * run in the sentinel after fork (cgroup.h). */
int sup_open_retry(int dirfd, const char *path, int flags); /* openat, O_CLOEXEC, EINTR retried */
/* Reads up to len-1 bytes of a small file (NUL terminated); length or -errno. */
ssize_t sup_read_file(int dirfd, const char *path, char *buf, size_t len);
/* dst = a + b (+ c); false if it does not fit. */
bool sup_join(char *dst, size_t len, const char *a, const char *b, const char *c);
/* The name of run `run` of `id`'s cgroup under the top: "<id>.<run>". */
void sup_cgroup_name(char buf[static 32], uint32_t id, uint32_t run);

/* capture.c */
int sup_stream_open(hum_proc *p, int fd, int kind); /* takes fd */
void sup_proc_drain(hum_proc *p); /* read this run's pipes until EAGAIN/EOF */
void sup_stream_close_all(hum_sup *s);

/* outfmt.c: the foreground line format (output.h, "Format").  Writes into
 * the caller's buffer; no I/O, no allocation. */

/* A formatted prefix after the timestamp: colours, the name (up to 4 bytes
 * per column) and its padding, the separator. */
#define OUTFMT_PRE_MAX (48 + 4 * HUM_OUTPUT_WIDTH_MAX)
/* Bytes of a formatted line of len bytes after a prefix of prelen: dim +
 * timestamp + prefix + bytes + reset + newline. */
#define OUTFMT_LINE_MAX(prelen, len) (4 + 8 + (prelen) + (len) + 4 + 1)

/* What the format depends on, besides the line: one per printer. */
typedef struct hum_outfmt {
	bool color, tty;
	bool width_fixed;    /* set by hum_output_set_width: never widened */
	size_t width;        /* the name column's width, in columns */
	int64_t ts_sec;      /* cached local time of ts_sec */
	char ts[9];          /* "HH:MM:SS" */
} hum_outfmt;

/* For output to fd: colour when fd is a terminal, TERM is not "dumb" and
 * NO_COLOR is unset or empty; width 0 until a name widens it. */
void sup_outfmt_init(hum_outfmt *f, int fd);
/* Until a width is fixed: the name column grows to fit name (nlen bytes),
 * up to HUM_OUTPUT_WIDTH_MAX columns. */
void sup_outfmt_widen(hum_outfmt *f, const char *name, size_t nlen);
/* Everything between the timestamp and the line's bytes for one name and
 * stream, into pre (OUTFMT_PRE_MAX bytes): its length. */
size_t sup_outfmt_prefix(const hum_outfmt *f, uint32_t id, const char *name, size_t nlen,
			 int stream, char *pre);
/* Line l after the prefix pre, into out (OUTFMT_LINE_MAX(prelen, l->len)
 * bytes): its length. */
size_t sup_outfmt_line(hum_outfmt *f, const char *pre, size_t prelen, const hum_line *l, char *out);
/* One of hum's own lines (name HUM_SYS_NAME, stream sys) at time ms, into
 * out (OUTFMT_PRE_MAX + 16 + mlen bytes): its length. */
size_t sup_outfmt_sys(hum_outfmt *f, int64_t ms, const char *msg, size_t mlen, char *out);

#endif

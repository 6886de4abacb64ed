/*
 * host.h — the loop thread's host: one libev default loop, one Lua state, the
 * store, the supervisor and the foreground printer, glued by an event queue.
 *
 * Ownership: C owns processes, watchers and timers; Lua holds integer ids and
 * keeps callbacks in its own tables.  Supervisor hooks never call Lua: they
 * queue events, which the host delivers (events.c) to the Lua dispatcher
 * from an ev_prepare watcher, so Lua code never runs in the middle of a
 * supervisor operation (a reaction that stops or restarts a process cannot
 * re-enter the code that is reading that process's pipe).
 */
#ifndef HUM_HOST_H
#define HUM_HOST_H

#include <stdbool.h>
#include <stdint.h>
#include <ev.h>
#include <lua.h>

#include "sup/output.h"
#include "sup/proc.h"
#include "state/store.h"

/* Events from C to Lua ---------------------------------------------------------
 * An event is a kind name and named fields, built by the C code that saw it
 * happen and delivered to Lua as one table: { kind = "state", id = 3,
 * time = 1764420000.123, state = "failed", code = 1, ... }.  Adding a kind
 * means emitting it (hum_event_new + fields) and adding one entry to the
 * dispatcher's handler table in Lua (hum.runtime); nothing else.
 *
 * Two lanes, each bounded or policed:
 *   control  state, signal, timer, exec, probe, command, idle: few, and each
 *            one matters; delivered first, in order.
 *   lines    output lines of processes that Lua watches (line probes,
 *            on("line") reactions).  At most HUM_LINE_EVENTS_MAX pending per
 *            process: at the bound the supervisor stops reading that
 *            process's pipes (the child blocks on its pipe, as behind a slow
 *            terminal) and resumes once Lua has caught up to half of it.
 *            Lines are never dropped; a process's queued lines are delivered
 *            before a control event about that process, so Lua sees a
 *            process's output and its exit in the order they happened. */
#define HUM_EV_FIELDS 12
#define HUM_LINE_EVENTS_MAX 256

enum { HUM_EVF_INT = 1, HUM_EVF_NUM, HUM_EVF_BOOL, HUM_EVF_STR };

typedef struct hum_evfield {
	const char *key;  /* static string */
	uint8_t type;     /* HUM_EVF_* */
	union {
		int64_t i;
		double d;
		int b;
		struct { char *p; size_t n; } s; /* owned copy */
	} v;
} hum_evfield;

typedef struct hum_event {
	struct hum_event *next;
	const char *kind;  /* static string: "state", "line", ... */
	uint32_t id;       /* the process, timer, job or request it is about */
	bool line;         /* in the lines lane */
	int64_t time_ms;   /* when it happened (wall clock): ev.time in Lua */
	uint64_t lines_before; /* state: its process's lines queued before it */
	uint8_t nf;
	hum_evfield f[HUM_EV_FIELDS];
} hum_event;

/* A new event of `kind` (a static string) about `id`, time = now.  Aborts
 * on ENOMEM (an event that cannot be queued would be a silent loss). */
hum_event *hum_event_new(const char *kind, uint32_t id);
void hum_event_int(hum_event *ev, const char *key, int64_t v);
void hum_event_num(hum_event *ev, const char *key, double v);
void hum_event_bool(hum_event *ev, const char *key, bool v);
/* Copies n bytes of s (NULL: the field is not set). */
void hum_event_str(hum_event *ev, const char *key, const char *s, size_t n);
void hum_event_cstr(hum_event *ev, const char *key, const char *s);
void hum_event_free(hum_event *ev);

/* Pending lines of one process (the lines lane). */
typedef struct hum_lineq {
	hum_event *head, *tail;
	uint32_t n;
	uint32_t next_ready;  /* id + 1 of the next process in the ready list, 0: end */
	bool ready;           /* in the ready list */
	bool paused;          /* its pipes are not read until Lua catches up */
	/* Who listens (raw.watch_lines): line reactions, or a line probe that
	 * waits for its match.  C arms the probe at every start attempt, before
	 * the new run can print, and Lua disarms it when the line matched. */
	bool reactions, probe, armed;
	bool ready_probe;     /* has a readiness probe (raw.add): "ready" is a line */
	uint64_t pushed, taken; /* lines queued / delivered so far */
} hum_lineq;

#define HUM_HOST_SIGNALS 8
#define HUM_HOST_REOPEN_MAX 8

typedef struct hum_host {
	lua_State *L;
	struct ev_loop *loop;
	hum_store *st;
	hum_sup *sup;
	hum_output *out;
	ev_prepare prepare;
	ev_idle idle;       /* keeps the loop spinning while events remain */
	/* Signals to hum (signals.c: which, and what C does itself; their
	 * meaning is Lua's, hum.runtime).  A signal ignored when hum started
	 * has no watcher: it stays ignored (nohup). */
	ev_signal sig[HUM_HOST_SIGNALS];
	int nsig;
	int stops_seen;     /* stopping signals received (INT, TERM, HUP, QUIT) */
	/* SIGUSR1: reopen hooks (hum_host_on_reopen), called in order. */
	struct { void (*fn)(void *ud); void *ud; } reopen[HUM_HOST_REOPEN_MAX];
	int nreopen;
	int dispatch_ref;   /* registry ref of the Lua dispatcher */
	hum_event *head, *tail; /* the control lane */
	size_t queued;          /* events in both lanes */
	hum_lineq *lineq;       /* the lines lane, by process id */
	size_t lineq_cap;
	uint32_t ready_head, ready_tail; /* id + 1: processes with queued lines, FIFO */
	bool quitting;
	bool want_idle;     /* Lua asked for an "idle" event (raw.notify_idle) */
	int exit_code;
} hum_host;

extern hum_host *hum_host_current;

int hum_host_init(hum_host *h);
void hum_host_fini(hum_host *h);
void hum_host_push(hum_host *h, hum_event *ev); /* takes ownership */
/* The lines-lane record of process id, grown on demand; NULL on ENOMEM. */
hum_lineq *hum_host_lineq(hum_host *h, uint32_t id);
/* Registers fn(ud) to run on the loop thread when hum gets SIGUSR1, the
 * signal that asks a daemon to reopen its log files after a rotation
 * (before the Lua "reopen" listeners run).  0, or -ENOSPC past
 * HUM_HOST_REOPEN_MAX hooks. */
int hum_host_on_reopen(hum_host *h, void (*fn)(void *ud), void *ud);

/* The one protected entry point into Lua: calls the function below nargs
 * arguments with a traceback handler; on error prints the traceback and
 * returns non-zero with nothing left on the stack. */
int hum_lua_pcall(lua_State *L, int nargs, int nresults);
/* hum's own message (name HUM_SYS_NAME, stream sys): a line per line of
 * the message in hum's log ring (store.h, hum_store_sys) and the foreground
 * output; on stderr before the supervisor exists. */
void hum_host_report(hum_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void hum_host_sys(hum_host *h, const char *msg, size_t len);
/* Sets up the foreground printer on fd (once), wired to the supervisor
 * (back-pressure) and hum's log ring (the printer's own messages).  0 or
 * -errno. */
int hum_host_output(hum_host *h, int fd);

int luaopen_hum_raw(lua_State *L);

#endif

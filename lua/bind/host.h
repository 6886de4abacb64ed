/*
 * host.h — the loop thread's host: one libev default loop, one Lua state, the
 * store, the supervisor and the foreground printer, glued by an event queue.
 *
 * Ownership: C owns processes, watchers and timers; Lua holds integer ids and
 * keeps callbacks in its own tables.  Supervisor hooks never call Lua: they
 * queue events, which hum_host_dispatch delivers to the Lua dispatcher from
 * an ev_prepare watcher, so Lua code never runs in the middle of a supervisor
 * operation (a reaction that stops or restarts a process cannot re-enter the
 * code that is reading that process's pipe).
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

enum hum_event_kind {
	HEV_STATE = 1, /* a process snapshot changed state */
	HEV_LINE,      /* a line of a process with line interest */
	HEV_TIMER,     /* a Lua timer fired */
	HEV_SIGNAL,    /* SIGINT/SIGTERM/SIGHUP reached hum */
	HEV_EXEC,      /* a hum.exec child finished */
	HEV_PROBE,     /* a tcp/http probe finished */
	HEV_COMMAND,   /* a request from the control socket */
	HEV_IDLE,      /* no process has a live pid or an open pipe (on request) */
};

typedef struct hum_event {
	struct hum_event *next;
	int kind;
	uint32_t id;
	int a, b, c;     /* kind specific small values */
	int64_t t;
	char *s;         /* owned text (line, reason, payload) */
	size_t slen;
	char *s2;        /* second owned text */
	size_t s2len;
	void *p;         /* kind specific owned pointer */
} hum_event;

typedef struct hum_host {
	lua_State *L;
	struct ev_loop *loop;
	hum_store *st;
	hum_sup *sup;
	hum_output *out;
	ev_prepare prepare;
	ev_idle idle;       /* keeps the loop spinning while events remain */
	ev_signal sig[3];
	int signals_seen;
	int dispatch_ref;   /* registry ref of the Lua dispatcher */
	hum_event *head, *tail;
	size_t queued;
	bool quitting;
	bool want_idle;     /* Lua asked for HEV_IDLE (raw.notify_idle) */
	int exit_code;
	uint8_t *line_interest; /* by process id */
	size_t line_interest_cap;
} hum_host;

extern hum_host *hum_host_current;

int hum_host_init(hum_host *h);
void hum_host_fini(hum_host *h);
void hum_host_push(hum_host *h, hum_event *ev); /* takes ownership */
hum_event *hum_event_new(int kind, uint32_t id);
void hum_event_free(hum_event *ev);

/* The one protected entry point into Lua: calls the function below nargs
 * arguments with a traceback handler; on error prints the traceback and
 * returns non-zero with nothing left on the stack. */
int hum_lua_pcall(lua_State *L, int nargs, int nresults);
void hum_host_report(hum_host *h, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

int luaopen_hum_raw(lua_State *L);
/* raw.c: a timer's event was delivered; its id may be reused once the timer
 * is dead and has no event left in the queue. */
void hum_raw_timer_delivered(uint32_t id);

#endif

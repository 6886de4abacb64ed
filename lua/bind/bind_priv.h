/*
 * bind_priv.h — what the files of lua/bind share; not a public API (main.c
 * includes host.h, never this).
 *
 *   host.c       the host: set-up and teardown, the supervisor's hooks (which
 *                turn into events), hum's own lines, the protected call,
 *                the per-iteration flush
 *   events.c     the event queue: events, the two lanes, delivery to Lua
 *   lifecycle.c  the lifecycle lines (started, ready, how a run ended)
 *   signals.c    signals to hum: watchers, suspend, a second Ctrl-C, the
 *                reopen hooks
 *   raw.c        `hum.raw`: its table, the primitives about processes,
 *                output, clocks, the environment
 *   raw_timer.c  raw.timer, raw.timer_stop
 *   raw_status.c raw.state, raw.status, raw.ps (snapshots as tables)
 *   raw_async.c  probes and exec, whose results come as events
 *
 * Functions here are named bind_<verb> (no hum_ prefix: they are not API);
 * hum_raw_*_register add a file's primitives to the `hum.raw` table on top
 * of the stack [-0, +0].  Everything is loop thread only.
 */
#ifndef HUM_BIND_PRIV_H
#define HUM_BIND_PRIV_H

#include <stdbool.h>
#include <stdint.h>
#include <lua.h>

#include "host.h"

/* events.c */
int64_t bind_now_ms(void); /* wall clock, ms: an event's time */
/* Sets up the idle watcher that keeps the loop turning while events wait. */
void bind_events_init(hum_host *h);
/* Queues a line event on its process's queue (which exists: the caller
 * checked interest); pauses the process's pipes at HUM_LINE_EVENTS_MAX. */
void bind_push_line(hum_host *h, hum_proc *p, hum_event *ev);
/* Delivers what is queued to the Lua dispatcher, bounded per iteration
 * (from the host's ev_prepare watcher). */
void bind_dispatch(hum_host *h);
/* Frees every queued event of both lanes (hum_host_fini); the lines-lane
 * records themselves stay. */
void bind_events_free(hum_host *h);

/* lifecycle.c: the lifecycle lines for one publish of a process's state
 * (began, ended: as in the state event). */
void bind_lifecycle(hum_host *h, const hum_snap *old, const hum_snap *now, bool began, bool ended);

/* signals.c: a watcher for each signal hum handles, except those ignored
 * when hum started (hum_host_init, once). */
void bind_signals_start(hum_host *h);

/* raw.c */
/* The host, or raises "the supervisor is not running".  [-0, +0, raises] */
hum_host *bind_needhost(lua_State *L);
/* The process whose id is at idx, or raises (luaL_argerror); lets the store
 * publish what is due first.  [-0, +0, raises] */
hum_proc *bind_checkproc(lua_State *L, int idx);
hum_proc *bind_findproc(lua_State *L, int idx);

/* raw_timer.c: a timer's event was delivered; its id may be reused once the
 * timer is dead and has no event left in the queue. */
void hum_raw_timer_delivered(uint32_t id);

void hum_raw_timer_register(lua_State *L);
void hum_raw_status_register(lua_State *L);
void hum_raw_async_register(lua_State *L);
void hum_raw_server_register(lua_State *L); /* api_server.c: control socket, client, detach */

#endif

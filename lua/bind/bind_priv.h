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
 *
 * Functions here are named bind_<verb> (no hum_ prefix: they are not API).
 * Everything is loop thread only.
 */
#ifndef HUM_BIND_PRIV_H
#define HUM_BIND_PRIV_H

#include <stdbool.h>
#include <stdint.h>

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

#endif

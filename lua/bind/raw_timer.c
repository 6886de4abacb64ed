/*
 * raw_timer.c — `hum.raw` timers: raw.timer(after, repeat) and
 * raw.timer_stop(id).  A timer never calls Lua: it fires as a "timer" event
 * with its id, through the host's queue (events.c).
 *
 * Owns: the timers (their libev watchers) and their id slots.  Loop thread
 * only.
 */
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lua.h>

#include "bind_priv.h"

#define H (hum_host_current)

/* An id names one timer until Lua can no longer hear from it: a slot is
 * reused only once the timer is dead (fired once, or stopped) and none of
 * its events waits in the queue.  Freeing it when it fires would let a
 * reaction that runs before the queued event make a timer with the same id,
 * and the stale event would then run the new timer's function (a sleep
 * would end early, a probe deadline would be lost). */
typedef struct htimer {
	ev_timer w;
	int id;
	int queued; /* "timer" events not yet delivered */
	bool dead;  /* fired (one-shot) or stopped: no more events */
} htimer;
static htimer **timers;
static int ntimers;

static void timer_release(htimer *t)
{
	timers[t->id] = NULL;
	free(t);
}

static void timer_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	htimer *t = (htimer *)w;
	hum_event *ev = hum_event_new("timer", (uint32_t)t->id);
	hum_host_push(H, ev);
	t->queued++;
	if (w->repeat == 0.) /* one-shot: libev stopped it */
		t->dead = true;
}

/* Called by the host once a "timer" event was delivered (or dropped). */
void hum_raw_timer_delivered(uint32_t id)
{
	if (id == 0 || id >= (uint32_t)ntimers || !timers[id])
		return;
	htimer *t = timers[id];
	if (t->queued > 0)
		t->queued--;
	if (t->dead && t->queued == 0)
		timer_release(t);
}

/* raw.timer(after, repeat) -> id [-2, +1, raises] */
static int l_timer(lua_State *L)
{
	bind_needhost(L);
	double after = luaL_checknumber(L, 1), rep = luaL_optnumber(L, 2, 0);
	if (after < 0 || rep < 0)
		return luaL_argerror(L, after < 0 ? 1 : 2, "negative time");
	int id;
	for (id = 1; id < ntimers && timers[id]; id++)
		;
	if (id >= ntimers) {
		int n = ntimers ? ntimers * 2 : 64;
		htimer **v = realloc(timers, n * sizeof *v);
		if (!v)
			return luaL_error(L, "out of memory");
		memset(v + ntimers, 0, (n - ntimers) * sizeof *v);
		timers = v;
		ntimers = n;
		if (id == 0)
			id = 1;
	}
	htimer *t = calloc(1, sizeof *t);
	if (!t)
		return luaL_error(L, "out of memory");
	t->id = id;
	/* libev counts from the time of the loop iteration; a reaction that
	 * computed for a while would otherwise get a sleep cut short. */
	ev_now_update(H->loop);
	ev_timer_init(&t->w, timer_cb, after, rep);
	ev_timer_start(H->loop, &t->w);
	timers[id] = t;
	lua_pushinteger(L, id);
	return 1;
}

/* raw.timer_stop(id) [-1, +0] — unknown or fired ids are ignored; the id
 * stays taken while an event of the timer is queued (see htimer). */
static int l_timer_stop(lua_State *L)
{
	lua_Integer id = luaL_checkinteger(L, 1);
	if (id > 0 && id < ntimers && timers[id] && !timers[id]->dead) {
		htimer *t = timers[id];
		ev_timer_stop(H->loop, &t->w);
		t->dead = true;
		if (t->queued == 0)
			timer_release(t);
	}
	return 0;
}

static const luaL_Reg fns[] = {
	{ "timer", l_timer }, { "timer_stop", l_timer_stop },
	{ NULL, NULL },
};

void hum_raw_timer_register(lua_State *L)
{
	luaL_register(L, NULL, fns);
}

/*
 * raw_status.c — the `hum.raw` primitives that push a process's published
 * state as a table: raw.state, raw.status, raw.ps.  Every table is a copy
 * of a snapshot: it does not change later.  Loop thread only (the writer
 * reads the current snapshots without a section).
 */
#include <lauxlib.h>
#include <lua.h>

#include "bind_priv.h"
#include "signames.h"

#define H (hum_host_current)

/* Pushes a snapshot as a fresh table (a copy: it does not change later). */
static void push_snap(lua_State *L, const hum_snap *s)
{
	lua_createtable(L, 0, 24);
	lua_pushinteger(L, s->id);            lua_setfield(L, -2, "id");
	lua_pushstring(L, s->name);           lua_setfield(L, -2, "name");
	lua_pushstring(L, s->kind == HUM_TASK ? "task" : "service");
	lua_setfield(L, -2, "kind");
	lua_pushstring(L, hum_state_name(s->state)); lua_setfield(L, -2, "state");
	lua_pushstring(L, s->groups);         lua_setfield(L, -2, "groups");
	lua_pushstring(L, s->reason);         lua_setfield(L, -2, "reason");
	lua_pushinteger(L, s->pid);           lua_setfield(L, -2, "pid");
	if (s->exit_code >= 0) {
		lua_pushinteger(L, s->exit_code);
		lua_setfield(L, -2, "exit_code");
	}
	if (s->term_signal > 0) {
		lua_pushstring(L, hum_signame(s->term_signal));
		lua_setfield(L, -2, "signal");
	}
	lua_pushinteger(L, s->restarts);      lua_setfield(L, -2, "restarts");
	lua_pushinteger(L, s->run);           lua_setfield(L, -2, "run");
	lua_pushboolean(L, s->ready);         lua_setfield(L, -2, "ready");
	lua_pushboolean(L, s->spawn_error);   lua_setfield(L, -2, "spawn_error");
	lua_pushboolean(L, s->paused);        lua_setfield(L, -2, "paused");
	lua_pushinteger(L, s->remaining);     lua_setfield(L, -2, "remaining");
	lua_createtable(L, HUM_SNAP_PIDS, 0);
	for (int i = 0; i < HUM_SNAP_PIDS && s->remaining_pids[i] > 0; i++) {
		lua_pushinteger(L, s->remaining_pids[i]);
		lua_rawseti(L, -2, i + 1);
	}
	lua_setfield(L, -2, "remaining_pids");
	lua_pushnumber(L, (double)s->started_at_ms / 1000.0); lua_setfield(L, -2, "started_at");
	lua_pushnumber(L, (double)s->ended_at_ms / 1000.0);   lua_setfield(L, -2, "ended_at");
	lua_pushnumber(L, (double)s->changed_at_ms / 1000.0); lua_setfield(L, -2, "changed_at");
	lua_pushnumber(L, (double)s->generation);  lua_setfield(L, -2, "generation");
	/* Log counters live in the ring (the snapshot only points at it). */
	hum_logcounts k = hum_logring_counts(s->log);
	lua_pushnumber(L, (double)k.lines);     lua_setfield(L, -2, "lines");
	lua_pushnumber(L, (double)k.bytes);     lua_setfield(L, -2, "bytes");
	lua_pushnumber(L, (double)k.dropped);   lua_setfield(L, -2, "dropped");
	lua_pushnumber(L, (double)k.first_seq); lua_setfield(L, -2, "first_seq");
	lua_pushnumber(L, (double)k.last_seq);  lua_setfield(L, -2, "last_seq");
}

/* An id that names no process (retired by hum_sup_remove, or never
 * registered): nil and the reason, for a read to handle. */
static int gone(lua_State *L)
{
	lua_pushnil(L);
	lua_pushliteral(L, "no such process");
	return 2;
}

/* raw.state(id) -> state name, spawn_error | nil, "no such process"
 * [-1, +2]: the published state now, without building a status table
 * (dependency gating asks it per edge). */
static int l_state(lua_State *L)
{
	hum_proc *p = bind_findproc(L, 1);
	if (!p)
		return gone(L);
	const hum_snap *s = hum_proc_snap(p);
	lua_pushstring(L, hum_state_name(s->state));
	lua_pushboolean(L, s->spawn_error);
	return 2;
}

/* raw.status(id) -> table | nil, "no such process" [-1, +1|2] */
static int l_status(lua_State *L)
{
	hum_proc *p = bind_findproc(L, 1);
	if (!p)
		return gone(L);
	push_snap(L, hum_proc_snap(p));
	return 1;
}

static int ps_one(hum_proc *p, void *ud)
{
	lua_State *L = ud;
	push_snap(L, hum_proc_snap(p));
	lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
	return 0;
}

/* raw.ps() -> array of status tables in id order [-0, +1] */
static int l_ps(lua_State *L)
{
	bind_needhost(L);
	lua_newtable(L);
	hum_sup_foreach(H->sup, ps_one, L);
	return 1;
}

static const luaL_Reg fns[] = {
	{ "status", l_status }, { "state", l_state }, { "ps", l_ps },
	{ NULL, NULL },
};

void hum_raw_status_register(lua_State *L)
{
	luaL_register(L, NULL, fns);
}

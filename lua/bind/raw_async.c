/*
 * raw_async.c — `hum.raw` primitives whose result arrives later as an event:
 * probes (raw.probe_tcp, raw.probe_http) and one-shot commands (raw.exec).  Each returns an id at once; the
 * completion is queued as a "probe" event with the same id, so Lua code
 * always sees results through the dispatcher, never re-entrantly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "host.h"
#include "sup/exec.h"
#include "sup/probe.h"

static uint32_t next_probe_id;

static void probe_done(void *ud, int ok, int status, const char *err)
{
	hum_event *ev = hum_event_new("probe", (uint32_t)(uintptr_t)ud);
	hum_event_bool(ev, "ok", ok);
	hum_event_int(ev, "status", status);
	hum_event_cstr(ev, "error", err);
	hum_host_push(hum_host_current, ev);
}

static int start_probe(lua_State *L, const char *path, int timeout_idx)
{
	if (!hum_host_current)
		return luaL_error(L, "the supervisor is not running");
	const char *host = luaL_checkstring(L, 1);
	int port = (int)luaL_checkinteger(L, 2);
	double timeout = luaL_optnumber(L, timeout_idx, 5);
	if (port < 1 || port > 65535)
		return luaL_argerror(L, 2, "port must be 1-65535");
	uint32_t id = ++next_probe_id;
	int rc = hum_probe_start(hum_host_current->loop, host, port, path, timeout,
				 probe_done, (void *)(uintptr_t)id);
	if (rc < 0) {
		/* Report through the same path as any other failure. */
		char msg[160];
		snprintf(msg, sizeof msg, "%s: %s", host, strerror(-rc));
		probe_done((void *)(uintptr_t)id, 0, 0, msg);
	}
	lua_pushinteger(L, id);
	return 1;
}

/* raw.probe_tcp(host, port, timeout) -> id [-3, +1, raises] */
static int l_probe_tcp(lua_State *L) { return start_probe(L, NULL, 3); }

/* raw.probe_http(host, port, path, timeout) -> id [-4, +1, raises] */
static int l_probe_http(lua_State *L) { return start_probe(L, luaL_checkstring(L, 3), 4); }

static uint32_t next_exec_id;

static void exec_done(void *ud, const hum_exec_result *r)
{
	hum_event *ev = hum_event_new("exec", (uint32_t)(uintptr_t)ud);
	hum_event_int(ev, "code", r->code); /* -1 if signalled or failed */
	hum_event_int(ev, "signo", r->term_signal);
	hum_event_str(ev, "stdout", r->out ? r->out : "", r->out_len);
	hum_event_str(ev, "stderr", r->err ? r->err : "", r->err_len);
	hum_event_cstr(ev, "error", r->error); /* spawn error or timeout */
	hum_host_push(hum_host_current, ev);
}

static char **strvec(lua_State *L, int t, const char *key)
{
	lua_getfield(L, t, key);
	if (!lua_istable(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	size_t n = lua_objlen(L, -1);
	char **v = calloc(n + 1, sizeof *v);
	for (size_t i = 0; v && i < n; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		v[i] = strdup(lua_tostring(L, -1) ? lua_tostring(L, -1) : "");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return v;
}

static void freevec(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

/* raw.exec{ argv= | shell=, cwd=, env=, input=, timeout= } -> id | nil, err
 * [-1, +1|2, raises]; the result arrives as an "exec" event with that id. */
static int l_exec(lua_State *L)
{
	if (!hum_host_current)
		return luaL_error(L, "the supervisor is not running");
	luaL_checktype(L, 1, LUA_TTABLE);
	hum_exec_spec sp;
	memset(&sp, 0, sizeof sp);
	char **argv = strvec(L, 1, "argv");
	char **env = strvec(L, 1, "env");
	lua_getfield(L, 1, "shell");
	sp.shell = lua_tostring(L, -1);
	lua_getfield(L, 1, "cwd");
	sp.cwd = lua_tostring(L, -1);
	lua_getfield(L, 1, "input");
	sp.input = lua_tolstring(L, -1, &sp.input_len);
	lua_getfield(L, 1, "timeout");
	sp.timeout = lua_tonumber(L, -1);
	sp.argv = argv;
	sp.env = env;
	sp.sup = hum_host_current->sup;
	if (!sp.argv && !sp.shell) {
		freevec(argv);
		freevec(env);
		return luaL_argerror(L, 1, "argv or shell required");
	}
	char err[512] = "";
	uint32_t id = ++next_exec_id;
	int rc = hum_exec_start(hum_host_current->loop, &sp, exec_done, (void *)(uintptr_t)id,
				err, sizeof err);
	freevec(argv);
	freevec(env);
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err[0] ? err : strerror(-rc));
		return 2;
	}
	lua_pushinteger(L, id);
	return 1;
}

void hum_raw_async_register(lua_State *L)
{
	lua_pushcfunction(L, l_exec);
	lua_setfield(L, -2, "exec");
	lua_pushcfunction(L, l_probe_tcp);
	lua_setfield(L, -2, "probe_tcp");
	lua_pushcfunction(L, l_probe_http);
	lua_setfield(L, -2, "probe_http");
}

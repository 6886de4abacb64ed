/*
 * raw_async.c — `hum.raw` primitives whose result arrives later as an event:
 * probes (raw.probe_tcp, raw.probe_http).  Each returns an id at once; the
 * completion is queued as a HEV_PROBE event with the same id, so Lua code
 * always sees results through the dispatcher, never re-entrantly.
 */
#include <errno.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "host.h"
#include "probe.h"

static uint32_t next_probe_id;

static void probe_done(void *ud, int ok, int status, const char *err)
{
	hum_event *ev = hum_event_new(HEV_PROBE, (uint32_t)(uintptr_t)ud);
	ev->a = ok;
	ev->b = status;
	ev->s = err ? strdup(err) : NULL;
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

void hum_raw_async_register(lua_State *L)
{
	lua_pushcfunction(L, l_probe_tcp);
	lua_setfield(L, -2, "probe_tcp");
	lua_pushcfunction(L, l_probe_http);
	lua_setfield(L, -2, "probe_http");
}

/*
 * main.c — the hum executable: a LuaJIT state with the embedded `hum`
 * library, handing the command line to hum.cli.  The Lua modules are linked
 * in as bytecode objects (luaJIT_BC_hum_*); bind/modules.c finds them after
 * the files a user may put in their place.
 */
#include <errno.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include "bind/host.h"
#include "bind/memory.h"
#include "sup/fds.h"
#include "bind/modules.h"

void hum_server_shutdown(void); /* api_server.c: stops the API thread if open */

static hum_host host;

/* raw.init(): creates the loop, store and supervisor (only `up`/`run` need them). */
static int l_init(lua_State *L)
{
	if (hum_host_current)
		return 0;
	host.L = L;
	int rc = hum_host_init(&host);
	if (rc < 0)
		return luaL_error(L, "cannot start the supervisor: %s", strerror(-rc));
	return 0;
}

/* raw.run(): runs the loop until raw.quit(); returns the exit code. */
static int l_run(lua_State *L)
{
	if (!hum_host_current)
		return luaL_error(L, "raw.run before raw.init");
	ev_run(host.loop, 0);
	/* hum's last log line, before the API thread stops (the teardown
	 * that follows): `hum logs -f` ends with it, and so does the output. */
	hum_host_report(&host, "hum stopped (exit status %d)", host.exit_code);
	lua_pushinteger(L, host.exit_code);
	return 1;
}

static int open_raw(lua_State *L)
{
	luaopen_hum_raw(L);
	lua_pushcfunction(L, l_init);
	lua_setfield(L, -2, "init");
	lua_pushcfunction(L, l_run);
	lua_setfield(L, -2, "run");
	return 1;
}

int main(int argc, char **argv)
{
	/* First, before anything opens a descriptor: a closed 0, 1 or 2 would
	 * be taken by the next open (the event loop's epoll, a log file) and
	 * written to as stdout, or closed by a dup2 meant for it. */
	(void)hum_fds_stdio();
	/* Two pipes per process: the usual soft limit of 1024 would stop hum
	 * near 500 processes (fds.h: children inherit the raised limit). */
	(void)hum_fds_raise_limit(NULL, NULL);
	/* Log chunks of 128 KiB come and go at the rate processes write.  With
	 * glibc's defaults each is an mmap that faults every page in again and
	 * an munmap on free (and trimming returns freed heap to the kernel);
	 * on a VM a page fault costs microseconds.  Serving them from the heap
	 * and keeping freed heap (up to 64 MiB) makes a log flood ~20% cheaper
	 * (bench/RESULTS.md, log-cpu).  The store also pools big chunks. */
	mallopt(M_MMAP_THRESHOLD, 4 << 20);
	mallopt(M_TRIM_THRESHOLD, 64 << 20);
	lua_State *L = luaL_newstate();
	if (!L) {
		fprintf(stderr, "hum: cannot create a Lua state\n");
		return 1;
	}
	char merr[256];
	if (hum_memory_install(L, merr, sizeof merr) < 0)
		fprintf(stderr, "hum: %s\n", merr);
	luaL_openlibs(L);
	hum_modules_init(L, open_raw);

	int code = 1;
	lua_getglobal(L, "require");
	lua_pushliteral(L, "hum.cli");
	if (hum_lua_pcall(L, 1, 1) == 0) {
		lua_getfield(L, -1, "main");
		lua_remove(L, -2);
		lua_createtable(L, argc, 0);
		for (int i = 1; i < argc; i++) {
			lua_pushstring(L, argv[i]);
			lua_rawseti(L, -2, i);
		}
		if (hum_lua_pcall(L, 1, 1) == 0) {
			code = lua_isnumber(L, -1) ? (int)lua_tointeger(L, -1) : 0;
			lua_pop(L, 1);
		}
	}
	/* The API thread reads the store: it goes first, whatever path the
	 * Lua side took out of hum.cli.main (normally it stopped it already). */
	hum_server_shutdown();
	if (hum_host_current)
		hum_host_fini(&host);
	hum_host_current = NULL;
	lua_close(L);
	return code;
}

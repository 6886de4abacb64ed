/*
 * modules.c — where `require` looks, in this order (DESIGN §8):
 *
 *   1. package.preload, the table only: `hum.raw` (C) and `hum` (the public
 *      API, an alias of hum.api; a file would not do: the project's own
 *      hum.lua sits first on the path)
 *   2. files: package.path, then package.cpath and its all-in-one loader.
 *      hum.config puts the project's directory (beside hum.lua) first when
 *      it loads the config; before the defaults come HUM_PATH (directories,
 *      colon-separated) and $XDG_CONFIG_HOME/hum/lua (~/.config/hum/lua)
 *   3. the modules embedded in the executable: the bytecode object of
 *      lua/hum/cli/ps.lua exports luaJIT_BC_hum_cli_ps (-Wl,-E makes it
 *      visible to dlsym)
 *
 * LuaJIT's own preload loader also falls back to the luaJIT_BC_* symbols,
 * which would put the embedded modules before every file: it is replaced.
 */
#include <dlfcn.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>
#include <lua.h>

#include "modules.h"

/* package.loaders[1]: package.preload and nothing else.  [-1, +1] */
static int preload_loader(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	lua_getglobal(L, "package");
	lua_getfield(L, -1, "preload");
	if (lua_istable(L, -1))
		lua_getfield(L, -1, name);
	else
		lua_pushnil(L);
	if (lua_isnil(L, -1))
		lua_pushfstring(L, "\n\tno field package.preload['%s']", name);
	return 1;
}

/* The last loader: bytecode linked into hum.  Returns the chunk, or why not;
 * raises only for a symbol that is not valid bytecode.  [-1, +1, raises] */
static int embedded_loader(lua_State *L)
{
	const char *name = luaL_checkstring(L, 1);
	lua_pushliteral(L, "luaJIT_BC_");
	luaL_gsub(L, name, ".", "_");
	lua_concat(L, 2);
	const char *bc = dlsym(RTLD_DEFAULT, lua_tostring(L, -1));
	if (!bc) {
		lua_pushfstring(L, "\n\tno module '%s' embedded in hum", name);
		return 1;
	}
	/* The size is not known (dladdr1 would tell, by a linear walk of the
	 * symbol table that costs more than the load).  ~0 is LuaJIT's mark
	 * for "read up to the dump's end marker", as its own loader of these
	 * symbols does; any other size beyond the dump fails as out of memory. */
	size_t size = ~(size_t)0;
	if (luaL_loadbuffer(L, bc, size, name) != 0)
		return luaL_error(L, "error loading embedded module '%s': %s", name, lua_tostring(L, -1));
	return 1;
}

/* package.preload.hum  [-0, +1, raises] */
static int load_hum(lua_State *L)
{
	lua_getglobal(L, "require");
	lua_pushliteral(L, "hum.api");
	lua_call(L, 1, 1);
	return 1;
}

/* Adds "D/?.lua;D/?/init.lua;" for each directory D of a colon-separated
 * list (empty entries are skipped). */
static void add_dirs(luaL_Buffer *b, const char *list)
{
	while (*list) {
		size_t n = strcspn(list, ":");
		for (int k = 0; n > 0 && k < 2; k++) {
			luaL_addlstring(b, list, n);
			luaL_addstring(b, k == 0 ? "/?.lua;" : "/?/init.lua;");
		}
		list += n;
		if (*list == ':')
			list++;
	}
}

/* package.path = HUM_PATH; $XDG_CONFIG_HOME/hum/lua; the default.
 * [-0, +0], the package table on top */
static void set_path(lua_State *L)
{
	const char *hum_path = getenv("HUM_PATH");
	const char *xdg = getenv("XDG_CONFIG_HOME");
	const char *home = getenv("HOME");
	if (xdg && *xdg)
		lua_pushfstring(L, "%s/hum/lua", xdg);
	else if (home && *home)
		lua_pushfstring(L, "%s/.config/hum/lua", home);
	else
		lua_pushliteral(L, "");
	lua_getfield(L, -2, "path");
	/* both stay on the stack below the buffer's own slots */
	const char *config_dir = lua_tostring(L, -2), *path = lua_tostring(L, -1);
	luaL_Buffer b;
	luaL_buffinit(L, &b);
	add_dirs(&b, hum_path ? hum_path : "");
	add_dirs(&b, config_dir);
	luaL_addstring(&b, path ? path : "");
	luaL_pushresult(&b);
	lua_setfield(L, -4, "path");
	lua_pop(L, 2);
}

void hum_modules_init(lua_State *L, lua_CFunction open_raw)
{
	lua_getglobal(L, "package");
	set_path(L);

	lua_getfield(L, -1, "preload");
	lua_pushcfunction(L, open_raw);
	lua_setfield(L, -2, "hum.raw");
	lua_pushcfunction(L, load_hum);
	lua_setfield(L, -2, "hum");
	lua_pop(L, 1);

	lua_getfield(L, -1, "loaders");
	lua_pushcfunction(L, preload_loader);
	lua_rawseti(L, -2, 1);
	lua_pushcfunction(L, embedded_loader);
	lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
	lua_pop(L, 2);
}

/*
 * modules.h — how `require` finds modules: package.preload (hum.raw, hum),
 * then files (HUM_PATH, $XDG_CONFIG_HOME/hum/lua, the default paths), then
 * the bytecode embedded in the executable.
 */
#ifndef HUM_MODULES_H
#define HUM_MODULES_H

#include <lua.h>

/* Sets package.path, the preload table and the searchers; open_raw opens
 * `hum.raw`.  Call once, after luaL_openlibs.  [-0, +0] */
void hum_modules_init(lua_State *L, lua_CFunction open_raw);

#endif

/*
 * memory.h — the Lua state's memory limit.
 *
 * hum's one Lua state runs the config, the dispatcher and every reaction; a
 * reaction that keeps allocating must not take the machine's memory and hum
 * with it.  The state's allocator is wrapped by a counting one that refuses
 * to grow the heap (live data and garbage not yet collected) past the limit:
 * the allocation fails and Lua raises "not enough memory" in whatever code
 * asked.  Reactions are watched more closely in Lua (hum.reactions): one
 * that holds more than 7/8 of the limit after a full collection is stopped
 * and disabled before the allocator's hard stop is reached.
 *
 * After a refused allocation, a reserve of limit/16 is open so that the
 * failing code can unwind and report (traceback, log line); it closes once
 * the heap is back below limit - reserve, and hum_memory_settle collects
 * garbage to get there.  So the heap never exceeds limit * 17/16.
 */
#ifndef HUM_MEMORY_H
#define HUM_MEMORY_H

#include <stdbool.h>
#include <stddef.h>
#include <lua.h>

#define HUM_LUA_MEMORY_DEFAULT ((size_t)256 << 20)
#define HUM_LUA_MEMORY_MIN ((size_t)16 << 20)
#define HUM_LUA_MEMORY_MAX ((size_t)1 << 40)

/* Wraps L's allocator (LuaJIT's own stays underneath) with the counting one,
 * limited to HUM_LUA_MEMORY when that is set (bytes, or a number with K, M
 * or G), else to HUM_LUA_MEMORY_DEFAULT.  Call once, right after the state
 * is created.  0, or -EINVAL when HUM_LUA_MEMORY is not a valid size (the
 * default is used; err says why). */
int hum_memory_install(lua_State *L, char *err, size_t errlen);

/* "256M", "1G", "1048576" -> bytes within [MIN, MAX]; 0, or -EINVAL/-ERANGE
 * with a message in err. */
int hum_memory_parse(const char *s, size_t *bytes, char *err, size_t errlen);

size_t hum_memory_used(void);   /* bytes the Lua heap holds now */
size_t hum_memory_limit(void);
bool hum_memory_tripped(void);  /* an allocation was refused; the reserve is open */

/* After Lua code returned to C: if an allocation was refused, collect the
 * garbage now (the failed code's data is garbage once it unwound) so that
 * the reserve closes and what runs next has its memory back.  [-0, +0] */
void hum_memory_settle(lua_State *L);

/* raw.memory(), raw.memory_limit(size): registered into the table on top. */
void hum_raw_memory_register(lua_State *L);

#endif

/*
 * memory.c — the Lua state's memory limit: a counting allocator around
 * LuaJIT's (see memory.h).
 *
 * Why a wrapper and not lua_newstate with an allocator of our own: both work
 * with this LuaJIT (Debian's luajit2, GC64 on x86-64; LuaJIT without GC64
 * refuses lua_newstate on 64-bit targets), but LuaJIT's built-in allocator
 * is faster than malloc for its small objects.  lua_getallocf/lua_setallocf
 * keep it and put the count in front; frees of memory allocated before the
 * wrap go through the wrapper too, so the count starts at the heap's size.
 *
 * Loop thread only (the one Lua state); the counters are plain fields.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "memory.h"

static struct {
	lua_Alloc f;      /* LuaJIT's allocator and its state */
	void *ud;
	size_t used;      /* bytes handed out: LuaJIT's own gc.total */
	size_t limit;
	bool tripped;     /* a growth was refused: the reserve is open */
} mem;

static size_t reserve(void) { return mem.limit / 16; }

static void *limited_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
	(void)ud;
	size_t old = ptr ? osize : 0;
	if (nsize > old) {
		size_t cap = mem.limit + (mem.tripped ? reserve() : 0);
		if (nsize - old > cap || mem.used > cap - (nsize - old)) {
			mem.tripped = true;
			return NULL; /* LuaJIT raises "not enough memory" */
		}
	}
	void *r = mem.f(mem.ud, ptr, old, nsize);
	if (r != NULL || nsize == 0) {
		mem.used = mem.used - old + nsize;
		if (mem.tripped && mem.used + reserve() <= mem.limit)
			mem.tripped = false;
	}
	return r;
}

int hum_memory_parse(const char *s, size_t *bytes, char *err, size_t errlen)
{
	const char *p = s;
	while (isspace((unsigned char)*p))
		p++;
	if (!isdigit((unsigned char)*p)) {
		snprintf(err, errlen, "'%s' is not a size (bytes, or a number with K, M or G)", s);
		return -EINVAL;
	}
	errno = 0;
	char *end;
	unsigned long long v = strtoull(p, &end, 10);
	unsigned shift = 0;
	switch (*end) {
	case 'k': case 'K': shift = 10; end++; break;
	case 'm': case 'M': shift = 20; end++; break;
	case 'g': case 'G': shift = 30; end++; break;
	}
	if (*end != '\0') {
		snprintf(err, errlen, "'%s' is not a size (bytes, or a number with K, M or G)", s);
		return -EINVAL;
	}
	if (errno == ERANGE || v > (unsigned long long)(HUM_LUA_MEMORY_MAX >> shift) ||
	    (size_t)v << shift < HUM_LUA_MEMORY_MIN) {
		snprintf(err, errlen, "%s is out of range (%zuM to %zuG)", s,
			 HUM_LUA_MEMORY_MIN >> 20, HUM_LUA_MEMORY_MAX >> 30);
		return -ERANGE;
	}
	*bytes = (size_t)v << shift;
	return 0;
}

int hum_memory_install(lua_State *L, char *err, size_t errlen)
{
	int rc = 0;
	mem.limit = HUM_LUA_MEMORY_DEFAULT;
	const char *env = getenv("HUM_LUA_MEMORY");
	if (env && *env) {
		char why[160];
		size_t v;
		rc = hum_memory_parse(env, &v, why, sizeof why);
		if (rc == 0)
			mem.limit = v;
		else
			snprintf(err, errlen, "HUM_LUA_MEMORY: %s; using %zuM", why,
				 HUM_LUA_MEMORY_DEFAULT >> 20);
	}
	mem.f = lua_getallocf(L, &mem.ud);
	mem.used = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
	lua_setallocf(L, limited_alloc, NULL);
	return rc;
}

size_t hum_memory_used(void) { return mem.used; }
size_t hum_memory_limit(void) { return mem.limit; }
bool hum_memory_tripped(void) { return mem.tripped; }

void hum_memory_settle(lua_State *L)
{
	if (mem.tripped && mem.f)
		lua_gc(L, LUA_GCCOLLECT, 0);
}

/* raw.memory() -> used bytes, limit bytes [-0, +2] */
static int l_memory(lua_State *L)
{
	lua_pushnumber(L, (lua_Number)mem.used);
	lua_pushnumber(L, (lua_Number)mem.limit);
	return 2;
}

/* raw.memory_limit(size) -> true | nil, message [-0, +1|2]; size is bytes
 * (a number) or a string such as "512M".  Refused when 7/8 of it would not
 * hold what the heap holds now (every reaction would be stopped). */
static int l_memory_limit(lua_State *L)
{
	char why[160], buf[64];
	const char *s;
	if (lua_type(L, 1) == LUA_TNUMBER) {
		lua_Number n = lua_tonumber(L, 1);
		if (!(n >= 0 && n <= (lua_Number)HUM_LUA_MEMORY_MAX) || n != (lua_Number)(size_t)n) {
			lua_pushnil(L);
			lua_pushfstring(L, "expected a whole number of bytes up to %dG",
					(int)(HUM_LUA_MEMORY_MAX >> 30));
			return 2;
		}
		snprintf(buf, sizeof buf, "%zu", (size_t)n);
		s = buf;
	} else if (lua_type(L, 1) == LUA_TSTRING) {
		s = lua_tostring(L, 1);
	} else {
		lua_pushnil(L);
		lua_pushstring(L, "expected bytes (a number) or a size such as \"512M\"");
		return 2;
	}
	size_t v;
	if (hum_memory_parse(s, &v, why, sizeof why) < 0) {
		lua_pushnil(L);
		lua_pushstring(L, why);
		return 2;
	}
	lua_gc(L, LUA_GCCOLLECT, 0); /* what is live, not what waits for the collector */
	if (mem.used > v / 8 * 7) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s is too small: the Lua heap holds %d MiB now", s,
				(int)(mem.used >> 20));
		return 2;
	}
	mem.limit = v;
	lua_pushboolean(L, 1);
	return 1;
}

void hum_raw_memory_register(lua_State *L)
{
	static const luaL_Reg fns[] = {
		{ "memory", l_memory }, { "memory_limit", l_memory_limit }, { NULL, NULL },
	};
	luaL_register(L, NULL, fns);
}

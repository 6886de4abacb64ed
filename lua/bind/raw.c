/*
 * raw.c — `hum.raw`, the thin C layer under the Lua `hum` module: the
 * module's table, and the primitives about processes (add, control,
 * selectors, logs, line watching), hum's own output, clocks and the
 * environment.  Timers are raw_timer.c's, the status and ps tables
 * raw_status.c's, probes and exec raw_async.c's, the control socket
 * api_server.c's, the heap limit memory.c's.
 *
 * Every function takes and returns plain values (ids, strings, tables that
 * are copies).  Expected failures return nil, message; misuse raises with
 * luaL_argerror.  Stack effects are noted as [-pop, +push, raises?].
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>

#include "bind_priv.h"
#include "memory.h"
#include "sup/logfile.h"
#include "signames.h"
#include "state/select.h"

#define H (hum_host_current)

hum_host *bind_needhost(lua_State *L)
{
	if (!H)
		luaL_error(L, "the supervisor is not running (raw.init was not called)");
	return H;
}

/* The process of id at idx, for a primitive about to act on it.  Lua has
 * just called in and C holds no pointer into the store: the place where a
 * long Lua loop over processes (a burst of starts, a shutdown) lets the
 * store publish the world and reclaim what it replaced (store.h). */
hum_proc *bind_checkproc(lua_State *L, int idx)
{
	hum_proc *p = bind_findproc(L, idx);
	if (!p)
		luaL_argerror(L, idx, "no such process id");
	return p;
}

/* As bind_checkproc, but NULL for an id that names no process (never
 * registered, or retired by hum_sup_remove): for reads, which may ask about
 * a process that was retired while events about it were still queued. */
hum_proc *bind_findproc(lua_State *L, int idx)
{
	bind_needhost(L);
	hum_store_flush_due(H->st);
	lua_Integer id = luaL_checkinteger(L, idx);
	return id >= 0 ? hum_sup_get(H->sup, (uint32_t)id) : NULL;
}

static int push_result(lua_State *L, int rc)
{
	if (rc == 0) {
		lua_pushboolean(L, 1);
		return 1;
	}
	lua_pushnil(L);
	lua_pushstring(L, strerror(-rc));
	return 2;
}

/* raw.set_dispatch(fn) [-1, +0, raises] */
static int l_set_dispatch(lua_State *L)
{
	bind_needhost(L);
	luaL_checktype(L, 1, LUA_TFUNCTION);
	if (H->dispatch_ref != LUA_NOREF)
		luaL_unref(L, LUA_REGISTRYINDEX, H->dispatch_ref);
	lua_pushvalue(L, 1);
	H->dispatch_ref = luaL_ref(L, LUA_REGISTRYINDEX);
	return 0;
}

/* Reads t[key] as a NULL-terminated string array into a malloc'd vector. */
static char **strvec(lua_State *L, int t, const char *key)
{
	lua_getfield(L, t, key);
	if (lua_isnil(L, -1)) {
		lua_pop(L, 1);
		return NULL;
	}
	luaL_checktype(L, -1, LUA_TTABLE);
	size_t n = lua_objlen(L, -1);
	char **v = calloc(n + 1, sizeof *v);
	if (!v)
		luaL_error(L, "out of memory");
	for (size_t i = 0; i < n; i++) {
		lua_rawgeti(L, -1, (int)i + 1);
		const char *s = lua_tostring(L, -1);
		v[i] = strdup(s ? s : "");
		lua_pop(L, 1);
	}
	lua_pop(L, 1);
	return v;
}

static void freevec(char **v)
{
	if (!v)
		return;
	for (char **p = v; *p; p++)
		free(*p);
	free(v);
}

static double numfield(lua_State *L, int t, const char *k, double dflt)
{
	lua_getfield(L, t, k);
	double v = lua_isnumber(L, -1) ? lua_tonumber(L, -1) : dflt;
	lua_pop(L, 1);
	return v;
}

static const char *strfield(lua_State *L, int t, const char *k)
{
	lua_getfield(L, t, k);
	const char *s = lua_tostring(L, -1); /* anchored by t until we return */
	lua_pop(L, 1);
	return s;
}

/* Reads raw.add's spec table at idx into *sp (hum.runtime.register's
 * spec_of builds it).  Strings are borrowed from the table (anchored while
 * it is on the stack); free the argv and env vectors with spec_free. */
static void spec_read(lua_State *L, int idx, hum_spec *sp)
{
	memset(sp, 0, sizeof *sp);
	sp->argv = strvec(L, idx, "argv");
	sp->env = strvec(L, idx, "env");
	sp->shell = strfield(L, idx, "shell");
	sp->cwd = strfield(L, idx, "cwd");
	sp->groups = strfield(L, idx, "groups");
	sp->base = strfield(L, idx, "base");
	sp->stop_signal = (int)numfield(L, idx, "stop_signal", SIGTERM);
	sp->grace = numfield(L, idx, "grace", 5);
	sp->kind = (int)numfield(L, idx, "kind", HUM_SERVICE);
	sp->restart.policy = (int)numfield(L, idx, "restart_policy", HUM_RESTART_NO);
	sp->restart.max = (int)numfield(L, idx, "restart_max", -1);
	sp->restart.initial = numfield(L, idx, "backoff_initial", 0.5);
	sp->restart.cap = numfield(L, idx, "backoff_cap", 30);
	sp->restart.reset_after = numfield(L, idx, "backoff_reset", 10);
}

static void spec_free(hum_spec *sp)
{
	freevec((char **)sp->argv);
	freevec((char **)sp->env);
}

/* raw.add(name, spec) -> id | nil, err [-2, +1|2] */
static int l_add(lua_State *L)
{
	bind_needhost(L);
	const char *name = luaL_checkstring(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	hum_spec sp;
	spec_read(L, 2, &sp);
	int err = 0;
	hum_proc *p = hum_sup_add(H->sup, name, &sp, &err);
	spec_free(&sp);
	if (!p) {
		lua_pushnil(L);
		lua_pushstring(L, strerror(-err));
		return 2;
	}
	/* A process with a readiness probe gets a line when it is ready;
	 * without one it is ready as it starts (the started line says so). */
	lua_getfield(L, 2, "ready_probe");
	hum_lineq *q = hum_host_lineq(H, hum_proc_id(p));
	if (q)
		q->ready_probe = lua_toboolean(L, -1);
	lua_pop(L, 1);
	lua_pushinteger(L, hum_proc_id(p));
	return 1;
}

/* raw.spec_equal(id, spec) -> bool [-2, +1]: whether process id runs as
 * `spec` would (hum_proc_spec_equal): what live reload asks before it keeps
 * a running process rather than replacing it. */
static int l_spec_equal(lua_State *L)
{
	hum_proc *p = bind_checkproc(L, 1);
	luaL_checktype(L, 2, LUA_TTABLE);
	hum_spec sp;
	spec_read(L, 2, &sp);
	bool eq = hum_proc_spec_equal(p, &sp);
	spec_free(&sp);
	lua_pushboolean(L, eq);
	return 1;
}

/* raw.remove(id) -> true | nil, err [-1, +1|2]: retires the process
 * (hum_sup_remove): stopped with its grace if a run is live, and a
 * "removed" event once it is gone; its id names nothing afterwards.
 * "Operation already in progress" when removal was asked for already. */
static int l_remove(lua_State *L) { return push_result(L, hum_sup_remove(bind_needhost(L)->sup, bind_checkproc(L, 1))); }

static int l_start(lua_State *L) { return push_result(L, hum_proc_start(bind_checkproc(L, 1))); }
static int l_stop(lua_State *L) { return push_result(L, hum_proc_stop(bind_checkproc(L, 1))); }
static int l_restart(lua_State *L) { return push_result(L, hum_proc_restart(bind_checkproc(L, 1))); }
static int l_set_ready(lua_State *L) { return push_result(L, hum_proc_set_ready(bind_checkproc(L, 1))); }

static int l_set_pending(lua_State *L)
{
	hum_proc *p = bind_checkproc(L, 1);
	return push_result(L, hum_proc_set_pending(p, luaL_optstring(L, 2, "")));
}

/* raw.set_gate(id, reason|nil): close the start gate with a reason, or
 * open it (proc.h, hum_proc_set_gate) [-2, +1|2, raises] */
static int l_set_gate(lua_State *L)
{
	hum_proc *p = bind_checkproc(L, 1);
	return push_result(L, hum_proc_set_gate(p, luaL_optstring(L, 2, NULL)));
}

/* raw.fail(id, why): end the run as a failure for the restart policy
 * (proc.h, hum_proc_fail) [-2, +1|2, raises] */
static int l_fail(lua_State *L)
{
	hum_proc *p = bind_checkproc(L, 1);
	return push_result(L, hum_proc_fail(p, luaL_checkstring(L, 2)));
}

static int l_set_reason(lua_State *L)
{
	hum_proc *p = bind_checkproc(L, 1);
	return push_result(L, hum_proc_set_reason(p, luaL_checkstring(L, 2)));
}

/* raw.signal(id, sig) where sig is a name or a number [-2, +1|2, raises] */
static int l_signal(lua_State *L)
{
	hum_proc *p = bind_checkproc(L, 1);
	int sig = lua_type(L, 2) == LUA_TNUMBER ? (int)lua_tointeger(L, 2)
						: hum_signum(luaL_checkstring(L, 2));
	if (sig <= 0 || sig >= NSIG)
		return luaL_argerror(L, 2, "unknown signal");
	return push_result(L, hum_proc_signal(p, sig));
}


/* raw.find(name) -> id | nil [-1, +1] */
static int l_find(lua_State *L)
{
	bind_needhost(L);
	hum_proc *p = hum_sup_find(H->sup, luaL_checkstring(L, 1));
	if (p)
		lua_pushinteger(L, hum_proc_id(p));
	else
		lua_pushnil(L);
	return 1;
}

/* Selectors (state/select.h: the definition every command shares) ---------- */

/* Parses the selector at idx into *sel, or pushes nil, message and returns
 * false.  [-0, +0|2, raises on a non-string] */
static bool checkselector(lua_State *L, int idx, hum_selector *sel)
{
	size_t len;
	const char *text = luaL_checklstring(L, idx, &len);
	char err[200];
	if (hum_select_parse(sel, text, len, err, sizeof err) == 0)
		return true;
	lua_pushnil(L);
	lua_pushstring(L, err);
	return false;
}

typedef struct select_walk {
	lua_State *L;
	hum_selector sel;
	int n;
} select_walk;

static int select_one(hum_proc *p, void *ud)
{
	select_walk *w = ud;
	if (hum_select_snap(&w->sel, hum_proc_snap(p))) {
		lua_pushinteger(w->L, hum_proc_id(p));
		lua_rawseti(w->L, -2, ++w->n);
	}
	return 0;
}

/* raw.select(sel) -> { id... } in id order (empty: nothing matches) | nil, err
 * when sel is not a valid selector.  Matches the current snapshots (the loop
 * thread writes them, so it reads them without a section). [-1, +1|2, raises] */
static int l_select(lua_State *L)
{
	bind_needhost(L);
	select_walk w = { .L = L };
	if (!checkselector(L, 1, &w.sel))
		return 2;
	lua_newtable(L);
	hum_sup_foreach(H->sup, select_one, &w);
	return 1;
}

/* raw.select_match(sel, name, groups, base) -> boolean | nil, err: the same
 * test on a process not registered yet (a definition's instance: groups
 * comma separated, base "" unless it is a replica). [-4, +1|2, raises] */
static int l_select_match(lua_State *L)
{
	hum_selector sel;
	const char *name = luaL_checkstring(L, 2);
	const char *groups = luaL_optstring(L, 3, "");
	size_t base_len;
	const char *base = luaL_optlstring(L, 4, "", &base_len);
	if (base_len > 0 && (strncmp(name, base, base_len) != 0 || name[base_len] != '.'))
		return luaL_argerror(L, 4, "a replica's name is its base followed by a dot");
	if (!checkselector(L, 1, &sel))
		return 2;
	lua_pushboolean(L, hum_select_match(&sel, name, base_len, groups));
	return 1;
}


static int push_line(const hum_line *l, void *ud)
{
	lua_State *L = ud;
	lua_createtable(L, 0, 5);
	lua_pushnumber(L, (double)l->seq);            lua_setfield(L, -2, "seq");
	lua_pushnumber(L, (double)l->time_ms / 1000.0); lua_setfield(L, -2, "time");
	lua_pushstring(L, l->stream == HUM_STREAM_ERR ? "err" : "out");
	lua_setfield(L, -2, "stream");
	lua_pushlstring(L, l->data, l->len);          lua_setfield(L, -2, "line");
	lua_pushboolean(L, (l->flags & HUM_LINE_CONT) != 0); lua_setfield(L, -2, "continued");
	lua_rawseti(L, -2, (int)lua_objlen(L, -2) + 1);
	return 0;
}

/* raw.logs(id, n [, from_seq]) -> array of lines, oldest first | nil,
 * "no such process" (retired) [-3, +1|2]
 * The loop thread is the writer, so it reads the ring without a section. */
static int l_logs(lua_State *L)
{
	hum_proc *p = bind_findproc(L, 1);
	if (!p) { /* retired: its log went with it */
		lua_pushnil(L);
		lua_pushliteral(L, "no such process");
		return 2;
	}
	lua_Integer n = luaL_optinteger(L, 2, 100);
	lua_Number from = luaL_optnumber(L, 3, 0);
	hum_entry *e = hum_proc_entry(p);
	lua_newtable(L);
	if (from > 0)
		hum_logring_read(&e->log, (uint64_t)from, n > 0 ? (size_t)n : 0, push_line, L);
	else if (n > 0)
		hum_logring_tail(&e->log, (size_t)n, push_line, L);
	return 1;
}

/* raw.watch_lines(id, reactions, probe [, armed]) [-4, +0, raises]: whether
 * the process's lines become "line" events: always while `reactions` (it
 * has on("line") reactions), and with `probe` (it has a line readiness
 * probe) from each start attempt until the probe matched (armed = false).
 * Lines already queued are still delivered. */
static int l_watch_lines(lua_State *L)
{
	hum_proc *p = bind_checkproc(L, 1);
	hum_lineq *q = hum_host_lineq(H, hum_proc_id(p));
	if (!q)
		return luaL_error(L, "out of memory");
	q->reactions = lua_toboolean(L, 2);
	q->probe = lua_toboolean(L, 3);
	if (!lua_isnoneornil(L, 4))
		q->armed = lua_toboolean(L, 4);
	return 0;
}


static int l_now(lua_State *L)
{
	bind_needhost(L);
	lua_pushnumber(L, ev_now(H->loop));
	return 1;
}

static int l_time(lua_State *L)
{
	struct timeval tv;
	gettimeofday(&tv, NULL);
	lua_pushnumber(L, tv.tv_sec + tv.tv_usec / 1e6);
	return 1;
}

static int l_signum(lua_State *L)
{
	int n = lua_type(L, 1) == LUA_TNUMBER ? (int)lua_tointeger(L, 1)
					      : hum_signum(luaL_checkstring(L, 1));
	if (n <= 0 || n >= NSIG)
		lua_pushnil(L);
	else
		lua_pushinteger(L, n);
	return 1;
}

static int l_signame(lua_State *L)
{
	lua_pushstring(L, hum_signame((int)luaL_checkinteger(L, 1)));
	return 1;
}

static int l_kill_all(lua_State *L)
{
	bind_needhost(L);
	hum_sup_kill_all(H->sup);
	return 0;
}

static int l_active(lua_State *L)
{
	bind_needhost(L);
	lua_pushinteger(L, (lua_Integer)hum_sup_active(H->sup));
	return 1;
}

/* raw.notify_idle(): one "idle" event once nothing is active [-0, +0] */
static int l_notify_idle(lua_State *L)
{
	bind_needhost(L)->want_idle = true;
	return 0;
}

/* raw.quit(code): leave the loop once this callback returns. */
static int l_quit(lua_State *L)
{
	bind_needhost(L);
	H->exit_code = (int)luaL_optinteger(L, 1, 0);
	H->quitting = true;
	ev_break(H->loop, EVBREAK_ALL);
	return 0;
}

/* raw.log(msg): hum's own message: a log line (a line per line of msg) in
 * hum's ring and the foreground output, or stderr before the supervisor
 * exists. [-1, +0, raises] */
static int l_log(lua_State *L)
{
	size_t len;
	const char *msg = luaL_checklstring(L, 1, &len);
	if (H && H->st)
		hum_host_sys(H, msg, len);
	else
		fprintf(stderr, "hum: %s\n", msg);
	return 0;
}

/* raw.output(fd [, width]): foreground printer on fd (1 for `hum up`), the
 * name column `width` wide (at least as wide as "hum"). [-2, +0, raises] */
static int l_output(lua_State *L)
{
	bind_needhost(L);
	int rc = hum_host_output(H, (int)luaL_optinteger(L, 1, 1));
	if (rc < 0)
		return luaL_error(L, "cannot set up output: %s", strerror(-rc));
	size_t w = (size_t)luaL_optinteger(L, 2, 0);
	hum_output_set_width(H->out, w < strlen(HUM_SYS_NAME) ? strlen(HUM_SYS_NAME) : w);
	return 0;
}

/* raw.output_file(path [, max_bytes [, rotate]]) -> true | nil, message:
 * the output is hum's log file at path (rotated to path.1 at max_bytes,
 * default 64 MiB; with rotate, at once). [-3, +1|2, raises] */
static int l_output_file(lua_State *L)
{
	bind_needhost(L);
	const char *path = luaL_checkstring(L, 1);
	lua_Number max = luaL_optnumber(L, 2, 0);
	if (!H->out)
		return luaL_error(L, "raw.output_file before raw.output");
	int rc = hum_output_set_file(H->out, path, max > 0 ? (uint64_t)max : 0,
				     lua_toboolean(L, 3) ? HUM_LOGFILE_ROTATE : 0);
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, rc == -EBADF ? "the output is not that file" : strerror(-rc));
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* raw.output_reopen() -> true | nil, message: opens the log file's path
 * again (after an external rotation; e.g. on SIGUSR1). [-0, +1|2] */
static int l_output_reopen(lua_State *L)
{
	int rc = H && H->out ? hum_output_reopen(H->out) : -EINVAL;
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, rc == -EINVAL ? "the output is not a log file" : strerror(-rc));
		return 2;
	}
	lua_pushboolean(L, 1);
	return 1;
}

/* raw.output_stats() -> { dropped, unwritten, paused, error } of the
 * foreground printer, or nil without one. [-0, +1] */
static int l_output_stats(lua_State *L)
{
	if (!H || !H->out) {
		lua_pushnil(L);
		return 1;
	}
	lua_createtable(L, 0, 4);
	lua_pushnumber(L, (lua_Number)hum_output_dropped(H->out));
	lua_setfield(L, -2, "dropped");
	lua_pushnumber(L, (lua_Number)hum_output_unwritten(H->out));
	lua_setfield(L, -2, "unwritten");
	lua_pushboolean(L, hum_output_paused(H->out));
	lua_setfield(L, -2, "paused");
	if (hum_output_error(H->out)) {
		lua_pushstring(L, strerror(hum_output_error(H->out)));
		lua_setfield(L, -2, "error");
	}
	return 1;
}

/* raw.clock() -> monotonic seconds [-0, +1] */
static int l_clock(lua_State *L)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	lua_pushnumber(L, ts.tv_sec + ts.tv_nsec / 1e9);
	return 1;
}

/* raw.guard() -> monotonic seconds, Lua heap bytes, its limit [-0, +3]
 * What a long reaction checks every few thousand instructions (hum.reactions'
 * hook): its run time, its memory, and — since the loop is busy with it —
 * whether the world snapshot has waited too long to be published. */
static int l_guard(lua_State *L)
{
	if (H && H->st)
		hum_store_flush_due(H->st);
	l_clock(L);
	lua_pushnumber(L, (lua_Number)hum_memory_used());
	lua_pushnumber(L, (lua_Number)hum_memory_limit());
	return 3;
}

/* raw.ncpu() -> number of online processors [-0, +1] */
static int l_ncpu(lua_State *L)
{
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	lua_pushinteger(L, n > 0 ? n : 1);
	return 1;
}

extern char **environ;

/* raw.environ() -> { NAME = value } of hum's own environment [-0, +1] */
static int l_environ(lua_State *L)
{
	lua_newtable(L);
	for (char **e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		if (!eq)
			continue;
		lua_pushlstring(L, *e, (size_t)(eq - *e));
		lua_pushstring(L, eq + 1);
		lua_rawset(L, -3);
	}
	return 1;
}

/* raw.getcwd() -> the real working directory | nil, message [-0, +1|2]:
 * from getcwd(2), never from $PWD, which a caller that changed directory
 * (env -C, a subprocess with cwd=) leaves naming its own directory. */
static int l_getcwd(lua_State *L)
{
	char *d = getcwd(NULL, 0);
	if (!d) {
		int e = errno;
		lua_pushnil(L);
		lua_pushstring(L, strerror(e));
		return 2;
	}
	lua_pushstring(L, d);
	free(d);
	return 1;
}

/* raw.executable(path) -> true when path is a regular file this user may
 * execute [-1, +1] (`hum check` looks commands up on PATH with it). */
static int l_executable(lua_State *L)
{
	const char *path = luaL_checkstring(L, 1);
	struct stat st;
	lua_pushboolean(L, stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0);
	return 1;
}

static const luaL_Reg fns[] = {
	{ "getcwd", l_getcwd }, { "executable", l_executable },
	{ "environ", l_environ }, { "ncpu", l_ncpu }, { "clock", l_clock }, { "guard", l_guard },
	{ "set_dispatch", l_set_dispatch }, { "add", l_add },
	{ "spec_equal", l_spec_equal }, { "remove", l_remove }, { "start", l_start },
	{ "stop", l_stop }, { "restart", l_restart }, { "signal", l_signal },
	{ "set_pending", l_set_pending }, { "set_ready", l_set_ready },
	{ "set_reason", l_set_reason }, { "set_gate", l_set_gate }, { "fail", l_fail }, { "find", l_find },
	{ "select", l_select }, { "select_match", l_select_match },
	{ "logs", l_logs }, { "watch_lines", l_watch_lines }, { "now", l_now },
	{ "time", l_time }, { "signum", l_signum }, { "signame", l_signame },
	{ "kill_all", l_kill_all }, { "active", l_active }, { "notify_idle", l_notify_idle }, { "quit", l_quit },
	{ "log", l_log }, { "output", l_output }, { "output_file", l_output_file },
	{ "output_reopen", l_output_reopen }, { "output_stats", l_output_stats },
	{ NULL, NULL },
};

int luaopen_hum_raw(lua_State *L)
{
	lua_newtable(L);
	luaL_register(L, NULL, fns);
	hum_raw_timer_register(L);
	hum_raw_status_register(L);
	hum_raw_async_register(L);
	hum_raw_server_register(L);
	hum_raw_memory_register(L);
	lua_pushinteger(L, HUM_SERVICE); lua_setfield(L, -2, "SERVICE");
	lua_pushinteger(L, HUM_TASK);    lua_setfield(L, -2, "TASK");
	lua_pushinteger(L, HUM_RESTART_NO);         lua_setfield(L, -2, "RESTART_NO");
	lua_pushinteger(L, HUM_RESTART_ON_FAILURE); lua_setfield(L, -2, "RESTART_ON_FAILURE");
	lua_pushinteger(L, HUM_RESTART_ALWAYS);     lua_setfield(L, -2, "RESTART_ALWAYS");
	return 1;
}

/*
 * api_server.c — `hum.raw` primitives for the control socket's server side
 * (hum.control) and for `hum up -d`:
 *
 *   raw.api_start(dir) -> path, stale | nil, message     [-1, +2, raises]
 *   raw.api_reply(id, ok, json)                          [-3, +0, raises]
 *   raw.api_stop()                                       [-0, +0]
 *   raw.api_running() -> boolean                         [-0, +1]
 *   raw.api_socket_path(dir) -> path | nil, message      [-1, +1|2]
 *   raw.api_state_dir(dir) -> path | nil, message        [-1, +1|2]
 *   raw.detach(logfile [, timeout]) -> "child", pid, note
 *                 | "parent", ok, pid-or-message         [-2, +3, raises]
 *                 (the daemon's stdout and stderr are the log file, opened
 *                 as core/sup/logfile.h says; note: why a bad entry at its
 *                 path was replaced, or nil)
 *   raw.detach_notify([message])                         [-1, +0]
 *
 * Owns the process's one hum_api.  Commands arrive on the loop thread (the
 * api's ev_async on the default loop) and become "command" events, so Lua
 * sees them through the dispatcher like every other event; Lua answers with
 * raw.api_reply.  After raw.api_stop the api is gone and late replies are
 * dropped.  Also registers the client primitives (api_client.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>
#include <lua.h>

#include "api/api.h"
#include "sup/logfile.h"
#include "host.h"

void hum_raw_client_register(lua_State *L);

static hum_api *api;
static int detach_fd = -1; /* the detached child's pipe to its waiting parent */

/* Loop thread: a command request becomes an event for the dispatcher. */
static void on_command(void *ud, uint32_t id, const char *req, size_t len)
{
	hum_host *h = ud;
	hum_event *ev = hum_event_new("command", id);
	hum_event_str(ev, "request", req, len);
	hum_host_push(h, ev);
}

static int l_api_start(lua_State *L)
{
	const char *dir = luaL_checkstring(L, 1);
	if (!hum_host_current)
		return luaL_error(L, "raw.api_start: the supervisor is not running");
	if (api)
		return luaL_error(L, "raw.api_start: the control socket is already open");
	hum_api_opts o = {
		.store = hum_host_current->st,
		.loop = hum_host_current->loop,
		.on_command = on_command,
		.ud = hum_host_current,
	};
	/* Every process is registered by now, but the world snapshot is
	 * published by the loop's prepare watcher: without this, a client that
	 * connects before the first loop iteration would see no process at all
	 * (`hum ps` answering [] right after the socket appears). */
	hum_store_flush(hum_host_current->st);
	char err[512];
	bool stale = false;
	int rc = hum_api_start(&api, dir, &o, &stale, err, sizeof err);
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err[0] ? err : strerror(-rc));
		return 2;
	}
	lua_pushstring(L, hum_api_path(api));
	lua_pushboolean(L, stale);
	return 2;
}

static int l_api_reply(lua_State *L)
{
	lua_Integer id = luaL_checkinteger(L, 1);
	size_t len;
	bool ok = lua_toboolean(L, 2);
	const char *json = luaL_checklstring(L, 3, &len);
	/* A reply reports states the client may read next (`hum start web`
	 * then `hum ps`): publish the world they are in before the reply can
	 * reach the client, instead of at the end of this loop iteration. */
	if (hum_host_current && hum_host_current->st)
		hum_store_publish_world(hum_host_current->st);
	if (api && id > 0 && id <= UINT32_MAX)
		hum_api_reply(api, (uint32_t)id, ok, json, len);
	return 0;
}

static int l_api_stop(lua_State *L)
{
	/* followers and watchers get the last states before the end */
	if (hum_host_current && hum_host_current->st)
		hum_store_publish_world(hum_host_current->st);
	hum_api *a = api;
	api = NULL;
	hum_api_stop(a);
	return 0;
}

static int l_api_running(lua_State *L)
{
	lua_pushboolean(L, api != NULL);
	return 1;
}

static int l_api_socket_path(lua_State *L)
{
	char path[PATH_MAX];
	int rc = hum_api_socket_path(luaL_checkstring(L, 1), path, sizeof path);
	if (rc < 0) {
		lua_pushnil(L);
		lua_pushstring(L, strerror(-rc));
		return 2;
	}
	lua_pushstring(L, path);
	return 1;
}

static int l_api_state_dir(lua_State *L)
{
	char path[PATH_MAX], err[512];
	if (hum_api_state_dir(luaL_checkstring(L, 1), path, sizeof path, err, sizeof err) < 0) {
		lua_pushnil(L);
		lua_pushstring(L, err);
		return 2;
	}
	lua_pushstring(L, path);
	return 1;
}

static void write_all(int fd, const char *s, size_t n)
{
	while (n) {
		ssize_t k = write(fd, s, n);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return;
		s += k;
		n -= (size_t)k;
	}
}

/* Double fork + setsid.  The original process waits on a pipe for the
 * daemon's first byte: 'L' + pid once it listens, 'E' + message if it
 * failed; EOF with neither means it died first.  Must run before any thread
 * or the loop exists. */
static int l_detach(lua_State *L)
{
	const char *logfile = luaL_checkstring(L, 1);
	double timeout = luaL_optnumber(L, 2, 60);
	if (hum_host_current || api)
		return luaL_error(L, "raw.detach: must be called before the supervisor starts");
	fflush(stdout);
	fflush(stderr);
	int p[2];
	if (pipe2(p, O_CLOEXEC) < 0)
		return luaL_error(L, "raw.detach: pipe: %s", strerror(errno));
	pid_t pid = fork();
	if (pid < 0) {
		int e = errno;
		close(p[0]);
		close(p[1]);
		return luaL_error(L, "raw.detach: fork: %s", strerror(e));
	}
	if (pid == 0) {
		close(p[0]);
		char msg[600];
		if (setsid() < 0) {
			snprintf(msg, sizeof msg, "Esetsid: %s", strerror(errno));
			write_all(p[1], msg, strlen(msg));
			_exit(1);
		}
		pid_t g = fork();
		if (g < 0) {
			snprintf(msg, sizeof msg, "Efork: %s", strerror(errno));
			write_all(p[1], msg, strlen(msg));
			_exit(1);
		}
		if (g > 0)
			_exit(0); /* the session leader goes; the daemon can never get a tty */
		/* Opened without following links and only if it is our own
		 * regular file (logfile.h).  Not rotated yet: only once this
		 * daemon holds the project's lock (a second `hum up -d` must not
		 * move the running one's log away): hum_output_set_file. */
		char note[512], err[512];
		int null = open("/dev/null", O_RDWR | O_CLOEXEC);
		int out = hum_logfile_open(logfile, 0, note, sizeof note, err, sizeof err);
		if (null < 0 || out < 0) {
			snprintf(msg, sizeof msg, "Ecannot open %s", out < 0 ? err : "/dev/null");
			write_all(p[1], msg, strlen(msg));
			_exit(1);
		}
		dup2(null, 0);
		dup2(out, 1);
		dup2(out, 2);
		/* with a standard fd closed at start, open() may have returned
		 * it: closing that would undo the dup2 above */
		if (null > 2)
			close(null);
		if (out > 2)
			close(out);
		detach_fd = p[1];
		lua_pushliteral(L, "child");
		lua_pushinteger(L, getpid());
		if (note[0])
			lua_pushstring(L, note);
		else
			lua_pushnil(L);
		return 3;
	}
	close(p[1]);
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	char buf[1024];
	size_t len = 0;
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	bool timed_out = false;
	while (len < sizeof buf - 1) {
		clock_gettime(CLOCK_MONOTONIC, &t1);
		double left = timeout - ((double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
		if (left <= 0) {
			timed_out = true;
			break;
		}
		struct pollfd pf = { p[0], POLLIN, 0 };
		int r = poll(&pf, 1, (int)(left * 1000) + 1);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			continue;
		ssize_t k = read(p[0], buf + len, sizeof buf - 1 - len);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		len += (size_t)k;
	}
	close(p[0]);
	buf[len] = 0;
	lua_pushliteral(L, "parent");
	if (len > 0 && buf[0] == 'L') {
		lua_pushboolean(L, 1);
		lua_pushstring(L, buf + 1);
	} else if (len > 0 && buf[0] == 'E') {
		lua_pushboolean(L, 0);
		lua_pushstring(L, buf + 1);
	} else {
		lua_pushboolean(L, 0);
		lua_pushstring(L, timed_out ? "timed out waiting for the background hum to listen"
					    : "the background hum exited before it was listening");
	}
	return 3;
}

static int l_detach_notify(lua_State *L)
{
	const char *msg = luaL_optstring(L, 1, NULL);
	if (detach_fd < 0)
		return 0;
	char buf[1024];
	if (msg)
		snprintf(buf, sizeof buf, "E%s", msg);
	else
		snprintf(buf, sizeof buf, "L%ld", (long)getpid());
	write_all(detach_fd, buf, strlen(buf));
	close(detach_fd);
	detach_fd = -1;
	return 0;
}

static const luaL_Reg fns[] = {
	{ "api_start", l_api_start }, { "api_reply", l_api_reply }, { "api_stop", l_api_stop },
	{ "api_running", l_api_running }, { "api_socket_path", l_api_socket_path },
	{ "api_state_dir", l_api_state_dir }, { "detach", l_detach },
	{ "detach_notify", l_detach_notify },
	{ NULL, NULL },
};

/* Adds the functions above and the client's to the table on top. */
void hum_raw_server_register(lua_State *L)
{
	luaL_register(L, NULL, fns);
	hum_raw_client_register(L);
}

/* For the executable's teardown: the API thread reads the store, so it must
 * be gone before the store is freed (main.c, before hum_host_fini). */
void hum_server_shutdown(void)
{
	hum_api *a = api;
	api = NULL;
	hum_api_stop(a);
}

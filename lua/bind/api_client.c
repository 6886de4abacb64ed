/*
 * api_client.c — blocking control-socket client primitives for the CLI
 * (hum.cli.conn), registered into `hum.raw` by api_server.c:
 *
 *   raw.client_connect(path) -> conn | nil, message, errname   [-1, +1|3]
 *       errname: "ENOENT", "ECONNREFUSED", "EACCES", ... so the CLI can
 *       tell "no running instance" (exit 3) from other failures.
 *       Before anything is sent the server is checked: the path must not
 *       be a symlink (lstat: a repository can ship .hum/hum.sock pointing
 *       at another user's socket) and the peer must run as our euid
 *       (SO_PEERCRED), else "EPERM" and nothing was written.
 *   conn:send(string) -> true | nil, message                    [-1, +1|2]
 *   conn:read_line([timeout]) -> line | nil, "timeout" | nil, "eof"
 *       | nil, message (without the newline; timeout in seconds, nil =
 *       wait forever; a reset connection counts as "eof")      [-1, +1|2]
 *   conn:shutdown()  half-close: no more requests              [-0, +0]
 *   conn:watch_server() -> true | nil, message                 [-1, +1|2]
 *       a pidfd of the server's process (its pid from SO_PEERCRED),
 *       for waiting on its exit after the connection closed (hum down:
 *       a server closes its connections before its last steps).  It
 *       names that server once a reply came after this call (the server
 *       lived when it was opened, so its pid could not be reused).
 *   conn:wait_server(timeout) -> true | nil, "timeout" | nil, message
 *       true once the watched server's process has exited (seconds;
 *       needs watch_server)                                    [-2, +1|2]
 *   conn:close()  the connection and the pidfd                 [-0, +0]
 *   raw.isatty(fd) -> boolean                                  [-1, +1]
 *   raw.realpath(path) -> path | nil, message                  [-1, +1|2]
 *   raw.json_member(text, key) -> json | nil, message          [-2, +1|2]
 *       member `key` of the JSON object `text`, re-encoded compactly by
 *       jansson (a real parser and encoder: empty arrays stay arrays,
 *       integers stay exact, key order is kept)
 *   raw.client_trap_signals()  SIGINT, SIGTERM and SIGHUP no longer end
 *       the client; they are recorded for client_caught_signal (one
 *       that was ignored when hum started stays ignored)       [-0, +0]
 *   raw.client_caught_signal() -> signo | nil (and forgets it)  [-0, +1]
 *       For a client that must tell the server something before it
 *       goes (`hum run` inside a running hum stops its task on Ctrl-C):
 *       it polls with short read timeouts and checks after each.
 *
 * A conn owns its fd and its read buffer; __gc closes it.
 */
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include <jansson.h>
#include <lauxlib.h>
#include <lua.h>

#define CONN_MT "hum.conn"
#define MAX_LINE (256u << 20)

typedef struct conn {
	int fd;
	int server_fd; /* watch_server's pidfd, or -1 */
	char *buf;
	size_t off, len, cap;
} conn;

static conn *checkconn(lua_State *L)
{
	conn *c = luaL_checkudata(L, 1, CONN_MT);
	if (c->fd < 0)
		luaL_argerror(L, 1, "connection is closed");
	return c;
}

static const char *errname(int e)
{
	switch (e) {
	case ENOENT: return "ENOENT";
	case ECONNREFUSED: return "ECONNREFUSED";
	case EACCES: return "EACCES";
	case ENOTDIR: return "ENOTDIR";
	case ENAMETOOLONG: return "ENAMETOOLONG";
	case EAGAIN: return "EAGAIN";
	case EPERM: return "EPERM";
	default: return "E?";
	}
}

static int l_connect(lua_State *L)
{
	size_t n;
	const char *path = luaL_checklstring(L, 1, &n);
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	if (n >= sizeof sa.sun_path) {
		lua_pushnil(L);
		lua_pushstring(L, strerror(ENAMETOOLONG));
		lua_pushstring(L, "ENAMETOOLONG");
		return 3;
	}
	memcpy(sa.sun_path, path, n + 1);
	struct stat sb;
	if (lstat(path, &sb) == 0 && S_ISLNK(sb.st_mode)) {
		lua_pushnil(L);
		lua_pushfstring(L, "%s is a symbolic link, not hum's socket; refusing to use it", path);
		lua_pushstring(L, "EPERM");
		return 3;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0) {
		int e = errno;
		lua_pushnil(L);
		lua_pushstring(L, strerror(e));
		lua_pushstring(L, errname(e));
		return 3;
	}
	int rc;
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		int e = errno;
		close(fd);
		lua_pushnil(L);
		lua_pushstring(L, strerror(e));
		lua_pushstring(L, errname(e));
		return 3;
	}
	/* Whose server is this?  Checked before the first byte is sent: a
	 * request (eval code, signal targets) must never reach another user. */
	struct ucred cr;
	socklen_t cl = sizeof cr;
	int got = getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl);
	if (got < 0 || cr.uid != geteuid()) {
		char msg[160];
		if (got == 0)
			snprintf(msg, sizeof msg, "the server runs as uid %u, not as uid %u; refusing to talk to it",
				 (unsigned)cr.uid, (unsigned)geteuid());
		else
			snprintf(msg, sizeof msg, "cannot check the server's credentials: %s", strerror(errno));
		close(fd);
		lua_pushnil(L);
		lua_pushstring(L, msg);
		lua_pushstring(L, "EPERM");
		return 3;
	}
	conn *c = lua_newuserdata(L, sizeof *c);
	memset(c, 0, sizeof *c);
	c->fd = fd;
	c->server_fd = -1;
	luaL_getmetatable(L, CONN_MT);
	lua_setmetatable(L, -2);
	return 1;
}

static int l_send(lua_State *L)
{
	conn *c = checkconn(L);
	size_t n;
	const char *s = luaL_checklstring(L, 2, &n);
	while (n) {
		ssize_t k = send(c->fd, s, n, MSG_NOSIGNAL);
		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			int e = errno;
			lua_pushnil(L);
			lua_pushstring(L, e == EPIPE || e == ECONNRESET ? "connection closed by hum" : strerror(e));
			return 2;
		}
		s += k;
		n -= (size_t)k;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int l_read_line(lua_State *L)
{
	conn *c = checkconn(L);
	double timeout = luaL_optnumber(L, 2, -1);
	double end = timeout >= 0 ? mono() + timeout : 0;
	size_t scan = c->off;
	while (1) {
		char *nl = c->len > scan ? memchr(c->buf + scan, '\n', c->len - scan) : NULL;
		if (nl) {
			size_t n = (size_t)(nl - (c->buf + c->off));
			lua_pushlstring(L, c->buf + c->off, n);
			c->off += n + 1;
			if (c->off == c->len)
				c->off = c->len = 0;
			return 1;
		}
		scan = c->len;
		if (c->len - c->off > MAX_LINE) {
			lua_pushnil(L);
			lua_pushliteral(L, "response line too long");
			return 2;
		}
		if (timeout >= 0) {
			double left = end - mono();
			if (left <= 0) {
				lua_pushnil(L);
				lua_pushliteral(L, "timeout");
				return 2;
			}
			struct pollfd p = { c->fd, POLLIN, 0 };
			int r = poll(&p, 1, (int)(left * 1000) + 1);
			if (r < 0 && errno != EINTR) {
				int e = errno;
				lua_pushnil(L);
				lua_pushstring(L, strerror(e));
				return 2;
			}
			if (r <= 0)
				continue;
		}
		if (c->off > 0 && c->off == c->len)
			c->off = c->len = scan = 0;
		if (c->cap - c->len < 65536) {
			if (c->off > 0) {
				memmove(c->buf, c->buf + c->off, c->len - c->off);
				c->len -= c->off;
				scan -= c->off;
				c->off = 0;
			}
			if (c->cap - c->len < 65536) {
				size_t cap = c->cap ? c->cap * 2 : 131072;
				char *b = realloc(c->buf, cap);
				if (!b)
					return luaL_error(L, "out of memory");
				c->buf = b;
				c->cap = cap;
			}
		}
		ssize_t k = recv(c->fd, c->buf + c->len, c->cap - c->len, 0);
		if (k > 0) {
			c->len += (size_t)k;
		} else if (k == 0 || (k < 0 && errno == ECONNRESET)) {
			lua_pushnil(L);
			lua_pushliteral(L, "eof");
			return 2;
		} else if (errno != EINTR && errno != EAGAIN) {
			int e = errno;
			lua_pushnil(L);
			lua_pushstring(L, strerror(e));
			return 2;
		}
	}
}

static int l_shutdown(lua_State *L)
{
	conn *c = checkconn(L);
	shutdown(c->fd, SHUT_WR);
	return 0;
}

static int l_watch_server(lua_State *L)
{
	conn *c = checkconn(L);
	if (c->server_fd < 0) {
		struct ucred cr;
		socklen_t cl = sizeof cr;
		int fd = -1;
		if (getsockopt(c->fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) == 0) {
			if (cr.pid > 0) /* 0: the server is in another pid namespace */
				fd = (int)syscall(SYS_pidfd_open, cr.pid, 0); /* close-on-exec */
			else
				errno = ESRCH;
		}
		if (fd < 0) {
			int e = errno;
			lua_pushnil(L);
			lua_pushstring(L, strerror(e));
			return 2;
		}
		c->server_fd = fd;
	}
	lua_pushboolean(L, 1);
	return 1;
}

static int l_wait_server(lua_State *L)
{
	conn *c = luaL_checkudata(L, 1, CONN_MT);
	double timeout = luaL_checknumber(L, 2);
	if (c->server_fd < 0)
		return luaL_error(L, "wait_server: no server watched (watch_server first)");
	double end = mono() + timeout;
	for (;;) {
		double left = end - mono();
		struct pollfd p = { c->server_fd, POLLIN, 0 };
		int r = poll(&p, 1, left > 0 ? (int)(left * 1000) + 1 : 0);
		if (r > 0) {
			lua_pushboolean(L, 1);
			return 1;
		}
		if (r < 0 && errno != EINTR) {
			int e = errno;
			lua_pushnil(L);
			lua_pushstring(L, strerror(e));
			return 2;
		}
		if (left <= 0) {
			lua_pushnil(L);
			lua_pushliteral(L, "timeout");
			return 2;
		}
	}
}

static int l_close(lua_State *L)
{
	conn *c = luaL_checkudata(L, 1, CONN_MT);
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	if (c->server_fd >= 0)
		close(c->server_fd);
	c->server_fd = -1;
	free(c->buf);
	c->buf = NULL;
	c->off = c->len = c->cap = 0;
	return 0;
}

static int l_tostring(lua_State *L)
{
	conn *c = luaL_checkudata(L, 1, CONN_MT);
	lua_pushfstring(L, "hum.conn (fd %d)", c->fd);
	return 1;
}

static int l_isatty(lua_State *L)
{
	lua_pushboolean(L, isatty((int)luaL_checkinteger(L, 1)) == 1);
	return 1;
}

static volatile sig_atomic_t caught;

static void on_signal(int sig)
{
	caught = sig;
}

static int l_trap_signals(lua_State *L)
{
	static const int sigs[] = { SIGINT, SIGTERM, SIGHUP };
	/* no SA_RESTART: a blocked poll returns (read_line retries it until
	 * its timeout, so callers use short timeouts and check in between) */
	struct sigaction sa = { .sa_handler = on_signal }, old;
	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof sigs / sizeof sigs[0]; i++) {
		/* one ignored by whoever started us (nohup, a background job's
		 * SIGINT) stays ignored */
		if (sigaction(sigs[i], NULL, &old) == 0 && old.sa_handler == SIG_IGN)
			continue;
		sigaction(sigs[i], &sa, NULL);
	}
	return 0;
}

static int l_caught_signal(lua_State *L)
{
	int sig = caught;
	caught = 0;
	if (sig == 0)
		lua_pushnil(L);
	else
		lua_pushinteger(L, sig);
	return 1;
}

static int l_realpath(lua_State *L)
{
	char out[PATH_MAX];
	if (!realpath(luaL_checkstring(L, 1), out)) {
		int e = errno;
		lua_pushnil(L);
		lua_pushstring(L, strerror(e));
		return 2;
	}
	lua_pushstring(L, out);
	return 1;
}

static int l_json_member(lua_State *L)
{
	size_t len;
	const char *text = luaL_checklstring(L, 1, &len);
	const char *key = luaL_checkstring(L, 2);
	json_error_t jerr;
	json_t *root = json_loadb(text, len, 0, &jerr);
	json_t *v = root ? json_object_get(root, key) : NULL;
	char *out = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15)) : NULL;
	json_decref(root);
	if (!out) {
		lua_pushnil(L);
		lua_pushstring(L, root ? "no such member" : jerr.text);
		return 2;
	}
	lua_pushstring(L, out);
	free(out);
	return 1;
}

static const luaL_Reg conn_methods[] = {
	{ "send", l_send }, { "read_line", l_read_line }, { "shutdown", l_shutdown },
	{ "watch_server", l_watch_server }, { "wait_server", l_wait_server },
	{ "close", l_close }, { NULL, NULL },
};

static const luaL_Reg fns[] = {
	{ "client_connect", l_connect }, { "isatty", l_isatty }, { "realpath", l_realpath },
	{ "json_member", l_json_member },
	{ "client_trap_signals", l_trap_signals }, { "client_caught_signal", l_caught_signal },
	{ NULL, NULL },
};

void hum_raw_client_register(lua_State *L)
{
	if (luaL_newmetatable(L, CONN_MT)) {
		lua_newtable(L);
		luaL_register(L, NULL, conn_methods);
		lua_setfield(L, -2, "__index");
		lua_pushcfunction(L, l_close);
		lua_setfield(L, -2, "__gc");
		lua_pushcfunction(L, l_tostring);
		lua_setfield(L, -2, "__tostring");
	}
	lua_pop(L, 1);
	luaL_register(L, NULL, fns);
}

/*
 * host.c — the loop thread's glue between the C supervisor and Lua: set-up
 * and teardown, the supervisor's hooks (each publish, line batch, removal
 * and log message becomes an event or a line of hum's own), hum's own lines
 * (log ring and foreground printer), the protected call, and the
 * per-iteration flush.  The event queue is events.c's, the lifecycle lines
 * lifecycle.c's, signals signals.c's.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <lauxlib.h>

#include "bind_priv.h"
#include "memory.h"
#include "signames.h"

hum_host *hum_host_current;

/* hum's own message as log lines: one per line of the message (a traceback
 * has many), appended to hum's ring in the store (so `hum logs` and its
 * followers see them, sequenced with the processes' lines) and handed to
 * the foreground printer like a process's batch. */
static void sys_lines(hum_host *h, const char *msg, size_t len, bool print)
{
	hum_logring *r = &hum_store_sys(h->st)->log;
	hum_line ls[32];
	size_t n = 0;
	int64_t t = bind_now_ms();
	const char *p = msg, *end = msg + len;
	while (end > p && end[-1] == '\n')
		end--; /* a message's own trailing newline adds no line */
	for (;;) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));
		const char *e = nl ? nl : end;
		/* longer than a line may be: pieces marked CONT, as lines.c does */
		bool cont = (size_t)(e - p) > HUM_LINE_MAX;
		size_t len1 = cont ? HUM_LINE_MAX : (size_t)(e - p);
		int flags = cont ? HUM_LINE_CONT : 0;
		hum_line *l = &ls[n++];
		*l = (hum_line){ .time_ms = t, .data = p, .len = (uint32_t)len1,
				 .stream = HUM_STREAM_SYS, .flags = (uint8_t)flags };
		l->seq = hum_logring_append(r, HUM_STREAM_SYS, flags, t, p, len1);
		bool last = !cont && !nl;
		if (n == sizeof ls / sizeof ls[0] || last) {
			hum_logring_commit(r);
			if (print && h->out)
				hum_output_lines(h->out, HUM_SYS_ID, HUM_SYS_NAME, ls, n);
			else if (print) /* before the printer exists */
				for (size_t i = 0; i < n; i++)
					fprintf(stderr, "hum: %.*s\n", (int)ls[i].len, ls[i].data);
			n = 0;
		}
		if (last)
			break;
		p = cont ? p + len1 : nl + 1;
	}
}

void hum_host_sys(hum_host *h, const char *msg, size_t len)
{
	sys_lines(h, msg, len, true);
}

/* The printer's own messages (drops, failed writes, rotation): it has
 * queued them itself; they go into hum's log too. */
static void output_note(void *ud, const char *msg, size_t len)
{
	sys_lines(ud, msg, len, false);
}

/* The printer is behind: stop reading every child's pipes until it has
 * caught up (they wait on their pipe, as they would on a terminal). */
static void output_pressure(void *ud, bool pause)
{
	hum_host *h = ud;
	if (h->sup)
		hum_sup_pause_output(h->sup, pause);
}

int hum_host_output(hum_host *h, int fd)
{
	if (h->out)
		return 0;
	h->out = hum_output_new(h->loop, fd);
	if (!h->out)
		return -(errno ? errno : ENOMEM);
	hum_output_set_hooks(h->out, output_pressure, output_note, h);
	return 0;
}

void hum_host_report(hum_host *h, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	va_start(ap, fmt);
	int n = hum_output_vformat(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (h && h->st)
		hum_host_sys(h, buf, (size_t)n);
	else
		fprintf(stderr, "hum: %s\n", buf);
}

static int traceback(lua_State *L)
{
	const char *msg = lua_tostring(L, 1);
	if (!msg) {
		if (luaL_callmeta(L, 1, "__tostring") && lua_type(L, -1) == LUA_TSTRING)
			return 1;
		msg = lua_pushfstring(L, "(error object is a %s value)", luaL_typename(L, 1));
	}
	luaL_traceback(L, L, msg, 1);
	return 1;
}

int hum_lua_pcall(lua_State *L, int nargs, int nresults)
{
	int base = lua_gettop(L) - nargs;
	lua_pushcfunction(L, traceback);
	lua_insert(L, base);
	int rc = lua_pcall(L, nargs, nresults, base);
	lua_remove(L, base);
	if (rc != 0) {
		const char *msg = lua_tostring(L, -1) ? lua_tostring(L, -1) : "?";
		if (rc == LUA_ERRMEM || hum_memory_tripped())
			hum_host_report(hum_host_current, "lua error: %s (the Lua heap is limited to "
					"%zu MiB: HUM_LUA_MEMORY or hum.limits { lua_memory = ... })",
					msg, hum_memory_limit() >> 20);
		else
			hum_host_report(hum_host_current, "lua error: %s", msg);
		lua_pop(L, 1);
	}
	hum_memory_settle(L);
	return rc;
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	hum_host *h = w->data;
	/* A process's state can be final while a descendant still holds its
	 * pipe; Lua waits for the last pipe before it exits, so it asks to be
	 * told when nothing is active any more. */
	if (h->want_idle && hum_sup_active(h->sup) == 0) {
		h->want_idle = false;
		hum_host_push(h, hum_event_new("idle", 0));
	}
	bind_dispatch(h);
	if (h->out)
		hum_output_flush(h->out);
	hum_store_flush(h->st);
}

static bool is_over(int state)
{
	return state == HUM_STOPPED || state == HUM_SUCCEEDED || state == HUM_FAILED ||
	       state == HUM_BACKOFF;
}

/* Every publish is an event: a start attempt, an exit, a spawn error that
 * repeats the previous one (failed -> failed), a readiness change or a new
 * reason.  Lua decides what each means; nothing is filtered away here. */
static void state_hook(hum_proc *p, const hum_snap *old, const hum_snap *now, void *ud)
{
	hum_host *h = ud;
	hum_event *ev = hum_event_new("state", now->id);
	ev->time_ms = now->changed_at_ms ? now->changed_at_ms : ev->time_ms;
	hum_event_cstr(ev, "state", hum_state_name(now->state));
	hum_event_cstr(ev, "old", hum_state_name(old ? old->state : now->state));
	hum_event_cstr(ev, "reason", now->reason ? now->reason : "");
	if (now->exit_code >= 0)
		hum_event_int(ev, "code", now->exit_code);
	if (now->term_signal > 0)
		hum_event_cstr(ev, "signal", hum_signame(now->term_signal));
	hum_event_bool(ev, "spawn_error", now->spawn_error);
	/* An attempt began (a spawn, successful or not) and/or ended (the
	 * state became final or back-off), so Lua need not infer it from a
	 * pair of state names: failed -> failed is a new attempt when run
	 * changed, and only a reason when it did not. */
	bool began = !old || now->run != old->run;
	bool ended = is_over(now->state) && (began || !is_over(old->state));
	hum_event_bool(ev, "began", began);
	hum_event_bool(ev, "ended", ended);
	hum_event_int(ev, "run", now->run);
	if (now->id < h->lineq_cap) {
		hum_lineq *q = &h->lineq[now->id];
		ev->lines_before = q->pushed;
		if (began)
			q->armed = q->probe; /* before the new run's first read */
	}
	hum_event_int(ev, "restarts", now->restarts);
	hum_event_int(ev, "pid", now->pid);
	/* What is left of the run after its main process exited (remaining
	 * processes; while `counting`, the count is on its way), and a main
	 * process stopped by a signal: only when set (absent: 0, false), so a
	 * state event stays within HUM_EV_FIELDS — remaining and counting
	 * come after an exit (code or signal, never both, and no pid), paused
	 * only while the main process lives. */
	if (now->remaining)
		hum_event_int(ev, "remaining", now->remaining);
	if (now->counting)
		hum_event_bool(ev, "counting", true);
	if (now->paused)
		hum_event_bool(ev, "paused", true);
	hum_host_push(h, ev);
	bind_lifecycle(h, old, now, began, ended);
}

static void lines_hook(hum_proc *p, const hum_line *lines, size_t n, void *ud)
{
	hum_host *h = ud;
	uint32_t id = hum_proc_id(p);
	if (h->out)
		hum_output_lines(h->out, id, hum_proc_name(p), lines, n);
	if (id >= h->lineq_cap)
		return;
	hum_lineq *q = &h->lineq[id];
	if (!q->reactions && !(q->probe && q->armed))
		return;
	for (size_t i = 0; i < n; i++) {
		hum_event *ev = hum_event_new("line", id);
		ev->time_ms = lines[i].time_ms;
		hum_event_str(ev, "line", lines[i].data, lines[i].len);
		hum_event_cstr(ev, "stream", lines[i].stream == HUM_STREAM_ERR ? "err" : "out");
		hum_event_bool(ev, "continued", (lines[i].flags & HUM_LINE_CONT) != 0);
		hum_event_int(ev, "seq", (int64_t)lines[i].seq);
		bind_push_line(h, p, ev);
	}
}

/* hum_sup_remove retired the process: its id names nothing from now on. */
static void removed_hook(hum_proc *p, void *ud)
{
	hum_host *h = ud;
	uint32_t id = hum_proc_id(p);
	hum_event *ev = hum_event_new("removed", id);
	hum_event_cstr(ev, "name", hum_proc_name(p));
	hum_host_push(h, ev);
	if (id < h->lineq_cap)
		h->lineq[id].reactions = h->lineq[id].probe = false;
}

static void log_hook(hum_proc *p, const char *msg, void *ud)
{
	hum_host *h = ud;
	if (p)
		hum_host_report(h, "%s: %s", hum_proc_name(p), msg);
	else
		hum_host_report(h, "%s", msg);
}

int hum_host_init(hum_host *h)
{
	static const hum_sup_hooks hooks = {
		.state = state_hook, .lines = lines_hook, .log = log_hook, .removed = removed_hook,
	};

	hum_host_current = h;
	h->dispatch_ref = LUA_NOREF;
	h->loop = ev_default_loop(EVFLAG_AUTO);
	if (!h->loop)
		return -ENOSYS;
	/* A closed terminal or reader must not kill hum: EPIPE is handled. */
	signal(SIGPIPE, SIG_IGN);
	h->st = hum_store_new(0);
	if (!h->st)
		return -ENOMEM;
	h->sup = hum_sup_new(h->loop, h->st, &hooks, h);
	if (!h->sup)
		return -errno ? -errno : -ENOMEM;
	ev_prepare_init(&h->prepare, prepare_cb);
	h->prepare.data = h;
	ev_prepare_start(h->loop, &h->prepare);
	bind_events_init(h);
	bind_signals_start(h);
	return 0;
}

void hum_host_fini(hum_host *h)
{
	bind_events_free(h);
	if (h->sup)
		hum_sup_free(h->sup);
	h->sup = NULL;
	if (h->out) {
		hum_output_flush(h->out);
		hum_output_free(h->out);
		h->out = NULL;
	}
	if (h->st)
		hum_store_free(h->st);
	h->st = NULL;
	free(h->lineq);
	h->lineq = NULL;
	h->lineq_cap = 0;
}

/*
 * host.c — the loop thread's glue between the C supervisor and Lua: the
 * event queue, the protected call, signals, and the per-iteration flush.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <lauxlib.h>

#include "host.h"
#include "signames.h"

hum_host *hum_host_current;

hum_event *hum_event_new(int kind, uint32_t id)
{
	hum_event *ev = calloc(1, sizeof *ev);
	if (!ev) {
		fprintf(stderr, "hum: out of memory\n");
		abort();
	}
	ev->kind = kind;
	ev->id = id;
	return ev;
}

void hum_event_free(hum_event *ev)
{
	free(ev->s);
	free(ev->s2);
	free(ev->p);
	free(ev);
}

void hum_host_push(hum_host *h, hum_event *ev)
{
	if (h->tail)
		h->tail->next = ev;
	else
		h->head = ev;
	h->tail = ev;
	h->queued++;
	/* The prepare watcher delivers it before the loop next blocks. */
	if (!ev_is_active(&h->idle))
		ev_idle_start(h->loop, &h->idle);
}

void hum_host_report(hum_host *h, const char *fmt, ...)
{
	char buf[8192];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (h && h->out)
		hum_output_sys(h->out, "%s", buf);
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
		hum_host_report(hum_host_current, "lua error: %s",
				lua_tostring(L, -1) ? lua_tostring(L, -1) : "?");
		lua_pop(L, 1);
	}
	return rc;
}

/* Pushes one event as dispatcher arguments; returns how many. */
static int push_event(lua_State *L, const hum_event *ev)
{
	switch (ev->kind) {
	case HEV_STATE:
		lua_pushliteral(L, "state");
		lua_pushinteger(L, ev->id);
		lua_pushstring(L, hum_state_name(ev->a));  /* new */
		lua_pushstring(L, hum_state_name(ev->b));  /* old */
		lua_pushstring(L, ev->s ? ev->s : "");     /* reason */
		if (ev->c >= 0)
			lua_pushinteger(L, ev->c);          /* exit code */
		else
			lua_pushnil(L);
		if (ev->t > 0)
			lua_pushstring(L, hum_signame((int)ev->t));
		else
			lua_pushnil(L);
		return 7;
	case HEV_LINE:
		lua_pushliteral(L, "line");
		lua_pushinteger(L, ev->id);
		lua_pushlstring(L, ev->s, ev->slen);
		lua_pushstring(L, ev->a == HUM_STREAM_ERR ? "err" : "out");
		lua_pushnumber(L, (double)ev->t / 1000.0);
		lua_pushboolean(L, (ev->b & HUM_LINE_CONT) != 0);
		return 6;
	case HEV_TIMER:
		lua_pushliteral(L, "timer");
		lua_pushinteger(L, ev->id);
		return 2;
	case HEV_SIGNAL:
		lua_pushliteral(L, "signal");
		lua_pushinteger(L, ev->a);
		return 2;
	case HEV_EXEC:
		lua_pushliteral(L, "exec");
		lua_pushinteger(L, ev->id);
		lua_pushinteger(L, ev->a); /* code, -1 if signalled or failed */
		lua_pushinteger(L, ev->b); /* signal */
		lua_pushlstring(L, ev->s ? ev->s : "", ev->slen);
		lua_pushlstring(L, ev->s2 ? ev->s2 : "", ev->s2len);
		if (ev->p)
			lua_pushstring(L, (const char *)ev->p); /* spawn error / timeout */
		else
			lua_pushnil(L);
		return 7;
	case HEV_PROBE:
		lua_pushliteral(L, "probe");
		lua_pushinteger(L, ev->id);
		lua_pushboolean(L, ev->a);
		lua_pushinteger(L, ev->b);            /* http status */
		lua_pushstring(L, ev->s ? ev->s : ""); /* error text */
		return 5;
	case HEV_IDLE:
		lua_pushliteral(L, "idle");
		return 1;
	case HEV_COMMAND:
		lua_pushliteral(L, "command");
		lua_pushinteger(L, ev->id);
		lua_pushlstring(L, ev->s ? ev->s : "", ev->slen);
		return 3;
	}
	return 0;
}

/* Delivers queued events, oldest first.  Bounded per iteration so a storm of
 * events cannot starve the loop; the idle watcher keeps it turning. */
static void dispatch(hum_host *h)
{
	lua_State *L = h->L;
	for (int n = 0; h->head && n < 4096; n++) {
		hum_event *ev = h->head;
		h->head = ev->next;
		if (!h->head)
			h->tail = NULL;
		h->queued--;
		if (h->dispatch_ref != LUA_NOREF) {
			lua_rawgeti(L, LUA_REGISTRYINDEX, h->dispatch_ref);
			int nargs = push_event(L, ev);
			hum_lua_pcall(L, nargs, 0);
		}
		if (ev->kind == HEV_TIMER)
			hum_raw_timer_delivered(ev->id); /* only now may its id be reused */
		hum_event_free(ev);
	}
	if (!h->head && ev_is_active(&h->idle))
		ev_idle_stop(h->loop, &h->idle);
}

static void prepare_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	hum_host *h = w->data;
	/* A process's state can be final while a descendant still holds its
	 * pipe; Lua waits for the last pipe before it exits, so it asks to be
	 * told when nothing is active any more. */
	if (h->want_idle && hum_sup_active(h->sup) == 0) {
		h->want_idle = false;
		hum_host_push(h, hum_event_new(HEV_IDLE, 0));
	}
	dispatch(h);
	if (h->out)
		hum_output_flush(h->out);
	hum_store_flush(h->st);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	/* nothing: its only job is to keep ev_run from blocking */
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	hum_host *h = w->data;
	h->signals_seen++;
	if (h->signals_seen > 1 && w->signum == SIGINT) {
		/* Second Ctrl-C: no more ceremony, kill every group now. */
		hum_host_report(h, "second interrupt: killing every process group");
		hum_sup_kill_all(h->sup);
	}
	hum_event *ev = hum_event_new(HEV_SIGNAL, 0);
	ev->a = w->signum;
	hum_host_push(h, ev);
}

static void state_hook(hum_proc *p, const hum_snap *old, const hum_snap *now, void *ud)
{
	hum_host *h = ud;
	if (old && old->state == now->state && old->ready == now->ready)
		return;
	hum_event *ev = hum_event_new(HEV_STATE, now->id);
	ev->a = now->state;
	ev->b = old ? old->state : now->state;
	ev->c = now->exit_code;
	ev->t = now->term_signal;
	ev->s = strdup(now->reason ? now->reason : "");
	hum_host_push(h, ev);
}

static void lines_hook(hum_proc *p, const hum_line *lines, size_t n, void *ud)
{
	hum_host *h = ud;
	uint32_t id = hum_proc_id(p);
	if (h->out)
		hum_output_lines(h->out, id, hum_proc_name(p), lines, n);
	if (id >= h->line_interest_cap || !h->line_interest[id])
		return;
	for (size_t i = 0; i < n; i++) {
		hum_event *ev = hum_event_new(HEV_LINE, id);
		ev->s = malloc(lines[i].len + 1);
		if (!ev->s)
			abort();
		memcpy(ev->s, lines[i].data, lines[i].len);
		ev->s[lines[i].len] = 0;
		ev->slen = lines[i].len;
		ev->a = lines[i].stream;
		ev->b = lines[i].flags;
		ev->t = lines[i].time_ms;
		hum_host_push(h, ev);
	}
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
	static const int signums[3] = { SIGINT, SIGTERM, SIGHUP };
	static const hum_sup_hooks hooks = { state_hook, lines_hook, log_hook };

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
	ev_idle_init(&h->idle, idle_cb);
	h->idle.data = h;
	for (int i = 0; i < 3; i++) {
		ev_signal_init(&h->sig[i], signal_cb, signums[i]);
		h->sig[i].data = h;
		ev_signal_start(h->loop, &h->sig[i]);
	}
	return 0;
}

void hum_host_fini(hum_host *h)
{
	while (h->head) {
		hum_event *ev = h->head;
		h->head = ev->next;
		hum_event_free(ev);
	}
	h->tail = NULL;
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
	free(h->line_interest);
	h->line_interest = NULL;
}

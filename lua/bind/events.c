/*
 * events.c — the event queue between the supervisor's hooks and Lua (host.h,
 * "Events from C to Lua"): events as values with named fields, the two
 * lanes (control events, delivered first and in order; lines, a queue per
 * process with its back-pressure on the process's pipes), and their
 * delivery to the Lua dispatcher from the host's ev_prepare watcher.
 *
 * Owns: the queued events of both lanes and the idle watcher that keeps the
 * loop turning while any remain.  Loop thread only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <lauxlib.h>

#include "bind_priv.h"

int64_t bind_now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void *xmalloc(size_t n)
{
	void *p = malloc(n ? n : 1);
	if (!p) {
		fprintf(stderr, "hum: out of memory\n");
		abort();
	}
	return p;
}

hum_event *hum_event_new(const char *kind, uint32_t id)
{
	hum_event *ev = xmalloc(sizeof *ev);
	memset(ev, 0, sizeof *ev);
	ev->kind = kind;
	ev->id = id;
	ev->time_ms = bind_now_ms();
	return ev;
}

static hum_evfield *field(hum_event *ev, const char *key, int type)
{
	if (ev->nf == HUM_EV_FIELDS) {
		/* A programming error, caught by any spec that emits the kind. */
		fprintf(stderr, "hum: event %s: more than %d fields\n", ev->kind, HUM_EV_FIELDS);
		abort();
	}
	hum_evfield *f = &ev->f[ev->nf++];
	f->key = key;
	f->type = (uint8_t)type;
	return f;
}

void hum_event_int(hum_event *ev, const char *key, int64_t v) { field(ev, key, HUM_EVF_INT)->v.i = v; }
void hum_event_num(hum_event *ev, const char *key, double v) { field(ev, key, HUM_EVF_NUM)->v.d = v; }
void hum_event_bool(hum_event *ev, const char *key, bool v) { field(ev, key, HUM_EVF_BOOL)->v.b = v; }

void hum_event_str(hum_event *ev, const char *key, const char *s, size_t n)
{
	if (s == NULL)
		return;
	hum_evfield *f = field(ev, key, HUM_EVF_STR);
	f->v.s.p = xmalloc(n + 1);
	memcpy(f->v.s.p, s, n);
	f->v.s.p[n] = 0;
	f->v.s.n = n;
}

void hum_event_cstr(hum_event *ev, const char *key, const char *s)
{
	if (s)
		hum_event_str(ev, key, s, strlen(s));
}

void hum_event_free(hum_event *ev)
{
	for (int i = 0; i < ev->nf; i++)
		if (ev->f[i].type == HUM_EVF_STR)
			free(ev->f[i].v.s.p);
	free(ev);
}

hum_lineq *hum_host_lineq(hum_host *h, uint32_t id)
{
	if (id >= h->lineq_cap) {
		size_t cap = (id + 1) * 2;
		hum_lineq *v = realloc(h->lineq, cap * sizeof *v);
		if (!v)
			return NULL;
		memset(v + h->lineq_cap, 0, (cap - h->lineq_cap) * sizeof *v);
		h->lineq = v;
		h->lineq_cap = cap;
	}
	return &h->lineq[id];
}

static void wake(hum_host *h)
{
	/* The prepare watcher delivers events before the loop next blocks;
	 * the idle watcher keeps the loop from blocking while any remain. */
	if (!ev_is_active(&h->idle))
		ev_idle_start(h->loop, &h->idle);
}

void hum_host_push(hum_host *h, hum_event *ev)
{
	ev->next = NULL;
	if (h->tail)
		h->tail->next = ev;
	else
		h->head = ev;
	h->tail = ev;
	h->queued++;
	wake(h);
}

/* Appends process id to the ready list (it has queued lines). */
static void push_ready(hum_host *h, uint32_t id)
{
	hum_lineq *q = &h->lineq[id];
	q->ready = true;
	q->next_ready = 0;
	if (h->ready_tail)
		h->lineq[h->ready_tail - 1].next_ready = id + 1;
	else
		h->ready_head = id + 1;
	h->ready_tail = id + 1;
}

/* Queues a line event on its process's queue (which exists: the caller
 * checked interest); pauses the process's pipes at the bound. */
void bind_push_line(hum_host *h, hum_proc *p, hum_event *ev)
{
	hum_lineq *q = &h->lineq[ev->id];
	ev->line = true;
	ev->next = NULL;
	if (q->tail)
		q->tail->next = ev;
	else
		q->head = ev;
	q->tail = ev;
	q->n++;
	q->pushed++;
	h->queued++;
	if (!q->ready)
		push_ready(h, ev->id);
	if (q->n >= HUM_LINE_EVENTS_MAX && !q->paused) {
		q->paused = true;
		hum_proc_pause_output(p, true);
	}
	wake(h);
}

/* Takes the oldest queued line of process id (which has one). */
static hum_event *take_line(hum_host *h, uint32_t id)
{
	hum_lineq *q = &h->lineq[id];
	hum_event *ev = q->head;
	q->head = ev->next;
	if (!q->head)
		q->tail = NULL;
	q->n--;
	q->taken++;
	h->queued--;
	if (q->paused && q->n <= HUM_LINE_EVENTS_MAX / 2) {
		q->paused = false;
		hum_proc *p = h->sup ? hum_sup_get(h->sup, id) : NULL;
		if (p)
			hum_proc_pause_output(p, false);
	}
	return ev;
}

/* The next process in the ready list, removed from it (0: none). */
static uint32_t pop_ready(hum_host *h)
{
	uint32_t r = h->ready_head;
	if (r == 0)
		return 0;
	hum_lineq *q = &h->lineq[r - 1];
	h->ready_head = q->next_ready;
	if (h->ready_head == 0)
		h->ready_tail = 0;
	q->ready = false;
	q->next_ready = 0;
	return r; /* id + 1 */
}

/* Pushes one event as a table: kind, id, time (seconds), then its fields. */
static void push_event(lua_State *L, const hum_event *ev)
{
	lua_createtable(L, 0, 3 + ev->nf);
	lua_pushstring(L, ev->kind);
	lua_setfield(L, -2, "kind");
	lua_pushinteger(L, (lua_Integer)ev->id);
	lua_setfield(L, -2, "id");
	lua_pushnumber(L, (double)ev->time_ms / 1000.0);
	lua_setfield(L, -2, "time");
	for (int i = 0; i < ev->nf; i++) {
		const hum_evfield *f = &ev->f[i];
		switch (f->type) {
		case HUM_EVF_INT: lua_pushnumber(L, (double)f->v.i); break;
		case HUM_EVF_NUM: lua_pushnumber(L, f->v.d); break;
		case HUM_EVF_BOOL: lua_pushboolean(L, f->v.b); break;
		default: lua_pushlstring(L, f->v.s.p, f->v.s.n); break;
		}
		lua_setfield(L, -2, f->key);
	}
}

static void deliver(hum_host *h, hum_event *ev)
{
	lua_State *L = h->L;
	if (h->dispatch_ref != LUA_NOREF) {
		lua_rawgeti(L, LUA_REGISTRYINDEX, h->dispatch_ref);
		push_event(L, ev);
		hum_lua_pcall(L, 1, 0);
	}
	if (!ev->line && strcmp(ev->kind, "timer") == 0)
		hum_raw_timer_delivered(ev->id); /* only now may its id be reused */
	hum_event_free(ev);
	/* Up to 4096 events per iteration, each a Lua call that may start or
	 * stop processes: the world must not wait for the end of them all.
	 * Between two events nothing holds a pointer into the store. */
	hum_store_flush_due(h->st);
}

/* Kinds about hum as a whole, which may pass a state event that waits for
 * its process's lines: a signal or a request must not wait behind output. */
static bool may_pass(const hum_event *ev)
{
	return strcmp(ev->kind, "signal") == 0 || strcmp(ev->kind, "command") == 0;
}

/* Delivers queued events: the control lane first, then lines, a few per
 * process in turn so that one chatty process cannot hold back the others.
 * A state event is delivered only after the lines its process printed
 * before it (those can exceed the lane's bound by what the pipe held when
 * the process exited: the pipes are drained before the final state); while
 * it waits for them, only signals and requests may pass it.  Bounded per
 * iteration so that a storm cannot starve the loop; the idle watcher keeps
 * it turning while events remain. */
void bind_dispatch(hum_host *h)
{
	int budget = 4096;
	bool blocked = false;
	hum_event *prev = NULL, *ev = h->head;
	while (ev && budget > 0) {
		if (blocked && !may_pass(ev)) {
			prev = ev;
			ev = ev->next;
			continue;
		}
		if (!blocked && ev->id < h->lineq_cap && strcmp(ev->kind, "state") == 0) {
			/* Only the lines printed before the change: a new run's
			 * first lines come after its start. */
			while (h->lineq[ev->id].taken < ev->lines_before && budget > 0) {
				deliver(h, take_line(h, ev->id));
				budget--;
			}
			if (h->lineq[ev->id].taken < ev->lines_before) {
				blocked = true;
				prev = ev;
				ev = ev->next;
				continue;
			}
		}
		hum_event *next = ev->next;
		if (prev)
			prev->next = next;
		else
			h->head = next;
		if (h->tail == ev)
			h->tail = prev;
		h->queued--;
		deliver(h, ev);
		budget--;
		ev = next;
	}
	uint32_t last = h->ready_tail;
	while (budget > 0 && h->ready_head) {
		uint32_t id = pop_ready(h) - 1;
		for (int k = 0; k < 64 && h->lineq[id].head && budget > 0; k++, budget--)
			deliver(h, take_line(h, id));
		if (h->lineq[id].head && !h->lineq[id].ready)
			push_ready(h, id); /* more: back of the list */
		if (id + 1 == last)
			break; /* one round per iteration: control events go next */
	}
	if (!h->head && !h->ready_head && ev_is_active(&h->idle))
		ev_idle_stop(h->loop, &h->idle);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	/* nothing: its only job is to keep ev_run from blocking */
}

void bind_events_init(hum_host *h)
{
	ev_idle_init(&h->idle, idle_cb);
	h->idle.data = h;
}

void bind_events_free(hum_host *h)
{
	while (h->head) {
		hum_event *ev = h->head;
		h->head = ev->next;
		hum_event_free(ev);
	}
	h->tail = NULL;
	for (size_t i = 0; i < h->lineq_cap; i++)
		while (h->lineq[i].head) {
			hum_event *ev = h->lineq[i].head;
			h->lineq[i].head = ev->next;
			hum_event_free(ev);
		}
}

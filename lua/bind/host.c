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
#include <time.h>
#include <unistd.h>
#include <lauxlib.h>

#include "host.h"
#include "memory.h"
#include "signames.h"

hum_host *hum_host_current;

static int64_t now_ms(void)
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
	ev->time_ms = now_ms();
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
static void push_line(hum_host *h, hum_proc *p, hum_event *ev)
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


/* hum's own message as log lines: one per line of the message (a traceback
 * has many), appended to hum's ring in the store (so `hum logs` and its
 * followers see them, sequenced with the processes' lines) and handed to
 * the foreground printer like a process's batch. */
static void sys_lines(hum_host *h, const char *msg, size_t len, bool print)
{
	hum_logring *r = &hum_store_sys(h->st)->log;
	hum_line ls[32];
	size_t n = 0;
	int64_t t = now_ms();
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
	int n = vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (h && h->st)
		hum_host_sys(h, buf, (size_t)n < sizeof buf ? (size_t)n : sizeof buf - 1);
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
static void dispatch(hum_host *h)
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
	dispatch(h);
	if (h->out)
		hum_output_flush(h->out);
	hum_store_flush(h->st);
}

static void idle_cb(struct ev_loop *loop, ev_idle *w, int revents)
{
	/* nothing: its only job is to keep ev_run from blocking */
}

int hum_host_on_reopen(hum_host *h, void (*fn)(void *ud), void *ud)
{
	if (h->nreopen == HUM_HOST_REOPEN_MAX)
		return -ENOSPC;
	h->reopen[h->nreopen].fn = fn;
	h->reopen[h->nreopen].ud = ud;
	h->nreopen++;
	return 0;
}

/* SIGTSTP (Ctrl-Z): the whole environment is suspended, as a shell job.
 * Children run in sessions of their own, so the terminal's Ctrl-Z never
 * reaches them: hum stops their groups, then itself (every thread: `hum ps`
 * waits too); once continued (fg, bg, SIGCONT) it continues the groups it
 * stopped.  Timers are not adjusted: a grace period that ran out while hum
 * was suspended ends at once. */
static void suspend(hum_host *h)
{
	size_t n = hum_sup_pause_all(h->sup, true);
	hum_host_report(h, "suspended (SIGTSTP): %zu process group%s paused; fg or SIGCONT resumes",
			n, n == 1 ? "" : "s");
	if (h->out)
		hum_output_flush(h->out);
	raise(SIGSTOP); /* returns once hum is continued */
	n = hum_sup_pause_all(h->sup, false);
	hum_host_report(h, "resumed: %zu process group%s continued", n, n == 1 ? "" : "s");
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	hum_host *h = w->data;
	int sig = w->signum;
	if (sig == SIGTSTP) {
		suspend(h);
		return;
	}
	if (sig == SIGUSR1)
		for (int i = 0; i < h->nreopen; i++)
			h->reopen[i].fn(h->reopen[i].ud);
	if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
		h->stops_seen++;
		if (h->stops_seen > 1 && (sig == SIGINT || sig == SIGQUIT)) {
			/* Second Ctrl-C (or Ctrl-\): no more ceremony, kill every
			 * group now. */
			hum_host_report(h, "second %s: killing every process group",
					sig == SIGINT ? "interrupt" : "quit");
			hum_sup_kill_all(h->sup);
		}
	}
	/* What the signal means is Lua's (hum.runtime.shutdown S.signals). */
	hum_event *ev = hum_event_new("signal", 0);
	hum_event_int(ev, "signo", sig);
	hum_event_cstr(ev, "signal", hum_signame(sig));
	hum_host_push(h, ev);
}

/* Whether sig was ignored when hum started (nohup, `trap '' HUP`).  Such a
 * signal stays ignored, as POSIX asks of shells and as users of nohup
 * expect.  Not for SIGINT and SIGQUIT: a shell without job control starts
 * every background command (`hum up &` in a script) with those two ignored,
 * which is nobody's choice, and they are how hum is told to stop. */
static bool ignored_at_start(int sig)
{
	struct sigaction old;
	if (sig == SIGINT || sig == SIGQUIT)
		return false;
	if (sigaction(sig, NULL, &old) != 0)
		return false;
	return !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN;
}

static bool is_over(int state)
{
	return state == HUM_STOPPED || state == HUM_SUCCEEDED || state == HUM_FAILED ||
	       state == HUM_BACKOFF;
}

/* "exited with code 3", "killed by SIGKILL" */
static void describe_exit(const hum_snap *s, char *buf, size_t len)
{
	if (s->term_signal > 0)
		snprintf(buf, len, "killed by SIG%s", hum_signame(s->term_signal));
	else if (s->exit_code >= 0)
		snprintf(buf, len, "exited with code %d", s->exit_code);
	else
		snprintf(buf, len, "ended");
}

/* A process's lifecycle as lines of hum's own, written when the state is
 * published, so they sit in order with the process's output (an exit is
 * published after its pipes are drained): started (with its pid), ready
 * (when a probe said so; without a probe a service is ready as it starts),
 * and how a run ended.  A spawn error was logged when it happened
 * (sup_log); a process stopped before it ever ran, and waiting states, say
 * nothing (`hum ps` shows them; hum.messages says why a process will never
 * start). */
static void lifecycle(hum_host *h, const hum_snap *old, const hum_snap *now, bool began, bool ended)
{
	char what[64];
	const char *name = now->name;
	bool probe = now->id < h->lineq_cap && h->lineq[now->id].ready_probe;
	if (began && now->state == HUM_RUNNING) {
		hum_host_report(h, "%s: %s (pid %d)%s", name, now->restarts ? "restarted" : "started",
				(int)now->pid, !probe && now->kind == HUM_SERVICE ? ", ready" : "");
	} else if (now->state == HUM_READY && old && old->state != HUM_READY && probe) {
		hum_host_report(h, "%s: ready (%.1fs after it started)", name,
				(double)(now->changed_at_ms - now->started_at_ms) / 1000.0);
	} else if (began && now->state == HUM_BACKOFF && (!old || old->state != HUM_BACKOFF)) {
		/* a spawn short of descriptors, memory or processes: the first
		 * of a series of retries says so (proc.c, retry_spawn) */
		hum_host_report(h, "%s: %s", name, now->reason);
	} else if (old && old->state == HUM_BACKOFF && now->state == HUM_STOPPED) {
		hum_host_report(h, "%s: stopped (restart cancelled)", name);
	} else if (ended && !now->spawn_error && old && (old->state == HUM_STARTING ||
		   old->state == HUM_RUNNING || old->state == HUM_READY || old->state == HUM_STOPPING)) {
		if (now->state == HUM_BACKOFF) { /* the reason says what comes next */
			describe_exit(now, what, sizeof what);
			hum_host_report(h, "%s: %s; %s", name, what, now->reason);
		} else {
			hum_host_report(h, "%s: %s", name, now->reason && *now->reason ? now->reason
										 : hum_state_name(now->state));
		}
	}
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
	lifecycle(h, old, now, began, ended);
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
		push_line(h, p, ev);
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
	/* What each means: README "Signals"; hum.runtime.shutdown S.signals. */
	static const int signums[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT,
				       SIGUSR1, SIGUSR2, SIGTSTP };
	_Static_assert(sizeof signums / sizeof signums[0] <= HUM_HOST_SIGNALS, "HUM_HOST_SIGNALS");
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
	ev_idle_init(&h->idle, idle_cb);
	h->idle.data = h;
	h->nsig = 0;
	for (size_t i = 0; i < sizeof signums / sizeof signums[0]; i++) {
		/* Checked before libev installs its handler (which would
		 * replace SIG_IGN for good). */
		if (ignored_at_start(signums[i]))
			continue;
		ev_signal *w = &h->sig[h->nsig++];
		ev_signal_init(w, signal_cb, signums[i]);
		w->data = h;
		ev_signal_start(h->loop, w);
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
	for (size_t i = 0; i < h->lineq_cap; i++)
		while (h->lineq[i].head) {
			hum_event *ev = h->lineq[i].head;
			h->lineq[i].head = ev->next;
			hum_event_free(ev);
		}
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

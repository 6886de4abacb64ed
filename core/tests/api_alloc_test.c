/*
 * api_alloc_test.c — the control socket's request path under allocation
 * failure.
 *
 * Each request (ps, status, logs, a streamed and a followed logs, watch, a
 * command, bad requests) is answered once per allocation it makes, with
 * that allocation failing, through the function the API thread calls for
 * every line (hum_api_handle_line_), on a client without a socket, over
 * the fake API of api_fixture.h (which the fuzz target shares).  Whatever
 * fails, the answer is either complete and well formed — every line a JSON
 * object with a boolean "ok", a log line or a drop notice — or it failed
 * visibly (hum_api_answer_failed_: the server closes the connection rather
 * than send a cut answer); never a crash, a torn line or a leak (ASan, in
 * `make ctest-asan`).  The store stays readable throughout.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>
#include <jansson.h>

#include "failalloc.h"
#include "api_fixture.h"
#include "state/store.h"
#include "tap.h"

static hum_store *st;
static hum_api *api;
static hum_entry *web;

static hum_entry *add(const char *name, const char *groups, int state)
{
	hum_snap t = { .state = (uint8_t)state, .pid = 100, .exit_code = -1 };
	return hum_store_add(st, hum_snap_new(&t, name, groups, "alloc"));
}

static void setup(void)
{
	st = hum_store_new(16 * 1024);
	web = add("web", "front", HUM_RUNNING);
	hum_entry *db = add("db", "back", HUM_READY);
	char line[64];
	for (int i = 0; i < 300; i++) {
		int n = snprintf(line, sizeof line, "line %d of %s", i, i & 1 ? "web" : "db");
		hum_entry *e = i & 1 ? web : db;
		hum_logring_append(&e->log, HUM_STREAM_OUT, 0, 1700000000000LL + i, line, (size_t)n);
		hum_logring_commit(&e->log);
	}
	hum_store_flush(st);
	api = api_fixture_new(st, 4);
}

/* The output is whole, well-formed answer lines. */
static bool well_formed(const hum_buf *out)
{
	if (out->oom)
		return false;
	for (size_t i = 0; i < out->len;) {
		const char *nl = memchr(out->p + i, '\n', out->len - i);
		if (!nl)
			return false;
		size_t n = (size_t)(nl - (out->p + i));
		json_t *v = json_loadb(out->p + i, n, JSON_ALLOW_NUL, NULL);
		json_t *ok = v ? json_object_get(v, "ok") : NULL;
		bool good = json_is_object(v) &&
			    (ok ? json_is_boolean(ok) : json_object_get(v, "seq") || json_object_get(v, "dropped"));
		json_decref(v);
		if (!good)
			return false;
		i += n + 1;
	}
	return true;
}

/* One request, to its end; true if the outcome is acceptable. */
static bool answer(const char *req)
{
	client c = { .api = api, .fd = -1 };
	hum_api_handle_line_(&c, req, strlen(req));
	for (int k = 0; c.streaming && !c.broken && k < 100000; k++)
		hum_api_stream_(&c);
	ev_idle_stop(api->loop, &api->stream_idle);
	if (c.following && !c.broken) {
		hum_api_follow_poll_(api, &c);
		if (c.watching && c.following && !c.broken)
			hum_api_watch_poll_(api, &c);
		if (c.following)
			hum_api_end_follow_(&c, "test");
	}
	ev_timer_stop(api->loop, &api->follow_timer);
	if (c.following)
		api->nfollow--;
	api->nstream = 0;
	for (msg *m = __atomic_exchange_n(&api->cmds, NULL, __ATOMIC_ACQUIRE), *next; m; m = next) {
		next = m->next;
		free(m);
	}
	bool ok = hum_api_answer_failed_(&c) || well_formed(&c.out);
	hum_api_client_release_(&c);
	return ok;
}

int main(void)
{
	setup();
	static const char *const reqs[] = {
		"{\"id\":1,\"cmd\":\"ps\"}",
		"{\"cmd\":\"status\",\"names\":[\"web\",\"d*\"]}",
		"{\"cmd\":\"logs\",\"n\":50}",
		"{\"cmd\":\"logs\",\"n\":1000,\"grep\":\"of (web|db)\"}",
		"{\"cmd\":\"logs\",\"names\":[\"web\"],\"n\":5,\"follow\":true}",
		"{\"id\":\"w\",\"cmd\":\"watch\",\"logs\":true}",
		"{\"id\":9,\"cmd\":\"stop\",\"targets\":[\"web\"]}",
		"{\"cmd\":\"status\",\"names\":[\"nothing\"]}",
		"{\"cmd\":\"logs\",\"n\":\"ten\"}",
		"not json at all",
	};
	for (size_t q = 0; q < sizeof reqs / sizeof reqs[0]; q++) {
		unsigned long c0 = failalloc_count();
		bool plain = answer(reqs[q]);
		unsigned long total = failalloc_count() - c0;
		int bad = 0;
		unsigned long first_bad = 0;
		for (unsigned long n = 1; n <= total; n++) {
			failalloc_after(n);
			if (!answer(reqs[q]) && !bad++)
				first_bad = n;
			failalloc_after(0);
		}
		ok(plain && bad == 0, "%s: %lu allocations, each failing in turn: %d bad answers (first: %lu)",
		   reqs[q], total, bad, first_bad);
	}
	/* the store is intact after all that */
	hum_read_begin(api->rd);
	const hum_world *w = hum_store_world(st);
	bool valid = w->count == 2;
	for (uint32_t i = 0; i < w->count; i++)
		valid &= hum_snap_valid(w->procs[i]);
	hum_read_end(api->rd);
	ok(valid, "the store's snapshots are intact");
	api_fixture_free(api);
	hum_store_free(st);
	return done_testing();
}

/*
 * api_fixture.h — a hum_api without a socket and without a thread, for
 * driving the request path directly: hum_api_handle_line_ on a client whose
 * fd is -1, its output buffer checked in place.  Shared by
 * core/tests/api_alloc_test.c (each allocation failing in turn) and
 * core/fuzz/request_fuzz.c (libFuzzer), so the two set up the server the
 * same way, and as hum_api_start does for the fields the request path reads.
 *
 * The loop is never run: a command is pushed on the `cmds` stack (the test
 * takes it off), the follow timer and the command wakeup are initialised
 * only so that starting and sending them is valid.
 */
#ifndef HUM_API_FIXTURE_H
#define HUM_API_FIXTURE_H

#include <stdint.h>
#include <stdlib.h>
#include <ev.h>

#include "api/api_priv.h"
#include "state/store.h"

static inline void api_fixture_noop_async(struct ev_loop *loop, ev_async *w, int revents) {}
static inline void api_fixture_no_command(void *ud, uint32_t id, const char *req, size_t len) {}

/* A fake API over st (a reader of its own, answers up to 1 MiB unsent per
 * follower) with max_clients slots; NULL if out of memory. */
static inline hum_api *api_fixture_new(hum_store *st, size_t max_clients)
{
	hum_api *api = calloc(1, sizeof *api);
	if (!api)
		return NULL;
	api->st = st;
	api->rd = hum_reader_new(st);
	api->loop = api->main_loop = ev_loop_new(EVFLAG_AUTO);
	api->max_request = HUM_API_MAX_REQUEST;
	api->max_output = 1u << 20;
	api->max_clients = max_clients;
	api->follow_interval = 0.05;
	api->on_command = api_fixture_no_command; /* set (commands are accepted), never called */
	ev_timer_init(&api->follow_timer, hum_api_follow_cb_, 0., api->follow_interval);
	api->follow_timer.data = api;
	ev_async_init(&api->cmd_async, api_fixture_noop_async);
	ev_async_start(api->loop, &api->cmd_async);
	return api;
}

/* Frees a fake API: its loop and reader, and the scratch the requests grew
 * (as hum_api_stop frees a real one's). */
static inline void api_fixture_free(hum_api *api)
{
	ev_async_stop(api->loop, &api->cmd_async);
	ev_loop_destroy(api->loop);
	hum_reader_free(api->rd);
	hum_api_scratch_free_(api);
	free(api);
}

#endif

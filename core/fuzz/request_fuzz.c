/*
 * request_fuzz.c — libFuzzer target for the control socket's request path
 * (`make fuzz`, README "Fuzzing").
 *
 * Each input is one request line handed to hum_api_handle_line_, the
 * function the API thread calls for every line: parsing (jansson), the
 * bounds and field validation (request.c), and dispatch.  Reads (ps,
 * status, logs, ping) are answered from a small store built once: five
 * processes, one with a name that is not UTF-8, and log lines with control
 * bytes and broken UTF-8.  A follow is polled once after a new line and then
 * ended; a command is taken off the queue to the loop thread and dropped.
 * No socket and no thread (the fake API of core/tests/api_fixture.h, which
 * api_alloc_test shares): the client's output buffer is checked directly.
 *
 * Beyond the sanitizers (ASan, UBSan, leaks), two properties abort:
 *   - every answer line is a JSON object with "ok" a boolean, or a log line
 *     ("seq"), a drop notice ("dropped") or a watch's change ("event");
 *   - a command gets no reply here (the loop thread answers it); any other
 *     request gets exactly one reply (an answer that streams lines, logs
 *     or a follow, ends with it: "ok" with "end"), except a watch: its
 *     opening reply, and the end line when the feed ends.
 *   - the writer turns the input bytes, whatever they are, into one valid
 *     JSON string, and into exactly those bytes when they are valid UTF-8.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>
#include <jansson.h>

#include "api/api_priv.h"
#include "state/store.h"
#include "tests/api_fixture.h" /* the fake API, shared with api_alloc_test */

static hum_store *st;
static hum_api *api;
static hum_entry *web;

#define CHECK(cond, what)                                                                  \
	do {                                                                               \
		if (!(cond)) {                                                             \
			fprintf(stderr, "request_fuzz: %s\n", what);                       \
			abort();                                                           \
		}                                                                          \
	} while (0)

static hum_entry *add(const char *name, const char *groups, int state, int pid)
{
	hum_snap t = { .state = (uint8_t)state, .pid = pid, .exit_code = -1, .started_at_ms = 1700000000000LL };
	return hum_store_add(st, hum_snap_new(&t, name, groups, "fuzz"));
}

static void logl(hum_entry *e, int stream, const char *text, size_t len)
{
	hum_logring_append(&e->log, stream, 0, 1700000000500LL, text, len);
	hum_logring_commit(&e->log);
}

static void setup(void)
{
	st = hum_store_new(16 * 1024); /* small rings: the follower sees drops */
	web = add("web", "front,back", HUM_RUNNING, 101);
	hum_entry *db = add("db", "back", HUM_READY, 102);
	hum_entry *w1 = add("worker.1", "", HUM_RUNNING, 103);
	add("worker.2", "", HUM_STOPPED, 0);
	hum_entry *odd = add("odd\xff\xfe-name", "we\xc0ird", HUM_FAILED, 0);
	logl(web, HUM_STREAM_OUT, "web one", 7);
	logl(db, HUM_STREAM_OUT, "db one ERROR", 12);
	logl(web, HUM_STREAM_ERR, "web \"two\" \x1b[31mred\x1b[0m", 22);
	logl(w1, HUM_STREAM_OUT, "nul \0 inside, tab\t", 18);
	logl(odd, HUM_STREAM_SYS, "bad \xed\xa0\x80 \xf0\x9f\x98", 11);
	hum_store_flush(st);
	api = api_fixture_new(st, 1);
}

/* Every line of out is an answer a client can read; counts the replies
 * ("ok" lines) without and with "end". */
static void check_output(const hum_buf *out, int *replies, int *ends)
{
	CHECK(!out->oom, "output buffer out of memory");
	int oks = 0, end = 0;
	size_t i = 0;
	while (i < out->len) {
		const char *nl = memchr(out->p + i, '\n', out->len - i);
		CHECK(nl, "answer without a newline");
		size_t n = (size_t)(nl - (out->p + i));
		json_error_t je;
		json_t *v = json_loadb(out->p + i, n, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &je);
		if (!json_is_object(v))
			fprintf(stderr, "answer [%.*s]: %s\n", (int)n, out->p + i, je.text);
		CHECK(json_is_object(v), "an answer line is not a JSON object");
		json_t *ok = json_object_get(v, "ok");
		CHECK(ok ? json_is_boolean(ok)
			 : json_object_get(v, "seq") || json_object_get(v, "dropped") || json_object_get(v, "event"),
		      "an answer line is neither a reply, a log line, a drop notice nor a change");
		if (json_is_false(ok))
			CHECK(json_is_string(json_object_get(v, "error")), "an error reply without a message");
		oks += ok != NULL;
		end += ok != NULL && json_is_true(json_object_get(v, "end"));
		json_decref(v);
		i += n + 1;
	}
	*replies = oks - end;
	*ends = end;
}

static void check_writer(const uint8_t *data, size_t size)
{
	hum_buf b = { 0 };
	hum_json_str(&b, (const char *)data, size);
	CHECK(!b.oom, "writer out of memory");
	json_t *v = json_loadb(b.p, b.len, JSON_DECODE_ANY | JSON_ALLOW_NUL, NULL);
	CHECK(json_is_string(v), "the writer's output is not a valid JSON string");
	json_t *orig = json_stringn((const char *)data, size); /* NULL unless valid UTF-8 */
	CHECK(!orig || json_equal(v, orig), "the writer changed valid UTF-8");
	json_decref(orig);
	json_decref(v);
	hum_buf_free(&b);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!st)
		setup();
	client c = { .api = api, .fd = -1 };
	hum_api_handle_line_(&c, (const char *)data, size);
	for (int k = 0; c.streaming && k < 100000; k++) /* a streamed logs answer: all of it */
		hum_api_stream_(&c);
	ev_idle_stop(api->loop, &api->stream_idle);
	bool subscribed = c.following, watching = c.watching;
	if (c.following) {
		logl(web, HUM_STREAM_OUT, "a new line for followers", 24);
		hum_store_flush(st);
		hum_api_follow_poll_(api, &c);
		if (c.following)
			hum_api_end_follow_(&c, "fuzz");
		ev_timer_stop(api->loop, &api->follow_timer);
	}
	bool command = c.busy;
	for (msg *m = __atomic_exchange_n(&api->cmds, NULL, __ATOMIC_ACQUIRE), *next; m; m = next) {
		next = m->next;
		CHECK(command && m->len == size && memcmp(m->data, data, size) == 0,
		      "a command went to the loop thread other than as its request line");
		free(m);
	}
	int replies, ends;
	check_output(&c.out, &replies, &ends);
	if (command)
		CHECK(replies == 0 && ends == 0, "a reply to a command on the API thread");
	else if (subscribed && watching)
		CHECK(replies == 1 && ends == 1, "a watch without its opening reply and one end line");
	else
		CHECK(replies + ends == 1, "not exactly one reply to a request");
	hum_api_client_release_(&c);
	check_writer(data, size);
	return 0;
}

/*
 * dispatch.c — what a request line gets: parsed and validated (request.c),
 * then answered here on the API thread (ps, status, logs, watch, ping) or
 * handed to the loop thread as a command; and the way back: the reply
 * queue and the envelope of every command's reply.
 *
 * Separate from client.c, which moves the bytes (a line in, the answer
 * out) and does not know what they mean, and from server.c, which starts
 * and stops the thread this runs on.
 *
 * The queues: two lock-free MPSC stacks cross the threads: `cmds` (API
 * thread -> loop thread) and `replies` (any thread -> API thread).  A
 * producer pushes with a CAS (release), the consumer takes the whole stack
 * with an exchange (acquire) and reverses it, so there is no ABA and no
 * lock.  ev_async_send wakes the consumer; libev coalesces wakeups, which is
 * fine because the consumer always takes everything.
 *
 * Wire format (newline-delimited JSON; every response carries "ok"):
 *   {"id":1,"cmd":"ps"}
 *      -> {"ok":true,"id":1,"generation":G,"time":T,"procs":[PROC...]}
 *   {"cmd":"status","name":"web"}  (or "names":[...])
 *      -> {"ok":true,"time":T,"procs":[PROC...]}
 *   {"cmd":"logs","names":[...],"n":100,"grep":"RE","since":T,"stream":"err",
 *    "follow":true}
 *      -> LINE... then {"ok":true,"end":true,"lines":N[,"truncated":K]}
 *         with follow, LINE... until {"ok":true,"end":true,"reason":R}
 *         (R: "removed" or "server stopping"); a follower too slow to read
 *         gets {"dropped":N} in place of lines it missed.
 *   {"cmd":"ping"} -> {"ok":true,"pong":true,"pid":P}
 *   start/stop/restart/signal/down/eval/run: forwarded to the loop thread as
 *   the raw request line; the reply comes from hum.control (Lua).
 *   Any error: {"ok":false[,"id":..],"error":"message"}; what a request may
 *   hold, and the bounds on it, are request.h's.
 *   PROC = {"name","id","kind","state","pid","restarts","exit_code","signal",
 *           "started_at","ended_at","changed_at","group","groups","ready",
 *           "reason","lines","bytes","dropped","first_seq","last_seq",
 *           "generation"}
 *   LINE = {"seq":N,"time":T,"name":S,"stream":"out"|"err"|"sys","line":S
 *           [,"cont":true]}
 *   Times are seconds since the epoch with millisecond precision; absent
 *   values are null.  A request line may be up to 1 MiB, nested 32 deep,
 *   with 65536 values.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "api_priv.h"

/* MPSC stacks --------------------------------------------------------------- */

static void mpsc_push(msg **head, msg *m)
{
	msg *h = __atomic_load_n(head, __ATOMIC_RELAXED);
	do {
		m->next = h;
		/* Release: m's contents are visible before m is.  (acq_rel only
		 * so TSan sees the chain of earlier pushes as one sequence.) */
	} while (!__atomic_compare_exchange_n(head, &h, m, true, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
}

/* Takes every message, oldest first. */
static msg *mpsc_take(msg **head)
{
	/* Acquire: pairs with the pushes' release. */
	msg *m = __atomic_exchange_n(head, NULL, __ATOMIC_ACQUIRE), *r = NULL;
	while (m) {
		msg *n = m->next;
		m->next = r;
		r = m;
		m = n;
	}
	return r;
}

static msg *msg_new(uint32_t id, const char *data, size_t len)
{
	msg *m = malloc(sizeof *m + len + 1);
	if (!m)
		return NULL;
	m->next = NULL;
	m->id = id;
	m->len = len;
	memcpy(m->data, data, len);
	m->data[len] = 0;
	return m;
}

/* Requests --------------------------------------------------------------------- */

/* Hands a validated command to the loop thread; the client waits for its
 * reply before its next request. */
static void forward(client *c, const hum_req *r, const char *line, size_t len)
{
	hum_api *a = c->api;
	if (!a->on_command) {
		hum_api_send_error_(c, r->id, r->idlen, "commands are not available");
		return;
	}
	uint32_t cid = ++a->next_cmd;
	if (cid == 0)
		cid = ++a->next_cmd;
	msg *m = msg_new(cid, line, len);
	if (!m) {
		hum_api_send_error_(c, r->id, r->idlen, "out of memory");
		return;
	}
	c->busy = true;
	c->cmd_id = cid;
	c->idlen = r->idlen;
	memcpy(c->idraw, r->id, r->idlen);
	mpsc_push(&a->cmds, m);
	ev_async_send(a->main_loop, &a->cmd_async);
	STAT_INC(a, commands);
}

/* One request line: parsed, then answered into c->out or forwarded (see
 * api_priv.h). */
void hum_api_handle_line_(client *c, const char *line, size_t len)
{
	hum_api *a = c->api;
	char err[320];
	hum_req r;
	if (hum_req_parse(&r, line, len, err, sizeof err) < 0) {
		hum_api_send_error_(c, r.id, r.idlen, "%s", err);
		hum_req_free(&r);
		return;
	}
	switch (r.kind) {
	case HUM_REQ_PS:
		hum_api_do_ps_(c, r.id, r.idlen);
		STAT_INC(a, reads);
		break;
	case HUM_REQ_STATUS:
		hum_api_do_status_(c, &r);
		STAT_INC(a, reads);
		break;
	case HUM_REQ_LOGS:
		hum_api_do_logs_(c, &r);
		hum_api_stream_later_(c, hum_api_stream_(c));
		break;
	case HUM_REQ_WATCH:
		hum_api_do_watch_(c, &r);
		break;
	case HUM_REQ_PING:
		hum_buf_puts(&c->out, "{\"ok\":true");
		hum_api_put_id_(&c->out, r.id, r.idlen);
		hum_buf_puts(&c->out, ",\"pong\":true,\"pid\":");
		hum_json_i64(&c->out, getpid());
		hum_buf_puts(&c->out, "}\n");
		break;
	case HUM_REQ_COMMAND:
		forward(c, &r, line, len);
		break;
	}
	hum_req_free(&r);
}

/* Commands and replies ---------------------------------------------------------- */

/* Loop thread: hands queued commands to the host. */
void hum_api_cmd_cb_(struct ev_loop *loop, ev_async *w, int revents)
{
	hum_api *a = w->data;
	msg *m = mpsc_take(&a->cmds);
	while (m) {
		msg *next = m->next;
		a->on_command(a->ud, m->id, m->data, m->len);
		free(m);
		m = next;
	}
}

/* Any thread: queues the reply to command id for the API thread, which
 * wraps it in the envelope (put_reply; contract in api.h). */
void hum_api_reply(hum_api *a, uint32_t id, bool ok, const char *body, size_t len)
{
	msg *m = msg_new(id, body, len);
	if (!m)
		return; /* the client's command stays unanswered; it can time out */
	m->ok = ok;
	mpsc_push(&a->replies, m);
	ev_async_send(a->loop, &a->reply_async);
}

/* The envelope of a command's reply, built here and nowhere else:
 * {"ok":..,"id":.., then the body's fields}, encoded by jansson from the
 * parsed body (whatever bytes the loop thread sent, the line is valid JSON
 * with "ok" first).  The id is the request's, already JSON text. */
static void put_reply(hum_buf *b, const msg *m, const char *id, size_t idlen)
{
	json_error_t jerr;
	json_t *body = json_loadb(m->data, m->len, JSON_REJECT_DUPLICATES, &jerr);
	json_t *rep = json_object(), *idv = idlen ? json_loadb(id, idlen, JSON_DECODE_ANY, NULL) : NULL;
	bool good = body && json_is_object(body) && rep;
	if (rep) {
		json_object_set_new(rep, "ok", json_boolean(good && m->ok));
		if (idv)
			json_object_set(rep, "id", idv);
		if (good) {
			json_object_del(body, "ok");
			json_object_del(body, "id");
			json_object_update(rep, body);
		} else {
			char msgbuf[256];
			snprintf(msgbuf, sizeof msgbuf, "hum produced a reply that is not a JSON object%s%s",
				 body ? "" : ": ", body ? "" : jerr.text);
			json_object_set_new(rep, "error", json_string(msgbuf));
		}
	}
	char *text = rep ? json_dumps(rep, JSON_COMPACT | JSON_REAL_PRECISION(15)) : NULL;
	if (text) {
		hum_buf_puts(b, text);
		hum_buf_putc(b, '\n');
	} else {
		hum_buf_puts(b, "{\"ok\":false");
		hum_api_put_id_(b, id, idlen);
		hum_buf_puts(b, ",\"error\":\"out of memory\"}\n");
	}
	free(text);
	json_decref(rep);
	json_decref(idv);
	json_decref(body);
}

/* API thread: each queued reply into the output of the client waiting
 * for it (dropped if that client has gone), which then goes on with its
 * next requests. */
void hum_api_reply_cb_(struct ev_loop *loop, ev_async *w, int revents)
{
	hum_api *a = w->data;
	msg *m = mpsc_take(&a->replies);
	while (m) {
		msg *next = m->next;
		for (client *c = a->clients; c; c = c->next) {
			if (c->busy && c->cmd_id == m->id) {
				put_reply(&c->out, m, c->idraw, c->idlen);
				c->busy = false;
				c->idlen = 0;
				c->active = ev_now(loop);
				hum_api_process_input_(c);
				hum_api_settle_(c);
				break;
			}
		}
		free(m);
		m = next;
	}
}

/* After the API thread ended: frees what is still queued either way
 * (replies no client took, commands the loop thread never ran). */
void hum_api_queues_free_(hum_api *a)
{
	for (msg *m = mpsc_take(&a->replies), *n; m; m = n) {
		n = m->next;
		free(m);
	}
	for (msg *m = mpsc_take(&a->cmds), *n; m; m = n) {
		n = m->next;
		free(m);
	}
}

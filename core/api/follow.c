/*
 * follow.c — following (`logs -f`, and a watcher's "logs"): each poll sends
 * a follower the lines committed since the last one, merged by seq across
 * its processes, and counts what it could not take.
 *
 * Separate from read_logs.c, which answers a logs request over the lines
 * already there when it was asked and then hands the cursors over: a
 * follower lives on, polled by the follow timer (every follow_interval),
 * for as long as its connection does, so its bounds are different ones:
 *   - a follower's poll stops after SLICE_TIME and goes on at the next;
 *   - its unsent output is bounded by max_output and, for all clients
 *     together, TOTAL_OUT: lines beyond are counted, not kept, and reported
 *     as {"dropped":N};
 *   - a --grep that hits one of PCRE2's bounds (grep.h) ends the follow
 *     with the error.
 * The follow timer also resumes streamed answers the total bound paused.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "api_priv.h"
#include "state/atomic.h"

/* Ends c's follow with the end object, saying why; the connection then
 * closes. */
void hum_api_end_follow_(client *c, const char *reason)
{
	hum_buf_puts(&c->out, "{\"ok\":true");
	hum_api_put_id_(&c->out, c->idraw, c->idlen);
	hum_buf_puts(&c->out, ",\"end\":true,\"reason\":");
	hum_json_cstr(&c->out, reason);
	hum_buf_puts(&c->out, "}\n");
	c->following = false;
	c->api->nfollow--;
	c->closing = true;
}

static bool has_cursor(const client *c, uint32_t id)
{
	for (size_t i = 0; i < c->ncur; i++)
		if (c->cur[i].id == id)
			return true;
	return false;
}

/* Follow: the new lines of one process, or the count of those beyond the
 * client's output bound (or all clients'). */
typedef struct pass2 {
	hum_api *a;
	client *c;
	cursor *k;
	uint64_t hi;
	double end;       /* the poll's time slice */
	uint64_t visited; /* lines up to hi, matching or not */
	char *err;
	size_t errlen;
	bool failed;
} pass2;

static int pass2_cb(const hum_line *l, void *ud)
{
	pass2 *p = ud;
	hum_api *a = p->a;
	if (l->seq > p->hi)
		return 1;
	if (p->visited && hum_api_mono_() > p->end)
		return 1; /* the rest at the next poll (or counted as dropped) */
	p->visited++;
	p->k->last = l->seq;
	int m = hum_api_line_matches_(&p->c->flt, l, p->err, p->errlen);
	if (m == 0)
		return 0;
	if (m < 0) {
		p->failed = true;
		return 1;
	}
	size_t pending = hum_api_unsent_(p->c) + a->bytes.len + l->len;
	if (pending > a->max_output || a->total_unsent + a->bytes.len + l->len > TOTAL_OUT) {
		p->c->dropped++;
		STAT_INC(a, dropped_lines);
		return 0;
	}
	if (!hum_api_keep_line_(a, l, p->k->name)) {
		hum_api_seterr_(p->err, p->errlen, "out of memory");
		p->failed = true;
		return 1;
	}
	return 0;
}

/* One poll of one follower: new lines of every followed process, merged by
 * seq; lines beyond the client's output bound are counted, not kept. */
void hum_api_follow_poll_(hum_api *a, client *c)
{
	hum_api_scratch_reset_(a);
	size_t live = 0;
	bool failed = false;
	char err[300] = "out of memory";
	double end = hum_api_mono_() + SLICE_TIME;
	hum_read_begin(a->rd);
	if (c->follow_all) {
		const hum_world *w = hum_store_world(a->st);
		for (uint32_t i = 0; w && i < w->count; i++)
			if (!has_cursor(c, w->procs[i]->id) &&
			    hum_api_add_cursor_(c, w->procs[i]->id, w->procs[i]->name, 0, 0) < 0)
				failed = true;
	}
	for (size_t i = 0; i < c->ncur && !failed; i++) {
		cursor *k = &c->cur[i];
		if (k->gone)
			continue;
		hum_entry *e = k->id == HUM_SYS_ID ? hum_store_sys(a->st) : hum_store_lookup(a->st, k->name);
		if (!e || e->id != k->id) {
			k->gone = true;
			continue;
		}
		live++;
		uint64_t last = hum_logring_last_seq(&e->log);
		if (last <= k->last)
			continue;
		/* The ring drops its oldest lines: the ones numbered up to
		 * `dropped` are gone.  If that passes what this follower
		 * handled, the difference never reached it (the process wrote
		 * more than the ring holds between two polls).  Approximate by
		 * a few lines when a drop races with the read. */
		uint64_t dropped = hum_load_u64_relaxed(&e->log.dropped);
		pass2 p = { .a = a, .c = c, .k = k, .hi = last, .end = end, .err = err, .errlen = sizeof err };
		hum_logring_read(&e->log, k->last + 1, 0, pass2_cb, &p);
		failed = p.failed;
		if (dropped > k->ord) {
			c->dropped += dropped - k->ord;
			__atomic_fetch_add(&a->stats.dropped_lines, dropped - k->ord, __ATOMIC_RELAXED);
			k->ord = dropped;
		}
		k->ord += p.visited;
	}
	if (c->dropped && hum_api_unsent_(c) + a->bytes.len < a->max_output / 2) {
		hum_buf_puts(&c->out, "{\"dropped\":");
		hum_json_u64(&c->out, c->dropped);
		hum_buf_puts(&c->out, "}\n");
		c->dropped = 0;
	}
	if (!failed) {
		if (a->nrec > 1)
			qsort(a->recs, a->nrec, sizeof *a->recs, hum_api_cmp_rec_);
		for (size_t i = 0; i < a->nrec; i++) {
			rec *r = &a->recs[i];
			hum_api_put_line_(&c->out, r->seq, r->time_ms, r->name, r->stream, r->flags,
					  a->bytes.p + r->off, r->len);
		}
	}
	hum_read_end(a->rd);
	hum_api_scratch_reset_(a);
	if (failed) {
		/* a grep that hit its bound ends the follow with the error */
		hum_api_fail_stream_(c, err);
		c->following = false;
		a->nfollow--;
		c->closing = true;
		return;
	}
	if (!c->follow_all && !c->watching && live == 0)
		hum_api_end_follow_(c, "removed");
}

/* The follow timer (API thread, every follow_interval while a client
 * follows or a streamed answer waits): one poll of every follower (and
 * watcher), and streamed answers the total bound paused go on. */
void hum_api_follow_cb_(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_api *a = w->data;
	hum_api_count_unsent_(a);
	for (client *c = a->clients, *next; c; c = next) {
		next = c->next;
		if (__atomic_load_n(&a->stopping, __ATOMIC_RELAXED))
			break; /* stop_cb is next */
		size_t before = hum_api_unsent_(c);
		if (c->following && !c->broken) {
			hum_api_follow_poll_(a, c);
			if (c->watching && c->following && !c->broken)
				hum_api_watch_poll_(a, c);
		} else if (c->streaming && !c->broken)
			hum_api_resume_(c); /* paused by the total bound */
		else
			continue;
		size_t after = hum_api_unsent_(c);
		a->total_unsent += after > before ? after - before : 0;
		hum_api_settle_(c);
	}
	if (!a->nfollow && !a->nstream)
		ev_timer_stop(loop, w);
}

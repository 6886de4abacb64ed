/*
 * read_logs.c — the logs answer: which lines a `logs` request gets (select,
 * filter, the newest n), and sending them as a stream of slices (wire
 * format: dispatch.c).  Also what follow.c shares with it: how a log line is
 * kept in the scratch buffers and written as a LINE object.
 *
 * Separate from follow.c: an answer here is over lines already committed
 * when it was asked (up to a horizon per ring); follow.c takes over, for
 * `logs -f`, with the lines that come after it.
 *
 * No logs answer holds the API thread for long (README "Limits and
 * guarantees"):
 *   - a logs answer is streamed: found in one pass over the rings (bounded
 *     by REQUEST_BUDGET seconds of wall clock), then sent in slices of at
 *     most SLICE_LINES lines, produced only while the client has less than
 *     PAUSE_OUT unsent and all clients together less than TOTAL_OUT, each
 *     slice yielding back to the loop after SLICE_TIME;
 *   - a --grep is matched with PCRE2's bounds (grep.h): a line that hits
 *     one ends the request with an error.
 */
#define REQUEST_BUDGET 1.0  /* s: finding the lines of one logs request */
#define SLICE_LINES 4096    /* lines visited per process per slice */
#define SLICE_BYTES 65536   /* bytes copied per slice, all processes */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api_priv.h"
#include "state/atomic.h"

/* Log lines: kept, ordered, written (follow.c too) ------------------------------ */

static const char *stream_name(int s)
{
	return s == HUM_STREAM_ERR ? "err" : s == HUM_STREAM_SYS ? "sys" : "out";
}

/* One LINE object (its fields: dispatch.c), with its newline. */
void hum_api_put_line_(hum_buf *b, uint64_t seq, int64_t t, const char *name, int stream, int flags,
		       const char *data, size_t len)
{
	hum_buf_puts(b, "{\"seq\":");
	hum_json_u64(b, seq);
	hum_buf_puts(b, ",\"time\":");
	hum_json_ms(b, t);
	hum_buf_puts(b, ",\"name\":");
	hum_json_cstr(b, name);
	hum_buf_puts(b, ",\"stream\":\"");
	hum_buf_puts(b, stream_name(stream));
	hum_buf_puts(b, "\",\"line\":");
	hum_json_str(b, data ? data : "", len);
	if (flags & HUM_LINE_CONT)
		hum_buf_puts(b, ",\"cont\":true");
	hum_buf_puts(b, "}\n");
}

/* Copies a line into the scratch records (a->recs, a->bytes). */
bool hum_api_keep_line_(hum_api *a, const hum_line *l, const char *name)
{
	if (!hum_api_grow_((void **)&a->recs, &a->caprec, a->nrec + 1, sizeof *a->recs))
		return false;
	rec *r = &a->recs[a->nrec++];
	r->seq = l->seq;
	r->time_ms = l->time_ms;
	r->name = name;
	r->stream = l->stream;
	r->flags = l->flags;
	r->off = a->bytes.len;
	r->len = l->len;
	hum_buf_put(&a->bytes, l->data, l->len);
	return !a->bytes.oom;
}

/* qsort order of scratch records: by seq, oldest first. */
int hum_api_cmp_rec_(const void *x, const void *y)
{
	uint64_t a = ((const rec *)x)->seq, b = ((const rec *)y)->seq;
	return a < b ? -1 : a > b ? 1 : 0;
}

/* Ends a request with an error after lines were sent: one error line that
 * also says the answer ended. */
void hum_api_fail_stream_(client *c, const char *err)
{
	hum_buf_puts(&c->out, "{\"ok\":false");
	hum_api_put_id_(&c->out, c->idraw, c->idlen);
	hum_buf_puts(&c->out, ",\"end\":true,\"error\":");
	hum_json_cstr(&c->out, err);
	hum_buf_puts(&c->out, "}\n");
	STAT_INC(c->api, errors);
}

/* The logs answer ------------------------------------------------------------ */

static bool filter_none(const filter *f)
{
	return !f->stream && !f->since_ms && !f->grep.re && !f->grep.needle;
}

/* The filter of a logs request; its fields are validated (request.c), so
 * the only errors left are a bad pattern and memory. */
static int filter_init(filter *f, const hum_req *r, char *err, size_t errlen)
{
	memset(f, 0, sizeof *f);
	f->stream = r->stream;
	f->since_ms = r->since_ms;
	if (!r->grep)
		return 0;
	return hum_grep_compile(&f->grep, r->grep, r->greplen, err, errlen);
}

/* Pass 1: which lines match (their seqs), within a wall-clock budget. */
typedef struct pass1 {
	hum_api *a;
	filter *f;
	uint64_t horizon;
	double deadline;
	char *err;
	size_t errlen;
	bool failed;
} pass1;

static int pass1_cb(const hum_line *l, void *ud)
{
	pass1 *p = ud;
	hum_api *a = p->a;
	if (l->seq > p->horizon)
		return 1; /* committed after we started (visits are oldest first) */
	/* every line: one that is costly to match may take PCRE2 up to its
	 * match limit, and a clock read costs ~20 ns */
	if (__atomic_load_n(&a->stopping, __ATOMIC_RELAXED)) {
		hum_api_seterr_(p->err, p->errlen, "hum is stopping");
		p->failed = true;
		return 1;
	}
	if (hum_api_mono_() > p->deadline) {
		hum_api_seterr_(p->err, p->errlen,
				"logs request too costly: searching the logs took more than %g s; "
				"name fewer processes or use a simpler --grep", REQUEST_BUDGET);
		p->failed = true;
		return 1;
	}
	int m = hum_api_line_matches_(p->f, l, p->err, p->errlen);
	if (m < 0)
		p->failed = true;
	if (m <= 0)
		return m < 0;
	if (!hum_api_grow_((void **)&a->refs, &a->capref, a->nref + 1, sizeof *a->refs)) {
		hum_api_seterr_(p->err, p->errlen, "out of memory");
		p->failed = true;
		return 1;
	}
	a->refs[a->nref].seq = l->seq;
	a->refs[a->nref].cost = 0;
	a->nref++;
	return 0;
}

static int cmp_ref_desc(const void *x, const void *y)
{
	uint64_t a = ((const lref *)x)->seq, b = ((const lref *)y)->seq;
	return a < b ? 1 : a > b ? -1 : 0;
}

/* Adds a cursor for process `id` (its name copied) at seq `last`, with
 * nothing of an answer left to send (done).  0, or -1 out of memory. */
int hum_api_add_cursor_(client *c, uint32_t id, const char *name, uint64_t last, uint64_t ord)
{
	if (!hum_api_grow_((void **)&c->cur, &c->capcur, c->ncur + 1, sizeof *c->cur))
		return -1;
	char *n = strdup(name);
	if (!n)
		return -1;
	c->cur[c->ncur++] = (cursor){ .id = id, .last = last, .ord = ord, .name = n, .pos = last, .hz = last,
				      .done = true };
	return 0;
}

/* A logs request: its filter, its processes and, for each, the horizon and
 * the first line of the answer, fixed now; then c streams the answer
 * (hum_api_stream_) and, with follow, goes on as a follower (follow.c).  An
 * error is answered at once. */
void hum_api_do_logs_(client *c, const hum_req *r)
{
	hum_api *a = c->api;
	const char *id = r->id;
	size_t idlen = r->idlen;
	size_t n = r->n;
	char err[300];
	if (r->follow && a->nfollow + FOLLOW_RESERVE >= a->max_clients) {
		hum_api_send_error_(c, id, idlen, "too many followers (at most %zu; the other %d connections are "
				    "kept for other requests)", a->max_clients - FOLLOW_RESERVE, FOLLOW_RESERVE);
		return;
	}
	filter *f = &c->flt;
	if (filter_init(f, r, err, sizeof err) < 0) {
		hum_api_filter_free_(f);
		hum_api_send_error_(c, id, idlen, "%s", err);
		return;
	}
	bool plain = filter_none(f);

	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	bool sys;
	if (hum_api_select_procs_(a, w, r, &sys, err, sizeof err) < 0) {
		hum_read_end(a->rd);
		hum_api_filter_free_(f);
		hum_api_send_error_(c, id, idlen, "%s", err);
		return;
	}
	/* Entries and commit horizons, fixed for the answer and the follow
	 * cursors.  A ring's lines commit in seq order, so a line committed
	 * after its horizon was read has a larger seq: it is the follower's. */
	size_t nsel = a->nsel + sys; /* hum's own log last */
	bool failed = !hum_api_grow_((void **)&a->ents, &a->capents, nsel + 1, sizeof *a->ents) ||
		      !hum_api_grow_((void **)&a->hz, &a->caphz, nsel + 1, sizeof *a->hz);
	if (failed)
		hum_api_seterr_(err, sizeof err, "out of memory");
	a->nref = 0;
	for (size_t i = 0; i < nsel && !failed; i++) {
		hum_entry *e = i == a->nsel ? hum_store_sys(a->st) : hum_store_lookup(a->st, a->sels[i]->name);
		a->ents[i] = e && (i == a->nsel || e->id == a->sels[i]->id) ? e : NULL;
		a->hz[i] = a->ents[i] ? hum_logring_last_seq(&e->log) : 0;
	}
	/* the newest n matching lines: the seq of the oldest of them */
	uint64_t threshold = UINT64_MAX;
	size_t total = 0;
	if (n > 0) {
		double deadline = hum_api_mono_() + REQUEST_BUDGET;
		for (size_t i = 0; i < nsel && !failed; i++) {
			if (!a->ents[i])
				continue;
			pass1 p = { .a = a, .f = f, .horizon = a->hz[i], .deadline = deadline, .err = err,
				    .errlen = sizeof err };
			if (plain)
				hum_logring_tail_upto(&a->ents[i]->log, a->hz[i], n, pass1_cb, &p);
			else
				hum_logring_read(&a->ents[i]->log, 0, 0, pass1_cb, &p);
			failed = p.failed;
		}
		total = a->nref;
		if (!failed && total) {
			qsort(a->refs, a->nref, sizeof *a->refs, cmp_ref_desc);
			threshold = a->refs[(total < n ? total : n) - 1].seq;
		}
	}
	for (size_t i = 0; i < nsel && !failed; i++) {
		if (!a->ents[i])
			continue;
		/* lines counts what was committed up to at least the horizon */
		if (hum_api_add_cursor_(c, a->ents[i]->id, a->ents[i]->name, a->hz[i],
			       hum_load_u64_relaxed(&a->ents[i]->log.lines)) < 0) {
			hum_api_seterr_(err, sizeof err, "out of memory");
			failed = true;
			break;
		}
		cursor *k = &c->cur[c->ncur - 1];
		k->done = threshold > a->hz[i];
		k->pos = k->done ? a->hz[i] : threshold - 1;
	}
	hum_read_end(a->rd);
	a->nref = 0;
	if (a->capref > 65536) { /* do not keep a huge scratch around */
		free(a->refs);
		a->refs = NULL;
		a->capref = 0;
	}
	if (failed) {
		hum_api_filter_free_(f);
		hum_api_cursors_free_(c);
		hum_api_send_error_(c, id, idlen, "%s", err);
		return;
	}
	c->streaming = true;
	a->nstream++;
	c->sent = 0;
	c->wanted = total < n ? total : n;
	c->then_follow = r->follow;
	c->follow_all = r->nnames == 0;
	c->idlen = idlen;
	if (idlen)
		memcpy(c->idraw, id, idlen);
}

/* One slice of a streamed answer. */
typedef struct slice {
	hum_api *a;
	client *c;
	cursor *k;
	size_t per, copied, visited;
	double end; /* the slice's time */
	char *err;
	size_t errlen;
	bool failed;
} slice;

static int slice_cb(const hum_line *l, void *ud)
{
	slice *s = ud;
	cursor *k = s->k;
	if (l->seq > k->hz)
		return 1;
	if (s->visited >= SLICE_LINES || s->copied >= s->per || (s->visited && hum_api_mono_() > s->end)) {
		k->end = false;
		return 1;
	}
	s->visited++;
	k->upto = l->seq;
	int m = hum_api_line_matches_(&s->c->flt, l, s->err, s->errlen);
	if (m == 0)
		return 0;
	if (m > 0 && hum_api_keep_line_(s->a, l, k->name)) {
		s->copied += l->len;
		return 0;
	}
	if (m > 0)
		hum_api_seterr_(s->err, s->errlen, "out of memory");
	s->failed = true;
	return 1;
}

/* Merges the next lines of every process by seq: each process gives lines
 * up to a budget; only lines up to the smallest last-visited seq of those
 * that did not reach their end can be sent in order (the rest are visited
 * again next time).  1: the answer is complete, 0: more to come, -1: an
 * error (in err). */
static int stream_slice(hum_api *a, client *c, char *err, size_t errlen)
{
	size_t active = 0;
	for (size_t i = 0; i < c->ncur; i++)
		active += !c->cur[i].done;
	if (!active)
		return 1;
	hum_api_scratch_reset_(a);
	uint64_t cutoff = UINT64_MAX;
	bool failed = false;
	double end = hum_api_mono_() + SLICE_TIME;
	hum_read_begin(a->rd);
	for (size_t i = 0; i < c->ncur && !failed; i++) {
		cursor *k = &c->cur[i];
		if (k->done)
			continue;
		hum_entry *e = k->id == HUM_SYS_ID ? hum_store_sys(a->st) : hum_store_lookup(a->st, k->name);
		if (!e || e->id != k->id) {
			k->done = true; /* removed: its lines went with it */
			continue;
		}
		k->upto = k->pos;
		k->end = true;
		slice s = { .a = a, .c = c, .k = k, .per = SLICE_BYTES / active, .end = end, .err = err,
			   .errlen = errlen };
		hum_logring_read(&e->log, k->pos + 1, 0, slice_cb, &s);
		failed = s.failed;
		if (!k->end && k->upto < cutoff)
			cutoff = k->upto;
	}
	if (!failed) {
		if (a->nrec > 1)
			qsort(a->recs, a->nrec, sizeof *a->recs, hum_api_cmp_rec_);
		for (size_t i = 0; i < a->nrec && a->recs[i].seq <= cutoff; i++) {
			rec *r = &a->recs[i];
			if (i && hum_api_unsent_(c) >= PAUSE_OUT) {
				cutoff = a->recs[i - 1].seq; /* the rest next time */
				break;
			}
			hum_api_put_line_(&c->out, r->seq, r->time_ms, r->name, r->stream, r->flags,
					  a->bytes.p + r->off, r->len);
			c->sent++;
		}
		for (size_t i = 0; i < c->ncur; i++) {
			cursor *k = &c->cur[i];
			if (k->done)
				continue;
			k->pos = k->upto < cutoff ? k->upto : cutoff;
			k->done = k->end && k->upto <= cutoff;
		}
	}
	hum_read_end(a->rd);
	hum_api_scratch_reset_(a);
	if (a->bytes.cap > (1u << 20))
		hum_buf_free(&a->bytes);
	return failed ? -1 : 0;
}

static void end_stream(client *c)
{
	c->streaming = false;
	c->api->nstream--;
}

/* More of c's streamed answer (see api_priv.h); at its end, the closing
 * object, or the switch to following. */
bool hum_api_stream_(client *c)
{
	hum_api *a = c->api;
	char err[300];
	double end = hum_api_mono_() + SLICE_TIME;
	size_t total = hum_api_count_unsent_(a);
	size_t others = total - hum_api_unsent_(c);
	while (c->streaming && !c->broken) {
		if (hum_api_unsent_(c) >= PAUSE_OUT || others + hum_api_unsent_(c) >= TOTAL_OUT)
			return false; /* resumed when output drains (write_cb, follow timer) */
		if (hum_api_mono_() > end)
			return true;
		int rc = stream_slice(a, c, err, sizeof err);
		if (rc == 0)
			continue;
		end_stream(c);
		if (rc < 0) {
			hum_api_fail_stream_(c, err);
			hum_api_filter_free_(&c->flt);
			hum_api_cursors_free_(c);
			c->closing = c->then_follow;
			return false;
		}
		size_t missing = c->wanted > c->sent ? c->wanted - c->sent : 0;
		if (!c->then_follow) {
			hum_api_filter_free_(&c->flt);
			hum_api_cursors_free_(c);
			hum_buf_puts(&c->out, "{\"ok\":true");
			hum_api_put_id_(&c->out, c->idraw, c->idlen);
			hum_buf_puts(&c->out, ",\"end\":true,\"lines\":");
			hum_json_u64(&c->out, c->sent);
			if (missing) { /* the ring dropped them while the answer was sent */
				hum_buf_puts(&c->out, ",\"truncated\":");
				hum_json_u64(&c->out, missing);
			}
			hum_buf_puts(&c->out, "}\n");
			c->idlen = 0;
			STAT_INC(a, reads);
			return false;
		}
		/* follow: the filter stays with the client; since only applied
		 * to the backlog */
		c->flt.since_ms = 0;
		c->dropped += missing;
		c->following = true;
		a->nfollow++;
		if (!ev_is_active(&a->follow_timer))
			ev_timer_again(a->loop, &a->follow_timer);
		STAT_INC(a, reads);
	}
	return false;
}

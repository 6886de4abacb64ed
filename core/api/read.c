/*
 * read.c — the requests the API thread answers from the store, without
 * the loop thread: ps, status, logs and follow (wire format: server.c).
 *
 * Every read runs inside hum_read_begin/end on the API thread's own reader
 * record: the world snapshot, process snapshots and log lines are encoded or
 * copied into the client's output inside the section, so nothing read from
 * the store is used after it ends.  The only allocations are the growth of
 * the client's buffer and of scratch arrays in hum_api that every request
 * reuses (and PCRE2's compiled pattern for a --grep).
 *
 * No read holds the API thread for long (README "Limits and guarantees"):
 *   - a logs answer is streamed: found in one pass over the rings (bounded
 *     by REQUEST_BUDGET seconds of wall clock), then sent in slices of at
 *     most SLICE_LINES lines, produced only while the client has less than
 *     PAUSE_OUT unsent and all clients together less than TOTAL_OUT, each
 *     slice yielding back to the loop after SLICE_TIME;
 *   - a follower's poll stops after SLICE_TIME and goes on at the next;
 *   - a --grep is matched with PCRE2's bounds (grep.h): a line that hits
 *     one ends the request with an error.
 */
#define REQUEST_BUDGET 1.0  /* s: finding the lines of one logs request */
#define SLICE_TIME 0.01     /* s: one slice of a streamed answer or a poll */
#define SLICE_LINES 4096    /* lines visited per process per slice */
#define SLICE_BYTES 65536   /* bytes copied per slice, all processes */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api_priv.h"
#include "state/atomic.h"
#include "state/select.h"

/* Reads: procs ------------------------------------------------------------------- */

static const char *stream_name(int s)
{
	return s == HUM_STREAM_ERR ? "err" : s == HUM_STREAM_SYS ? "sys" : "out";
}

static void put_nullable_ms(hum_buf *b, int64_t ms)
{
	if (ms > 0)
		hum_json_ms(b, ms);
	else
		hum_buf_put(b, "null", 4);
}

/* "lines":N,"bytes":N,"dropped":N */
static void put_counts(hum_buf *b, const hum_logcounts *k)
{
	hum_buf_puts(b, "\"lines\":");
	hum_json_u64(b, k->lines);
	hum_buf_puts(b, ",\"bytes\":");
	hum_json_u64(b, k->bytes);
	hum_buf_puts(b, ",\"dropped\":");
	hum_json_u64(b, k->dropped);
}

void hum_api_put_proc_(hum_buf *b, const hum_snap *s)
{
	hum_buf_puts(b, "{\"name\":");
	hum_json_cstr(b, s->name);
	hum_buf_puts(b, ",\"id\":");
	hum_json_u64(b, s->id);
	hum_buf_puts(b, s->kind == HUM_TASK ? ",\"kind\":\"task\"" : ",\"kind\":\"service\"");
	hum_buf_puts(b, ",\"state\":");
	hum_json_cstr(b, hum_state_name((hum_state)s->state));
	hum_buf_puts(b, ",\"pid\":");
	if (s->pid > 0)
		hum_json_i64(b, s->pid);
	else
		hum_buf_puts(b, "null");
	hum_buf_puts(b, ",\"restarts\":");
	hum_json_u64(b, s->restarts);
	hum_buf_puts(b, ",\"exit_code\":");
	if (s->exit_code >= 0)
		hum_json_i64(b, s->exit_code);
	else
		hum_buf_puts(b, "null");
	hum_buf_puts(b, ",\"signal\":");
	const char *sig = s->term_signal > 0 ? sigabbrev_np(s->term_signal) : NULL;
	if (sig) {
		hum_json_cstr(b, sig);
	} else if (s->term_signal > 0) {
		hum_json_i64(b, s->term_signal);
	} else {
		hum_buf_puts(b, "null");
	}
	hum_buf_puts(b, ",\"started_at\":");
	put_nullable_ms(b, s->started_at_ms);
	hum_buf_puts(b, ",\"ended_at\":");
	put_nullable_ms(b, s->ended_at_ms);
	hum_buf_puts(b, ",\"changed_at\":");
	put_nullable_ms(b, s->changed_at_ms);
	const char *g = s->groups ? s->groups : "";
	hum_buf_puts(b, ",\"group\":");
	if (*g) {
		const char *comma = strchr(g, ',');
		hum_json_str(b, g, comma ? (size_t)(comma - g) : strlen(g));
	} else {
		hum_buf_puts(b, "null");
	}
	hum_buf_puts(b, ",\"groups\":[");
	for (const char *p = g; *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (p != g)
			hum_buf_putc(b, ',');
		hum_json_str(b, p, n);
		p += n + (comma ? 1 : 0);
	}
	hum_buf_puts(b, s->ready ? "],\"ready\":true" : "],\"ready\":false");
	hum_buf_puts(b, s->paused ? ",\"paused\":true" : ",\"paused\":false");
	/* Processes of the run left after its main process exited. */
	hum_buf_puts(b, ",\"remaining\":");
	hum_json_u64(b, s->remaining);
	hum_buf_puts(b, ",\"remaining_pids\":[");
	for (int i = 0; i < HUM_SNAP_PIDS && s->remaining_pids[i] > 0; i++) {
		if (i)
			hum_buf_putc(b, ',');
		hum_json_i64(b, s->remaining_pids[i]);
	}
	hum_buf_putc(b, ']');
	hum_buf_puts(b, ",\"reason\":");
	hum_json_cstr(b, s->reason ? s->reason : "");
	/* Log counters from the ring, not the snapshot (logring.h). */
	hum_logcounts k = hum_logring_counts(s->log);
	hum_buf_putc(b, ',');
	put_counts(b, &k);
	hum_buf_puts(b, ",\"first_seq\":");
	hum_json_u64(b, k.first_seq);
	hum_buf_puts(b, ",\"last_seq\":");
	hum_json_u64(b, k.last_seq);
	hum_buf_puts(b, ",\"generation\":");
	hum_json_u64(b, s->generation);
	hum_buf_putc(b, '}');
}

void hum_api_do_ps_(client *c, const char *id, size_t idlen)
{
	hum_api *a = c->api;
	hum_buf *b = &c->out;
	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	hum_buf_puts(b, "{\"ok\":true");
	hum_api_put_id_(b, id, idlen);
	hum_buf_puts(b, ",\"generation\":");
	hum_json_u64(b, w ? w->generation : 0);
	hum_buf_puts(b, ",\"time\":");
	hum_json_ms(b, hum_api_now_ms_());
	/* hum's own log ring (not a process): its counters */
	hum_logcounts hk = hum_logring_counts(&hum_store_sys(a->st)->log);
	hum_buf_puts(b, ",\"hum\":{");
	put_counts(b, &hk);
	hum_buf_puts(b, "},\"procs\":[");
	for (uint32_t i = 0; w && i < w->count; i++) {
		if (i)
			hum_buf_putc(b, ',');
		hum_api_put_proc_(b, w->procs[i]);
	}
	hum_buf_puts(b, "]}\n");
	hum_read_end(a->rd);
}

/* Fills a->sels (in id order) from the request's selectors (none: every
 * process), each selecting what state/select.h says, as every control
 * command does.  With sys non-NULL (logs), hum's own log counts as one more
 * name, HUM_SYS_NAME: *sys tells whether it is selected.  Inside a read
 * section.  Returns 0, or -1 with a message in err. */
static int select_procs(hum_api *a, const hum_world *w, const hum_req *r, bool *sys,
			char *err, size_t errlen)
{
	uint32_t count = w ? w->count : 0;
	a->nsel = 0;
	if (!hum_api_grow_((void **)&a->mark, &a->capmark, count + 1, 1) ||
	    !hum_api_grow_((void **)&a->sels, &a->capsel, count + 1, sizeof *a->sels)) {
		hum_api_seterr_(err, errlen, "out of memory");
		return -1;
	}
	memset(a->mark, r->nnames == 0, count);
	if (sys)
		*sys = r->nnames == 0;
	for (size_t k = 0; k < r->nnames; k++) {
		const char *text = hum_req_name(r, k);
		hum_selector sel;
		if (hum_select_parse(&sel, text, strlen(text), err, errlen) < 0)
			return -1;
		bool any = false;
		if (sys && hum_select_match(&sel, HUM_SYS_NAME, 0, NULL))
			*sys = any = true;
		for (uint32_t i = 0; i < count; i++) {
			if (hum_select_snap(&sel, w->procs[i])) {
				a->mark[i] = 1;
				any = true;
			}
		}
		if (!any) {
			hum_api_seterr_(err, errlen, "no process matches \"%s\"", text);
			return -1;
		}
	}
	for (uint32_t i = 0; i < count; i++)
		if (a->mark[i])
			a->sels[a->nsel++] = w->procs[i];
	return 0;
}

void hum_api_do_status_(client *c, const hum_req *r)
{
	hum_api *a = c->api;
	const char *id = r->id;
	size_t idlen = r->idlen;
	char err[300];
	hum_buf *b = &c->out;
	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	if (select_procs(a, w, r, NULL, err, sizeof err) < 0) {
		hum_read_end(a->rd);
		hum_api_send_error_(c, id, idlen, "%s", err);
		return;
	}
	hum_buf_puts(b, "{\"ok\":true");
	hum_api_put_id_(b, id, idlen);
	hum_buf_puts(b, ",\"time\":");
	hum_json_ms(b, hum_api_now_ms_());
	hum_buf_puts(b, ",\"procs\":[");
	for (size_t i = 0; i < a->nsel; i++) {
		if (i)
			hum_buf_putc(b, ',');
		hum_api_put_proc_(b, a->sels[i]);
	}
	hum_buf_puts(b, "]}\n");
	hum_read_end(a->rd);
}

/* Reads: logs --------------------------------------------------------------------- */

static double mono(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 1: the line passes the filter, 0: it does not, -1: the grep hit a bound
 * (message in err). */
static int line_matches(filter *f, const hum_line *l, char *err, size_t errlen)
{
	if (f->stream && l->stream != f->stream)
		return 0;
	if (f->since_ms && l->time_ms < f->since_ms)
		return 0;
	return hum_grep_match(&f->grep, l->data, l->len, err, errlen);
}

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
	if (mono() > p->deadline) {
		hum_api_seterr_(p->err, p->errlen,
				"logs request too costly: searching the logs took more than %g s; "
				"name fewer processes or use a simpler --grep", REQUEST_BUDGET);
		p->failed = true;
		return 1;
	}
	int m = line_matches(p->f, l, p->err, p->errlen);
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

static void put_line(hum_buf *b, uint64_t seq, int64_t t, const char *name, int stream, int flags,
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
static bool keep_line(hum_api *a, const hum_line *l, const char *name)
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

static int cmp_ref_desc(const void *x, const void *y)
{
	uint64_t a = ((const lref *)x)->seq, b = ((const lref *)y)->seq;
	return a < b ? 1 : a > b ? -1 : 0;
}

static int cmp_rec(const void *x, const void *y)
{
	uint64_t a = ((const rec *)x)->seq, b = ((const rec *)y)->seq;
	return a < b ? -1 : a > b ? 1 : 0;
}

static void scratch_reset(hum_api *a)
{
	a->nrec = 0;
	a->bytes.len = 0;
	a->bytes.oom = false;
}

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

size_t hum_api_count_unsent_(hum_api *a)
{
	size_t t = 0;
	for (client *c = a->clients; c; c = c->next)
		t += hum_api_unsent_(c);
	a->total_unsent = t;
	return t;
}

/* Ends a request with an error after lines were sent: one error line that
 * also says the answer ended. */
static void fail_stream(client *c, const char *err)
{
	hum_buf_puts(&c->out, "{\"ok\":false");
	hum_api_put_id_(&c->out, c->idraw, c->idlen);
	hum_buf_puts(&c->out, ",\"end\":true,\"error\":");
	hum_json_cstr(&c->out, err);
	hum_buf_puts(&c->out, "}\n");
	STAT_INC(c->api, errors);
}

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
	if (select_procs(a, w, r, &sys, err, sizeof err) < 0) {
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
		double deadline = mono() + REQUEST_BUDGET;
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
	if (s->visited >= SLICE_LINES || s->copied >= s->per || (s->visited && mono() > s->end)) {
		k->end = false;
		return 1;
	}
	s->visited++;
	k->upto = l->seq;
	int m = line_matches(&s->c->flt, l, s->err, s->errlen);
	if (m == 0)
		return 0;
	if (m > 0 && keep_line(s->a, l, k->name)) {
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
	scratch_reset(a);
	uint64_t cutoff = UINT64_MAX;
	bool failed = false;
	double end = mono() + SLICE_TIME;
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
			qsort(a->recs, a->nrec, sizeof *a->recs, cmp_rec);
		for (size_t i = 0; i < a->nrec && a->recs[i].seq <= cutoff; i++) {
			rec *r = &a->recs[i];
			if (i && hum_api_unsent_(c) >= PAUSE_OUT) {
				cutoff = a->recs[i - 1].seq; /* the rest next time */
				break;
			}
			put_line(&c->out, r->seq, r->time_ms, r->name, r->stream, r->flags, a->bytes.p + r->off,
				 r->len);
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
	scratch_reset(a);
	if (a->bytes.cap > (1u << 20))
		hum_buf_free(&a->bytes);
	return failed ? -1 : 0;
}

static void end_stream(client *c)
{
	c->streaming = false;
	c->api->nstream--;
}

bool hum_api_stream_(client *c)
{
	hum_api *a = c->api;
	char err[300];
	double end = mono() + SLICE_TIME;
	size_t total = hum_api_count_unsent_(a);
	size_t others = total - hum_api_unsent_(c);
	while (c->streaming && !c->broken) {
		if (hum_api_unsent_(c) >= PAUSE_OUT || others + hum_api_unsent_(c) >= TOTAL_OUT)
			return false; /* resumed when output drains (write_cb, follow timer) */
		if (mono() > end)
			return true;
		int rc = stream_slice(a, c, err, sizeof err);
		if (rc == 0)
			continue;
		end_stream(c);
		if (rc < 0) {
			fail_stream(c, err);
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
	if (p->visited && mono() > p->end)
		return 1; /* the rest at the next poll (or counted as dropped) */
	p->visited++;
	p->k->last = l->seq;
	int m = line_matches(&p->c->flt, l, p->err, p->errlen);
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
	if (!keep_line(a, l, p->k->name)) {
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
	scratch_reset(a);
	size_t live = 0;
	bool failed = false;
	char err[300] = "out of memory";
	double end = mono() + SLICE_TIME;
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
			qsort(a->recs, a->nrec, sizeof *a->recs, cmp_rec);
		for (size_t i = 0; i < a->nrec; i++) {
			rec *r = &a->recs[i];
			put_line(&c->out, r->seq, r->time_ms, r->name, r->stream, r->flags, a->bytes.p + r->off,
				 r->len);
		}
	}
	hum_read_end(a->rd);
	scratch_reset(a);
	if (failed) {
		/* a grep that hit its bound ends the follow with the error */
		fail_stream(c, err);
		c->following = false;
		a->nfollow--;
		c->closing = true;
		return;
	}
	if (!c->follow_all && !c->watching && live == 0)
		hum_api_end_follow_(c, "removed");
}

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

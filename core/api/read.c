/*
 * api_read.c — the requests the API thread answers from the store, without
 * the loop thread: ps, status, logs and follow (wire format: api.c).
 *
 * Every read runs inside hum_read_begin/end on the API thread's own reader
 * record: the world snapshot, process snapshots and log lines are encoded or
 * copied into the client's output inside the section, so nothing read from
 * the store is used after it ends.  The only allocations are the growth of
 * the client's buffer and of scratch arrays in hum_api that every request
 * reuses (and regcomp for a --grep that is a regular expression rather than
 * plain text).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
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

static void put_proc(hum_buf *b, const hum_snap *s)
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
	hum_logcounts k = hum_logring_counts(&hum_store_sys(a->st)->log);
	hum_buf_puts(b, ",\"hum\":{");
	put_counts(b, &k);
	hum_buf_puts(b, "},\"procs\":[");
	for (uint32_t i = 0; w && i < w->count; i++) {
		if (i)
			hum_buf_putc(b, ',');
		put_proc(b, w->procs[i]);
	}
	hum_buf_puts(b, "]}\n");
	hum_read_end(a->rd);
}

/* Fills a->sels (in id order) from the selectors in `names` (a string or an
 * array of strings; NULL or empty: every process), each selecting what
 * state/select.h says, as every control command does.  With sys non-NULL
 * (logs), hum's own log counts as one more name, HUM_SYS_NAME: *sys tells
 * whether it is selected.  Inside a read section.  Returns 0, or -1 with a
 * message in err. */
static int select_procs(hum_api *a, const hum_world *w, const hum_jval *names, bool *sys,
			char *err, size_t errlen)
{
	uint32_t count = w ? w->count : 0;
	a->nsel = 0;
	if (!hum_api_grow_((void **)&a->mark, &a->capmark, count + 1, 1) ||
	    !hum_api_grow_((void **)&a->sels, &a->capsel, count + 1, sizeof *a->sels)) {
		hum_api_seterr_(err, errlen, "out of memory");
		return -1;
	}
	bool all = !names || (names->type == HUM_JARR && names->count == 0);
	memset(a->mark, all, count);
	if (sys)
		*sys = all;
	if (!all) {
		const hum_jval *one = names->type == HUM_JSTR ? names : names->child;
		for (const hum_jval *v = one; v; v = names->type == HUM_JSTR ? NULL : v->next) {
			if (v->type != HUM_JSTR) {
				hum_api_seterr_(err, errlen, "names must be strings");
				return -1;
			}
			hum_selector sel;
			if (hum_select_parse(&sel, v->str, v->len, err, errlen) < 0)
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
				hum_api_seterr_(err, errlen, "no process matches \"%s\"", v->str);
				return -1;
			}
		}
	}
	for (uint32_t i = 0; i < count; i++)
		if (a->mark[i])
			a->sels[a->nsel++] = w->procs[i];
	return 0;
}

static const hum_jval *names_field(const hum_jval *req)
{
	const hum_jval *v = hum_json_get(req, "names");
	if (!v || v->type == HUM_JNULL)
		v = hum_json_get(req, "name");
	if (v && v->type == HUM_JNULL)
		v = NULL;
	return v;
}

void hum_api_do_status_(client *c, const hum_jval *req, const char *id, size_t idlen)
{
	hum_api *a = c->api;
	const hum_jval *names = names_field(req);
	if (!names || (names->type != HUM_JSTR && names->type != HUM_JARR) ||
	    (names->type == HUM_JARR && names->count == 0)) {
		hum_api_send_error_(c, id, idlen, "status needs \"name\" (a string) or \"names\" (strings)");
		return;
	}
	char err[300];
	hum_buf *b = &c->out;
	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	if (select_procs(a, w, names, NULL, err, sizeof err) < 0) {
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
		put_proc(b, a->sels[i]);
	}
	hum_buf_puts(b, "]}\n");
	hum_read_end(a->rd);
}

/* Reads: logs --------------------------------------------------------------------- */

static bool line_matches(const filter *f, const hum_line *l)
{
	if (f->stream && l->stream != f->stream)
		return false;
	if (f->since_ms && l->time_ms < f->since_ms)
		return false;
	if (f->has_needle)
		return memmem(l->data, l->len, f->needle, f->needlen) != NULL;
	if (f->has_re) {
		regmatch_t m[1];
		m[0].rm_so = 0;
		m[0].rm_eo = (regoff_t)l->len;
		return regexec(&f->re, l->data ? l->data : "", 1, m, REG_STARTEND) == 0;
	}
	return true;
}

static int filter_init(filter *f, const hum_jval *req, char *err, size_t errlen)
{
	memset(f, 0, sizeof *f);
	const hum_jval *v = hum_json_get(req, "stream");
	if (v && v->type != HUM_JNULL) {
		if (v->type == HUM_JSTR && strcmp(v->str, "out") == 0)
			f->stream = HUM_STREAM_OUT;
		else if (v->type == HUM_JSTR && strcmp(v->str, "err") == 0)
			f->stream = HUM_STREAM_ERR;
		else {
			hum_api_seterr_(err, errlen, "stream must be \"out\" or \"err\"");
			return -1;
		}
	}
	v = hum_json_get(req, "since");
	if (v && v->type != HUM_JNULL) {
		if (v->type != HUM_JNUM || !(v->num >= 0 && v->num <= 1e15)) {
			hum_api_seterr_(err, errlen, "since must be seconds since the epoch");
			return -1;
		}
		f->since_ms = (int64_t)(v->num * 1000.0);
	}
	v = hum_json_get(req, "grep");
	if (v && v->type != HUM_JNULL) {
		if (v->type != HUM_JSTR) {
			hum_api_seterr_(err, errlen, "grep must be a string");
			return -1;
		}
		if (v->len == 0)
			return 0;
		if (strlen(v->str) != v->len) {
			hum_api_seterr_(err, errlen, "grep must not contain NUL");
			return -1;
		}
		if (!strpbrk(v->str, ".[]()*+?{}|^$\\")) {
			/* plain text: a substring search, no regex engine */
			f->needle = strdup(v->str);
			if (!f->needle) {
				hum_api_seterr_(err, errlen, "out of memory");
				return -1;
			}
			f->needlen = v->len;
			f->has_needle = true;
			return 0;
		}
		int rc = regcomp(&f->re, v->str, REG_EXTENDED | REG_NOSUB);
		if (rc != 0) {
			char m[160];
			regerror(rc, &f->re, m, sizeof m);
			hum_api_seterr_(err, errlen, "bad grep pattern: %s", m);
			return -1;
		}
		f->has_re = true;
	}
	return 0;
}

/* Pass 1: which lines match (seq and estimated encoded size). */
typedef struct pass1 {
	hum_api *a;
	const filter *f;
	uint64_t horizon;
	size_t namelen;
	bool oom;
} pass1;

static int pass1_cb(const hum_line *l, void *ud)
{
	pass1 *p = ud;
	if (l->seq > p->horizon)
		return 1; /* committed after we started (visits are oldest first) */
	if (!line_matches(p->f, l))
		return 0;
	hum_api *a = p->a;
	if (!hum_api_grow_((void **)&a->refs, &a->capref, a->nref + 1, sizeof *a->refs)) {
		p->oom = true;
		return 1;
	}
	a->refs[a->nref].seq = l->seq;
	a->refs[a->nref].cost = l->len + p->namelen + 96;
	a->nref++;
	return 0;
}

/* Pass 2 (and follow): copy the chosen lines, or encode them directly. */
typedef struct pass2 {
	hum_api *a;
	client *c;
	const filter *f;
	uint64_t lo, hi;     /* seq range */
	const char *name;
	bool direct;         /* encode into c->out (one process: already ordered) */
	bool budget;         /* follow: count drops over max_output */
	uint64_t *cursor;    /* follow: last seq visited */
	size_t count;
	uint64_t visited;    /* lines up to hi, matching or not */
	bool oom;
} pass2;

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

static int pass2_cb(const hum_line *l, void *ud)
{
	pass2 *p = ud;
	if (l->seq > p->hi)
		return 1;
	p->visited++;
	if (p->cursor)
		*p->cursor = l->seq;
	if (l->seq < p->lo || !line_matches(p->f, l))
		return 0;
	hum_api *a = p->a;
	if (p->budget && hum_api_unsent_(p->c) + a->bytes.len + l->len > a->max_output) {
		p->c->dropped++;
		STAT_INC(a, dropped_lines);
		return 0;
	}
	p->count++;
	if (p->direct) {
		put_line(&p->c->out, l->seq, l->time_ms, p->name, l->stream, l->flags, l->data, l->len);
		return 0;
	}
	if (!hum_api_grow_((void **)&a->recs, &a->caprec, a->nrec + 1, sizeof *a->recs)) {
		p->oom = true;
		return 1;
	}
	rec *r = &a->recs[a->nrec++];
	r->seq = l->seq;
	r->time_ms = l->time_ms;
	r->name = p->name;
	r->stream = l->stream;
	r->flags = l->flags;
	r->off = a->bytes.len;
	r->len = l->len;
	hum_buf_put(&a->bytes, l->data, l->len);
	if (a->bytes.oom) {
		p->oom = true;
		return 1;
	}
	return 0;
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

static void emit_recs(hum_api *a, client *c)
{
	if (a->nrec > 1)
		qsort(a->recs, a->nrec, sizeof *a->recs, cmp_rec);
	for (size_t i = 0; i < a->nrec; i++) {
		rec *r = &a->recs[i];
		put_line(&c->out, r->seq, r->time_ms, r->name, r->stream, r->flags, a->bytes.p + r->off, r->len);
	}
	a->nrec = 0;
	a->bytes.len = 0;
}

static int add_cursor(client *c, uint32_t id, const char *name, uint64_t last, uint64_t ord)
{
	if (!hum_api_grow_((void **)&c->cur, &c->capcur, c->ncur + 1, sizeof *c->cur))
		return -1;
	char *n = strdup(name);
	if (!n)
		return -1;
	c->cur[c->ncur++] = (cursor){ .id = id, .last = last, .ord = ord, .name = n };
	return 0;
}

void hum_api_do_logs_(client *c, const hum_jval *req, const char *id, size_t idlen)
{
	hum_api *a = c->api;
	char err[300];
	const hum_jval *names = names_field(req);
	if (names && names->type != HUM_JSTR && names->type != HUM_JARR) {
		hum_api_send_error_(c, id, idlen, "names must be an array of strings");
		return;
	}
	const hum_jval *v = hum_json_get(req, "n");
	double nd = 100;
	if (v && v->type != HUM_JNULL) {
		/* range first: casting a huge double to an integer is undefined */
		if (v->type != HUM_JNUM || !(v->num >= 0 && v->num <= 1e15) || v->num != (double)(long long)v->num) {
			hum_api_send_error_(c, id, idlen, "n must be a whole number >= 0");
			return;
		}
		nd = v->num;
	}
	size_t n = nd > 1e9 ? (size_t)1e9 : (size_t)nd;
	v = hum_json_get(req, "follow");
	bool follow = v && v->type == HUM_JTRUE;
	if (v && v->type != HUM_JTRUE && v->type != HUM_JFALSE && v->type != HUM_JNULL) {
		hum_api_send_error_(c, id, idlen, "follow must be true or false");
		return;
	}
	filter f;
	if (filter_init(&f, req, err, sizeof err) < 0) {
		hum_api_filter_free_(&f);
		hum_api_send_error_(c, id, idlen, "%s", err);
		return;
	}
	bool plain = !f.stream && !f.since_ms && !f.has_re && !f.has_needle;
	size_t budget = hum_api_unsent_(c) < a->max_output ? a->max_output - hum_api_unsent_(c) : 0;

	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	bool sys;
	if (select_procs(a, w, names, &sys, err, sizeof err) < 0) {
		hum_read_end(a->rd);
		hum_api_filter_free_(&f);
		hum_api_send_error_(c, id, idlen, "%s", err);
		return;
	}
	/* Entries and commit horizons, fixed for both passes and the follow
	 * cursors.  A ring's lines commit in seq order, so a line committed
	 * after its horizon was read has a larger seq: it is the follower's. */
	size_t nsel = a->nsel + sys; /* hum's own log last */
	bool oom = !hum_api_grow_((void **)&a->ents, &a->capents, nsel + 1, sizeof *a->ents) ||
		   !hum_api_grow_((void **)&a->hz, &a->caphz, nsel + 1, sizeof *a->hz);
	a->nref = a->nrec = 0;
	a->bytes.len = 0;
	a->bytes.oom = false;
	for (size_t i = 0; i < nsel && !oom; i++) {
		hum_entry *e = i == a->nsel ? hum_store_sys(a->st) : hum_store_lookup(a->st, a->sels[i]->name);
		a->ents[i] = e && (i == a->nsel || e->id == a->sels[i]->id) ? e : NULL;
		a->hz[i] = a->ents[i] ? hum_logring_last_seq(&e->log) : 0;
	}
	uint64_t threshold = UINT64_MAX, total = 0;
	size_t taken = 0, cost = 0;
	if (n > 0) {
		for (size_t i = 0; i < nsel && !oom; i++) {
			if (!a->ents[i])
				continue;
			pass1 p = { a, &f, a->hz[i], strlen(a->ents[i]->name), false };
			if (plain)
				hum_logring_tail_upto(&a->ents[i]->log, a->hz[i], n, pass1_cb, &p);
			else
				hum_logring_read(&a->ents[i]->log, 0, 0, pass1_cb, &p);
			oom = p.oom;
		}
		total = a->nref;
		if (a->nref > 1)
			qsort(a->refs, a->nref, sizeof *a->refs, cmp_ref_desc);
		/* the newest n matching lines, as many as fit the output bound */
		for (size_t i = 0; i < a->nref && taken < n; i++) {
			if (cost + a->refs[i].cost > budget)
				break;
			cost += a->refs[i].cost;
			threshold = a->refs[i].seq;
			taken++;
		}
	}
	size_t count = 0;
	bool follow_oom = false;
	for (size_t i = 0; i < nsel && !oom; i++) {
		if (!a->ents[i])
			continue;
		const char *pname = a->ents[i]->name;
		if (taken) {
			pass2 p = { .a = a, .c = c, .f = &f, .lo = threshold, .hi = a->hz[i], .name = pname,
				    .direct = nsel == 1 };
			hum_logring_read(&a->ents[i]->log, threshold, 0, pass2_cb, &p);
			count += p.count;
			oom = p.oom;
		}
		/* lines counts what was committed up to at least the horizon */
		if (follow && add_cursor(c, a->ents[i]->id, pname, a->hz[i],
					 hum_load_u64_relaxed(&a->ents[i]->log.lines)) < 0)
			follow_oom = true;
	}
	if (!oom)
		emit_recs(a, c);
	hum_read_end(a->rd);
	a->nrec = 0;
	a->bytes.len = 0;
	if (a->bytes.cap > (8u << 20)) /* do not keep a huge scratch around */
		hum_buf_free(&a->bytes);
	if (oom || follow_oom) {
		hum_api_filter_free_(&f);
		hum_api_cursors_free_(c);
		hum_api_send_error_(c, id, idlen, "out of memory");
		return;
	}
	size_t wanted = total < n ? (size_t)total : n;
	if (!follow) {
		hum_api_filter_free_(&f);
		hum_buf_puts(&c->out, "{\"ok\":true");
		hum_api_put_id_(&c->out, id, idlen);
		hum_buf_puts(&c->out, ",\"end\":true,\"lines\":");
		hum_json_u64(&c->out, count);
		if (wanted > taken) {
			hum_buf_puts(&c->out, ",\"truncated\":");
			hum_json_u64(&c->out, wanted - taken);
		}
		hum_buf_puts(&c->out, "}\n");
		STAT_INC(a, reads);
		return;
	}
	/* follow: the filter moves into the client; since only applied to
	 * the backlog */
	f.since_ms = 0;
	c->flt = f;
	c->following = true;
	c->follow_all = !names || (names->type == HUM_JARR && names->count == 0);
	if (wanted > taken)
		c->dropped += wanted - taken;
	c->idlen = idlen;
	if (idlen)
		memcpy(c->idraw, id, idlen);
	a->nfollow++;
	if (!ev_is_active(&a->follow_timer))
		ev_timer_again(a->loop, &a->follow_timer);
	STAT_INC(a, reads);
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

/* One poll of one follower: new lines of every followed process, merged by
 * seq; lines beyond the client's output bound are counted, not kept. */
static void follow_poll(hum_api *a, client *c)
{
	a->nrec = 0;
	a->bytes.len = 0;
	a->bytes.oom = false;
	size_t live = 0;
	bool oom = false;
	hum_read_begin(a->rd);
	if (c->follow_all) {
		const hum_world *w = hum_store_world(a->st);
		for (uint32_t i = 0; w && i < w->count; i++)
			if (!has_cursor(c, w->procs[i]->id) &&
			    add_cursor(c, w->procs[i]->id, w->procs[i]->name, 0, 0) < 0)
				oom = true;
	}
	for (size_t i = 0; i < c->ncur && !oom; i++) {
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
		pass2 p = { .a = a, .c = c, .f = &c->flt, .lo = 0, .hi = last, .name = k->name,
			    .budget = true, .cursor = &k->last };
		hum_logring_read(&e->log, k->last + 1, 0, pass2_cb, &p);
		oom = p.oom;
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
	if (!oom)
		emit_recs(a, c);
	hum_read_end(a->rd);
	a->nrec = 0;
	a->bytes.len = 0;
	if (oom) {
		c->broken = true;
		return;
	}
	if (!c->follow_all && live == 0)
		hum_api_end_follow_(c, "removed");
}

void hum_api_follow_cb_(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_api *a = w->data;
	for (client *c = a->clients, *next; c; c = next) {
		next = c->next;
		if (c->following && !c->broken) {
			follow_poll(a, c);
			hum_api_settle_(c);
		}
	}
	if (!a->nfollow)
		ev_timer_stop(loop, w);
}

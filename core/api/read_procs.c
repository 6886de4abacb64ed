/*
 * read_procs.c — the ps and status answers: the world snapshot's processes
 * (all of them, or those the request's selectors select) as PROC objects
 * (wire format: dispatch.c).
 *
 * Separate from the logs answers (read_logs.c, follow.c): a ps or status
 * answer is one encode of snapshots inside one read section, never
 * streamed, with no cursor and no scratch beyond the selection.  The PROC
 * writer and the selection are shared: watch.c sends PROC objects too, and
 * a logs request selects its processes as status does.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "api_priv.h"
#include "state/select.h"

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

/* One PROC object for snapshot s (its fields: dispatch.c); inside a read
 * section. */
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

/* The ps answer, into c->out: the world's generation, the time, hum's own
 * log counters and every process. */
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
int hum_api_select_procs_(hum_api *a, const hum_world *w, const hum_req *r, bool *sys,
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

/* The status answer, into c->out: the processes r selects, or an error
 * when a selector selects nothing. */
void hum_api_do_status_(client *c, const hum_req *r)
{
	hum_api *a = c->api;
	const char *id = r->id;
	size_t idlen = r->idlen;
	char err[300];
	hum_buf *b = &c->out;
	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	if (hum_api_select_procs_(a, w, r, NULL, err, sizeof err) < 0) {
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

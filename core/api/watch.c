/*
 * watch.c — the `watch` request: a change feed for subscribers (the
 * terminal UI, the MCP server, `hum ps --watch`), answered on the API thread
 * from the world snapshot, like every read.
 *
 *   {"cmd":"watch"[,"logs":true]}
 *   -> {"ok":true[,"id":..],"watch":true,"generation":G,"time":T,"procs":[PROC...]}
 *      every process as `ps` shows it; then, whenever the world's generation
 *      has moved (checked with the followers, every follow_interval):
 *      {"event":"change","generation":G,"time":T,"procs":[PROC...],"removed":[NAME...]}
 *      with the processes whose snapshot changed since the last message, each
 *      in its newest state; with "logs":true also every new log line, as
 *      `logs -f` sends them; until
 *      {"ok":true[,"id":..],"end":true,"reason":"server stopping"}
 *
 * A snapshot's generation moves only when its state does (log lines never
 * republish it), so a quiet environment costs a watcher nothing.
 *
 * Bounds: the same per-client output bound as followers.  While a watcher
 * has more than half of it unsent, change messages wait; the next one then
 * carries every process that changed meanwhile, in its newest state:
 * intermediate states are coalesced, no process's newest state is lost.  The
 * per-client table of what was sent holds one entry per process.
 */
#include <stdlib.h>
#include <string.h>

#include "api_priv.h"
#include "state/atomic.h"

struct hum_wseen {
	uint32_t id;
	uint64_t gen;
	char *name;
};

void hum_api_watch_free_(client *c)
{
	for (size_t i = 0; i < c->nseen; i++)
		free(c->seen[i].name);
	free(c->seen);
	free(c->seen2);
	c->seen = c->seen2 = NULL;
	c->nseen = c->capseen = c->capseen2 = 0;
}

/* Records world w as sent: c->seen becomes w's (id, generation, name) list,
 * names kept from the previous list where the process is the same.  Returns
 * false on ENOMEM (the client is then broken). */
static bool remember(client *c, const hum_world *w)
{
	if (!hum_api_grow_((void **)&c->seen2, &c->capseen2, w->count + 1, sizeof *c->seen2))
		return false;
	size_t j = 0, n = 0;
	for (uint32_t i = 0; i < w->count; i++) {
		const hum_snap *s = w->procs[i];
		while (j < c->nseen && c->seen[j].id < s->id)
			free(c->seen[j++].name); /* removed */
		char *name;
		if (j < c->nseen && c->seen[j].id == s->id) {
			name = c->seen[j].name;
			c->seen[j++].name = NULL;
		} else if (!(name = strdup(s->name))) {
			for (size_t k = 0; k < n; k++)
				free(c->seen2[k].name);
			return false;
		}
		c->seen2[n++] = (struct hum_wseen){ s->id, s->generation, name };
	}
	while (j < c->nseen)
		free(c->seen[j++].name);
	struct hum_wseen *t = c->seen;
	size_t tcap = c->capseen;
	c->seen = c->seen2;
	c->capseen = c->capseen2;
	c->nseen = n;
	c->seen2 = t;
	c->capseen2 = tcap;
	return true;
}

void hum_api_do_watch_(client *c, const hum_req *r)
{
	hum_api *a = c->api;
	hum_buf *b = &c->out;
	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	bool ok = remember(c, w);
	/* with logs: new lines only, from each process's horizon now */
	for (uint32_t i = 0; ok && r->follow && i < w->count; i++) {
		hum_entry *e = hum_store_lookup(a->st, w->procs[i]->name);
		if (e && e->id == w->procs[i]->id)
			ok = hum_api_add_cursor_(c, e->id, e->name, hum_logring_last_seq(&e->log),
						 hum_load_u64_relaxed(&e->log.lines)) == 0;
	}
	if (!ok) {
		hum_read_end(a->rd);
		hum_api_watch_free_(c);
		hum_api_cursors_free_(c);
		hum_api_send_error_(c, r->id, r->idlen, "out of memory");
		return;
	}
	hum_buf_puts(b, "{\"ok\":true");
	hum_api_put_id_(b, r->id, r->idlen);
	hum_buf_puts(b, ",\"watch\":true,\"generation\":");
	hum_json_u64(b, w->generation);
	hum_buf_puts(b, ",\"time\":");
	hum_json_ms(b, hum_api_now_ms_());
	hum_buf_puts(b, ",\"procs\":[");
	for (uint32_t i = 0; i < w->count; i++) {
		if (i)
			hum_buf_putc(b, ',');
		hum_api_put_proc_(b, w->procs[i]);
	}
	hum_buf_puts(b, "]}\n");
	c->watch_gen = w->generation;
	hum_read_end(a->rd);
	/* The follower machinery carries it from here: polls, the output
	 * bound, the end message when hum stops, no reading meanwhile. */
	c->watching = true;
	c->following = true;
	c->follow_all = r->follow;
	c->idlen = r->idlen;
	if (r->idlen)
		memcpy(c->idraw, r->id, r->idlen);
	a->nfollow++;
	if (!ev_is_active(&a->follow_timer))
		ev_timer_again(a->loop, &a->follow_timer);
	STAT_INC(a, reads);
}

void hum_api_watch_poll_(hum_api *a, client *c)
{
	if (hum_api_unsent_(c) > a->max_output / 2 || a->total_unsent > TOTAL_OUT / 2)
		return; /* coalesced into a later message */
	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	if (w->generation == c->watch_gen) {
		hum_read_end(a->rd);
		return;
	}
	hum_buf *b = &c->out;
	hum_buf_puts(b, "{\"event\":\"change\",\"generation\":");
	hum_json_u64(b, w->generation);
	hum_buf_puts(b, ",\"time\":");
	hum_json_ms(b, hum_api_now_ms_());
	hum_buf_puts(b, ",\"procs\":[");
	/* both lists are in id order: one merge walk */
	size_t j = 0, k = 0;
	for (uint32_t i = 0; i < w->count; i++) {
		const hum_snap *s = w->procs[i];
		while (j < c->nseen && c->seen[j].id < s->id)
			j++;
		if (j < c->nseen && c->seen[j].id == s->id && c->seen[j].gen == s->generation)
			continue;
		if (k++)
			hum_buf_putc(b, ',');
		hum_api_put_proc_(b, s);
	}
	hum_buf_puts(b, "],\"removed\":[");
	k = 0;
	for (size_t i = 0, wi = 0; i < c->nseen; i++) {
		while (wi < w->count && w->procs[wi]->id < c->seen[i].id)
			wi++;
		if (wi < w->count && w->procs[wi]->id == c->seen[i].id)
			continue;
		if (k++)
			hum_buf_putc(b, ',');
		hum_json_cstr(b, c->seen[i].name);
	}
	hum_buf_puts(b, "]}\n");
	c->watch_gen = w->generation;
	if (!remember(c, w))
		c->broken = true;
	hum_read_end(a->rd);
}

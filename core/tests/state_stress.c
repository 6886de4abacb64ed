/*
 * state_stress.c — one writer publishing and retiring at full speed, several
 * reader threads validating everything they see.
 *
 * Writer (main thread): adds processes until the registry holds GROW_TO
 * entries (several ck_hs resizes), removes them down to SHRINK_TO (the
 * registry is rebuilt smaller), and repeats; meanwhile publishes new
 * snapshots, appends batches of log lines (up to exactly HUM_LINE_MAX) to a
 * few hot processes with a small retention so chunks are dropped all the
 * time, and flushes (world publish + reclamation) every few operations.
 *
 * Readers: inside read sections, check
 *   - every snapshot's checksum (a torn or reclaimed read fails it),
 *   - per process id, generations never go backwards (separately for
 *     snapshots reached through lookups and through worlds: a world is
 *     published lazily, so it may be older than the entry's snapshot),
 *   - worlds: generation never goes backwards, ids strictly increasing, no
 *     NULL, count equal to what the writer recorded for that generation,
 *   - lookups: the entry found has the name asked for, its snapshot too,
 *   - log lines: each is copied and its content checked against its seq,
 *     process id, per-process index and length; within a read the indexes
 *     are contiguous, and a gap between reads is allowed only if the ring's
 *     `dropped` counter covers it.
 * Finally: the world matches the writer, and after teardown nothing is
 * pending.  HUM_STRESS_SECONDS (default 2) sets the duration,
 * HUM_STRESS_READERS (default 3, 1..8) the reader count.
 */
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state/logring.h"
#include "state/snap.h"
#include "state/store.h"
#include "tap.h"

#define HOT 8
#define GROW_TO 3000
#define SHRINK_TO 16
#define IDCAP (1u << 21)
#define NSLOT 4096
#define LOG_BYTES (256 * 1024)
#define MAXREADERS 8

static hum_store *st;
static int stop_flag;
static uint64_t kmax_pub;          /* highest cold name index added (relaxed) */
static uint64_t wslot[NSLOT];       /* world generation << 20 | count (release/acquire) */

static inline uint64_t xs(uint64_t *s)
{
	uint64_t x = *s;
	x ^= x << 13;
	x ^= x >> 7;
	x ^= x << 17;
	return *s = x;
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Log line format -------------------------------------------------------------
 * "p=<id> i=<index> s=<seq> n=<len> |" then padding where byte j of the line
 * is 'a' + (seq + j) % 26.  stream and flags are functions of seq too. */

static size_t make_line(char *buf, uint32_t id, uint64_t idx, uint64_t seq, size_t len)
{
	char head[96];
	int hn = snprintf(head, sizeof head, "p=%u i=%llu s=%llu n=", id,
			  (unsigned long long)idx, (unsigned long long)seq);
	/* the length field's own digits change the length: fix the point */
	size_t total = len;
	for (int k = 0; k < 3; k++) {
		int dn = snprintf(NULL, 0, "%zu |", total);
		if (total < (size_t)hn + (size_t)dn)
			total = (size_t)hn + (size_t)dn;
	}
	int n = snprintf(buf, 128, "%s%zu |", head, total);
	for (size_t j = (size_t)n; j < total; j++)
		buf[j] = (char)('a' + (seq + j) % 26);
	return total;
}

static int line_stream(uint64_t seq) { return 1 + (int)(seq % 3); }
static int line_flags(uint64_t seq) { return seq % 5 == 0 ? HUM_LINE_CONT : 0; }

/* Parses and checks one copied line; returns its index or -1. */
static int64_t check_line(const hum_line *l, uint32_t id, char *copy)
{
	memcpy(copy, l->data, l->len);
	copy[l->len] = 0;
	unsigned p;
	unsigned long long i, s;
	size_t n;
	int off = 0;
	if (sscanf(copy, "p=%u i=%llu s=%llu n=%zu |%n", &p, &i, &s, &n, &off) != 4 || off == 0)
		return -1;
	if (p != id || s != l->seq || n != l->len || l->stream != line_stream(s) || l->flags != line_flags(s))
		return -1;
	for (size_t j = (size_t)off; j < l->len; j++)
		if (copy[j] != (char)('a' + (s + j) % 26))
			return -1;
	return (int64_t)i;
}

/* Writer ------------------------------------------------------------------------ */

struct wstats {
	uint64_t ops, adds, removes, publishes, lines, max_lines, flushes, cycles, seq_bad;
	size_t max_live, min_live_after_grow;
};

struct hot {
	hum_entry *e;
	uint64_t next_idx;
};

static char linebuf[HUM_LINE_MAX + 256];
static char *reasons[] = { "", "starting", "exited with code 1 after a long while",
			   "ready", "backoff 0.5s", "killed by SIGKILL (group)" };

static uint64_t seq_expect = 1;

static void append_lines(struct wstats *ws, hum_entry *e, uint64_t *idx, int n, uint64_t *rng, int allow_big)
{
	for (int k = 0; k < n; k++) {
		uint64_t r = xs(rng) % 1000;
		size_t len;
		if (allow_big && r < 10)
			len = r < 4 ? HUM_LINE_MAX : HUM_LINE_MAX - 1000 + (size_t)(xs(rng) % 1000);
		else if (r < 100)
			len = 200 + (size_t)(xs(rng) % 8000);
		else
			len = 40 + (size_t)(xs(rng) % 160);
		uint64_t seq = seq_expect;
		len = make_line(linebuf, e->id, *idx, seq, len);
		uint64_t got = hum_logring_append(&e->log, line_stream(seq), line_flags(seq), 1000 + (int64_t)seq,
						  linebuf, len);
		if (got != seq) {
			ws->seq_bad++;
			if (got == 0)
				return;
		}
		seq_expect = got + 1;
		(*idx)++;
		ws->lines++;
		if (len == HUM_LINE_MAX)
			ws->max_lines++;
	}
	hum_logring_commit(&e->log);
}

static void update(struct wstats *ws, hum_entry *e, uint64_t *rng)
{
	hum_snap *n = hum_snap_clone(e->snap, reasons[xs(rng) % 6]);
	if (n == NULL)
		return;
	n->state = (uint8_t)(xs(rng) % HUM_STATE_COUNT);
	n->pid = (int32_t)(xs(rng) & 0x3fffff);
	n->restarts++;
	n->changed_at_ms = (int64_t)xs(rng);
	hum_store_publish(st, e, n);
	ws->publishes++;
}

static void record_world(void)
{
	/* The generation the next publish will get, and the count it will
	 * have: written before the publish, so a reader that sees the world
	 * can find it (release/acquire on the slot). */
	uint64_t g = st ? hum_store_world(st)->generation + 1 : 0;
	uint64_t v = g << 20 | (uint64_t)hum_store_count(st);
	__atomic_store_n(&wslot[g % NSLOT], v, __ATOMIC_RELEASE);
}

static void writer_run(double seconds, struct wstats *ws, struct hot *hot,
		       hum_entry ***coldp, size_t *ncoldp, uint64_t *kcount)
{
	uint64_t rng = 0x9e3779b97f4a7c15ULL;
	size_t cap = GROW_TO + 64, ncold = 0;
	hum_entry **cold = calloc(cap, sizeof *cold);
	uint64_t *cold_idx = calloc(IDCAP, sizeof *cold_idx);
	int growing = 1;
	char name[32];
	double end = now() + seconds;
	ws->min_live_after_grow = (size_t)-1;
	for (;;) {
		/* At least one full grow/shrink cycle, even in slow sanitizer
		 * builds, but never more than 10x the requested time. */
		if ((ws->ops & 63) == 0 && now() >= end && (ws->cycles > 0 || now() >= end + 9 * seconds))
			break;
		ws->ops++;
		uint64_t r = xs(&rng) % 100;
		int addp = growing ? 40 : 3, remp = growing ? 3 : 40;
		if (r < (uint64_t)addp) {
			if (ncold < cap && *kcount + 2 < IDCAP) {
				snprintf(name, sizeof name, "c%llu", (unsigned long long)*kcount);
				hum_snap *s = hum_snap_new(NULL, name, "cold", "not started");
				hum_entry *e = hum_store_add(st, s);
				if (e != NULL) {
					cold[ncold++] = e;
					ws->adds++;
					(*kcount)++;
					__atomic_store_n(&kmax_pub, *kcount, __ATOMIC_RELAXED);
				} else {
					hum_snap_free(s);
				}
			}
		} else if (r < (uint64_t)(addp + remp)) {
			if (ncold > 0) {
				size_t i = xs(&rng) % ncold;
				hum_store_remove(st, cold[i]);
				cold[i] = cold[--ncold];
				ws->removes++;
			}
		} else if (r < 66) {
			if (ncold > 0 && (r & 1))
				update(ws, cold[xs(&rng) % ncold], &rng);
			else
				update(ws, hot[xs(&rng) % HOT].e, &rng);
		} else if (r < 94) {
			struct hot *h = &hot[xs(&rng) % HOT];
			append_lines(ws, h->e, &h->next_idx, 1 + (int)(xs(&rng) % 16), &rng, 1);
		} else if (ncold > 0) {
			hum_entry *e = cold[xs(&rng) % ncold];
			append_lines(ws, e, &cold_idx[e->id], 1 + (int)(xs(&rng) % 3), &rng, 0);
		}
		size_t live = hum_store_count(st);
		if (live > ws->max_live)
			ws->max_live = live;
		if (growing && ncold >= GROW_TO) {
			growing = 0;
		} else if (!growing && ncold <= SHRINK_TO) {
			growing = 1;
			ws->cycles++;
			if (live < ws->min_live_after_grow)
				ws->min_live_after_grow = live;
		}
		if ((ws->ops & 7) == 0) {
			record_world();
			hum_store_flush(st);
			ws->flushes++;
		} else if ((ws->ops & 31) == 5) {
			record_world();
			hum_store_publish_world(st);
		}
	}
	free(cold_idx);
	*coldp = cold;
	*ncoldp = ncold;
}

/* Readers ----------------------------------------------------------------------- */

struct rstats {
	uint64_t sections, snaps, worlds, world_count_checked, lookups, found, lines, tails, gaps;
	uint64_t torn, gen_back, world_bad, lookup_bad, line_bad, gap_bad;
};

struct reader {
	pthread_t th;
	int idx;
	struct rstats s;
	uint32_t *lgen, *wgen;       /* per id: last generation seen via lookup / world */
	uint64_t world_gen;
	uint64_t hot_seq[HOT];       /* last seq read per hot process */
	int64_t hot_idx[HOT];        /* its index, -1 if none yet */
	char *copy;
};

struct readctx {
	struct reader *rd;
	uint32_t id;
	int64_t first, last;
	uint64_t last_seq;
	size_t n;
	int bad;
};

static int read_fn(const hum_line *l, void *ud)
{
	struct readctx *c = ud;
	int64_t i = check_line(l, c->id, c->rd->copy);
	if (i < 0) {
		c->bad++;
		return 1;
	}
	if (c->n == 0)
		c->first = i;
	else if (i != c->last + 1 || l->seq <= c->last_seq)
		c->bad++;
	c->last = i;
	c->last_seq = l->seq;
	c->n++;
	return 0;
}

static void check_snap(struct reader *rd, const hum_snap *s, uint32_t *gens)
{
	rd->s.snaps++;
	if (!hum_snap_valid(s)) {
		rd->s.torn++;
		return;
	}
	if (s->id >= IDCAP)
		return;
	if (s->generation < gens[s->id])
		rd->s.gen_back++;
	else
		gens[s->id] = (uint32_t)s->generation;
}

static void check_world(struct reader *rd)
{
	const hum_world *w = hum_store_world(st);
	rd->s.worlds++;
	if (w->generation < rd->world_gen)
		rd->s.world_bad++;
	rd->world_gen = w->generation;
	uint64_t v = __atomic_load_n(&wslot[w->generation % NSLOT], __ATOMIC_ACQUIRE);
	if (w->generation > 0 && (v >> 20) == w->generation) {
		rd->s.world_count_checked++;
		if ((v & 0xfffff) != w->count)
			rd->s.world_bad++;
	}
	uint32_t prev = 0;
	for (uint32_t i = 0; i < w->count; i++) {
		const hum_snap *s = w->procs[i];
		if (s == NULL) {
			rd->s.world_bad++;
			return;
		}
		check_snap(rd, s, rd->wgen);
		if (s->id <= prev)
			rd->s.world_bad++;
		prev = s->id;
	}
}

static void check_lookup(struct reader *rd, const char *name, int must)
{
	hum_entry *e = hum_store_lookup(st, name);
	rd->s.lookups++;
	if (e == NULL) {
		if (must)
			rd->s.lookup_bad++;
		return;
	}
	rd->s.found++;
	const hum_snap *s = hum_entry_snap(e);
	check_snap(rd, s, rd->lgen);
	if (strcmp(e->name, name) != 0 || strcmp(s->name, name) != 0 || s->id != e->id)
		rd->s.lookup_bad++;
}

static void read_hot(struct reader *rd, int h)
{
	char name[16];
	snprintf(name, sizeof name, "hot%d", h);
	hum_entry *e = hum_store_lookup(st, name);
	if (e == NULL) {
		rd->s.lookup_bad++;
		return;
	}
	check_snap(rd, hum_entry_snap(e), rd->lgen);
	struct readctx c = { .rd = rd, .id = e->id };
	hum_logring_read(&e->log, rd->hot_seq[h] + 1, 512, read_fn, &c);
	/* Loaded after the read: a chunk the read did not find any more was
	 * counted before it was unpublished (see logring.c). */
	uint64_t dropped = __atomic_load_n(&e->log.dropped, __ATOMIC_RELAXED);
	rd->s.lines += c.n;
	if (c.bad) {
		rd->s.line_bad += (uint64_t)c.bad;
		return;
	}
	if (c.n == 0)
		return;
	if (c.first <= rd->hot_idx[h]) {
		rd->s.gap_bad++;
	} else if (c.first != rd->hot_idx[h] + 1) {
		/* lines hot_idx+1 .. first-1 missing: dropped from the oldest,
		 * so every line before `first` must be counted as dropped */
		rd->s.gaps++;
		if (dropped < (uint64_t)c.first)
			rd->s.gap_bad++;
	}
	rd->hot_idx[h] = c.last;
	rd->hot_seq[h] = c.last_seq;
}

static void tail_check(struct reader *rd, hum_entry *e, size_t n)
{
	struct readctx c = { .rd = rd, .id = e->id };
	size_t got = hum_logring_tail(&e->log, n, read_fn, &c);
	rd->s.tails++;
	rd->s.lines += c.n;
	if (c.bad)
		rd->s.line_bad += (uint64_t)c.bad;
	else if (got != c.n || got > n)
		rd->s.line_bad++;
}

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	hum_reader *r = hum_reader_new(st);
	uint64_t rng = 0x1234567ULL * (uint64_t)(rd->idx + 1);
	char name[32];
	for (int h = 0; h < HOT; h++)
		rd->hot_idx[h] = -1;
	while (!__atomic_load_n(&stop_flag, __ATOMIC_RELAXED)) {
		hum_read_begin(r);
		rd->s.sections++;
		uint64_t it = rd->s.sections;
		if (it % 4 == 0)
			check_world(rd);
		uint64_t kmax = __atomic_load_n(&kmax_pub, __ATOMIC_RELAXED);
		for (int k = 0; k < 16 && kmax > 0; k++) {
			uint64_t lo = kmax > 4000 ? kmax - 4000 : 0;
			snprintf(name, sizeof name, "c%llu", (unsigned long long)(lo + xs(&rng) % (kmax - lo)));
			check_lookup(rd, name, 0);
		}
		int h = (int)(xs(&rng) % HOT);
		read_hot(rd, h);
		if (it % 8 == 3) {
			snprintf(name, sizeof name, "hot%d", (int)(xs(&rng) % HOT));
			hum_entry *e = hum_store_lookup(st, name);
			if (e)
				tail_check(rd, e, 1 + xs(&rng) % 64);
		} else if (it % 8 == 5 && kmax > 0) {
			snprintf(name, sizeof name, "c%llu", (unsigned long long)(xs(&rng) % kmax));
			hum_entry *e = hum_store_lookup(st, name);
			if (e)
				tail_check(rd, e, 1 + xs(&rng) % 8);
		}
		hum_read_end(r);
	}
	hum_reader_free(r);
	return NULL;
}

int main(void)
{
	const char *env = getenv("HUM_STRESS_SECONDS");
	double seconds = env ? atof(env) : 2.0;
	if (seconds <= 0)
		seconds = 2.0;
	env = getenv("HUM_STRESS_READERS");
	int nreaders = env ? atoi(env) : 3;
	if (nreaders < 1 || nreaders > MAXREADERS)
		nreaders = 3;

	st = hum_store_new(LOG_BYTES);
	/* Worlds are published only where the writer records their count
	 * (record_world): no publish on age inside add/publish/remove, which a
	 * slow (sanitized) writer would hit between two recorded points.  The
	 * age rule has its own test in state_unit. */
	hum_store_set_world_max_age(st, -1);
	ok(st != NULL, "store");
	struct hot hot[HOT];
	char name[32];
	for (int h = 0; h < HOT; h++) {
		snprintf(name, sizeof name, "hot%d", h);
		hot[h].e = hum_store_add(st, hum_snap_new(NULL, name, "hot", NULL));
		hot[h].next_idx = 0;
	}
	record_world();
	hum_store_flush(st);

	struct reader rds[MAXREADERS];
	memset(rds, 0, sizeof rds);
	for (int i = 0; i < nreaders; i++) {
		rds[i].idx = i;
		rds[i].lgen = calloc(IDCAP, sizeof(uint32_t));
		rds[i].wgen = calloc(IDCAP, sizeof(uint32_t));
		rds[i].copy = malloc(HUM_LINE_MAX + 1);
		pthread_create(&rds[i].th, NULL, reader_main, &rds[i]);
	}

	struct wstats ws = { 0 };
	hum_entry **cold;
	size_t ncold;
	uint64_t kcount = 0;
	double t0 = now();
	writer_run(seconds, &ws, hot, &cold, &ncold, &kcount);
	double wt = now() - t0;
	__atomic_store_n(&stop_flag, 1, __ATOMIC_RELAXED);

	struct rstats tot = { 0 };
	for (int i = 0; i < nreaders; i++) {
		pthread_join(rds[i].th, NULL);
		struct rstats *s = &rds[i].s;
		tot.sections += s->sections; tot.snaps += s->snaps; tot.worlds += s->worlds;
		tot.world_count_checked += s->world_count_checked; tot.lookups += s->lookups;
		tot.found += s->found; tot.lines += s->lines; tot.tails += s->tails; tot.gaps += s->gaps;
		tot.torn += s->torn; tot.gen_back += s->gen_back; tot.world_bad += s->world_bad;
		tot.lookup_bad += s->lookup_bad; tot.line_bad += s->line_bad; tot.gap_bad += s->gap_bad;
		free(rds[i].lgen);
		free(rds[i].wgen);
		free(rds[i].copy);
	}

	printf("# %.2fs, %d readers; writer: %llu ops (%.0f/s), %llu adds, %llu removes, %llu publishes, "
	       "%llu lines (%llu of 64 KiB), %llu flushes, %llu grow/shrink cycles, peak %zu entries\n",
	       wt, nreaders, (unsigned long long)ws.ops, (double)ws.ops / wt, (unsigned long long)ws.adds,
	       (unsigned long long)ws.removes, (unsigned long long)ws.publishes, (unsigned long long)ws.lines,
	       (unsigned long long)ws.max_lines, (unsigned long long)ws.flushes, (unsigned long long)ws.cycles,
	       ws.max_live);
	printf("# readers: %llu sections, %llu snapshots, %llu worlds (%llu count-checked), %llu lookups "
	       "(%llu found), %llu lines copied, %llu tails, %llu gaps explained by drops\n",
	       (unsigned long long)tot.sections, (unsigned long long)tot.snaps, (unsigned long long)tot.worlds,
	       (unsigned long long)tot.world_count_checked, (unsigned long long)tot.lookups,
	       (unsigned long long)tot.found, (unsigned long long)tot.lines, (unsigned long long)tot.tails,
	       (unsigned long long)tot.gaps);

	ok(ws.seq_bad == 0, "writer: sequence numbers come in order (%llu bad)", (unsigned long long)ws.seq_bad);
	ok(ws.max_live >= GROW_TO && ws.cycles >= 1, "registry grew to %zu entries and shrank back %llu times",
	   ws.max_live, (unsigned long long)ws.cycles);
	ok(ws.max_lines > 0, "lines of exactly HUM_LINE_MAX written (%llu)", (unsigned long long)ws.max_lines);
	ok(tot.sections > 0 && tot.snaps > 0 && tot.lines > 0 && tot.worlds > 0, "readers did work");
	ok(tot.torn == 0, "zero torn snapshots (%llu of %llu)", (unsigned long long)tot.torn,
	   (unsigned long long)tot.snaps);
	ok(tot.gen_back == 0, "generation never goes backwards per process (%llu)", (unsigned long long)tot.gen_back);
	ok(tot.world_bad == 0 && tot.world_count_checked > 0,
	   "worlds consistent: count, sorted ids, valid snapshots (%llu bad)", (unsigned long long)tot.world_bad);
	ok(tot.lookup_bad == 0, "lookups consistent (%llu bad)", (unsigned long long)tot.lookup_bad);
	ok(tot.line_bad == 0, "log lines intact and contiguous (%llu bad of %llu)", (unsigned long long)tot.line_bad,
	   (unsigned long long)tot.lines);
	ok(tot.gap_bad == 0, "no gap unexplained by dropped (%llu bad, %llu explained)",
	   (unsigned long long)tot.gap_bad, (unsigned long long)tot.gaps);

	/* The final state as the writer knows it. */
	hum_store_flush(st);
	hum_reader *r = hum_reader_new(st);
	hum_read_begin(r);
	const hum_world *w = hum_store_world(st);
	int match = w->count == ncold + HOT && hum_store_count(st) == ncold + HOT;
	for (size_t i = 0; i < ncold && match; i++) {
		hum_entry *e = hum_store_lookup(st, cold[i]->name);
		match = e == cold[i] && hum_entry_snap(e) == e->snap;
	}
	hum_read_end(r);
	ok(match, "final world and registry match the writer (%zu entries)", ncold + HOT);
	hum_reader_free(r);
	free(cold);

	hum_store_flush(st);
	size_t pending = hum_store_pending_frees(st);
	ok(pending == 0, "zero pending frees after the readers left (%zu)", pending);
	hum_store_free(st);
	return done_testing();
}

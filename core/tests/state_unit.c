/*
 * state_unit.c — edge cases of the state core, single-threaded: snapshots,
 * registry, world, log rings, reclamation.  The concurrent behaviour is in
 * state_stress.c.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "state/logring.h"
#include "state/snap.h"
#include "state/store.h"
#include "tap.h"

struct collect {
	size_t n;
	uint64_t seq[4096];
	uint32_t len[4096];
	int ok;          /* content matched what was appended */
};

/* Lines appended by these tests hold "L<seq>" followed by 'x' padding. */
static int collect_fn(const hum_line *l, void *ud)
{
	struct collect *c = ud;
	char head[32];
	int hn = snprintf(head, sizeof head, "L%llu", (unsigned long long)l->seq);
	if (l->len < (uint32_t)hn || memcmp(l->data, head, (size_t)hn) != 0)
		c->ok = 0;
	for (uint32_t i = (uint32_t)hn; i < l->len; i++)
		if (l->data[i] != 'x') {
			c->ok = 0;
			break;
		}
	if (c->n < 4096) {
		c->seq[c->n] = l->seq;
		c->len[c->n] = l->len;
	}
	c->n++;
	return 0;
}

static char bigbuf[HUM_LINE_MAX + 16];

/* Appends a line "L<seq>xxxx" of total length len (>= 24). */
static uint64_t put_line(hum_store *st, hum_logring *r, size_t len)
{
	/* The seq is assigned inside append; the next one is predictable
	 * because this test is the only appender. */
	static uint64_t next = 1;
	int hn = snprintf(bigbuf, sizeof bigbuf, "L%llu", (unsigned long long)next);
	memset(bigbuf + hn, 'x', len > (size_t)hn ? len - (size_t)hn : 0);
	uint64_t s = hum_logring_append(r, HUM_STREAM_OUT, 0, 1234, bigbuf, len < (size_t)hn ? (size_t)hn : len);
	if (s)
		next = s + 1;
	return s;
}

static void test_snap(void)
{
	hum_snap t = { .state = HUM_RUNNING, .pid = 42, .exit_code = -1, .restarts = 3 };
	hum_snap *s = hum_snap_new(&t, "web", "backend,front", NULL);
	ok(s != NULL && strcmp(s->name, "web") == 0 && strcmp(s->groups, "backend,front") == 0 &&
	   strcmp(s->reason, "") == 0 && s->pid == 42 && s->exit_code == -1, "snap_new copies scalars and strings");
	s->checksum = hum_snap_checksum(s);
	ok(hum_snap_valid(s), "checksum validates");
	s->pid = 43;
	ok(!hum_snap_valid(s), "a changed field invalidates the checksum");
	s->pid = 42;
	hum_snap *c = hum_snap_clone(s, "restarting");
	ok(c && strcmp(c->reason, "restarting") == 0 && strcmp(c->name, "web") == 0 && c->restarts == 3,
	   "clone keeps fields, replaces reason");
	c->checksum = hum_snap_checksum(c);
	((char *)c->reason)[0] = 'R';
	ok(!hum_snap_valid(c), "a changed string invalidates the checksum");
	hum_snap_free(c);
	hum_snap_free(s);
	int all = 1;
	for (int i = 0; i < HUM_STATE_COUNT; i++)
		all &= hum_state_from_name(hum_state_name((hum_state)i)) == i;
	ok(all && hum_state_from_name("nope") == -1 && strcmp(hum_state_name(HUM_BACKOFF), "backoff") == 0,
	   "state names round-trip");
}

static void test_registry(void)
{
	hum_store *st = hum_store_new(0);
	/* what follows checks what flushes publish (test_world_max_age: the rest) */
	hum_store_set_world_max_age(st, -1);
	hum_reader *rd = hum_reader_new(st);
	ok(st && rd, "store and reader");
	hum_read_begin(rd);
	const hum_world *w0 = hum_store_world(st);
	ok(w0 != NULL && w0->count == 0 && w0->generation == 0, "initial world is empty, never NULL");
	hum_read_end(rd);

	hum_entry *a = hum_store_add(st, hum_snap_new(NULL, "a", NULL, "not started"));
	hum_entry *b = hum_store_add(st, hum_snap_new(NULL, "b", NULL, NULL));
	ok(a && b && a->id < b->id && a->snap->generation == 1 && hum_snap_valid(a->snap), "add assigns ids, generation 1, checksum");
	hum_snap *dup = hum_snap_new(NULL, "a", NULL, NULL);
	errno = 0;
	ok(hum_store_add(st, dup) == NULL && errno == EEXIST, "duplicate name -> EEXIST");
	hum_snap_free(dup); /* not consumed on failure */

	hum_read_begin(rd);
	ok(hum_store_lookup(st, "a") == a && hum_store_lookup(st, "b") == b && hum_store_lookup(st, "c") == NULL,
	   "lookup by name");
	ok(hum_store_world(st)->count == 0, "world is published lazily");
	hum_read_end(rd);

	hum_snap *n = hum_snap_clone(a->snap, "running");
	n->state = HUM_RUNNING;
	hum_store_publish(st, a, n);
	hum_store_flush(st);
	hum_read_begin(rd);
	const hum_snap *s = hum_entry_snap(a);
	const hum_world *w = hum_store_world(st);
	ok(s == n && s->generation == 2 && hum_snap_valid(s) && s->state == HUM_RUNNING, "publish bumps generation");
	ok(w->count == 2 && w->procs[0] == s && w->procs[1]->id == b->id && w->generation == 1, "world after flush");
	hum_read_end(rd);
	hum_store_flush(st);
	hum_read_begin(rd);
	ok(hum_store_world(st) == w, "flush without changes publishes nothing");
	hum_read_end(rd);

	/* A reader inside a section keeps what it loaded alive. */
	hum_read_begin(rd);
	hum_entry *ea = hum_store_lookup(st, "a");
	const hum_snap *held = hum_entry_snap(ea);
	hum_store_remove(st, a);
	for (int i = 0; i < 5; i++)
		hum_store_flush(st);
	ok(hum_store_pending_frees(st) > 0, "nothing held by an open section is freed (%zu pending)",
	   hum_store_pending_frees(st));
	ok(hum_snap_valid(held) && strcmp(held->name, "a") == 0 && strcmp(ea->name, "a") == 0,
	   "removed entry and snapshot still readable in the section");
	hum_read_end(rd);
	hum_read_begin(rd);
	ok(hum_store_lookup(st, "a") == NULL, "lookup of removed name -> NULL");
	ok(hum_store_world(st)->count == 1, "removed from the world");
	hum_read_end(rd);
	hum_store_flush(st);
	ok(hum_store_pending_frees(st) == 0, "freed once the section ended");

	/* Grow through several ck_hs resizes, then shrink back. */
	char name[32];
	int added = 1;
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "p%d", i);
		added &= hum_store_add(st, hum_snap_new(NULL, name, NULL, NULL)) != NULL;
	}
	hum_store_flush(st);
	hum_read_begin(rd);
	int found = 1;
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "p%d", i);
		hum_entry *e = hum_store_lookup(st, name);
		found &= e != NULL && strcmp(e->name, name) == 0 && strcmp(hum_entry_snap(e)->name, name) == 0;
	}
	const hum_world *big = hum_store_world(st);
	int sorted = big->count == 5001;
	for (uint32_t i = 1; i < big->count; i++)
		sorted &= big->procs[i - 1]->id < big->procs[i]->id;
	hum_read_end(rd);
	ok(added && found, "5000 entries added and found");
	ok(sorted, "world of 5001 sorted by id");
	for (int i = 0; i < 4990; i++) {
		snprintf(name, sizeof name, "p%d", i);
		hum_read_begin(rd);
		hum_entry *e = hum_store_lookup(st, name);
		hum_read_end(rd);
		if (e)
			hum_store_remove(st, e);
	}
	hum_store_flush(st);
	hum_read_begin(rd);
	int gone = 1, kept = 1;
	for (int i = 0; i < 5000; i++) {
		snprintf(name, sizeof name, "p%d", i);
		hum_entry *e = hum_store_lookup(st, name);
		if (i < 4990)
			gone &= e == NULL;
		else
			kept &= e != NULL;
	}
	kept &= hum_store_lookup(st, "b") == b;
	hum_read_end(rd);
	ok(gone && kept && hum_store_count(st) == 11, "shrunk back: removed names gone, the rest found");
	hum_store_flush(st);
	ok(hum_store_pending_frees(st) == 0, "no pending frees after flush without readers");

	/* Reader records are recycled. */
	hum_reader_free(rd);
	hum_reader *rd2 = hum_reader_new(st);
	ok(rd2 == rd, "reader record recycled");
	hum_reader *rd3 = hum_reader_new(st);
	ok(rd3 != NULL && rd3 != rd2, "second reader gets a new record");
	hum_reader_free(rd3);
	hum_store_free(st); /* frees rd2's and rd3's records too */
}

static void test_logring(void)
{
	hum_store *st = hum_store_new(64 * 1024);
	hum_entry *e = hum_store_add(st, hum_snap_new(NULL, "log", NULL, NULL));
	hum_logring *r = &e->log;
	struct collect c = { .ok = 1 };

	ok(hum_logring_read(r, 0, 0, collect_fn, &c) == 0 && hum_logring_tail(r, 10, collect_fn, &c) == 0 &&
	   hum_logring_first_seq(r) == 0 && hum_logring_last_seq(r) == 0 && c.n == 0, "empty ring");

	uint64_t s1 = put_line(st, r, 30);
	ok(s1 == 1, "first seq is 1");
	ok(hum_logring_read(r, 0, 0, collect_fn, &c) == 0, "appended line invisible before commit");
	hum_logring_commit(r);
	ok(hum_logring_read(r, 0, 0, collect_fn, &c) == 1 && c.ok && c.seq[0] == s1 && c.len[0] == 30,
	   "visible after commit");
	ok(r->lines == 1 && r->bytes == 30 && r->dropped == 0, "counters");

	/* A second ring shares the global sequence. */
	hum_entry *e2 = hum_store_add(st, hum_snap_new(NULL, "other", NULL, NULL));
	uint64_t s2 = put_line(st, &e2->log, 40);
	hum_logring_commit(&e2->log);
	uint64_t s3 = put_line(st, r, 50);
	hum_logring_commit(r);
	ok(s2 == s1 + 1 && s3 == s2 + 1, "global sequence across rings");

	errno = 0;
	ok(hum_logring_append(r, HUM_STREAM_OUT, 0, 0, bigbuf, HUM_LINE_MAX + 1) == 0 && errno == EINVAL,
	   "line over HUM_LINE_MAX refused");
	uint64_t smax = put_line(st, r, HUM_LINE_MAX);
	hum_logring_commit(r);
	memset(&c, 0, sizeof c);
	c.ok = 1;
	ok(smax != 0 && hum_logring_read(r, smax, 0, collect_fn, &c) == 1 && c.ok && c.len[0] == HUM_LINE_MAX,
	   "line of exactly 64 KiB stored intact");

	/* Overflow: budget 64 KiB, write ~1 MiB. */
	uint64_t last = 0;
	for (int i = 0; i < 8000; i++)
		last = put_line(st, r, 100 + (size_t)(i % 50));
	hum_logring_commit(r);
	uint64_t lines = r->lines, dropped = r->dropped;
	memset(&c, 0, sizeof c);
	c.ok = 1;
	size_t vis = hum_logring_read(r, 0, 0, collect_fn, &c);
	ok(dropped > 0 && lines == 8003 && vis == lines - dropped && c.ok,
	   "overflow drops whole chunks and counts them (lines %llu dropped %llu visible %zu)",
	   (unsigned long long)lines, (unsigned long long)dropped, vis);
	ok(hum_logring_last_seq(r) == last && hum_logring_first_seq(r) == c.seq[0] && c.seq[0] > smax,
	   "first/last seq after overflow");
	int incr = 1;
	for (size_t i = 1; i < c.n && i < 4096; i++)
		incr &= c.seq[i] == c.seq[i - 1] + 1;
	ok(incr, "retained lines are contiguous");

	memset(&c, 0, sizeof c);
	c.ok = 1;
	ok(hum_logring_tail(r, 5, collect_fn, &c) == 5 && c.seq[0] == last - 4 && c.seq[4] == last && c.ok,
	   "tail of 5 lines, oldest first");
	memset(&c, 0, sizeof c);
	c.ok = 1;
	ok(hum_logring_tail_upto(r, last - 3, 5, collect_fn, &c) == 5 && c.seq[0] == last - 7 &&
	   c.seq[4] == last - 3 && c.ok,
	   "tail of 5 lines up to a horizon ignores lines committed after it");
	memset(&c, 0, sizeof c);
	ok(hum_logring_tail(r, 0, collect_fn, &c) == 0 && c.n == 0, "tail of 0 lines");
	memset(&c, 0, sizeof c);
	c.ok = 1;
	ok(hum_logring_tail(r, 100000, collect_fn, &c) == vis, "tail larger than the ring returns all");
	memset(&c, 0, sizeof c);
	c.ok = 1;
	ok(hum_logring_read(r, last - 9, 3, collect_fn, &c) == 3 && c.seq[0] == last - 9 && c.seq[2] == last - 7,
	   "read from a seq with a max");
	memset(&c, 0, sizeof c);
	ok(hum_logring_read(r, last + 1, 0, collect_fn, &c) == 0, "read past the end");

	/* Uncommitted lines spanning chunk switches stay invisible (150 lines
	 * of 232 bytes with records, 70 to a 16 KiB chunk: whatever room the
	 * current chunk has left, at least two new chunks and at most three
	 * chunks of pending lines, inside the 4-chunk budget). */
	uint32_t nchunk = r->nchunk;
	for (int i = 0; i < 150; i++)
		put_line(st, r, 200);
	memset(&c, 0, sizeof c);
	c.ok = 1;
	ok(hum_logring_read(r, last + 1, 0, collect_fn, &c) == 0 && hum_logring_last_seq(r) == last &&
	   r->nchunk >= nchunk + 2, "pending lines over several chunks invisible (%u new chunks)", r->nchunk - nchunk);
	hum_logring_commit(r);
	memset(&c, 0, sizeof c);
	c.ok = 1;
	ok(hum_logring_read(r, last + 1, 0, collect_fn, &c) == 150 && c.ok, "all visible after one commit");

	/* Logging never republishes: snapshots change with state only, and the
	 * counters a reader wants are read from the ring the snapshot names. */
	hum_store_flush(st); /* the world of the two adds */
	uint64_t g = e->snap->generation, g2 = e2->snap->generation;
	uint64_t wg = hum_store_world(st)->generation;
	put_line(st, r, 30);
	put_line(st, &e2->log, 30);
	hum_logring_commit(r);
	hum_logring_commit(&e2->log);
	hum_store_flush(st);
	const hum_snap *s = e->snap;
	hum_logcounts k = hum_logring_counts(s->log);
	ok(s->generation == g && e2->snap->generation == g2 && hum_store_world(st)->generation == wg &&
	   s->log == r && k.lines == r->lines && k.bytes == r->bytes && k.dropped == r->dropped &&
	   k.last_seq == hum_logring_last_seq(r) && k.first_seq == hum_logring_first_seq(r),
	   "log lines publish no snapshot and no world; counters come from the ring");
	hum_store_publish(st, e, hum_snap_clone(e->snap, "changed"));
	ok(e->snap->generation == g + 1 && e->snap->log == r && hum_snap_valid(e->snap),
	   "a state change publishes a snapshot that names the same ring");
	hum_store_flush(st);
	ok(hum_store_world(st)->generation == wg + 1, "and one world");

	/* Removal right after lines were committed. */
	put_line(st, &e2->log, 30);
	hum_logring_commit(&e2->log);
	hum_store_remove(st, e2);
	hum_store_flush(st);
	ok(hum_store_pending_frees(st) == 0 && hum_store_count(st) == 1, "removed entry with a changed ring reclaimed");

	/* A standalone ring (not in an entry) also works with the store. */
	hum_logring solo;
	hum_logring_init(&solo, hum_store_logbase(st), 0);
	ok(solo.max_bytes == HUM_LOG_DEFAULT_BYTES, "0 -> default retention");
	put_line(st, &solo, 40);
	hum_logring_commit(&solo);
	memset(&c, 0, sizeof c);
	c.ok = 1;
	ok(hum_logring_tail(&solo, 1, collect_fn, &c) == 1 && c.ok, "standalone ring");
	hum_logring_destroy(&solo);
	hum_store_free(st);
}

static void sleep_ms(long ms)
{
	struct timespec ts = { 0, ms * 1000000 };
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* One long loop iteration must not leave readers with an old world: a change
 * made while the world has been dirty for HUM_WORLD_MAX_AGE_NS publishes it,
 * and hum_store_flush_due flushes once that long has passed since the last
 * flush (publishing, and reclaiming what the early publishes replaced). */
static void test_world_max_age(void)
{
	const long wait_ms = HUM_WORLD_MAX_AGE_NS / 1000000 + 2;
	hum_store *st = hum_store_new(0);
	hum_entry *a = hum_store_add(st, hum_snap_new(NULL, "a", NULL, NULL));
	hum_store_flush(st);
	uint64_t g0 = hum_store_world(st)->generation;
	hum_store_publish(st, a, hum_snap_clone(a->snap, "one"));
	ok(hum_store_world(st)->generation == g0, "the change that makes the world dirty does not publish it");
	hum_store_set_world_max_age(st, 10LL * 1000000000); /* "right after", even on a loaded machine */
	hum_store_flush_due(st);
	ok(hum_store_world(st)->generation == g0, "nor does flush_due right after a flush");
	hum_store_set_world_max_age(st, HUM_WORLD_MAX_AGE_NS);
	sleep_ms(wait_ms);
	hum_store_flush_due(st);
	ok(hum_store_world(st)->generation == g0 + 1 && hum_store_world(st)->procs[0] == a->snap &&
	   hum_store_pending_frees(st) == 0,
	   "flush_due publishes and reclaims once the maximum age has passed");
	hum_store_publish(st, a, hum_snap_clone(a->snap, "two"));
	sleep_ms(wait_ms);
	hum_store_publish(st, a, hum_snap_clone(a->snap, "three"));
	ok(hum_store_world(st)->generation == g0 + 2 &&
	   strcmp(hum_store_world(st)->procs[0]->reason, "three") == 0 && hum_store_pending_frees(st) > 0,
	   "a change to a world dirty for longer publishes it, with that change, and reclaims nothing");
	sleep_ms(wait_ms);
	hum_store_flush_due(st);
	ok(hum_store_world(st)->generation == g0 + 2 && hum_store_pending_frees(st) == 0,
	   "flush_due then reclaims what it replaced, without a new world");
	hum_store_flush_due(st);
	ok(hum_store_world(st)->generation == g0 + 2, "and with nothing new, does nothing");
	hum_store_set_world_max_age(st, -1);
	hum_store_publish(st, a, hum_snap_clone(a->snap, "four"));
	sleep_ms(wait_ms);
	hum_store_publish(st, a, hum_snap_clone(a->snap, "five"));
	hum_store_flush_due(st);
	ok(hum_store_world(st)->generation == g0 + 2, "without a maximum age only flushes publish");
	hum_store_flush(st);
	ok(hum_store_world(st)->generation == g0 + 3 && hum_store_pending_frees(st) == 0,
	   "the flush publishes and reclaims what the early publishes retired");
	hum_store_free(st);
}

int main(void)
{
	test_snap();
	test_registry();
	test_world_max_age();
	test_logring();
	return done_testing();
}

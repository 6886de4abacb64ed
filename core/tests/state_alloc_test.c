/*
 * state_alloc_test.c — the state core under allocation failure.
 *
 * 1. The reclamation rule when the world cannot be allocated: a snapshot
 *    replaced by a publish stays reachable through the current world until
 *    the next world publish, so nothing may be reclaimed while the world is
 *    dirty.  A failed world allocation must leave every snapshot a reader
 *    can reach readable.
 * 2. Exhaustively: one scenario (store, entries, log lines, publishes,
 *    flushes, a reader, a removal) run once per allocation it makes, with
 *    that allocation failing.  Every call must report the failure (NULL,
 *    0 or -ENOMEM) and leave the store consistent: every snapshot reachable
 *    through the world or a lookup passes its checksum, every log line reads
 *    back intact.  Leaks are caught by ASan in `make check-asan`.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "failalloc.h"
#include "state/logring.h"
#include "state/snap.h"
#include "state/store.h"
#include "tap.h"

struct check {
	int bad;
	unsigned lines;
};

static int line_ok(const hum_line *l, void *ud)
{
	struct check *c = ud;
	char want[64];
	int n = snprintf(want, sizeof want, "line %llu", (unsigned long long)l->seq);
	if (l->len != (uint32_t)n || memcmp(l->data, want, (size_t)n) != 0)
		c->bad++;
	c->lines++;
	return 0;
}

/* Everything a reader can reach is intact. */
static int consistent(hum_store *st, hum_reader *r, const char *const *names, int n)
{
	struct check c = { 0, 0 };
	hum_read_begin(r);
	const hum_world *w = hum_store_world(st);
	for (uint32_t i = 0; i < w->count; i++) {
		if (!hum_snap_valid(w->procs[i]))
			c.bad++;
		else if (w->procs[i]->log)
			hum_logring_read(w->procs[i]->log, 0, 0, line_ok, &c);
	}
	for (int i = 0; i < n; i++) {
		hum_entry *e = hum_store_lookup(st, names[i]);
		if (e && !hum_snap_valid(hum_entry_snap(e)))
			c.bad++;
	}
	hum_read_end(r);
	return c.bad == 0;
}

static void append(hum_entry *e, int k)
{
	char buf[64];
	for (int i = 0; i < k; i++) {
		/* The seq is known only after the append: write the expected
		 * text for the next seq (this test is the only appender). */
		uint64_t next = e->log.base->seq + 1;
		int n = snprintf(buf, sizeof buf, "line %llu", (unsigned long long)next);
		if (hum_logring_append(&e->log, HUM_STREAM_OUT, 0, 1, buf, (size_t)n) == 0 && errno != ENOMEM)
			return;
	}
	hum_logring_commit(&e->log);
}

static void test_world_alloc_fails(void)
{
	hum_store *st = hum_store_new(0);
	hum_reader *r = hum_reader_new(st);
	hum_entry *e = hum_store_add(st, hum_snap_new(NULL, "web", NULL, NULL));
	hum_store_flush(st);
	const char *names[] = { "web" };
	/* A state change retires the old snapshot, which the current world
	 * still points to; the world of the next flush cannot be allocated. */
	hum_store_publish(st, e, hum_snap_clone(e->snap, "changed"));
	failalloc_after(1);
	hum_store_flush(st);
	failalloc_after(0);
	ok(hum_store_pending_frees(st) > 0, "nothing reclaimed while the world is dirty");
	ok(consistent(st, r, names, 1), "every snapshot the old world reaches is still readable");
	hum_store_flush(st);
	ok(hum_store_world(st)->procs[0] == e->snap && hum_store_pending_frees(st) == 0,
	   "the next flush publishes the world, then reclaims");
	ok(consistent(st, r, names, 1), "and readers see the new snapshot");
	hum_reader_free(r);
	hum_store_free(st);
}

/* The scenario; returns 0 if something a reader can reach was broken. */
static int scenario(void)
{
	static const char *const names[] = { "db", "api", "web" };
	hum_store *st = hum_store_new(16 * 1024);
	if (st == NULL)
		return errno == ENOMEM;
	int good = 1;
	hum_reader *r = hum_reader_new(st);
	hum_entry *e[3] = { 0 };
	for (int i = 0; i < 3; i++) {
		hum_snap *s = hum_snap_new(NULL, names[i], "g", NULL);
		e[i] = hum_store_add(st, s);
		if (e[i] == NULL) {
			good &= errno == ENOMEM || errno == EINVAL;
			hum_snap_free(s);
		}
	}
	hum_store_flush(st);
	for (int round = 0; round < 3; round++) {
		for (int i = 0; i < 3; i++) {
			if (!e[i])
				continue;
			append(e[i], 200); /* enough to drop chunks of a 16 KiB ring */
			hum_snap *n = hum_snap_clone(e[i]->snap, round & 1 ? "odd" : "even");
			if (n)
				hum_store_publish(st, e[i], n);
		}
		hum_store_flush(st);
		if (r)
			good &= consistent(st, r, names, 3);
	}
	if (e[1]) {
		hum_store_remove(st, e[1]);
		hum_store_flush(st);
		if (r)
			good &= consistent(st, r, names, 3);
	}
	hum_store_flush(st);
	hum_reader_free(r);
	hum_store_free(st);
	return good;
}

static void test_every_allocation_fails(void)
{
	unsigned long c0 = failalloc_count();
	ok(scenario(), "the scenario without failures");
	unsigned long total = failalloc_count() - c0;
	int bad = 0;
	unsigned long first_bad = 0;
	for (unsigned long n = 1; n <= total; n++) {
		failalloc_after(n);
		if (!scenario() && !bad++)
			first_bad = n;
		failalloc_after(0);
	}
	ok(total > 20 && bad == 0, "each of %lu allocations failing in turn: %d broken (first: %lu)",
	   total, bad, first_bad);
}

int main(void)
{
	test_world_alloc_fails();
	test_every_allocation_fails();
	return done_testing();
}

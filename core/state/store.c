/*
 * store.c — the shared state: registry (ck_hs), world snapshot, epoch
 * reclamation, reader records.
 *
 * Owns: hum_store, every hum_entry, the current snapshot of each entry, the
 * world snapshots, the registry maps, and the epoch through which all of
 * them (and the log rings' chunks) are reclaimed.
 *
 * Threads.  One writer (the loop thread) calls every function of the writer
 * API; it is the only thread that allocates, publishes, retires or frees.
 * Readers only load published pointers inside ck_epoch sections.
 *
 * Reclamation invariant.  An object is retired (ck_epoch_call on the
 * writer's record) when the writer makes it unreachable to readers that
 * start later, and freed only from hum_store_flush (ck_epoch_poll) or
 * hum_store_free.  One subtlety: a replaced process snapshot stays reachable
 * through the current world until the next world publish.  That is safe
 * because the global epoch only moves inside ck_epoch_poll, and reclaim()
 * refuses to poll while the world is dirty: everything retired since the
 * last poll becomes unreachable (the world is republished) before the epoch
 * can move, so it is as if it had been retired at the world publish.  When
 * the world cannot be allocated, nothing is reclaimed until it can be, so
 * the rule holds by construction, not by call order.
 *
 * Registry.  ck_hs in SPMC mode stores pointers to entry names (the key is
 * the object, so lookups by plain string need no fake entry and no
 * allocation); the entry is recovered with offsetof.  ck_hs allocates its
 * maps through hs_alloc: a map it frees with defer=true (grown away from) is
 * retired through the epoch.  Shrinking, which ck_hs cannot do in place,
 * builds a fresh ck_hs in a new box that is published by pointer; the old box
 * and its map are retired together.
 *
 * ThreadSanitizer.  libck is not instrumented, so the edges it creates are
 * declared: an entry is released before ck_hs_put and acquired after
 * ck_hs_get (and in the compare callback, which reads the name inside
 * ck_hs_get); every read section ends with a release on one sync address,
 * acquired by the writer after ck_epoch_poll has decided what is safe and
 * before it runs the deferred frees.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <ck_hs.h>
#include <ck_stack.h>

#include "atomic.h"
#include "store.h"

#define REG_MODE (CK_HS_MODE_SPMC | CK_HS_MODE_OBJECT)
#define REG_MIN_CAP 64

struct hsbox {
	ck_epoch_entry_t epoch_entry; /* first member */
	ck_hs_t hs;
};

struct hum_reader {
	ck_epoch_record_t rec; /* first member: a recycled record is the reader */
	hum_store *st;
};

struct hum_store {
	ck_epoch_record_t wrec; /* the writer's record: every ck_epoch_call */
	ck_epoch_t epoch;
	struct hsbox *reg;      /* published registry: release / acquire */
	hum_world *world;       /* published world: release / acquire */
	unsigned long seed;     /* hash seed; constant after hum_store_new */
	size_t log_bytes;
	/* writer only from here */
	hum_logbase logbase;    /* what the rings share: seq, chunk pool, epoch record */
	hum_entry *sys;         /* hum's own log (HUM_SYS_NAME); constant */
	uint64_t world_gen;
	uint32_t next_id;
	bool world_dirty;
	int64_t dirty_since_ns; /* CLOCK_MONOTONIC when the world became dirty */
	int64_t last_flush_ns;  /* ... of the last hum_store_flush */
	int64_t world_max_age_ns; /* hum_store_set_world_max_age */
	hum_entry **live;       /* sorted by id (ids only grow, so append) */
	size_t nlive, live_cap;
	size_t reg_cap;         /* capacity of the current ck_hs map (tracked) */
	size_t reg_removed;     /* removals since that map was built */
	uint64_t retired, reclaimed;
};

char hum_tsan_fd_reuse; /* atomic.h: fd numbers reused across threads */

/* TSan sync address for the epoch edge (see the top); one for all stores is
 * enough and lets callbacks need no store pointer. */
static char tsan_epoch_sync __attribute__((unused));

/* Hashing -------------------------------------------------------------------- */

/* FNV-1a over the bytes, seeded, then a murmur3 finaliser so the low bits
 * ck_hs indexes with depend on every byte. */
static unsigned long name_hash(const char *s, unsigned long seed)
{
	uint64_t h = 0xcbf29ce484222325ULL ^ (uint64_t)seed;
	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		h ^= *p;
		h *= 0x100000001b3ULL;
	}
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return (unsigned long)h;
}

static inline hum_entry *entry_of(const void *name)
{
	return (hum_entry *)((char *)(uintptr_t)name - offsetof(hum_entry, name));
}

static unsigned long hs_hash(const void *obj, unsigned long seed)
{
	return name_hash(obj, seed);
}

static bool hs_compare(const void *stored, const void *key)
{
	/* Runs inside ck_hs_get on reader threads: the entry's name was
	 * published by ck_hs_put, which TSan cannot see. */
	HUM_TSAN_ACQUIRE(entry_of(stored));
	return strcmp(stored, key) == 0;
}

/* ck_hs allocator --------------------------------------------------------------
 * ck_malloc has no context argument, so the store whose registry is being
 * changed is passed in a thread-local set around every mutating ck_hs call
 * (always on the writer thread).  Each block carries an epoch entry in
 * front, 16 bytes, which keeps malloc's alignment. */

struct hsmem {
	ck_epoch_entry_t epoch_entry;
};

static __thread hum_store *hs_writer;

static void *hs_malloc(size_t n)
{
	/* calloc: ck_hs leaves some map fields (tombstones) unset. */
	struct hsmem *m = calloc(1, sizeof *m + n);
	return m ? m + 1 : NULL;
}

static void hsmem_free_cb(ck_epoch_entry_t *e)
{
	free(e);
}

static void hs_free(void *p, size_t n, bool defer)
{
	(void)n;
	if (p == NULL)
		return;
	struct hsmem *m = (struct hsmem *)p - 1;
	if (!defer) {
		free(m); /* never published, or its grace period is over */
		return;
	}
	if (hs_writer == NULL) {
		/* A deferred free outside a wrapped call would be a bug here;
		 * leaking is safe, freeing is not. */
		fprintf(stderr, "hum: store: deferred ck_hs free without a writer\n");
		return;
	}
	hum_store_retire(hs_writer, &m->epoch_entry, hsmem_free_cb);
}

static void *hs_realloc(void *p, size_t old, size_t n, bool defer)
{
	void *q = hs_malloc(n);
	if (q == NULL)
		return NULL;
	if (p != NULL)
		memcpy(q, p, old < n ? old : n);
	hs_free(p, old, defer);
	return q;
}

static struct ck_malloc hs_alloc = {
	.malloc = hs_malloc, .realloc = hs_realloc, .free = hs_free,
};

static void hsbox_free_cb(ck_epoch_entry_t *e)
{
	struct hsbox *b = (struct hsbox *)e;
	ck_hs_destroy(&b->hs); /* hs_free(defer=false): the grace period is over */
	free(b);
}

static size_t pow2_at_least(size_t n)
{
	size_t c = 8;
	while (c < n)
		c <<= 1;
	return c;
}

/* Builds a new registry holding every live entry and publishes it. */
static int reg_rebuild(hum_store *st, size_t cap)
{
	struct hsbox *b = malloc(sizeof *b);
	if (b == NULL)
		return -ENOMEM;
	memset(&b->epoch_entry, 0, sizeof b->epoch_entry);
	hs_writer = st;
	bool ok = ck_hs_init(&b->hs, REG_MODE, hs_hash, hs_compare, &hs_alloc, cap, st->seed);
	for (size_t i = 0; ok && i < st->nlive; i++) {
		hum_entry *e = st->live[i];
		ok = ck_hs_put(&b->hs, e->hash, e->name);
	}
	hs_writer = NULL;
	if (!ok) {
		if (b->hs.map != NULL)
			ck_hs_destroy(&b->hs);
		free(b);
		return -ENOMEM;
	}
	struct hsbox *old = st->reg;
	/* Release: the new map is complete before a reader can load the box. */
	hum_store_ptr_rel(&st->reg, b);
	if (old != NULL)
		hum_store_retire(st, &old->epoch_entry, hsbox_free_cb);
	st->reg_cap = pow2_at_least(cap);
	while (st->nlive * 2 > st->reg_cap)
		st->reg_cap <<= 1;
	st->reg_removed = 0;
	return 0;
}

/* After removals: shrink a map that is mostly empty, or rebuild one that
 * has collected many tombstones (ck_hs never shrinks or purges by itself). */
static void reg_maybe_rebuild(hum_store *st)
{
	if (st->reg_cap > REG_MIN_CAP && st->nlive * 8 < st->reg_cap)
		(void)reg_rebuild(st, pow2_at_least(st->nlive * 2 > REG_MIN_CAP ? st->nlive * 2 : REG_MIN_CAP));
	else if (st->reg_removed > st->reg_cap)
		(void)reg_rebuild(st, st->reg_cap);
	/* On ENOMEM the old map stays: still correct, just larger. */
}

/* Reclamation ------------------------------------------------------------------ */

void hum_store_retire(hum_store *st, ck_epoch_entry_t *entry, ck_epoch_cb_t *cb)
{
	st->retired++;
	ck_epoch_call(&st->wrec, entry, cb);
}

static void run_deferred(hum_store *st, ck_stack_t *deferred)
{
	ck_stack_entry_t *s;
	while ((s = ck_stack_pop_npsc(deferred)) != NULL) {
		ck_epoch_entry_t *e =
			(ck_epoch_entry_t *)((char *)s - offsetof(ck_epoch_entry_t, stack_entry));
		e->function(e);
		st->reclaimed++;
	}
}

static void reclaim(hum_store *st)
{
	if (st->world_dirty)
		return; /* a retired snapshot may still be in the world (see the top) */
	ck_stack_t deferred = CK_STACK_INITIALIZER;
	/* Non-blocking: decides which retired objects no section can hold and
	 * hands them back instead of calling their callbacks ... */
	ck_epoch_poll_deferred(&st->wrec, &deferred);
	/* The frees below come after the reads of the reader records that
	 * decided they are safe: libck orders them by a branch only, which
	 * ARMv8 honours; say it explicitly. */
	hum_fence_acq();
	/* ... so that this acquire comes after the decision: every section that
	 * the poll saw as finished has released by now (TSan edge only). */
	HUM_TSAN_ACQUIRE(&tsan_epoch_sync);
	run_deferred(st, &deferred);
}

static int64_t mono_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* Every change readers see through the world comes here.  The world is
 * normally published once per loop iteration (hum_store_flush), but one
 * iteration can be long (a burst of a thousand spawns, a long reaction):
 * a change made while the world has waited world_max_age_ns publishes it at
 * once, so no reader sees a world older than that much of the writer's work.
 * Cheap: one clock read when the world becomes dirty, and one per change
 * while it stays dirty.  Nothing is reclaimed here: the caller may still use
 * what it just replaced (a state hook gets the old snapshot), so the worlds
 * replaced meanwhile wait for a flush (hum_store_flush_due bounds them). */
static void mark_dirty(hum_store *st)
{
	if (!st->world_dirty) {
		st->world_dirty = true;
		st->dirty_since_ns = mono_ns();
		return;
	}
	if (mono_ns() - st->dirty_since_ns >= st->world_max_age_ns)
		hum_store_publish_world(st);
}

void hum_store_flush_due(hum_store *st)
{
	if (!st->world_dirty && hum_store_pending_frees(st) == 0)
		return; /* nothing to publish or reclaim: no clock read */
	if (mono_ns() - st->last_flush_ns >= st->world_max_age_ns)
		hum_store_flush(st);
}

void hum_store_set_world_max_age(hum_store *st, int64_t ns)
{
	st->world_max_age_ns = ns < 0 ? INT64_MAX : ns;
}

static void snap_free_cb(ck_epoch_entry_t *e)
{
	free(e); /* epoch_entry is the first member of hum_snap */
}

static void world_free_cb(ck_epoch_entry_t *e)
{
	free(e);
}

static void entry_free_cb(ck_epoch_entry_t *e)
{
	free(e); /* its ring's chunks and its snapshot were retired separately */
}

hum_entry *hum_store_sys(hum_store *st)
{
	return st->sys;
}

hum_logbase *hum_store_logbase(hum_store *st)
{
	return &st->logbase;
}

/* Store ----------------------------------------------------------------------- */

hum_store *hum_store_new(size_t log_bytes_per_process)
{
	size_t sz = (sizeof(hum_store) + 63) & ~(size_t)63;
	hum_store *st = aligned_alloc(64, sz); /* ck_epoch_record is cache-line aligned */
	if (st == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	memset(st, 0, sizeof *st);
	st->world_max_age_ns = HUM_WORLD_MAX_AGE_NS;
	st->log_bytes = log_bytes_per_process ? log_bytes_per_process : HUM_LOG_DEFAULT_BYTES;
	if (getrandom(&st->seed, sizeof st->seed, GRND_NONBLOCK) != sizeof st->seed)
		st->seed = (unsigned long)(uintptr_t)st ^ (unsigned long)time(NULL) * 0x9e3779b97f4a7c15ULL;
	ck_epoch_init(&st->epoch);
	ck_epoch_register(&st->epoch, &st->wrec, NULL);
	hum_logbase_init(&st->logbase, &st->wrec);
	st->world = calloc(1, sizeof(hum_world)); /* empty, generation 0: never NULL */
	st->sys = calloc(1, sizeof *st->sys + sizeof HUM_SYS_NAME);
	if (st->world == NULL || st->sys == NULL || reg_rebuild(st, REG_MIN_CAP) < 0) {
		free(st->world);
		free(st->sys);
		free(st);
		errno = ENOMEM;
		return NULL;
	}
	/* Like a process's entry, but outside the registry and the world;
	 * complete before any reader exists (hum_reader_new comes after). */
	st->sys->id = HUM_SYS_ID;
	memcpy(st->sys->name, HUM_SYS_NAME, sizeof HUM_SYS_NAME);
	hum_logring_init(&st->sys->log, &st->logbase, st->log_bytes);
	/* The first registry retired nothing; the world pointer and box are
	 * published before any reader exists (hum_reader_new comes after). */
	return st;
}

void hum_store_free(hum_store *st)
{
	if (st == NULL)
		return;
	/* Teardown only: waits for open sections (there must be none), then
	 * runs every deferred free. */
	ck_epoch_synchronize(&st->wrec);
	HUM_TSAN_ACQUIRE(&tsan_epoch_sync);
	ck_epoch_reclaim(&st->wrec);
	st->reclaimed = st->retired + st->logbase.retired;
	hum_logbase_fini(&st->logbase); /* after the last chunk callback */
	for (size_t i = 0; i < st->nlive; i++) {
		hum_entry *e = st->live[i];
		hum_logring_destroy(&e->log);
		free(e->snap);
		free(e);
	}
	hum_logring_destroy(&st->sys->log);
	free(st->sys);
	free(st->live);
	free(st->world);
	if (st->reg != NULL) {
		ck_hs_destroy(&st->reg->hs);
		free(st->reg);
	}
	/* Reader records cannot be unlinked from the epoch (ck_epoch_unregister
	 * only marks them reusable); free them all now. */
	ck_stack_entry_t *c = CK_STACK_FIRST(&st->epoch.records);
	while (c != NULL) {
		ck_stack_entry_t *next = CK_STACK_NEXT(c);
		ck_epoch_record_t *rec = (ck_epoch_record_t *)((char *)c - offsetof(ck_epoch_record_t, record_next));
		if (rec != &st->wrec)
			free((hum_reader *)rec);
		c = next;
	}
	free(st);
}

hum_entry *hum_store_add(hum_store *st, hum_snap *first)
{
	if (first == NULL) { /* e.g. hum_snap_new failed */
		errno = EINVAL;
		return NULL;
	}
	const char *name = first->name;
	size_t ln = strlen(name);
	unsigned long h = name_hash(name, st->seed);
	/* The writer may read its own registry without a section. */
	if (ck_hs_get(&st->reg->hs, h, name) != NULL) {
		errno = EEXIST;
		return NULL;
	}
	if (st->nlive == st->live_cap) {
		size_t cap = st->live_cap ? st->live_cap * 2 : 64;
		hum_entry **live = realloc(st->live, cap * sizeof *live);
		if (live == NULL) {
			errno = ENOMEM;
			return NULL;
		}
		st->live = live;
		st->live_cap = cap;
	}
	hum_entry *e = malloc(sizeof *e + ln + 1);
	if (e == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	memset(e, 0, sizeof *e);
	memcpy(e->name, name, ln + 1);
	e->id = st->next_id + 1;
	e->hash = h;
	hum_logring_init(&e->log, &st->logbase, st->log_bytes);
	first->id = e->id;
	first->generation = 1;
	first->log = &e->log;
	first->checksum = hum_snap_checksum(first);
	e->snap = first; /* not yet reachable: plain store */
	/* The entry is complete before ck_hs_put makes its name reachable.
	 * ck_hs stores the slot with a plain ck_pr store, so order it here. */
	HUM_TSAN_RELEASE(e);
	hum_fence_rel();
	hs_writer = st;
	bool ok = ck_hs_put(&st->reg->hs, h, e->name);
	hs_writer = NULL;
	if (!ok) {
		free(e);
		errno = ENOMEM;
		return NULL;
	}
	st->next_id = e->id;
	st->live[st->nlive++] = e;
	while (st->nlive * 2 > st->reg_cap) /* mirrors ck_hs's growth rule */
		st->reg_cap <<= 1;
	mark_dirty(st);
	return e;
}

void hum_store_publish(hum_store *st, hum_entry *e, hum_snap *next)
{
	hum_snap *old = e->snap;
	next->id = e->id;
	next->generation = old->generation + 1;
	next->log = &e->log;
	next->checksum = hum_snap_checksum(next);
	/* Release: every field and the checksum are visible before the
	 * pointer; readers load it with acquire (hum_entry_snap). */
	hum_store_ptr_rel(&e->snap, next);
	hum_store_retire(st, &old->epoch_entry, snap_free_cb);
	mark_dirty(st);
}

static uint32_t live_id(const void *elem)
{
	return (*(hum_entry *const *)elem)->id;
}

void hum_store_remove(hum_store *st, hum_entry *e)
{
	hs_writer = st;
	(void)ck_hs_remove(&st->reg->hs, e->hash, e->name);
	hs_writer = NULL;
	size_t i = hum_id_lower_bound(st->live, st->nlive, sizeof st->live[0], live_id, e->id);
	if (i < st->nlive && st->live[i] == e) {
		memmove(&st->live[i], &st->live[i + 1], (st->nlive - i - 1) * sizeof st->live[0]);
		st->nlive--;
	}
	hum_logring_retire(&e->log);
	hum_store_retire(st, &e->snap->epoch_entry, snap_free_cb);
	hum_store_retire(st, &e->epoch_entry, entry_free_cb);
	st->reg_removed++;
	reg_maybe_rebuild(st);
	mark_dirty(st);
}

void hum_store_publish_world(hum_store *st)
{
	if (!st->world_dirty)
		return;
	hum_world *w = malloc(sizeof *w + st->nlive * sizeof w->procs[0]);
	if (w == NULL)
		return; /* stays dirty: the next flush tries again */
	memset(&w->epoch_entry, 0, sizeof w->epoch_entry);
	w->generation = ++st->world_gen;
	w->count = (uint32_t)st->nlive;
	for (size_t i = 0; i < st->nlive; i++)
		w->procs[i] = st->live[i]->snap;
	hum_world *old = st->world;
	/* Release: the array is complete before the pointer; the snapshots it
	 * points to were published (released) before. */
	hum_store_ptr_rel(&st->world, w);
	hum_store_retire(st, &old->epoch_entry, world_free_cb);
	st->world_dirty = false;
}

void hum_store_flush(hum_store *st)
{
	/* The world first: reclaim() does nothing while it is dirty. */
	hum_store_publish_world(st);
	reclaim(st);
	st->last_flush_ns = mono_ns();
}

void hum_store_foreach(hum_store *st, int (*fn)(hum_entry *e, void *ud), void *ud)
{
	/* fn must not add or remove entries. */
	for (size_t i = 0; i < st->nlive; i++)
		if (fn(st->live[i], ud))
			break;
}

size_t hum_store_pending_frees(hum_store *st)
{
	return (size_t)(st->retired + st->logbase.retired - st->reclaimed);
}

size_t hum_store_count(hum_store *st)
{
	return st->nlive;
}

/* Readers ---------------------------------------------------------------------- */

hum_reader *hum_reader_new(hum_store *st)
{
	/* ck_epoch_recycle hands out a record whose owner called
	 * ck_epoch_unregister; the hum_reader around it comes along. */
	ck_epoch_record_t *rec = ck_epoch_recycle(&st->epoch, NULL);
	hum_reader *r;
	if (rec != NULL) {
		r = (hum_reader *)rec;
		HUM_TSAN_ACQUIRE(r); /* pairs with hum_reader_free's release */
		r->st = st;
		return r;
	}
	size_t sz = (sizeof *r + 63) & ~(size_t)63;
	r = aligned_alloc(64, sz);
	if (r == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	memset(r, 0, sizeof *r);
	r->st = st;
	ck_epoch_register(&st->epoch, &r->rec, NULL);
	return r;
}

void hum_reader_free(hum_reader *r)
{
	if (r == NULL)
		return;
	HUM_TSAN_RELEASE(r);
	ck_epoch_unregister(&r->rec); /* the memory stays until hum_store_free */
}

void hum_read_begin(hum_reader *r)
{
	/* ck_epoch_begin: marks the record active and observes the global
	 * epoch with a full store-load fence (xchg on x86), so no load of a
	 * published pointer below can be satisfied before the writer can see
	 * this section. */
	ck_epoch_begin(&r->rec, NULL);
}

void hum_read_end(hum_reader *r)
{
	HUM_TSAN_RELEASE(&tsan_epoch_sync);
	/* ck_epoch_end: release fence, then clears active: every load in the
	 * section completes before the writer can see it finished. */
	ck_epoch_end(&r->rec, NULL);
}

hum_entry *hum_store_lookup(hum_store *st, const char *name)
{
	/* Acquire: the box and its map were fully built before publication. */
	struct hsbox *b = hum_load_ptr_acq(&st->reg);
	const char *k = ck_hs_get(&b->hs, name_hash(name, st->seed), name);
	if (k == NULL)
		return NULL;
	/* Pairs with the release fence before ck_hs_put: the entry's fields
	 * are read after the slot that published it (a compiler barrier on
	 * x86, where dependent loads are ordered anyway). */
	hum_fence_acq();
	hum_entry *e = entry_of(k);
	HUM_TSAN_ACQUIRE(e);
	return e;
}

const hum_world *hum_store_world(hum_store *st)
{
	/* Acquire: pairs with the release in hum_store_publish_world. */
	return hum_load_ptr_acq(&st->world);
}

const hum_snap *hum_entry_snap(const hum_entry *e)
{
	/* Acquire: pairs with the release in hum_store_publish / add. */
	return hum_load_ptr_acq(&e->snap);
}

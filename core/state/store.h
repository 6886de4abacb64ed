/*
 * store.h — hum's shared state: registry, world snapshot, reclamation.
 *
 * One writer (the loop thread) and any number of readers.  The writer adds
 * and removes entries, publishes new process snapshots and appends log lines;
 * readers on any thread look entries up by name, load snapshots and the world
 * snapshot, and copy log lines, all inside an epoch read section, without a
 * lock, without allocating and without ever waiting for the writer.
 *
 * Reclamation: every object a reader might still hold (snapshots, worlds,
 * entries, log chunks, the registry's old maps) is retired with ck_epoch_call
 * on the writer's record and freed later by hum_store_flush (ck_epoch_poll),
 * never by a reader.
 */
#ifndef HUM_STORE_H
#define HUM_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ck_epoch.h>

#include "logring.h"
#include "snap.h"

typedef struct hum_store hum_store;
typedef struct hum_reader hum_reader;

/* A registry entry: one per process, owned by the store. */
typedef struct hum_entry {
	ck_epoch_entry_t epoch_entry;
	uint32_t id;
	hum_snap *snap;     /* current snapshot: hum_entry_snap() to read */
	hum_logring log;
	void *owner;        /* writer-side back pointer (the supervisor's record) */
	unsigned long hash;
	char name[];        /* registry key; equals snap->name */
} hum_entry;

/* hum's own log: an entry named HUM_SYS_NAME with id HUM_SYS_ID (no process
 * has either: process ids start at 1) whose ring holds hum's own messages
 * (stream HUM_STREAM_SYS), sequenced with every process's lines.  It is in
 * neither the registry nor the world and has no snapshot (snap is NULL), so
 * `ps` never lists it; readers reach it through hum_store_sys, which any
 * thread may call: the entry lives as long as the store. */
#define HUM_SYS_NAME "hum"
#define HUM_SYS_ID 0

/* The world: every live process's snapshot at one generation, sorted by id. */
typedef struct hum_world {
	ck_epoch_entry_t epoch_entry;
	uint64_t generation; /* increases on every world publish */
	uint32_t count;
	const hum_snap *procs[];
} hum_world;

/* Writer (loop thread only) ------------------------------------------------ */
hum_store *hum_store_new(size_t log_bytes_per_process);
/* Frees everything; no reader may be inside a section or use the store later. */
void hum_store_free(hum_store *st);

/* Adds an entry with snapshot `first` (unpublished, its name is the key).
 * Returns the entry, or NULL with errno EEXIST (name taken), ENOMEM, or
 * EINVAL (first == NULL); on failure `first` still belongs to the caller
 * (hum_snap_free it).  Sets first->id (a new id, never reused), generation 1
 * and the checksum. */
hum_entry *hum_store_add(hum_store *st, hum_snap *first);
/* Publishes `next` as e's snapshot: sets id, generation = old + 1, log (e's
 * ring) and checksum, swaps with release ordering, retires the old one and
 * marks the world dirty (publishing it if it has waited its maximum age).  Called on state changes only: log lines go to the
 * ring and never republish a snapshot or the world. */
void hum_store_publish(hum_store *st, hum_entry *e, hum_snap *next);
/* Removes e from the registry and the world; e, its snapshot and its log are
 * retired, so e must not be used by the writer afterwards. */
void hum_store_remove(hum_store *st, hum_entry *e);
/* Publishes the world if dirty, and reclaims retired objects whose grace
 * period is over (not while the world is dirty: a world that could not be
 * allocated defers reclamation to a later flush).  Call once per loop
 * iteration (ev_prepare).  Never blocks on readers: cost is O(processes if
 * the world is dirty + reader records); log lines cost nothing here. */
void hum_store_flush(hum_store *st);
/* Publishes the world now if dirty (the stress test and hum_store_flush). */
void hum_store_publish_world(hum_store *st);
/* How stale the world may get during one long loop iteration: a change made
 * while the world has been dirty for HUM_WORLD_MAX_AGE_NS publishes it at
 * once (add, publish and remove check).  Those publishes reclaim nothing
 * (the caller may hold what it replaced), so a writer that works long
 * between flushes also calls hum_store_flush_due where it holds no pointer
 * into the store (between events it hands to Lua, when Lua calls into the
 * supervisor): a full flush once HUM_WORLD_MAX_AGE_NS has passed since the
 * last one, so the worlds replaced meanwhile are freed too.  Both are cheap:
 * a branch when nothing changed, a clock read when something did.
 * set_world_max_age changes the bound (ns; < 0: only hum_store_flush
 * publishes, for tests of the flush itself). */
#define HUM_WORLD_MAX_AGE_NS (5 * 1000 * 1000)
void hum_store_flush_due(hum_store *st);
void hum_store_set_world_max_age(hum_store *st, int64_t ns);
/* What the store's rings share (sequence counter, chunk pool, epoch record):
 * for a ring outside any entry (tests) that takes its sequence from here. */
hum_logbase *hum_store_logbase(hum_store *st);
/* Writer-side iteration in id order; fn returns non-zero to stop. */
void hum_store_foreach(hum_store *st, int (*fn)(hum_entry *e, void *ud), void *ud);
size_t hum_store_pending_frees(hum_store *st); /* retired, not yet freed */
size_t hum_store_count(hum_store *st);         /* live entries */
/* Retires an object the writer has just made unreachable to new readers:
 * cb(entry) runs from a later hum_store_flush (or hum_store_free) once no
 * read section that could have seen it is still open.  Writer only. */
void hum_store_retire(hum_store *st, ck_epoch_entry_t *entry, ck_epoch_cb_t *cb);

/* hum's own log entry (see HUM_SYS_NAME): the writer appends to its ring,
 * readers read it inside a section like any other ring. */
hum_entry *hum_store_sys(hum_store *st);

/* Ids.  hum_store_add hands ids out in increasing order and never reuses
 * one, so an array kept in the order its elements were added (and removed
 * from without reordering) is sorted by id: the store's live entries, the
 * supervisor's records.  hum_id_lower_bound: of the n elements of `base`,
 * each `size` bytes, whose ids id_of(element) reads, the index of the
 * first whose id is not below `id` — the element with that id if there is
 * one, else where it would go (n past the end).  Binary search, no
 * allocation; safe wherever reading the array is. */
static inline size_t hum_id_lower_bound(const void *base, size_t n, size_t size,
					uint32_t (*id_of)(const void *elem), uint32_t id)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (id_of((const char *)base + mid * size) < id)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Readers (any thread) ------------------------------------------------------ */
/* One reader record per thread; registering allocates, reading never does.
 * hum_reader_new reuses a record released by hum_reader_free when there is
 * one; records are freed by hum_store_free (a reader need not be freed
 * before it, but must not be used after).  NULL with errno ENOMEM. */
hum_reader *hum_reader_new(hum_store *st);
void hum_reader_free(hum_reader *r);
void hum_read_begin(hum_reader *r);
void hum_read_end(hum_reader *r);

/* Inside a section (the writer may call these without one: only it frees).
 * hum_store_world never returns NULL (an empty world before the first
 * publish).  Pointers obtained are valid until hum_read_end. */
hum_entry *hum_store_lookup(hum_store *st, const char *name);
const hum_world *hum_store_world(hum_store *st);
const hum_snap *hum_entry_snap(const hum_entry *e);

#endif

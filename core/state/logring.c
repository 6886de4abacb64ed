/*
 * logring.c — per-process bounded log: chunks of lines, one writer, readers
 * on any thread without locks.
 *
 * Owns: chunks (struct hum_logchunk) and chunk tables (struct hum_logtable)
 * of every ring, their sizing, retention and reclamation.
 *
 * Layout.  A chunk is one allocation: a header and a byte area whose front
 * holds line bytes (growing up) and whose back holds 32-byte line records
 * (growing down), so short and long lines share the space without a second
 * allocation.  The writer only appends past a chunk's published count, and
 * once the chunk is dropped it is retired through the base's epoch record;
 * only after its grace period (the writer's next poll) may it be freed or
 * pooled for reuse by another ring.  Chunks grow
 * geometrically from 4 KiB to a cap (max_bytes/8 clamped to 16..256 KiB) so
 * a quiet process costs a few KiB; any chunk is big enough for its first
 * line, so a HUM_LINE_MAX line always fits.
 *
 * Tables.  The set of live chunks, oldest first, is an immutable array
 * swapped by pointer (release) when a chunk is added or dropped; the old
 * table is retired like a chunk.  A reader that loaded a table can keep
 * walking it and every chunk in it until its read section ends.
 *
 * Publication order (the memory model in one place):
 *   append:  bytes + record written past chunk->count           (plain)
 *   commit:  chunk->count = nrec for each chunk, oldest first   (release)
 *            lines, bytes counters                              (relaxed)
 *            r->last_seq = newest committed seq                 (release)
 *   readers: H = r->last_seq (acquire), then table (acquire), then each
 *            chunk->count (acquire); they visit only records with seq <= H.
 * Because every count store precedes the last_seq store, a reader that saw
 * H also sees counts covering every line with seq <= H, so the lines a reader
 * visits are always a gap-free prefix of what was committed, even when one
 * commit spans several chunks.
 *   drop:    r->dropped += lines of the dropped chunks          (relaxed)
 *            then the new table without them                    (release)
 * so a reader that no longer finds a chunk also sees it counted as dropped.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "atomic.h"
#include "logring.h"

struct logrec {
	uint64_t seq;
	int64_t time_ms;
	uint32_t off, len;
	uint8_t stream, flags;
};

struct hum_logchunk {
	ck_epoch_entry_t epoch_entry; /* retirement; first member */
	uint64_t first_seq; /* seq of record 0: set before the chunk is published */
	uint32_t count;     /* committed records: writer release, readers acquire */
	uint32_t nrec;      /* writer only: records written (committed + pending) */
	uint32_t used;      /* writer only: bytes used at the front of buf */
	uint32_t size;      /* bytes in buf, a multiple of 8 */
	struct hum_chunkpool *pool; /* where it goes when reclaimed (NULL: free) */
	struct hum_logchunk *next_free; /* in the pool */
	char buf[] __attribute__((aligned(8)));
};

struct hum_logtable {
	ck_epoch_entry_t epoch_entry;
	uint32_t n;
	struct hum_logchunk *chunks[]; /* oldest first */
};

enum {
	CHUNK_MIN = 4096,
	CHUNK_CAP_MIN = 16 * 1024,
	CHUNK_CAP_MAX = 256 * 1024,
	REC = sizeof(struct logrec),
};

_Static_assert(sizeof(struct logrec) == 32, "log record is 32 bytes");

static inline const struct logrec *rec_at(const struct hum_logchunk *c, uint32_t i)
{
	return (const struct logrec *)(c->buf + c->size) - (i + 1);
}

static inline size_t chunk_alloc_size(const struct hum_logchunk *c)
{
	return sizeof *c + c->size;
}

/* Chunks kept for reuse per base (4 MiB at 128 KiB).  Only big ones: the
 * small first chunks of a ring would clog the pool, and below malloc's mmap
 * threshold they are recycled by the heap anyway. */
enum { POOL_MAX = 32, POOL_MIN_SIZE = 64 * 1024 };

static void chunk_free_cb(ck_epoch_entry_t *e)
{
	struct hum_logchunk *c = (struct hum_logchunk *)e; /* first member */
	struct hum_chunkpool *p = c->pool;
	if (p == NULL || p->n >= POOL_MAX || c->size < POOL_MIN_SIZE) {
		free(c);
		return;
	}
	c->next_free = p->head;
	p->head = c;
	p->n++;
}

void hum_logbase_init(hum_logbase *base, ck_epoch_record_t *rec)
{
	memset(base, 0, sizeof *base);
	base->rec = rec;
}

void hum_logbase_fini(hum_logbase *base)
{
	struct hum_chunkpool *p = &base->pool;
	while (p->head != NULL) {
		struct hum_logchunk *c = p->head;
		p->head = c->next_free;
		free(c);
	}
	p->n = 0;
}

/* A pooled chunk of exactly `size` bytes of buffer, or NULL.  Sizes differ
 * only while a ring grows its first chunks and for rings with their own
 * budget, so looking at a few entries finds one when there is one. */
static struct hum_logchunk *pool_take(struct hum_chunkpool *p, size_t size)
{
	struct hum_logchunk **pp = &p->head;
	for (int k = 0; *pp != NULL && k < 4; k++, pp = &(*pp)->next_free)
		if ((*pp)->size == size) {
			struct hum_logchunk *c = *pp;
			*pp = c->next_free;
			p->n--;
			return c;
		}
	return NULL;
}

static void table_free_cb(ck_epoch_entry_t *e)
{
	free(e);
}

void hum_logring_init(hum_logring *r, hum_logbase *base, size_t max_bytes)
{
	memset(r, 0, sizeof *r);
	r->base = base;
	r->max_bytes = max_bytes ? max_bytes : HUM_LOG_DEFAULT_BYTES;
	/* chunks are allocated on the first append */
}

static void retire(hum_logring *r, ck_epoch_entry_t *e, ck_epoch_cb_t *cb)
{
	r->base->retired++;
	ck_epoch_call(r->base->rec, e, cb);
}

/* The largest chunk this ring builds: an eighth of the budget, so dropping
 * the oldest chunk loses about 1/8 of the retained lines, not all of them. */
static uint32_t chunk_cap(const hum_logring *r)
{
	size_t cap = CHUNK_CAP_MIN;
	while (cap < CHUNK_CAP_MAX && cap * 2 <= r->max_bytes / 8)
		cap *= 2;
	return (uint32_t)cap;
}

/* A chunk for a line of len bytes: the allocation doubles with every chunk
 * the ring makes, from CHUNK_MIN up to chunk_cap(), and is never smaller
 * than the line needs. */
static struct hum_logchunk *chunk_new(hum_logring *r, size_t len)
{
	size_t total = (size_t)CHUNK_MIN << (r->nchunk < 16 ? r->nchunk : 16);
	if (total > chunk_cap(r))
		total = chunk_cap(r);
	size_t size = (total - sizeof(struct hum_logchunk)) & ~(size_t)7;
	size_t need = ((len + 7) & ~(size_t)7) + REC;
	if (size < need)
		size = need;
	struct hum_chunkpool *pool = &r->base->pool;
	struct hum_logchunk *c = pool_take(pool, size);
	if (c == NULL)
		c = malloc(sizeof *c + size);
	if (c == NULL)
		return NULL;
	memset(c, 0, sizeof *c);
	c->size = (uint32_t)size;
	c->pool = pool;
	return c;
}

static inline int chunk_fits(const struct hum_logchunk *c, size_t len)
{
	return (size_t)c->used + len + (size_t)(c->nrec + 1) * REC <= c->size;
}

void hum_logring_commit(hum_logring *r)
{
	if (r->pending == 0)
		return;
	struct hum_logtable *t = r->table; /* writer: its own pointer, no ordering needed */
	/* Oldest first: counts are published in the order the lines were
	 * written; the release store makes each chunk's bytes and records
	 * visible before its count. */
	for (uint32_t i = 0; t != NULL && i < t->n; i++) {
		struct hum_logchunk *c = t->chunks[i];
		if (c->count != c->nrec)
			hum_store_u32_rel(&c->count, c->nrec);
	}
	/* Counters are monotonic statistics; relaxed is enough, and they
	 * become visible no later than last_seq below. */
	hum_store_u64_relaxed(&r->lines, r->lines + r->pending);
	hum_store_u64_relaxed(&r->bytes, r->bytes + r->pending_bytes);
	/* The horizon: release so that a reader that loads it (acquire) sees
	 * every count store above. */
	hum_store_u64_rel(&r->last_seq, r->pending_seq);
	r->pending = 0;
	r->pending_bytes = 0;
}

uint64_t hum_logring_append(hum_logring *r, int stream, int flags, int64_t time_ms,
			    const char *buf, size_t len)
{
	if (len > HUM_LINE_MAX) {
		errno = EINVAL;
		return 0;
	}
	struct hum_logchunk *c = r->cur;
	uint64_t seq;
	if (c == NULL || !chunk_fits(c, len)) {
		struct hum_logtable *old = r->table;
		uint32_t n = old ? old->n : 0;
		struct hum_logchunk *nc = chunk_new(r, len);
		if (nc == NULL) {
			errno = ENOMEM;
			return 0;
		}
		size_t add = chunk_alloc_size(nc);
		uint32_t drop = 0;
		size_t live = r->live_bytes;
		while (drop < n && live + add > r->max_bytes)
			live -= chunk_alloc_size(old->chunks[drop++]);
		struct hum_logtable *t =
			malloc(sizeof *t + (size_t)(n - drop + 1) * sizeof t->chunks[0]);
		if (t == NULL) {
			free(nc);
			errno = ENOMEM;
			return 0;
		}
		memset(&t->epoch_entry, 0, sizeof t->epoch_entry);
		/* Lines about to disappear are committed first, so `dropped`
		 * never counts a line that `lines` does not. */
		for (uint32_t i = 0; i < drop; i++)
			if (old->chunks[i]->count != old->chunks[i]->nrec) {
				hum_logring_commit(r);
				break;
			}
		uint64_t dropped_lines = 0;
		for (uint32_t i = 0; i < drop; i++)
			dropped_lines += old->chunks[i]->nrec;
		if (dropped_lines)
			/* Before the table swap below (release): a reader that
			 * finds the chunk gone also finds it counted. */
			hum_store_u64_relaxed(&r->dropped, r->dropped + dropped_lines);
		t->n = n - drop + 1;
		for (uint32_t i = drop; i < n; i++)
			t->chunks[i - drop] = old->chunks[i];
		t->chunks[t->n - 1] = nc;
		seq = ++r->base->seq;
		nc->first_seq = seq; /* immutable from here on */
		/* Release: the chunk header (first_seq, size) and the table are
		 * complete before a reader can reach them. */
		hum_store_ptr_rel(&r->table, t);
		if (old != NULL)
			retire(r, &old->epoch_entry, table_free_cb);
		for (uint32_t i = 0; i < drop; i++)
			retire(r, &old->chunks[i]->epoch_entry, chunk_free_cb);
		r->live_bytes = live + add;
		r->cur = c = nc;
		r->nchunk++;
	} else {
		seq = ++r->base->seq;
	}
	/* Past the published count: no reader looks here until commit. */
	struct logrec *rec = (struct logrec *)(c->buf + c->size) - (c->nrec + 1);
	memcpy(c->buf + c->used, buf, len);
	rec->seq = seq;
	rec->time_ms = time_ms;
	rec->off = c->used;
	rec->len = (uint32_t)len;
	rec->stream = (uint8_t)stream;
	rec->flags = (uint8_t)flags;
	c->used += (uint32_t)len;
	c->nrec++;
	r->pending++;
	r->pending_bytes += len;
	r->pending_seq = seq;
	return seq;
}

void hum_logring_retire(hum_logring *r)
{
	struct hum_logtable *t = r->table;
	/* The table pointer stays published: a reader that reached this ring
	 * through a removed entry may still walk it until its section ends. */
	if (t == NULL)
		return;
	for (uint32_t i = 0; i < t->n; i++)
		retire(r, &t->chunks[i]->epoch_entry, chunk_free_cb);
	retire(r, &t->epoch_entry, table_free_cb);
	r->cur = NULL;
}

void hum_logring_destroy(hum_logring *r)
{
	struct hum_logtable *t = r->table;
	if (t != NULL) {
		for (uint32_t i = 0; i < t->n; i++)
			free(t->chunks[i]);
		free(t);
	}
	r->table = NULL;
	r->cur = NULL;
}

/* Readers ------------------------------------------------------------------ */

/* First record index in [0, cnt) with seq >= s (cnt if none). */
static uint32_t lower_bound(const struct hum_logchunk *c, uint32_t cnt, uint64_t s)
{
	uint32_t lo = 0, hi = cnt;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (rec_at(c, mid)->seq < s)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Visits committed lines (seq <= H) from chunk ci, record i onwards. */
static size_t visit(const struct hum_logtable *t, uint64_t H, uint32_t ci, uint32_t i,
		    size_t max, hum_line_fn fn, void *ud)
{
	size_t n = 0;
	for (; ci < t->n; ci++, i = 0) {
		const struct hum_logchunk *c = t->chunks[ci];
		/* Acquire: records [0, cnt) and their bytes are complete. */
		uint32_t cnt = hum_load_u32_acq(&c->count);
		for (; i < cnt; i++) {
			const struct logrec *rec = rec_at(c, i);
			if (rec->seq > H)
				return n;
			hum_line l = {
				.seq = rec->seq, .time_ms = rec->time_ms,
				.data = c->buf + rec->off, .len = rec->len,
				.stream = rec->stream, .flags = rec->flags,
			};
			n++;
			if (fn(&l, ud) || (max && n == max))
				return n;
		}
	}
	return n;
}

size_t hum_logring_read(const hum_logring *r, uint64_t from_seq, size_t max,
			hum_line_fn fn, void *ud)
{
	/* Acquire the horizon before the table and counts (see the top). */
	uint64_t H = hum_load_u64_acq(&r->last_seq);
	if (H == 0 || from_seq > H)
		return 0;
	const struct hum_logtable *t = hum_load_ptr_acq(&r->table);
	if (t == NULL || t->n == 0)
		return 0;
	/* The last chunk starting at or before from_seq; first_seq is
	 * immutable once published, so a binary search is safe. */
	uint32_t lo = 0, hi = t->n;
	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;
		if (t->chunks[mid]->first_seq <= from_seq)
			lo = mid + 1;
		else
			hi = mid;
	}
	uint32_t ci = lo ? lo - 1 : 0;
	const struct hum_logchunk *c = t->chunks[ci];
	uint32_t i = lower_bound(c, hum_load_u32_acq(&c->count), from_seq);
	return visit(t, H, ci, i, max, fn, ud);
}

size_t hum_logring_tail(const hum_logring *r, size_t n, hum_line_fn fn, void *ud)
{
	return hum_logring_tail_upto(r, UINT64_MAX, n, fn, ud);
}

size_t hum_logring_tail_upto(const hum_logring *r, uint64_t upto, size_t n,
			     hum_line_fn fn, void *ud)
{
	if (n == 0)
		return 0;
	uint64_t H = hum_load_u64_acq(&r->last_seq);
	if (H > upto)
		H = upto;
	if (H == 0)
		return 0;
	const struct hum_logtable *t = hum_load_ptr_acq(&r->table);
	if (t == NULL || t->n == 0)
		return 0;
	/* Walk back counting committed lines (seq <= H) until n are found.
	 * The same lines are visited forward afterwards: counts only grow
	 * and lines beyond H are skipped, so both passes see the same set. */
	size_t need = n;
	uint32_t ci = t->n, start = 0;
	while (ci > 0) {
		ci--;
		const struct hum_logchunk *c = t->chunks[ci];
		uint32_t cnt = hum_load_u32_acq(&c->count);
		uint32_t k = lower_bound(c, cnt, H + 1); /* records with seq <= H */
		if (k >= need) {
			start = k - (uint32_t)need;
			break;
		}
		need -= k;
		start = 0;
	}
	return visit(t, H, ci, start, n, fn, ud);
}

uint64_t hum_logring_first_seq(const hum_logring *r)
{
	uint64_t H = hum_load_u64_acq(&r->last_seq);
	if (H == 0)
		return 0;
	const struct hum_logtable *t = hum_load_ptr_acq(&r->table);
	for (uint32_t i = 0; t != NULL && i < t->n; i++) {
		const struct hum_logchunk *c = t->chunks[i];
		if (hum_load_u32_acq(&c->count) > 0) {
			uint64_t s = rec_at(c, 0)->seq;
			return s <= H ? s : 0;
		}
	}
	return 0;
}

uint64_t hum_logring_last_seq(const hum_logring *r)
{
	/* 0 when every committed line has been dropped (only possible for an
	 * instant while a commit that dropped them is being followed by the
	 * next one). */
	return hum_logring_first_seq(r) ? hum_load_u64_acq(&r->last_seq) : 0;
}

hum_logcounts hum_logring_counts(const hum_logring *r)
{
	hum_logcounts k;
	k.lines = hum_load_u64_relaxed(&r->lines);
	k.bytes = hum_load_u64_relaxed(&r->bytes);
	k.dropped = hum_load_u64_relaxed(&r->dropped);
	k.first_seq = hum_logring_first_seq(r);
	k.last_seq = hum_logring_last_seq(r);
	return k;
}

/*
 * logring.h — a bounded per-process log of lines, one writer, many readers.
 *
 * Memory model: the ring is a sequence of chunks.  Inside a chunk the writer
 * only appends: it writes the bytes and the line record past the published
 * count, then publishes the new count with a release store, so readers never
 * see a half-written line.  The list of live chunks is an immutable table
 * swapped by pointer when a chunk is added or dropped; dropped chunks and old
 * tables are retired through an epoch record the ring is handed (its
 * hum_logbase), so a reader inside a read section can keep copying from a
 * chunk that the writer has just dropped.  Overflow drops the oldest whole
 * chunk and adds its lines to `dropped`.
 *
 * Dependencies: a ring knows nothing of the store.  What rings share — the
 * global sequence counter, the pool of reclaimed chunks and the epoch record
 * — is a hum_logbase that the owner of the rings (the store) embeds and
 * hands to each ring at init.  The counters a reader wants (lines, bytes,
 * dropped, first and last seq) are read from the ring, never copied into
 * process snapshots, so logging never republishes state.
 */
#ifndef HUM_LOGRING_H
#define HUM_LOGRING_H

#include <stddef.h>
#include <stdint.h>
#include <ck_epoch.h>

enum { HUM_STREAM_OUT = 1, HUM_STREAM_ERR = 2, HUM_STREAM_SYS = 3 };
enum { HUM_LINE_CONT = 1 /* continues on the next line (split at the max length) */,
       HUM_LINE_PARTIAL = 2 /* last bytes before EOF had no newline */ };

#define HUM_LINE_MAX (64 * 1024) /* longer lines are split and marked CONT */
#define HUM_LOG_DEFAULT_BYTES (1024 * 1024) /* retention when max_bytes is 0 */

typedef struct hum_line {
	uint64_t seq;     /* global, from the store: total order across processes */
	int64_t time_ms;  /* wall clock */
	const char *data; /* not NUL terminated; valid inside the read section */
	uint32_t len;
	uint8_t stream;
	uint8_t flags;
} hum_line;

struct hum_logchunk;
struct hum_logtable;

/* Reclaimed big chunks kept for reuse.  A chunk that a ring drops is
 * reclaimed through the epoch and, instead of going back to malloc (for
 * chunks of 128 KiB that is munmap, and the next chunk faults every page in
 * again), waits here for the next ring that needs a chunk of its size.
 * Writer thread only: chunks are taken in append and given back by epoch
 * callbacks, which the writer runs (ck_epoch_poll / reclaim). */
struct hum_chunkpool {
	struct hum_logchunk *head;
	size_t n;
};

/* What the rings of one writer share.  Writer thread only. */
typedef struct hum_logbase {
	ck_epoch_record_t *rec; /* the writer's record: chunks are retired here */
	uint64_t seq;           /* the last sequence number given to a line */
	uint64_t retired;       /* objects retired by rings (for pending-free counts) */
	struct hum_chunkpool pool;
} hum_logbase;

/* Prepares base to retire through rec (the writer's epoch record). */
void hum_logbase_init(hum_logbase *base, ck_epoch_record_t *rec);
/* Frees the pooled chunks: after the last epoch callback has run. */
void hum_logbase_fini(hum_logbase *base);

typedef struct hum_logring {
	struct hum_logtable *table; /* published with release; readers load-acquire */
	size_t max_bytes;           /* retention bound */
	size_t live_bytes;          /* writer only */
	/* counters readable from any thread (relaxed loads; monotonic):
	 * lines and bytes committed since init, and lines dropped by overflow
	 * (always already committed, so dropped <= lines; lines - dropped are
	 * retained).  A reader that finds a chunk gone also sees it in dropped. */
	uint64_t lines, bytes, dropped;
	uint64_t pending;           /* writer only: appended lines not yet committed */
	/* Added by the implementation (logring.c); all but last_seq writer only. */
	uint64_t last_seq;          /* commit horizon: seq of the newest committed
				     * line, 0 if none; release store / acquire load */
	uint64_t pending_bytes;     /* bytes of the pending lines */
	uint64_t pending_seq;       /* seq of the newest appended line */
	struct hum_logchunk *cur;   /* chunk receiving appends (last in table) */
	uint32_t nchunk;            /* chunks created so far (geometric sizing) */
	hum_logbase *base;          /* sequence, pool, epoch record: shared */
} hum_logring;

/* Writer (loop thread) ----------------------------------------------------- */
/* max_bytes 0: HUM_LOG_DEFAULT_BYTES.  base outlives the ring. */
void hum_logring_init(hum_logring *r, hum_logbase *base, size_t max_bytes);
/* Append one line (len <= HUM_LINE_MAX).  Not visible to readers until
 * hum_logring_commit; the global sequence number is taken from the base.
 * Returns the line's seq, or 0 with errno ENOMEM (or EINVAL: len too long).
 * Retention: max_bytes bounds the memory of the chunks (line bytes plus a
 * 32-byte record per line); when a new chunk would exceed it, the oldest
 * whole chunks are dropped (committing first if they hold pending lines). */
uint64_t hum_logring_append(hum_logring *r, int stream, int flags, int64_t time_ms,
			    const char *buf, size_t len);
void hum_logring_commit(hum_logring *r); /* publish all appended lines */
/* Retire every chunk through the base's epoch record (entry removal). */
void hum_logring_retire(hum_logring *r);
/* Immediate free: only when no reader can exist (store teardown). */
void hum_logring_destroy(hum_logring *r);

/* Readers (any thread, inside hum_read_begin/end) --------------------------- */
/* Calls fn for each committed line with seq >= from_seq, oldest first, up to
 * max lines (0 = no limit).  Returns the number of lines visited.  fn may
 * return non-zero to stop early. */
typedef int (*hum_line_fn)(const hum_line *l, void *ud);
size_t hum_logring_read(const hum_logring *r, uint64_t from_seq, size_t max,
			hum_line_fn fn, void *ud);
/* The last n committed lines, oldest first (n = 0: none). */
size_t hum_logring_tail(const hum_logring *r, size_t n, hum_line_fn fn, void *ud);
/* The last n lines with seq <= upto: a reader that fixed a horizon earlier
 * (hum_logring_last_seq) gets n lines even if more were committed since. */
size_t hum_logring_tail_upto(const hum_logring *r, uint64_t upto, size_t n,
			     hum_line_fn fn, void *ud);
uint64_t hum_logring_first_seq(const hum_logring *r); /* 0 if empty */
uint64_t hum_logring_last_seq(const hum_logring *r);  /* 0 if empty */

/* The counters a status answer shows, read together (relaxed loads: each is
 * monotonic and exact; taken together they may straddle a commit). */
typedef struct hum_logcounts {
	uint64_t lines, bytes, dropped, first_seq, last_seq;
} hum_logcounts;
hum_logcounts hum_logring_counts(const hum_logring *r);

#endif

/*
 * logring.h — a bounded per-process log of lines, one writer, many readers.
 *
 * Memory model: the ring is a sequence of chunks.  Inside a chunk the writer
 * only appends: it writes the bytes and the line record past the published
 * count, then publishes the new count with a release store, so readers never
 * see a half-written line.  The list of live chunks is an immutable table
 * swapped by pointer when a chunk is added or dropped; dropped chunks and old
 * tables are retired through the store's epoch, so a reader inside a read
 * section can keep copying from a chunk that the writer has just dropped.
 * Overflow drops the oldest whole chunk and adds its lines to `dropped`.
 */
#ifndef HUM_LOGRING_H
#define HUM_LOGRING_H

#include <stddef.h>
#include <stdint.h>

struct hum_store;

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
	uint8_t in_store;           /* embedded in a hum_entry: report changes */
	uint8_t dirty;              /* on the store's changed-rings list */
	struct hum_logring *dirty_next;
} hum_logring;

/* Writer (loop thread) ----------------------------------------------------- */
int hum_logring_init(hum_logring *r, size_t max_bytes); /* 0 or -ENOMEM */
/* Append one line (len <= HUM_LINE_MAX).  Not visible to readers until
 * hum_logring_commit; the global sequence number is taken from the store.
 * Returns the line's seq, or 0 with errno ENOMEM (or EINVAL: len too long).
 * Retention: max_bytes bounds the memory of the chunks (line bytes plus a
 * 32-byte record per line); when a new chunk would exceed it, the oldest
 * whole chunks are dropped (committing first if they hold pending lines). */
uint64_t hum_logring_append(struct hum_store *st, hum_logring *r, int stream,
			    int flags, int64_t time_ms, const char *buf, size_t len);
void hum_logring_commit(hum_logring *r); /* publish all appended lines */
/* Retire every chunk through the store's epoch (entry removal). */
void hum_logring_retire(struct hum_store *st, hum_logring *r);
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

#endif

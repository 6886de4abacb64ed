/*
 * state_priv.h — glue between store.c and logring.c; not a public API.
 *
 * The log ring reports to its store that it changed (so hum_store_flush
 * refreshes only the snapshots of rings that did, instead of scanning every
 * process), and retires its chunks through the store's epoch record.
 */
#ifndef HUM_STATE_PRIV_H
#define HUM_STATE_PRIV_H

#include "store.h"

/* Writer only: queue r (embedded in one of st's entries) for the next flush. */
void hum_store_ring_changed_(hum_store *st, hum_logring *r);

/* Reclaimed log chunks kept for reuse (logring.c).  A chunk that a ring drops
 * is reclaimed through the epoch and, instead of going back to malloc (for
 * chunks of 128 KiB that is munmap, and the next chunk faults every page in
 * again), waits here for the next ring that needs a chunk of its size.
 * Writer thread only: chunks are taken in append and given back by epoch
 * callbacks, which run in the writer's hum_store_flush / hum_store_free. */
struct hum_chunkpool {
	struct hum_logchunk *head;
	size_t n;
};
struct hum_chunkpool *hum_store_chunkpool_(hum_store *st);
void hum_logring_pool_drain_(struct hum_chunkpool *p); /* free every pooled chunk */

#endif

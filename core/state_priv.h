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

#endif

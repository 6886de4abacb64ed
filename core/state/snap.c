/*
 * snap.c — building, checksumming and naming immutable process snapshots.
 *
 * Owns: the layout of a hum_snap allocation (struct + its three strings in
 * one malloc) and the checksum that the stress tests use to detect torn or
 * reclaimed-too-early reads.  Publication and reclamation live in store.c;
 * nothing here is shared between threads until hum_store_publish/add hands a
 * snapshot over, after which nobody writes it again (except the epoch entry,
 * which the writer fills when it retires the snapshot and which is excluded
 * from the checksum for exactly that reason).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "snap.h"

static const char *const state_names[HUM_STATE_COUNT] = {
	[HUM_PENDING] = "pending",   [HUM_STARTING] = "starting",
	[HUM_RUNNING] = "running",   [HUM_READY] = "ready",
	[HUM_STOPPING] = "stopping", [HUM_STOPPED] = "stopped",
	[HUM_SUCCEEDED] = "succeeded", [HUM_FAILED] = "failed",
	[HUM_BACKOFF] = "backoff",
};

const char *hum_state_name(hum_state s)
{
	if ((unsigned)s >= HUM_STATE_COUNT)
		return "unknown";
	return state_names[s];
}

int hum_state_from_name(const char *name)
{
	if (name == NULL)
		return -1;
	for (int i = 0; i < HUM_STATE_COUNT; i++)
		if (strcmp(state_names[i], name) == 0)
			return i;
	return -1;
}

hum_snap *hum_snap_new(const hum_snap *tmpl, const char *name,
		       const char *groups, const char *reason)
{
	if (name == NULL)
		name = "";
	if (groups == NULL)
		groups = "";
	if (reason == NULL)
		reason = "";
	size_t ln = strlen(name) + 1, lg = strlen(groups) + 1, lr = strlen(reason) + 1;
	hum_snap *s = malloc(sizeof *s + ln + lg + lr);
	if (s == NULL) {
		errno = ENOMEM;
		return NULL;
	}
	/* Scalars first (tmpl may be an old, published snapshot: reading it is
	 * fine, it is immutable), then the pieces that must not be inherited. */
	if (tmpl != NULL)
		memcpy(s, tmpl, sizeof *s);
	else
		memset(s, 0, sizeof *s);
	memset(&s->epoch_entry, 0, sizeof s->epoch_entry);
	s->generation = 0;
	s->checksum = 0;
	char *p = s->strings;
	memcpy(p, name, ln);
	s->name = p;
	p += ln;
	memcpy(p, groups, lg);
	s->groups = p;
	p += lg;
	memcpy(p, reason, lr);
	s->reason = p;
	return s;
}

hum_snap *hum_snap_clone(const hum_snap *old, const char *reason)
{
	return hum_snap_new(old, old->name, old->groups, reason ? reason : old->reason);
}

void hum_snap_free(hum_snap *s)
{
	free(s);
}

/* A 64-bit multiply-xorshift mix: every input bit affects every output bit,
 * so a torn read (half old, half new snapshot) or a snapshot overwritten
 * after reclamation fails validation with overwhelming probability. */
static inline uint64_t mix(uint64_t h, uint64_t v)
{
	h ^= v + 0x9e3779b97f4a7c15ULL + (h << 6) + (h >> 2);
	h *= 0xbf58476d1ce4e5b9ULL;
	h ^= h >> 31;
	return h;
}

static uint64_t mix_str(uint64_t h, const char *s, size_t n)
{
	uint64_t w;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		memcpy(&w, s + i, 8);
		h = mix(h, w);
	}
	w = 0;
	memcpy(&w, s + i, n - i);
	return mix(h, w ^ ((uint64_t)n << 56));
}

uint64_t hum_snap_checksum(const hum_snap *s)
{
	uint64_t h = 0x6a09e667f3bcc908ULL;
	h = mix(h, s->generation);
	h = mix(h, s->id);
	h = mix(h, (uint64_t)s->kind | (uint64_t)s->state << 8 |
		   (uint64_t)s->ready << 16 | (uint64_t)s->spawn_error << 24 |
		   (uint64_t)s->paused << 32 | (uint64_t)s->counting << 40);
	h = mix(h, s->remaining);
	for (int i = 0; i < HUM_SNAP_PIDS; i++)
		h = mix(h, (uint32_t)s->remaining_pids[i]);
	h = mix(h, (uint32_t)s->pid);
	h = mix(h, (uint32_t)s->exit_code);
	h = mix(h, (uint32_t)s->term_signal);
	h = mix(h, s->restarts);
	h = mix(h, s->run);
	h = mix(h, s->base_len);
	h = mix(h, (uint64_t)s->started_at_ms);
	h = mix(h, (uint64_t)s->ended_at_ms);
	h = mix(h, (uint64_t)s->changed_at_ms);
	h = mix(h, (uint64_t)(uintptr_t)s->log);
	/* The string pointers must point into this allocation: hash their
	 * offsets too, so a stale pointer is caught, not just stale text. */
	const char *strs[3] = { s->name, s->groups, s->reason };
	for (int i = 0; i < 3; i++) {
		h = mix(h, (uint64_t)(strs[i] - s->strings));
		h = mix_str(h, strs[i], strlen(strs[i]));
	}
	return h;
}

bool hum_snap_valid(const hum_snap *s)
{
	return s != NULL && s->checksum == hum_snap_checksum(s);
}

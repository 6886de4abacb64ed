/*
 * snap.h — the immutable process snapshot.
 *
 * A hum_snap is built by the loop thread (the only writer), published with a
 * release store through hum_store_publish(), and never modified afterwards.
 * Readers on any thread may read every field inside an epoch read section
 * (hum_read_begin/end).  Strings live in the same allocation, so a snapshot
 * is one malloc and one deferred free.
 */
#ifndef HUM_SNAP_H
#define HUM_SNAP_H

#include <stdbool.h>
#include <stdint.h>
#include <ck_epoch.h>

typedef enum hum_state {
	HUM_PENDING = 0, /* waiting for dependencies */
	HUM_STARTING,    /* spawned, not yet confirmed running */
	HUM_RUNNING,
	HUM_READY,       /* readiness probe passed (or none) */
	HUM_STOPPING,    /* stop signal sent, waiting for exit or grace */
	HUM_STOPPED,     /* asked to stop; final even if a late exit arrives */
	HUM_SUCCEEDED,   /* exited 0 */
	HUM_FAILED,      /* non-zero exit, signal, or spawn error */
	HUM_BACKOFF,     /* waiting to restart */
	HUM_STATE_COUNT
} hum_state;

#define HUM_SNAP_PIDS 4 /* remaining_pids shown */

typedef enum hum_kind { HUM_SERVICE = 0, HUM_TASK = 1 } hum_kind;

const char *hum_state_name(hum_state s);
int hum_state_from_name(const char *name); /* -1 if unknown */

typedef struct hum_snap {
	ck_epoch_entry_t epoch_entry; /* for deferred free; first member */
	uint64_t generation;  /* per process, strictly increasing */
	uint64_t checksum;    /* over every field below; validated by stress tests */
	uint32_t id;          /* process id in the store, never reused */
	uint8_t kind;         /* hum_kind */
	uint8_t state;        /* hum_state */
	uint8_t ready;        /* readiness reached in this run */
	uint8_t spawn_error;  /* the last start failed before exec */
	uint8_t paused;       /* the main process is stopped (SIGSTOP, SIGTSTP...) */
	/* Processes of the run still alive after its main process exited
	 * ("remaining processes": a daemonizing command, `cmd &`), as counted
	 * by the supervisor's last sweep; the first HUM_SNAP_PIDS of them in
	 * remaining_pids (0-filled).  0 while the main process lives. */
	uint8_t counting;     /* the main process exited and its remaining
			       * processes are not counted yet (a snapshot
			       * with the count follows) */
	uint32_t remaining;
	int32_t remaining_pids[HUM_SNAP_PIDS];
	int32_t pid;          /* 0 when not running */
	int32_t exit_code;    /* -1 when none */
	int32_t term_signal;  /* 0 when none */
	uint32_t restarts;
	uint32_t run;         /* start attempts so far: a new value is a new attempt */
	/* A replica (scale > 1): name[0, base_len) is the name of the
	 * definition it was expanded from, its replica base ("web" of
	 * "web.2"); 0 for any other process, whatever its name looks like
	 * (select.h).  Set at registration; copied from tmpl like every
	 * scalar, so it never changes. */
	uint32_t base_len;
	int64_t started_at_ms; /* wall clock, ms since epoch; 0 = never */
	int64_t ended_at_ms;
	int64_t changed_at_ms;
	/* The process's log ring (set by the store, the same for every snapshot
	 * of the process): line counters and lines are read there
	 * (hum_logring_counts), never copied in here, so a snapshot changes
	 * only when the process's state does. */
	const struct hum_logring *log;
	const char *name;     /* point into strings[] */
	const char *groups;   /* comma separated, "" if none */
	const char *reason;   /* human text for the state, "" if none */
	char strings[];
} hum_snap;

/* Writer side (loop thread only) ---------------------------------------- */

/* A new unpublished snapshot.  Copies every scalar field of tmpl (which may be
 * NULL for zeroes) and the three strings (NULL = ""); generation and
 * checksum are set by hum_store_publish.  Returns NULL on ENOMEM. */
hum_snap *hum_snap_new(const hum_snap *tmpl, const char *name,
		       const char *groups, const char *reason);
/* Same as hum_snap_new(old, old->name, old->groups, reason ? reason : old->reason). */
hum_snap *hum_snap_clone(const hum_snap *old, const char *reason);
void hum_snap_free(hum_snap *s); /* only for never-published snapshots */

uint64_t hum_snap_checksum(const hum_snap *s);
bool hum_snap_valid(const hum_snap *s); /* checksum matches */

#endif

/*
 * api_priv.h — what the files of the control socket share; not a public API.
 *
 *   server.c      start and stop of the API thread; small helpers
 *   client.c      the connections: accept, input, output, settle, idle
 *   dispatch.c    a request line's answer or its way to the loop thread;
 *                 the command and reply queues, the reply envelope
 *   request.c     parsing (jansson) and validation of one request line
 *   read_procs.c  the ps and status answers (PROC objects), and the
 *                 selection of the processes a request names
 *   read_logs.c   the logs answer: its lines found, then streamed in
 *                 slices; how a log line is kept and written
 *   follow.c      followers (`logs -f`): one poll per follow_interval
 *   watch.c       the change feed (`watch`): changed processes per world
 *                 generation, riding on the follower machinery
 *   grep.c        a "grep" pattern: plain text, or PCRE2 with bounds
 *   path.c        where the socket lives, the per-project lock, a stale
 *                 socket, binding
 *   jsonw.c       the JSON writer every answer goes through
 *
 * Everything declared here runs on the API thread except the path
 * functions, which hum_api_start calls on the loop thread before the API
 * thread exists, and hum_api_cmd_cb_ and hum_api_queues_free_, which run on
 * the loop thread (the latter once the API thread has ended).
 */
#ifndef HUM_API_PRIV_H
#define HUM_API_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <time.h>

#include "api.h"
#include "grep.h"
#include "jsonw.h"
#include "request.h"

#define PAUSE_OUT (256u * 1024)   /* stop taking requests, and stop producing
				   * a streamed answer, above this unsent */
#define FOLLOW_RESERVE 32         /* slots followers may never take: `hum ps`
				   * and `hum down` always get in */
#define TOTAL_OUT (32u << 20)     /* unsent bytes of all clients together */
#define READ_CHUNK 65536
#define READ_BUDGET (256u * 1024) /* bytes read per callback: fairness */

typedef struct msg {
	struct msg *next;
	uint32_t id;
	bool ok;   /* a reply's outcome */
	size_t len;
	char data[];
} msg;

typedef struct cursor {
	uint32_t id;
	bool gone;
	uint64_t last; /* follow: highest seq of this process already handled */
	uint64_t ord;  /* about how many of its lines were handled (ordinal of
			* `last` among all lines it ever logged): lines the ring
			* dropped beyond it were never seen, and are reported */
	char *name;
	/* a logs answer being streamed: lines up to `pos` were sent (or did
	 * not match); lines up to `hz` (the horizon when it was asked) are
	 * the answer's */
	uint64_t pos, hz;
	bool done;
	uint64_t upto; /* one slice: the last line visited ... */
	bool end;      /* ... and whether that reached hz */
} cursor;

typedef struct filter {
	int stream;       /* 0: any */
	int64_t since_ms; /* 0: none */
	hum_grep grep;
} filter;

typedef struct client {
	ev_io rio, wio;
	struct hum_api *api;
	struct client *prev, *next;
	int fd;
	char *in;
	size_t in_off, in_len, in_cap, scan;
	hum_buf out;
	size_t out_off;
	bool eof, closing, broken, busy, following, follow_all, reading, writing;
	bool streaming;   /* a logs answer is being produced slice by slice */
	ev_tstamp active; /* last byte in or out, or request answered */
	uint32_t cmd_id;
	char idraw[HUM_REQ_ID_MAX];
	size_t idlen;
	cursor *cur;
	size_t ncur, capcur;
	filter flt;
	uint64_t dropped;
	/* watch.c: what this watcher was last sent (id order), and a spare */
	bool watching;
	uint64_t watch_gen;
	struct hum_wseen *seen, *seen2;
	size_t nseen, capseen, capseen2;
	/* a logs answer being streamed (c->streaming) */
	size_t sent, wanted; /* lines sent; lines it should have */
	bool then_follow;
} client;

typedef struct lref { uint64_t seq; size_t cost; } lref;
typedef struct rec {
	uint64_t seq;
	int64_t time_ms;
	const char *name; /* valid inside the read section */
	size_t off, len;
	uint8_t stream, flags;
} rec;

struct hum_api {
	/* set before the thread starts, then read-only */
	hum_store *st;
	hum_reader *rd;
	struct ev_loop *main_loop, *loop;
	hum_api_command_fn on_command;
	void *ud;
	size_t max_request, max_output, max_clients;
	double follow_interval, idle_timeout;
	uid_t uid;
	int listen_fd, lock_fd;
	dev_t sock_dev;
	ino_t sock_ino;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
	char tmpdir[sizeof(((struct sockaddr_un *)0)->sun_path)]; /* our mkdtemp dir, or "" */
	char record[4200];    /* .hum/hum.sock.path when written, or "" */
	pthread_t thread;
	bool thread_started;

	ev_async cmd_async;   /* on main_loop */
	ev_async reply_async; /* on loop */
	ev_async stop_async;  /* on loop */
	msg *cmds;            /* MPSC stack: API thread -> loop thread */
	msg *replies;         /* MPSC stack: any -> API thread */

	/* API thread only */
	ev_io accept_w;
	ev_timer accept_retry;
	ev_timer follow_timer;
	ev_timer idle_timer;
	client *clients;
	size_t nclients, nfollow;
	uint32_t next_cmd;
	hum_buf bytes;      /* scratch: copied log lines */
	lref *refs;
	size_t nref, capref;
	rec *recs;
	size_t nrec, caprec;
	const hum_snap **sels;
	size_t nsel, capsel;
	hum_entry **ents;
	size_t capents;
	uint64_t *hz;
	size_t caphz;
	uint8_t *mark;
	size_t capmark;

	ev_idle stream_idle; /* streamed answers that used up their time slice */
	size_t nstream;      /* clients with c->streaming */
	size_t total_unsent; /* all clients' unsent bytes, as of the last count */
	bool stopping;       /* set (atomic) by hum_api_stop: long reads give up */

	hum_api_stats stats; /* API thread writes (relaxed atomics) */
};

#define STAT_INC(a, f) __atomic_fetch_add(&(a)->stats.f, 1, __ATOMIC_RELAXED)

/* server.c: helpers */
int64_t hum_api_now_ms_(void);
bool hum_api_grow_(void **p, size_t *cap, size_t need, size_t elem);
void hum_api_seterr_(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
void hum_api_scratch_free_(hum_api *a); /* the reads' scratch arrays */

/* dispatch.c: one request line (without its newline), answered into c->out
 * or handed to the loop thread; the request path, which the fuzz target
 * drives without a socket */
void hum_api_handle_line_(client *c, const char *line, size_t len);
/* dispatch.c: the queues' wakeups: cmd_async (loop thread) hands queued
 * commands to on_command, reply_async (API thread) puts each reply in its
 * client's output */
void hum_api_cmd_cb_(struct ev_loop *loop, ev_async *w, int revents);
void hum_api_reply_cb_(struct ev_loop *loop, ev_async *w, int revents);
void hum_api_queues_free_(hum_api *a); /* what is still queued, once the thread ended */

/* client.c: client output */
static inline size_t hum_api_unsent_(const client *c) { return c->out.len - c->out_off; }
void hum_api_put_id_(hum_buf *b, const char *id, size_t idlen);
void hum_api_send_error_(client *c, const char *id, size_t idlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
void hum_api_flush_out_(client *c); /* sends what it can without blocking */
void hum_api_cursors_free_(client *c);
void hum_api_filter_free_(filter *f);
void hum_api_client_release_(client *c);
void hum_api_client_free_(client *c); /* closes the connection, frees c */
bool hum_api_settle_(client *c); /* flush, then close or resume reading */
/* The client's answer cannot be completed (broken, or its output buffer
 * ran out of memory): settle closes it instead of sending. */
bool hum_api_answer_failed_(const client *c);
size_t hum_api_count_unsent_(hum_api *a); /* all clients' unsent bytes; sets a->total_unsent */

/* client.c: a client's next step */
void hum_api_process_input_(client *c); /* every complete request that may be handled now */
/* after hum_api_stream_ stopped (for time: for_time), who goes on with it */
void hum_api_stream_later_(client *c, bool for_time);
/* after output drained or time passed: more of its streamed answer, or its
 * next requests */
void hum_api_resume_(client *c);

/* client.c: the watchers hum_api_start sets up on the API thread's loop */
void hum_api_accept_cb_(struct ev_loop *loop, ev_io *w, int revents);
void hum_api_accept_retry_cb_(struct ev_loop *loop, ev_timer *w, int revents);
void hum_api_idle_cb_(struct ev_loop *loop, ev_timer *w, int revents);
void hum_api_stream_idle_cb_(struct ev_loop *loop, ev_idle *w, int revents);

/* Reads (read_procs.c, read_logs.c, follow.c, watch.c): the requests the
 * API thread answers from the store, without the loop thread.
 *
 * Every read runs inside hum_read_begin/end on the API thread's own reader
 * record: the world snapshot, process snapshots and log lines are encoded or
 * copied into the client's output inside the section, so nothing read from
 * the store is used after it ends.  The only allocations are the growth of
 * the client's buffer and of scratch arrays in hum_api that every request
 * reuses (and PCRE2's compiled pattern for a --grep). */
#define SLICE_TIME 0.01     /* s: one slice of a streamed answer or a poll */

/* read_procs.c */
void hum_api_put_proc_(hum_buf *b, const hum_snap *s); /* one PROC object */
void hum_api_do_ps_(client *c, const char *id, size_t idlen);
void hum_api_do_status_(client *c, const hum_req *r);
/* a->sels from r's selectors (status, logs); sys: hum's own log as a name */
int hum_api_select_procs_(hum_api *a, const hum_world *w, const hum_req *r, bool *sys,
			  char *err, size_t errlen);

/* read_logs.c: the logs answer */
int hum_api_add_cursor_(client *c, uint32_t id, const char *name, uint64_t last, uint64_t ord);
void hum_api_do_logs_(client *c, const hum_req *r);
/* more of a streamed logs answer, until the client has PAUSE_OUT unsent,
 * all clients TOTAL_OUT, or a slice of time is used; true if it stopped
 * only for time (call again soon) */
bool hum_api_stream_(client *c);

/* read_logs.c: a log line's way into an answer, for follow.c too */
void hum_api_put_line_(hum_buf *b, uint64_t seq, int64_t t, const char *name, int stream, int flags,
		       const char *data, size_t len); /* one LINE object */
bool hum_api_keep_line_(hum_api *a, const hum_line *l, const char *name); /* into a->recs, a->bytes */
int hum_api_cmp_rec_(const void *x, const void *y); /* qsort: a->recs by seq */
void hum_api_fail_stream_(client *c, const char *err); /* error that ends an answer */

static inline double hum_api_mono_(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* 1: the line passes the filter, 0: it does not, -1: the grep hit a bound
 * (message in err). */
static inline int hum_api_line_matches_(filter *f, const hum_line *l, char *err, size_t errlen)
{
	if (f->stream && l->stream != f->stream)
		return 0;
	if (f->since_ms && l->time_ms < f->since_ms)
		return 0;
	return hum_grep_match(&f->grep, l->data, l->len, err, errlen);
}

/* Empties the scratch records (a->recs, a->bytes), keeping their memory. */
static inline void hum_api_scratch_reset_(hum_api *a)
{
	a->nrec = 0;
	a->bytes.len = 0;
	a->bytes.oom = false;
}

/* follow.c */
void hum_api_end_follow_(client *c, const char *reason);
void hum_api_follow_poll_(hum_api *a, client *c); /* one poll of one follower */
void hum_api_follow_cb_(struct ev_loop *loop, ev_timer *w, int revents);

/* watch.c */
void hum_api_do_watch_(client *c, const hum_req *r);
void hum_api_watch_poll_(hum_api *a, client *c);
void hum_api_watch_free_(client *c);

/* path.c */
int hum_api_socket_path_(const char *real, char *out, size_t outlen, bool *fallback);
/* fills a->path (and a->tmpdir, a->record) for a project whose primary path
 * does not fit in sun_path */
int hum_api_fallback_place_(hum_api *a, const char *humdir, const char *real, char *err, size_t errlen);
/* 0 if fd is a regular file owned by us with one link, else -EPERM */
int hum_api_own_file_(int fd);
int hum_api_secure_dir_(const char *dir, bool strict, char *err, size_t errlen);
int hum_api_probe_existing_(const char *path, bool *stale, char *err, size_t errlen);
int hum_api_take_lock_(const char *humdir, int *lock_fd, char *err, size_t errlen);
int hum_api_open_listener_(hum_api *a, char *err, size_t errlen);
void hum_api_unlink_ours_(hum_api *a);

#endif

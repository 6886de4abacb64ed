/*
 * api.c — the control socket: socket setup, the API thread, per-client
 * buffers, request parsing, read responses from the store, the command and
 * reply queues between the API thread and the loop thread.
 *
 * Threads and ownership.
 *   - hum_api_start/stop and the command ev_async run on the loop thread.
 *   - Everything else (accept, clients, parsing, reads, follow polls) runs
 *     on the API thread, in its own ev_loop; clients and scratch buffers are
 *     owned by it alone.
 *   - Two lock-free MPSC stacks cross the threads: `cmds` (API thread ->
 *     loop thread) and `replies` (any thread -> API thread).  A producer
 *     pushes with a CAS (release), the consumer takes the whole stack with
 *     an exchange (acquire) and reverses it, so there is no ABA and no lock.
 *     ev_async_send wakes the consumer; libev coalesces wakeups, which is fine
 *     because the consumer always takes everything.
 *
 * Reads.  ps/status/logs/follow run inside hum_read_begin/end on the API
 * thread's own reader record: the world snapshot, process snapshots and log
 * lines are copied (encoded) into the client's output buffer inside the
 * section, so nothing read from the store is used after it ends.  The only
 * allocations are the growth of the client's buffer and of scratch arrays
 * that are reused by every request (and regcomp for a --grep that is a
 * regular expression rather than plain text).
 *
 * Wire format (newline-delimited JSON; every response carries "ok"):
 *   {"id":1,"cmd":"ps"}
 *      -> {"ok":true,"id":1,"generation":G,"time":T,"procs":[PROC...]}
 *   {"cmd":"status","name":"web"}  (or "names":[...])
 *      -> {"ok":true,"time":T,"procs":[PROC...]}
 *   {"cmd":"logs","names":[...],"n":100,"grep":"RE","since":T,"stream":"err",
 *    "follow":true}
 *      -> LINE... then {"ok":true,"end":true,"lines":N[,"truncated":K]}
 *         with follow, LINE... until {"ok":true,"end":true,"reason":R}
 *         (R: "removed" or "server stopping"); a follower too slow to read
 *         gets {"dropped":N} in place of lines it missed.
 *   {"cmd":"ping"} -> {"ok":true,"pong":true,"pid":P}
 *   start/stop/restart/signal/down/eval: forwarded to the loop thread as
 *   the raw request line; the reply comes from hum.server (Lua).
 *   Any error: {"ok":false[,"id":..],"error":"message"}.
 *   PROC = {"name","id","kind","state","pid","restarts","exit_code","signal",
 *           "started_at","ended_at","changed_at","group","groups","ready",
 *           "reason","lines","bytes","dropped","first_seq","last_seq",
 *           "generation"}
 *   LINE = {"seq":N,"time":T,"name":S,"stream":"out"|"err"|"sys","line":S
 *           [,"cont":true]}
 *   Times are seconds since the epoch with millisecond precision; absent
 *   values are null.  A request line may be up to 1 MiB.
 *
 * Bounds (a client can never block the API thread, the loop thread or other
 * clients; the socket is non-blocking and every wait is a watcher):
 *   - requests are answered in order, one at a time per client; while a
 *     command is with the loop thread the client's later requests wait;
 *   - a client that does not read stops being read once 256 KiB of its
 *     answers are unsent (backpressure: its requests stay in the kernel), so
 *     its buffer holds at most that plus one response;
 *   - a logs backlog is cut to what fits in max_output (16 MiB), oldest
 *     lines first, and says so ("truncated": K);
 *   - a follower's unsent output is bounded by max_output: lines beyond it,
 *     and lines its process wrote faster than the ring keeps them between
 *     two polls (every follow_interval, 50 ms), are counted and reported
 *     with {"dropped":N} once it reads again;
 *   - a request line over max_request gets an error, then the connection is
 *     closed; EOF in the middle of a line gets an error; an unparseable or
 *     unknown request gets an error and the connection stays usable.
 */
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <limits.h>
#include <pthread.h>
#include <regex.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "api.h"
#include "atomic.h"
#include "json.h"

#define PAUSE_OUT (256u * 1024)   /* stop taking requests above this unsent */
#define READ_CHUNK 65536
#define READ_BUDGET (256u * 1024) /* bytes read per callback: fairness */
#define ID_MAX 128                /* bytes of a request's "id" token */

typedef struct msg {
	struct msg *next;
	uint32_t id;
	size_t len;
	char data[];
} msg;

typedef struct cursor {
	uint32_t id;
	bool gone;
	uint64_t last; /* highest seq of this process already handled */
	uint64_t ord;  /* about how many of its lines were handled (ordinal of
			* `last` among all lines it ever logged): lines the ring
			* dropped beyond it were never seen, and are reported */
	char *name;
} cursor;

typedef struct filter {
	int stream;       /* 0: any */
	int64_t since_ms; /* 0: none */
	bool has_re, has_needle;
	regex_t re;
	char *needle;     /* plain-text --grep: memmem */
	size_t needlen;
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
	uint32_t cmd_id;
	char idraw[ID_MAX];
	size_t idlen;
	cursor *cur;
	size_t ncur, capcur;
	filter flt;
	uint64_t dropped;
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
	double follow_interval;
	uid_t uid;
	int listen_fd, lock_fd;
	dev_t sock_dev;
	ino_t sock_ino;
	char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
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
	client *clients;
	size_t nclients, nfollow;
	uint32_t next_cmd;
	hum_jarena *arena;
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

	hum_api_stats stats; /* API thread writes (relaxed atomics) */
};

#define STAT_INC(a, f) __atomic_fetch_add(&(a)->stats.f, 1, __ATOMIC_RELAXED)

/* Small helpers ------------------------------------------------------------- */

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static bool grow(void **p, size_t *cap, size_t need, size_t elem)
{
	if (need <= *cap)
		return true;
	size_t n = *cap ? *cap : 16;
	while (n < need)
		n *= 2;
	void *q = realloc(*p, n * elem);
	if (!q)
		return false;
	*p = q;
	*cap = n;
	return true;
}


static void seterr(char *err, size_t n, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void seterr(char *err, size_t n, const char *fmt, ...)
{
	if (!n)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, n, fmt, ap);
	va_end(ap);
}

/* MPSC stacks --------------------------------------------------------------- */

static void mpsc_push(msg **head, msg *m)
{
	msg *h = __atomic_load_n(head, __ATOMIC_RELAXED);
	do {
		m->next = h;
		/* Release: m's contents are visible before m is.  (acq_rel only
		 * so TSan sees the chain of earlier pushes as one sequence.) */
	} while (!__atomic_compare_exchange_n(head, &h, m, true, __ATOMIC_ACQ_REL, __ATOMIC_RELAXED));
}

/* Takes every message, oldest first. */
static msg *mpsc_take(msg **head)
{
	/* Acquire: pairs with the pushes' release. */
	msg *m = __atomic_exchange_n(head, NULL, __ATOMIC_ACQUIRE), *r = NULL;
	while (m) {
		msg *n = m->next;
		m->next = r;
		r = m;
		m = n;
	}
	return r;
}

static msg *msg_new(uint32_t id, const char *data, size_t len)
{
	msg *m = malloc(sizeof *m + len + 1);
	if (!m)
		return NULL;
	m->next = NULL;
	m->id = id;
	m->len = len;
	memcpy(m->data, data, len);
	m->data[len] = 0;
	return m;
}

/* Paths ---------------------------------------------------------------------- */

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;
	for (; *s; s++) {
		h ^= (unsigned char)*s;
		h *= 0x100000001b3ULL;
	}
	return h;
}

static void fallback_dir(char *out, size_t n)
{
	const char *x = getenv("XDG_RUNTIME_DIR");
	if (x && x[0] == '/' && strlen(x) + 32 < sizeof(((struct sockaddr_un *)0)->sun_path))
		snprintf(out, n, "%s/hum", x);
	else
		snprintf(out, n, "/tmp/hum-%u", (unsigned)geteuid());
}

static int socket_path(const char *real, char *out, size_t outlen, bool *fallback)
{
	size_t max = sizeof(((struct sockaddr_un *)0)->sun_path);
	int k = snprintf(out, outlen, "%s/.hum/hum.sock", strcmp(real, "/") ? real : "");
	*fallback = false;
	if (k > 0 && (size_t)k < max && (size_t)k < outlen)
		return 0;
	char dir[PATH_MAX];
	fallback_dir(dir, sizeof dir);
	k = snprintf(out, outlen, "%s/%016llx.sock", dir, (unsigned long long)fnv1a(real));
	*fallback = true;
	if (k < 0 || (size_t)k >= max || (size_t)k >= outlen)
		return -ENAMETOOLONG;
	return 0;
}

int hum_api_socket_path(const char *project_dir, char *out, size_t outlen)
{
	char real[PATH_MAX];
	if (!realpath(project_dir, real))
		return -errno;
	bool fb;
	return socket_path(real, out, outlen, &fb);
}

/* mkdir 0700 if missing; then it must be a directory (not a symlink) owned
 * by us; `strict`: refuse group/other permissions (a shared /tmp), else fix
 * them. */
static int secure_dir(const char *dir, bool strict, char *err, size_t errlen)
{
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		int e = errno;
		seterr(err, errlen, "cannot create %s: %s", dir, strerror(e));
		return -e;
	}
	struct stat sb;
	if (lstat(dir, &sb) < 0) {
		int e = errno;
		seterr(err, errlen, "cannot check %s: %s", dir, strerror(e));
		return -e;
	}
	if (!S_ISDIR(sb.st_mode) || sb.st_uid != geteuid()) {
		seterr(err, errlen, "%s is not a directory owned by uid %u; refusing to use it", dir,
		       (unsigned)geteuid());
		return -EPERM;
	}
	if ((sb.st_mode & 0777) != 0700) {
		if (strict) {
			seterr(err, errlen, "%s is accessible to other users (mode %03o); refusing to use it",
			       dir, (unsigned)(sb.st_mode & 0777));
			return -EPERM;
		}
		if (chmod(dir, 0700) < 0) {
			int e = errno;
			seterr(err, errlen, "cannot chmod %s: %s", dir, strerror(e));
			return -e;
		}
	}
	return 0;
}

int hum_api_state_dir(const char *project_dir, char *out, size_t outlen, char *err, size_t errlen)
{
	char real[PATH_MAX];
	if (!realpath(project_dir, real)) {
		int e = errno;
		seterr(err, errlen, "cannot resolve %s: %s", project_dir, strerror(e));
		return -e;
	}
	int k = snprintf(out, outlen, "%s/.hum", strcmp(real, "/") ? real : "");
	if (k < 0 || (size_t)k >= outlen) {
		seterr(err, errlen, "path too long: %s/.hum", real);
		return -ENAMETOOLONG;
	}
	return secure_dir(out, false, err, errlen);
}

/* Clients: output ------------------------------------------------------------ */

static size_t unsent(const client *c) { return c->out.len - c->out_off; }

static void put_id(hum_buf *b, const char *id, size_t idlen)
{
	if (idlen) {
		hum_buf_put(b, ",\"id\":", 6);
		hum_buf_put(b, id, idlen);
	}
}

static void send_error(client *c, const char *id, size_t idlen, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static void send_error(client *c, const char *id, size_t idlen, const char *fmt, ...)
{
	char text[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	hum_buf_put(&c->out, "{\"ok\":false", 11);
	put_id(&c->out, id, idlen);
	hum_buf_put(&c->out, ",\"error\":", 9);
	hum_json_cstr(&c->out, text);
	hum_buf_put(&c->out, "}\n", 2);
	STAT_INC(c->api, errors);
}

/* Writes what it can without blocking; arms the write watcher for the rest. */
static void flush_out(client *c)
{
	hum_api *a = c->api;
	if (c->out.oom) {
		c->broken = true; /* a response could not be built; do not send half */
		return;
	}
	while (unsent(c) && !c->broken) {
		ssize_t n = send(c->fd, c->out.p + c->out_off, unsent(c), MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n > 0) {
			c->out_off += (size_t)n;
		} else if (n < 0 && errno == EINTR) {
			continue;
		} else if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			break;
		} else {
			c->broken = true;
		}
	}
	if (c->out_off == c->out.len) {
		c->out_off = c->out.len = 0;
		/* a burst (a large logs response) need not keep its memory */
		if (c->out.cap > (4u << 20)) {
			free(c->out.p);
			c->out.p = NULL;
			c->out.cap = 0;
		}
	} else if (c->out_off > c->out.len / 2 && c->out_off > 65536) {
		memmove(c->out.p, c->out.p + c->out_off, unsent(c));
		c->out.len -= c->out_off;
		c->out_off = 0;
	}
	bool want = unsent(c) && !c->broken;
	if (want && !c->writing)
		ev_io_start(a->loop, &c->wio);
	else if (!want && c->writing)
		ev_io_stop(a->loop, &c->wio);
	c->writing = want;
}

static void cursors_free(client *c)
{
	for (size_t i = 0; i < c->ncur; i++)
		free(c->cur[i].name);
	free(c->cur);
	c->cur = NULL;
	c->ncur = c->capcur = 0;
}

static void filter_free(filter *f)
{
	if (f->has_re)
		regfree(&f->re);
	free(f->needle);
	memset(f, 0, sizeof *f);
}

static void client_free(client *c)
{
	hum_api *a = c->api;
	ev_io_stop(a->loop, &c->rio);
	ev_io_stop(a->loop, &c->wio);
	close(c->fd);
	if (c->prev)
		c->prev->next = c->next;
	else
		a->clients = c->next;
	if (c->next)
		c->next->prev = c->prev;
	a->nclients--;
	if (c->following)
		a->nfollow--;
	cursors_free(c);
	filter_free(&c->flt);
	free(c->in);
	hum_buf_free(&c->out);
	free(c);
	__atomic_store_n(&a->stats.clients, (uint32_t)a->nclients, __ATOMIC_RELAXED);
}

/* Clients: input ---------------------------------------------------------------- */

static void handle_line(client *c, char *line, size_t len);

static bool all_space(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (s[i] != ' ' && s[i] != '\t' && s[i] != '\r' && s[i] != '\n')
			return false;
	return true;
}

/* Handles every complete request that may be handled now. */
static void process_input(client *c)
{
	hum_api *a = c->api;
	while (!c->busy && !c->following && !c->closing && !c->broken && unsent(c) <= PAUSE_OUT) {
		char *start = c->in + c->in_off;
		size_t avail = c->in_len - c->in_off;
		if (c->scan < c->in_off)
			c->scan = c->in_off;
		char *nl = c->in_len > c->scan ? memchr(c->in + c->scan, '\n', c->in_len - c->scan) : NULL;
		if (!nl) {
			c->scan = c->in_len;
			if (avail > a->max_request) {
				send_error(c, NULL, 0, "request too large (more than %zu bytes)", a->max_request);
				c->closing = true;
				c->in_off = c->in_len;
			} else if (c->eof && avail) {
				if (!all_space(start, avail))
					send_error(c, NULL, 0, "truncated request (no newline before the end of input)");
				c->in_off = c->in_len;
			}
			break;
		}
		size_t len = (size_t)(nl - start);
		c->in_off += len + 1;
		c->scan = c->in_off;
		if (len > a->max_request) {
			send_error(c, NULL, 0, "request too large (more than %zu bytes)", a->max_request);
			c->closing = true;
			c->in_off = c->in_len;
			break;
		}
		if (all_space(start, len))
			continue;
		*nl = 0;
		STAT_INC(a, requests);
		handle_line(c, start, len);
	}
	if (c->in_off == c->in_len) {
		c->in_off = c->in_len = c->scan = 0;
	} else if (c->in_off > 0 && c->in_off >= c->in_cap / 2) {
		memmove(c->in, c->in + c->in_off, c->in_len - c->in_off);
		c->in_len -= c->in_off;
		c->scan -= c->in_off;
		c->in_off = 0;
	}
	if (c->eof && !c->busy && !c->following && c->in_len == c->in_off)
		c->closing = true;
}

/* Flushes, adjusts watchers, and frees the client when it is finished or
 * broken.  Returns false if c is gone.  Every callback ends with this. */
static bool settle(client *c)
{
	hum_api *a = c->api;
	if (!c->broken)
		flush_out(c);
	if (c->broken || (c->closing && !unsent(c))) {
		client_free(c);
		return false;
	}
	bool want = !c->eof && !c->closing && !c->following && unsent(c) <= PAUSE_OUT &&
		    c->in_len - c->in_off < a->max_request + READ_CHUNK;
	if (want && !c->reading)
		ev_io_start(a->loop, &c->rio);
	else if (!want && c->reading)
		ev_io_stop(a->loop, &c->rio);
	c->reading = want;
	return true;
}

static void read_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	client *c = (client *)((char *)w - offsetof(client, rio));
	hum_api *a = c->api;
	size_t got = 0;
	while (got < READ_BUDGET && c->in_len - c->in_off < a->max_request + READ_CHUNK) {
		if (c->in_cap - c->in_len < READ_CHUNK) {
			void *p = c->in;
			if (!grow(&p, &c->in_cap, c->in_len + READ_CHUNK, 1)) {
				c->broken = true;
				break;
			}
			c->in = p;
		}
		ssize_t n = recv(c->fd, c->in + c->in_len, c->in_cap - c->in_len, 0);
		if (n > 0) {
			c->in_len += (size_t)n;
			got += (size_t)n;
		} else if (n == 0) {
			c->eof = true;
			break;
		} else if (errno == EINTR) {
			continue;
		} else if (errno == EAGAIN || errno == EWOULDBLOCK) {
			break;
		} else {
			c->broken = true;
			break;
		}
	}
	if (!c->broken)
		process_input(c);
	settle(c);
}

static void write_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	client *c = (client *)((char *)w - offsetof(client, wio));
	flush_out(c);
	if (unsent(c) <= PAUSE_OUT)
		process_input(c);
	settle(c);
}

/* Accepting --------------------------------------------------------------------- */

static void refuse(hum_api *a, int fd, const char *text)
{
	hum_buf b = { 0 };
	hum_buf_puts(&b, "{\"ok\":false,\"error\":");
	hum_json_cstr(&b, text);
	hum_buf_puts(&b, "}\n");
	if (!b.oom) {
		ssize_t n;
		do
			n = send(fd, b.p, b.len, MSG_NOSIGNAL | MSG_DONTWAIT);
		while (n < 0 && errno == EINTR);
	}
	hum_buf_free(&b);
	/* No half-read requests: tell the peer we are done before closing. */
	shutdown(fd, SHUT_WR);
	close(fd);
	STAT_INC(a, refused);
}

static void accept_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	hum_api *a = w->data;
	for (int k = 0; k < 64; k++) {
		int fd = accept4(a->listen_fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
				/* Out of descriptors: stop accepting for a moment instead
				 * of spinning on a listener that stays readable. */
				ev_io_stop(loop, &a->accept_w);
				ev_timer_set(&a->accept_retry, 0.1, 0.);
				ev_timer_start(loop, &a->accept_retry);
			}
			return;
		}
		struct ucred cr;
		socklen_t cl = sizeof cr;
		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cr, &cl) < 0) {
			refuse(a, fd, "cannot check the peer's credentials");
			continue;
		}
		if (cr.uid != a->uid) {
			char text[160];
			snprintf(text, sizeof text, "permission denied: uid %u may not use this hum (owner uid %u)",
				 (unsigned)cr.uid, (unsigned)a->uid);
			refuse(a, fd, text);
			continue;
		}
		if (a->nclients >= a->max_clients) {
			refuse(a, fd, "too many clients");
			continue;
		}
		client *c = calloc(1, sizeof *c);
		if (!c) {
			close(fd);
			continue;
		}
		c->api = a;
		c->fd = fd;
		ev_io_init(&c->rio, read_cb, fd, EV_READ);
		ev_io_init(&c->wio, write_cb, fd, EV_WRITE);
		c->next = a->clients;
		if (a->clients)
			a->clients->prev = c;
		a->clients = c;
		a->nclients++;
		ev_io_start(loop, &c->rio);
		c->reading = true;
		STAT_INC(a, accepted);
		__atomic_store_n(&a->stats.clients, (uint32_t)a->nclients, __ATOMIC_RELAXED);
	}
}

static void accept_retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_api *a = w->data;
	ev_io_start(loop, &a->accept_w);
}

/* Reads: procs ------------------------------------------------------------------- */

static const char *stream_name(int s)
{
	return s == HUM_STREAM_ERR ? "err" : s == HUM_STREAM_SYS ? "sys" : "out";
}

static void put_nullable_ms(hum_buf *b, int64_t ms)
{
	if (ms > 0)
		hum_json_ms(b, ms);
	else
		hum_buf_put(b, "null", 4);
}

static void put_proc(hum_buf *b, const hum_snap *s)
{
	hum_buf_puts(b, "{\"name\":");
	hum_json_cstr(b, s->name);
	hum_buf_puts(b, ",\"id\":");
	hum_json_u64(b, s->id);
	hum_buf_puts(b, s->kind == HUM_TASK ? ",\"kind\":\"task\"" : ",\"kind\":\"service\"");
	hum_buf_puts(b, ",\"state\":");
	hum_json_cstr(b, hum_state_name((hum_state)s->state));
	hum_buf_puts(b, ",\"pid\":");
	if (s->pid > 0)
		hum_json_i64(b, s->pid);
	else
		hum_buf_puts(b, "null");
	hum_buf_puts(b, ",\"restarts\":");
	hum_json_u64(b, s->restarts);
	hum_buf_puts(b, ",\"exit_code\":");
	if (s->exit_code >= 0)
		hum_json_i64(b, s->exit_code);
	else
		hum_buf_puts(b, "null");
	hum_buf_puts(b, ",\"signal\":");
	const char *sig = s->term_signal > 0 ? sigabbrev_np(s->term_signal) : NULL;
	if (sig) {
		hum_json_cstr(b, sig);
	} else if (s->term_signal > 0) {
		hum_json_i64(b, s->term_signal);
	} else {
		hum_buf_puts(b, "null");
	}
	hum_buf_puts(b, ",\"started_at\":");
	put_nullable_ms(b, s->started_at_ms);
	hum_buf_puts(b, ",\"ended_at\":");
	put_nullable_ms(b, s->ended_at_ms);
	hum_buf_puts(b, ",\"changed_at\":");
	put_nullable_ms(b, s->changed_at_ms);
	const char *g = s->groups ? s->groups : "";
	hum_buf_puts(b, ",\"group\":");
	if (*g) {
		const char *comma = strchr(g, ',');
		hum_json_str(b, g, comma ? (size_t)(comma - g) : strlen(g));
	} else {
		hum_buf_puts(b, "null");
	}
	hum_buf_puts(b, ",\"groups\":[");
	for (const char *p = g; *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		if (p != g)
			hum_buf_putc(b, ',');
		hum_json_str(b, p, n);
		p += n + (comma ? 1 : 0);
	}
	hum_buf_puts(b, s->ready ? "],\"ready\":true" : "],\"ready\":false");
	hum_buf_puts(b, ",\"reason\":");
	hum_json_cstr(b, s->reason ? s->reason : "");
	hum_buf_puts(b, ",\"lines\":");
	hum_json_u64(b, s->lines);
	hum_buf_puts(b, ",\"bytes\":");
	hum_json_u64(b, s->bytes);
	hum_buf_puts(b, ",\"dropped\":");
	hum_json_u64(b, s->dropped);
	hum_buf_puts(b, ",\"first_seq\":");
	hum_json_u64(b, s->log_first_seq);
	hum_buf_puts(b, ",\"last_seq\":");
	hum_json_u64(b, s->log_last_seq);
	hum_buf_puts(b, ",\"generation\":");
	hum_json_u64(b, s->generation);
	hum_buf_putc(b, '}');
}

static void do_ps(client *c, const char *id, size_t idlen)
{
	hum_api *a = c->api;
	hum_buf *b = &c->out;
	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	hum_buf_puts(b, "{\"ok\":true");
	put_id(b, id, idlen);
	hum_buf_puts(b, ",\"generation\":");
	hum_json_u64(b, w ? w->generation : 0);
	hum_buf_puts(b, ",\"time\":");
	hum_json_ms(b, now_ms());
	hum_buf_puts(b, ",\"procs\":[");
	for (uint32_t i = 0; w && i < w->count; i++) {
		if (i)
			hum_buf_putc(b, ',');
		put_proc(b, w->procs[i]);
	}
	hum_buf_puts(b, "]}\n");
	hum_read_end(a->rd);
}

/* Selection: names, replicas (web -> web.1), groups, globs (fnmatch). */
static bool in_groups(const char *groups, const char *sel, bool glob)
{
	for (const char *p = groups ? groups : ""; *p;) {
		const char *comma = strchr(p, ',');
		size_t n = comma ? (size_t)(comma - p) : strlen(p);
		char g[256];
		if (n < sizeof g) {
			memcpy(g, p, n);
			g[n] = 0;
			if (glob ? fnmatch(sel, g, 0) == 0 : strcmp(sel, g) == 0)
				return true;
		}
		p += n + (comma ? 1 : 0);
	}
	return false;
}

static bool matches(const char *sel, const hum_snap *s)
{
	if (strcmp(sel, "*") == 0 || strcmp(sel, "all") == 0 || strcmp(sel, s->name) == 0)
		return true;
	size_t k = strlen(sel);
	if (strncmp(s->name, sel, k) == 0 && s->name[k] == '.' && s->name[k + 1]) {
		const char *d = s->name + k + 1;
		while (*d >= '0' && *d <= '9')
			d++;
		if (!*d)
			return true; /* a replica of sel */
	}
	bool glob = strpbrk(sel, "*?[") != NULL;
	if (glob && fnmatch(sel, s->name, 0) == 0)
		return true;
	return in_groups(s->groups, sel, glob);
}

/* Fills a->sels (in id order) from the selectors in `names` (a string or an
 * array of strings; NULL or empty: every process).  Inside a read section.
 * Returns 0, or -1 with a message in err. */
static int select_procs(hum_api *a, const hum_world *w, const hum_jval *names, char *err, size_t errlen)
{
	uint32_t count = w ? w->count : 0;
	a->nsel = 0;
	if (!grow((void **)&a->mark, &a->capmark, count + 1, 1) ||
	    !grow((void **)&a->sels, &a->capsel, count + 1, sizeof *a->sels)) {
		seterr(err, errlen, "out of memory");
		return -1;
	}
	bool all = !names || (names->type == HUM_JARR && names->count == 0);
	memset(a->mark, all, count);
	if (!all) {
		const hum_jval *one = names->type == HUM_JSTR ? names : names->child;
		for (const hum_jval *v = one; v; v = names->type == HUM_JSTR ? NULL : v->next) {
			if (v->type != HUM_JSTR) {
				seterr(err, errlen, "names must be strings");
				return -1;
			}
			bool any = false;
			for (uint32_t i = 0; i < count; i++) {
				if (matches(v->str, w->procs[i])) {
					a->mark[i] = 1;
					any = true;
				}
			}
			if (!any) {
				seterr(err, errlen, "no process matches \"%s\"", v->str);
				return -1;
			}
		}
	}
	for (uint32_t i = 0; i < count; i++)
		if (a->mark[i])
			a->sels[a->nsel++] = w->procs[i];
	return 0;
}

static const hum_jval *names_field(const hum_jval *req)
{
	const hum_jval *v = hum_json_get(req, "names");
	if (!v || v->type == HUM_JNULL)
		v = hum_json_get(req, "name");
	if (v && v->type == HUM_JNULL)
		v = NULL;
	return v;
}

static void do_status(client *c, const hum_jval *req, const char *id, size_t idlen)
{
	hum_api *a = c->api;
	const hum_jval *names = names_field(req);
	if (!names || (names->type != HUM_JSTR && names->type != HUM_JARR) ||
	    (names->type == HUM_JARR && names->count == 0)) {
		send_error(c, id, idlen, "status needs \"name\" (a string) or \"names\" (strings)");
		return;
	}
	char err[300];
	hum_buf *b = &c->out;
	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	if (select_procs(a, w, names, err, sizeof err) < 0) {
		hum_read_end(a->rd);
		send_error(c, id, idlen, "%s", err);
		return;
	}
	hum_buf_puts(b, "{\"ok\":true");
	put_id(b, id, idlen);
	hum_buf_puts(b, ",\"time\":");
	hum_json_ms(b, now_ms());
	hum_buf_puts(b, ",\"procs\":[");
	for (size_t i = 0; i < a->nsel; i++) {
		if (i)
			hum_buf_putc(b, ',');
		put_proc(b, a->sels[i]);
	}
	hum_buf_puts(b, "]}\n");
	hum_read_end(a->rd);
}

/* Reads: logs --------------------------------------------------------------------- */

static bool line_matches(const filter *f, const hum_line *l)
{
	if (f->stream && l->stream != f->stream)
		return false;
	if (f->since_ms && l->time_ms < f->since_ms)
		return false;
	if (f->has_needle)
		return memmem(l->data, l->len, f->needle, f->needlen) != NULL;
	if (f->has_re) {
		regmatch_t m[1];
		m[0].rm_so = 0;
		m[0].rm_eo = (regoff_t)l->len;
		return regexec(&f->re, l->data ? l->data : "", 1, m, REG_STARTEND) == 0;
	}
	return true;
}

static int filter_init(filter *f, const hum_jval *req, char *err, size_t errlen)
{
	memset(f, 0, sizeof *f);
	const hum_jval *v = hum_json_get(req, "stream");
	if (v && v->type != HUM_JNULL) {
		if (v->type == HUM_JSTR && strcmp(v->str, "out") == 0)
			f->stream = HUM_STREAM_OUT;
		else if (v->type == HUM_JSTR && strcmp(v->str, "err") == 0)
			f->stream = HUM_STREAM_ERR;
		else {
			seterr(err, errlen, "stream must be \"out\" or \"err\"");
			return -1;
		}
	}
	v = hum_json_get(req, "since");
	if (v && v->type != HUM_JNULL) {
		if (v->type != HUM_JNUM || !(v->num >= 0 && v->num <= 1e15)) {
			seterr(err, errlen, "since must be seconds since the epoch");
			return -1;
		}
		f->since_ms = (int64_t)(v->num * 1000.0);
	}
	v = hum_json_get(req, "grep");
	if (v && v->type != HUM_JNULL) {
		if (v->type != HUM_JSTR) {
			seterr(err, errlen, "grep must be a string");
			return -1;
		}
		if (v->len == 0)
			return 0;
		if (strlen(v->str) != v->len) {
			seterr(err, errlen, "grep must not contain NUL");
			return -1;
		}
		if (!strpbrk(v->str, ".[]()*+?{}|^$\\")) {
			/* plain text: a substring search, no regex engine */
			f->needle = strdup(v->str);
			if (!f->needle) {
				seterr(err, errlen, "out of memory");
				return -1;
			}
			f->needlen = v->len;
			f->has_needle = true;
			return 0;
		}
		int rc = regcomp(&f->re, v->str, REG_EXTENDED | REG_NOSUB);
		if (rc != 0) {
			char m[160];
			regerror(rc, &f->re, m, sizeof m);
			seterr(err, errlen, "bad grep pattern: %s", m);
			return -1;
		}
		f->has_re = true;
	}
	return 0;
}

/* Pass 1: which lines match (seq and estimated encoded size). */
typedef struct pass1 {
	hum_api *a;
	const filter *f;
	uint64_t horizon;
	size_t namelen;
	bool oom;
} pass1;

static int pass1_cb(const hum_line *l, void *ud)
{
	pass1 *p = ud;
	if (l->seq > p->horizon)
		return 1; /* committed after we started (visits are oldest first) */
	if (!line_matches(p->f, l))
		return 0;
	hum_api *a = p->a;
	if (!grow((void **)&a->refs, &a->capref, a->nref + 1, sizeof *a->refs)) {
		p->oom = true;
		return 1;
	}
	a->refs[a->nref].seq = l->seq;
	a->refs[a->nref].cost = l->len + p->namelen + 96;
	a->nref++;
	return 0;
}

/* Pass 2 (and follow): copy the chosen lines, or encode them directly. */
typedef struct pass2 {
	hum_api *a;
	client *c;
	const filter *f;
	uint64_t lo, hi;     /* seq range */
	const char *name;
	bool direct;         /* encode into c->out (one process: already ordered) */
	bool budget;         /* follow: count drops over max_output */
	uint64_t *cursor;    /* follow: last seq visited */
	size_t count;
	uint64_t visited;    /* lines up to hi, matching or not */
	bool oom;
} pass2;

static void put_line(hum_buf *b, uint64_t seq, int64_t t, const char *name, int stream, int flags,
		     const char *data, size_t len)
{
	hum_buf_puts(b, "{\"seq\":");
	hum_json_u64(b, seq);
	hum_buf_puts(b, ",\"time\":");
	hum_json_ms(b, t);
	hum_buf_puts(b, ",\"name\":");
	hum_json_cstr(b, name);
	hum_buf_puts(b, ",\"stream\":\"");
	hum_buf_puts(b, stream_name(stream));
	hum_buf_puts(b, "\",\"line\":");
	hum_json_str(b, data ? data : "", len);
	if (flags & HUM_LINE_CONT)
		hum_buf_puts(b, ",\"cont\":true");
	hum_buf_puts(b, "}\n");
}

static int pass2_cb(const hum_line *l, void *ud)
{
	pass2 *p = ud;
	if (l->seq > p->hi)
		return 1;
	p->visited++;
	if (p->cursor)
		*p->cursor = l->seq;
	if (l->seq < p->lo || !line_matches(p->f, l))
		return 0;
	hum_api *a = p->a;
	if (p->budget && unsent(p->c) + a->bytes.len + l->len > a->max_output) {
		p->c->dropped++;
		STAT_INC(a, dropped_lines);
		return 0;
	}
	p->count++;
	if (p->direct) {
		put_line(&p->c->out, l->seq, l->time_ms, p->name, l->stream, l->flags, l->data, l->len);
		return 0;
	}
	if (!grow((void **)&a->recs, &a->caprec, a->nrec + 1, sizeof *a->recs)) {
		p->oom = true;
		return 1;
	}
	rec *r = &a->recs[a->nrec++];
	r->seq = l->seq;
	r->time_ms = l->time_ms;
	r->name = p->name;
	r->stream = l->stream;
	r->flags = l->flags;
	r->off = a->bytes.len;
	r->len = l->len;
	hum_buf_put(&a->bytes, l->data, l->len);
	if (a->bytes.oom) {
		p->oom = true;
		return 1;
	}
	return 0;
}

static int cmp_ref_desc(const void *x, const void *y)
{
	uint64_t a = ((const lref *)x)->seq, b = ((const lref *)y)->seq;
	return a < b ? 1 : a > b ? -1 : 0;
}

static int cmp_rec(const void *x, const void *y)
{
	uint64_t a = ((const rec *)x)->seq, b = ((const rec *)y)->seq;
	return a < b ? -1 : a > b ? 1 : 0;
}

static void emit_recs(hum_api *a, client *c)
{
	if (a->nrec > 1)
		qsort(a->recs, a->nrec, sizeof *a->recs, cmp_rec);
	for (size_t i = 0; i < a->nrec; i++) {
		rec *r = &a->recs[i];
		put_line(&c->out, r->seq, r->time_ms, r->name, r->stream, r->flags, a->bytes.p + r->off, r->len);
	}
	a->nrec = 0;
	a->bytes.len = 0;
}

static int add_cursor(client *c, uint32_t id, const char *name, uint64_t last, uint64_t ord)
{
	if (!grow((void **)&c->cur, &c->capcur, c->ncur + 1, sizeof *c->cur))
		return -1;
	char *n = strdup(name);
	if (!n)
		return -1;
	c->cur[c->ncur++] = (cursor){ .id = id, .last = last, .ord = ord, .name = n };
	return 0;
}

static void do_logs(client *c, const hum_jval *req, const char *id, size_t idlen)
{
	hum_api *a = c->api;
	char err[300];
	const hum_jval *names = names_field(req);
	if (names && names->type != HUM_JSTR && names->type != HUM_JARR) {
		send_error(c, id, idlen, "names must be an array of strings");
		return;
	}
	const hum_jval *v = hum_json_get(req, "n");
	double nd = 100;
	if (v && v->type != HUM_JNULL) {
		/* range first: casting a huge double to an integer is undefined */
		if (v->type != HUM_JNUM || !(v->num >= 0 && v->num <= 1e15) || v->num != (double)(long long)v->num) {
			send_error(c, id, idlen, "n must be a whole number >= 0");
			return;
		}
		nd = v->num;
	}
	size_t n = nd > 1e9 ? (size_t)1e9 : (size_t)nd;
	v = hum_json_get(req, "follow");
	bool follow = v && v->type == HUM_JTRUE;
	if (v && v->type != HUM_JTRUE && v->type != HUM_JFALSE && v->type != HUM_JNULL) {
		send_error(c, id, idlen, "follow must be true or false");
		return;
	}
	filter f;
	if (filter_init(&f, req, err, sizeof err) < 0) {
		filter_free(&f);
		send_error(c, id, idlen, "%s", err);
		return;
	}
	bool plain = !f.stream && !f.since_ms && !f.has_re && !f.has_needle;
	size_t budget = unsent(c) < a->max_output ? a->max_output - unsent(c) : 0;

	hum_read_begin(a->rd);
	const hum_world *w = hum_store_world(a->st);
	if (select_procs(a, w, names, err, sizeof err) < 0) {
		hum_read_end(a->rd);
		filter_free(&f);
		send_error(c, id, idlen, "%s", err);
		return;
	}
	/* Entries and commit horizons, fixed for both passes and the follow
	 * cursors.  A ring's lines commit in seq order, so a line committed
	 * after its horizon was read has a larger seq: it is the follower's. */
	size_t nsel = a->nsel;
	bool oom = !grow((void **)&a->ents, &a->capents, nsel + 1, sizeof *a->ents) ||
		   !grow((void **)&a->hz, &a->caphz, nsel + 1, sizeof *a->hz);
	a->nref = a->nrec = 0;
	a->bytes.len = 0;
	a->bytes.oom = false;
	for (size_t i = 0; i < nsel && !oom; i++) {
		hum_entry *e = hum_store_lookup(a->st, a->sels[i]->name);
		a->ents[i] = e && e->id == a->sels[i]->id ? e : NULL;
		a->hz[i] = a->ents[i] ? hum_logring_last_seq(&e->log) : 0;
	}
	uint64_t threshold = UINT64_MAX, total = 0;
	size_t taken = 0, cost = 0;
	if (n > 0) {
		for (size_t i = 0; i < nsel && !oom; i++) {
			if (!a->ents[i])
				continue;
			pass1 p = { a, &f, a->hz[i], strlen(a->sels[i]->name), false };
			if (plain)
				hum_logring_tail_upto(&a->ents[i]->log, a->hz[i], n, pass1_cb, &p);
			else
				hum_logring_read(&a->ents[i]->log, 0, 0, pass1_cb, &p);
			oom = p.oom;
		}
		total = a->nref;
		if (a->nref > 1)
			qsort(a->refs, a->nref, sizeof *a->refs, cmp_ref_desc);
		/* the newest n matching lines, as many as fit the output bound */
		for (size_t i = 0; i < a->nref && taken < n; i++) {
			if (cost + a->refs[i].cost > budget)
				break;
			cost += a->refs[i].cost;
			threshold = a->refs[i].seq;
			taken++;
		}
	}
	size_t count = 0;
	bool follow_oom = false;
	for (size_t i = 0; i < nsel && !oom; i++) {
		if (!a->ents[i])
			continue;
		const char *pname = a->ents[i]->name;
		if (taken) {
			pass2 p = { .a = a, .c = c, .f = &f, .lo = threshold, .hi = a->hz[i], .name = pname,
				    .direct = nsel == 1 };
			hum_logring_read(&a->ents[i]->log, threshold, 0, pass2_cb, &p);
			count += p.count;
			oom = p.oom;
		}
		/* lines counts what was committed up to at least the horizon */
		if (follow && add_cursor(c, a->sels[i]->id, pname, a->hz[i],
					 hum_load_u64_relaxed(&a->ents[i]->log.lines)) < 0)
			follow_oom = true;
	}
	if (!oom)
		emit_recs(a, c);
	hum_read_end(a->rd);
	a->nrec = 0;
	a->bytes.len = 0;
	if (a->bytes.cap > (8u << 20)) /* do not keep a huge scratch around */
		hum_buf_free(&a->bytes);
	if (oom || follow_oom) {
		filter_free(&f);
		cursors_free(c);
		send_error(c, id, idlen, "out of memory");
		return;
	}
	size_t wanted = total < n ? (size_t)total : n;
	if (!follow) {
		filter_free(&f);
		hum_buf_puts(&c->out, "{\"ok\":true");
		put_id(&c->out, id, idlen);
		hum_buf_puts(&c->out, ",\"end\":true,\"lines\":");
		hum_json_u64(&c->out, count);
		if (wanted > taken) {
			hum_buf_puts(&c->out, ",\"truncated\":");
			hum_json_u64(&c->out, wanted - taken);
		}
		hum_buf_puts(&c->out, "}\n");
		STAT_INC(a, reads);
		return;
	}
	/* follow: the filter moves into the client; since only applied to
	 * the backlog */
	f.since_ms = 0;
	c->flt = f;
	c->following = true;
	c->follow_all = !names || (names->type == HUM_JARR && names->count == 0);
	if (wanted > taken)
		c->dropped += wanted - taken;
	c->idlen = idlen;
	if (idlen)
		memcpy(c->idraw, id, idlen);
	a->nfollow++;
	if (!ev_is_active(&a->follow_timer))
		ev_timer_again(a->loop, &a->follow_timer);
	STAT_INC(a, reads);
}

static void end_follow(client *c, const char *reason)
{
	hum_buf_puts(&c->out, "{\"ok\":true");
	put_id(&c->out, c->idraw, c->idlen);
	hum_buf_puts(&c->out, ",\"end\":true,\"reason\":");
	hum_json_cstr(&c->out, reason);
	hum_buf_puts(&c->out, "}\n");
	c->following = false;
	c->api->nfollow--;
	c->closing = true;
}

static bool has_cursor(const client *c, uint32_t id)
{
	for (size_t i = 0; i < c->ncur; i++)
		if (c->cur[i].id == id)
			return true;
	return false;
}

/* One poll of one follower: new lines of every followed process, merged by
 * seq; lines beyond the client's output bound are counted, not kept. */
static void follow_poll(hum_api *a, client *c)
{
	a->nrec = 0;
	a->bytes.len = 0;
	a->bytes.oom = false;
	size_t live = 0;
	bool oom = false;
	hum_read_begin(a->rd);
	if (c->follow_all) {
		const hum_world *w = hum_store_world(a->st);
		for (uint32_t i = 0; w && i < w->count; i++)
			if (!has_cursor(c, w->procs[i]->id) &&
			    add_cursor(c, w->procs[i]->id, w->procs[i]->name, 0, 0) < 0)
				oom = true;
	}
	for (size_t i = 0; i < c->ncur && !oom; i++) {
		cursor *k = &c->cur[i];
		if (k->gone)
			continue;
		hum_entry *e = hum_store_lookup(a->st, k->name);
		if (!e || e->id != k->id) {
			k->gone = true;
			continue;
		}
		live++;
		uint64_t last = hum_logring_last_seq(&e->log);
		if (last <= k->last)
			continue;
		/* The ring drops its oldest lines: the ones numbered up to
		 * `dropped` are gone.  If that passes what this follower
		 * handled, the difference never reached it (the process wrote
		 * more than the ring holds between two polls).  Approximate by
		 * a few lines when a drop races with the read. */
		uint64_t dropped = hum_load_u64_relaxed(&e->log.dropped);
		pass2 p = { .a = a, .c = c, .f = &c->flt, .lo = 0, .hi = last, .name = k->name,
			    .budget = true, .cursor = &k->last };
		hum_logring_read(&e->log, k->last + 1, 0, pass2_cb, &p);
		oom = p.oom;
		if (dropped > k->ord) {
			c->dropped += dropped - k->ord;
			__atomic_fetch_add(&a->stats.dropped_lines, dropped - k->ord, __ATOMIC_RELAXED);
			k->ord = dropped;
		}
		k->ord += p.visited;
	}
	if (c->dropped && unsent(c) + a->bytes.len < a->max_output / 2) {
		hum_buf_puts(&c->out, "{\"dropped\":");
		hum_json_u64(&c->out, c->dropped);
		hum_buf_puts(&c->out, "}\n");
		c->dropped = 0;
	}
	if (!oom)
		emit_recs(a, c);
	hum_read_end(a->rd);
	a->nrec = 0;
	a->bytes.len = 0;
	if (oom) {
		c->broken = true;
		return;
	}
	if (!c->follow_all && live == 0)
		end_follow(c, "removed");
}

static void follow_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_api *a = w->data;
	for (client *c = a->clients, *next; c; c = next) {
		next = c->next;
		if (c->following && !c->broken) {
			follow_poll(a, c);
			settle(c);
		}
	}
	if (!a->nfollow)
		ev_timer_stop(loop, w);
}

/* Requests --------------------------------------------------------------------- */

static const char *const commands[] = { "start", "stop", "restart", "signal", "down", "eval" };

static void handle_line(client *c, char *line, size_t len)
{
	hum_api *a = c->api;
	char err[200];
	hum_jarena_reset(a->arena);
	hum_jval *req = hum_json_parse(a->arena, line, len, err, sizeof err);
	if (!req) {
		send_error(c, NULL, 0, "malformed request: %s", err);
		return;
	}
	if (req->type != HUM_JOBJ) {
		send_error(c, NULL, 0, "a request must be a JSON object");
		return;
	}
	const char *id = NULL;
	size_t idlen = 0;
	const hum_jval *idv = hum_json_get(req, "id");
	if (idv && idv->type != HUM_JNULL) {
		if (idv->type != HUM_JNUM && idv->type != HUM_JSTR) {
			send_error(c, NULL, 0, "id must be a number or a string");
			return;
		}
		if (idv->rawlen > ID_MAX) {
			send_error(c, NULL, 0, "id too long (more than %d bytes)", ID_MAX);
			return;
		}
		id = idv->raw;
		idlen = idv->rawlen;
	}
	const hum_jval *cmd = hum_json_get(req, "cmd");
	if (!cmd || cmd->type != HUM_JSTR) {
		send_error(c, id, idlen, "missing \"cmd\" (a string)");
		return;
	}
	const char *name = cmd->str;
	if (strcmp(name, "ps") == 0) {
		do_ps(c, id, idlen);
		STAT_INC(a, reads);
	} else if (strcmp(name, "status") == 0) {
		do_status(c, req, id, idlen);
		STAT_INC(a, reads);
	} else if (strcmp(name, "logs") == 0) {
		do_logs(c, req, id, idlen);
	} else if (strcmp(name, "ping") == 0) {
		hum_buf_puts(&c->out, "{\"ok\":true");
		put_id(&c->out, id, idlen);
		hum_buf_puts(&c->out, ",\"pong\":true,\"pid\":");
		hum_json_i64(&c->out, getpid());
		hum_buf_puts(&c->out, "}\n");
	} else {
		for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
			if (strcmp(name, commands[i]) != 0)
				continue;
			if (!a->on_command) {
				send_error(c, id, idlen, "commands are not available");
				return;
			}
			uint32_t cid = ++a->next_cmd;
			if (cid == 0)
				cid = ++a->next_cmd;
			msg *m = msg_new(cid, line, len);
			if (!m) {
				send_error(c, id, idlen, "out of memory");
				return;
			}
			c->busy = true;
			c->cmd_id = cid;
			c->idlen = idlen;
			if (idlen)
				memcpy(c->idraw, id, idlen);
			mpsc_push(&a->cmds, m);
			ev_async_send(a->main_loop, &a->cmd_async);
			STAT_INC(a, commands);
			return;
		}
		send_error(c, id, idlen, "unknown command \"%.64s\"", name);
	}
}

/* Commands and replies ---------------------------------------------------------- */

/* Loop thread: hands queued commands to the host. */
static void cmd_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	hum_api *a = w->data;
	msg *m = mpsc_take(&a->cmds);
	while (m) {
		msg *next = m->next;
		a->on_command(a->ud, m->id, m->data, m->len);
		free(m);
		m = next;
	}
}

void hum_api_reply(hum_api *a, uint32_t id, const char *json, size_t len)
{
	msg *m = msg_new(id, json, len);
	if (!m)
		return; /* the client's command stays unanswered; it can time out */
	mpsc_push(&a->replies, m);
	ev_async_send(a->loop, &a->reply_async);
}

static void put_reply(hum_buf *b, const char *json, size_t len, const char *id, size_t idlen)
{
	if (!idlen) {
		hum_buf_put(b, json, len);
	} else if (len >= 10 && memcmp(json, "{\"ok\":true", 10) == 0) {
		hum_buf_put(b, json, 10);
		put_id(b, id, idlen);
		hum_buf_put(b, json + 10, len - 10);
	} else if (len >= 11 && memcmp(json, "{\"ok\":false", 11) == 0) {
		hum_buf_put(b, json, 11);
		put_id(b, id, idlen);
		hum_buf_put(b, json + 11, len - 11);
	} else if (len >= 2 && json[0] == '{') {
		hum_buf_put(b, "{\"id\":", 6);
		hum_buf_put(b, id, idlen);
		if (json[1] != '}')
			hum_buf_putc(b, ',');
		hum_buf_put(b, json + 1, len - 1);
	} else {
		hum_buf_put(b, json, len);
	}
	hum_buf_putc(b, '\n');
}

static void reply_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	hum_api *a = w->data;
	msg *m = mpsc_take(&a->replies);
	while (m) {
		msg *next = m->next;
		for (client *c = a->clients; c; c = c->next) {
			if (c->busy && c->cmd_id == m->id) {
				put_reply(&c->out, m->data, m->len, c->idraw, c->idlen);
				c->busy = false;
				c->idlen = 0;
				process_input(c);
				settle(c);
				break;
			}
		}
		free(m);
		m = next;
	}
}

/* Stop: on the API thread. */
static void stop_cb(struct ev_loop *loop, ev_async *w, int revents)
{
	hum_api *a = w->data;
	while (a->clients) {
		client *c = a->clients;
		if (c->following)
			end_follow(c, "server stopping");
		else if (c->busy)
			send_error(c, c->idraw, c->idlen, "hum is stopping");
		if (!c->broken)
			flush_out(c); /* best effort: one non-blocking attempt */
		client_free(c);
	}
	ev_io_stop(loop, &a->accept_w);
	ev_timer_stop(loop, &a->accept_retry);
	ev_timer_stop(loop, &a->follow_timer);
	ev_async_stop(loop, &a->reply_async);
	ev_async_stop(loop, &a->stop_async);
	ev_break(loop, EVBREAK_ALL);
}

static void *thread_main(void *arg)
{
	hum_api *a = arg;
	pthread_setname_np(pthread_self(), "hum-api");
	ev_run(a->loop, 0);
	return NULL;
}

/* Setup ------------------------------------------------------------------------ */

/* A socket file at path: live (another hum), stale (removed), or absent. */
static int probe_existing(const char *path, bool *stale, char *err, size_t errlen)
{
	struct stat sb;
	if (lstat(path, &sb) < 0)
		return errno == ENOENT ? 0 : -errno;
	if (!S_ISSOCK(sb.st_mode)) {
		seterr(err, errlen, "%s exists and is not a socket; remove it", path);
		return -EEXIST;
	}
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return -errno;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, path, strlen(path) + 1);
	int rc;
	do
		rc = connect(fd, (struct sockaddr *)&sa, sizeof sa);
	while (rc < 0 && errno == EINTR);
	int e = rc < 0 ? errno : 0;
	close(fd);
	if (rc == 0 || e == EAGAIN || e == EINPROGRESS) {
		seterr(err, errlen, "another hum is already listening on %s", path);
		return -EADDRINUSE;
	}
	if (e == ECONNREFUSED) {
		/* nobody listens: left behind by a hum that crashed */
		if (unlink(path) < 0 && errno != ENOENT) {
			e = errno;
			seterr(err, errlen, "cannot remove the stale socket %s: %s", path, strerror(e));
			return -e;
		}
		if (stale)
			*stale = true;
		return 0;
	}
	seterr(err, errlen, "cannot check %s: %s", path, strerror(e));
	return -e;
}

static int take_lock(const char *humdir, int *lock_fd, char *err, size_t errlen)
{
	char path[PATH_MAX + 16];
	snprintf(path, sizeof path, "%s/hum.lock", humdir);
	int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		int e = errno;
		seterr(err, errlen, "cannot open %s: %s", path, strerror(e));
		return -e;
	}
	int rc;
	do
		rc = flock(fd, LOCK_EX | LOCK_NB);
	while (rc < 0 && errno == EINTR);
	if (rc < 0) {
		int e = errno;
		if (e == EWOULDBLOCK) {
			char pid[32] = "";
			ssize_t n = pread(fd, pid, sizeof pid - 1, 0);
			pid[n > 0 ? n : 0] = 0;
			pid[strcspn(pid, "\n")] = 0;
			seterr(err, errlen, "another hum is already running for %.*s%s%s%s", (int)(strlen(humdir) - 5),
			       humdir, *pid ? " (pid " : "", pid, *pid ? ")" : "");
			close(fd);
			return -EADDRINUSE;
		}
		seterr(err, errlen, "cannot lock %s: %s", path, strerror(e));
		close(fd);
		return -e;
	}
	char pid[32];
	int k = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == 0 && pwrite(fd, pid, (size_t)k, 0) < 0) {
		/* the pid is only for the message above; not fatal */
	}
	*lock_fd = fd;
	return 0;
}

static int open_listener(hum_api *a, char *err, size_t errlen)
{
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0) {
		int e = errno;
		seterr(err, errlen, "socket: %s", strerror(e));
		return -e;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	memcpy(sa.sun_path, a->path, strlen(a->path) + 1);
	struct stat sb;
	if (bind(fd, (struct sockaddr *)&sa, sizeof sa) < 0 || chmod(a->path, 0600) < 0 ||
	    listen(fd, SOMAXCONN) < 0 || stat(a->path, &sb) < 0) {
		int e = errno;
		seterr(err, errlen, "cannot listen on %s: %s", a->path, strerror(e));
		close(fd);
		return -e;
	}
	a->sock_dev = sb.st_dev;
	a->sock_ino = sb.st_ino;
	a->listen_fd = fd;
	return 0;
}

static void unlink_ours(hum_api *a)
{
	struct stat sb;
	/* only if the file is still the socket we bound */
	if (stat(a->path, &sb) == 0 && sb.st_dev == a->sock_dev && sb.st_ino == a->sock_ino)
		unlink(a->path);
}

static void api_free(hum_api *a)
{
	if (a->listen_fd >= 0)
		close(a->listen_fd);
	if (a->lock_fd >= 0)
		close(a->lock_fd);
	if (a->loop)
		ev_loop_destroy(a->loop);
	if (a->rd)
		hum_reader_free(a->rd);
	hum_jarena_free(a->arena);
	hum_buf_free(&a->bytes);
	free(a->refs);
	free(a->recs);
	free(a->sels);
	free(a->mark);
	free(a->ents);
	free(a->hz);
	for (msg *m = mpsc_take(&a->replies), *n; m; m = n) {
		n = m->next;
		free(m);
	}
	for (msg *m = mpsc_take(&a->cmds), *n; m; m = n) {
		n = m->next;
		free(m);
	}
	free(a);
}

int hum_api_start(hum_api **out, const char *project_dir, const hum_api_opts *o, bool *stale,
		  char *err, size_t errlen)
{
	*out = NULL;
	if (stale)
		*stale = false;
	if (errlen)
		err[0] = 0;
	char humdir[PATH_MAX], real[PATH_MAX];
	int rc = hum_api_state_dir(project_dir, humdir, sizeof humdir, err, errlen);
	if (rc < 0)
		return rc;
	if (!realpath(project_dir, real)) {
		rc = -errno;
		seterr(err, errlen, "cannot resolve %s: %s", project_dir, strerror(-rc));
		return rc;
	}
	hum_api *a = calloc(1, sizeof *a);
	if (!a) {
		seterr(err, errlen, "out of memory");
		return -ENOMEM;
	}
	a->listen_fd = a->lock_fd = -1;
	a->st = o->store;
	a->main_loop = o->loop;
	a->on_command = o->on_command;
	a->ud = o->ud;
	a->max_request = o->max_request ? o->max_request : HUM_API_MAX_REQUEST;
	a->max_output = o->max_output ? o->max_output : (16u << 20);
	a->max_clients = o->max_clients ? o->max_clients : 1024;
	a->follow_interval = o->follow_interval > 0 ? o->follow_interval : 0.05;
	a->uid = geteuid();

	if ((rc = take_lock(humdir, &a->lock_fd, err, errlen)) < 0)
		goto fail;
	bool fallback;
	if ((rc = socket_path(real, a->path, sizeof a->path, &fallback)) < 0) {
		seterr(err, errlen, "no usable socket path for %s", real);
		goto fail;
	}
	if (fallback) {
		char dir[PATH_MAX];
		fallback_dir(dir, sizeof dir);
		if ((rc = secure_dir(dir, true, err, errlen)) < 0)
			goto fail;
	}
	if ((rc = probe_existing(a->path, stale, err, errlen)) < 0) {
		if (!err[0])
			seterr(err, errlen, "cannot check %s: %s", a->path, strerror(-rc));
		goto fail;
	}
	if ((rc = open_listener(a, err, errlen)) < 0)
		goto fail;

	a->rd = hum_reader_new(a->st);
	a->arena = hum_jarena_new();
	/* EVFLAG_NOSIGMASK: this loop has no signal watchers and must never
	 * touch the signal mask (the default loop's thread owns signals). */
	a->loop = ev_loop_new(EVFLAG_AUTO | EVFLAG_NOSIGMASK);
	if (!a->rd || !a->arena || !a->loop) {
		rc = -ENOMEM;
		seterr(err, errlen, "cannot set up the API thread: out of memory");
		goto fail;
	}
	ev_io_init(&a->accept_w, accept_cb, a->listen_fd, EV_READ);
	a->accept_w.data = a;
	ev_io_start(a->loop, &a->accept_w);
	ev_timer_init(&a->accept_retry, accept_retry_cb, 0.1, 0.);
	a->accept_retry.data = a;
	ev_timer_init(&a->follow_timer, follow_cb, 0., a->follow_interval);
	a->follow_timer.data = a;
	ev_async_init(&a->reply_async, reply_cb);
	a->reply_async.data = a;
	ev_async_start(a->loop, &a->reply_async);
	ev_async_init(&a->stop_async, stop_cb);
	a->stop_async.data = a;
	ev_async_start(a->loop, &a->stop_async);
	ev_async_init(&a->cmd_async, cmd_cb);
	a->cmd_async.data = a;
	ev_async_start(a->main_loop, &a->cmd_async);

	/* The thread starts with every signal blocked: process signals are the
	 * loop thread's (ev_signal on the default loop). */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	rc = -pthread_create(&a->thread, NULL, thread_main, a);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc < 0) {
		ev_async_stop(a->main_loop, &a->cmd_async);
		seterr(err, errlen, "cannot start the API thread: %s", strerror(-rc));
		goto fail;
	}
	a->thread_started = true;
	*out = a;
	return 0;
fail:
	if (a->listen_fd >= 0)
		unlink_ours(a);
	api_free(a);
	return rc;
}

void hum_api_stop(hum_api *a)
{
	if (!a)
		return;
	if (a->thread_started) {
		ev_async_send(a->loop, &a->stop_async);
		pthread_join(a->thread, NULL);
	}
	ev_async_stop(a->main_loop, &a->cmd_async);
	unlink_ours(a);
	api_free(a);
}

const char *hum_api_path(const hum_api *a) { return a->path; }

void hum_api_get_stats(hum_api *a, hum_api_stats *s)
{
	s->accepted = __atomic_load_n(&a->stats.accepted, __ATOMIC_RELAXED);
	s->refused = __atomic_load_n(&a->stats.refused, __ATOMIC_RELAXED);
	s->requests = __atomic_load_n(&a->stats.requests, __ATOMIC_RELAXED);
	s->reads = __atomic_load_n(&a->stats.reads, __ATOMIC_RELAXED);
	s->commands = __atomic_load_n(&a->stats.commands, __ATOMIC_RELAXED);
	s->errors = __atomic_load_n(&a->stats.errors, __ATOMIC_RELAXED);
	s->dropped_lines = __atomic_load_n(&a->stats.dropped_lines, __ATOMIC_RELAXED);
	s->clients = __atomic_load_n(&a->stats.clients, __ATOMIC_RELAXED);
}

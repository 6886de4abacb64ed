/*
 * output.c — the foreground printer's writer (see output.h for the
 * contract; the line format is outfmt.c's).
 *
 * Owns: the output buffer, the flow state towards the output (back-pressure,
 * stall, failed writes, the counts of lines dropped or not written), the
 * log file's path and rotation and, when it could reopen the terminal or
 * pipe, its own non-blocking file description.  Loop thread only.  The
 * buffer holds whole formatted lines; a line is dropped or counted as
 * unwritten whole, never torn by hum (a failing write may cut one: the next
 * successful write starts on a new line).
 *
 * Hot path: hum_output_lines formats the prefix (padded or cut name,
 * colours, separator) once per batch, then per line copies the cached
 * timestamp, the prefix and the bytes (outfmt.c) — no syscall, no
 * allocation.  Writes happen in hum_output_flush (once per loop iteration)
 * or when the buffer is full.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "logfile.h"
#include "output.h"
#include "state/store.h" /* HUM_SYS_NAME */
#include "sup_priv.h"

#define OUT_HIGH (1u << 20)   /* pending bytes: ask for back-pressure above */
#define OUT_LOW (256u << 10)  /* ... and release it below */
#define OUT_MAX (16u << 20)   /* the buffer never grows beyond */
#define FREE_WAIT_MS 1000     /* at exit: give up on an output that takes nothing */
#define FREE_WAIT_MAX_MS 10000 /* ... or that is still not done after this */

struct hum_output {
	struct ev_loop *loop;
	int fd;              /* where we write (maybe our reopened copy) */
	int caller_fd;
	int restore_flags;   /* caller_fd's flags to restore, or -1 */
	bool own_fd;
	bool blocking;       /* a regular file: writes complete or fail */
	hum_outfmt fmt;      /* colour, name width, timestamp (outfmt.c) */
	ev_io wio;           /* active while waiting for the fd to take more */
	ev_timer stall_w;    /* while paused: did the output take anything? */
	ev_timer retry_w;    /* while err: try writing again */
	char *buf;
	size_t off, len, cap; /* unwritten bytes: buf[off, len) */
	/* flow */
	bool paused;         /* told the pressure hook to pause */
	bool stalled;        /* took nothing for stall_s while paused: drop */
	bool at_bol;         /* the last byte written ended a line */
	int err;             /* errno of the failure being waited out, or 0 */
	int64_t failed_at;   /* when writing began to fail (ms) */
	uint64_t progress, stall_mark; /* successful writes (for the stall check) */
	double stall_s;
	uint64_t dropped, drop_unreported, unwritten, unwritten_unreported;
	hum_output_pressure_fn pressure;
	hum_output_note_fn note;
	void *ud;
	/* the log file (hum_output_set_file) */
	char *path;
	uint64_t max_bytes, size;
};

static void drain(hum_output *o);

/* Queueing -------------------------------------------------------------------- */

static void lost_unwritten(hum_output *o, uint64_t n)
{
	o->unwritten += n;
	o->unwritten_unreported += n;
}

/* Lines that could not be queued or kept: dropped (the output did not keep
 * up) or not written (writing fails). */
static void lost(hum_output *o, uint64_t n)
{
	if (o->err) {
		lost_unwritten(o, n);
	} else {
		o->dropped += n;
		o->drop_unreported += n;
	}
}

/* Room for need more bytes: write what the output takes first, then grow
 * (a non-blocking output, up to OUT_MAX; while stalled only for hum's own
 * lines, few and the ones that say what happened).  false: the line cannot
 * be queued (see lost). */
static uint64_t count_lines(const char *p, const char *end)
{
	uint64_t n = 0;
	while ((p = memchr(p, '\n', (size_t)(end - p))) != NULL)
		n++, p++;
	return n;
}

static bool room_slow(hum_output *o, size_t need, bool sys)
{
	drain(o);
	if (o->off) {
		memmove(o->buf, o->buf + o->off, o->len - o->off);
		o->len -= o->off;
		o->off = 0;
	}
	if (o->len + need <= o->cap)
		return true;
	if (o->err) {
		/* Writing fails: keep the newest lines for when it works
		 * again; the older ones are not written. */
		lost(o, count_lines(o->buf, o->buf + o->len));
		o->len = 0;
		return need <= o->cap;
	}
	if (o->blocking || (o->stalled && !sys) || o->cap >= OUT_MAX)
		return false;
	size_t cap = o->cap * 2;
	while (cap < o->len + need)
		cap *= 2;
	if (cap > OUT_MAX)
		cap = OUT_MAX;
	char *b = realloc(o->buf, cap);
	if (b == NULL)
		return false;
	o->buf = b;
	o->cap = cap;
	return o->len + need <= o->cap;
}

static inline void put_line(hum_output *o, const char *pre, size_t prelen, const hum_line *l)
{
	size_t need = OUTFMT_LINE_MAX(prelen, l->len);
	if (o->len + need > o->cap && !room_slow(o, need, l->stream == HUM_STREAM_SYS)) {
		lost(o, 1);
		return;
	}
	o->len += sup_outfmt_line(&o->fmt, pre, prelen, l, o->buf + o->len);
}

/* Flow ------------------------------------------------------------------------ */

/* Asks for back-pressure above OUT_HIGH pending bytes and releases it below
 * OUT_LOW — never for a file (it is written at once) nor while stalled or
 * failing (then lines are counted, the children must not wait). */
static void pressure_update(hum_output *o)
{
	size_t q = o->len - o->off;
	bool want = !o->blocking && !o->stalled && !o->err && (o->paused ? q > OUT_LOW : q >= OUT_HIGH);
	if (want == o->paused)
		return;
	o->paused = want;
	if (want) {
		o->stall_mark = o->progress;
		ev_timer_set(&o->stall_w, o->stall_s, o->stall_s);
		ev_timer_start(o->loop, &o->stall_w);
	} else {
		ev_timer_stop(o->loop, &o->stall_w);
	}
	if (o->pressure)
		o->pressure(o->ud, want);
}

static void stall_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	hum_output *o = (hum_output *)((char *)w - offsetof(hum_output, stall_w));
	if (o->progress != o->stall_mark) {
		o->stall_mark = o->progress; /* slow, but it takes lines: keep waiting */
		return;
	}
	o->stalled = true; /* ends with the next successful write */
	pressure_update(o);
}

static void queue_sys(hum_output *o, const char *msg, size_t mlen)
{
	char pre[OUTFMT_PRE_MAX];
	size_t prelen = sup_outfmt_prefix(&o->fmt, HUM_SYS_ID, HUM_SYS_NAME, strlen(HUM_SYS_NAME),
					  HUM_STREAM_SYS, pre);
	hum_line l = { .time_ms = sup_now_ms(), .data = msg, .len = (uint32_t)mlen, .stream = HUM_STREAM_SYS };
	put_line(o, pre, prelen, &l);
}

/* A message of the printer's own: queued (with queue) and handed to the
 * note hook, so that hum's log keeps it too. */
__attribute__((format(printf, 3, 4)))
static void notice(hum_output *o, bool queue, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;
	va_start(ap, fmt);
	int n = hum_output_vformat(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if (queue)
		queue_sys(o, msg, (size_t)n);
	if (o->note)
		o->note(o->ud, msg, (size_t)n);
}

static ssize_t write_retry(int fd, const char *p, size_t n)
{
	ssize_t w;
	do
		w = write(fd, p, n);
	while (w < 0 && errno == EINTR);
	return w;
}

/* Writing failed with e.  Supervision is not affected: lines keep being
 * queued (the newest that fit stay, see room_slow) and writing is tried
 * again every HUM_OUTPUT_RETRY seconds (retry). */
static void fail(hum_output *o, int e)
{
	if (!o->at_bol) {
		/* the rest of the line the failure cut is not written */
		const char *nl = memchr(o->buf + o->off, '\n', o->len - o->off);
		o->off = nl ? (size_t)(nl + 1 - o->buf) : o->len;
		lost_unwritten(o, 1);
	}
	o->err = e;
	o->failed_at = sup_now_ms();
	if (ev_is_active(&o->wio))
		ev_io_stop(o->loop, &o->wio);
	pressure_update(o);
	ev_timer_set(&o->retry_w, HUM_OUTPUT_RETRY, 0);
	ev_timer_start(o->loop, &o->retry_w);
	/* not queued: the line that says writing works again tells it */
	notice(o, false, "cannot write the output (%s): lines stay in hum's log (hum logs); writing is "
		  "tried again every %gs", strerror(e), HUM_OUTPUT_RETRY);
}

static void report(hum_output *o)
{
	if (o->drop_unreported) {
		uint64_t n = o->drop_unreported;
		o->drop_unreported = 0;
		notice(o, true, "%llu lines dropped from output (it did not keep up)", (unsigned long long)n);
	}
}

static void rotate(hum_output *o, bool by_size);

/* Writes what the output takes now: everything for a file, until EAGAIN
 * for a terminal or pipe (then the ev_io watcher goes on). */
static void drain(hum_output *o)
{
	if (o->err)
		return;
	while (o->off < o->len) {
		/* A log file rotates at the first line end at or past its bound,
		 * within one drain too: a slow loop may queue far more than the
		 * bound between drains, and the file stays within the bound plus
		 * one line however much is queued. */
		size_t end = o->len;
		if (o->path) {
			if (o->size >= o->max_bytes && o->at_bol) {
				rotate(o, true);
				if (o->err)
					return;
			}
			uint64_t room = o->size < o->max_bytes ? o->max_bytes - o->size : 1;
			if (room < end - o->off) {
				const char *nl = memchr(o->buf + o->off + room - 1, '\n', end - o->off - (room - 1));
				if (nl != NULL)
					end = (size_t)(nl - o->buf) + 1;
			}
		}
		ssize_t n = write_retry(o->fd, o->buf + o->off, end - o->off);
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			if (!ev_is_active(&o->wio))
				ev_io_start(o->loop, &o->wio);
			break;
		}
		if (n <= 0) {
			fail(o, n < 0 ? errno : EIO);
			return;
		}
		o->off += (size_t)n;
		o->size += (uint64_t)n;
		o->at_bol = o->buf[o->off - 1] == '\n';
		o->progress++;
		o->stalled = false;
	}
	if (o->off == o->len) {
		o->off = o->len = 0;
		if (ev_is_active(&o->wio))
			ev_io_stop(o->loop, &o->wio);
		report(o); /* queued: written by the next flush */
	}
	pressure_update(o);
}

static void wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	drain((hum_output *)((char *)w - offsetof(hum_output, wio)));
}

/* Puts n bytes before what is queued (the retry's notice, when the output
 * could not take all of it at once). */
static void prepend(hum_output *o, const char *p, size_t n)
{
	size_t q = o->len - o->off;
	if (o->off < n) {
		if (q + n > o->cap) {
			lost(o, count_lines(o->buf + o->off, o->buf + o->len));
			q = 0;
		}
		memmove(o->buf + n, o->buf + o->off, q);
		o->off = n;
		o->len = n + q;
	}
	o->off -= n;
	memcpy(o->buf + o->off, p, n);
}

/* After a failed write: one attempt with the notice of what was lost (a
 * line of its own, after a newline if the failure cut one).  If it fails
 * too, quietly: the notice is not a line anybody lost. */
static void retry(hum_output *o)
{
	int e = o->err;
	char msg[256], line[OUTFMT_PRE_MAX + 300];
	int mlen = snprintf(msg, sizeof msg, "writing the output works again after %.1fs (%s): "
			    "%llu lines were not written (hum logs has them)",
			    (double)(sup_now_ms() - o->failed_at) / 1000.0, strerror(e),
			    (unsigned long long)o->unwritten_unreported);
	size_t k = 0;
	if (!o->at_bol)
		line[k++] = '\n';
	k += sup_outfmt_sys(&o->fmt, sup_now_ms(), msg, (size_t)mlen, line + k);
	size_t done = 0;
	while (done < k) {
		ssize_t n = write_retry(o->fd, line + done, k - done);
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			break;
		}
		done += (size_t)n;
		o->size += (uint64_t)n;
		o->at_bol = line[done - 1] == '\n';
	}
	if (done < k && errno != EAGAIN && errno != EWOULDBLOCK) {
		o->err = errno ? errno : EIO;
		ev_timer_set(&o->retry_w, HUM_OUTPUT_RETRY, 0);
		ev_timer_start(o->loop, &o->retry_w);
		return;
	}
	o->err = 0;
	if (done < k)
		prepend(o, line + done, k - done); /* a full pipe: the rest first */
	o->unwritten_unreported = 0;
	if (o->note)
		o->note(o->ud, msg, (size_t)mlen);
	drain(o); /* what was kept, or wait for the fd */
}

static void retry_cb(struct ev_loop *loop, ev_timer *w, int revents)
{
	retry((hum_output *)((char *)w - offsetof(hum_output, retry_w)));
}

/* The log file ----------------------------------------------------------------- */

/* Makes o->fd (and stderr or stdout when they are the same file) refer to
 * fd's file; closes fd.  0 or -errno. */
static int switch_fd(hum_output *o, int fd)
{
	struct stat cur, st;
	bool also[3] = { false, false, false };
	if (fstat(o->fd, &cur) == 0)
		for (int k = 1; k <= 2; k++)
			also[k] = k != o->fd && fstat(k, &st) == 0 && st.st_dev == cur.st_dev &&
				  st.st_ino == cur.st_ino;
	int rc = 0;
	while (dup2(fd, o->fd) < 0) {
		if (errno != EINTR && errno != EBUSY) {
			rc = -errno;
			break;
		}
	}
	for (int k = 1; k <= 2 && rc == 0; k++)
		if (also[k])
			while (dup2(fd, k) < 0 && (errno == EINTR || errno == EBUSY))
				;
	close(fd);
	return rc;
}

/* The first line of a file rotate() starts, written before what is queued;
 * the note hook gets it too. */
static void first_line(hum_output *o, const char *msg, int mlen)
{
	char line[OUTFMT_PRE_MAX + 1024];
	if (mlen < 0)
		return;
	if (mlen > 1000)
		mlen = 1000;
	ssize_t n = write_retry(o->fd, line, sup_outfmt_sys(&o->fmt, sup_now_ms(), msg, (size_t)mlen, line));
	if (n > 0)
		o->size += (uint64_t)n;
	if (o->note)
		o->note(o->ud, msg, (size_t)mlen);
}

/* path -> path.1 and a new file at path.  by_size: the new file's first
 * line says where the log continues from. */
static void rotate(hum_output *o, bool by_size)
{
	char note[600], err[600], msg[1400];
	uint64_t had = o->size;
	int fd = hum_logfile_open(o->path, HUM_LOGFILE_ROTATE, note, sizeof note, err, sizeof err);
	o->size = 0; /* a failed rotation is tried again after max_bytes more */
	int rc = fd < 0 ? fd : switch_fd(o, fd);
	if (rc < 0) {
		/* path.1 cannot be replaced (a directory there, a read-only
		 * entry...): the bound still holds.  The file starts again,
		 * saying so, if it is still the one at path (if the rename went
		 * through and the new file failed, o->fd is path.1 now, which
		 * is kept whole). */
		struct stat a, b;
		if (by_size && fstat(o->fd, &a) == 0 && lstat(o->path, &b) == 0 && a.st_dev == b.st_dev &&
		    a.st_ino == b.st_ino && ftruncate(o->fd, 0) == 0) {
			o->at_bol = true;
			first_line(o, msg, snprintf(msg, sizeof msg, "log cut at %llu bytes: cannot rotate it (%s); "
						    "the %llu bytes before were dropped",
						    (unsigned long long)o->max_bytes, fd < 0 ? err : strerror(-rc),
						    (unsigned long long)had));
			return;
		}
		notice(o, true, "cannot rotate the log file: %s", fd < 0 ? err : strerror(-rc));
		return;
	}
	o->at_bol = true;
	if (!by_size) {
		if (note[0])
			notice(o, true, "%s", note);
		return;
	}
	first_line(o, msg, snprintf(msg, sizeof msg, "log continued from %s.1 (rotated at %llu bytes)%s%s",
				    o->path, (unsigned long long)o->max_bytes, note[0] ? "; " : "", note));
}

int hum_output_set_file(hum_output *o, const char *path, uint64_t max_bytes, int flags)
{
	/* Rotation dup2()s over o->fd: it must be that very file, never
	 * whatever else got its number. */
	struct stat a, b;
	if (fstat(o->fd, &a) != 0 || lstat(path, &b) != 0 || a.st_dev != b.st_dev || a.st_ino != b.st_ino)
		return -EBADF;
	char *p = strdup(path);
	if (p == NULL)
		return -ENOMEM;
	free(o->path);
	o->path = p;
	o->max_bytes = max_bytes ? max_bytes : HUM_LOGFILE_MAX;
	struct stat st;
	o->size = fstat(o->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	if (flags & HUM_LOGFILE_ROTATE) {
		drain(o); /* what is queued belongs to the old file */
		rotate(o, false);
	}
	return 0;
}

int hum_output_reopen(hum_output *o)
{
	if (o->path == NULL)
		return -EINVAL;
	char note[600], err[600];
	int fd = hum_logfile_open(o->path, 0, note, sizeof note, err, sizeof err);
	if (fd < 0) {
		notice(o, true, "cannot reopen the log file: %s", err);
		return fd;
	}
	int rc = switch_fd(o, fd);
	if (rc < 0) {
		notice(o, true, "cannot reopen the log file: dup2: %s", strerror(-rc));
		return rc;
	}
	struct stat st;
	o->size = fstat(o->fd, &st) == 0 ? (uint64_t)st.st_size : 0;
	o->at_bol = true; /* a new file, or one that someone else ended */
	if (note[0])
		notice(o, true, "%s", note);
	if (o->err) { /* the new file may take what the old one refused */
		ev_timer_stop(o->loop, &o->retry_w);
		retry(o);
	}
	return 0;
}

/* API ------------------------------------------------------------------------- */

void hum_output_lines(hum_output *o, uint32_t id, const char *name,
		      const hum_line *lines, size_t n)
{
	size_t nlen = strlen(name);
	sup_outfmt_widen(&o->fmt, name, nlen);
	char pre[OUTFMT_PRE_MAX];
	size_t prelen = 0;
	int stream = -1;
	for (size_t i = 0; i < n; i++) {
		if (lines[i].stream != stream) { /* a batch is normally one stream */
			stream = lines[i].stream;
			prelen = sup_outfmt_prefix(&o->fmt, id, name, nlen, stream, pre);
		}
		put_line(o, pre, prelen, &lines[i]);
	}
	pressure_update(o);
}

int hum_output_flush(hum_output *o)
{
	if (!o->err && !ev_is_active(&o->wio))
		drain(o); /* while wio is active it writes when the fd can take more */
	return o->err ? -o->err : 0;
}

void hum_output_set_hooks(hum_output *o, hum_output_pressure_fn pressure,
			  hum_output_note_fn note, void *ud)
{
	o->pressure = pressure;
	o->note = note;
	o->ud = ud;
}

uint64_t hum_output_dropped(const hum_output *o) { return o->dropped; }
uint64_t hum_output_unwritten(const hum_output *o) { return o->unwritten; }
int hum_output_error(const hum_output *o) { return o->err; }
bool hum_output_paused(const hum_output *o) { return o->paused; }
void hum_output_set_stall(hum_output *o, double seconds) { o->stall_s = seconds; }
void hum_output_set_color(hum_output *o, bool on) { o->fmt.color = on; }
bool hum_output_color(const hum_output *o) { return o->fmt.color; }
void hum_output_set_width(hum_output *o, size_t width)
{
	o->fmt.width = width < 1 ? 1 : width > HUM_OUTPUT_WIDTH_MAX ? HUM_OUTPUT_WIDTH_MAX : width;
	o->fmt.width_fixed = true;
}

/* A private non-blocking description of the same terminal or pipe. */
static int reopen_private(int fd, const struct stat *st)
{
	char path[40];
	snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
	int nfd = open(path, O_WRONLY | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
	if (nfd < 0)
		return -1;
	struct stat nst;
	if (fstat(nfd, &nst) != 0 || nst.st_dev != st->st_dev || nst.st_ino != st->st_ino ||
	    nst.st_rdev != st->st_rdev) {
		close(nfd);
		return -1;
	}
	return nfd;
}

hum_output *hum_output_new(struct ev_loop *loop, int fd)
{
	struct stat st;
	if (fstat(fd, &st) != 0)
		return NULL;
	hum_output *o = calloc(1, sizeof *o);
	if (o == NULL)
		return NULL;
	o->cap = OUT_HIGH;
	o->buf = malloc(o->cap);
	if (o->buf == NULL) {
		free(o);
		errno = ENOMEM;
		return NULL;
	}
	signal(SIGPIPE, SIG_IGN);
	o->loop = loop;
	o->caller_fd = o->fd = fd;
	o->restore_flags = -1;
	o->at_bol = true;
	o->stall_s = HUM_OUTPUT_STALL;
	sup_outfmt_init(&o->fmt, fd);
	/* A disk write never waits for a reader: blocking, never dropped. */
	o->blocking = S_ISREG(st.st_mode) || S_ISBLK(st.st_mode);
	if (!o->blocking) {
		int nfd = (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) ? reopen_private(fd, &st) : -1;
		if (nfd >= 0) {
			o->fd = nfd;
			o->own_fd = true;
		} else {
			int fl = fcntl(fd, F_GETFL);
			if (fl >= 0 && !(fl & O_NONBLOCK) && fcntl(fd, F_SETFL, fl | O_NONBLOCK) == 0)
				o->restore_flags = fl;
		}
	}
	ev_io_init(&o->wio, wio_cb, o->fd, EV_WRITE);
	ev_init(&o->stall_w, stall_cb);
	ev_init(&o->retry_w, retry_cb);
	return o;
}

void hum_output_free(hum_output *o)
{
	if (o == NULL)
		return;
	o->pressure = NULL; /* the caller is tearing down */
	ev_timer_stop(o->loop, &o->stall_w);
	o->stalled = true;  /* no waiting on back-pressure any more */
	if (ev_is_active(&o->retry_w)) {
		ev_timer_stop(o->loop, &o->retry_w);
		retry(o); /* a last attempt: the notice, if writing works again */
	}
	/* Last lines matter most at exit: wait for a reader that takes them,
	 * however slowly; give up once it takes nothing for FREE_WAIT_MS (or
	 * after FREE_WAIT_MAX_MS in all). */
	int64_t start = sup_now_ms(), deadline = start + FREE_WAIT_MS;
	for (int round = 0; !o->err && round < 2; round++) {
		drain(o);
		while (!o->err && o->off < o->len) {
			int64_t now = sup_now_ms(), left = deadline - now;
			if (left <= 0 || now - start > FREE_WAIT_MAX_MS)
				break;
			struct pollfd pfd = { o->fd, POLLOUT, 0 };
			if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
				break;
			uint64_t before = o->progress;
			drain(o);
			if (o->progress != before)
				deadline = sup_now_ms() + FREE_WAIT_MS;
		}
		if (o->off < o->len)
			break;
		/* drain() queued the drop report, if any: the second round writes it */
	}
	ev_timer_stop(o->loop, &o->retry_w);
	if (ev_is_active(&o->wio))
		ev_io_stop(o->loop, &o->wio);
	if (o->restore_flags >= 0)
		fcntl(o->caller_fd, F_SETFL, o->restore_flags);
	if (o->own_fd)
		close(o->fd);
	free(o->path);
	free(o->buf);
	free(o);
}

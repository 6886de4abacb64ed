/*
 * output.c — the foreground printer (see output.h for the contract).
 *
 * Owns: the output buffer and, when it could reopen the terminal or pipe,
 * its own non-blocking file description.  Loop thread only.  The buffer
 * holds whole formatted lines; a line that does not fit is dropped whole
 * (never a torn line), counted, and reported once the output drains.
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
#include <time.h>
#include <unistd.h>

#include "output.h"

#define OUT_CAP (1u << 20)   /* queued bytes while the output is slow */
#define WIDTH_MAX 32         /* longer names are printed whole, unpadded */
#define FREE_WAIT_MS 1000    /* hum_output_free's last chance to drain */

/* Stable per-process colours (no red: red marks stderr). */
static const char *const palette[] = { "36", "33", "32", "35", "34",
				       "96", "93", "92", "95", "94" };
#define NPALETTE (sizeof palette / sizeof palette[0])

struct hum_output {
	struct ev_loop *loop;
	int fd;              /* where we write (maybe our reopened copy) */
	int caller_fd;
	int restore_flags;   /* caller_fd's flags to restore, or -1 */
	bool own_fd, color, dead;
	ev_io wio;           /* active while waiting for the fd to be writable */
	char *buf;
	size_t off, len;     /* unwritten bytes: buf[off, len) */
	uint64_t dropped, unreported;
	size_t width;
	int64_t ts_sec;      /* cached local time of ts_sec */
	char ts[9];          /* "HH:MM:SS" */
};

static const char *stamp(hum_output *o, int64_t ms)
{
	int64_t sec = ms / 1000;
	if (sec != o->ts_sec) {
		time_t t = (time_t)sec;
		struct tm tm;
		localtime_r(&t, &tm);
		o->ts[0] = (char)('0' + tm.tm_hour / 10 % 10), o->ts[1] = (char)('0' + tm.tm_hour % 10);
		o->ts[3] = (char)('0' + tm.tm_min / 10 % 10), o->ts[4] = (char)('0' + tm.tm_min % 10);
		o->ts[6] = (char)('0' + tm.tm_sec / 10 % 10), o->ts[7] = (char)('0' + tm.tm_sec % 10);
		o->ts[2] = o->ts[5] = ':';
		o->ts[8] = '\0';
		o->ts_sec = sec;
	}
	return o->ts;
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Room for need more bytes, compacting first; false if it cannot fit. */
static bool room(hum_output *o, size_t need)
{
	if (o->len + need <= OUT_CAP)
		return true;
	if (o->off) {
		memmove(o->buf, o->buf + o->off, o->len - o->off);
		o->len -= o->off;
		o->off = 0;
	}
	return o->len + need <= OUT_CAP;
}

static inline void put(hum_output *o, const char *s, size_t n)
{
	memcpy(o->buf + o->len, s, n);
	o->len += n;
}
#define PUTS(o, lit) put((o), (lit), sizeof(lit) - 1)

static void put_line(hum_output *o, uint32_t id, const char *name, size_t nlen,
		     const hum_line *l)
{
	size_t pad = nlen < o->width ? o->width - nlen : 0;
	/* Upper bound of everything but the line: ts, colours, name, pad. */
	size_t need = 64 + nlen + pad + l->len;
	if (o->dead)
		return;
	if (!room(o, need)) {
		o->dropped++;
		o->unreported++;
		return;
	}
	const char *ts = stamp(o, l->time_ms);
	if (o->color) {
		PUTS(o, "\033[2m");
		put(o, ts, 8);
		PUTS(o, "\033[0m \033[");
		const char *c = palette[id % NPALETTE];
		put(o, c, strlen(c));
		PUTS(o, "m");
	} else {
		put(o, ts, 8);
		PUTS(o, " ");
	}
	put(o, name, nlen);
	memset(o->buf + o->len, ' ', pad);
	o->len += pad;
	if (o->color)
		PUTS(o, "\033[0m");
	if (l->stream == HUM_STREAM_ERR) {
		if (o->color)
			PUTS(o, " \033[31m!\033[0m ");
		else
			PUTS(o, " ! ");
	} else if (l->stream == HUM_STREAM_SYS) {
		PUTS(o, " * ");
	} else {
		PUTS(o, " \xe2\x94\x82 "); /* U+2502 │ */
	}
	put(o, l->data, l->len);
	PUTS(o, "\n");
}

void hum_output_lines(hum_output *o, uint32_t id, const char *name,
		      const hum_line *lines, size_t n)
{
	size_t nlen = strlen(name);
	if (nlen > o->width && nlen <= WIDTH_MAX)
		o->width = nlen;
	for (size_t i = 0; i < n; i++)
		put_line(o, id, name, nlen, &lines[i]);
}

static void put_sys(hum_output *o, const char *msg, size_t mlen)
{
	if (o->dead)
		return;
	if (!room(o, mlen + 64)) {
		o->dropped++;
		o->unreported++;
		return;
	}
	put(o, stamp(o, now_ms()), 8);
	if (o->color)
		PUTS(o, " \033[1m[hum]\033[0m ");
	else
		PUTS(o, " [hum] ");
	put(o, msg, mlen);
	PUTS(o, "\n");
}

void hum_output_sys(hum_output *o, const char *fmt, ...)
{
	char msg[4096];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(msg, sizeof msg, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	put_sys(o, msg, (size_t)n < sizeof msg ? (size_t)n : sizeof msg - 1);
}

static void report_drops(hum_output *o)
{
	if (!o->unreported)
		return;
	char msg[64];
	int n = snprintf(msg, sizeof msg, "%llu lines dropped from output",
			 (unsigned long long)o->unreported);
	o->unreported = 0;
	put_sys(o, msg, (size_t)n);
}

/* One write(2).  0, or -errno when the output is dead. */
static int write_once(hum_output *o)
{
	if (o->off == o->len)
		return 0;
	ssize_t n;
	do
		n = write(o->fd, o->buf + o->off, o->len - o->off);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		n = 0;
	if (n < 0) {
		int e = errno;
		o->dead = true; /* EPIPE, EIO (hung-up tty), ENOSPC...: stop writing */
		o->off = o->len = 0;
		if (ev_is_active(&o->wio))
			ev_io_stop(o->loop, &o->wio);
		return -e;
	}
	o->off += (size_t)n;
	if (o->off == o->len) {
		o->off = o->len = 0;
		if (ev_is_active(&o->wio))
			ev_io_stop(o->loop, &o->wio);
		report_drops(o); /* written by the next flush */
	} else if (!ev_is_active(&o->wio)) {
		ev_io_start(o->loop, &o->wio);
	}
	return 0;
}

static void wio_cb(struct ev_loop *loop, ev_io *w, int revents)
{
	write_once((hum_output *)((char *)w - offsetof(hum_output, wio)));
}

int hum_output_flush(hum_output *o)
{
	if (o->dead)
		return -EPIPE;
	if (ev_is_active(&o->wio))
		return 0; /* full: wio_cb writes when the fd can take more */
	return write_once(o);
}

uint64_t hum_output_dropped(hum_output *o) { return o->dropped; }
void hum_output_set_color(hum_output *o, bool on) { o->color = on; }
bool hum_output_color(const hum_output *o) { return o->color; }
void hum_output_set_width(hum_output *o, size_t width)
{
	o->width = width > WIDTH_MAX ? WIDTH_MAX : width;
}

static bool want_color(int fd)
{
	const char *nc = getenv("NO_COLOR");
	const char *term = getenv("TERM");
	if (nc && *nc)
		return false;
	if (term && strcmp(term, "dumb") == 0)
		return false;
	return isatty(fd) == 1;
}

/* A private non-blocking description of the same terminal or pipe. */
static int reopen(int fd, const struct stat *st)
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
	o->buf = malloc(OUT_CAP);
	if (o->buf == NULL) {
		free(o);
		errno = ENOMEM;
		return NULL;
	}
	signal(SIGPIPE, SIG_IGN);
	o->loop = loop;
	o->caller_fd = o->fd = fd;
	o->restore_flags = -1;
	o->ts_sec = -1;
	o->color = want_color(fd);
	if (!S_ISREG(st.st_mode)) {
		int nfd = (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) ? reopen(fd, &st) : -1;
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
	return o;
}

void hum_output_free(hum_output *o)
{
	if (o == NULL)
		return;
	if (ev_is_active(&o->wio))
		ev_io_stop(o->loop, &o->wio);
	/* Last lines matter most at exit: wait a little for a slow reader. */
	int64_t deadline = now_ms() + FREE_WAIT_MS;
	for (int round = 0; !o->dead && round < 2; round++) {
		while (!o->dead && o->off < o->len) {
			int64_t left = deadline - now_ms();
			if (left <= 0)
				break;
			struct pollfd pfd = { o->fd, POLLOUT, 0 };
			if (poll(&pfd, 1, (int)left) <= 0 && errno != EINTR)
				break;
			write_once(o);
			if (ev_is_active(&o->wio))
				ev_io_stop(o->loop, &o->wio);
		}
		if (o->off < o->len)
			break;
		report_drops(o); /* drops while exiting: say so, then stop */
	}
	if (o->restore_flags >= 0)
		fcntl(o->caller_fd, F_SETFL, o->restore_flags);
	if (o->own_fd)
		close(o->fd);
	free(o->buf);
	free(o);
}

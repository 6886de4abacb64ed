/*
 * outfmt.c — the foreground line format (output.h, "Format"): the
 * timestamp, the name column (padded or cut, coloured per process), the
 * stream's mark, the reset after a line that leaves a colour on; and the
 * text of hum's own messages (hum_output_vformat), for the printer's
 * notices and the host's reports alike.
 *
 * Owns: the format's state (hum_outfmt, sup_priv.h): colour, terminal, the
 * name column's width, the cached timestamp.  No I/O and no allocation: it
 * writes into the caller's buffer; output.c queues and writes.  Loop
 * thread only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "output.h"
#include "state/store.h" /* HUM_SYS_NAME */
#include "sup_priv.h"

/* Stable per-process colours (no red: red marks stderr); lua/hum/cli/fmt.lua
 * has a copy (M.PALETTE). */
static const char *const palette[] = { "36", "33", "32", "35", "34",
				       "96", "93", "92", "95", "94" };
#define NPALETTE (sizeof palette / sizeof palette[0])

#define CAT(p, lit) (memcpy((p), (lit), sizeof(lit) - 1), (p) + sizeof(lit) - 1)

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

void sup_outfmt_init(hum_outfmt *f, int fd)
{
	memset(f, 0, sizeof *f);
	f->ts_sec = -1;
	f->color = want_color(fd);
	f->tty = isatty(fd) == 1;
}

static const char *stamp(hum_outfmt *f, int64_t ms)
{
	int64_t sec = ms / 1000;
	if (sec != f->ts_sec) {
		time_t t = (time_t)sec;
		struct tm tm;
		localtime_r(&t, &tm);
		f->ts[0] = (char)('0' + tm.tm_hour / 10 % 10), f->ts[1] = (char)('0' + tm.tm_hour % 10);
		f->ts[3] = (char)('0' + tm.tm_min / 10 % 10), f->ts[4] = (char)('0' + tm.tm_min % 10);
		f->ts[6] = (char)('0' + tm.tm_sec / 10 % 10), f->ts[7] = (char)('0' + tm.tm_sec % 10);
		f->ts[2] = f->ts[5] = ':';
		f->ts[8] = '\0';
		f->ts_sec = sec;
	}
	return f->ts;
}

/* Columns of a name: its UTF-8 characters (bytes that start one). */
static size_t columns(const char *s, size_t n)
{
	size_t c = 0;
	for (size_t i = 0; i < n; i++)
		c += ((unsigned char)s[i] & 0xC0) != 0x80;
	return c;
}

void sup_outfmt_widen(hum_outfmt *f, const char *name, size_t nlen)
{
	if (!f->width_fixed) {
		size_t c = columns(name, nlen);
		if (c > f->width)
			f->width = c < HUM_OUTPUT_WIDTH_MAX ? c : HUM_OUTPUT_WIDTH_MAX;
	}
}

/* The name in exactly f->width columns: padded, or cut (at a character
 * boundary) with an ellipsis in the last column.  Bytes written to out. */
static size_t fit_name(const hum_outfmt *f, const char *name, size_t n, char *out)
{
	size_t w = f->width, cols = columns(name, n);
	if (cols <= w) {
		memcpy(out, name, n);
		memset(out + n, ' ', w - cols);
		return n + w - cols;
	}
	size_t keep = 0;
	for (size_t c = 0; keep < n; keep++)
		if (((unsigned char)name[keep] & 0xC0) != 0x80 && c++ == w - 1)
			break;
	memcpy(out, name, keep);
	memcpy(out + keep, "\xe2\x80\xa6", 3); /* U+2026 … */
	return keep + 3;
}

/* Everything between the timestamp and the line's bytes, for one name and
 * stream: computed once per batch. */
size_t sup_outfmt_prefix(const hum_outfmt *f, uint32_t id, const char *name, size_t nlen,
			 int stream, char *pre)
{
	char *p = pre;
	bool sys = stream == HUM_STREAM_SYS;
	if (f->color) {
		p = CAT(p, "\033[0m ");
		if (sys) {
			p = CAT(p, "\033[1m");
		} else {
			const char *c = palette[id % NPALETTE];
			*p++ = '\033', *p++ = '[';
			memcpy(p, c, 2);
			p += 2;
			*p++ = 'm';
		}
	} else {
		*p++ = ' ';
	}
	p += fit_name(f, name, nlen, p);
	if (f->color)
		p = CAT(p, "\033[0m");
	if (stream == HUM_STREAM_ERR)
		p = f->color ? CAT(p, " \033[31m!\033[0m ") : CAT(p, " ! ");
	else if (sys)
		p = CAT(p, " * ");
	else
		p = CAT(p, " \xe2\x94\x82 "); /* U+2502 │ */
	return (size_t)(p - pre);
}

size_t sup_outfmt_line(hum_outfmt *f, const char *pre, size_t prelen, const hum_line *l, char *out)
{
	char *w = out;
	if (f->color)
		w = CAT(w, "\033[2m");
	memcpy(w, stamp(f, l->time_ms), 8);
	w += 8;
	memcpy(w, pre, prelen);
	w += prelen;
	memcpy(w, l->data, l->len);
	w += l->len;
	/* a colour the child left on must not spill into the next prefix */
	if (f->tty && l->len && memchr(l->data, '\033', l->len))
		w = CAT(w, "\033[0m");
	*w++ = '\n';
	return (size_t)(w - out);
}

/* One of hum's own lines, formatted into out (OUTFMT_PRE_MAX + 16 + mlen
 * bytes), without queueing it: for lines that must go out before what is
 * queued. */
size_t sup_outfmt_sys(hum_outfmt *f, int64_t ms, const char *msg, size_t mlen, char *out)
{
	char *w = out;
	if (f->color)
		w = CAT(w, "\033[2m");
	memcpy(w, stamp(f, ms), 8);
	w += 8;
	w += sup_outfmt_prefix(f, HUM_SYS_ID, HUM_SYS_NAME, strlen(HUM_SYS_NAME), HUM_STREAM_SYS, w);
	memcpy(w, msg, mlen);
	w += mlen;
	*w++ = '\n';
	return (size_t)(w - out);
}

int hum_output_vformat(char *buf, size_t size, const char *fmt, va_list ap)
{
	int n = vsnprintf(buf, size, fmt, ap);
	if (n < 0)
		return -1;
	return (size_t)n < size ? n : (int)(size - 1);
}

/*
 * lines.c — the line splitter (see lines.h for the rules).
 *
 * Owns nothing shared: a hum_lbuf belongs to one pipe reader on the loop
 * thread.  The hot path for short lines is one memchr per line and one small
 * memcpy of the carry per read.
 */
#include <stdlib.h>
#include <string.h>

#include "lines.h"

static inline void emit(hum_line *out, size_t *k, const char *p, size_t len, int flags)
{
	hum_line *l = &out[(*k)++];
	l->data = p;
	l->len = (uint32_t)len;
	l->flags = (uint8_t)flags;
}

/* Keeps [p, p+len) as the carry; false if it cannot (ENOMEM). */
static bool keep(hum_lbuf *b, const char *p, size_t len)
{
	if (len > b->cap) {
		uint32_t cap = b->cap ? b->cap : 256;
		while (cap < len)
			cap *= 2;
		if (cap > HUM_LINE_MAX)
			cap = HUM_LINE_MAX;
		char *c = realloc(b->carry, cap);
		if (c == NULL)
			return false;
		b->carry = c;
		b->cap = cap;
	}
	/* p points into scratch, never into the carry: no overlap. */
	memcpy(b->carry, p, len);
	b->len = (uint32_t)len;
	return true;
}

size_t hum_lbuf_split(hum_lbuf *b, char *scratch, size_t n, bool eof, hum_line *out)
{
	char *end = scratch + HUM_LBUF_READ_AT + n;
	char *p = scratch + HUM_LBUF_READ_AT - b->len;
	size_t k = 0;

	if (b->len)
		memcpy(p, b->carry, b->len);
	b->len = 0;
	/* Complete lines.  Only the new bytes can hold a newline (the carry
	 * has none), but scanning from p keeps the loop simple. */
	char *scan = scratch + HUM_LBUF_READ_AT;
	for (;;) {
		char *nl = memchr(scan, '\n', (size_t)(end - scan));
		if (nl == NULL)
			break;
		/* "\r\n" ends a line like "\n" (Windows-born and network
		 * tools): the \r is not part of the line, so probes, patterns
		 * and readers never see it.  A lone \r stays (progress bars). */
		char *stop = nl > p && nl[-1] == '\r' ? nl - 1 : nl;
		size_t len = (size_t)(stop - p);
		while (len > HUM_LINE_MAX) {
			emit(out, &k, p, HUM_LINE_MAX, HUM_LINE_CONT);
			p += HUM_LINE_MAX;
			len -= HUM_LINE_MAX;
		}
		emit(out, &k, p, len, 0);
		p = scan = nl + 1;
	}
	/* The unterminated tail: split while longer than the maximum (a line
	 * of exactly HUM_LINE_MAX bytes followed by '\n' stays one line). */
	size_t rest = (size_t)(end - p);
	while (rest > HUM_LINE_MAX) {
		emit(out, &k, p, HUM_LINE_MAX, HUM_LINE_CONT);
		p += HUM_LINE_MAX;
		rest -= HUM_LINE_MAX;
	}
	if (rest == 0)
		return k;
	if (eof)
		emit(out, &k, p, rest, HUM_LINE_PARTIAL);
	else if (!keep(b, p, rest))
		emit(out, &k, p, rest, HUM_LINE_CONT);
	return k;
}

void hum_lbuf_free(hum_lbuf *b)
{
	free(b->carry);
	b->carry = NULL;
	b->len = b->cap = 0;
}

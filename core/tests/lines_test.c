/*
 * lines_test.c — the line splitter alone: random streams (short, long, huge
 * and empty lines, NUL bytes) fed in random read sizes must come back
 * byte-exact when the pieces are joined; CONT pieces are exactly
 * HUM_LINE_MAX; a line of exactly HUM_LINE_MAX bytes is not split; the tail
 * is PARTIAL only at EOF; "\r\n" ends a line without its \r (also split
 * across reads and at the long-line boundary), a lone \r stays.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sup/lines.h"
#include "tap.h"

static char scratch[HUM_LBUF_SCRATCH];
static hum_line out[HUM_LBUF_MAX_LINES];

typedef struct result {
	char *data;
	size_t len, cap;
	size_t pieces, cont, partial, bad;
} result;

static void add(result *r, const char *p, size_t n)
{
	if (r->len + n + 1 > r->cap) {
		r->cap = (r->len + n + 1) * 2;
		r->data = realloc(r->data, r->cap);
	}
	memcpy(r->data + r->len, p, n);
	r->len += n;
}

static void collect(result *r, size_t n, int eof)
{
	for (size_t i = 0; i < n; i++) {
		const hum_line *l = &out[i];
		r->pieces++;
		if (l->len > HUM_LINE_MAX)
			r->bad++;
		if (l->flags & HUM_LINE_CONT) {
			r->cont++;
			if (l->len != HUM_LINE_MAX)
				r->bad++;
			add(r, l->data, l->len);
		} else if (l->flags & HUM_LINE_PARTIAL) {
			r->partial++;
			if (!eof || i != n - 1)
				r->bad++;
			add(r, l->data, l->len);
		} else {
			add(r, l->data, l->len);
			add(r, "\n", 1);
		}
	}
}

/* Feeds src in reads of random size (1..HUM_READ_SIZE, biased small). */
static result run(const char *src, size_t len, unsigned seed)
{
	result r = { 0 };
	hum_lbuf b = { 0 };
	srand(seed);
	size_t off = 0;
	while (off < len) {
		size_t k = rand() % 4 == 0 ? HUM_READ_SIZE : 1 + (size_t)rand() % 4096;
		if (k > len - off)
			k = len - off;
		memcpy(scratch + HUM_LBUF_READ_AT, src + off, k);
		off += k;
		collect(&r, hum_lbuf_split(&b, scratch, k, false, out), 0);
	}
	collect(&r, hum_lbuf_split(&b, scratch, 0, true, out), 1);
	hum_lbuf_free(&b);
	return r;
}

static char *gen(size_t *len, int trailing_newline)
{
	size_t cap = 8 << 20, n = 0;
	char *s = malloc(cap);
	static const size_t sizes[] = { 0, 1, 5, 80, 200, HUM_LINE_MAX - 1, HUM_LINE_MAX,
					HUM_LINE_MAX + 1, 2 * HUM_LINE_MAX, 300000 };
	for (int i = 0; i < 400; i++) {
		size_t l = i % 7 == 0 ? sizes[rand() % 10] : (size_t)rand() % 120;
		if (n + l + 1 > cap)
			break;
		for (size_t j = 0; j < l; j++)
			s[n++] = (char)(rand() % 7 == 0 ? 0 : 'a' + rand() % 26); /* NULs too */
		s[n++] = '\n';
	}
	if (!trailing_newline) {
		memcpy(s + n, "tail\0end", 8);
		n += 8;
	}
	*len = n;
	return s;
}

/* Splits src fed one byte per read (the worst split) and in one read:
 * both must give the same lines, joined with '|' into got. */
static void split_both(const char *src, char *got, size_t cap, bool *same)
{
	char one[4096] = "", bytewise[4096] = "";
	for (int mode = 0; mode < 2; mode++) {
		char *dst = mode ? bytewise : one;
		size_t dl = 0;
		hum_lbuf b = { 0 };
		size_t len = strlen(src), step = mode ? 1 : len;
		for (size_t off = 0; off <= len; off += step) {
			size_t k = off + step > len ? len - off : step;
			memcpy(scratch + HUM_LBUF_READ_AT, src + off, k);
			size_t n = hum_lbuf_split(&b, scratch, k, off + k >= len, out);
			for (size_t i = 0; i < n; i++) {
				memcpy(dst + dl, out[i].data, out[i].len);
				dl += out[i].len;
				dst[dl++] = '|';
			}
			if (off + k >= len)
				break;
		}
		dst[dl] = 0;
		hum_lbuf_free(&b);
	}
	*same = strcmp(one, bytewise) == 0;
	snprintf(got, cap, "%s", one);
}

static void test_crlf(void)
{
	char got[4096];
	bool same;
	split_both("listening\r\nsecond\r\n\r\nplain\n", got, sizeof got, &same);
	ok(!strcmp(got, "listening|second||plain|") && same,
	   "\\r\\n ends a line like \\n, also split across reads (%s)", got);
	split_both("10%\r20%\r100%\ndone\r", got, sizeof got, &same);
	ok(!strcmp(got, "10%\r20%\r100%|done\r|") && same,
	   "a lone \\r stays, at EOF too (progress bars are a terminal matter)");
	/* A long line ending in \r\n: the pieces carry no \r. */
	hum_lbuf b = { 0 };
	memset(scratch + HUM_LBUF_READ_AT, 'z', HUM_LINE_MAX);
	scratch[HUM_LBUF_READ_AT + HUM_LINE_MAX - 1] = '\r';
	size_t n = hum_lbuf_split(&b, scratch, HUM_LINE_MAX, false, out);
	scratch[HUM_LBUF_READ_AT] = '\n';
	n += hum_lbuf_split(&b, scratch, 1, false, out + n);
	ok(n == 1 && out[0].len == HUM_LINE_MAX - 1 && out[0].flags == 0,
	   "a line of HUM_LINE_MAX bytes with its \\r: one line, without the \\r");
	memset(scratch + HUM_LBUF_READ_AT, 'z', HUM_READ_SIZE);
	n = hum_lbuf_split(&b, scratch, HUM_LINE_MAX, false, out);
	scratch[HUM_LBUF_READ_AT] = '\r';
	n += hum_lbuf_split(&b, scratch, 1, false, out + n);
	scratch[HUM_LBUF_READ_AT] = '\n';
	n += hum_lbuf_split(&b, scratch, 1, false, out + n);
	ok(n == 2 && out[0].flags == HUM_LINE_CONT && out[0].len == HUM_LINE_MAX && out[1].len == 0 &&
	   out[1].flags == 0, "one byte over the max before \\r\\n: a CONT piece and an empty end");
	hum_lbuf_free(&b);
}

int main(void)
{
	for (int t = 0; t < 2; t++) {
		srand(42 + t);
		size_t len;
		char *src = gen(&len, t == 0);
		int same = 1;
		size_t partial = 0, bad = 0;
		for (unsigned seed = 1; seed <= 20; seed++) {
			result r = run(src, len, seed);
			same &= r.len == len && memcmp(r.data, src, len) == 0;
			partial += r.partial;
			bad += r.bad;
			free(r.data);
		}
		ok(same, "stream %d (%zu bytes): joined pieces equal the input, 20 read patterns", t, len);
		ok(bad == 0, "stream %d: pieces <= HUM_LINE_MAX, CONT pieces exactly the max", t);
		ok(partial == (t == 1 ? 20 : 0), "stream %d: PARTIAL %s", t,
		   t == 1 ? "once per run, at EOF" : "never (input ends with newline)");
		free(src);
	}

	/* Exact boundaries, one read each. */
	hum_lbuf b = { 0 };
	memset(scratch + HUM_LBUF_READ_AT, 'x', HUM_LINE_MAX);
	size_t n = hum_lbuf_split(&b, scratch, HUM_LINE_MAX, false, out);
	ok(n == 0 && b.len == HUM_LINE_MAX, "64 KiB without newline: carried, not emitted yet");
	scratch[HUM_LBUF_READ_AT] = '\n';
	n = hum_lbuf_split(&b, scratch, 1, false, out);
	ok(n == 1 && out[0].len == HUM_LINE_MAX && out[0].flags == 0,
	   "a line of exactly HUM_LINE_MAX bytes is one unsplit line");
	memset(scratch + HUM_LBUF_READ_AT, 'y', HUM_READ_SIZE);
	n = hum_lbuf_split(&b, scratch, HUM_READ_SIZE, false, out);
	size_t n2 = hum_lbuf_split(&b, scratch, 1, false, out + n); /* one more 'y' */
	ok(n == 0 && n2 == 1 && out[0].flags == HUM_LINE_CONT && out[0].len == HUM_LINE_MAX &&
	   b.len == 1, "one byte over: a CONT piece, the rest carried");
	memcpy(scratch + HUM_LBUF_READ_AT, "\n\n", 2);
	n = hum_lbuf_split(&b, scratch, 2, false, out);
	ok(n == 2 && out[0].len == 1 && out[1].len == 0, "the continuation, then an empty line");
	n = hum_lbuf_split(&b, scratch, 0, true, out);
	ok(n == 0, "EOF with nothing carried: no line");
	memset(scratch + HUM_LBUF_READ_AT, '\n', HUM_READ_SIZE);
	n = hum_lbuf_split(&b, scratch, HUM_READ_SIZE, false, out);
	ok(n == HUM_READ_SIZE && n <= HUM_LBUF_MAX_LINES, "64 Ki empty lines in one read");
	hum_lbuf_free(&b);
	test_crlf();
	return done_testing();
}

/*
 * lines_test.c — the line splitter alone: random streams (short, long, huge
 * and empty lines, NUL bytes) fed in random read sizes must come back
 * byte-exact when the pieces are joined; CONT pieces are exactly
 * HUM_LINE_MAX; a line of exactly HUM_LINE_MAX bytes is not split; the tail
 * is PARTIAL only at EOF.
 */
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
	return done_testing();
}

/*
 * grep.c — the checks a "grep" regular expression passes before regcomp
 * (grep.h).  One pass over the pattern with a frame per open group, in the
 * syntax glibc's regcomp reads with REG_EXTENDED: what a repetition applies
 * to (the last atom or group), how big it is once copied, and whether it
 * can match the empty string.
 */
#include <stdbool.h>
#include <string.h>

#include "api_priv.h"
#include "grep.h"

typedef struct frame {
	size_t total;           /* size of the group so far, every alternative */
	size_t last;            /* size of the last item of this alternative */
	bool has_last;          /* there is one (not at the start of an alternative) */
	bool last_empty;        /* the last item can match "" */
	bool seq_empty;         /* this alternative so far can match "" */
	bool before_last_empty; /* ... so far without its last item */
	bool alt_empty;         /* an earlier alternative can match "" */
} frame;

/* Digits at *p, as a number capped above HUM_GREP_MAX_NODES; -1 if none. */
static long count_at(const char **p)
{
	long v = -1;
	for (; **p >= '0' && **p <= '9'; (*p)++)
		v = v < 0 ? **p - '0' : v > HUM_GREP_MAX_NODES ? v : v * 10 + (**p - '0');
	return v;
}

/* The repetition at p[*i] ('*', '?', '+' or an interval {m}, {m,}, {,n},
 * {m,n}): how many copies of its atom regcomp makes (the largest count; m+1
 * for {m,}: m copies and a star) and the fewest it matches.  Moves *i to the
 * interval's '}'.  0 for a '{' that starts no interval (a literal). */
static size_t copies(const char *p, size_t *i, long *min)
{
	*min = p[*i] == '+';
	if (p[*i] != '{')
		return p[*i] == '+' ? 2 : 1;
	const char *q = p + *i + 1;
	long m = count_at(&q), n = m;
	if (*q == ',') {
		q++;
		n = count_at(&q);
		if (n < 0)
			n = (m < 0 ? 0 : m) + 1;
	}
	if (*q != '}' || n < 0) /* n < 0: no count and no comma */
		return 0;
	*i = (size_t)(q - p);
	*min = m < 0 ? 0 : m;
	if (m > n)
		n = m;
	return n > 0 ? (size_t)n : 1;
}

/* Skips the bracket expression opening at p[i]; the index of its ']' (or of
 * the last byte when it is not closed).  A ']' first (after '^') is
 * literal; [:class:], [=equiv=] and [.coll.] nest. */
static size_t bracket_end(const char *p, size_t i)
{
	size_t k = i + 1 + (p[i + 1] == '^');
	if (p[k] == ']')
		k++;
	while (p[k] && p[k] != ']') {
		char d = p[k + 1];
		const char *end = p[k] == '[' && (d == ':' || d == '=' || d == '.') ? strchr(p + k + 2, d) : NULL;
		while (end && end[1] != ']')
			end = strchr(end + 1, d);
		k = end ? (size_t)(end - p) + 2 : k + 1;
	}
	return p[k] ? k : k - 1;
}

static void add_item(frame *f, size_t size, bool empty)
{
	f->total += size;
	f->before_last_empty = f->seq_empty;
	f->seq_empty = f->seq_empty && empty;
	f->last = size;
	f->last_empty = empty;
	f->has_last = true;
}

static const frame start = { .seq_empty = true };

int hum_grep_check(const char *p, char *err, size_t errlen)
{
	frame fr[HUM_GREP_MAX_GROUPS + 1];
	int top = 0;
	fr[0] = start;
	for (size_t i = 0; p[i]; i++) {
		char c = p[i];
		frame *f = &fr[top];
		long min = 0;
		size_t factor = c == '*' || c == '?' || c == '+' || c == '{' ? copies(p, &i, &min) : 0;
		if (factor) {
			if (!f->has_last || f->last_empty) {
				hum_api_seterr_(err, errlen,
						"bad grep pattern: the repetition at byte %zu applies to something that "
						"can match nothing", i + 1);
				return -1;
			}
			/* saturating: sizes stay <= HUM_GREP_MAX_NODES + 1 */
			size_t grown = f->last > (HUM_GREP_MAX_NODES + 1) / factor ? HUM_GREP_MAX_NODES + 1
										   : f->last * factor;
			f->total += grown - f->last;
			f->last = grown;
			if (min == 0) {
				f->last_empty = true;
				f->seq_empty = f->before_last_empty;
			}
		} else if (c == '\\' && p[i + 1] >= '1' && p[i + 1] <= '9') {
			hum_api_seterr_(err, errlen, "bad grep pattern: back-references are not supported");
			return -1;
		} else if (c == '\\' && p[i + 1]) {
			i++;
			add_item(f, 1, strchr("bB<>`'", p[i]) != NULL); /* GNU zero-width escapes */
		} else if (c == '[') {
			i = bracket_end(p, i);
			add_item(f, 1, false);
		} else if (c == '^' || c == '$') {
			add_item(f, 1, true);
		} else if (c == '(') {
			if (top == HUM_GREP_MAX_GROUPS) {
				hum_api_seterr_(err, errlen, "bad grep pattern: groups nested more than %d deep",
						HUM_GREP_MAX_GROUPS);
				return -1;
			}
			fr[++top] = start;
		} else if (c == ')' && top > 0) {
			frame g = fr[top--];
			add_item(&fr[top], g.total, g.alt_empty || g.seq_empty);
		} else if (c == '|') {
			f->alt_empty = f->alt_empty || f->seq_empty;
			f->seq_empty = true;
			f->has_last = false;
		} else {
			add_item(f, 1, false);
		}
		/* an unclosed group counts with its parents (regcomp refuses it,
		 * but only after building it) */
		size_t sum = 0;
		for (int k = 0; k <= top; k++)
			sum += fr[k].total;
		if (sum > HUM_GREP_MAX_NODES) {
			hum_api_seterr_(err, errlen,
					"grep pattern too large once its repetitions are expanded (more than %d elements)",
					HUM_GREP_MAX_NODES);
			return -1;
		}
	}
	return 0;
}

/*
 * select.c — selectors: checking one, and the linear glob matcher behind
 * every selection (the definition is in select.h).
 *
 * Owns: the glob syntax.  The checker and the matcher walk a `[...]` set with
 * the same function, so a pattern the checker accepts is one the matcher can
 * read without looking past its end.
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "select.h"

#define STR_(x) #x
#define STR(x) STR_(x)

/* The byte at p[*j] (a `\` takes the next one literally); advances *j past
 * it.  -1 when a `\` is the last byte. */
static int set_byte(const char *p, size_t n, size_t *j)
{
	if (p[*j] == '\\' && ++*j >= n)
		return -1;
	return (unsigned char)p[(*j)++];
}

/* Walks the set that starts at p[i] == '['.  Returns the index after its
 * closing `]`, or 0 when it has none before n; *in says whether byte c is
 * selected by the set (pass c = -1 and in = NULL to check only).  A range
 * whose ends are reversed (z-a) is empty. */
static size_t walk_set(const char *p, size_t n, size_t i, int c, bool *in)
{
	size_t j = i + 1;
	bool neg = j < n && (p[j] == '!' || p[j] == '^');
	bool hit = false;
	if (neg)
		j++;
	for (bool first = true; j < n && (first || p[j] != ']'); first = false) {
		int lo = set_byte(p, n, &j), hi = lo;
		if (lo < 0)
			return 0;
		if (j + 1 < n && p[j] == '-' && p[j + 1] != ']') {
			j++;
			hi = set_byte(p, n, &j);
			if (hi < 0)
				return 0;
		}
		hit |= c >= lo && c <= hi;
	}
	if (j >= n)
		return 0;
	if (in)
		*in = hit != neg;
	return j + 1;
}

/* Does the single-byte element at p[i] (not a `*`) match byte c?  *next is
 * the index after the element.  p was checked by hum_select_parse. */
static bool elem_match(const char *p, size_t n, size_t i, unsigned char c, size_t *next)
{
	bool in = false;
	switch (p[i]) {
	case '?':
		*next = i + 1;
		return true;
	case '[':
		*next = walk_set(p, n, i, c, &in);
		return in;
	case '\\':
		*next = i + 2;
		return (unsigned char)p[i + 1] == c;
	default:
		*next = i + 1;
		return (unsigned char)p[i] == c;
	}
}

/* p[0..pn) against s[0..sn), whole.  Every element but `*` takes exactly one
 * byte, so on a mismatch it is enough to let the last `*` seen take one more
 * byte and retry from just after it: an earlier `*` could only take bytes the
 * last one can take as well.  Each retry moves `mark` forward, and between
 * two retries the pattern is read once: at most about sn x pn steps. */
static bool glob(const char *p, size_t pn, const char *s, size_t sn)
{
	size_t pi = 0, si = 0, star = SIZE_MAX, mark = 0;
	while (si < sn) {
		size_t next;
		if (pi < pn && p[pi] == '*') {
			star = ++pi;
			mark = si;
		} else if (pi < pn && elem_match(p, pn, pi, (unsigned char)s[si], &next)) {
			pi = next;
			si++;
		} else if (star != SIZE_MAX) {
			pi = star;
			si = ++mark;
		} else {
			return false;
		}
	}
	while (pi < pn && p[pi] == '*')
		pi++;
	return pi == pn;
}

int hum_select_parse(hum_selector *sel, const char *text, size_t len, char *err, size_t errlen)
{
	const char *why = NULL;
	if (len == 0)
		why = "empty";
	else if (len > HUM_SELECT_MAX)
		why = "longer than " STR(HUM_SELECT_MAX) " bytes";
	else if (memchr(text, 0, len))
		why = "contains a NUL byte";
	for (size_t i = 0; !why && i < len;) {
		if (text[i] == '\\') {
			if (i + 1 == len)
				why = "ends with a lone \\";
			i += 2;
		} else if (text[i] == '[') {
			i = walk_set(text, len, i, -1, NULL);
			if (i == 0)
				why = "a [ without its ]";
		} else {
			i++;
		}
	}
	if (why) {
		/* quote the start of it, not a kilobyte of stars */
		int show = len > 40 ? 40 : (int)len;
		snprintf(err, errlen, "bad selector \"%.*s%s\": %s", show, text ? text : "",
			 (size_t)show < len ? "..." : "", why);
		return -EINVAL;
	}
	sel->text = text;
	sel->len = len;
	return 0;
}

bool hum_select_match(const hum_selector *sel, const char *name, size_t base_len, const char *groups)
{
	size_t nl = strlen(name);
	if (glob(sel->text, sel->len, name, nl))
		return true;
	if (base_len > 0 && base_len < nl && glob(sel->text, sel->len, name, base_len))
		return true;
	for (const char *g = groups ? groups : ""; *g;) {
		const char *comma = strchr(g, ',');
		size_t gl = comma ? (size_t)(comma - g) : strlen(g);
		if (gl > 0 && glob(sel->text, sel->len, g, gl))
			return true;
		g += gl + (comma != NULL);
	}
	return false;
}

bool hum_select_snap(const hum_selector *sel, const hum_snap *s)
{
	return hum_select_match(sel, s->name, s->base_len, s->groups);
}

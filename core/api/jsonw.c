/*
 * jsonw.c — the control socket's JSON writer (jsonw.h).
 *
 * Owns nothing global: it appends to caller-owned hum_bufs, which only grow,
 * so encoding an answer costs no allocation once the client's buffer has
 * reached the size of its largest answer.
 */
#include <stdlib.h>
#include <string.h>

#include "jsonw.h"

/* Buffer ------------------------------------------------------------------- */

bool hum_buf_reserve(hum_buf *b, size_t extra)
{
	if (b->oom)
		return false;
	if (b->cap - b->len >= extra)
		return true;
	size_t cap = b->cap ? b->cap : 256;
	while (cap - b->len < extra) {
		if (cap > SIZE_MAX / 2) {
			b->oom = true;
			return false;
		}
		cap *= 2;
	}
	char *p = realloc(b->p, cap);
	if (!p) {
		b->oom = true;
		return false;
	}
	b->p = p;
	b->cap = cap;
	return true;
}

void hum_buf_put(hum_buf *b, const void *s, size_t n)
{
	if (n && hum_buf_reserve(b, n)) {
		memcpy(b->p + b->len, s, n);
		b->len += n;
	}
}

void hum_buf_puts(hum_buf *b, const char *s) { hum_buf_put(b, s, strlen(s)); }

void hum_buf_putc(hum_buf *b, char c)
{
	if (hum_buf_reserve(b, 1))
		b->p[b->len++] = c;
}

void hum_buf_free(hum_buf *b)
{
	free(b->p);
	b->p = NULL;
	b->len = b->cap = 0;
	b->oom = false;
}

/* Encoder ------------------------------------------------------------------- */

/* Length of the valid UTF-8 sequence at s (1-4), or 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n)
{
	unsigned c = s[0];
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		return n >= 2 && (s[1] & 0xc0) == 0x80 ? 2 : 0;
	if (c >= 0xe0 && c <= 0xef) {
		if (n < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
			return 0;
		if (c == 0xe0 && s[1] < 0xa0)
			return 0; /* overlong */
		if (c == 0xed && s[1] > 0x9f)
			return 0; /* surrogate */
		return 3;
	}
	if (c >= 0xf0 && c <= 0xf4) {
		if (n < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
			return 0;
		if (c == 0xf0 && s[1] < 0x90)
			return 0;
		if (c == 0xf4 && s[1] > 0x8f)
			return 0;
		return 4;
	}
	return 0;
}

void hum_json_str(hum_buf *b, const char *str, size_t n)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *s = (const unsigned char *)str;
	/* worst case: every byte becomes \u00XX (6) or U+FFFD (3 bytes) */
	if (!hum_buf_reserve(b, n * 6 + 2))
		return;
	char *o = b->p + b->len;
	*o++ = '"';
	size_t i = 0;
	while (i < n) {
		unsigned c = s[i];
		if (c >= 0x20 && c < 0x80 && c != '"' && c != '\\') {
			*o++ = (char)c;
			i++;
			continue;
		}
		if (c < 0x80) {
			*o++ = '\\';
			switch (c) {
			case '"': *o++ = '"'; break;
			case '\\': *o++ = '\\'; break;
			case '\n': *o++ = 'n'; break;
			case '\r': *o++ = 'r'; break;
			case '\t': *o++ = 't'; break;
			case '\b': *o++ = 'b'; break;
			case '\f': *o++ = 'f'; break;
			default:
				*o++ = 'u'; *o++ = '0'; *o++ = '0';
				*o++ = hex[c >> 4]; *o++ = hex[c & 15];
			}
			i++;
			continue;
		}
		size_t k = utf8_len(s + i, n - i);
		if (k == 0) {
			memcpy(o, "\xef\xbf\xbd", 3); /* U+FFFD for an invalid byte */
			o += 3;
			i++;
		} else {
			memcpy(o, s + i, k);
			o += k;
			i += k;
		}
	}
	*o++ = '"';
	b->len = (size_t)(o - b->p);
}

void hum_json_cstr(hum_buf *b, const char *s)
{
	if (s)
		hum_json_str(b, s, strlen(s));
	else
		hum_buf_put(b, "null", 4);
}

void hum_json_u64(hum_buf *b, uint64_t v)
{
	char tmp[24];
	int k = sizeof tmp;
	do {
		tmp[--k] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	hum_buf_put(b, tmp + k, sizeof tmp - (size_t)k);
}

void hum_json_i64(hum_buf *b, int64_t v)
{
	if (v < 0) {
		hum_buf_putc(b, '-');
		hum_json_u64(b, (uint64_t)0 - (uint64_t)v);
	} else {
		hum_json_u64(b, (uint64_t)v);
	}
}

void hum_json_ms(hum_buf *b, int64_t ms)
{
	uint64_t u = (uint64_t)ms;
	if (ms < 0) {
		hum_buf_putc(b, '-');
		u = (uint64_t)0 - u; /* no overflow at INT64_MIN */
	}
	hum_json_u64(b, u / 1000);
	char frac[4] = { '.', (char)('0' + u / 100 % 10), (char)('0' + u / 10 % 10), (char)('0' + u % 10) };
	hum_buf_put(b, frac, 4);
}

/*
 * json.c — the control socket's JSON encoder and request parser (json.h).
 *
 * Owns nothing global.  The encoder writes into caller-owned hum_bufs; the
 * parser allocates nodes and decoded strings from a hum_jarena, a list of
 * blocks that is reset between requests, so a request costs no malloc once
 * the arena has grown to the size of the largest request seen.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"

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
	if (ms < 0) {
		hum_buf_putc(b, '-');
		ms = -ms;
	}
	hum_json_u64(b, (uint64_t)ms / 1000);
	char frac[4] = { '.', (char)('0' + ms / 100 % 10), (char)('0' + ms / 10 % 10), (char)('0' + ms % 10) };
	hum_buf_put(b, frac, 4);
}

/* Arena --------------------------------------------------------------------- */

#define BLOCK 65536

struct block {
	struct block *next;
	size_t used, size;
	max_align_t data[];
};

struct hum_jarena {
	struct block *head; /* the current block is head; the first block is last */
	size_t nodes;
};

hum_jarena *hum_jarena_new(void)
{
	return calloc(1, sizeof(hum_jarena));
}

void hum_jarena_reset(hum_jarena *a)
{
	/* free every block but the oldest (the list ends with it) */
	while (a->head && a->head->next) {
		struct block *b = a->head;
		a->head = b->next;
		free(b);
	}
	if (a->head)
		a->head->used = 0;
	a->nodes = 0;
}

void hum_jarena_free(hum_jarena *a)
{
	if (!a)
		return;
	while (a->head) {
		struct block *b = a->head;
		a->head = b->next;
		free(b);
	}
	free(a);
}

static void *arena_alloc(hum_jarena *a, size_t n)
{
	n = (n + sizeof(max_align_t) - 1) & ~(sizeof(max_align_t) - 1);
	struct block *b = a->head;
	if (!b || b->size - b->used < n) {
		size_t size = n > BLOCK ? n : BLOCK;
		struct block *nb = malloc(sizeof *nb + size);
		if (!nb)
			return NULL;
		nb->used = 0;
		nb->size = size;
		if (b && b->used == 0 && !b->next) {
			/* the kept first block is too small and empty: replace it */
			free(b);
			b = NULL;
			a->head = NULL;
		}
		nb->next = a->head;
		a->head = nb;
		b = nb;
	}
	void *p = (char *)b->data + b->used;
	b->used += n;
	return p;
}

/* Parser -------------------------------------------------------------------- */

typedef struct parser {
	hum_jarena *a;
	const char *s;
	size_t n, i;
	int depth;
	char *err;
	size_t errlen;
	bool failed;
} parser;

static void *fail(parser *p, const char *msg)
{
	if (!p->failed) {
		p->failed = true;
		snprintf(p->err, p->errlen, "at byte %zu: %s", p->i + 1, msg);
	}
	return NULL;
}

static void ws(parser *p)
{
	while (p->i < p->n) {
		char c = p->s[p->i];
		if (c != ' ' && c != '\t' && c != '\n' && c != '\r')
			break;
		p->i++;
	}
}

static hum_jval *node(parser *p, int type)
{
	if (++p->a->nodes > HUM_JSON_MAX_NODES)
		return fail(p, "too many values");
	hum_jval *v = arena_alloc(p->a, sizeof *v);
	if (!v)
		return fail(p, "out of memory");
	memset(v, 0, sizeof *v);
	v->type = type;
	v->raw = p->s + p->i;
	return v;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9') return c - '0';
	if (c >= 'a' && c <= 'f') return c - 'a' + 10;
	if (c >= 'A' && c <= 'F') return c - 'A' + 10;
	return -1;
}

static long hex4(parser *p, size_t at)
{
	if (at + 4 > p->n)
		return -1;
	long v = 0;
	for (int k = 0; k < 4; k++) {
		int h = hexval(p->s[at + k]);
		if (h < 0)
			return -1;
		v = v * 16 + h;
	}
	return v;
}

/* Parses a string at p->i (the opening quote); returns decoded text in the
 * arena, NUL terminated, and its length. */
static char *string(parser *p, size_t *len)
{
	size_t start = ++p->i, j = start;
	/* first pass: find the end and validate, so the output size is known */
	while (1) {
		if (j >= p->n)
			return fail(p, "unterminated string");
		unsigned char c = (unsigned char)p->s[j];
		if (c == '"')
			break;
		if (c < 0x20) {
			p->i = j;
			return fail(p, "control character in string");
		}
		j += c == '\\' ? 2 : 1;
	}
	char *out = arena_alloc(p->a, j - start + 1);
	if (!out)
		return fail(p, "out of memory");
	size_t o = 0, i = start;
	while (i < j) {
		char c = p->s[i];
		if (c != '\\') {
			out[o++] = c;
			i++;
			continue;
		}
		char e = p->s[i + 1];
		i += 2;
		switch (e) {
		case '"': out[o++] = '"'; break;
		case '\\': out[o++] = '\\'; break;
		case '/': out[o++] = '/'; break;
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			long cp = hex4(p, i);
			if (cp < 0) {
				p->i = i - 2;
				return fail(p, "bad \\u escape");
			}
			i += 4;
			if (cp >= 0xd800 && cp <= 0xdbff) {
				long lo = (i + 6 <= j && p->s[i] == '\\' && p->s[i + 1] == 'u') ? hex4(p, i + 2) : -1;
				if (lo < 0xdc00 || lo > 0xdfff) {
					p->i = i - 6;
					return fail(p, "unpaired surrogate in \\u escape");
				}
				i += 6;
				cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
			} else if (cp >= 0xdc00 && cp <= 0xdfff) {
				p->i = i - 6;
				return fail(p, "unpaired surrogate in \\u escape");
			}
			/* encode as UTF-8: never longer than the 6+ escape bytes */
			if (cp < 0x80) {
				out[o++] = (char)cp;
			} else if (cp < 0x800) {
				out[o++] = (char)(0xc0 | cp >> 6);
				out[o++] = (char)(0x80 | (cp & 0x3f));
			} else if (cp < 0x10000) {
				out[o++] = (char)(0xe0 | cp >> 12);
				out[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			} else {
				out[o++] = (char)(0xf0 | cp >> 18);
				out[o++] = (char)(0x80 | (cp >> 12 & 0x3f));
				out[o++] = (char)(0x80 | (cp >> 6 & 0x3f));
				out[o++] = (char)(0x80 | (cp & 0x3f));
			}
			break;
		}
		default:
			p->i = i - 2;
			return fail(p, "bad escape in string");
		}
	}
	out[o] = 0;
	*len = o;
	p->i = j + 1;
	return out;
}

static bool digits(parser *p)
{
	size_t k = p->i;
	while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9')
		p->i++;
	return p->i > k;
}

static hum_jval *value(parser *p);

static hum_jval *number(parser *p)
{
	hum_jval *v = node(p, HUM_JNUM);
	if (!v)
		return NULL;
	size_t start = p->i;
	if (p->s[p->i] == '-')
		p->i++;
	if (p->i < p->n && p->s[p->i] == '0')
		p->i++;
	else if (!digits(p))
		return fail(p, "bad number");
	if (p->i < p->n && p->s[p->i] == '.') {
		p->i++;
		if (!digits(p))
			return fail(p, "bad number");
	}
	if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
		p->i++;
		if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-'))
			p->i++;
		if (!digits(p))
			return fail(p, "bad number");
	}
	char tmp[64];
	size_t len = p->i - start;
	if (len >= sizeof tmp)
		return fail(p, "number too long");
	memcpy(tmp, p->s + start, len);
	tmp[len] = 0;
	v->num = strtod(tmp, NULL);
	v->rawlen = len;
	return v;
}

static hum_jval *literal(parser *p, const char *word, int type)
{
	size_t k = strlen(word);
	if (p->n - p->i < k || memcmp(p->s + p->i, word, k) != 0)
		return fail(p, "unexpected character");
	hum_jval *v = node(p, type);
	if (!v)
		return NULL;
	p->i += k;
	v->rawlen = k;
	return v;
}

static hum_jval *container(parser *p, bool obj)
{
	hum_jval *v = node(p, obj ? HUM_JOBJ : HUM_JARR);
	if (!v)
		return NULL;
	if (++p->depth > HUM_JSON_MAX_DEPTH)
		return fail(p, "nested too deeply");
	size_t start = p->i++;
	hum_jval **tail = &v->child;
	char close = obj ? '}' : ']';
	ws(p);
	if (p->i < p->n && p->s[p->i] == close) {
		p->i++;
	} else {
		while (1) {
			const char *key = NULL;
			size_t keylen = 0;
			if (obj) {
				ws(p);
				if (p->i >= p->n || p->s[p->i] != '"')
					return fail(p, "expected a string key");
				key = string(p, &keylen);
				if (!key)
					return NULL;
				ws(p);
				if (p->i >= p->n || p->s[p->i] != ':')
					return fail(p, "expected ':'");
				p->i++;
			}
			hum_jval *item = value(p);
			if (!item)
				return NULL;
			item->key = key;
			item->keylen = keylen;
			*tail = item;
			tail = &item->next;
			v->count++;
			ws(p);
			if (p->i >= p->n)
				return fail(p, obj ? "unterminated object" : "unterminated array");
			if (p->s[p->i] == ',') {
				p->i++;
				continue;
			}
			if (p->s[p->i] == close) {
				p->i++;
				break;
			}
			return fail(p, obj ? "expected ',' or '}'" : "expected ',' or ']'");
		}
	}
	p->depth--;
	v->rawlen = p->i - start;
	return v;
}

static hum_jval *value(parser *p)
{
	ws(p);
	if (p->i >= p->n)
		return fail(p, "expected a value");
	char c = p->s[p->i];
	switch (c) {
	case '{': return container(p, true);
	case '[': return container(p, false);
	case '"': {
		hum_jval *v = node(p, HUM_JSTR);
		if (!v)
			return NULL;
		size_t start = p->i;
		v->str = string(p, &v->len);
		if (!v->str)
			return NULL;
		v->rawlen = p->i - start;
		return v;
	}
	case 't': return literal(p, "true", HUM_JTRUE);
	case 'f': return literal(p, "false", HUM_JFALSE);
	case 'n': return literal(p, "null", HUM_JNULL);
	default:
		if (c == '-' || (c >= '0' && c <= '9'))
			return number(p);
		return fail(p, "unexpected character");
	}
}

hum_jval *hum_json_parse(hum_jarena *a, const char *s, size_t n, char *err, size_t errlen)
{
	parser p = { .a = a, .s = s, .n = n, .err = err, .errlen = errlen };
	if (errlen)
		err[0] = 0;
	hum_jval *v = value(&p);
	if (!v)
		return NULL;
	ws(&p);
	if (p.i < p.n)
		return fail(&p, "unexpected text after the value");
	return v;
}

const hum_jval *hum_json_get(const hum_jval *obj, const char *key)
{
	if (!obj || obj->type != HUM_JOBJ)
		return NULL;
	const hum_jval *found = NULL;
	size_t k = strlen(key);
	for (const hum_jval *m = obj->child; m; m = m->next)
		if (m->keylen == k && memcmp(m->key, key, k) == 0)
			found = m;
	return found;
}

/*
 * json.h — the control socket's JSON: a growable output buffer with an
 * encoder for responses, and a small validating parser for requests.
 *
 * Encoder: appends to a hum_buf.  Allocation failure is sticky (b->oom), so a
 * caller appends a whole response and checks once.  Strings are escaped as
 * JSON requires and invalid UTF-8 is replaced by U+FFFD, so any process output
 * becomes a valid JSON string.
 *
 * Parser: full JSON grammar (RFC 8259), depth and node limits, into a tree
 * allocated from an arena that is reset (not freed) between requests.  It
 * exists for requests, which are small flat objects; it is not fast on
 * purpose, it is strict and bounded.
 */
#ifndef HUM_JSON_H
#define HUM_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct hum_buf {
	char *p;
	size_t len, cap;
	bool oom; /* an append failed; the content is incomplete */
} hum_buf;

/* Ensures room for `extra` more bytes; false (and oom set) on ENOMEM. */
bool hum_buf_reserve(hum_buf *b, size_t extra);
void hum_buf_put(hum_buf *b, const void *s, size_t n);
void hum_buf_puts(hum_buf *b, const char *s);
void hum_buf_putc(hum_buf *b, char c);
void hum_buf_free(hum_buf *b);

void hum_json_str(hum_buf *b, const char *s, size_t n); /* "escaped" */
void hum_json_cstr(hum_buf *b, const char *s);           /* NULL -> null */
void hum_json_u64(hum_buf *b, uint64_t v);
void hum_json_i64(hum_buf *b, int64_t v);
/* Milliseconds since the epoch as seconds with three decimals. */
void hum_json_ms(hum_buf *b, int64_t ms);

/* Parser ------------------------------------------------------------------ */
enum { HUM_JNULL, HUM_JFALSE, HUM_JTRUE, HUM_JNUM, HUM_JSTR, HUM_JARR, HUM_JOBJ };

typedef struct hum_jval hum_jval;
struct hum_jval {
	int type;
	uint32_t count;        /* items of an array, members of an object */
	const char *raw;       /* the value's source text */
	size_t rawlen;
	const char *str;       /* HUM_JSTR: decoded, NUL terminated */
	size_t len;
	double num;            /* HUM_JNUM */
	const char *key;       /* member of an object: decoded key */
	size_t keylen;
	hum_jval *child, *next;
};

typedef struct hum_jarena hum_jarena;
hum_jarena *hum_jarena_new(void);
void hum_jarena_reset(hum_jarena *a); /* keeps the first block */
void hum_jarena_free(hum_jarena *a);

#define HUM_JSON_MAX_DEPTH 32
#define HUM_JSON_MAX_NODES 65536

/* Parses s[0..n) as one JSON value (surrounding whitespace allowed).  On
 * success returns the root; on failure NULL with a message in err ("at byte
 * N: ..."). Values live until the arena is reset. */
hum_jval *hum_json_parse(hum_jarena *a, const char *s, size_t n, char *err, size_t errlen);
/* The last member named key of an object (NULL if none or not an object). */
const hum_jval *hum_json_get(const hum_jval *obj, const char *key);

#endif

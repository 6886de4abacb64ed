/*
 * jsonw.h — the control socket's JSON writer: a growable output buffer and
 * a streaming encoder for responses.  (Requests are parsed by jansson, in
 * request.c.)
 *
 * Appends to a hum_buf, so an answer is written straight into the client's
 * output without building a tree.  Allocation failure is sticky (b->oom): a
 * caller appends a whole response and checks once.  Strings are escaped as
 * JSON requires and invalid UTF-8 (bad lead or continuation bytes, overlong
 * forms, surrogates, code points past U+10FFFF, a sequence cut short) is
 * replaced by U+FFFD one byte at a time, so any bytes (process output,
 * names, error messages quoting a request) become a valid UTF-8 JSON string.
 */
#ifndef HUM_JSONW_H
#define HUM_JSONW_H

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

#endif

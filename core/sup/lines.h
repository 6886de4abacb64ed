/*
 * lines.h — splitting a byte stream into log lines, without copying lines.
 *
 * One hum_lbuf per pipe holds the carry: the bytes after the last newline of
 * the previous read (always <= HUM_LINE_MAX).  Reads go into a scratch
 * buffer shared by every pipe of a supervisor, at a fixed offset
 * (HUM_LBUF_READ_AT) so a read that returns EAGAIN costs no copy; after a
 * read the carry is copied in just before the new bytes and the whole run is
 * split with memchr.  The produced hum_line records point into the scratch
 * buffer: they are valid until the next read into it.
 *
 * Rules: a line is the bytes before '\n' (the newline is not part of it);
 * "\r\n" ends a line like '\n' (the '\r' is not part of it either, also
 * across reads and long-line splits); a lone '\r' is kept (progress bars);
 * a line longer than HUM_LINE_MAX becomes pieces of HUM_LINE_MAX bytes marked
 * HUM_LINE_CONT, the last piece unmarked; bytes left at EOF form a line
 * marked HUM_LINE_PARTIAL; NUL bytes and invalid UTF-8 pass through as is.
 * No allocation per line: the carry grows (doubling) to at most HUM_LINE_MAX
 * once per pipe.
 */
#ifndef HUM_LINES_H
#define HUM_LINES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "state/logring.h"

#define HUM_READ_SIZE (64 * 1024)              /* bytes per read(2) */
#define HUM_LBUF_READ_AT HUM_LINE_MAX           /* read offset in scratch */
#define HUM_LBUF_SCRATCH (HUM_LINE_MAX + HUM_READ_SIZE)
/* Upper bound of lines one hum_lbuf_split call can produce. */
#define HUM_LBUF_MAX_LINES (HUM_READ_SIZE + 4)

typedef struct hum_lbuf {
	char *carry;    /* malloc'd lazily, capacity cap */
	uint32_t len, cap;
} hum_lbuf;

/* Splits the n bytes just read into scratch + HUM_LBUF_READ_AT (n may be 0),
 * preceded by b's carry; eof flushes the rest as a PARTIAL line.  Fills out[]
 * (data, len, flags; stream, seq and time are the caller's) and returns the
 * count; keeps the unterminated tail as the new carry.  If the carry cannot
 * grow (ENOMEM) the tail is emitted as a CONT piece instead of being lost. */
size_t hum_lbuf_split(hum_lbuf *b, char *scratch, size_t n, bool eof, hum_line *out);
void hum_lbuf_free(hum_lbuf *b);

#endif

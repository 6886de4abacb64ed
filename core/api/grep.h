/*
 * grep.h — a `logs` request's "grep": plain text (a substring search) or a
 * PCRE2 regular expression, matched with bounds so that no pattern can
 * stall the API thread.
 *
 * glibc's regcomp/regexec had no limits at all (a few dozen bytes could take
 * gigabytes to compile or minutes to match, and back-references backtrack
 * without end), so patterns used to be checked against a list of known
 * traps first.  PCRE2 has the limits built in, which makes the list
 * unnecessary; what is left is
 *   - a pattern of at most HUM_GREP_MAX_LEN bytes with groups nested at most
 *     HUM_GREP_MAX_NEST deep (PCRE2's compile context checks both, and its
 *     compiled code is itself bounded);
 *   - per line: at most HUM_GREP_MATCH_LIMIT steps of the matcher, a
 *     backtracking depth of HUM_GREP_DEPTH_LIMIT and HUM_GREP_HEAP_KIB KiB of
 *     backtracking memory.  A line that hits a bound is an error for the
 *     request ("grep pattern too costly"), never a stall.
 * The syntax is PCRE2's (Perl's): POSIX extended patterns mean the same,
 * except that PCRE2 also has \d, lazy and possessive repetitions,
 * look-arounds and back-references.  Lines are matched as bytes (no UTF
 * mode: process output need not be UTF-8).
 */
#ifndef HUM_GREP_H
#define HUM_GREP_H

#include <stdbool.h>
#include <stddef.h>

#define HUM_GREP_MAX_LEN 4096
#define HUM_GREP_MAX_NEST 64
#define HUM_GREP_MATCH_LIMIT 500000 /* at most ~30 ms of matching per line */
#define HUM_GREP_DEPTH_LIMIT 10000
#define HUM_GREP_HEAP_KIB 8192

typedef struct hum_grep {
	struct pcre2_real_code_8 *re;              /* NULL: plain text or none */
	struct pcre2_real_match_data_8 *md;
	struct pcre2_real_match_context_8 *mc;
	char *needle;                              /* plain text: memmem */
	size_t needlen;
} hum_grep;

/* Compiles pattern p (len bytes, no NUL inside).  0, or -1 with the error
 * reply's message in err; either way hum_grep_free releases it. */
int hum_grep_compile(hum_grep *g, const char *p, size_t len, char *err, size_t errlen);
/* 1: line s[0..n) matches, 0: it does not, -1: a bound was hit (message in
 * err).  An empty hum_grep matches everything. */
int hum_grep_match(hum_grep *g, const char *s, size_t n, char *err, size_t errlen);
void hum_grep_free(hum_grep *g);

#endif

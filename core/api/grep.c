/*
 * grep.c — a "grep" pattern (grep.h): plain text through memmem, anything
 * else through PCRE2 with a compile context (length, nesting) and a match
 * context (steps, depth, heap) that bound every call.  One match context
 * and one match-data block per pattern, made when it is compiled: matching
 * allocates nothing beyond PCRE2's bounded backtracking heap.
 */
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stdlib.h>
#include <string.h>

#include "api_priv.h"
#include "grep.h"

int hum_grep_compile(hum_grep *g, const char *p, size_t len, char *err, size_t errlen)
{
	memset(g, 0, sizeof *g);
	if (!strpbrk(p, ".[]()*+?{}|^$\\")) {
		/* plain text: a substring search, no regex engine */
		g->needle = malloc(len + 1);
		if (!g->needle) {
			hum_api_seterr_(err, errlen, "out of memory");
			return -1;
		}
		memcpy(g->needle, p, len + 1);
		g->needlen = len;
		return 0;
	}
	if (len > HUM_GREP_MAX_LEN) {
		hum_api_seterr_(err, errlen, "grep pattern too long (more than %d bytes)", HUM_GREP_MAX_LEN);
		return -1;
	}
	pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
	if (!cc) {
		hum_api_seterr_(err, errlen, "out of memory");
		return -1;
	}
	pcre2_set_max_pattern_length(cc, HUM_GREP_MAX_LEN);
	pcre2_set_parens_nest_limit(cc, HUM_GREP_MAX_NEST);
	int code;
	PCRE2_SIZE off;
	g->re = pcre2_compile((PCRE2_SPTR)p, len, 0, &code, &off, cc);
	pcre2_compile_context_free(cc);
	if (!g->re) {
		PCRE2_UCHAR m[160];
		pcre2_get_error_message(code, m, sizeof m);
		hum_api_seterr_(err, errlen, "bad grep pattern: %s at byte %zu", (char *)m, (size_t)off + 1);
		return -1;
	}
	g->md = pcre2_match_data_create(1, NULL);
	g->mc = pcre2_match_context_create(NULL);
	if (!g->md || !g->mc) {
		hum_api_seterr_(err, errlen, "out of memory");
		return -1;
	}
	pcre2_set_match_limit(g->mc, HUM_GREP_MATCH_LIMIT);
	pcre2_set_depth_limit(g->mc, HUM_GREP_DEPTH_LIMIT);
	pcre2_set_heap_limit(g->mc, HUM_GREP_HEAP_KIB);
	return 0;
}

int hum_grep_match(hum_grep *g, const char *s, size_t n, char *err, size_t errlen)
{
	if (g->needle)
		return memmem(s, n, g->needle, g->needlen) != NULL;
	if (!g->re)
		return 1;
	int rc = pcre2_match(g->re, (PCRE2_SPTR)(s ? s : ""), n, 0, 0, g->md, g->mc);
	if (rc >= 0)
		return 1;
	if (rc == PCRE2_ERROR_NOMATCH || rc == PCRE2_ERROR_PARTIAL)
		return 0;
	PCRE2_UCHAR m[160];
	pcre2_get_error_message(rc, m, sizeof m);
	hum_api_seterr_(err, errlen,
			"grep pattern too costly: matching one line hit a bound (%s); simplify the pattern",
			(char *)m);
	return -1;
}

void hum_grep_free(hum_grep *g)
{
	pcre2_match_data_free(g->md);
	pcre2_match_context_free(g->mc);
	pcre2_code_free(g->re);
	free(g->needle);
	memset(g, 0, sizeof *g);
}

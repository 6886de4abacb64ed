/*
 * select_test.c — selectors (state/select.h): the glob syntax, refused
 * selectors, agreement with fnmatch where both are defined, time linear in
 * the pattern whatever its shape, and one table of selectors run against
 * processes registered with a real supervisor (replicas told by their spec),
 * on the world snapshot the api thread reads.  spec/selectors_spec.lua runs
 * the same forms end to end through `hum status` and `hum stop`.
 */
#include <fnmatch.h>

#include "proc_util.h"
#include "state/select.h"

static bool glob1(const char *pat, const char *s)
{
	hum_selector sel;
	char err[200];
	if (hum_select_parse(&sel, pat, strlen(pat), err, sizeof err) < 0)
		return false;
	return hum_select_match(&sel, s, 0, "");
}

static void test_syntax(void)
{
	static const struct { const char *pat, *s; bool want; } t[] = {
		{ "web", "web", true },        { "web", "web.1", false },     { "web", "we", false },
		{ "*", "", true },             { "*", "anything.at:all", true },
		{ "w*", "web.1", true },       { "*.1", "web.1", true },      { "*.1", "web.10", false },
		{ "w*b*1", "web.1", true },    { "**", "x", true },           { "a*b*c", "abxbxc", true },
		{ "a*b*c", "abxbx", false },   { "?", "a", true },            { "?", "", false },
		{ "??", "a", false },          { "web.?", "web.1", true },    { "web.?", "web.12", false },
		{ "web.[12]", "web.1", true }, { "web.[12]", "web.3", false }, { "web.[1-3]", "web.3", true },
		{ "[!a]pi", "api", false },    { "[!a]pi", "bpi", true },     { "[^a]pi", "bpi", true },
		{ "[]]", "]", true },          { "[!]]", "]", false },        { "[a-]", "-", true },
		{ "[z-a]", "m", false },       { "[\\]]", "]", true },        { "[\\-a]", "-", true },
		{ "\\*", "*", true },          { "\\*", "x", false },         { "web\\.1", "web.1", true },
		{ "a\\?", "a?", true },        { "a\\?", "ab", false },       { "[*]", "*", true },
		{ "[*]", "a", false },         { "caf\xc3\xa9", "caf\xc3\xa9", true }, { "caf?", "caf\xc3\xa9", false },
		{ "caf??", "caf\xc3\xa9", true },
	};
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++)
		ok(glob1(t[i].pat, t[i].s) == t[i].want, "glob \"%s\" %s \"%s\"", t[i].pat,
		   t[i].want ? "matches" : "does not match", t[i].s);
}

static void test_refused(void)
{
	static char stars[HUM_SELECT_MAX + 2];
	memset(stars, '*', sizeof stars - 1);
	static const struct { const char *pat; size_t len; const char *why; } t[] = {
		{ "", 0, "empty" },
		{ "web.[12", 7, "a [ without its ]" },
		{ "[]", 2, "a [ without its ]" },
		{ "[\\]", 3, "a [ without its ]" },
		{ "web\\", 4, "ends with a lone \\" },
		{ "a\0b", 3, "contains a NUL byte" },
		{ stars, HUM_SELECT_MAX + 1, "longer than 1024 bytes" },
	};
	char err[200];
	hum_selector sel;
	for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
		err[0] = 0;
		int rc = hum_select_parse(&sel, t[i].pat, t[i].len, err, sizeof err);
		ok(rc == -EINVAL && strstr(err, t[i].why) && strlen(err) < 120, "refused: %s", err);
	}
	ok(hum_select_parse(&sel, stars, HUM_SELECT_MAX, err, sizeof err) == 0, "a selector of exactly the bound is fine");
}

/* Random patterns over a small alphabet, against fnmatch(3) with no flags:
 * where our syntax accepts a pattern, glibc must agree on every subject. */
static void test_against_fnmatch(void)
{
	static const char pa[] = "ab.*?[]!-\\";
	static const char sa[] = "ab.-]!*";
	unsigned long long x = 88172645463325252ULL;
	int checked = 0, disagree = 0;
	char pat[12], s[10], first[64] = "";
	for (int k = 0; k < 200000; k++) {
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		size_t pn = 1 + x % 8, sn = (x >> 8) % 7;
		for (size_t i = 0; i < pn; i++)
			pat[i] = pa[(x >> (12 + 4 * i)) % (sizeof pa - 1)];
		pat[pn] = 0;
		x ^= x << 13, x ^= x >> 7, x ^= x << 17;
		for (size_t i = 0; i < sn; i++)
			s[i] = sa[(x >> (4 * i)) % (sizeof sa - 1)];
		s[sn] = 0;
		hum_selector sel;
		char err[200];
		/* "[." "[=" "[:" inside a set are POSIX collating elements and
		 * classes to fnmatch; a selector has none of those */
		if (hum_select_parse(&sel, pat, pn, err, sizeof err) < 0 || strstr(pat, "[."))
			continue;
		checked++;
		bool ours = hum_select_match(&sel, s, 0, ""), theirs = fnmatch(pat, s, 0) == 0;
		if (ours != theirs && disagree++ == 0)
			snprintf(first, sizeof first, "\"%s\" on \"%s\": ours %d, fnmatch %d", pat, s, ours, theirs);
	}
	ok(checked > 50000 && disagree == 0, "%d random patterns agree with fnmatch (%d differ%s%s)", checked,
	   disagree, disagree ? ", first: " : "", first);
}

static double time_match(const char *pat, const char *s)
{
	hum_selector sel;
	char err[200];
	if (hum_select_parse(&sel, pat, strlen(pat), err, sizeof err) < 0)
		return -1;
	double t0 = now();
	bool m = hum_select_match(&sel, s, 0, s); /* name and a group */
	double dt = now() - t0;
	return m ? -2 : dt;
}

/* Patterns that make a backtracking matcher (Lua patterns, fnmatch on some
 * inputs) exponential, at the length bound, against long subjects. */
static void test_linear(void)
{
	static char pat[HUM_SELECT_MAX + 1], s[8193];
	memset(s, 'a', sizeof s - 1);
	memset(pat, '*', 55);
	strcpy(pat + 55, "b");
	double dt = time_match(pat, "aaaaaac");
	ok(dt >= 0 && dt < 0.01, "55 stars then b on aaaaaac: %.6f s", dt);
	for (size_t i = 0; i < HUM_SELECT_MAX; i += 2)
		pat[i] = '*', pat[i + 1] = 'a';
	pat[HUM_SELECT_MAX - 1] = 'b';
	pat[HUM_SELECT_MAX] = 0;
	dt = time_match(pat, s);
	ok(dt >= 0 && dt < 2, "(*a)^511 *b on 8 KiB of a: %.3f s", dt);
	size_t n = 0;
	for (; n + 7 + 4 <= HUM_SELECT_MAX; n += 7)
		memcpy(pat + n, "*[a-c]?", 7);
	strcpy(pat + n, "[!a]");
	dt = time_match(pat, s);
	ok(dt >= 0 && dt < 2, "sets, stars and ? at the bound on 8 KiB of a: %.3f s", dt);
}

/* The processes of the table: how spec/selectors_spec.lua defines them. */
static const struct { const char *name, *base, *groups; } procs[] = {
	{ "web.1", "web", "front" },
	{ "web.2", "web", "front" },
	{ "api", NULL, "back" },
	{ "api.2", NULL, "back" }, /* defined on its own: not a replica of api */
	{ "db", NULL, "back,data" },
	{ "worker.1", "worker", "" },
	{ "worker.2", "worker", "" },
	{ "cron", NULL, "" },
};

/* Selector -> the names it selects, in registration order; NULL: refused. */
static const struct { const char *sel, *want; } table[] = {
	{ "api", "api" },
	{ "api.2", "api.2" },
	{ "web", "web.1 web.2" },
	{ "web.2", "web.2" },
	{ "web.[12]", "web.1 web.2" },
	{ "web.?", "web.1 web.2" },
	{ "w*b", "web.1 web.2" },
	{ "api*", "api api.2" },
	{ "back", "api api.2 db" },
	{ "data", "db" },
	{ "[bd]a*", "api api.2 db" },
	{ "*er", "worker.1 worker.2" },
	{ "*", "web.1 web.2 api api.2 db worker.1 worker.2 cron" },
	{ "*****************************************************a", "db" },
	{ "we", "" },
	{ "web.", "" },
	{ "api.1", "" },
	{ "\\*", "" },
	{ "all", "" },
	{ "web.[12", NULL },
	{ "", NULL },
};

static void test_table(void)
{
	harness_init();
	rec r[sizeof procs / sizeof procs[0]];
	for (size_t i = 0; i < sizeof procs / sizeof procs[0]; i++) {
		hum_spec sp = spec_sh("true");
		sp.base = procs[i].base;
		sp.groups = procs[i].groups;
		hum_proc *p = add(procs[i].name, &sp, &r[i]);
		size_t want = procs[i].base ? strlen(procs[i].base) : 0;
		ok(hum_proc_snap(p)->base_len == want, "%s registered with base length %zu", procs[i].name, want);
	}
	static const struct { const char *name, *base; } bad[] = {
		{ "api.3", "web" }, { "web", "web" }, { "web.", "web" }, { "webx1", "web" }, { "w.1", "web" },
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		hum_spec sp = spec_sh("true");
		sp.base = bad[i].base;
		int err = 0;
		ok(hum_sup_add(S, bad[i].name, &sp, &err) == NULL && err == -EINVAL,
		   "%s is not a replica of %s: EINVAL", bad[i].name, bad[i].base);
	}
	hum_store_flush(ST);
	hum_reader *rd = hum_reader_new(ST);
	for (size_t k = 0; k < sizeof table / sizeof table[0]; k++) {
		char got[256] = "", err[200] = "";
		hum_selector sel;
		int rc = hum_select_parse(&sel, table[k].sel, strlen(table[k].sel), err, sizeof err);
		if (!table[k].want) {
			ok(rc == -EINVAL, "\"%s\" is refused: %s", table[k].sel, err);
			continue;
		}
		bool same = true;
		hum_read_begin(rd);
		const hum_world *w = hum_store_world(ST);
		for (uint32_t i = 0; rc == 0 && i < w->count; i++) {
			const hum_snap *s = w->procs[i];
			bool hit = hum_select_snap(&sel, s);
			same &= hit == hum_select_match(&sel, s->name, s->base_len, s->groups);
			if (hit)
				snprintf(got + strlen(got), sizeof got - strlen(got), "%s%s", *got ? " " : "", s->name);
		}
		hum_read_end(rd);
		ok(rc == 0 && same && strcmp(got, table[k].want) == 0, "\"%.20s%s\" selects [%s]%s", table[k].sel,
		   strlen(table[k].sel) > 20 ? "..." : "", got, strcmp(got, table[k].want) ? " (wrong)" : "");
	}
	hum_reader_free(rd);
	harness_fini();
	for (size_t i = 0; i < sizeof procs / sizeof procs[0]; i++)
		rec_free(&r[i]);
}

int main(void)
{
	test_syntax();
	test_refused();
	test_against_fnmatch();
	test_linear();
	test_table();
	return done_testing();
}

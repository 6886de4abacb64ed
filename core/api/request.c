/*
 * request.c — control-socket requests: jansson parses, this file bounds and
 * validates (request.h).
 *
 * jansson's json_loadb is the parser: strict RFC 8259, UTF-8 checked, object
 * keys in a seeded hash table, fuzzed upstream.  What it leaves to us is
 * checked before it runs: its own depth limit is 2048 and it has no limit on
 * the number of values, so a linear scan first refuses a line nested deeper
 * than HUM_REQ_MAX_DEPTH or holding more than HUM_REQ_MAX_VALUES values, and
 * a 1 MiB line can build only a small tree.  That tree, freed by
 * hum_req_free, is what a request allocates on the API thread; answers are
 * written with jsonw.h into buffers that only grow.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <jansson.h>

#include "api_priv.h"
#include "request.h"
#include "state/logring.h"

#define FAIL(...) return (hum_api_seterr_(err, errlen, __VA_ARGS__), -1)

/* Nesting depth and an upper bound on the number of values, from brackets
 * and commas outside strings.  Exact for valid JSON; on invalid JSON it may
 * name a bound where jansson would name the syntax error, an error reply
 * either way. */
static int scan_bounds(const char *s, size_t n, char *err, size_t errlen)
{
	size_t depth = 0, values = 1;
	bool str = false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (str) {
			if (c == '\\')
				i++; /* an escaped character never ends the string */
			else if (c == '"')
				str = false;
			continue;
		}
		if (c == '"') {
			str = true;
		} else if (c == '[' || c == '{') {
			if (++depth > HUM_REQ_MAX_DEPTH)
				FAIL("request nested too deeply (more than %d levels)", HUM_REQ_MAX_DEPTH);
			values++;
		} else if (c == ']' || c == '}') {
			depth -= depth > 0;
		} else if (c == ',') {
			values++;
		}
		if (values > HUM_REQ_MAX_VALUES)
			FAIL("request has too many values (more than %d)", HUM_REQ_MAX_VALUES);
	}
	return 0;
}

/* A member that is given: absent and null are both NULL. */
static json_t *field(json_t *q, const char *key)
{
	json_t *v = json_object_get(q, key);
	return json_is_null(v) ? NULL : v;
}

/* A string or an array of strings. */
static bool strings(json_t *v)
{
	if (json_is_string(v))
		return true;
	if (!json_is_array(v))
		return false;
	size_t i;
	json_t *x;
	json_array_foreach(v, i, x)
		if (!json_is_string(x))
			return false;
	return true;
}

static int check_strings(json_t *q, const char *key, char *err, size_t errlen)
{
	json_t *v = field(q, key);
	if (v && !strings(v))
		FAIL("%s must be a string or an array of strings", key);
	return 0;
}

/* A number in [0, HUM_REQ_MAX_N], checked before any cast (a larger double
 * cast to an integer is undefined). */
static bool in_range(json_t *v, double *out)
{
	if (!json_is_number(v))
		return false;
	*out = json_number_value(v);
	return *out >= 0 && *out <= HUM_REQ_MAX_N;
}

static int get_id(hum_req *r, char *err, size_t errlen)
{
	json_t *v = field(r->root, "id");
	if (!v)
		return 0;
	if (json_is_integer(v)) {
		r->idlen = (size_t)snprintf(r->id, sizeof r->id, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
		return 0;
	}
	if (!json_is_string(v))
		FAIL("id must be an integer or a string");
	/* echoed as JSON text: re-encoded, so its bound is on that text */
	size_t len = json_string_length(v);
	if (len > HUM_REQ_ID_MAX)
		FAIL("id too long (more than %d bytes)", HUM_REQ_ID_MAX);
	hum_buf b = { 0 };
	hum_json_str(&b, json_string_value(v), len);
	bool fits = !b.oom && b.len <= HUM_REQ_ID_MAX, oom = b.oom;
	if (fits) {
		memcpy(r->id, b.p, b.len);
		r->id[b.len] = 0;
		r->idlen = b.len;
	}
	hum_buf_free(&b);
	if (oom)
		FAIL("out of memory");
	if (!fits)
		FAIL("id too long (more than %d bytes)", HUM_REQ_ID_MAX);
	return 0;
}

/* Commands ------------------------------------------------------------------ */

/* "names" (a string or strings), else "name"; an empty array selects none
 * (logs: everything). */
static int check_selectors(hum_req *r, json_t *q, char *err, size_t errlen)
{
	if (check_strings(q, "names", err, errlen) < 0 || check_strings(q, "name", err, errlen) < 0)
		return -1;
	r->names = field(q, "names");
	if (!r->names)
		r->names = field(q, "name");
	r->nnames = !r->names ? 0 : json_is_string(r->names) ? 1 : json_array_size(r->names);
	return 0;
}

static int check_status(hum_req *r, json_t *q, char *err, size_t errlen)
{
	if (check_selectors(r, q, err, errlen) < 0)
		return -1;
	if (!r->nnames)
		FAIL("status needs \"name\" (a string) or \"names\" (strings)");
	return 0;
}

static int check_logs(hum_req *r, json_t *q, char *err, size_t errlen)
{
	if (check_selectors(r, q, err, errlen) < 0)
		return -1;
	json_t *v;
	double d;
	r->n = 100;
	if ((v = field(q, "n"))) {
		if (!in_range(v, &d) || d != (double)(int64_t)d)
			FAIL("n must be a whole number >= 0");
		r->n = d > 1e9 ? 1000000000u : (size_t)d;
	}
	if ((v = field(q, "follow"))) {
		if (!json_is_boolean(v))
			FAIL("follow must be true or false");
		r->follow = json_is_true(v);
	}
	if ((v = field(q, "stream"))) {
		const char *s = json_string_value(v);
		if (s && strcmp(s, "out") == 0)
			r->stream = HUM_STREAM_OUT;
		else if (s && strcmp(s, "err") == 0)
			r->stream = HUM_STREAM_ERR;
		else
			FAIL("stream must be \"out\" or \"err\"");
	}
	if ((v = field(q, "since"))) {
		if (!in_range(v, &d))
			FAIL("since must be seconds since the epoch");
		r->since_ms = (int64_t)(d * 1000.0);
	}
	if ((v = field(q, "grep"))) {
		if (!json_is_string(v))
			FAIL("grep must be a string");
		if (json_string_length(v)) {
			r->grep = json_string_value(v);
			r->greplen = json_string_length(v);
		}
	}
	return 0;
}

/* watch: "logs" (with log lines too) */
static int check_watch(hum_req *r, json_t *q, char *err, size_t errlen)
{
	json_t *v = field(q, "logs");
	if (v) {
		if (!json_is_boolean(v))
			FAIL("logs must be true or false");
		r->follow = json_is_true(v);
	}
	return 0;
}

/* start, stop, restart */
static int check_targets(hum_req *r, json_t *q, char *err, size_t errlen)
{
	if (check_strings(q, "targets", err, errlen) < 0)
		return -1;
	json_t *v = field(q, "timeout");
	if (v && !(json_is_number(v) && json_number_value(v) >= 0))
		FAIL("timeout must be a number of seconds >= 0");
	return 0;
}

static int check_signal(hum_req *r, json_t *q, char *err, size_t errlen)
{
	json_t *v = field(q, "signal");
	if (v && !json_is_string(v) && !json_is_integer(v))
		FAIL("signal must be a name or a number");
	return check_strings(q, "targets", err, errlen);
}

static int check_eval(hum_req *r, json_t *q, char *err, size_t errlen)
{
	json_t *v = field(q, "code");
	if (v && !json_is_string(v))
		FAIL("eval needs \"code\" (a string)");
	return 0;
}

/* run: `hum run TASK` inside a running hum (hum.control answers once the
 * task's run is over) */
static int check_run(hum_req *r, json_t *q, char *err, size_t errlen)
{
	json_t *v = field(q, "task");
	if (!v || !json_is_string(v))
		FAIL("run needs \"task\" (a string)");
	return 0;
}

/* Every command: one entry. */
static const struct command {
	const char *name;
	hum_req_kind kind;
	int (*check)(hum_req *r, json_t *q, char *err, size_t errlen);
} commands[] = {
	{ "ps", HUM_REQ_PS, NULL },
	{ "status", HUM_REQ_STATUS, check_status },
	{ "logs", HUM_REQ_LOGS, check_logs },
	{ "ping", HUM_REQ_PING, NULL },
	{ "watch", HUM_REQ_WATCH, check_watch },
	{ "start", HUM_REQ_COMMAND, check_targets },
	{ "stop", HUM_REQ_COMMAND, check_targets },
	{ "restart", HUM_REQ_COMMAND, check_targets },
	{ "describe", HUM_REQ_COMMAND, check_targets },
	{ "signal", HUM_REQ_COMMAND, check_signal },
	{ "down", HUM_REQ_COMMAND, NULL },
	{ "eval", HUM_REQ_COMMAND, check_eval },
	{ "run", HUM_REQ_COMMAND, check_run },
};

/* Entry ----------------------------------------------------------------------- */

int hum_req_parse(hum_req *r, const char *line, size_t len, char *err, size_t errlen)
{
	memset(r, 0, sizeof *r);
	if (scan_bounds(line, len, err, errlen) < 0)
		return -1;
	json_error_t je;
	/* Any value, so that "[1]" and "1" get the same reply as other
	 * non-objects.  No JSON_ALLOW_NUL: strings stay C strings, so
	 * "web\u0000x" cannot pass for "web" in a strcmp. */
	r->root = json_loadb(line, len, JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, &je);
	if (!r->root) {
		enum json_error_code code = json_error_code(&je);
		if (code == json_error_out_of_memory)
			FAIL("out of memory");
		if (code == json_error_null_character || code == json_error_null_byte_in_key)
			FAIL("malformed request: at byte %d: \\u0000 in a string is not allowed", je.position);
		FAIL("malformed request: at byte %d: %s", je.position, je.text);
	}
	if (!json_is_object(r->root))
		FAIL("a request must be a JSON object");
	if (get_id(r, err, errlen) < 0)
		return -1;
	json_t *cmd = field(r->root, "cmd");
	if (!json_is_string(cmd))
		FAIL("missing \"cmd\" (a string)");
	r->cmd = json_string_value(cmd);
	for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++) {
		if (strcmp(r->cmd, commands[i].name) != 0)
			continue;
		r->kind = commands[i].kind;
		return commands[i].check ? commands[i].check(r, r->root, err, errlen) : 0;
	}
	FAIL("unknown command \"%.64s\"", r->cmd);
}

void hum_req_free(hum_req *r)
{
	json_decref(r->root);
	r->root = r->names = NULL;
	r->cmd = r->grep = NULL;
}

const char *hum_req_name(const hum_req *r, size_t i)
{
	json_t *v = json_is_array(r->names) ? json_array_get(r->names, i) : r->names;
	return json_string_value(v);
}

/*
 * request.h — one control-socket request, parsed by jansson and validated at
 * entry, before anything acts on it.
 *
 * A request line becomes a hum_req: which command, the "id" to echo, and
 * for the reads the API thread answers itself (status, logs) every field as
 * a typed value.  After hum_req_parse succeeds, nothing downstream checks a
 * JSON type again; after it fails, `err` holds the message of the error
 * reply.  The rules (README "Control socket"):
 *   - the line is one JSON object (RFC 8259, valid UTF-8, no \u0000 in any
 *     string, no key twice, integers within 64 bits), nested at most
 *     HUM_REQ_MAX_DEPTH deep with at most HUM_REQ_MAX_VALUES values: both
 *     bounds are checked by a linear scan before jansson allocates anything;
 *   - "cmd" is a string naming a command; "id" is absent, null, an integer
 *     or a string of at most HUM_REQ_ID_MAX bytes as JSON;
 *   - each field a command uses has one type when present and not null
 *     (null is "not given"); fields a command does not use are ignored.
 *
 * Commands the loop thread runs (start, stop, ...) are forwarded as the raw
 * line once their field types are checked here; hum.server (Lua) decides
 * what they mean.
 */
#ifndef HUM_REQUEST_H
#define HUM_REQUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HUM_REQ_MAX_DEPTH 32
#define HUM_REQ_MAX_VALUES 65536
#define HUM_REQ_ID_MAX 128          /* bytes of the id as JSON text */
#define HUM_REQ_MAX_N 1000000000000000.0 /* "n" and "since" (1e15) */

typedef enum {
	HUM_REQ_PS,
	HUM_REQ_STATUS,
	HUM_REQ_LOGS,
	HUM_REQ_PING,
	HUM_REQ_WATCH,   /* the change feed (watch.c); "logs" is in follow */
	HUM_REQ_COMMAND, /* for the loop thread */
} hum_req_kind;

struct json_t;

typedef struct hum_req {
	struct json_t *root;     /* owns cmd, the names and grep; hum_req_free */
	hum_req_kind kind;
	const char *cmd;
	char id[HUM_REQ_ID_MAX + 1]; /* the id as JSON text (a string is
				      * re-encoded), NUL terminated */
	size_t idlen;                /* 0: no id */
	/* status, logs: selectors ("names", else "name"); 0: none given */
	size_t nnames;
	struct json_t *names;    /* a string or an array of them: hum_req_name */
	/* logs */
	size_t n;          /* newest lines wanted (default 100, at most 1e9) */
	bool follow;
	int stream;        /* 0: any; HUM_STREAM_OUT or HUM_STREAM_ERR */
	int64_t since_ms;  /* 0: none */
	const char *grep;  /* NULL: none (an empty pattern is none) */
	size_t greplen;
} hum_req;

/* Parses and validates line[0..len).  0, or -1 with the error reply's
 * message in err; r->idlen is set as soon as the id is known, so the error
 * can carry it.  Either way hum_req_free(r) releases what it holds. */
int hum_req_parse(hum_req *r, const char *line, size_t len, char *err, size_t errlen);
void hum_req_free(hum_req *r);

/* Selector i < r->nnames: a string without NUL, valid UTF-8. */
const char *hum_req_name(const hum_req *r, size_t i);

#endif

/*
 * api.h — the control socket and the API thread.
 *
 * hum_api_start() opens a Unix socket for a project (in <dir>/.hum/, or a
 * runtime-directory fallback when that path does not fit in sun_path) and
 * runs it on a thread of its own with its own libev loop.  The wire format is
 * newline-delimited JSON: one request object per line, one response object
 * per line (the `logs` request with follow streams many; see dispatch.c).
 *
 * Reads (ps, status, logs, ping) are answered on the API thread from the
 * store's snapshots and log rings inside epoch read sections: no lock, no
 * round trip to the loop thread, no allocation beyond the client's output
 * buffer (and scratch buffers that only grow).  Commands (start, stop,
 * restart, signal, down, eval) are handed to the loop thread through a
 * lock-free MPSC stack and an ev_async on its loop; the loop thread answers
 * with hum_api_reply(), which goes back the same way to the API loop.
 *
 * Access control: the socket directory is 0700 and the socket 0600; on top
 * of that every connection's peer uid (SO_PEERCRED) must equal hum's
 * effective uid, or it gets an error object and is closed.  One instance per
 * project: an flock on <dir>/.hum/hum.lock, plus a connect() probe that tells
 * a live socket from a stale one (ECONNREFUSED: removed and replaced).
 */
#ifndef HUM_API_H
#define HUM_API_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "state/store.h"

typedef struct hum_api hum_api;

/* Called on the loop thread (from an ev_async callback on opts.loop) for
 * every command request; `req` is the request line (a JSON object, validated,
 * not NUL terminated).  The callee must answer exactly once with
 * hum_api_reply(api, id, ...), now or later. */
typedef void (*hum_api_command_fn)(void *ud, uint32_t id, const char *req, size_t len);

typedef struct hum_api_opts {
	hum_store *store;              /* read on the API thread */
	struct ev_loop *loop;          /* the loop thread's loop: commands go there */
	hum_api_command_fn on_command;
	void *ud;
	size_t max_request;            /* bytes per request line; 0 = 1 MiB */
	size_t max_output;             /* unsent bytes per follower; 0 = 256 KiB */
	size_t max_clients;            /* 0 = 1024 (32 of them never for followers) */
	double follow_interval;        /* seconds between log polls; 0 = 0.05 */
	double idle_timeout;           /* seconds a connection may sit idle; 0 = 60 */
} hum_api_opts;

#define HUM_API_MAX_REQUEST (1u << 20)

/* The socket path for a project directory (no file is created): primary
 * <realpath(dir)>/.hum/hum.sock, or when that does not fit in sun_path,
 * the path recorded in <dir>/.hum/hum.sock.path by the hum that listens
 * there (checked: our own file, naming a socket in a private directory of
 * ours), else $XDG_RUNTIME_DIR/hum/<hash>.sock where hash is 16 hex digits
 * of FNV-1a over the real path, else -ENOENT.  0 or -errno. */
int hum_api_socket_path(const char *project_dir, char *out, size_t outlen);

/* Creates (mode 0700) or checks <realpath(dir)>/.hum, hum's per-project
 * state directory (socket, lock, hum.log); its path into out.  0 or -errno
 * with a message in err. */
int hum_api_state_dir(const char *project_dir, char *out, size_t outlen, char *err, size_t errlen);

/* Opens the socket and starts the thread.  Must be called on the thread that
 * runs opts->loop (it starts an ev_async there).  0 or -errno with a message
 * in err: -EADDRINUSE when another instance runs for this project.  *stale
 * (if given) is set when a stale socket was replaced. */
int hum_api_start(hum_api **out, const char *project_dir, const hum_api_opts *opts,
		  bool *stale, char *err, size_t errlen);

/* Answers command `id`: `body` is one JSON object with the reply's fields
 * ("{}" for none; "ok" and "id" are not its to set).  The server owns the
 * envelope: on the API thread it parses body (jansson), and writes
 * {"ok":ok,"id":<the request's id, if it had one>, ...body's fields}; a body
 * that is not a JSON object becomes an error reply saying so.  Any thread; a
 * reply for a client that has gone is dropped. */
void hum_api_reply(hum_api *api, uint32_t id, bool ok, const char *body, size_t len);

/* Loop thread: tells followers the server is stopping, closes every client
 * and the socket (removing its file), joins the thread, frees everything. */
void hum_api_stop(hum_api *api);

const char *hum_api_path(const hum_api *api);

/* Counters (approximate when read from another thread; for tests/benches). */
typedef struct hum_api_stats {
	uint64_t accepted, refused, requests, reads, commands, errors, dropped_lines;
	uint32_t clients;
} hum_api_stats;
void hum_api_get_stats(hum_api *api, hum_api_stats *out);

#endif

/*
 * probe.h — readiness checks on the loop: TCP connect and HTTP/1.1 GET.
 *
 * Each check is a non-blocking socket driven by ev_io plus an ev_timer for
 * the timeout; nothing blocks the loop except name resolution of a host that
 * is not a numeric address (getaddrinfo; dev environments use 127.0.0.1).
 * The callback runs exactly once, then the check frees itself.
 */
#ifndef HUM_PROBE_H
#define HUM_PROBE_H

#include <ev.h>

/* ok: connected (tcp) or got a status line (http, status in http_status);
 * err: a short text when !ok ("connect: Connection refused", "timeout"). */
typedef void (*hum_probe_cb)(void *ud, int ok, int http_status, const char *err);

/* 0 or -errno (then cb is never called). path NULL = TCP connect only. */
int hum_probe_start(struct ev_loop *loop, const char *host, int port, const char *path,
		    double timeout, hum_probe_cb cb, void *ud);

#endif

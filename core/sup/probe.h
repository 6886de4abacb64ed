/*
 * probe.h — readiness checks on the loop: TCP connect and HTTP/1.1 GET.
 *
 * A check turns its host into addresses, connects to each in turn until one
 * accepts, and (http) reads the status line.  Nothing blocks the loop: a
 * numeric address is used as it is, the name `localhost` is both loopbacks
 * (::1, then 127.0.0.1) without asking the resolver, and any other name is
 * resolved by getaddrinfo on a short-lived worker thread (probe.c says how
 * the result comes back).  The timeout covers the whole check, resolution
 * included.  The callback runs exactly once, always from the loop and never
 * inside hum_probe_start; then the check frees itself.
 *
 * Loop thread only; every check of the process uses the same loop.
 */
#ifndef HUM_PROBE_H
#define HUM_PROBE_H

#include <ev.h>

/* Resolver threads at once, counting ones whose check gave up while
 * getaddrinfo still runs; one more lookup fails its check at once. */
#define HUM_PROBE_MAX_LOOKUPS 16
/* Addresses of one name that are tried; the rest are ignored. */
#define HUM_PROBE_MAX_ADDRS 16

/* ok: connected (tcp) or got a status line (http, status in http_status);
 * err when !ok: the last failure, e.g. "connect: Connection refused",
 * "resolve db.test: Name or service not known", "timeout", "timeout
 * resolving db.test".  Valid during the call only. */
typedef void (*hum_probe_cb)(void *ud, int ok, int http_status, const char *err);

/* host: a name, an IPv4 or IPv6 address (no brackets); path NULL = TCP
 * connect only.  timeout <= 0: 5 s.  0 or -errno (-EINVAL, -ENOMEM; then cb
 * is never called). */
int hum_probe_start(struct ev_loop *loop, const char *host, int port, const char *path,
		    double timeout, hum_probe_cb cb, void *ud);

#endif

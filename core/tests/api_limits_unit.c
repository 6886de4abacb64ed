/*
 * api_limits_unit.c — the control socket's bounds on clients, each against
 * a server of its own with small limits: a follower that does not read
 * (its output stays bounded; the lines it could not take are counted and
 * reported, never silently lost), and slots (followers never take the last
 * FOLLOW_RESERVE, a follower that went away is freed, an idle connection
 * is closed).
 *
 * Separate from api_socket_unit.c: these tests wait on timers and flood a
 * ring, so they take their own time and their own servers.  Harness:
 * api_util.h.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ev.h>

#include "api_util.h"

/* A follower that does not read: its output stays bounded, the lines it
 * could not take are counted and reported once it reads again. */
static void test_slow_follower(void)
{
	st = hum_store_new(64 * 1024);
	hum_entry *e = add_proc("fast", "", HUM_RUNNING, 1);
	hum_store_flush(st);
	char dir[64] = "/tmp/hum-apitest2-XXXXXX";
	hum_api_opts o = { .store = st, .loop = loop, .on_command = on_command, .max_output = 65536,
			   .follow_interval = 0.01 };
	if (!start_in_temp(dir, &o))
		return;
	conn *f = open_conn();
	send_str(f->fd, "{\"cmd\":\"logs\",\"n\":0,\"follow\":true}\n");
	conn *c = open_conn();
	ok(ask(c, "{\"cmd\":\"ping\"}\n") > 0, "ping");
	double until = mono() + 0.2;
	while (mono() < until)
		ev_run(loop, EVRUN_NOWAIT);
	char text[128];
	int total = 30000;
	for (int i = 1; i <= total; i++) {
		snprintf(text, sizeof text, "line %06d %s", i, "................................................");
		hum_logring_append(&e->log, HUM_STREAM_OUT, 0, 1700000000000LL, text, strlen(text));
		if (i % 100 == 0) {
			hum_logring_commit(&e->log);
			hum_store_flush(st);
			ev_run(loop, EVRUN_NOWAIT);
			if (i % 5000 == 0) {
				until = mono() + 0.05;
				while (mono() < until)
					ev_run(loop, EVRUN_NOWAIT);
			}
		}
	}
	hum_logring_commit(&e->log);
	hum_store_flush(st);
	ok(ask(c, "{\"cmd\":\"ps\"}\n") > 0 && strstr(line, "\"lines\":30000"), "server fine while the follower lags");
	long got = 0, dropped = 0, last = 0, order = 1;
	while (got + dropped < total) {
		if (read_line(f, line, sizeof line, 10) < 0)
			break;
		if (strncmp(line, "{\"dropped\":", 11) == 0) {
			dropped += atol(line + 11);
		} else {
			const char *p = strstr(line, "line ");
			long k = p ? atol(p + 5) : -1;
			if (k <= last)
				order = 0;
			last = k;
			got++;
		}
	}
	ok(dropped > 0 && got > 0 && order, "lines in order, some dropped (%ld got, %ld dropped)", got, dropped);
	ok(got + dropped == total, "every line delivered or counted (%ld + %ld = %d)", got, dropped, total);
	close_conn(f);
	close_conn(c);
	stop_in_temp(dir);
}

/* Slots: followers can never take the last FOLLOW_RESERVE (32); a follower
 * that goes away is freed though it follows a quiet process; an idle
 * connection is closed after idle_timeout. */
static void test_slots(void)
{
	st = hum_store_new(64 * 1024);
	hum_entry *e = add_proc("quiet", "", HUM_RUNNING, 1);
	log_line(e, HUM_STREAM_OUT, "hello");
	hum_store_flush(st);
	char dir[64] = "/tmp/hum-apitest3-XXXXXX";
	hum_api_opts o = { .store = st, .loop = loop, .on_command = on_command, .max_clients = 40,
			   .idle_timeout = 0.4, .follow_interval = 0.01 };
	if (!start_in_temp(dir, &o))
		return;
	conn *f[9];
	int followed = 0;
	for (int i = 0; i < 9; i++) {
		f[i] = open_conn();
		if (ask(f[i], "{\"cmd\":\"logs\",\"names\":[\"quiet\"],\"n\":1,\"follow\":true}\n") > 0 &&
		    strstr(line, "hello"))
			followed++;
	}
	ok(followed == 8 && strstr(line, "too many followers"), "8 of 40 slots may follow, the 9th is refused: %s",
	   line);
	conn *c = open_conn();
	ok(ask(c, "{\"cmd\":\"ps\"}\n") > 0 && strstr(line, "\"procs\""), "ps gets a reserved slot");
	hum_api_stats stats;
	for (int i = 0; i < 8; i++)
		close_conn(f[i]); /* they go away without a word */
	double until = mono() + 10;
	do {
		ev_run(loop, EVRUN_NOWAIT);
		hum_api_get_stats(api, &stats);
	} while (stats.clients > 2 && mono() < until);
	ok(stats.clients <= 2, "followers of a quiet process that went away are freed (%u left)", stats.clients);
	/* c and f[8] sit idle: closed after 0.4 s */
	ok(read_line(c, line, sizeof line, 10) < 0 && c->eof, "an idle connection is closed");
	close_conn(c);
	close_conn(f[8]);
	stop_in_temp(dir);
}

int main(void)
{
	loop = ev_default_loop(0);
	test_slow_follower();
	test_slots();
	return done_testing();
}

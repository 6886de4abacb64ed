/*
 * sweep.c — token sweeps on a worker thread.
 *
 * A sweep reads /proc/<pid>/environ of every process on the machine to find
 * descendants of a run that left its process group (sentinel.h).  That costs
 * about 10 us per process (300 processes: 3 ms; a workstation with a browser
 * and an IDE: 20+ ms), and it is needed on every stop and restart.  On the
 * loop thread it delayed everything behind it: the exit reaction, the
 * respawn, output.  So the loop thread only queues requests here; one worker
 * thread, started at the first request, takes whatever has queued up, makes
 * one /proc pass for all of it, and hands the batch back through an ev_async;
 * the loop thread then publishes the final states that waited for the sweep
 * (a stop is `stopped` only once its leftovers had SIGKILL).
 *
 * Ownership and ordering.  The queue and the done list are guarded by `mu`
 * (this is the supervisor's work queue, not state: readers of state never
 * see it).  A batch belongs to the worker from the moment it takes it until
 * it appends it to `done`.  Batches run one at a time, in request order, so
 * a stop signal is swept before the SIGKILL that follows it.  Each kill is
 * verified against the process's token through a pidfd, so the worker never
 * signals a recycled pid; besides its batch it reads only what does not
 * change while it runs: the prefix, pid_max, the cgroup top's name.
 *
 * Cgroups and sessions.  A run that lives in a cgroup (cgroup.h) has its
 * cgroup signalled by the loop thread when the request is made (the kernel
 * lists the members: no /proc pass), and the token pass skips its members.
 * A run without a cgroup has its session swept too, in a second pass over
 * the same pids (lineage.h).
 *
 * The async watcher is active (and so keeps ev_run going) exactly while a
 * request is queued, in flight or done but not yet handled: a stop waiting
 * for its sweep keeps the loop alive.  If the thread cannot be started, the
 * loop thread sweeps itself and posts the result to the same async, so the
 * rest of the code sees one path.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lineage.h"
#include "sup_priv.h"

/* A carrier found by a count request: the request, the process, its parent. */
typedef struct carrier {
	size_t req;
	pid_t pid, ppid;
} carrier;

typedef struct batch {
	hum_sup *s;
	hum_scan_req *req;
	size_t n;
	carrier *c;         /* carriers found by count requests (worker-local) */
	size_t nc, ccap;
} batch;

static pid_t ppid_of(pid_t pid);

/* A count request found a carrier: count it, and keep it (with its parent)
 * for count_tops.  Without memory it is only counted. */
static void note_carrier(batch *b, size_t k, pid_t pid)
{
	b->req[k].found++;
	if (b->nc == b->ccap) {
		size_t cap = b->ccap ? b->ccap * 2 : 64;
		carrier *v = realloc(b->c, cap * sizeof *v);
		if (v == NULL)
			return;
		b->c = v;
		b->ccap = cap;
	}
	b->c[b->nc++] = (carrier){ k, pid, ppid_of(pid) };
}

/* After the pass: the remaining processes each count request names are the
 * tops of what remains (carriers whose parent is not one of the same run's
 * carriers): stable while the children under them come and go (a shell
 * loop forking `sleep`), so watching them costs nothing until one of them
 * exits.  A pidfd for each (checked against the token while held). */
#define TOPS_CHECKED 256 /* carriers compared per request (quadratic) */
static void count_tops(batch *b)
{
	for (size_t k = 0; k < b->n; k++) {
		hum_scan_req *r = &b->req[k];
		if (r->after != AFTER_COUNT || r->found == 0)
			continue;
		char value[128];
		int vl = snprintf(value, sizeof value, "%s%u.%u", b->s->prefix, r->id, r->run);
		if (vl <= 0 || (size_t)vl >= sizeof value)
			continue;
		size_t seen = 0, ntop = 0;
		for (size_t i = 0; i < b->nc && seen < TOPS_CHECKED && ntop < HUM_SNAP_PIDS; i++) {
			if (b->c[i].req != k)
				continue;
			seen++;
			bool top = true;
			for (size_t j = 0; j < b->nc && top; j++)
				top = !(b->c[j].req == k && b->c[j].pid == b->c[i].ppid);
			if (!top)
				continue;
			int fd = hum_token_pidfd(b->c[i].pid, value, (size_t)vl);
			if (fd == -ESRCH)
				continue; /* gone meanwhile (it was counted: the next count corrects) */
			r->pids[ntop] = b->c[i].pid;
			r->pidfds[ntop] = fd < 0 ? -1 : fd; /* -1: no pidfds (ENOSYS, EMFILE) */
			ntop++;
		}
	}
}

static int sweep_match(pid_t pid, const char *value, size_t len, void *ud)
{
	batch *b = ud;
	/* value = prefix "<id>.<run>" */
	const char *q = value + strlen(b->s->prefix);
	char *end;
	unsigned long id = strtoul(q, &end, 10);
	if (*end != '.')
		return 0;
	unsigned long run = strtoul(end + 1, &end, 10);
	int last = 0;
	for (size_t i = 0; i < b->n; i++) {
		hum_scan_req *r = &b->req[i];
		/* id 0 and run 0: every token; otherwise the id exactly (0 is
		 * exec.c's jobs: process ids start at 1) and the run if given */
		if (((r->id || r->run) && r->id != id) || (r->run && r->run != run))
			continue;
		if (r->after == AFTER_COUNT) {
			note_carrier(b, i, pid);
			continue;
		}
		if (r->sig == last)
			continue;
		/* A stop signal reached the group already: only those who left
		 * it get it here (twice could mean "force quit" to some).  The
		 * same for the run's cgroup (cgroup_kill.c signalled it at once). */
		if (r->skip_pgid && getpgid(pid) == r->skip_pgid)
			continue;
		if (r->cg && r->sig != SIGKILL && sup_cgroup_holds_run(b->s, r->id, r->run, pid))
			continue;
		last = r->sig;
		hum_token_kill(pid, value, len, r->sig);
	}
	return 0;
}

/* Reads a small /proc file into buf (NUL terminated); length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t len)
{
	int fd;
	do
		fd = open(path, O_RDONLY | O_CLOEXEC);
	while (fd < 0 && errno == EINTR);
	if (fd < 0)
		return -1;
	size_t have = 0;
	while (have + 1 < len) {
		ssize_t r = read(fd, buf + have, len - 1 - have);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			break;
		have += (size_t)r;
	}
	close(fd);
	buf[have] = '\0';
	return (ssize_t)have;
}

uint64_t sup_total_forks(void)
{
	char buf[16384]; /* the "intr" line before it can be long */
	if (read_small("/proc/stat", buf, sizeof buf) <= 0)
		return 0;
	const char *p = strstr(buf, "\nprocesses ");
	return p ? strtoull(p + 11, NULL, 10) : 0;
}

/* The parent of pid (/proc/<pid>/stat: "pid (comm) S ppid ..."; comm may
 * hold anything, so parse after its last ')'), or 0. */
static pid_t ppid_of(pid_t pid)
{
	char path[32], buf[512];
	snprintf(path, sizeof path, "/proc/%d/stat", (int)pid);
	if (read_small(path, buf, sizeof buf) <= 0)
		return 0;
	const char *p = strrchr(buf, ')');
	return p && p[1] == ' ' && p[2] && p[3] == ' ' ? (pid_t)atoi(p + 4) : 0;
}

/* The pid most recently allocated in our pid namespace (/proc/loadavg's
 * last field), or 0. */
static pid_t last_pid(void)
{
	char buf[128];
	if (read_small("/proc/loadavg", buf, sizeof buf) <= 0)
		return 0;
	const char *p = strrchr(buf, ' ');
	return p ? (pid_t)strtol(p + 1, NULL, 10) : 0;
}

/* Which pids a batch must look at.  Linux hands out pids cyclically, so
 * every descendant of a run has a pid in the cyclic range from the run's
 * first pid to the last pid allocated — as long as fewer than a lap of pids
 * (pid_max) was allocated since: the machine's fork count tells.  Half a lap
 * is the margin (threads count as forks; the count is read just before the
 * fork).  The range is extended by a few thousand pids past the last one for
 * processes forked while the sweep runs.  *lo = 0: every pid.  On a machine
 * with hundreds of processes this turns a restart's sweep from a read of
 * every environment into a read of the few processes started since. */
static void batch_range(const hum_sweeper *w, const hum_scan_req *req, size_t n, pid_t *lo, pid_t *hi)
{
	*lo = *hi = 0;
	const int64_t max = w->pid_max;
	if (max < 4096)
		return;
	uint64_t forks = sup_total_forks();
	pid_t last = last_pid();
	if (forks == 0 || last <= 0 || last >= max)
		return;
	int64_t span = 0; /* pids from the earliest floor to last */
	for (size_t i = 0; i < n; i++) {
		const hum_scan_req *r = &req[i];
		if (r->floor <= 0 || r->floor >= max || r->forks == 0 || forks < r->forks ||
		    forks - r->forks >= (uint64_t)max / 2)
			return;
		int64_t d = ((int64_t)last - r->floor + max) % max;
		if (d > span)
			span = d, *lo = r->floor;
		else if (*lo == 0)
			*lo = r->floor;
	}
	const int64_t slack = 4096;
	if (span + slack >= max / 2) {
		*lo = 0;
		return;
	}
	*hi = (pid_t)((last + slack) % max);
}

/* ---- sessions (runs without a cgroup: lineage.h) ---- */

typedef struct session_pass {
	batch *b;
	const hum_scan_req *r; /* the request being matched */
} session_pass;

static int in_session(const hum_kin *k, void *ud)
{
	const hum_scan_req *r = ((session_pass *)ud)->r;
	return k->sid == r->sid && k->state != 'Z';
}

/* A member of a request's session that neither had the signal with the
 * group nor carries the run's token (the token pass had it) gets it. */
static int session_match(int procfd, const char *name, pid_t pid, void *ud)
{
	session_pass *sp = ud;
	batch *b = sp->b;
	hum_kin k;
	if (hum_lineage_stat(pid, &k) != 0)
		return 0;
	for (size_t i = 0; i < b->n; i++) {
		const hum_scan_req *r = &b->req[i];
		if (!r->sid || k.sid != r->sid || (r->skip_pgid && k.pgid == r->skip_pgid))
			continue;
		char want[160], val[160];
		snprintf(want, sizeof want, "%s%u.%u", b->s->prefix, r->id, r->run);
		if (hum_token_of(pid, val, sizeof val) >= 0 && strcmp(val, want) == 0)
			continue;
		sp->r = r;
		hum_lineage_kill(pid, in_session, sp, r->sig);
	}
	return 0;
}

/* One /proc pass for a batch (two with sessions); returns hum_token_scan's
 * result. */
static int sweep(hum_sup *s, hum_scan_req *req, size_t n)
{
	batch b = { s, req, n, NULL, 0, 0 };
	pid_t lo, hi;
	batch_range(&s->sweeper, req, n, &lo, &hi);
	int rc = hum_token_scan_range(s->prefix, lo, hi, sweep_match, &b);
	count_tops(&b);
	free(b.c);
	/* A session id is the run's as long as it cannot have been recycled:
	 * fewer than half of pid_max forks since the run began (as for the
	 * range); sup_scan_request set sid only with a known fork count. */
	uint64_t forks = sup_total_forks();
	bool any = false;
	hum_scan_req *own = NULL;
	for (size_t i = 0; i < n; i++)
		any |= req[i].sid != 0;
	if (any && (own = malloc(n * sizeof *own)) != NULL) {
		for (size_t i = 0; i < n; i++) {
			own[i] = req[i];
			if (forks == 0 || forks < own[i].forks || s->sweeper.pid_max == 0 ||
			    forks - own[i].forks >= (uint64_t)s->sweeper.pid_max / 2)
				own[i].sid = 0;
		}
		batch sb = { .s = s, .req = own, .n = n };
		session_pass sp = { &sb, NULL };
		hum_lineage_each(lo, hi, session_match, &sp);
		free(own);
	}
	return rc;
}

/* Appends to a growable request array; false when out of memory. */
static bool push(hum_scan_req **v, size_t *n, size_t *cap, const hum_scan_req *r, size_t k)
{
	if (*n + k > *cap) {
		size_t c = *cap ? *cap : 16;
		while (c < *n + k)
			c *= 2;
		hum_scan_req *nv = realloc(*v, c * sizeof *nv);
		if (nv == NULL)
			return false;
		*v = nv;
		*cap = c;
	}
	memcpy(*v + *n, r, k * sizeof *r);
	*n += k;
	return true;
}

/* Moves a swept batch to the done list and wakes the loop.  Called with mu
 * held.  If the done list cannot grow, the batch's finish requests are lost
 * to it: they are kept by marking the error, and the loop finishes every
 * finish_pending process (the group had SIGKILL; do not hang the stop). */
static void post_done(hum_sweeper *w, hum_scan_req *req, size_t n, int rc)
{
	if (rc < 0 && w->err == 0)
		w->err = -rc;
	if (!push(&w->done, &w->ndone, &w->done_cap, req, n))
		w->lost = true;
	free(req);
}

static void *worker_main(void *arg)
{
	hum_sup *s = arg;
	hum_sweeper *w = &s->sweeper;
	pthread_mutex_lock(&w->mu);
	for (;;) {
		while (!w->quit && w->nq == 0)
			pthread_cond_wait(&w->cv, &w->mu);
		if (w->quit)
			break;
		hum_scan_req *req = w->q;
		size_t n = w->nq;
		w->q = NULL;
		w->nq = w->qcap = 0;
		w->busy = true;
		pthread_mutex_unlock(&w->mu);
		int rc = sweep(s, req, n);
		pthread_mutex_lock(&w->mu);
		w->busy = false;
		post_done(w, req, n, rc);
		ev_async_send(s->loop, &w->done_w);
	}
	pthread_mutex_unlock(&w->mu);
	return NULL;
}

/* Loop thread: the sweep of a batch is over. */
static void done_cb(struct ev_loop *loop, ev_async *aw, int revents)
{
	hum_sup *s = (hum_sup *)((char *)aw - offsetof(hum_sup, sweeper.done_w));
	hum_sweeper *w = &s->sweeper;
	pthread_mutex_lock(&w->mu);
	hum_scan_req *done = w->done;
	size_t n = w->ndone;
	int err = w->err;
	bool lost = w->lost;
	w->done = NULL;
	w->ndone = w->done_cap = 0;
	w->err = 0;
	w->lost = false;
	pthread_mutex_unlock(&w->mu);
	if (err)
		sup_log(s, NULL, "token sweep: /proc: %s", strerror(err));
	if (lost)
		sup_log(s, NULL, "token sweep: out of memory");
	/* Finishing may queue new requests (a restart): done is ours now.
	 * A result for a run that is over (a new run began, the record was
	 * retired) is dropped. */
	for (size_t i = 0; i < n; i++) {
		hum_proc *p = done[i].id ? hum_sup_get(s, done[i].id) : NULL;
		bool current = p && p->run == done[i].run;
		if (done[i].after == AFTER_FINISH && current && p->finish_pending)
			sup_reap_finish(p);
		else if (done[i].after == AFTER_COUNT && current && p->count_queued)
			sup_remain_counted(p, &done[i]);
		sup_scan_req_release(&done[i]);
	}
	free(done);
	if (lost) {
		/* A request lost to ENOMEM: never leave a stop or a count
		 * hanging (the group had its signal; nothing counted is 0). */
		for (size_t i = 0; i < s->nprocs; i++) {
			hum_proc *p = s->procs[i];
			if (p->count_queued) {
				hum_scan_req none = { .id = p->id, .run = p->run, .after = AFTER_COUNT };
				sup_remain_counted(p, &none);
			} else if (p->finish_pending && !p->pid) {
				sup_reap_finish(p);
			}
		}
	}
	pthread_mutex_lock(&w->mu);
	bool idle = w->nq == 0 && !w->busy && w->ndone == 0;
	pthread_mutex_unlock(&w->mu);
	if (idle)
		ev_async_stop(loop, aw);
}

void sup_scan_req_release(hum_scan_req *r)
{
	if (r->after != AFTER_COUNT)
		return;
	for (int k = 0; k < HUM_SNAP_PIDS; k++)
		if (r->pidfds[k] >= 0) {
			close(r->pidfds[k]);
			r->pidfds[k] = -1;
		}
}

static void queue_request(hum_sup *s, hum_scan_req r);

void sup_scan_request(hum_sup *s, hum_proc *p, int sig, int after, pid_t skip_pgid)
{
	/* cgroup_kill.c: the run's cgroup (every one with p NULL) has sig first,
	 * from this thread: the kernel lists its members, no /proc pass. */
	sup_cgroup_signal(s, p ? p->id : 0, p ? p->run : 0, sig, skip_pgid);
	hum_scan_req r = {
		.id = p ? p->id : 0, .run = p ? p->run : 0, .sig = sig, .after = (uint8_t)after,
		.skip_pgid = skip_pgid, .floor = p && p->forks0 ? p->pgid : 0,
		.forks = p ? p->forks0 : 0, .cg = p && p->cg,
		.sid = p && !p->cg && p->forks0 ? p->pgid : 0,
	};
	for (int k = 0; k < HUM_SNAP_PIDS; k++)
		r.pidfds[k] = -1;
	queue_request(s, r);
}

void sup_scan_job(hum_sup *s, uint32_t job, int sig, pid_t pid, uint64_t forks0)
{
	hum_scan_req r = {
		.run = job, .sig = sig, .after = AFTER_NONE, .floor = forks0 ? pid : 0, .forks = forks0,
		.sid = !s->cg.placing && forks0 ? pid : 0,
	};
	for (int k = 0; k < HUM_SNAP_PIDS; k++)
		r.pidfds[k] = -1;
	if (!job)
		return;
	/* A job ends with its leader: its cgroup's last signal, then away. */
	sup_cgroup_signal(s, 0, job, sig, 0);
	sup_cgroup_release(s, 0, job);
	queue_request(s, r);
}

static void queue_request(hum_sup *s, hum_scan_req r)
{
	hum_sweeper *w = &s->sweeper;
	if (!ev_is_active(&w->done_w))
		ev_async_start(s->loop, &w->done_w);
	if (!w->started && !w->nothread) {
		/* The worker inherits hum's signal mask: block everything so
		 * process-directed signals go to the loop thread. */
		sigset_t all, old;
		sigfillset(&all);
		pthread_sigmask(SIG_SETMASK, &all, &old);
		int rc = pthread_create(&w->thread, NULL, worker_main, s);
		pthread_sigmask(SIG_SETMASK, &old, NULL);
		if (rc == 0)
			w->started = true;
		else {
			w->nothread = true;
			sup_log(s, NULL, "token sweep: no worker thread (%s); sweeping on the loop",
				     strerror(rc));
		}
	}
	if (w->nothread) {
		/* Same path as the worker's, on this thread. */
		int rc = sweep(s, &r, 1);
		hum_scan_req *one = malloc(sizeof *one);
		pthread_mutex_lock(&w->mu);
		if (one) {
			*one = r;
			post_done(w, one, 1, rc);
		} else {
			sup_scan_req_release(&r);
			w->lost = true;
		}
		pthread_mutex_unlock(&w->mu);
		ev_async_send(s->loop, &w->done_w);
		return;
	}
	pthread_mutex_lock(&w->mu);
	bool ok = push(&w->q, &w->nq, &w->qcap, &r, 1);
	if (ok)
		pthread_cond_signal(&w->cv);
	else
		w->lost = true;
	pthread_mutex_unlock(&w->mu);
	if (!ok) {
		sup_log(s, NULL, "token sweep: out of memory");
		/* The group kill still happened; do not hang the stop. */
		ev_async_send(s->loop, &w->done_w);
	}
}

void sup_sweeper_init(hum_sup *s)
{
	hum_sweeper *w = &s->sweeper;
	pthread_mutex_init(&w->mu, NULL);
	pthread_cond_init(&w->cv, NULL);
	ev_async_init(&w->done_w, done_cb);
	char buf[32];
	w->pid_max = read_small("/proc/sys/kernel/pid_max", buf, sizeof buf) > 0 ? (pid_t)atoi(buf) : 0;
}

/* Stops the worker (after the batch it is sweeping, if any); what is queued
 * stays unswept: the caller (hum_sup_free) sweeps everything itself. */
void sup_sweeper_stop(hum_sup *s)
{
	hum_sweeper *w = &s->sweeper;
	if (w->started) {
		pthread_mutex_lock(&w->mu);
		w->quit = true;
		pthread_cond_signal(&w->cv);
		pthread_mutex_unlock(&w->mu);
		pthread_join(w->thread, NULL);
		w->started = false;
	}
	w->nothread = true; /* from now on, requests are swept on this thread */
}

void sup_sweeper_fini(hum_sup *s)
{
	hum_sweeper *w = &s->sweeper;
	sup_sweeper_stop(s);
	ev_async_stop(s->loop, &w->done_w);
	for (size_t i = 0; i < w->ndone; i++)
		sup_scan_req_release(&w->done[i]);
	free(w->q);
	free(w->done);
	w->q = w->done = NULL;
	w->nq = w->qcap = w->ndone = w->done_cap = 0;
	pthread_cond_destroy(&w->cv);
	pthread_mutex_destroy(&w->mu);
}

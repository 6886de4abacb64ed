/*
 * proc_remove.c — removing a process (hum_sup_remove, see proc.h): it is
 * stopped, and once its run is over it is retired (the removed hook, its
 * store entry, its record freed) by the ev_prepare watcher hum_sup.retire_w,
 * active while a removal waits.
 */
#include <errno.h>
#include <string.h>

#include "sup_priv.h"

static bool run_over(const hum_proc *p)
{
	int st = p->entry->snap->state;
	return p->pid == 0 && !p->finish_pending && p->nstreams == 0 && p->nremain == 0 &&
	       !p->count_queued && !p->leftover_stop &&
	       (st == HUM_PENDING || st == HUM_STOPPED || st == HUM_SUCCEEDED || st == HUM_FAILED);
}

static void retire(hum_sup *s, size_t i)
{
	hum_proc *p = s->procs[i];
	ev_timer_stop(s->loop, &p->grace_timer);
	ev_timer_stop(s->loop, &p->backoff_timer);
	sup_remain_unwatch(p);
	if (s->hooks.removed)
		s->hooks.removed(p, s->ud);
	memmove(&s->procs[i], &s->procs[i + 1], (s->nprocs - i - 1) * sizeof s->procs[0]);
	s->nprocs--;
	p->entry->owner = NULL;
	hum_store_remove(s->st, p->entry);
	sup_proc_free(p);
}

/* Each iteration while removals wait: retire those whose run is over.  A
 * sweep still queued for a retired process finds no record by id and is
 * dropped (sweep.c looks records up by id). */
void sup_retire_cb(struct ev_loop *loop, ev_prepare *w, int revents)
{
	hum_sup *s = (hum_sup *)((char *)w - offsetof(hum_sup, retire_w));
	for (size_t i = s->nprocs; i-- > 0;) {
		hum_proc *p = s->procs[i];
		if (p->removing && run_over(p)) {
			retire(s, i);
			s->nremoving--;
		}
	}
	if (s->nremoving == 0)
		ev_prepare_stop(loop, w);
}

int hum_sup_remove(hum_sup *s, hum_proc *p)
{
	if (p->removing)
		return -EALREADY;
	p->removing = 1;
	s->nremoving++;
	hum_proc_stop(p);
	ev_prepare_start(s->loop, &s->retire_w); /* no-op when active */
	return 0;
}

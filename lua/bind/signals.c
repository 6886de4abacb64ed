/*
 * signals.c — signals to hum: a watcher per signal (none for a signal that
 * was ignored when hum started), what C does itself (suspend on SIGTSTP,
 * kill every group at a second Ctrl-C, the reopen hooks on SIGUSR1), and a
 * "signal" event for the rest of what a signal means (Lua's: hum.runtime).
 * Loop thread only.
 */
#include <errno.h>
#include <signal.h>

#include "bind_priv.h"
#include "signames.h"

int hum_host_on_reopen(hum_host *h, void (*fn)(void *ud), void *ud)
{
	if (h->nreopen == HUM_HOST_REOPEN_MAX)
		return -ENOSPC;
	h->reopen[h->nreopen].fn = fn;
	h->reopen[h->nreopen].ud = ud;
	h->nreopen++;
	return 0;
}

/* SIGTSTP (Ctrl-Z): the whole environment is suspended, as a shell job.
 * Children run in sessions of their own, so the terminal's Ctrl-Z never
 * reaches them: hum stops their groups, then itself (every thread: `hum ps`
 * waits too); once continued (fg, bg, SIGCONT) it continues the groups it
 * stopped.  Timers are not adjusted: a grace period that ran out while hum
 * was suspended ends at once. */
static void suspend(hum_host *h)
{
	size_t n = hum_sup_pause_all(h->sup, true);
	hum_host_report(h, "suspended (SIGTSTP): %zu process group%s paused; fg or SIGCONT resumes",
			n, n == 1 ? "" : "s");
	if (h->out)
		hum_output_flush(h->out);
	raise(SIGSTOP); /* returns once hum is continued */
	n = hum_sup_pause_all(h->sup, false);
	hum_host_report(h, "resumed: %zu process group%s continued", n, n == 1 ? "" : "s");
}

static void signal_cb(struct ev_loop *loop, ev_signal *w, int revents)
{
	hum_host *h = w->data;
	int sig = w->signum;
	if (sig == SIGTSTP) {
		suspend(h);
		return;
	}
	if (sig == SIGUSR1)
		for (int i = 0; i < h->nreopen; i++)
			h->reopen[i].fn(h->reopen[i].ud);
	if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) {
		h->stops_seen++;
		if (h->stops_seen > 1 && (sig == SIGINT || sig == SIGQUIT)) {
			/* Second Ctrl-C (or Ctrl-\): no more ceremony, kill every
			 * group now. */
			hum_host_report(h, "second %s: killing every process group",
					sig == SIGINT ? "interrupt" : "quit");
			hum_sup_kill_all(h->sup);
		}
	}
	/* What the signal means is Lua's (hum.runtime.shutdown S.signals). */
	hum_event *ev = hum_event_new("signal", 0);
	hum_event_int(ev, "signo", sig);
	hum_event_cstr(ev, "signal", hum_signame(sig));
	hum_host_push(h, ev);
}

/* Whether sig was ignored when hum started (nohup, `trap '' HUP`).  Such a
 * signal stays ignored, as POSIX asks of shells and as users of nohup
 * expect.  Not for SIGINT and SIGQUIT: a shell without job control starts
 * every background command (`hum up &` in a script) with those two ignored,
 * which is nobody's choice, and they are how hum is told to stop. */
static bool ignored_at_start(int sig)
{
	struct sigaction old;
	if (sig == SIGINT || sig == SIGQUIT)
		return false;
	if (sigaction(sig, NULL, &old) != 0)
		return false;
	return !(old.sa_flags & SA_SIGINFO) && old.sa_handler == SIG_IGN;
}

void bind_signals_start(hum_host *h)
{
	/* What each means: README "Signals"; hum.runtime.shutdown S.signals. */
	static const int signums[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT,
				       SIGUSR1, SIGUSR2, SIGTSTP };
	_Static_assert(sizeof signums / sizeof signums[0] <= HUM_HOST_SIGNALS, "HUM_HOST_SIGNALS");

	h->nsig = 0;
	for (size_t i = 0; i < sizeof signums / sizeof signums[0]; i++) {
		/* Checked before libev installs its handler (which would
		 * replace SIG_IGN for good). */
		if (ignored_at_start(signums[i]))
			continue;
		ev_signal *w = &h->sig[h->nsig++];
		ev_signal_init(w, signal_cb, signums[i]);
		w->data = h;
		ev_signal_start(h->loop, w);
	}
}

/*
 * proc_spec.c — a spec's defaults and spec equality (hum_proc_spec_equal,
 * see proc.h): what live reload asks before it keeps a running process.
 * hum_sup_add (proc.c) applies the same defaults from here.
 */
#include <signal.h>
#include <string.h>

#include "sup_priv.h"

/* The defaults hum_sup_add applies, in one place for add and equality. */
int sup_norm_signal(const hum_spec *sp) { return sp->stop_signal > 0 ? sp->stop_signal : SIGTERM; }
double sup_norm_grace(const hum_spec *sp) { return sp->grace < 0 ? 5.0 : sp->grace; }
hum_restart sup_norm_restart(const hum_spec *sp)
{
	hum_restart r = sp->restart;
	if (!(r.initial >= 0))
		r.initial = 0;
	if (!(r.cap >= r.initial))
		r.cap = r.initial;
	return r;
}

static bool str_eq(const char *a, const char *b)
{
	return strcmp(a ? a : "", b ? b : "") == 0;
}

static bool strv_eq(char *const *a, char *const *b)
{
	if (!a || !b)
		return a == b;
	for (; *a && *b; a++, b++)
		if (strcmp(*a, *b) != 0)
			return false;
	return *a == NULL && *b == NULL;
}

bool hum_proc_spec_equal(const hum_proc *p, const hum_spec *sp)
{
	hum_restart r = sup_norm_restart(sp);
	return (sp->shell ? p->shell && strcmp(p->shell, sp->shell) == 0 && !p->argv
			  : !p->shell && strv_eq(p->argv, sp->argv)) &&
	       str_eq(p->cwd, sp->cwd) && strv_eq(p->env, sp->env) &&
	       p->stop_signal == sup_norm_signal(sp) && p->grace == sup_norm_grace(sp) &&
	       p->kind == sp->kind && p->restart.policy == r.policy && p->restart.max == r.max &&
	       p->restart.initial == r.initial && p->restart.cap == r.cap &&
	       p->restart.reset_after == r.reset_after &&
	       str_eq(p->groups, sp->groups) && str_eq(p->base, sp->base);
}

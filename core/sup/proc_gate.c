/*
 * proc_gate.c — a process's start gate (hum_proc_set_gate, see proc.h):
 * whether it may start, and if not why, kept in its record (p->gate).
 *
 * The start gate (hum_proc_set_gate) is Lua's "may start" (every `after`
 * condition holds now).  C never decides dependencies, but it owns every
 * spawn, and every spawn goes through sup_proc_spawn (proc.c), which
 * refuses while the gate is closed: so no start path — including the
 * policy's backoff timer and a restart's second half — can start a process
 * whose dependencies do not hold, without asking Lua at each of them.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sup_priv.h"

/* The reason a gate closed by hum_proc_set_gate keeps when its own copy
 * could not be allocated: a gate never opens for want of memory. */
static char gate_oom[] = "waiting for dependencies";

void sup_gate_free(hum_proc *p)
{
	if (p->gate != gate_oom)
		free(p->gate);
	p->gate = NULL;
}

int hum_proc_set_gate(hum_proc *p, const char *reason)
{
	if (reason == NULL) {
		sup_gate_free(p);
		return 0;
	}
	if (p->gate && strcmp(p->gate, reason) == 0)
		return 0;
	char *copy = strdup(reason);
	sup_gate_free(p);
	p->gate = copy ? copy : gate_oom;
	return copy ? 0 : -ENOMEM;
}

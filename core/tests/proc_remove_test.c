/*
 * proc_remove_test.c — retiring a process (hum_sup_remove) and comparing a
 * registered process with a new spec (hum_proc_spec_equal): what live
 * reload and plugins that replace a definition stand on.
 */
#include "proc_util.h"

static int removed_n;
static uint32_t removed_id;

static void count_removed(hum_proc *p, void *ud)
{
	removed_n++;
	removed_id = hum_proc_id(p);
}

static void test_remove_running(void)
{
	rec r;
	hum_spec sp = spec_sh("trap 'echo bye; exit 0' TERM; echo started; while :; do sleep 0.05; done");
	hum_proc *p = add("doomed", &sp, &r);
	uint32_t id = hum_proc_id(p);
	hum_proc_start(p);
	WAIT(r.text[1] && strstr(r.text[1], "started"), 20);
	pid_t pid = hum_proc_snap(p)->pid;
	removed_n = 0;
	ok(hum_sup_remove(S, p) == 0, "remove a running process");
	ok(hum_sup_remove(S, p) == -EALREADY, "a second remove: -EALREADY");
	ok(hum_sup_get(S, id) == p && state(p) == HUM_STOPPING, "stopping first, still registered");
	WAIT(hum_sup_get(S, id) == NULL, 20);
	ok(hum_sup_get(S, id) == NULL && hum_sup_find(S, "doomed") == NULL && removed_n == 1 && removed_id == id,
	   "retired once the run is over; the removed hook ran once");
	ok(!alive(pid), "its process is gone");
	/* the last state it published is the end of its run, with all its output */
	int last = r.nstates ? r.states[r.nstates - 1] : -1;
	ok(last == HUM_STOPPED && r.text[1] && strstr(r.text[1], "bye"),
	   "final state stopped, published before retirement, output complete (last %s, output %s)",
	   last >= 0 ? hum_state_name(last) : "none", r.text[1] ? r.text[1] : "");
	hum_store_flush(ST);
	const hum_world *w = hum_store_world(ST);
	int in_world = 0;
	for (uint32_t i = 0; i < w->count; i++)
		in_world |= w->procs[i]->id == id;
	ok(!in_world, "gone from the world");
	/* a new process never gets the old id */
	rec r2;
	hum_spec sp2 = spec_sh("true");
	hum_proc *q = add("doomed", &sp2, &r2);
	ok(q && hum_proc_id(q) != id, "the name can be used again, with a new id");
	hum_sup_remove(S, q);
	WAIT(hum_sup_find(S, "doomed") == NULL, 20);
	ok(hum_sup_find(S, "doomed") == NULL, "a never-started process is retired without a run");
	rec_free(&r);
	rec_free(&r2);
}

static void test_spec_equal(void)
{
	rec r;
	char *argv[] = { "/bin/sleep", "100", NULL };
	char *env[] = { "A=1", "B=2", NULL };
	hum_spec a = spec_argv(argv);
	a.env = env;
	a.grace = -1;          /* default: 5 s */
	a.groups = "back,db";
	hum_proc *p = add("eq", &a, &r);
	hum_spec b = a;
	ok(hum_proc_spec_equal(p, &b), "the same spec is equal");
	b.grace = 5;
	b.stop_signal = SIGTERM;
	ok(hum_proc_spec_equal(p, &b), "equal after defaults (grace 5, SIGTERM)");
	char *argv2[] = { "/bin/sleep", "101", NULL };
	char *env2[] = { "A=1", NULL };
	struct { const char *what; hum_spec s; } diff[8];
	int n = 0;
	diff[n].what = "argv", diff[n].s = a, diff[n++].s.argv = argv2;
	diff[n].what = "shell", diff[n].s = a, diff[n].s.argv = NULL, diff[n++].s.shell = "sleep 100";
	diff[n].what = "env", diff[n].s = a, diff[n++].s.env = env2;
	diff[n].what = "cwd", diff[n].s = a, diff[n++].s.cwd = "/tmp";
	diff[n].what = "grace", diff[n].s = a, diff[n++].s.grace = 1;
	diff[n].what = "restart", diff[n].s = a, diff[n++].s.restart.policy = HUM_RESTART_ALWAYS;
	diff[n].what = "groups", diff[n].s = a, diff[n++].s.groups = "back";
	diff[n].what = "kind", diff[n].s = a, diff[n++].s.kind = HUM_TASK;
	for (int i = 0; i < n; i++)
		ok(!hum_proc_spec_equal(p, &diff[i].s), "a different %s is not equal", diff[i].what);
	hum_sup_remove(S, p);
	WAIT(hum_sup_find(S, "eq") == NULL, 20);
	rec_free(&r);
}

int main(void)
{
	harness_init();
	hum_sup_hooks h = { .state = on_state, .lines = on_lines, .log = on_log, .removed = count_removed };
	hum_sup_free(S);
	S = hum_sup_new(L, ST, &h, NULL);
	test_remove_running();
	test_spec_equal();
	harness_fini();
	return done_testing();
}

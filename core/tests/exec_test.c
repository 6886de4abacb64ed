/*
 * exec_test.c — one-shot jobs (core/sup/exec.c): what a job leaves behind
 * dies with it, each job has a token of its own, and no signal goes to a
 * job's process group after its leader was reaped.
 *
 * The group rule is checked by interposing kill(2): every kill(-pgid) is
 * compared with the loop iteration in which that pgid's leader was reaped
 * (an ev_child watcher on every pid, fed in the same pass as exec.c's own).
 * A group signal in a later iteration could hit a recycled id: a violation.
 */
#include <sys/syscall.h>

#include <limits.h>

#include "sup/exec.h"
#include "sup/sup_priv.h"
#include "proc_util.h"

/* ---- kill(2) and reaps, recorded ------------------------------------------ */

#define MAXREC 1024
static struct { pid_t pid; unsigned iter; } reaps[MAXREC];
static int nreaps;
static int group_kills, violations;
static char violation_text[256];
static ev_child reap_w;

int kill(pid_t pid, int sig)
{
	if (pid < -1 && L) {
		unsigned it = ev_iteration(L);
		group_kills++;
		for (int i = 0; i < nreaps; i++)
			if (reaps[i].pid == -pid && reaps[i].iter < it) {
				violations++;
				snprintf(violation_text, sizeof violation_text,
					 "kill(%d, %d) in iteration %u, its leader reaped in %u", (int)pid,
					 sig, it, reaps[i].iter);
			}
	}
	return (int)syscall(SYS_kill, pid, sig);
}

static void reap_cb(struct ev_loop *loop, ev_child *w, int revents)
{
	if (nreaps < MAXREC) {
		reaps[nreaps].pid = w->rpid;
		reaps[nreaps++].iter = ev_iteration(loop);
	}
}

/* ---- jobs ---------------------------------------------------------------------- */

typedef struct job_res {
	int calls;
	int code, sig;
	char *out;
	char error[64];
	double at;
} job_res;

static void exec_done(void *ud, const hum_exec_result *r)
{
	job_res *j = ud;
	j->calls++;
	j->code = r->code;
	j->sig = r->term_signal;
	j->out = strdup(r->out);
	snprintf(j->error, sizeof j->error, "%s", r->error ? r->error : "");
	j->at = now();
}

static int start(job_res *j, char *const *argv, const char *shell, double timeout)
{
	memset(j, 0, sizeof *j);
	hum_exec_spec sp;
	memset(&sp, 0, sizeof sp);
	sp.argv = argv;
	sp.shell = shell;
	sp.timeout = timeout;
	sp.sup = S;
	char err[256];
	return hum_exec_start(L, &sp, exec_done, j, err, sizeof err);
}

static char dir[] = "/tmp/hum-exec-test-XXXXXX";

/* Up to len-1 bytes of a file, NUL terminated; the length or 0. */
static size_t slurp(const char *path, char *buf, size_t len)
{
	FILE *f = fopen(path, "r");
	size_t n = f ? fread(buf, 1, len - 1, f) : 0;
	if (f)
		fclose(f);
	buf[n] = 0;
	return n;
}

/* The pid in dir/name once the file is complete ("<pid>\n"), or 0. */
static pid_t pid_file(const char *name)
{
	char path[128], buf[32];
	snprintf(path, sizeof path, "%s/%s", dir, name);
	slurp(path, buf, sizeof buf);
	return strchr(buf, '\n') ? (pid_t)atoi(buf) : 0;
}

/* The HUM_TOKEN value in pid's environment ("" if none). */
static void token_of(pid_t pid, char *out, size_t len)
{
	char path[64], buf[8192];
	out[0] = 0;
	snprintf(path, sizeof path, "/proc/%d/environ", (int)pid);
	size_t n = slurp(path, buf, sizeof buf);
	for (size_t i = 0; i < n; i += strlen(buf + i) + 1)
		if (!strncmp(buf + i, "HUM_TOKEN=", 10))
			snprintf(out, len, "%s", buf + i + 10);
}

static void test_background_child(void)
{
	job_res j;
	double t0 = now();
	int rc = start(&j, NULL, "echo leader $$; sleep 300 </dev/null >/dev/null 2>&1 & echo bg $!", 0);
	WAIT(j.calls, 10);
	pid_t leader = find_pid(j.out, "leader"), bg = find_pid(j.out, "bg");
	ok(rc == 0 && j.calls == 1 && j.code == 0 && !j.error[0] && leader > 0 && bg > 0,
	   "cmd & holding nothing: the job ends with its shell (code %d, %.2fs)", j.code, j.at - t0);
	int gone = WAIT(!alive(bg), 5);
	ok(gone, "the background child in the group was killed at the reap");
	free(j.out);
}

static void test_daemon(void)
{
	job_res j;
	char *argv[] = { fix("grandkids"), "--exit", NULL };
	int rc = start(&j, argv, NULL, 0);
	WAIT(j.calls, 10);
	pid_t child = find_pid(j.out, "child"), daemon = find_pid(j.out, "daemon");
	ok(rc == 0 && j.calls == 1 && j.code == 0 && child > 0 && daemon > 0,
	   "grandkids --exit: done although its child held the pipes (code %d)", j.code);
	int gone = WAIT(!alive(child) && !alive(daemon), 5);
	ok(child > 0 && daemon > 0 && gone, "its group child and its setsid'd daemon (found by token) are gone");
	free(j.out);
}

/* Two jobs: one's end sweeps its own leftover only; the other is ended by
 * its timeout while its leader runs, and its leftover goes then. */
static void test_tokens_and_timeout(void)
{
	job_res a, b;
	char cmd[512];
	snprintf(cmd, sizeof cmd,
		 "setsid sleep 300 </dev/null >/dev/null 2>&1 & echo $! > %s/b.tmp && mv %s/b.tmp %s/b.pid; "
		 "exec sleep 300", dir, dir, dir);
	double t0 = now();
	int rcb = start(&b, NULL, cmd, 3);
	pid_t bd = 0;
	WAIT((bd = pid_file("b.pid")) && alive(bd), 10);
	char tb[128], ts[128];
	WAIT((token_of(bd, tb, sizeof tb), tb[0]), 5);
	snprintf(ts, sizeof ts, "%s", hum_sup_token(S) + 10);
	size_t pl = strlen(ts) - 3; /* "<prefix>0.0" */
	ok(rcb == 0 && bd > 0 && !strncmp(tb, ts, pl) && !strncmp(tb + pl, "0.", 2) && strcmp(tb + pl, "0.0"),
	   "a job's descendants carry a token of the job's own (%s)", tb + (tb[0] ? pl : 0));

	/* The shell exits only once its child is in a session of its own:
	 * then only the token can find it. */
	snprintf(cmd, sizeof cmd,
		 "cd %s && setsid sh -c 'echo $$ > a.tmp; mv a.tmp a.pid; exec sleep 300' </dev/null >/dev/null 2>&1 & "
		 "while [ ! -f %s/a.pid ]; do sleep 0.01; done", dir, dir);
	int rca = start(&a, NULL, cmd, 0);
	WAIT(a.calls, 10);
	pid_t ad = pid_file("a.pid");
	char ta[128];
	token_of(ad, ta, sizeof ta);
	int gone = WAIT(!alive(ad), 5);
	ok(rca == 0 && a.calls == 1 && a.code == 0 && ad > 0 && gone && strcmp(ta, tb),
	   "a job that exits leaves nothing: its setsid'd child was swept by its token");
	ok(alive(bd) && !b.calls, "another job's leftover, with its own token, was not touched");

	WAIT(b.calls, 10);
	ok(b.calls == 1 && !strcmp(b.error, "timeout") && b.sig == SIGKILL && b.at - t0 >= 2.9,
	   "timeout: the running job's group was killed (error %s, signal %d, %.2fs)", b.error, b.sig,
	   b.at - t0);
	gone = WAIT(!alive(bd), 5);
	ok(gone, "and the leftover that left its group, by token");
	free(a.out);
	free(b.out);
}

/* The leader exits at once; a descendant that left the group and scrubbed
 * its token holds the pipes, so the timeout fires after the reap.  Where
 * jobs go into cgroups (cgroup_spawn.c) such a descendant dies with the leader,
 * so this one also leaves its cgroup for hum's own to outlive it. */
static void test_timeout_after_reap(void)
{
	job_res j;
	char cmd[PATH_MAX + 512], leave[PATH_MAX + 64] = "";
	hum_cgroup_where *w = malloc(sizeof *w);
	if (S->cg.placing && w && hum_cgroup_where_self(w) == 0)
		snprintf(leave, sizeof leave, "echo $$ > %s/cgroup.procs; ", w->self);
	free(w);
	snprintf(cmd, sizeof cmd,
		 "echo leader $$; cd %s && env -u HUM_TOKEN setsid sh -c '%secho $$ > c.tmp; mv c.tmp c.pid; exec sleep 300' & "
		 "while [ ! -f %s/c.pid ]; do sleep 0.01; done", dir, leave, dir);
	int before = violations, kills = group_kills;
	int rc = start(&j, NULL, cmd, 0.5);
	WAIT(j.calls, 10);
	pid_t leader = find_pid(j.out, "leader"), escaped = pid_file("c.pid");
	int reaped = 0;
	for (int i = 0; i < nreaps; i++)
		reaped |= reaps[i].pid == leader;
	ok(rc == 0 && j.calls == 1 && !strcmp(j.error, "timeout") && j.code == 0 && reaped,
	   "pipes held past the leader's exit: ends at the timeout (error %s, code %d)", j.error, j.code);
	ok(violations == before && group_kills - kills <= 1,
	   "no group signal after the leader was reaped (%d group kills, %s)", group_kills - kills,
	   violations > before ? violation_text : "none late");
	if (escaped > 0)
		syscall(SYS_kill, escaped, SIGKILL);
	free(j.out);
}

/* A job's exit is seen without SIGCHLD (reap.c, "exit watches"): with
 * the signal blocked, a job that closed its pipes and exits later still
 * finishes. */
static void test_exit_without_sigchld(void)
{
	sigset_t chld, old;
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	sigprocmask(SIG_BLOCK, &chld, &old);
	job_res j;
	int rc = start(&j, NULL, "exec >/dev/null 2>&1 </dev/null; sleep 0.3; exit 4", 0);
	WAIT(j.calls == 1, 20);
	ok(rc == 0 && j.calls == 1 && j.code == 4 && !j.error[0],
	   "SIGCHLD blocked: the job still finishes (calls %d, code %d)", j.calls, j.code);
	sigprocmask(SIG_SETMASK, &old, NULL);
	free(j.out);
}

int main(void)
{
	setvbuf(stdout, NULL, _IONBF, 0);
	harness_init();
	if (!mkdtemp(dir)) {
		printf("Bail out! mkdtemp\n");
		return 1;
	}
	ev_child_init(&reap_w, reap_cb, 0, 0);
	ev_child_start(L, &reap_w);
	ev_unref(L);
	test_background_child();
	test_daemon();
	test_tokens_and_timeout();
	test_timeout_after_reap();
	test_exit_without_sigchld();
	ok(group_kills > 0 && violations == 0,
	   "over every job: %d group kills, none after its leader's reap%s%s", group_kills,
	   violations ? ": " : "", violation_text);
	ev_ref(L);
	ev_child_stop(L, &reap_w);
	harness_fini();
	char cmd[128];
	snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		return 1;
	return done_testing();
}

/*
 * launch.c — starting one supervised child (posix_spawn).
 *
 * Method: posix_spawn, not fork/vfork by hand.  glibc (2.36 here) implements
 * it with clone(CLONE_VM|CLONE_VFORK), so the cost does not grow with hum's
 * size (no page-table copy of a large LuaJIT heap), and it already does all
 * the child-side work hum needs, async-signal-safely:
 *   - POSIX_SPAWN_SETSID (glibc >= 2.26): own session, so own process group
 *     with pgid == pid (stop/kill address the whole group with kill(-pid));
 *   - POSIX_SPAWN_SETSIGMASK with an empty set and POSIX_SPAWN_SETSIGDEF with
 *     every signal: the child starts with no blocked signal and every
 *     disposition at SIG_DFL (hum ignores SIGPIPE; its children must not);
 *   - file actions: stdin from /dev/null, pipes dup2'd onto 1 and 2,
 *     posix_spawn_file_actions_addchdir_np (glibc >= 2.29) for cwd, and
 *     addclosefrom_np(3) (glibc >= 2.34): hum's own fds are all CLOEXEC, but
 *     fds hum inherited without CLOEXEC (a CI harness's pipe) must not be
 *     held open by a daemon for ever;
 *   - any failure before or in execve (chdir, open, exec) is returned as the
 *     errno of posix_spawn itself, so "could not exec" never looks like a
 *     program that exits 127.
 * posix_spawn cannot say *which* step failed, so on failure with a cwd we
 * check the directory from the parent: if it is not a searchable directory
 * the error is reported as "chdir <dir>: ...", otherwise as "exec <argv[0]>: ...".
 *
 * PATH: glibc's posix_spawnp searches hum's own PATH; a child given its own
 * environment (PATH=node_modules/.bin:...) must be searched in *that* PATH,
 * relative entries resolved against the child's cwd.  So the search is done
 * here (stat + access, like execvp: an entry that exists but is not
 * executable gives EACCES unless a later entry works) and posix_spawn gets
 * the resolved path.  Scripts without a #! line are not run through /bin/sh
 * (glibc's posix_spawn stopped doing that too): they fail with ENOEXEC.
 *
 * Cgroups: with req->cgroup_fd, hum_cgroup_spawn (cgroup_spawn.c) does the same
 * child-side work itself, so that the child is created inside its cgroup
 * (posix_spawn takes no cgroup in glibc before 2.41); when the cgroup
 * cannot be used at all, the child is started here as before and the
 * caller is told (cgroup_err).
 *
 * Pipes: pipe2(O_CLOEXEC), then O_NONBLOCK on hum's read end only.  Passing
 * O_NONBLOCK to pipe2 would make the child's stdout non-blocking as well
 * (the flag lives on each end's open file description), and many programs
 * lose output or fail on EAGAIN.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "launch.h"

extern char **environ;

static void close_keep_errno(int fd)
{
	int e = errno;
	if (fd >= 0)
		close(fd);
	errno = e;
}

static const char *env_get(char *const *env, const char *key, size_t klen)
{
	for (; env && *env; env++)
		if (strncmp(*env, key, klen) == 0 && (*env)[klen] == '=')
			return *env + klen + 1;
	return NULL;
}

/* 0 if path (relative to cwd when it is relative and cwd is set) is an
 * executable regular file, else -errno. */
static int check_exec(const char *cwd, const char *path)
{
	char buf[PATH_MAX];
	if (cwd && path[0] != '/') {
		if ((size_t)snprintf(buf, sizeof buf, "%s/%s", cwd, path) >= sizeof buf)
			return -ENAMETOOLONG;
		path = buf;
	}
	struct stat st;
	if (stat(path, &st) != 0)
		return -errno;
	if (!S_ISREG(st.st_mode))
		return -EACCES;
	if (access(path, X_OK) != 0)
		return -errno;
	return 0;
}

/* Resolves file through PATH into buf; 0 or -errno (ENOENT, EACCES). */
static int resolve(const char *file, char *const *env, const char *cwd, char *buf, size_t len)
{
	if (*file == '\0')
		return -ENOENT;
	if (strchr(file, '/')) {
		if (strlen(file) >= len)
			return -ENAMETOOLONG;
		strcpy(buf, file);
		return 0;
	}
	const char *path = env_get(env ? env : environ, "PATH", 4);
	if (path == NULL)
		path = "/bin:/usr/bin"; /* glibc's default for execvp */
	int err = -ENOENT;
	for (const char *p = path;;) {
		const char *q = strchrnul(p, ':');
		size_t dl = (size_t)(q - p);
		int n = dl ? snprintf(buf, len, "%.*s/%s", (int)dl, p, file)
			   : snprintf(buf, len, "./%s", file); /* empty entry: cwd */
		if (n > 0 && (size_t)n < len) {
			int rc = check_exec(cwd, buf);
			if (rc == 0)
				return 0;
			if (rc == -EACCES)
				err = rc;
		}
		if (*q == '\0')
			break;
		p = q + 1;
	}
	return err;
}

/* environ (or env) without HUM_TOKEN, plus token; NULL on ENOMEM. */
static char **build_env(char *const *env, const char *token)
{
	char *const *src = env ? env : environ;
	size_t n = 0;
	while (src && src[n])
		n++;
	char **v = malloc((n + 2) * sizeof *v);
	if (v == NULL)
		return NULL;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (strncmp(src[i], "HUM_TOKEN=", 10) != 0)
			v[k++] = src[i];
	if (token)
		v[k++] = (char *)token;
	v[k] = NULL;
	return v;
}

static int bad_dir(const char *dir)
{
	struct stat st;
	if (stat(dir, &st) != 0)
		return errno;
	if (!S_ISDIR(st.st_mode))
		return ENOTDIR;
	if (access(dir, X_OK) != 0)
		return errno;
	return 0;
}

static int fail(char *err, size_t errlen, const char *call, const char *arg, int e)
{
	if (err && errlen)
		snprintf(err, errlen, "%s%s%s: %s", call, arg ? " " : "", arg ? arg : "", strerror(e));
	return -e;
}

int hum_spawn(const hum_spawn_req *req, hum_spawned *out, char *err, size_t errlen)
{
	char *sh_argv[4] = { "/bin/sh", "-c", (char *)req->shell, NULL };
	char *const *argv = req->shell ? sh_argv : req->argv;
	char path[PATH_MAX];
	int po[2] = { -1, -1 }, pe[2] = { -1, -1 }, pi[2] = { -1, -1 };
	int rc, e;

	out->pid = 0;
	out->out_fd = out->err_fd = out->in_fd = -1;
	out->cgroup_err = 0;
	if (argv == NULL || argv[0] == NULL)
		return fail(err, errlen, "exec", NULL, EINVAL);
	rc = resolve(argv[0], req->env, req->cwd, path, sizeof path);
	if (rc < 0) {
		if (req->cwd && (e = bad_dir(req->cwd)) != 0)
			return fail(err, errlen, "chdir", req->cwd, e);
		return fail(err, errlen, "exec", argv[0], -rc);
	}
	char **envp = build_env(req->env, req->token);
	if (envp == NULL)
		return fail(err, errlen, "malloc", NULL, ENOMEM);
	if (pipe2(po, O_CLOEXEC) != 0 || pipe2(pe, O_CLOEXEC) != 0 ||
	    fcntl(po[0], F_SETFL, O_NONBLOCK) != 0 || fcntl(pe[0], F_SETFL, O_NONBLOCK) != 0 ||
	    (req->stdin_pipe && (pipe2(pi, O_CLOEXEC) != 0 || fcntl(pi[1], F_SETFL, O_NONBLOCK) != 0))) {
		e = errno;
		free(envp);
		close_keep_errno(po[0]), close_keep_errno(po[1]);
		close_keep_errno(pe[0]), close_keep_errno(pe[1]);
		close_keep_errno(pi[0]), close_keep_errno(pi[1]);
		return fail(err, errlen, "pipe2", NULL, e);
	}

	posix_spawnattr_t attr;
	posix_spawn_file_actions_t fa;
	sigset_t none, all;
	sigemptyset(&none);
	/* Every signal to SIG_DFL, including glibc's internal 32 and 33:
	 * sigfillset leaves those out, and posix_spawn would then leave them
	 * SIG_IGN in the child (it ignores them while it shares hum's memory),
	 * and an ignored signal stays ignored across exec. */
	memset(&all, 0xff, sizeof all);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSID | POSIX_SPAWN_SETSIGMASK |
					POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawnattr_setsigdefault(&attr, &all);
	posix_spawn_file_actions_init(&fa);
	rc = 0;
	if (req->cwd)
		rc = posix_spawn_file_actions_addchdir_np(&fa, req->cwd);
	if (rc == 0)
		rc = req->stdin_pipe ? posix_spawn_file_actions_adddup2(&fa, pi[0], 0)
				     : posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(&fa, po[1], 1);
	if (rc == 0)
		rc = posix_spawn_file_actions_adddup2(&fa, pe[1], 2);
	if (rc == 0) /* hum's fds are CLOEXEC; this also drops ones hum inherited */
		rc = posix_spawn_file_actions_addclosefrom_np(&fa, 3);
	pid_t pid = 0;
	int step = 0; /* the failed step of hum_cgroup_spawn, if it ran */
	if (rc == 0 && req->cgroup_fd > 2) {
		/* cgroup_spawn.c: the same child, created inside its cgroup */
		hum_cgroup_exec x = { path, argv, envp, req->cwd, req->stdin_pipe ? pi[0] : -1,
				      po[1], pe[1], req->cgroup_fd };
		rc = -hum_cgroup_spawn(&x, &pid, &step);
		if (rc != 0 && step == HUM_CG_CLONE && rc != EAGAIN && rc != ENOMEM) {
			out->cgroup_err = rc; /* unusable here: start it without */
			rc = step = 0;
		}
	}
	if (rc == 0 && pid == 0) {
		/* posix_spawn retries nothing itself but is not interrupted by
		 * signals either (the clone'd child blocks them). */
		rc = posix_spawn(&pid, path, &fa, &attr, argv, envp);
	}
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(envp);
	close(po[1]);
	close(pe[1]);
	if (pi[0] >= 0)
		close(pi[0]);
	if (rc != 0) {
		close(po[0]);
		close(pe[0]);
		if (pi[1] >= 0)
			close(pi[1]);
		if (step == HUM_CG_CHDIR)
			return fail(err, errlen, "chdir", req->cwd, rc);
		if (step == HUM_CG_CLONE || step == HUM_CG_SETUP)
			return fail(err, errlen, step == HUM_CG_CLONE ? "clone3" : "spawn", NULL, rc);
		if (req->cwd && (e = bad_dir(req->cwd)) != 0)
			return fail(err, errlen, "chdir", req->cwd, e);
		if (hum_spawn_transient(-rc)) /* hum's shortage, not the program's */
			return fail(err, errlen, "posix_spawn", NULL, rc);
		return fail(err, errlen, "exec", argv[0], rc);
	}
	out->pid = pid;
	out->out_fd = po[0];
	out->err_fd = pe[0];
	out->in_fd = pi[1];
	return 0;
}

bool hum_spawn_transient(int rc)
{
	return rc == -EMFILE || rc == -ENFILE || rc == -ENOMEM || rc == -EAGAIN;
}

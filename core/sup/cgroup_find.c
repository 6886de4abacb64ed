/*
 * cgroup_find.c — where the cgroups are (see cgroup.h): finding cgroup2 and
 * hum's place in it (mountinfo, /proc/self/cgroup), whether a process is in
 * a cgroup, and the supervisor's top: made when the supervisor starts
 * (sup_cgroup_init) under hum's own cgroup, else under the mount's root,
 * and the tops that a hum killed together with its sentinel left beside it
 * removed.  The top's end, and the removal watch sup_cgroup_init starts,
 * are cgroup_kill.c's.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cgroup.h"
#include "lineage.h"
#include "sup_priv.h"

/* ---- where cgroup v2 is -------------------------------------------------- */

/* Copies the space-separated field at *p into out, decoding mountinfo's
 * octal escapes (\040 is a space); advances *p.  false if too long. */
static bool field(const char **p, char *out, size_t len)
{
	const char *s = *p;
	size_t k = 0;
	while (*s == ' ')
		s++;
	while (*s && *s != ' ' && *s != '\n') {
		char c = *s++;
		if (c == '\\' && s[0] >= '0' && s[0] <= '3' && s[1] >= '0' && s[1] <= '7' &&
		    s[2] >= '0' && s[2] <= '7') {
			c = (char)((s[0] - '0') * 64 + (s[1] - '0') * 8 + (s[2] - '0'));
			s += 3;
		}
		if (k + 1 >= len)
			return false;
		out[k++] = c;
	}
	out[k] = '\0';
	*p = s;
	return true;
}

/* Whether rel is root or below it ("/a" is below "/", "/a/b" below "/a",
 * "/ab" is not below "/a"). */
static bool below(const char *rel, const char *root)
{
	size_t n = strlen(root);
	if (n == 1 && root[0] == '/')
		return rel[0] == '/';
	return strncmp(rel, root, n) == 0 && (rel[n] == '\0' || rel[n] == '/');
}

int hum_cgroup_where_parse(const char *mountinfo, const char *proc_cgroup, hum_cgroup_where *w)
{
	/* hum's cgroup: the "0::<path>" line (cgroup v2) */
	const char *l = proc_cgroup;
	while (l && strncmp(l, "0::", 3) != 0) {
		l = strchr(l, '\n');
		l = l ? l + 1 : NULL;
	}
	if (l == NULL)
		return -ENOENT;
	size_t n = strcspn(l + 3, "\n");
	if (n == 0 || n >= sizeof w->self_rel || l[3] != '/')
		return n ? -ENAMETOOLONG : -ENOENT;
	memcpy(w->self_rel, l + 3, n);
	w->self_rel[n] = '\0';
	if (n > 10 && strcmp(w->self_rel + n - 10, " (deleted)") == 0)
		return -ENOENT;

	bool found = false, found_rw = false;
	char root[PATH_MAX], mnt[PATH_MAX], opts[256], f[PATH_MAX];
	for (const char *p = mountinfo; p && *p;) {
		const char *eol = strchr(p, '\n');
		/* id parent major:minor root mount-point options [optional...] - type source super */
		const char *q = p;
		bool ok = field(&q, f, sizeof f) && field(&q, f, sizeof f) && field(&q, f, sizeof f) &&
			  field(&q, root, sizeof root) && field(&q, mnt, sizeof mnt) &&
			  field(&q, opts, sizeof opts);
		while (ok && field(&q, f, sizeof f) && f[0] && strcmp(f, "-") != 0)
			;
		ok = ok && strcmp(f, "-") == 0 && field(&q, f, sizeof f) && strcmp(f, "cgroup2") == 0 &&
		     below(w->self_rel, root);
		bool rw = ok && (strncmp(opts, "rw", 2) == 0 && (opts[2] == '\0' || opts[2] == ','));
		if (ok && (!found || (rw && !found_rw))) {
			const char *rest = w->self_rel + (strcmp(root, "/") == 0 ? 0 : strlen(root));
			if (!sup_join(w->self, sizeof w->self, mnt, strcmp(rest, "/") == 0 ? "" : rest, NULL) ||
			    !sup_join(w->mnt, sizeof w->mnt, mnt, "", NULL) ||
			    !sup_join(w->mnt_rel, sizeof w->mnt_rel, root, "", NULL))
				return -ENAMETOOLONG;
			found = true;
			found_rw = rw;
		}
		p = eol ? eol + 1 : NULL;
	}
	return found ? 0 : -ENOENT;
}

int hum_cgroup_where_self(hum_cgroup_where *w)
{
	size_t cap = 1 << 16;
	char *mi = malloc(cap), cg[PATH_MAX + 64];
	if (mi == NULL)
		return -ENOMEM;
	ssize_t n;
	/* mountinfo can be long (containers, snaps): grow until it fits */
	while ((n = sup_read_file(AT_FDCWD, "/proc/self/mountinfo", mi, cap)) >= 0 && (size_t)n + 1 >= cap &&
	       cap < (1u << 24)) {
		char *m = realloc(mi, cap *= 2);
		if (m == NULL) {
			free(mi);
			return -ENOMEM;
		}
		mi = m;
	}
	int rc = n < 0 ? (int)n : 0;
	if (rc == 0 && (n = sup_read_file(AT_FDCWD, "/proc/self/cgroup", cg, sizeof cg)) < 0)
		rc = (int)n;
	if (rc == 0)
		rc = hum_cgroup_where_parse(mi, cg, w);
	free(mi);
	return rc;
}

/* ---- membership ---------------------------------------------------------- */

bool hum_cgroup_holds(pid_t pid, const char *rel)
{
	char path[48], buf[PATH_MAX + 512];
	if (sup_read_file(AT_FDCWD, hum_lineage_path(path, pid, "cgroup"), buf, sizeof buf) < 0)
		return false;
	for (char *l = buf; l && *l;) {
		char *eol = strchr(l, '\n');
		if (eol)
			*eol = '\0';
		if (strncmp(l, "0::", 3) == 0)
			return below(l + 3, rel);
		l = eol ? eol + 1 : NULL;
	}
	return false;
}

bool sup_cgroup_holds_run(const hum_sup *s, uint32_t id, uint32_t run, pid_t pid)
{
	char rel[PATH_MAX], name[32];
	sup_cgroup_name(name, id, run);
	return s->cg.rel[0] && sup_join(rel, sizeof rel, s->cg.rel, "/", name) && hum_cgroup_holds(pid, rel);
}

/* ---- the supervisor's top ------------------------------------------------ */

/* Tops beside ours left by a hum that died together with its sentinel
 * (both SIGKILLed: `pkill -9 -f`, which matches the sentinel's command
 * line too): "hum-<pid namespace>-<pid>-..." of our pid namespace whose pid
 * is gone.  What is in one is killed and it is removed, briefly (1 s). */
static void remove_stale(hum_sup *s, const char *parent, unsigned long ns)
{
	DIR *d = opendir(parent);
	if (d == NULL)
		return;
	struct dirent *e;
	while ((e = readdir(d)) != NULL) {
		unsigned long ens;
		int pid, n = 0;
		if (e->d_type != DT_DIR || sscanf(e->d_name, "hum-%lu-%d-%*x-%*u%n", &ens, &pid, &n) != 2 ||
		    n == 0 || e->d_name[n] != '\0' || ens != ns || pid <= 0 || pid == getpid() ||
		    kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		char dir[PATH_MAX];
		if ((size_t)snprintf(dir, sizeof dir, "%s/%s", parent, e->d_name) >= sizeof dir)
			continue;
		int rc = hum_cgroup_destroy(dir, 1.0);
		sup_log(s, NULL, "cgroup: %s, left by hum %d killed with its sentinel: %s", dir, pid,
			     rc == 0 ? "removed" : strerror(-rc));
	}
	closedir(d);
}

/* The top as name under the cgroup dir/rel; true if made and opened. */
static bool make_top(hum_sup *s, const char *dir, const char *rel, const char *name)
{
	hum_cgroups *c = &s->cg;
	if (!sup_join(c->dir, sizeof c->dir, dir, "/", name) ||
	    !sup_join(c->rel, sizeof c->rel, strcmp(rel, "/") == 0 ? "" : rel, "/", name))
		return false;
	if (mkdir(c->dir, 0755) != 0) {
		if (errno != EACCES && errno != EPERM && errno != EROFS && errno != ENOENT)
			sup_log(s, NULL, "cgroup: mkdir %s: %s", c->dir, strerror(errno));
		return false;
	}
	c->top_fd = sup_open_retry(AT_FDCWD, c->dir, O_RDONLY | O_DIRECTORY);
	if (c->top_fd < 0) {
		sup_log(s, NULL, "cgroup: open %s: %s", c->dir, strerror(errno));
		rmdir(c->dir);
		return false;
	}
	return true;
}

void sup_cgroup_init(hum_sup *s)
{
	hum_cgroups *c = &s->cg;
	c->top_fd = c->ino_fd = -1;
	c->dir[0] = c->rel[0] = '\0';
	const char *off = getenv("HUM_CGROUP");
	if (off && (strcmp(off, "off") == 0 || strcmp(off, "0") == 0 || strcmp(off, "no") == 0))
		return;
	hum_cgroup_where *w = malloc(sizeof *w);
	if (w == NULL || hum_cgroup_where_self(w) < 0) {
		free(w);
		return;
	}
	/* "hum-<pid namespace>-<pid>-<ms>-<n>": the token prefix without its
	 * dot, and the namespace its pid is in (remove_stale) */
	struct stat st;
	unsigned long ns = stat("/proc/self/ns/pid", &st) == 0 ? (unsigned long)st.st_ino : 0;
	char name[128];
	size_t pl = strlen(s->prefix);
	if (pl > 0 && (size_t)snprintf(name, sizeof name, "hum-%lu-%.*s", ns, (int)(pl - 1), s->prefix) < sizeof name &&
	    !make_top(s, w->self, w->self_rel, name) && strcmp(w->self, w->mnt) != 0)
		make_top(s, w->mnt, w->mnt_rel, name);
	free(w);
	if (c->top_fd >= 0) {
		char parent[PATH_MAX];
		memcpy(parent, c->dir, sizeof parent);
		*strrchr(parent, '/') = '\0'; /* c->dir is <parent>/<name> */
		remove_stale(s, parent, ns);
	}
	if (c->top_fd < 0) {
		c->dir[0] = c->rel[0] = '\0';
		return;
	}
	c->placing = true;
	s->sentinel.cgroup = c->dir; /* hum_sup_new starts it after this */
	c->ino_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (c->ino_fd >= 0) {
		ev_io_init(&c->ino_w, sup_cgroup_ino_cb, c->ino_fd, EV_READ);
		ev_io_start(s->loop, &c->ino_w);
		ev_unref(s->loop); /* removals must not keep ev_run going */
	}
}

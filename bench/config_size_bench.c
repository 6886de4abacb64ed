/*
 * config_size_bench.c — hum's cost as the config grows: `hum check`,
 * `hum up -d` until its socket listens, and `hum down` until that hum has
 * exited, with N defined processes of which 5 run (`sleep`), the rest
 * `autostart = false`.  Two shapes: flat (independent definitions) and
 * chain (each definition after the previous one: the deepest reverse
 * dependency graph a shutdown has to walk).  Each must stay linear in N
 * (README "Lifecycle rules": 10,000 processes, each step under 2 s).
 *
 * Output: one JSON object per line, then a markdown table.  Environment:
 * HUM_BIN (default $B/hum or build/hum), HUM_BENCH_SIZES (default
 * "1000 10000"; e.g. "100000").
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

static char dir[] = "/tmp/hum-cfgsize-XXXXXX";
static char hum[PATH_MAX];

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void die(const char *msg)
{
	fprintf(stderr, "config_size_bench: %s\n", msg);
	exit(1);
}

/* Runs hum ARGS... -f cfg in dir, output discarded; exit status or -1. */
static int run(const char *cfg, const char *a1, const char *a2)
{
	char *argv[6];
	int n = 0;
	argv[n++] = hum;
	argv[n++] = (char *)a1;
	if (a2)
		argv[n++] = (char *)a2;
	argv[n++] = "-f";
	argv[n++] = (char *)cfg;
	argv[n] = NULL;
	posix_spawn_file_actions_t fa;
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	pid_t pid;
	int rc = posix_spawn(&pid, hum, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0)
		return -1;
	int st;
	while (waitpid(pid, &st, 0) < 0)
		if (errno != EINTR)
			return -1;
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void write_cfg(const char *path, int n, int chain)
{
	FILE *f = fopen(path, "w");
	if (!f)
		die("cannot write the config");
	fprintf(f, "local hum = require \"hum\"\n"
		   "for i = 1, %d do\n"
		   "  hum.service(\"s\" .. i) { cmd = { \"sleep\", \"1000\" }, autostart = i <= 5,\n"
		   "    after = (%d == 1 and i > 6) and { \"s\" .. (i - 1) } or nil }\n"
		   "end\n", n, chain);
	fclose(f);
}

int main(void)
{
	const char *b = getenv("B");
	if (getenv("HUM_BIN"))
		snprintf(hum, sizeof hum, "%s", getenv("HUM_BIN"));
	else
		snprintf(hum, sizeof hum, "%s/hum", b && *b ? b : "build");
	char *abs = realpath(hum, NULL);
	if (!abs || access(abs, X_OK) != 0)
		die("no hum binary (set HUM_BIN or run make all)");
	snprintf(hum, sizeof hum, "%s", abs);
	free(abs);
	if (!mkdtemp(dir))
		die("mkdtemp failed");
	const char *sizes = getenv("HUM_BENCH_SIZES");
	if (!sizes || !*sizes)
		sizes = "1000 10000";
	char cfg[PATH_MAX];
	snprintf(cfg, sizeof cfg, "%s/hum.lua", dir);

	struct { int n, chain; double check, up, down; int ok; } res[16];
	int nres = 0;
	for (const char *s = sizes; *s && nres < 16;) {
		char *end;
		long n = strtol(s, &end, 10);
		if (end == s)
			break;
		s = end;
		for (int chain = 0; chain <= 1 && nres < 16; chain++) {
			write_cfg(cfg, (int)n, chain);
			double t0 = now();
			int c1 = run(cfg, "check", NULL);
			double t1 = now();
			int c2 = run(cfg, "up", "-d"); /* returns once the socket listens */
			double t2 = now();
			int c3 = run(cfg, "down", NULL); /* returns once that hum exited */
			double t3 = now();
			res[nres].n = (int)n;
			res[nres].chain = chain;
			res[nres].check = (t1 - t0) * 1e3;
			res[nres].up = (t2 - t1) * 1e3;
			res[nres].down = (t3 - t2) * 1e3;
			res[nres].ok = c1 == 0 && c2 == 0 && c3 == 0;
			printf("{\"case\":\"config-%s-%ld\",\"check_ms\":%.0f,\"up_ms\":%.0f,\"down_ms\":%.0f,\"ok\":%s}\n",
			       chain ? "chain" : "flat", n, res[nres].check, res[nres].up, res[nres].down,
			       res[nres].ok ? "true" : "false");
			fflush(stdout);
			nres++;
		}
	}
	printf("\n| defined processes | shape | hum check | hum up -d (listening) | hum down (hum exited) |\n"
	       "| ---: | --- | ---: | ---: | ---: |\n");
	for (int i = 0; i < nres; i++)
		printf("| %d | %s | %.0f ms | %.0f ms | %.0f ms%s |\n", res[i].n, res[i].chain ? "chain" : "flat",
		       res[i].check, res[i].up, res[i].down, res[i].ok ? "" : " (a step failed)");
	char rm[PATH_MAX + 16];
	snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
	if (system(rm) != 0)
		fprintf(stderr, "config_size_bench: could not remove %s\n", dir);
	for (int i = 0; i < nres; i++)
		if (!res[i].ok)
			return 1;
	return 0;
}

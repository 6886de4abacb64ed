/*
 * launch.h — starting one supervised child: own session and process group,
 * default signal state, stdin from /dev/null, stdout/stderr into pipes.
 */
#ifndef HUM_LAUNCH_H
#define HUM_LAUNCH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

typedef struct hum_spawn_req {
	char *const *argv;   /* or NULL with shell */
	const char *shell;   /* run as /bin/sh -c shell */
	const char *cwd;     /* NULL: inherit */
	char *const *env;    /* NULL: inherit environ */
	const char *token;   /* "HUM_TOKEN=..." replaces any HUM_TOKEN in env */
	int stdin_pipe;      /* 1: stdin from a pipe (in_fd), else /dev/null */
	int cgroup_fd;       /* > 2: the directory of the cgroup to start the
			      * child in, from its first instruction (cgroup.h);
			      * 0: none */
} hum_spawn_req;

typedef struct hum_spawned {
	pid_t pid;           /* also the pgid and the sid */
	int out_fd, err_fd;  /* parent's read ends: O_NONBLOCK, O_CLOEXEC */
	int in_fd;           /* parent's write end with stdin_pipe, else -1 */
	int cgroup_err;      /* the cgroup could not be used (errno): the child
			      * was started without it; 0: it is in it */
} hum_spawned;

/* 0, or -errno with a text "<call>: <strerror>" in err (e.g. "exec: No such
 * file or directory", "chdir /x: No such file or directory"). */
int hum_spawn(const hum_spawn_req *req, hum_spawned *out, char *err, size_t errlen);

/* Whether a failure rc of hum_spawn is for lack of a resource (descriptors:
 * EMFILE, ENFILE; memory: ENOMEM; processes: EAGAIN) rather than anything
 * about the program: trying again later may work. */
bool hum_spawn_transient(int rc);

#endif

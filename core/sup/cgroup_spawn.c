/*
 * cgroup_spawn.c — placement (see cgroup.h): starting a child inside a
 * cgroup (clone3 and its vfork trampoline), and the supervisor's side of it:
 * a new cgroup for each run and job, and what a spawn's outcome means for
 * it (sup_cgroup_open, sup_cgroup_spawned).
 *
 * Placement before exec.  A child must be in its cgroup before it runs a
 * single instruction of the program: a program that forks at once (a shell
 * running `setsid env -i daemon &`) would otherwise leave a descendant
 * outside it.  Writing the pid into cgroup.procs after posix_spawn is too
 * late (the program already runs), and a write from the child before exec
 * costs a percpu-rwsem write lock (an RCU grace period: ~2 ms per spawn,
 * measured here).  clone3(CLONE_INTO_CGROUP) creates the child inside the
 * cgroup for the price of a fork.  glibc (2.36) has no clone3 wrapper and
 * its posix_spawn takes no cgroup (posix_spawnattr_setcgroup_np came in
 * 2.41), so the child side of posix_spawn is done here: CLONE_VM|CLONE_VFORK
 * like glibc's posix_spawn (the parent waits until exec, the child borrows
 * its memory, nothing is copied), and a trampoline in assembly, because a
 * vfork-style child returning through a C function would overwrite the
 * return address the parent still has to use (glibc's vfork.S does the
 * same).  The child then does only raw system calls and writes only its
 * error code into the parent's frame.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include "cgroup.h"
#include "sup_priv.h"

/* ---- starting a child inside a cgroup -------------------------------------- */

/* struct clone_args of <linux/sched.h> (including it next to <sched.h>
 * redefines glibc's CLONE_* macros). */
struct cg_clone_args {
	uint64_t flags, pidfd, child_tid, parent_tid, exit_signal, stack, stack_size, tls,
		set_tid, set_tid_size, cgroup;
};
#define CG_CLONE_VM 0x100ULL
#define CG_CLONE_VFORK 0x4000ULL
#define CG_CLONE_INTO_CGROUP 0x200000000ULL

#define CG_STR_(x) #x
#define CG_STR(x) CG_STR_(x)

#if defined(__x86_64__) || defined(__aarch64__)
#define CG_TRAMPOLINE 1
/* long hum_cg_clone3(struct cg_clone_args *, size_t): clone3, returning
 * twice like vfork.  x86-64: the return address is popped into rdx (which
 * the syscall preserves) before the call, so the child, sharing the stack,
 * cannot overwrite it for the parent; the parent pushes it back and
 * returns; the child jumps to it, touching neither the stack nor a shadow
 * stack.  arm64: the return address is in x30, a register, so a plain
 * svc/ret is already safe. */
long hum_cg_clone3(struct cg_clone_args *args, size_t size)
	__attribute__((returns_twice, visibility("hidden")));
#if defined(__x86_64__)
__asm__(".text\n"
	".globl hum_cg_clone3\n"
	".hidden hum_cg_clone3\n"
	".type hum_cg_clone3, @function\n"
	"hum_cg_clone3:\n"
	"	popq %rdx\n"
	"	movl $" CG_STR(SYS_clone3) ", %eax\n"
	"	syscall\n"
	"	testq %rax, %rax\n"
	"	jz 1f\n"
	"	pushq %rdx\n"
	"	ret\n"
	"1:	jmp *%rdx\n"
	".size hum_cg_clone3, .-hum_cg_clone3\n");
#else
__asm__(".text\n"
	".globl hum_cg_clone3\n"
	".hidden hum_cg_clone3\n"
	".type hum_cg_clone3, %function\n"
	"hum_cg_clone3:\n"
	"	mov x8, #" CG_STR(SYS_clone3) "\n"
	"	svc #0\n"
	"	ret\n"
	".size hum_cg_clone3, .-hum_cg_clone3\n");
#endif
#endif

typedef struct cg_child {
	const hum_cgroup_exec *x;
	volatile int err, step; /* written by the child before it exits */
} cg_child;

/* The kernel's struct sigaction: all zero is SIG_DFL, no flags, no mask
 * (whether or not the architecture has sa_restorer). */
struct cg_ksigaction {
	void *handler;
	unsigned long flags;
	void *restorer;
	uint64_t mask;
};

static long cg_dup(int from, int to)
{
	if (from == to) /* keep it open across exec */
		return syscall(SYS_fcntl, to, F_SETFD, 0);
	return syscall(SYS_dup3, from, to, 0);
}

/* The child, between clone3 and execve, on the parent's stack and memory:
 * raw system calls only, no sanitizer runtime, writes only to c. */
__attribute__((noreturn, noinline, no_sanitize("address", "thread", "undefined")))
static void cg_child_main(cg_child *c)
{
	const hum_cgroup_exec *x = c->x;
	static const struct cg_ksigaction dfl;
	int step = HUM_CG_SETUP;
	/* Every disposition to SIG_DFL (the child has its own table: no
	 * CLONE_SIGHAND), while every signal is still blocked. */
	for (int sig = 1; sig <= 64; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			syscall(SYS_rt_sigaction, sig, &dfl, NULL, (size_t)8);
	if (syscall(SYS_setsid) < 0)
		goto fail;
	if (x->cwd && syscall(SYS_chdir, x->cwd) != 0) {
		step = HUM_CG_CHDIR;
		goto fail;
	}
	long in = x->in_fd;
	if (in < 0 && (in = syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY | O_CLOEXEC)) < 0)
		goto fail;
	if (cg_dup((int)in, 0) < 0 || cg_dup(x->out_fd, 1) < 0 || cg_dup(x->err_fd, 2) < 0)
		goto fail;
	/* hum's fds are CLOEXEC; this drops fds hum inherited without it */
	if (syscall(SYS_close_range, 3u, ~0u, 0u) != 0)
		for (int fd = 3; fd < 4096; fd++)
			syscall(SYS_close, fd);
	static const uint64_t none;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &none, NULL, sizeof none);
	syscall(SYS_execve, x->path, x->argv, x->envp);
	step = HUM_CG_EXEC;
fail:
	c->err = errno;
	c->step = step;
	syscall(SYS_exit_group, 127);
	__builtin_unreachable();
}

int hum_cgroup_spawn(const hum_cgroup_exec *x, pid_t *pid, int *step)
{
	*pid = 0;
#ifndef CG_TRAMPOLINE
	*step = HUM_CG_CLONE;
	return -ENOSYS;
#else
	cg_child c = { x, 0, 0 };
	struct cg_clone_args ca;
	memset(&ca, 0, sizeof ca);
	ca.flags = CG_CLONE_VM | CG_CLONE_VFORK | CG_CLONE_INTO_CGROUP;
	ca.exit_signal = SIGCHLD;
	ca.cgroup = (uint64_t)x->cgroup_fd;
	/* Every signal blocked across the clone, glibc's internal ones too
	 * (pthread_sigmask would leave them): a handler of hum's must never
	 * run in the child, on borrowed memory.  The child unblocks after it
	 * reset every disposition. */
	uint64_t all = ~0ull, old = 0;
	int saved = errno;
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &all, &old, sizeof all);
	long r = hum_cg_clone3(&ca, sizeof ca);
	if (r == 0)
		cg_child_main(&c);
	syscall(SYS_rt_sigprocmask, SIG_SETMASK, &old, NULL, sizeof old);
	errno = saved; /* the child shared it */
	if (r < 0) {
		*step = HUM_CG_CLONE;
		return (int)r;
	}
	/* CLONE_VFORK: the child has exec'd or exited by now. */
	if (c.err) {
		while (waitpid((pid_t)r, NULL, 0) < 0 && errno == EINTR)
			;
		*step = c.step;
		return -c.err;
	}
	*pid = (pid_t)r;
	return 0;
#endif
}

/* ---- the supervisor's runs ----------------------------------------------- */

int sup_cgroup_open(hum_sup *s, uint32_t id, uint32_t run)
{
	hum_cgroups *c = &s->cg;
	if (!c->placing)
		return 0;
	char name[32];
	sup_cgroup_name(name, id, run);
	if (mkdirat(c->top_fd, name, 0755) != 0 && errno != EEXIST) {
		sup_log(s, NULL, "cgroup: mkdir %s/%s: %s", c->dir, name, strerror(errno));
		return 0;
	}
	int fd = sup_open_retry(c->top_fd, name, O_RDONLY | O_DIRECTORY);
	if (fd < 0) {
		sup_log(s, NULL, "cgroup: open %s/%s: %s", c->dir, name, strerror(errno));
		return 0;
	}
	return fd; /* > 2: hum_sup_new keeps 0, 1 and 2 open */
}

bool sup_cgroup_spawned(hum_sup *s, uint32_t id, uint32_t run, int fd, bool started, int cg_err)
{
	if (fd <= 0)
		return false;
	close(fd);
	if (cg_err) {
		/* Placement is all or nothing per run, and what failed once
		 * (no clone3, no permission, a threaded cgroup) fails again. */
		s->cg.placing = false;
		sup_log(s, NULL, "cgroup: clone3 into %s: %s; new processes are found by "
			     "token, session and parentage instead", s->cg.dir, strerror(cg_err));
	}
	if (!started || cg_err) {
		sup_cgroup_release(s, id, run);
		return false;
	}
	return true;
}

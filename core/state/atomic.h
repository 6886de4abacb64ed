/*
 * atomic.h — the memory-ordering vocabulary of hum's core.
 *
 * Production builds use ConcurrencyKit's ck_pr (plain moves on x86-64 plus
 * explicit fences).  ThreadSanitizer cannot see ck_pr's inline assembly or
 * its volatile accesses as synchronisation, so TSan builds (-DHUM_TSAN) map
 * the same operations onto the compiler's __atomic builtins, which TSan
 * instruments.  The ordering each call site asks for is identical in both.
 *
 * libck itself (ck_epoch_poll, ck_hs_put/get) is not instrumented; the
 * happens-before edges it creates are declared to TSan with HUM_TSAN_RELEASE
 * and HUM_TSAN_ACQUIRE at the few points where hum relies on them.
 */
#ifndef HUM_ATOMIC_H
#define HUM_ATOMIC_H

#include <stdint.h>

#if defined(__SANITIZE_THREAD__) && !defined(HUM_TSAN)
#define HUM_TSAN 1
#endif

#ifdef HUM_TSAN
void __tsan_acquire(void *addr);
void __tsan_release(void *addr);
#define HUM_TSAN_ACQUIRE(a) __tsan_acquire((void *)(a))
#define HUM_TSAN_RELEASE(a) __tsan_release((void *)(a))

#define hum_load_ptr_acq(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define hum_store_ptr_rel(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define hum_load_u64_acq(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define hum_store_u64_rel(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define hum_load_u32_acq(p)      __atomic_load_n((p), __ATOMIC_ACQUIRE)
#define hum_store_u32_rel(p, v)  __atomic_store_n((p), (v), __ATOMIC_RELEASE)
#define hum_load_u64_relaxed(p)  __atomic_load_n((p), __ATOMIC_RELAXED)
#define hum_store_u64_relaxed(p, v) __atomic_store_n((p), (v), __ATOMIC_RELAXED)
#define hum_faa_u64(p, d)        __atomic_fetch_add((p), (d), __ATOMIC_RELAXED)
/* Fences are invisible to TSan (and gcc warns about them under -fsanitize=
 * thread); TSan builds express the same edges with HUM_TSAN_* instead. */
#define hum_fence_acq()          ((void)0)
#define hum_fence_rel()          ((void)0)
#else
#include <ck_pr.h>
#define HUM_TSAN_ACQUIRE(a) ((void)0)
#define HUM_TSAN_RELEASE(a) ((void)0)

/* acquire load: the load, then a load-load/load-store fence (free on x86). */
static inline void *hum_load_ptr_acq_(void *const *p)
{
	void *v = ck_pr_load_ptr(p);
	ck_pr_fence_acquire();
	return v;
}
#define hum_load_ptr_acq(p) ((__typeof__(*(p)))hum_load_ptr_acq_((void *const *)(p)))
/* release store: every earlier write is visible before the pointer is. */
#define hum_store_ptr_rel(p, v) do { ck_pr_fence_release(); ck_pr_store_ptr((p), (v)); } while (0)

static inline uint64_t hum_load_u64_acq(const uint64_t *p)
{
	uint64_t v = ck_pr_load_64(p);
	ck_pr_fence_acquire();
	return v;
}
#define hum_store_u64_rel(p, v) do { ck_pr_fence_release(); ck_pr_store_64((p), (v)); } while (0)
static inline uint32_t hum_load_u32_acq(const uint32_t *p)
{
	uint32_t v = ck_pr_load_32(p);
	ck_pr_fence_acquire();
	return v;
}
#define hum_store_u32_rel(p, v) do { ck_pr_fence_release(); ck_pr_store_32((p), (v)); } while (0)
#define hum_load_u64_relaxed(p)     ck_pr_load_64(p)
#define hum_store_u64_relaxed(p, v) ck_pr_store_64((p), (v))
#define hum_faa_u64(p, d)           ck_pr_faa_64((p), (d))
/* Stand-alone fences, for orderings that go through libck's own loads and
 * stores (ck_hs_put/get): compiler barriers on x86-64, real fences elsewhere. */
#define hum_fence_acq()             ck_pr_fence_acquire()
#define hum_fence_rel()             ck_pr_fence_release()
#endif

/* File descriptor numbers are reused across threads: the kernel orders a
 * close in one thread before the same number is handed out again in
 * another.  TSan learns of an fd's creation only through the functions it
 * intercepts, not from raw system calls (pidfd_open, openat through
 * syscall), so a number one thread closed and another got from a raw call
 * looks like one object used by both without order.  The edge is declared:
 * a thread that closes an fd another thread may reuse releases, and a thread
 * that gets an fd from a raw system call acquires. */
extern char hum_tsan_fd_reuse;
#define HUM_TSAN_FD_CLOSED() HUM_TSAN_RELEASE(&hum_tsan_fd_reuse)
#define HUM_TSAN_FD_CREATED() HUM_TSAN_ACQUIRE(&hum_tsan_fd_reuse)

#endif

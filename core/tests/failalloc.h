/*
 * failalloc.h — an allocation-failure harness for C tests.
 *
 * A test that includes this header (exactly one file per test program) and
 * is linked with -Wl,--wrap=malloc,--wrap=calloc,--wrap=realloc,
 * --wrap=aligned_alloc,--wrap=free (the Makefile does this for tests named
 * *_alloc_test) gets every allocation of the code under test routed through
 * the wrappers below:
 *
 *   failalloc_after(n)   the n-th allocation from now fails (1 = the next),
 *                        once; 0 disarms
 *   failalloc_count()    allocations so far (to size an exhaustive loop)
 *
 * Freed blocks are filled with 0xdd before they go back to malloc, so a
 * reader that follows a pointer into reclaimed memory reads garbage that a
 * checksum catches even without ASan (under ASan the read is reported).
 * Only the calling thread's allocations count while armed (tests arm it on
 * the writer thread).
 */
#ifndef HUM_FAILALLOC_H
#define HUM_FAILALLOC_H

#include <errno.h>
#include <malloc.h>
#include <stddef.h>
#include <string.h>

void *__real_malloc(size_t n);
void *__real_calloc(size_t k, size_t n);
void *__real_realloc(void *p, size_t n);
void *__real_aligned_alloc(size_t a, size_t n);
void __real_free(void *p);

static __thread unsigned long fa_count, fa_fail_at;

static void failalloc_after(unsigned long n)
{
	fa_fail_at = n ? fa_count + n : 0;
}

static unsigned long failalloc_count(void)
{
	return fa_count;
}

/* True if this allocation is the one chosen to fail. */
static int fa_fails(void)
{
	fa_count++;
	if (fa_fail_at && fa_count == fa_fail_at) {
		fa_fail_at = 0;
		errno = ENOMEM;
		return 1;
	}
	return 0;
}

void *__wrap_malloc(size_t n);
void *__wrap_malloc(size_t n)
{
	return fa_fails() ? NULL : __real_malloc(n);
}

void *__wrap_calloc(size_t k, size_t n);
void *__wrap_calloc(size_t k, size_t n)
{
	return fa_fails() ? NULL : __real_calloc(k, n);
}

void *__wrap_realloc(void *p, size_t n);
void *__wrap_realloc(void *p, size_t n)
{
	return fa_fails() ? NULL : __real_realloc(p, n);
}

void *__wrap_aligned_alloc(size_t a, size_t n);
void *__wrap_aligned_alloc(size_t a, size_t n)
{
	return fa_fails() ? NULL : __real_aligned_alloc(a, n);
}

void __wrap_free(void *p);
void __wrap_free(void *p)
{
	if (p)
		memset(p, 0xdd, malloc_usable_size(p));
	__real_free(p);
}

#endif

/*
 * grep.h — what a `logs` request's "grep" may be when it is a regular
 * expression, checked before glibc's regcomp sees it.
 *
 * regcomp has no limits of its own, and `make fuzz` found patterns of a few
 * dozen bytes that take it gigabytes ("a+++++…": every '+' doubles the
 * tree) or seconds ("(a|){0,3}+{2}…", "e*????…": repetitions of what can
 * match nothing, whose epsilon closures it recomputes again and again).  A
 * pattern passes when
 *   - no repetition (?, *, +, {m,n}) applies to something that can match
 *     the empty string: "a??", "(a|)*", "(b?)+", "^*", "()+" are refused
 *     (POSIX leaves adjacent repetitions undefined anyway);
 *   - its size once repetitions are expanded (X+ counts X twice, X{2,5}
 *     five times, nested counts multiply, X* and X? once) is at most
 *     HUM_GREP_MAX_NODES;
 *   - groups nest at most HUM_GREP_MAX_GROUPS deep, and it has no
 *     back-reference (\1..\9: glibc matches those by backtracking).
 * Matching a passed pattern still costs up to (its size) x (bytes searched).
 */
#ifndef HUM_GREP_H
#define HUM_GREP_H

#include <stddef.h>

#define HUM_GREP_MAX_NODES 1000
#define HUM_GREP_MAX_GROUPS 64

/* 0 if the extended regular expression p passes, else -1 with the error
 * reply's message in err. */
int hum_grep_check(const char *p, char *err, size_t errlen);

#endif

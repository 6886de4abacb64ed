/*
 * select.h — what a selector selects: one definition for every command.
 *
 * A selector is the string a user names processes with: `hum status SEL`,
 * `hum logs SEL` (read on the api thread from published snapshots), `hum
 * start|stop|restart|signal SEL`, hum.start/stop/restart(SEL) from Lua and
 * `hum up SEL` (chosen on the loop thread, through raw.select and
 * raw.select_match).  All of them call this module, so they select the same
 * processes.
 *
 * A selector is a glob.  It selects a process when it matches, as a whole,
 * any of:
 *   - the process's name                        api      -> api
 *   - the process's replica base: the name of   web      -> web.1, web.2
 *     the definition it was expanded from
 *     (scale > 1); "" for any other process
 *   - one of the process's groups               backend  -> backend's members
 * A selector without glob characters matches only itself, so these are also
 * the exact forms; with them it is a pattern over the same three strings:
 *                                               web.[12] -> web.1, web.2
 *                                               back*    -> backend's members
 *                                               *        -> every process
 * A process defined on its own as `api.2` is not a replica of `api`: the base
 * is what the supervisor was told when the replica was registered
 * (hum_spec.base, kept in hum_snap.base_len), never guessed from a name.
 *
 * Glob syntax, by bytes (no locale): `*` any run of bytes, also empty and
 * also `.`; `?` one byte; `[abc]`, `[a-z]`, `[!a-z]` or `[^a-z]` one byte in
 * (or not in) a set, where a `]` first in the set is a member; `\x` the byte
 * x itself, also inside a set.  No `[:alpha:]` classes, no `**`, no braces.
 *
 * Bounds (DESIGN.md §9): a selector is 1 to HUM_SELECT_MAX bytes, without
 * NUL, with every `[` closed and no `\` at its end; anything else is refused
 * by hum_select_parse with a message for the user.  Matching never
 * backtracks (the two-pointer algorithm with one saved `*` position): at
 * most about len(selector) x len(subject) steps, whatever the pattern.
 *
 * No state, no allocation, no lock: the api thread calls it inside a read
 * section, the loop thread on its current snapshots or, before anything is
 * registered, on the name, groups and base a process will be registered with.
 */
#ifndef HUM_SELECT_H
#define HUM_SELECT_H

#include <stdbool.h>
#include <stddef.h>

#include "snap.h"

#define HUM_SELECT_MAX 1024 /* bytes in a selector */

/* A selector that hum_select_parse accepted: the only kind the matching
 * functions take.  Points at the caller's text, which must outlive it. */
typedef struct hum_selector {
	const char *text;
	size_t len;
} hum_selector;

/* Checks text[0..len) and fills *sel.  0, or -EINVAL with a message for the
 * user in err ("selector \"a[\": a [ without its ]"). */
int hum_select_parse(hum_selector *sel, const char *text, size_t len, char *err, size_t errlen);

/* Whether sel selects a process with this name, replica base (the first
 * base_len bytes of name; 0: not a replica) and groups (comma separated,
 * "" or NULL for none). */
bool hum_select_match(const hum_selector *sel, const char *name, size_t base_len, const char *groups);

/* hum_select_match on a snapshot's name, base and groups. */
bool hum_select_snap(const hum_selector *sel, const hum_snap *s);

#endif

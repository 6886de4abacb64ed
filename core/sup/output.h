/*
 * output.h — the foreground printer: `HH:MM:SS name │ line`.  outfmt.c
 * formats the lines (see "Format" below), output.c queues and writes them.
 *
 * Lines are formatted into one buffer and written once per loop iteration
 * (hum_output_flush, called from the host's ev_prepare), or as soon as the
 * buffer is full, so printing never costs a syscall per line.
 *
 * Nothing is lost to an output that keeps up.  What happens when lines
 * come faster than the output takes them depends on what it is:
 *   - a regular file (or block device) always keeps up: when the buffer
 *     (1 MiB) is full it is written at once, with blocking writes; lines
 *     are never dropped for speed.
 *   - a terminal, pipe or socket is written non-blocking (a write that
 *     would block is what "does not keep up" means).  When more than
 *     OUT_HIGH (1 MiB) waits, the printer asks for back-pressure through
 *     the pressure hook (the host stops reading the children's pipes, so
 *     they wait on their pipe as they would writing to a terminal
 *     themselves), and releases it below OUT_LOW (256 KiB).  The buffer
 *     grows up to OUT_MAX (16 MiB) for what still arrives while paused
 *     (pipes drained at a child's exit, hum's own messages).  An output
 *     that takes nothing at all for HUM_OUTPUT_STALL seconds (a terminal
 *     stopped with Ctrl-S, a pager nobody scrolls) really does not keep up:
 *     the children are let go again, and lines that do not fit in the
 *     buffer (no longer grown, except for hum's own few lines) are dropped
 *     whole (never torn) and counted, until it takes something again.  Once the buffer has drained, a line says
 *     "N lines dropped from output (...)".
 * A write that fails (ENOSPC, EIO, EPIPE, EFBIG...) does not stop hum nor
 * the output for good: what was queued and every line until writing works
 * again are counted as not written (they stay in hum's log rings: `hum
 * logs`), writing is tried again every HUM_OUTPUT_RETRY seconds, and the
 * first successful write says "N lines were not written to the output
 * (<error>)" (after a newline, if the failure cut a line).  hum must ignore
 * SIGPIPE (hum_output_new does).
 *
 * Format: every name takes the same column width (the width set with
 * hum_output_set_width, at most 32 columns; until one is set, the longest
 * name seen): shorter names are padded, longer ones cut with an ellipsis
 * `…`.  Names are coloured per process id (a stable colour from a fixed
 * palette); stderr lines use '!' instead of '│' (red with colour); hum's own
 * lines (stream sys, name "hum") use '*' and a bold name.  Colour is on when
 * fd is a terminal, TERM is not "dumb" and NO_COLOR is unset or empty
 * (no-color.org).  Line bytes are written as they are (no escaping): the
 * children's own colours pass through, but on a terminal a line carrying an
 * escape sequence is followed by a reset (ESC [0m), so a colour the child
 * left on never spills into the next line's prefix.
 *
 * Non-blocking without side effects: O_NONBLOCK is a property of the open
 * file description, which hum's terminal shares with the shell that started
 * it (a shell left with a non-blocking tty breaks).  So a terminal or pipe
 * is reopened through /proc/self/fd/N and only the new description is made
 * non-blocking; if that is impossible (sockets) O_NONBLOCK is set on fd and
 * the old flags are restored by hum_output_free.
 *
 * The log file of `hum up -d` (hum_output_set_file): the printer knows its
 * path, rotates it to path.1 when it reaches its size bound (64 MiB by
 * default), and reopens it on request (hum_output_reopen, e.g. after an
 * external logrotate moved it); see logfile.h for how it is opened.
 */
#ifndef HUM_OUTPUT_H
#define HUM_OUTPUT_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "state/logring.h"

#define HUM_OUTPUT_STALL 2.0  /* seconds without progress: "does not keep up" */
#define HUM_OUTPUT_RETRY 1.0  /* seconds between attempts after a failed write */
#define HUM_OUTPUT_WIDTH_MAX 32 /* columns of the name column, at most */
#define HUM_LOGFILE_MAX (64ull << 20) /* default size bound of the log file */

typedef struct hum_output hum_output;

/* fd stays the caller's (never closed; replaced with dup2 when the log file
 * rotates).  NULL with errno on failure. */
hum_output *hum_output_new(struct ev_loop *loop, int fd);
/* Final flush (waits while the output takes lines, until it has taken
 * nothing for 1 s, 10 s at most), restores fd's flags. */
void hum_output_free(hum_output *o);

/* Queues lines of process id (typically from the supervisor's lines hook).
 * Lines of stream HUM_STREAM_SYS are hum's own (name "hum"). */
void hum_output_lines(hum_output *o, uint32_t id, const char *name,
		      const hum_line *lines, size_t n);
/* Writes what is queued.  Returns 0, or -errno while writing fails (the
 * failure is counted and retried: see above).  -EAGAIN is not an error: the
 * rest goes out when the fd is writable again (an ev_io watcher). */
int hum_output_flush(hum_output *o);

/* Hooks, both optional.  pressure(ud, true): stop feeding me (pause the
 * children's pipes); (ud, false): go on.  note(ud, msg, len): a message of
 * the printer's own (drops, failed writes, rotation) that the printer has
 * queued itself, for the caller to keep too (hum's log ring) — the hook
 * must not print it again. */
typedef void (*hum_output_pressure_fn)(void *ud, bool pause);
typedef void (*hum_output_note_fn)(void *ud, const char *msg, size_t len);
void hum_output_set_hooks(hum_output *o, hum_output_pressure_fn pressure,
			  hum_output_note_fn note, void *ud);

/* The output (fd) is the log file at path: rotate it to path.1 once it has
 * max_bytes (0: HUM_LOGFILE_MAX); other fds that refer to the same file
 * (stderr) follow it.  flags HUM_LOGFILE_ROTATE: start a new file now (what
 * is queued goes to the old one first).  0, -EBADF when fd is not the file
 * at path (nothing changes then), or -errno. */
int hum_output_set_file(hum_output *o, const char *path, uint64_t max_bytes, int flags);
/* Opens the log file's path again (logfile.h) and writes there from now on:
 * for SIGUSR1 after an external rotation.  0, -EINVAL when the output is not
 * a log file, or -errno. */
int hum_output_reopen(hum_output *o);

/* Lines dropped so far because the output did not keep up, and lines not
 * written because writing failed. */
uint64_t hum_output_dropped(const hum_output *o);
uint64_t hum_output_unwritten(const hum_output *o);
/* 0, or the errno of the failure writing is waiting out. */
int hum_output_error(const hum_output *o);
/* Whether the printer asks for back-pressure right now. */
bool hum_output_paused(const hum_output *o);
/* Tests: seconds without progress before lines are dropped. */
void hum_output_set_stall(hum_output *o, double seconds);

void hum_output_set_color(hum_output *o, bool on);
bool hum_output_color(const hum_output *o);
/* The name column's width (clamped to 1..HUM_OUTPUT_WIDTH_MAX); fixed from
 * then on. */
void hum_output_set_width(hum_output *o, size_t width);

/* The text of a message of hum's own from a printf format, into buf (size
 * > 0, terminated): its length, cut to size - 1 bytes, or -1 when fmt
 * cannot be formatted.  The one formatter of hum's messages: the printer's
 * notices (drops, failed writes, rotation) and the host's reports
 * (lifecycle lines, hum_host_report) both use it (outfmt.c). */
int hum_output_vformat(char *buf, size_t size, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));

#endif

/*
 * output.h — the foreground printer: `HH:MM:SS name │ line`.
 *
 * Lines are formatted into one buffer and written with one write(2) per
 * loop iteration (hum_output_flush, called from the host's ev_prepare), so
 * printing never costs a syscall per line.  Writing never stalls
 * supervision: the fd is written non-blocking; while it is full, new lines
 * queue in the buffer (1 MiB) and, when that is full too, whole lines are
 * dropped and counted; once the output drains again a notice
 * "[hum] N lines dropped from output" is printed.  EPIPE (the reader went
 * away) stops output for good; hum must ignore SIGPIPE (hum_output_new does).
 *
 * Format: names are padded to the longest name seen (or set with
 * hum_output_set_width) and coloured per process id (a stable colour from a
 * fixed palette); stderr lines use '!' instead of '│' and, with colour, a red
 * separator; hum's own messages read `HH:MM:SS [hum] message`.  Colour is on
 * when fd is a terminal, TERM is not "dumb" and NO_COLOR is unset or empty
 * (no-color.org).  Line bytes are written as they are (no escaping): the
 * children's own colours pass through.
 *
 * Non-blocking without side effects: O_NONBLOCK is a property of the open
 * file description, which hum's terminal shares with the shell that started
 * it (a shell left with a non-blocking tty breaks).  So a terminal or pipe
 * is reopened through /proc/self/fd/N and only the new description is made
 * non-blocking; if that is impossible (sockets) O_NONBLOCK is set on fd and
 * the old flags are restored by hum_output_free.  Regular files are written
 * as they are (a disk write never waits for a reader).
 */
#ifndef HUM_OUTPUT_H
#define HUM_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <ev.h>

#include "state/logring.h"

typedef struct hum_output hum_output;

/* fd stays the caller's (never closed).  NULL with errno on failure. */
hum_output *hum_output_new(struct ev_loop *loop, int fd);
/* Final flush (waits up to 1 s for a slow terminal), restores fd's flags. */
void hum_output_free(hum_output *o);

/* Queues lines of process id (typically from the supervisor's lines hook). */
void hum_output_lines(hum_output *o, uint32_t id, const char *name,
		      const hum_line *lines, size_t n);
/* Queues one of hum's own messages. */
void hum_output_sys(hum_output *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Writes what is queued: at most one write(2).  Returns 0, or -errno for a
 * dead output (EPIPE, EIO...).  -EAGAIN is not an error: the rest goes out
 * when the fd is writable again (an ev_io watcher, one write per wake-up). */
int hum_output_flush(hum_output *o);
/* Lines dropped so far because the output could not keep up. */
uint64_t hum_output_dropped(hum_output *o);

void hum_output_set_color(hum_output *o, bool on);
bool hum_output_color(const hum_output *o);
/* Minimum name column width (names are also padded to the longest seen). */
void hum_output_set_width(hum_output *o, size_t width);

#endif

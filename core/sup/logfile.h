/*
 * logfile.h — hum's own log file (`.hum/hum.log` of `hum up -d`): opening
 * it safely, and rotating it.
 *
 * The file lives in hum's state directory (0700, the user's own; see
 * api.h), but what is at its path is not trusted: a symbolic link to a file
 * elsewhere, a FIFO that nobody reads, a file owned by another user or a
 * hard link to one must never be written through.  So the path is opened
 * with O_NOFOLLOW (no link is followed), O_NONBLOCK (opening a FIFO never
 * waits for a reader) and O_CLOEXEC (no child inherits it), and the result
 * must be a regular file owned by the effective user with one link.
 * Anything else is not written: the entry is unlinked and a fresh file is
 * created with O_EXCL (which fails rather than follow whatever a racer put
 * there in between).
 *
 * Rotation keeps one older file: `path` is renamed to `path.1`, replacing
 * it.  `hum up -d` rotates at every start (so a grep of hum.log finds only
 * the current run) and the printer rotates when the file reaches its size
 * bound (output.h, hum_output_set_file).
 */
#ifndef HUM_LOGFILE_H
#define HUM_LOGFILE_H

#include <stddef.h>

enum { HUM_LOGFILE_ROTATE = 1 /* rename an existing, non-empty file to path.1 first */ };

/* Opens path for appending (creating it 0600) as described above.  Returns
 * a blocking, close-on-exec fd, or -errno with a message in err.  When an
 * entry had to be replaced, note says why ("it was a symbolic link"), else
 * note[0] is 0.  err and note may be NULL. */
int hum_logfile_open(const char *path, int flags, char *note, size_t notelen,
		     char *err, size_t errlen);

#endif

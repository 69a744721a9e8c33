/*
 * The plugin's files. Its text files (password file, revocation list) are
 * read through the core's one whole-file reader and one line reader: the
 * whole file in wiped memory (password hashes pass through it), one line at
 * a time without its comment (the core's one rule, docs/PROTOCOL.md section
 * 2) and without the blanks around it, so a comment-only line arrives
 * empty; a line longer than the limit or holding a NUL byte is an error,
 * never split or cut. And the one change signature every module (and `veil
 * sub`, for its keyring) polls its files with.
 */
#ifndef VP_FILE_H
#define VP_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/stat.h>

#define VP_LINE_MAX 1024U                         /* bytes per line, with the NUL */
#define VP_AUTH_FILE_MAX_BYTES (64U * 1024U * 1024U) /* whole file */

/*
 * Read path line by line into parse (obj, the line, a buffer for the reason
 * of a parse error), stopping at the first error. Errors go to err as
 * "path: reason" or "path:line: reason". Returns VEIL_OK, VEIL_ERR_IO,
 * VEIL_ERR_TOO_LARGE, or parse's code.
 */
int vp_file__each_line(const char *path, int (*parse)(void *obj, char *line, char *why, size_t whylen), void *obj,
                       char *err, size_t errlen);

/* What a poll compares to notice a changed file: a replaced file (inode),
 * a rewrite (size, mtime), a change of owner or mode (ctime). */
struct vp_file_sig {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};
void vp_file__sig(const char *path, struct vp_file_sig *sig);
bool vp_file__sig_equal(const struct vp_file_sig *a, const struct vp_file_sig *b);

#endif

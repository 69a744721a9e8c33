/*
 * Line reading shared by the plugin's text files (password file, revocation
 * list): one line at a time with its number, CR/LF stripped, lines longer
 * than the limit reported instead of split, errors with file and line.
 * vp_file__each_line hands parse the line without its comment (the core's
 * one rule, docs/PROTOCOL.md section 2): a comment-only line arrives empty.
 */
#ifndef VP_AUTH_FILE_H
#define VP_AUTH_FILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <sys/stat.h>

#define VP_LINE_MAX 1024U

/* 1: line in buf; 0: end of file; -1: line too long or contains a NUL. */
int vp_file__line(FILE *f, char *buf, size_t cap, unsigned *lineno);
/* Strip leading/trailing spaces and tabs in place; returns the start. */
char *vp_file__trim(char *s);
/*
 * Read path line by line into parse (obj, the line, where to point *why on
 * a parse error), stopping at the first error. Errors go to err as
 * "path: reason" or "path:line: why"; the line buffer is wiped (password
 * hashes pass through it). Returns VEIL_OK, VEIL_ERR_IO, or parse's code.
 */
int vp_file__each_line(const char *path, int (*parse)(void *obj, char *line, const char **why), void *obj,
                       char *err, size_t errlen);

/* What a poll compares to notice a changed file. */
struct vp_file_sig {
	bool exists;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
};
void vp_file__sig(const char *path, struct vp_file_sig *sig);
bool vp_file__sig_equal(const struct vp_file_sig *a, const struct vp_file_sig *b);

#endif

/*
 * Line reading shared by the plugin's text files (password file, revocation
 * list): one line at a time with its number, CR/LF stripped, lines longer
 * than the limit reported instead of split. Pure logic.
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

/* Line reader and change signature for the auth files (see auth_file.h). */
#include <errno.h>
#include <string.h>
#include <sys/stat.h>
#include <sodium.h>

#include "veil/error.h"
#include "../core/util.h" /* veil__line_content: the one comment rule of Veil's files */
#include "auth_file.h"

int vp_file__line(FILE *f, char *buf, size_t cap, unsigned *lineno)
{
	size_t n = 0;
	int ch;
	bool bad = false;
	while ((ch = fgetc(f)) != EOF && ch != '\n') {
		if (ch == '\0')
			bad = true;
		if (n + 1 < cap)
			buf[n++] = (char)ch;
		else
			bad = true;
	}
	if (ch == EOF && n == 0 && !bad)
		return 0;
	(*lineno)++;
	if (n > 0 && buf[n - 1] == '\r')
		n--;
	buf[n] = '\0';
	return bad ? -1 : 1;
}

int vp_file__each_line(const char *path, int (*parse)(void *obj, char *line, const char **why), void *obj,
                       char *err, size_t errlen)
{
	FILE *f = fopen(path, "r");
	if (!f) {
		if (err)
			snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return VEIL_ERR_IO;
	}
	char line[VP_LINE_MAX];
	unsigned lineno = 0;
	int got, rc = VEIL_OK;
	while (rc == VEIL_OK && (got = vp_file__line(f, line, sizeof(line), &lineno)) != 0) {
		const char *why = "line too long or contains a NUL byte";
		if (got > 0)
			line[veil__line_content(line, strlen(line), NULL)] = '\0';
		rc = got < 0 ? VEIL_ERR_PARSE : parse(obj, line, &why);
		if (rc != VEIL_OK && err)
			snprintf(err, errlen, "%s:%u: %s", path, lineno, rc == VEIL_ERR_NOMEM ? "out of memory" : why);
	}
	sodium_memzero(line, sizeof(line));
	if (rc == VEIL_OK && ferror(f)) {
		rc = VEIL_ERR_IO;
		if (err)
			snprintf(err, errlen, "%s: read error", path);
	}
	fclose(f);
	return rc;
}

char *vp_file__trim(char *s)
{
	while (*s == ' ' || *s == '\t')
		s++;
	size_t n = strlen(s);
	while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
		s[--n] = '\0';
	return s;
}

void vp_file__sig(const char *path, struct vp_file_sig *sig)
{
	struct stat st;
	memset(sig, 0, sizeof(*sig));
	if (!path || stat(path, &st) != 0)
		return;
	sig->exists = true;
	sig->dev = st.st_dev;
	sig->ino = st.st_ino;
	sig->size = st.st_size;
	sig->mtime = st.st_mtim;
}

bool vp_file__sig_equal(const struct vp_file_sig *a, const struct vp_file_sig *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec;
}

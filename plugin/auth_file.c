/* Line reader and change signature for the auth files (see auth_file.h). */
#include <string.h>
#include <sys/stat.h>

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

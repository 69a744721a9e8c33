/* The plugin's text files over the core readers, and change signatures (see file.h). */
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "veil/error.h"
#include "../core/util.h" /* the one whole-file reader and line reader of Veil's files */
#include "file.h"

int vp_file__each_line(const char *path, int (*parse)(void *obj, char *line, char *why, size_t whylen), void *obj,
                       char *err, size_t errlen)
{
	struct veil__text t;
	int rc = veil__file_read(path, VEIL__FILE_WIPE, VP_AUTH_FILE_MAX_BYTES, &t, err, errlen);
	if (rc != VEIL_OK)
		return rc;
	struct veil__lines it = { .text = t.text, .len = t.len };
	char line[VP_LINE_MAX];
	enum veil__line ls;
	while (rc == VEIL_OK && (ls = veil__lines_next(&it, line, sizeof(line))) != VEIL__LINE_END) {
		char why[160] = "";
		if (ls == VEIL__LINE_TOO_LONG)
			snprintf(why, sizeof(why), "line longer than %u bytes", VP_LINE_MAX - 1U);
		else if (ls == VEIL__LINE_NUL)
			snprintf(why, sizeof(why), "NUL byte in the line");
		rc = ls != VEIL__LINE_OK ? VEIL_ERR_PARSE : parse(obj, line, why, sizeof(why));
		if (rc != VEIL_OK)
			veil__errf(err, errlen, "%s:%u: %s", path, it.lineno, rc == VEIL_ERR_NOMEM ? "out of memory" : why);
	}
	sodium_memzero(line, sizeof(line));
	veil__text_free(&t);
	return rc;
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
	sig->ctime = st.st_ctim;
}

bool vp_file__sig_equal(const struct vp_file_sig *a, const struct vp_file_sig *b)
{
	return a->exists == b->exists && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Internal helpers: see util.h. */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/error.h"

void veil__errf(char *errbuf, size_t errlen, const char *fmt, ...)
{
	if (!errbuf || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

int veil__b64_decode(const char *b64, size_t b64_len, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = 0;
	const char *end = NULL;
	if (sodium_base642bin(out, cap, b64, b64_len, NULL, &n, &end, sodium_base64_VARIANT_ORIGINAL) != 0)
		return VEIL_ERR_PARSE;
	if (end != b64 + b64_len)
		return VEIL_ERR_PARSE; /* trailing garbage */
	*len = n;
	return VEIL_OK;
}

int veil__b64_encode(const uint8_t *in, size_t len, char *out, size_t cap)
{
	if (cap < sodium_base64_ENCODED_LEN(len, sodium_base64_VARIANT_ORIGINAL))
		return VEIL_ERR_INVAL;
	sodium_bin2base64(out, cap, in, len, sodium_base64_VARIANT_ORIGINAL);
	return VEIL_OK;
}

int veil__file_read(const char *path, bool secret, size_t max, char **out, size_t *len, char *errbuf,
                    size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		veil__errf(errbuf, errlen, "%s: %s", path, strerror(errno));
		return VEIL_ERR_IO;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		veil__errf(errbuf, errlen, "%s: not a regular file", path);
		close(fd);
		return VEIL_ERR_IO;
	}
	if (secret && (st.st_mode & 077)) {
		veil__errf(errbuf, errlen, "%s: holds secrets but is accessible by group or others (mode %03o); chmod 600 it",
		           path, (unsigned)(st.st_mode & 0777));
		close(fd);
		return VEIL_ERR_PERM;
	}
	if ((uint64_t)st.st_size > max) {
		veil__errf(errbuf, errlen, "%s: larger than %zu bytes", path, max);
		close(fd);
		return VEIL_ERR_TOO_LARGE;
	}
	size_t cap = (size_t)st.st_size + 1;
	char *buf = sodium_malloc(cap);
	if (!buf) {
		close(fd);
		return VEIL_ERR_NOMEM;
	}
	size_t n = 0;
	while (n < cap - 1) {
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			veil__errf(errbuf, errlen, "%s: %s", path, strerror(errno));
			sodium_free(buf);
			close(fd);
			return VEIL_ERR_IO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	close(fd);
	buf[n] = '\0';
	*out = buf;
	*len = n;
	return VEIL_OK;
}

void veil__file_free(char *buf, size_t len)
{
	(void)len;
	sodium_free(buf); /* sodium_free wipes before releasing */
}

int veil__file_write_atomic(const char *path, const void *data, size_t len, unsigned mode, bool excl)
{
	if (excl && access(path, F_OK) == 0) {
		errno = EEXIST;
		return VEIL_ERR_IO;
	}
	size_t plen = strlen(path);
	char *tmp = malloc(plen + 16);
	if (!tmp)
		return VEIL_ERR_NOMEM;
	snprintf(tmp, plen + 16, "%s.tmpXXXXXX", path);
	int fd = mkstemp(tmp);
	if (fd < 0) {
		free(tmp);
		return VEIL_ERR_IO;
	}
	int rc = VEIL_OK;
	if (fchmod(fd, (mode_t)mode) != 0)
		rc = VEIL_ERR_IO;
	const uint8_t *p = data;
	size_t off = 0;
	while (rc == VEIL_OK && off < len) {
		ssize_t w = write(fd, p + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			rc = VEIL_ERR_IO;
		else
			off += (size_t)w;
	}
	if (rc == VEIL_OK && fsync(fd) != 0)
		rc = VEIL_ERR_IO;
	if (close(fd) != 0 && rc == VEIL_OK)
		rc = VEIL_ERR_IO;
	if (rc == VEIL_OK && rename(tmp, path) != 0)
		rc = VEIL_ERR_IO;
	if (rc != VEIL_OK)
		unlink(tmp);
	free(tmp);
	return rc;
}

static bool blank(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_filter_directive(const char *w, size_t n, const char *const *dirs)
{
	for (size_t i = 0; dirs && dirs[i]; i++) {
		if (strlen(dirs[i]) == n && memcmp(dirs[i], w, n) == 0)
			return true;
	}
	return false;
}

size_t veil__line_content(const char *s, size_t n, const char *const *filter_directives)
{
	size_t i = 0, end = 0, field = 0, first = 0, first_len = 0;
	for (;;) {
		while (i < n && blank(s[i]))
			i++;
		if (i == n)
			return end;
		size_t start = i;
		while (i < n && !blank(s[i]))
			i++;
		bool filter = field == 1 && is_filter_directive(s + first, first_len, filter_directives);
		if (s[start] == '#' && !filter)
			return end;
		if (field == 0) {
			first = start;
			first_len = i - start;
		}
		field++;
		end = i;
	}
}

bool veil__next_line(const char *text, size_t len, size_t *pos, char *line, size_t cap, unsigned *lineno,
                     bool *too_long, const char *const *filter_directives)
{
	if (*pos >= len)
		return false;
	size_t start = *pos;
	size_t end = start;
	while (end < len && text[end] != '\n')
		end++;
	*pos = end < len ? end + 1 : end;
	(*lineno)++;
	size_t n = end - start;
	if (n > 0 && text[start + n - 1] == '\r')
		n--;
	n = veil__line_content(text + start, n, filter_directives);
	while (n > 0 && blank(text[start]))
		start++, n--;
	*too_long = n >= cap;
	if (*too_long)
		n = cap - 1;
	memcpy(line, text + start, n);
	line[n] = '\0';
	return true;
}

size_t veil__split(char *line, char **fields, size_t max)
{
	size_t n = 0;
	char *p = line;
	while (*p) {
		while (*p == ' ' || *p == '\t')
			*p++ = '\0';
		if (!*p)
			break;
		if (n == max)
			return max + 1; /* too many fields */
		fields[n++] = p;
		while (*p && *p != ' ' && *p != '\t')
			p++;
	}
	return n;
}

bool veil__topic_valid(const char *topic)
{
	if (!topic || !*topic)
		return false;
	size_t n = 0;
	for (const char *p = topic; *p; p++, n++) {
		if (*p == '+' || *p == '#')
			return false;
	}
	return n <= 65535;
}

bool veil__filter_valid(const char *filter)
{
	if (!filter || !*filter || strlen(filter) > 65535)
		return false;
	for (const char *p = filter; *p; p++) {
		if (*p == '+') {
			if ((p != filter && p[-1] != '/') || (p[1] && p[1] != '/'))
				return false;
		} else if (*p == '#') {
			if ((p != filter && p[-1] != '/') || p[1])
				return false;
		}
	}
	return true;
}

bool veil__filter_matches(const char *filter, const char *topic)
{
	/* MQTT 3.1.1 4.7: wildcards at the first level do not match '$' topics. */
	if (topic[0] == '$' && (filter[0] == '+' || filter[0] == '#'))
		return false;
	const char *f = filter;
	const char *t = topic;
	for (;;) {
		if (*f == '#')
			return true; /* matches the parent level too: "a/#" matches "a" */
		const char *fe = strchr(f, '/');
		const char *te = strchr(t, '/');
		size_t fl = fe ? (size_t)(fe - f) : strlen(f);
		size_t tl = te ? (size_t)(te - t) : strlen(t);
		if (!(fl == 1 && *f == '+') && (fl != tl || memcmp(f, t, fl) != 0))
			return false;
		if (!fe && !te)
			return true;
		if (!te)
			/* topic ended: filter may continue only with "/#" */
			return fe && strcmp(fe, "/#") == 0;
		if (!fe)
			return false;
		f = fe + 1;
		t = te + 1;
	}
}

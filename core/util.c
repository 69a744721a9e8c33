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

/* Base64's alphabet and its padding: Debian 12's libsodium (1.0.18)
 * decodes some bytes >= 0x80 as if they were letters, so one key had many
 * texts. Key text is secret: no branch and no early exit on its bytes, as
 * libsodium's own decoder. For bytes x, y (0..255): lt is 1 when x < y. */
static unsigned ct_lt(unsigned x, unsigned y)
{
	return ((x - y) >> 8) & 1U;
}

static unsigned ct_eq(unsigned x, unsigned y)
{
	return (((x ^ y) - 1U) >> 8) & 1U;
}

static unsigned b64_char(unsigned char ch)
{
	unsigned c = ch;
	return ((1U ^ ct_lt(c, 'A')) & ct_lt(c, 'Z' + 1U)) | ((1U ^ ct_lt(c, 'a')) & ct_lt(c, 'z' + 1U)) |
	       ((1U ^ ct_lt(c, '0')) & ct_lt(c, '9' + 1U)) | ct_eq(c, '+') | ct_eq(c, '/') | ct_eq(c, '=');
}

int veil__b64_decode(const char *b64, size_t b64_len, uint8_t *out, size_t cap, size_t *len)
{
	size_t n = 0;
	const char *end = NULL;
	unsigned bad = 0;
	for (size_t i = 0; i < b64_len; i++)
		bad |= 1U ^ b64_char((unsigned char)b64[i]);
	if (bad)
		return VEIL_ERR_PARSE;
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

static char *text_alloc(bool wiped, size_t n)
{
	return wiped ? sodium_malloc(n) : malloc(n);
}

static void text_release(bool wiped, char *p)
{
	if (wiped)
		sodium_free(p); /* wipes before releasing */
	else
		free(p);
}

/* Read fd to its end into a buffer of at most max + 1 bytes. */
static int read_all(int fd, const char *path, const struct stat *st, unsigned flags, size_t max,
                    struct veil__text *out, char *errbuf, size_t errlen)
{
	bool regular = S_ISREG(st->st_mode);
	bool wiped = (flags & (VEIL__FILE_SECRET | VEIL__FILE_WIPE)) != 0;
	/* A regular file's size is known: one read of it, then one byte more
	 * to see whether it grew. Anything else grows the buffer as it comes. */
	size_t cap = regular ? (size_t)st->st_size + 2 : (max < 4096 ? max + 2 : 4096);
	char *buf = text_alloc(wiped, cap);
	if (!buf)
		return VEIL_ERR_NOMEM;
	size_t n = 0;
	for (;;) {
		if (n == cap - 1) {
			if (regular || cap - 1 > max)
				break; /* regular: the size check below decides */
			size_t ncap = cap - 1 > (max + 2) / 2 ? max + 2 : 2 * cap;
			char *nb = text_alloc(wiped, ncap);
			if (!nb) {
				text_release(wiped, buf);
				return VEIL_ERR_NOMEM;
			}
			memcpy(nb, buf, n);
			text_release(wiped, buf);
			buf = nb;
			cap = ncap;
		}
		ssize_t r = read(fd, buf + n, cap - 1 - n);
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			int e = errno;
			veil__errf(errbuf, errlen, "%s: %s", path, strerror(e));
			text_release(wiped, buf);
			errno = e;
			return VEIL_ERR_IO;
		}
		if (r == 0)
			break;
		n += (size_t)r;
	}
	int rc = VEIL_OK;
	if (regular && n != (size_t)st->st_size) {
		veil__errf(errbuf, errlen, "%s: changed while reading", path);
		rc = VEIL_ERR_IO;
	} else if (n > max) {
		veil__errf(errbuf, errlen, "%s: larger than %zu bytes", path, max);
		rc = VEIL_ERR_TOO_LARGE;
	}
	if (rc != VEIL_OK) {
		text_release(wiped, buf);
		return rc;
	}
	buf[n] = '\0';
	out->text = buf;
	out->len = n;
	out->wiped = wiped;
	return VEIL_OK;
}

int veil__file_read(const char *path, unsigned flags, size_t max, struct veil__text *out, char *errbuf,
                    size_t errlen)
{
	if (!out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	if (!path)
		return VEIL_ERR_INVAL;
	bool std_in = (flags & VEIL__FILE_ANY) && strcmp(path, "-") == 0;
	int fd = std_in ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		int e = errno;
		veil__errf(errbuf, errlen, "%s: %s", path, strerror(e));
		errno = e;
		return VEIL_ERR_IO;
	}
	struct stat st;
	int rc = VEIL_OK;
	if (fstat(fd, &st) != 0 || (!S_ISREG(st.st_mode) && !(flags & VEIL__FILE_ANY))) {
		veil__errf(errbuf, errlen, "%s: not a regular file", path);
		errno = EINVAL;
		rc = VEIL_ERR_IO;
	} else if ((flags & VEIL__FILE_SECRET) && (st.st_mode & 077)) {
		veil__errf(errbuf, errlen, "%s: holds secrets but is accessible by group or others (mode %03o); chmod 600 it",
		           path, (unsigned)(st.st_mode & 0777));
		rc = VEIL_ERR_PERM;
	} else if (S_ISREG(st.st_mode) && (uint64_t)st.st_size > max) {
		veil__errf(errbuf, errlen, "%s: larger than %zu bytes", path, max);
		rc = VEIL_ERR_TOO_LARGE;
	} else {
		rc = read_all(fd, path, &st, flags, max, out, errbuf, errlen);
	}
	if (!std_in) {
		int e = errno;
		close(fd);
		errno = e;
	}
	if (rc == VEIL_ERR_TOO_LARGE)
		errno = EFBIG;
	else if (rc == VEIL_ERR_NOMEM)
		errno = ENOMEM;
	return rc;
}

void veil__text_free(struct veil__text *t)
{
	if (!t)
		return;
	if (t->text)
		text_release(t->wiped, t->text);
	memset(t, 0, sizeof(*t));
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
	/* The rename itself must survive a power loss: a device's keys file or
	 * sequence mark that fell back one write would contradict what it
	 * acknowledged or reserved. */
	if (rc == VEIL_OK)
		rc = veil__dir_sync(path);
	return rc;
}

int veil__dir_sync(const char *path)
{
	const char *slash = strrchr(path, '/');
	char *dir = slash ? strndup(path, slash == path ? 1 : (size_t)(slash - path)) : strdup(".");
	if (!dir)
		return VEIL_ERR_NOMEM;
	int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	free(dir);
	if (fd < 0)
		return VEIL_ERR_IO;
	int rc = fsync(fd) == 0 ? VEIL_OK : VEIL_ERR_IO;
	int e = errno;
	close(fd);
	errno = e;
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

enum veil__line veil__lines_next(struct veil__lines *it, char *line, size_t cap)
{
	if (it->pos >= it->len)
		return VEIL__LINE_END;
	const char *start = it->text + it->pos;
	size_t rest = it->len - it->pos;
	const char *nl = memchr(start, '\n', rest);
	size_t n = nl ? (size_t)(nl - start) : rest;
	it->pos += n + (nl ? 1 : 0);
	it->lineno++;
	line[0] = '\0';
	if (memchr(start, '\0', n))
		return VEIL__LINE_NUL;
	if (n > 0 && start[n - 1] == '\r')
		n--;
	if (!it->verbatim) {
		n = veil__line_content(start, n, it->filter_directives);
		while (n > 0 && blank(*start))
			start++, n--;
	}
	if (n >= cap)
		return VEIL__LINE_TOO_LONG;
	memcpy(line, start, n);
	line[n] = '\0';
	return VEIL__LINE_OK;
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

bool veil__filters_overlap(const char *a, const char *b)
{
	for (bool first = true;; first = false) {
		const char *ae = strchr(a, '/'), *be = strchr(b, '/');
		size_t al = ae ? (size_t)(ae - a) : strlen(a), bl = be ? (size_t)(be - b) : strlen(b);
		bool ah = al == 1 && a[0] == '#', bh = bl == 1 && b[0] == '#';
		bool aw = ah || (al == 1 && a[0] == '+'), bw = bh || (bl == 1 && b[0] == '+');
		/* A wildcard first level never matches a '$' topic: against a
		 * literal '$' level there is nothing in common. */
		if (first && ((aw && !bw && bl > 0 && b[0] == '$') || (bw && !aw && al > 0 && a[0] == '$')))
			return false;
		if (ah || bh)
			return true;
		if (!aw && !bw && (al != bl || memcmp(a, b, al) != 0))
			return false;
		if (!ae && !be)
			return true;
		/* One filter ends here: the other matches this topic only through
		 * a final "#" (which also matches its parent level), and never when
		 * that topic would be the empty one ("" is no topic: "+" and "/#"
		 * share nothing). */
		if ((!ae || !be) && first && ((!aw && al == 0) || (!bw && bl == 0)))
			return false;
		if (!ae)
			return strcmp(be + 1, "#") == 0;
		if (!be)
			return strcmp(ae + 1, "#") == 0;
		a = ae + 1;
		b = be + 1;
	}
}

bool veil__decimal(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	if (!s || !*s || strspn(s, "0123456789") != strlen(s))
		return false;
	errno = 0;
	unsigned long long v = strtoull(s, NULL, 10);
	if (errno || v < min || v > max)
		return false;
	*out = v;
	return true;
}

char *veil__path_beside(const char *base, const char *value)
{
	const char *slash = base ? strrchr(base, '/') : NULL;
	if (value[0] == '/' || !slash)
		return strdup(value);
	size_t dlen = (size_t)(slash - base) + 1U;
	size_t vlen = strlen(value);
	char *p = malloc(dlen + vlen + 1U);
	if (!p)
		return NULL;
	memcpy(p, base, dlen);
	memcpy(p + dlen, value, vlen + 1U);
	return p;
}

const char *veil__log_field(const char *s, char *buf, size_t buflen)
{
	if (!buf || buflen == 0)
		return "";
	if (!s) {
		snprintf(buf, buflen, "-");
		return buf;
	}
	size_t max = buflen - 1 < 64 ? buflen - 1 : 64;
	size_t i = 0;
	for (; i < max && s[i]; i++) {
		unsigned char ch = (unsigned char)s[i];
		/* '"' too: a quoted value (error="...") runs to the next quote,
		 * so a client's value must never open or close one. */
		buf[i] = (ch < 0x21 || ch == 0x7f || ch == '|' || ch == '=' || ch == '"') ? '?' : (char)ch;
	}
	buf[i] = '\0';
	return buf;
}

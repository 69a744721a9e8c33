/*
 * Internal helpers shared by the core files and the parts that link the
 * core (veil__ prefix): big-endian encoding, base64, error messages, the one
 * whole-file reader and the one line reader of Veil's files.
 */
#ifndef VEIL_CORE_UTIL_H
#define VEIL_CORE_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

static inline void veil__put_u16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}
static inline void veil__put_u32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}
static inline void veil__put_u64(uint8_t *p, uint64_t v)
{
	veil__put_u32(p, (uint32_t)(v >> 32));
	veil__put_u32(p + 4, (uint32_t)v);
}
static inline uint16_t veil__get_u16(const uint8_t *p)
{
	return (uint16_t)((unsigned)p[0] << 8 | p[1]);
}
static inline uint32_t veil__get_u32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}
static inline uint64_t veil__get_u64(const uint8_t *p)
{
	return (uint64_t)veil__get_u32(p) << 32 | veil__get_u32(p + 4);
}

/* printf into errbuf if it is not NULL. */
void veil__errf(char *errbuf, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Base64 (original alphabet, padded). decode: exact length required when want > 0. */
int veil__b64_decode(const char *b64, size_t b64_len, uint8_t *out, size_t cap, size_t *len);
int veil__b64_encode(const uint8_t *in, size_t len, char *out, size_t cap);

/*
 * The one whole-file reader of Veil's files. The text is NUL-terminated
 * (text[len] == 0; a NUL inside it is the line reader's business). Flags:
 *   VEIL__FILE_SECRET  refuse a file group or others may access
 *                      (VEIL_ERR_PERM, "chmod 600 it"); implies WIPE
 *   VEIL__FILE_WIPE    hold the text in sodium_malloc'd memory (guarded,
 *                      not swapped), wiped when freed
 *   VEIL__FILE_ANY     also read a pipe or terminal to its end ("-" is
 *                      standard input); otherwise only a regular file
 * max bounds the size (VEIL_ERR_TOO_LARGE, "larger than max bytes"). A
 * regular file whose size changes while it is read is refused ("changed
 * while reading"): a rewrite must never load as half a file. Errors are
 * "path: reason" in errbuf (may be NULL); for VEIL_ERR_IO errno is kept.
 * Free with veil__text_free, also after an error (it is then empty).
 */
#define VEIL__FILE_SECRET 1U
#define VEIL__FILE_WIPE 2U
#define VEIL__FILE_ANY 4U
struct veil__text {
	char *text;
	size_t len;
	bool wiped;
};
int veil__file_read(const char *path, unsigned flags, size_t max, struct veil__text *out, char *errbuf,
                    size_t errlen);
void veil__text_free(struct veil__text *t);
/* Write data atomically (temp file + fsync + rename + directory fsync), mode
 * applied before data. */
int veil__file_write_atomic(const char *path, const void *data, size_t len, unsigned mode, bool excl);
/* fsync the directory holding path, so a rename into it survives a power
 * loss. VEIL_OK, VEIL_ERR_IO (errno kept), VEIL_ERR_NOMEM. */
int veil__dir_sync(const char *path);

/*
 * The comment rule of every Veil text file (docs/PROTOCOL.md section 2), in
 * this one place: a line is fields separated by spaces and tabs; the first
 * field that begins with '#' starts a comment that runs to the end of the
 * line. The one exception is a topic-filter field, where '#' is the MQTT
 * wildcard: the second field of a line whose first field is one of
 * filter_directives (a NULL-terminated list, or NULL when the format has no
 * filter field) is never a comment. A '#' inside a field is never a comment.
 * Returns the length of s[0..n) before the comment, without the blanks in
 * front of it (so also without trailing blanks).
 */
size_t veil__line_content(const char *s, size_t n, const char *const *filter_directives);

/*
 * The one line reader of Veil's files, over a text in memory. Each call
 * copies the next line into line[cap] (NUL-terminated) without its "\n" or
 * "\r\n". Veil's formats (verbatim false) get the line without its comment
 * (veil__line_content with filter_directives) and without the blanks around
 * it: a comment-only line comes back empty. Mosquitto's formats (verbatim
 * true) get the line as it is. lineno is the number of the line last
 * returned, for "path:line: reason" errors.
 */
enum veil__line {
	VEIL__LINE_END = 0,    /* no more lines */
	VEIL__LINE_OK,         /* the next line is in the buffer */
	VEIL__LINE_TOO_LONG,   /* what the parser would get does not fit in cap - 1 bytes */
	VEIL__LINE_NUL         /* the line holds a NUL byte (binary, not text) */
};
struct veil__lines {
	const char *text;
	size_t len;
	size_t pos;
	unsigned lineno;
	const char *const *filter_directives;
	bool verbatim;
};
enum veil__line veil__lines_next(struct veil__lines *it, char *line, size_t cap);
/* Split a line into whitespace-separated fields (in place). Returns the count. */
size_t veil__split(char *line, char **fields, size_t max);

/* Decimal digits only (no sign, blanks or "0x"), in min..max: the one
 * number rule of Veil's option and config values. */
bool veil__decimal(const char *s, uint64_t min, uint64_t max, uint64_t *out);
/* A path written in a file: absolute as given, else taken beside that file
 * (in base's directory). malloc'd; NULL on ENOMEM. */
char *veil__path_beside(const char *base, const char *value);
/* A value from outside (a client id, a topic) made safe for one k=v field
 * of an audit line: at most 64 bytes, bytes below 0x21, DEL, '|', '=' and
 * '"' shown as '?'; NULL is "-". Returns buf. */
const char *veil__log_field(const char *s, char *buf, size_t buflen);

/* MQTT topic-filter validity (+ and # placement) and topic match. */
bool veil__filter_valid(const char *filter);
bool veil__topic_valid(const char *topic);
bool veil__filter_matches(const char *filter, const char *topic);
/* Whether some topic matches both filters (each a valid filter): '#' and '+'
 * at the first level do not match a '$' topic, "a/#" also matches "a". */
bool veil__filters_overlap(const char *a, const char *b);

#endif

/*
 * Internal helpers shared by the core files (veil__ prefix): big-endian
 * encoding, base64, error messages, and secret-file reading with a
 * permission check.
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
 * Read a whole file into a sodium_malloc'd, NUL-terminated buffer.
 * secret: refuse files readable or writable by group/others (VEIL_ERR_PERM).
 * Free with veil__file_free (wipes). max bounds the size.
 */
int veil__file_read(const char *path, bool secret, size_t max, char **out, size_t *len, char *errbuf,
                    size_t errlen);
void veil__file_free(char *buf, size_t len);
/* Write data atomically (temp file + fsync + rename), mode applied before data. */
int veil__file_write_atomic(const char *path, const void *data, size_t len, unsigned mode, bool excl);

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

/* Next line of text starting at *pos, without its comment (veil__line_content
 * with filter_directives) and surrounding blanks; a comment-only line comes
 * back empty. Returns false at end. *lineno is incremented per line;
 * *too_long when the content does not fit in cap. */
bool veil__next_line(const char *text, size_t len, size_t *pos, char *line, size_t cap, unsigned *lineno,
                     bool *too_long, const char *const *filter_directives);
/* Split a line into whitespace-separated fields (in place). Returns the count. */
size_t veil__split(char *line, char **fields, size_t max);

/* MQTT topic-filter validity (+ and # placement) and topic match. */
bool veil__filter_valid(const char *filter);
bool veil__topic_valid(const char *topic);
bool veil__filter_matches(const char *filter, const char *topic);

#endif

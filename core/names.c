/*
 * Names (see names.h and docs/PROTOCOL.md section 3). A name is 1..128
 * bytes of well-formed UTF-8 (shortest form, no surrogates, nothing above
 * U+10FFFF) without a control character (C0, DEL, C1), without the MQTT
 * wildcards '+' and '#', and without a space at either end. Why each part:
 * - wildcards: ACL patterns substitute %c/%u, and Mosquitto 2.0 does not
 *   refuse them in ids for v5 plugins;
 * - controls: names go into audit lines and text files;
 * - end spaces: every Veil text file (and Mosquitto's acl_file) trims the
 *   blanks around a name, so such a name could never be revoked or given
 *   rules; refusing it is failing closed;
 * - UTF-8: MQTT requires it of client ids and usernames.
 * A credential's client id also has no '/': Veil's own topics and %c
 * patterns use it as exactly one topic level. Usernames keep '/' (MQTT
 * and Mosquitto allow it; whole-level %u substitution never matches a name
 * with '/', so it cannot widen a rule). A password-file user has no ':',
 * the separator of "user:hash".
 */
#include "names.h"

#include <stdbool.h>
#include <stdint.h>

#define NOT_UTF8 "is not well-formed UTF-8"

const char *veil__name_check(const char *s, size_t n, enum veil__name kind)
{
	if (!s || n == 0)
		return "is empty";
	if (n > VEIL_CLIENT_ID_MAX)
		return "is longer than 128 bytes";
	if (s[0] == ' ' || s[n - 1] == ' ')
		return "begins or ends with a space";
	static const uint32_t shortest[4] = { 0, 0x80, 0x800, 0x10000 };
	const unsigned char *p = (const unsigned char *)s;
	for (size_t i = 0; i < n;) {
		uint32_t c = p[i];
		size_t more;
		if (c < 0x80) {
			more = 0;
		} else if ((c & 0xE0) == 0xC0) {
			more = 1;
			c &= 0x1F;
		} else if ((c & 0xF0) == 0xE0) {
			more = 2;
			c &= 0x0F;
		} else if ((c & 0xF8) == 0xF0) {
			more = 3;
			c &= 0x07;
		} else {
			return NOT_UTF8;
		}
		if (more >= n - i)
			return NOT_UTF8; /* cut short */
		for (size_t k = 1; k <= more; k++) {
			if ((p[i + k] & 0xC0) != 0x80)
				return NOT_UTF8;
			c = c << 6 | (p[i + k] & 0x3FU);
		}
		if (c < shortest[more] || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
			return NOT_UTF8;
		if (c < 0x20 || (c >= 0x7F && c <= 0x9F))
			return "contains a control character";
		if (c == '+' || c == '#')
			return "contains '+' or '#' (MQTT wildcards)";
		if (c == '/' && kind == VEIL__NAME_CLIENT_ID)
			return "contains '/' (a client id is exactly one topic level)";
		if (c == ':' && kind == VEIL__NAME_PASSWD_USER)
			return "contains ':' (the password file's separator)";
		i += more + 1;
	}
	return NULL;
}

bool veil_client_id_valid(const char *client_id)
{
	return client_id && veil__name_why(client_id, VEIL__NAME_CLIENT_ID) == NULL;
}

bool veil_username_valid(const char *username)
{
	return username && veil__name_why(username, VEIL__NAME_USERNAME) == NULL;
}

/* A deployment's name takes the credential client id's rule: one topic
 * level, should a deployment ever need its own ($SYS/.../<audience>). */
bool veil_audience_valid(const char *audience)
{
	return audience && veil__name_why(audience, VEIL__NAME_CLIENT_ID) == NULL;
}

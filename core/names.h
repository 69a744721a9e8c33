/*
 * Names: client ids and usernames (docs/PROTOCOL.md section 3). The one
 * rule every part applies: the credential issuer and parser, the plugin's
 * logins and its password and revocation files, the client config, the CLI.
 * The public face is veil_client_id_valid / veil_username_valid
 * (veil/identity.h); this header adds the reason, for error messages.
 */
#ifndef VEIL_CORE_NAMES_H
#define VEIL_CORE_NAMES_H

#include <stddef.h>
#include <string.h>

#include "veil/identity.h"

enum veil__name {
	VEIL__NAME_USERNAME,     /* a username, or the client id of any login */
	VEIL__NAME_CLIENT_ID,    /* a credential's client id: also no '/' (one topic level) */
	VEIL__NAME_PASSWD_USER   /* a password-file user: also no ':' (the file's separator) */
};

/* NULL when s[0..n) is a valid name of that kind, else why not
 * ("contains '/' (...)"), to follow the word naming what was checked. */
const char *veil__name_check(const char *s, size_t n, enum veil__name kind);

/* The same for a NUL-terminated string (NULL s: "is empty"). */
static inline const char *veil__name_why(const char *s, enum veil__name kind)
{
	return veil__name_check(s, s ? strnlen(s, VEIL_CLIENT_ID_MAX + 1U) : 0, kind);
}

#endif

/*
 * Names at login: the core's one rule (core/names.c, docs/PROTOCOL.md
 * section 3), the username rule for the client id and the username of
 * every login. Kept as this alias only until auth.c and auth_config.c call
 * veil_username_valid themselves.
 */
#ifndef VP_AUTH_NAMES_H
#define VP_AUTH_NAMES_H

#include <stdbool.h>

#include "veil/identity.h"

static inline bool vp_auth__name_valid(const char *s)
{
	return veil_username_valid(s);
}

#endif

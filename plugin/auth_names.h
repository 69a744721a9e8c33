/*
 * What a client id or username must look like before any other check or
 * any %c/%u substitution: 1..VEIL_CLIENT_ID_MAX bytes of well-formed UTF-8,
 * no control characters (C0, DEL, C1) and no MQTT wildcards '+' or '#'
 * (Mosquitto 2.0 does not reject those for v5 plugins). Pure logic.
 */
#ifndef VP_AUTH_NAMES_H
#define VP_AUTH_NAMES_H

#include <stdbool.h>

bool vp_auth__name_valid(const char *s);

#endif

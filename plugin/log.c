/*
 * Audit log lines: "veil: <area> | <verb> | k=v k=v". Values that come from
 * clients are passed through vp_log__clean first so a client id cannot forge
 * log fields. Nothing secret is ever logged: key ids and reasons only.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "../core/util.h" /* the one field cleaner, shared with keyd */
#include "plugin_private.h"

void vp_log__audit(int level, const char *area, const char *verb, const char *fmt, ...)
{
	char fields[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fields, sizeof(fields), fmt, ap);
	va_end(ap);
	mosquitto_log_printf(level, "veil: %s | %s | %s", area, verb, fields);
}

const char *vp_log__clean(const char *s, char *buf, size_t buflen)
{
	return veil__log_field(s, buf, buflen);
}

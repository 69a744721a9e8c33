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
		buf[i] = (ch < 0x21 || ch == 0x7f || ch == '|' || ch == '=') ? '?' : (char)ch;
	}
	buf[i] = '\0';
	return buf;
}

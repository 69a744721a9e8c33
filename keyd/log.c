/*
 * keyd's audit log: one line per event, "veil-keyd: <area> | <verb> |
 * k=v ...", as the plugin writes "veil: ...". Client-supplied values go
 * through kd_log__clean so a client id cannot forge fields. Never a key, a
 * payload or a secret: key ids, versions, reasons.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "../core/util.h"
#include "keyd.h"

static kd_log_sink g_sink;     /* the daemon's one log: set once at start (tests: per test) */
static void *g_sink_ctx;
static bool g_debug;

void kd_log__set_sink(kd_log_sink sink, void *ctx)
{
	g_sink = sink;
	g_sink_ctx = ctx;
}

void kd_log__set_debug(bool on)
{
	g_debug = on;
}

__attribute__((format(printf, 3, 0))) static void emit(const char *area, const char *verb, const char *fmt,
                                                    va_list ap)
{
	char fields[768], line[900];
	vsnprintf(fields, sizeof(fields), fmt, ap);
	snprintf(line, sizeof(line), "veil-keyd: %s | %s | %s", area, verb, fields);
	if (g_sink) {
		g_sink(g_sink_ctx, line);
	} else {
		fprintf(stderr, "%s\n", line);
		fflush(stderr);
	}
}

void kd_log__audit(const char *area, const char *verb, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	emit(area, verb, fmt, ap);
	va_end(ap);
}

void kd_log__debug(const char *area, const char *verb, const char *fmt, ...)
{
	if (!g_debug)
		return;
	va_list ap;
	va_start(ap, fmt);
	emit(area, verb, fmt, ap);
	va_end(ap);
}

const char *kd_log__clean(const char *s, char *buf, size_t buflen)
{
	return veil__log_field(s, buf, buflen);
}

const char *kd_log__hex(const uint8_t *p, size_t n, char *out, size_t cap)
{
	if (cap == 0)
		return "";
	if (2 * n + 1 > cap)
		n = (cap - 1) / 2;
	return sodium_bin2hex(out, cap, p, n);
}

/*
 * Unit tests link plugin files outside a broker. The only broker function
 * those files may call is mosquitto_log_printf; here it prints to stderr so
 * audit lines stay visible in test output. Files that call other broker
 * functions are exercised with a real broker in the integration tests.
 */
#include <stdarg.h>
#include <stdio.h>

void mosquitto_log_printf(int level, const char *fmt, ...);

void mosquitto_log_printf(int level, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fprintf(stderr, "[log %d] ", level);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
}

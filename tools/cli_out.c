/*
 * Output helpers of the veil CLI: UTC times as every command prints them,
 * and JSON objects (cJSON, as Mosquitto's tools) printed one per line.
 */
#include <stdio.h>
#include <time.h>

#include <cJSON.h>
#include <sodium.h>

#include "cli.h"

void cli_utc(uint64_t t, char *buf, size_t cap)
{
	time_t tt = (time_t)t;
	struct tm tm;
	if (gmtime_r(&tt, &tm) && strftime(buf, cap, "%Y-%m-%dT%H:%M:%SZ", &tm) > 0)
		return;
	snprintf(buf, cap, "%llu", (unsigned long long)t);
}

void cli_json_hex(cJSON *o, const char *name, const uint8_t *p, size_t n)
{
	char hex[2 * 64 + 1];
	if (n > 64)
		n = 64;
	sodium_bin2hex(hex, sizeof(hex), p, n);
	cJSON_AddStringToObject(o, name, hex);
}

void cli_json_time(cJSON *o, const char *name, uint64_t t)
{
	char key[64], utc[32];
	snprintf(key, sizeof(key), "%s_utc", name);
	cli_json_u64(o, name, t);
	cli_utc(t, utc, sizeof(utc));
	cJSON_AddStringToObject(o, key, utc);
}

void cli_json_u64(cJSON *o, const char *name, uint64_t v)
{
	/* Exact: cJSON's numbers are doubles. */
	char buf[24];
	snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	cJSON_AddRawToObject(o, name, buf);
}

int cli_json_print(cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	cJSON_Delete(o);
	if (!s) {
		fprintf(stderr, "veil: out of memory formatting JSON\n");
		return VEIL_EXIT_FAIL;
	}
	printf("%s\n", s);
	cJSON_free(s);
	return VEIL_EXIT_OK;
}

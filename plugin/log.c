/*
 * Audit log lines: "veil: <area> | <verb> | k=v k=v". Values that come from
 * clients are passed through vp_log__clean first so a client id cannot forge
 * log fields. Nothing secret is ever logged: key ids and reasons only.
 * Every line is also handed to the counters of the plugin instance whose
 * event is running (metrics.c), and, with plugin_opt_audit_format json,
 * written a second time as one JSON object (vp_log__json).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>

#include "../core/util.h" /* the one field cleaner, shared with keyd */
#include "metrics.h"
#include "plugin_private.h"

static __thread struct vp_ctx *bound;

struct vp_ctx *vp_log__bind(struct vp_ctx *ctx)
{
	struct vp_ctx *prev = bound;
	bound = ctx;
	return prev;
}

static const char *level_name(int level)
{
	switch (level) {
	case MOSQ_LOG_ERR: return "error";
	case MOSQ_LOG_WARNING: return "warning";
	case MOSQ_LOG_NOTICE: return "notice";
	case MOSQ_LOG_INFO: return "info";
	default: return "debug";
	}
}

/*
 * The fields of a line as JSON members. A field is key=value up to the next
 * space; a value that starts with '"' runs to the next '"' (an error
 * message with spaces). Words without '=' (a remark in parentheses) are
 * kept, in order, in "text". Every value stays a string: a client id of
 * digits must not change the type of "client" from one line to the next.
 */
static bool add_fields(cJSON *o, const char *f)
{
	char key[64];
	char *text = NULL;
	size_t text_len = 0;
	bool ok = true;
	while (ok && *f) {
		while (*f == ' ')
			f++;
		if (!*f)
			break;
		const char *start = f;
		const char *eq = NULL;
		while (*f && *f != ' ' && !eq) {
			if (*f == '=')
				eq = f;
			else
				f++;
		}
		if (eq && eq > start && (size_t)(eq - start) < sizeof(key)) {
			memcpy(key, start, (size_t)(eq - start));
			key[eq - start] = '\0';
			const char *v = eq + 1;
			const char *end;
			if (*v == '"') {
				v++;
				end = strchr(v, '"');
				f = end ? end + 1 : v + strlen(v);
				if (!end)
					end = f;
			} else {
				end = v + strcspn(v, " ");
				f = end;
			}
			char *val = strndup(v, (size_t)(end - v));
			ok = val && cJSON_AddStringToObject(o, key, val) != NULL;
			free(val);
			continue;
		}
		/* A word that is not key=value: up to the next space. */
		f = start + strcspn(start, " ");
		size_t n = (size_t)(f - start);
		char *t = realloc(text, text_len + n + 2);
		if (!t) {
			ok = false;
			break;
		}
		text = t;
		if (text_len)
			text[text_len++] = ' ';
		memcpy(text + text_len, start, n);
		text_len += n;
		text[text_len] = '\0';
	}
	if (ok && text)
		ok = cJSON_AddStringToObject(o, "text", text) != NULL;
	free(text);
	return ok;
}

char *vp_log__json(int level, const char *area, const char *verb, const char *fields, time_t when)
{
	cJSON *o = cJSON_CreateObject();
	char *out = NULL;
	if (o && cJSON_AddStringToObject(o, "veil", area) && cJSON_AddStringToObject(o, "event", verb) &&
	    cJSON_AddStringToObject(o, "level", level_name(level)) && cJSON_AddNumberToObject(o, "time", (double)when) &&
	    add_fields(o, fields ? fields : ""))
		out = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	return out;
}

void vp_log__audit(int level, const char *area, const char *verb, const char *fmt, ...)
{
	char fields[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(fields, sizeof(fields), fmt, ap);
	va_end(ap);
	mosquitto_log_printf(level, "veil: %s | %s | %s", area, verb, fields);
	struct vp_ctx *ctx = bound;
	if (!ctx || !ctx->metrics)
		return;
	vp_metrics__count(ctx->metrics, area, verb, fields);
	if (vp_metrics__json_audit(ctx->metrics)) {
		char *j = vp_log__json(level, area, verb, fields, time(NULL));
		if (j)
			mosquitto_log_printf(level, "%s", j);
		cJSON_free(j);
	}
}

const char *vp_log__clean(const char *s, char *buf, size_t buflen)
{
	return veil__log_field(s, buf, buflen);
}

/*
 * How `veil sub` prints a message (sub_format.h): payload only, -v
 * ("topic payload"), -F (mosquitto_sub's format language plus Veil's
 * sender, key and verification fields) and --json (one object per line,
 * with cJSON as Mosquitto's own tools use it). A message that arrived in
 * clear under a plaintext policy is never printed like a verified one:
 * "[plaintext] " before its payload, "plaintext": true in JSON, %V says so.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <MQTTProperties.h>
#include <sodium.h>

#include "cli.h"
#include "sub_format.h"

#define PLAINTEXT_MARK "[plaintext] "

/* Whether p[0..n) is well-formed UTF-8 without NUL (so a JSON string). */
static bool utf8_text(const uint8_t *p, size_t n)
{
	size_t i = 0;
	while (i < n) {
		uint8_t c = p[i];
		size_t k;
		uint32_t cp;
		if (c == 0)
			return false;
		if (c < 0x80) {
			i++;
			continue;
		} else if (c >= 0xc2 && c <= 0xdf) {
			k = 1, cp = c & 0x1fU;
		} else if (c >= 0xe0 && c <= 0xef) {
			k = 2, cp = c & 0x0fU;
		} else if (c >= 0xf0 && c <= 0xf4) {
			k = 3, cp = c & 0x07U;
		} else {
			return false;
		}
		if (n - i <= k)
			return false;
		for (size_t j = 1; j <= k; j++) {
			if ((p[i + j] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (p[i + j] & 0x3fU);
		}
		/* overlong, surrogate, beyond U+10FFFF */
		if ((k == 2 && cp < 0x800) || (k == 3 && cp < 0x10000) || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += k + 1;
	}
	return true;
}

/* The payload as a JSON string when it is text, else base64 (flag set). */
static void json_payload(cJSON *o, const char *name, const struct veil_message *m)
{
	if (utf8_text(m->payload, m->len)) {
		cJSON_AddStringToObject(o, name, (const char *)m->payload); /* NUL terminated by libveil */
		return;
	}
	size_t cap = sodium_base64_ENCODED_LEN(m->len, sodium_base64_VARIANT_ORIGINAL);
	char *b64 = malloc(cap);
	if (!b64)
		return;
	sodium_bin2base64(b64, cap, m->payload, m->len, sodium_base64_VARIANT_ORIGINAL);
	cJSON_AddStringToObject(o, name, b64);
	cJSON_AddTrueToObject(o, "payload_base64");
	free(b64);
}

static void json_print(FILE *f, cJSON *o)
{
	char *s = o ? cJSON_PrintUnformatted(o) : NULL;
	if (s) {
		fputs(s, f);
		cJSON_free(s);
	}
	cJSON_Delete(o);
}

static void print_json(FILE *f, const struct veil_message *m)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	cJSON_AddStringToObject(o, "topic", m->topic);
	json_payload(o, "payload", m);
	cJSON_AddNumberToObject(o, "qos", m->qos);
	cJSON_AddBoolToObject(o, "retained", m->retained);
	cJSON_AddBoolToObject(o, "verified", !m->plaintext);
	cJSON_AddBoolToObject(o, "plaintext", m->plaintext);
	cJSON_AddBoolToObject(o, "signed", m->is_signed);
	if (!m->plaintext) {
		if (m->is_signed)
			cJSON_AddStringToObject(o, "sender_client_id", m->sender_client_id);
		cJSON_AddStringToObject(o, "sender", m->sender_hex);
		cli_json_u64(o, "key_id", m->key_id);
		cli_json_u64(o, "seq", m->seq);
	}
	json_print(f, o);
}

/* ---- -F ---- */

struct spec {
	bool left, zero;
	int width;       /* -1: none */
	int prec;        /* -1: none */
};

static void pad(FILE *f, int n, char c)
{
	for (; n > 0; n--)
		fputc(c, f);
}

/* A field with mosquitto_sub's flags: width, '-' left, '0' zero (numbers),
 * .prec a maximum width (text). */
static void field(FILE *f, const struct spec *s, const char *p, size_t n, bool number)
{
	if (s->prec >= 0 && !number && n > (size_t)s->prec)
		n = (size_t)s->prec;
	int fill = s->width > 0 && (size_t)s->width > n ? s->width - (int)n : 0;
	if (!s->left)
		pad(f, fill, number && s->zero ? '0' : ' ');
	fwrite(p, 1, n, f);
	if (s->left)
		pad(f, fill, ' ');
}

static void field_str(FILE *f, const struct spec *s, const char *p)
{
	field(f, s, p, strlen(p), false);
}

static void field_u64(FILE *f, const struct spec *s, uint64_t v)
{
	char buf[24];
	int n = snprintf(buf, sizeof(buf), "%llu", (unsigned long long)v);
	field(f, s, buf, (size_t)n, true);
}

static void field_hex(FILE *f, const struct spec *s, const uint8_t *p, size_t n, bool upper)
{
	const char *digits = upper ? "0123456789ABCDEF" : "0123456789abcdef";
	int fill = s->width > 0 && (size_t)s->width > 2 * n ? s->width - (int)(2 * n) : 0;
	if (!s->left)
		pad(f, fill, s->zero ? '0' : ' ');
	for (size_t i = 0; i < n; i++) {
		fputc(digits[p[i] >> 4], f);
		fputc(digits[p[i] & 15], f);
	}
	if (s->left)
		pad(f, fill, ' ');
}

static const MQTTProperty *prop(const struct veil_message *m, int id)
{
	const MQTTProperties *ps = m->properties;
	for (int i = 0; ps && i < ps->count; i++) {
		if ((int)ps->array[i].identifier == id)
			return &ps->array[i];
	}
	return NULL;
}

static void field_prop(FILE *f, const struct spec *s, const struct veil_message *m, char c)
{
	const MQTTProperties *ps = m->properties;
	const MQTTProperty *p;
	switch (c) {
	case 'C':
	case 'R':
	case 'D':
		p = prop(m, c == 'C' ? MQTTPROPERTY_CODE_CONTENT_TYPE
		                     : c == 'R' ? MQTTPROPERTY_CODE_RESPONSE_TOPIC : MQTTPROPERTY_CODE_CORRELATION_DATA);
		if (p)
			field(f, s, p->value.data.data, (size_t)p->value.data.len, false);
		break;
	case 'E':
		if ((p = prop(m, MQTTPROPERTY_CODE_MESSAGE_EXPIRY_INTERVAL)))
			field_u64(f, s, p->value.integer4);
		break;
	case 'F':
		if ((p = prop(m, MQTTPROPERTY_CODE_PAYLOAD_FORMAT_INDICATOR)))
			field_u64(f, s, p->value.byte);
		break;
	case 'P':
		for (int i = 0, n = 0; ps && i < ps->count; i++) {
			const MQTTProperty *u = &ps->array[i];
			if (u->identifier != MQTTPROPERTY_CODE_USER_PROPERTY)
				continue;
			if (n++)
				fputc(' ', f);
			fprintf(f, "%.*s:%.*s", u->value.data.len, u->value.data.data, u->value.value.len,
			        u->value.value.data);
		}
		break;
	default: break;
	}
}

/* %I and %U, and the "tst" of %j: the time the message is printed. */
static void iso_time(char *buf, size_t cap, const struct timespec *now, bool micro)
{
	struct tm tm;
	localtime_r(&now->tv_sec, &tm);
	char date[40], zone[16];
	strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
	strftime(zone, sizeof(zone), "%z", &tm);
	if (micro)
		snprintf(buf, cap, "%.32s.%06ld%.8s", date, now->tv_nsec / 1000L, zone);
	else
		snprintf(buf, cap, "%.32s%.8s", date, zone);
}

static void print_mosq_json(FILE *f, const struct veil_message *m, const struct timespec *now, bool raw)
{
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return;
	char tst[64];
	iso_time(tst, sizeof(tst), now, true);
	cJSON_AddStringToObject(o, "tst", tst);
	cJSON_AddStringToObject(o, "topic", m->topic);
	cJSON_AddNumberToObject(o, "qos", m->qos);
	cJSON_AddNumberToObject(o, "retain", m->retained ? 1 : 0);
	if (!raw) {
		json_payload(o, "payload", m);
	} else {
		cJSON *pl = cJSON_ParseWithLength((const char *)m->payload, m->len);
		if (!pl) {
			fprintf(stderr, "veil sub: message payload is not valid JSON on topic %s\n", m->topic);
			cJSON_Delete(o);
			return;
		}
		cJSON_AddItemToObject(o, "payload", pl);
	}
	cJSON_AddBoolToObject(o, "plaintext", m->plaintext);
	json_print(f, o);
}

static const char *verification(const struct veil_message *m)
{
	return m->plaintext ? "PLAINTEXT" : "verified";
}

/* One % sequence at *pp (after the '%'); advances *pp. */
static void percent(FILE *f, const char **pp, const struct veil_message *m, const struct timespec *now)
{
	const char *p = *pp;
	struct spec s = { false, false, -1, -1 };
	for (; *p == '-' || *p == '0'; p++) {
		if (*p == '-')
			s.left = true;
		else
			s.zero = true;
	}
	for (; *p >= '0' && *p <= '9'; p++)
		s.width = (s.width < 0 ? 0 : s.width) * 10 + (*p - '0') % 1000;
	if (*p == '.') {
		s.prec = 0;
		for (p++; *p >= '0' && *p <= '9'; p++)
			s.prec = s.prec * 10 + (*p - '0') % 1000;
	}
	if (s.left)
		s.zero = false;
	char buf[64];
	switch (*p) {
	case '%': fputc('%', f); break;
	case 't': field_str(f, &s, m->topic); break;
	case 'p': field(f, &s, (const char *)m->payload, m->len, false); break;
	case 'l': field_u64(f, &s, m->len); break;
	case 'q': fprintf(f, "%d", m->qos); break;
	case 'r': fputc(m->retained ? '1' : '0', f); break;
	case 'x':
	case 'X': field_hex(f, &s, m->payload, m->len, *p == 'X'); break;
	case 'I': iso_time(buf, sizeof(buf), now, false); field_str(f, &s, buf); break;
	case 'U': fprintf(f, "%lld.%09ld", (long long)now->tv_sec, now->tv_nsec); break;
	case 'j': print_mosq_json(f, m, now, false); break;
	case 'J': print_mosq_json(f, m, now, true); break;
	case 'C': case 'D': case 'E': case 'F': case 'P': case 'R': field_prop(f, &s, m, *p); break;
	/* Veil's own */
	case 'V': field_str(f, &s, verification(m)); break;
	case 'g': field_str(f, &s, m->is_signed ? "signed" : "unsigned"); break;
	case 'c': field_str(f, &s, m->is_signed ? m->sender_client_id : ""); break;
	case 's': field_str(f, &s, m->plaintext ? "" : m->sender_hex); break;
	case 'k': if (!m->plaintext) field_u64(f, &s, m->key_id); break;
	case 'n': if (!m->plaintext) field_u64(f, &s, m->seq); break;
	case '\0': fputc('%', f); *pp = p; return;
	default: fputc('%', f); fwrite(*pp, 1, (size_t)(p - *pp) + 1, f); break;
	}
	*pp = p + 1;
}

/* @X: strftime's %X, one conversion (the format is the user's, so not a literal). */
static size_t strftime_one(char *buf, size_t cap, char conv, const struct tm *tm)
{
	char spec[3] = { '%', conv, '\0' };
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wformat-nonliteral"
	return strftime(buf, cap, spec, tm);
#pragma GCC diagnostic pop
}

static void print_format(FILE *f, const char *fmt, const struct veil_message *m)
{
	struct timespec now;
	clock_gettime(CLOCK_REALTIME, &now);
	struct tm tm;
	localtime_r(&now.tv_sec, &tm);
	for (const char *p = fmt; *p;) {
		if (*p == '%') {
			p++;
			percent(f, &p, m, &now);
		} else if (*p == '@' && p[1]) {
			char buf[128];
			if (p[1] == '@')
				fputc('@', f);
			else if (p[1] == 'N')
				fprintf(f, "%09ld", now.tv_nsec);
			else if (strftime_one(buf, sizeof(buf), p[1], &tm) > 0)
				fputs(buf, f);
			p += 2;
		} else if (*p == '\\' && p[1]) {
			static const char from[] = "\\0aenrtv", to[] = "\\\0\a\033\n\r\t\v";
			const char *k = strchr(from, p[1]);
			if (k)
				fputc(to[k - from], f);
			else
				fwrite(p, 1, 2, f);
			p += 2;
		} else {
			fputc(*p++, f);
		}
	}
}

void sub_print(FILE *f, const struct sub_out *o, const struct veil_message *m)
{
	switch (o->mode) {
	case SUB_OUT_JSON: print_json(f, m); break;
	case SUB_OUT_FORMAT: print_format(f, o->format, m); break;
	case SUB_OUT_VERBOSE:
		fputs(m->topic, f);
		fputc(' ', f);
		/* fall through */
	case SUB_OUT_PAYLOAD:
		if (m->plaintext)
			fputs(PLAINTEXT_MARK, f);
		fwrite(m->payload, 1, m->len, f);
		break;
	}
	if (!o->no_eol)
		fputc('\n', f);
}

void sub_format_help(FILE *f)
{
	fprintf(f,
	        "-F FORMAT (mosquitto_sub's; a new line follows unless -N):\n"
	        "  %%t topic  %%p payload  %%l length  %%q QoS  %%r retained (0/1)  %%x %%X payload in hex\n"
	        "  %%I ISO-8601 time  %%U Unix time  %%j %%J mosquitto_sub's JSON  %%C %%D %%E %%F %%P %%R MQTT 5\n"
	        "  properties  %%%%  @X strftime  @N nanoseconds  \\n \\t \\0 \\e ...  flags: %%-10t %%010l %%.5t\n"
	        "  Veil: %%V verified|PLAINTEXT  %%g signed|unsigned  %%c sender client id (signed)\n"
	        "        %%s sender id (hex)  %%k key id  %%n sequence\n"
	        "--json: one object per line: topic, payload (text, or base64 with\n"
	        "  \"payload_base64\": true), qos, retained, verified, plaintext, signed,\n"
	        "  sender_client_id (signed), sender, key_id, seq.\n");
}

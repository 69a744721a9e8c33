/*
 * Client config file parser (format in config.h), compiled into both libveil
 * and libveil_preload.so. It owns only the text format: it never opens the
 * identity, credential or keyring files it names, never prints, and knows
 * nothing about Paho or LD_PRELOAD.
 */
#include "config.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "veil/identity.h"
#include "../core/util.h" /* veil__line_content: the one comment rule of Veil's files */

__attribute__((format(printf, 3, 4))) static void seterr(char *err, size_t errlen, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

void veil_config_free(struct veil_config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->identity);
	free(c->credential);
	free(c->keyring);
	free(c->state_dir);
	free(c->client_id);
	memset(c, 0, sizeof(*c));
}

const char *veil_config_auth_name(enum veil_config_auth a)
{
	switch (a) {
	case VEIL_CONFIG_AUTH_CREDENTIAL:
		return "credential";
	case VEIL_CONFIG_AUTH_PASSWORD:
		return "password";
	case VEIL_CONFIG_AUTH_NONE:
		return "none";
	}
	return "?";
}

/* Whole file in memory: bounded, so a wrong path (a device node, a log) fails fast. */
static int read_all(const char *path, char **out, size_t *out_len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	if (!f) {
		seterr(err, errlen, "%s: %s", path, strerror(errno));
		return VEIL_ERR_IO;
	}
	char *buf = malloc(VEIL_CONFIG_MAX_BYTES + 1U);
	if (!buf) {
		fclose(f);
		seterr(err, errlen, "%s: out of memory reading the file", path);
		return VEIL_ERR_NOMEM;
	}
	size_t n = fread(buf, 1, VEIL_CONFIG_MAX_BYTES + 1U, f);
	int rerr = ferror(f) ? errno : 0;
	fclose(f);
	if (rerr) {
		free(buf);
		seterr(err, errlen, "%s: %s", path, strerror(rerr));
		return VEIL_ERR_IO;
	}
	if (n > VEIL_CONFIG_MAX_BYTES) {
		free(buf);
		seterr(err, errlen, "%s: file larger than %u bytes", path, VEIL_CONFIG_MAX_BYTES);
		return VEIL_ERR_TOO_LARGE;
	}
	buf[n] = '\0';
	*out = buf;
	*out_len = n;
	return VEIL_OK;
}

/* Relative paths resolve against the config file's directory, so a config
 * and its key files can move together. */
static char *resolve_path(const char *cfg_path, const char *value)
{
	if (value[0] == '/')
		return strdup(value);
	const char *slash = strrchr(cfg_path, '/');
	if (!slash)
		return strdup(value);
	size_t dlen = (size_t)(slash - cfg_path) + 1U;
	size_t vlen = strlen(value);
	char *p = malloc(dlen + vlen + 1U);
	if (!p)
		return NULL;
	memcpy(p, cfg_path, dlen);
	memcpy(p + dlen, value, vlen + 1U);
	return p;
}

static bool valid_client_id(const char *id, const char **why)
{
	size_t n = strlen(id);
	if (n > VEIL_CLIENT_ID_MAX) {
		*why = "client_id longer than 128 bytes";
		return false;
	}
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)id[i];
		/* '+'/'#' would turn %c ACL patterns into wildcards on the broker. */
		if (ch == '+' || ch == '#' || ch == '/') {
			*why = "client_id must not contain '+', '#' or '/'";
			return false;
		}
		if (ch <= 0x20 || ch == 0x7f) {
			*why = "client_id must not contain spaces or control characters";
			return false;
		}
	}
	return true;
}

enum key_kind { K_PATH, K_ID, K_AUTH, K_SIGN, K_LOG };

struct key_def {
	const char *name;
	enum key_kind kind;
	size_t off;          /* offsetof the char * field (paths, id) */
};

static const struct key_def KEYS[] = {
	{ "identity", K_PATH, offsetof(struct veil_config, identity) },
	{ "credential", K_PATH, offsetof(struct veil_config, credential) },
	{ "keyring", K_PATH, offsetof(struct veil_config, keyring) },
	{ "state_dir", K_PATH, offsetof(struct veil_config, state_dir) },
	{ "client_id", K_ID, offsetof(struct veil_config, client_id) },
	{ "auth", K_AUTH, 0 },
	{ "sign", K_SIGN, 0 },
	{ "log", K_LOG, 0 },
};
#define NKEYS (sizeof(KEYS) / sizeof(KEYS[0]))

/* One "key value" line (already trimmed, without its comment, not blank). */
static int parse_line(struct veil_config *c, char *line, unsigned lineno, unsigned seen[NKEYS], char *err,
                      size_t errlen)
{
	char *key = line;
	size_t klen = strcspn(key, " \t");
	char *val = key + klen;
	if (*val) {
		*val++ = '\0';
		val += strspn(val, " \t");
	}
	if (strcmp(key, "password") == 0 || strcmp(key, "password_file") == 0) {
		seterr(err, errlen, "%s:%u: '%s' is not allowed: secrets do not belong in the config file "
		       "(use auth password and let the application supply its own password)", c->path, lineno, key);
		return VEIL_ERR_PARSE;
	}
	size_t k = 0;
	while (k < NKEYS && strcmp(KEYS[k].name, key) != 0)
		k++;
	if (k == NKEYS) {
		seterr(err, errlen, "%s:%u: unknown key '%.64s'", c->path, lineno, key);
		return VEIL_ERR_PARSE;
	}
	if (seen[k]) {
		seterr(err, errlen, "%s:%u: duplicate key '%s' (first set on line %u)", c->path, lineno, key, seen[k]);
		return VEIL_ERR_PARSE;
	}
	if (*val == '\0') {
		seterr(err, errlen, "%s:%u: missing value for '%s'", c->path, lineno, key);
		return VEIL_ERR_PARSE;
	}
	seen[k] = lineno;
	/* Only paths may contain blanks; enumerations and ids are one word. */
	if (KEYS[k].kind != K_PATH && strpbrk(val, " \t")) {
		seterr(err, errlen, "%s:%u: '%s' takes a single word", c->path, lineno, key);
		return VEIL_ERR_PARSE;
	}
	const char *why = NULL;
	switch (KEYS[k].kind) {
	case K_PATH:
	case K_ID: {
		if (KEYS[k].kind == K_ID && !valid_client_id(val, &why)) {
			seterr(err, errlen, "%s:%u: %s", c->path, lineno, why);
			return VEIL_ERR_PARSE;
		}
		char *s = KEYS[k].kind == K_PATH ? resolve_path(c->path, val) : strdup(val);
		if (!s) {
			seterr(err, errlen, "%s:%u: out of memory", c->path, lineno);
			return VEIL_ERR_NOMEM;
		}
		memcpy((char *)c + KEYS[k].off, &s, sizeof(s));
		return VEIL_OK;
	}
	case K_AUTH:
		if (strcmp(val, "credential") == 0)
			c->auth = VEIL_CONFIG_AUTH_CREDENTIAL;
		else if (strcmp(val, "password") == 0)
			c->auth = VEIL_CONFIG_AUTH_PASSWORD;
		else if (strcmp(val, "none") == 0)
			c->auth = VEIL_CONFIG_AUTH_NONE;
		else
			why = "auth must be credential, password or none";
		break;
	case K_SIGN:
		if (strcmp(val, "always") == 0)
			c->sign = VEIL_CONFIG_SIGN_ALWAYS;
		else if (strcmp(val, "policy") == 0)
			c->sign = VEIL_CONFIG_SIGN_POLICY;
		else
			why = "sign must be always or policy";
		break;
	case K_LOG:
		if (strcmp(val, "stderr") == 0)
			c->log = VEIL_CONFIG_LOG_STDERR;
		else if (strcmp(val, "none") == 0)
			c->log = VEIL_CONFIG_LOG_NONE;
		else
			why = "log must be stderr or none";
		break;
	}
	if (why) {
		seterr(err, errlen, "%s:%u: %s, not '%.64s'", c->path, lineno, why, val);
		return VEIL_ERR_PARSE;
	}
	return VEIL_OK;
}

static int parse_text(struct veil_config *c, char *text, size_t len, char *err, size_t errlen)
{
	unsigned seen[NKEYS] = { 0 };
	unsigned lineno = 0;
	char *p = text;
	char *end = text + len;
	if (memchr(text, '\0', len)) {
		/* A NUL would silently cut a line short; refuse binary input. */
		size_t off = (size_t)((char *)memchr(text, '\0', len) - text);
		unsigned l = 1;
		for (size_t i = 0; i < off; i++)
			l += text[i] == '\n';
		seterr(err, errlen, "%s:%u: NUL byte in the file", c->path, l);
		return VEIL_ERR_PARSE;
	}
	while (p < end) {
		lineno++;
		char *nl = memchr(p, '\n', (size_t)(end - p));
		char *eol = nl ? nl : end;
		if ((size_t)(eol - p) > VEIL_CONFIG_MAX_LINE) {
			seterr(err, errlen, "%s:%u: line longer than %u bytes", c->path, lineno, VEIL_CONFIG_MAX_LINE);
			return VEIL_ERR_PARSE;
		}
		*eol = '\0';
		char *e = eol;
		if (e > p && e[-1] == '\r')
			*--e = '\0';
		char *s = p + strspn(p, " \t");
		s[veil__line_content(s, strlen(s), NULL)] = '\0'; /* comment and trailing blanks */
		if (*s) {
			int rc = parse_line(c, s, lineno, seen, err, errlen);
			if (rc != VEIL_OK)
				return rc;
		}
		p = nl ? nl + 1 : end;
	}
	if (!c->keyring) {
		seterr(err, errlen, "%s: missing required key 'keyring'", c->path);
		return VEIL_ERR_PARSE;
	}
	if (c->auth == VEIL_CONFIG_AUTH_CREDENTIAL && (!c->identity || !c->credential)) {
		seterr(err, errlen, "%s: auth credential needs both 'identity' and 'credential'", c->path);
		return VEIL_ERR_PARSE;
	}
	if (c->credential && !c->identity) {
		seterr(err, errlen, "%s: 'credential' given without the 'identity' it belongs to", c->path);
		return VEIL_ERR_PARSE;
	}
	return VEIL_OK;
}

int veil_config_load(const char *path, struct veil_config *out, char *err, size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	if (!path || !*path) {
		seterr(err, errlen, "no config file given");
		return VEIL_ERR_INVAL;
	}
	out->path = strdup(path);
	if (!out->path) {
		seterr(err, errlen, "%s: out of memory", path);
		return VEIL_ERR_NOMEM;
	}
	char *text = NULL;
	size_t len = 0;
	int rc = read_all(path, &text, &len, err, errlen);
	if (rc != VEIL_OK)
		return rc;
	rc = parse_text(out, text, len, err, errlen);
	free(text);
	return rc;
}

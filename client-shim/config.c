/*
 * Client config file parser (format in config.h), compiled into both libveil
 * and libveil_preload.so. It owns only the text format: it never opens the
 * identity, credential or keyring files it names, never prints, and knows
 * nothing about Paho or LD_PRELOAD.
 */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "veil/identity.h"
#include "../core/names.h" /* the one rule for client ids */
#include "../core/util.h"  /* the one file reader and line reader of Veil's files */

void veil_config_free(struct veil_config *c)
{
	if (!c)
		return;
	free(c->path);
	free(c->identity);
	free(c->credential);
	free(c->keyring);
	free(c->state_dir);
	free(c->authorities);
	free(c->client_id);
	free(c->audience);
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

/* Relative paths resolve against the config file's directory, so a config
 * and its key files can move together. */
enum key_kind { K_PATH, K_ID, K_AUTH, K_SIGN, K_LOG, K_KEYS };

struct key_def {
	const char *name;
	enum key_kind kind;
	size_t off;          /* offsetof the char * field (paths, id) */
};

static const struct key_def KEYS[] = {
	{ "identity", K_PATH, offsetof(struct veil_config, identity) },
	{ "credential", K_PATH, offsetof(struct veil_config, credential) },
	{ "keyring", K_PATH, offsetof(struct veil_config, keyring) },
	{ "authorities", K_PATH, offsetof(struct veil_config, authorities) },
	{ "key_service", K_KEYS, 0 },
	{ "state_dir", K_PATH, offsetof(struct veil_config, state_dir) },
	{ "client_id", K_ID, offsetof(struct veil_config, client_id) },
	/* A deployment's name follows the credential client id's rule. */
	{ "audience", K_ID, offsetof(struct veil_config, audience) },
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
		veil__errf(err, errlen, "%s:%u: '%s' is not allowed: secrets do not belong in the config file "
		       "(use auth password and let the application supply its own password)", c->path, lineno, key);
		return VEIL_ERR_PARSE;
	}
	size_t k = 0;
	while (k < NKEYS && strcmp(KEYS[k].name, key) != 0)
		k++;
	if (k == NKEYS) {
		veil__errf(err, errlen, "%s:%u: unknown key '%.64s'", c->path, lineno, key);
		return VEIL_ERR_PARSE;
	}
	if (seen[k]) {
		veil__errf(err, errlen, "%s:%u: duplicate key '%s' (first set on line %u)", c->path, lineno, key, seen[k]);
		return VEIL_ERR_PARSE;
	}
	if (*val == '\0') {
		veil__errf(err, errlen, "%s:%u: missing value for '%s'", c->path, lineno, key);
		return VEIL_ERR_PARSE;
	}
	seen[k] = lineno;
	/* Paths and ids may contain blanks; enumerations are one word. */
	if (KEYS[k].kind != K_PATH && KEYS[k].kind != K_ID && strpbrk(val, " \t")) {
		veil__errf(err, errlen, "%s:%u: '%s' takes a single word", c->path, lineno, key);
		return VEIL_ERR_PARSE;
	}
	const char *why = NULL;
	switch (KEYS[k].kind) {
	case K_PATH:
	case K_ID: {
		/* The credential's client id: the core's one rule for it. */
		if (KEYS[k].kind == K_ID && (why = veil__name_why(val, VEIL__NAME_CLIENT_ID)) != NULL) {
			veil__errf(err, errlen, "%s:%u: %s %s", c->path, lineno, key, why);
			return VEIL_ERR_PARSE;
		}
		char *s = KEYS[k].kind == K_PATH ? veil__path_beside(c->path, val) : strdup(val);
		if (!s) {
			veil__errf(err, errlen, "%s:%u: out of memory", c->path, lineno);
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
	case K_KEYS:
		if (strcmp(val, "auto") == 0)
			c->key_service = VEIL_CONFIG_KEYS_AUTO;
		else if (strcmp(val, "on") == 0)
			c->key_service = VEIL_CONFIG_KEYS_ON;
		else if (strcmp(val, "off") == 0)
			c->key_service = VEIL_CONFIG_KEYS_OFF;
		else
			why = "key_service must be auto, on or off";
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
		veil__errf(err, errlen, "%s:%u: %s, not '%.64s'", c->path, lineno, why, val);
		return VEIL_ERR_PARSE;
	}
	return VEIL_OK;
}

static int parse_text(struct veil_config *c, const char *text, size_t len, char *err, size_t errlen)
{
	unsigned seen[NKEYS] = { 0 };
	struct veil__lines it = { .text = text, .len = len };
	char *line = malloc(VEIL_CONFIG_MAX_LINE + 1U);
	if (!line) {
		veil__errf(err, errlen, "%s: out of memory", c->path);
		return VEIL_ERR_NOMEM;
	}
	enum veil__line ls;
	int rc = VEIL_OK;
	while (rc == VEIL_OK && (ls = veil__lines_next(&it, line, VEIL_CONFIG_MAX_LINE + 1U)) != VEIL__LINE_END) {
		if (ls == VEIL__LINE_NUL) {
			/* A NUL would silently cut a line short; refuse binary input. */
			veil__errf(err, errlen, "%s:%u: NUL byte in the file", c->path, it.lineno);
			rc = VEIL_ERR_PARSE;
		} else if (ls == VEIL__LINE_TOO_LONG) {
			veil__errf(err, errlen, "%s:%u: line longer than %u bytes", c->path, it.lineno, VEIL_CONFIG_MAX_LINE);
			rc = VEIL_ERR_PARSE;
		} else if (line[0]) {
			rc = parse_line(c, line, it.lineno, seen, err, errlen);
		}
	}
	free(line);
	if (rc != VEIL_OK)
		return rc;
	if (!c->keyring && c->key_service == VEIL_CONFIG_KEYS_OFF) {
		veil__errf(err, errlen, "%s: missing key 'keyring' (required with key_service off)", c->path);
		return VEIL_ERR_PARSE;
	}
	if (c->auth == VEIL_CONFIG_AUTH_CREDENTIAL && (!c->identity || !c->credential)) {
		veil__errf(err, errlen, "%s: auth credential needs both 'identity' and 'credential'", c->path);
		return VEIL_ERR_PARSE;
	}
	if (c->credential && !c->identity) {
		veil__errf(err, errlen, "%s: 'credential' given without the 'identity' it belongs to", c->path);
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
		veil__errf(err, errlen, "no config file given");
		return VEIL_ERR_INVAL;
	}
	out->path = strdup(path);
	if (!out->path) {
		veil__errf(err, errlen, "%s: out of memory", path);
		return VEIL_ERR_NOMEM;
	}
	/* Bounded, so a wrong path (a device node, a log) fails fast. */
	struct veil__text t;
	int rc = veil__file_read(path, 0, VEIL_CONFIG_MAX_BYTES, &t, err, errlen);
	if (rc == VEIL_OK)
		rc = parse_text(out, t.text, t.len, err, errlen);
	veil__text_free(&t);
	return rc;
}

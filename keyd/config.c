/*
 * keyd's config file (docs/KEYS.md; ROUND2 design D): one `key value` per
 * line, Veil's comment rule (core veil__line_content through core's line
 * reader: `scope` is the one directive whose second field is a topic filter,
 * so `scope # ...` names the filter '#'), errors as "path:line: reason".
 *
 *   broker tcp://127.0.0.1:1883        client_id veil-keyd
 *   identity keyd.key                  credential keyd.cred
 *   authorities authority.pub          acl_file /etc/mosquitto/veil.acl
 *   revocation_file revoked.txt        database keyd.db
 *   runtime_revocation_file /var/lib/mosquitto/veil/revocations
 *   storage_key storage.key            token_window 60
 *   reissue_interval 5                 rekey_grace 5
 *   scope factory/%c/# period 3600 lead 300 grace 300 depth 2
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "../core/names.h"
#include "../core/util.h"
#include "filter.h"
#include "keyd.h"

static const char *const FILTER_DIRECTIVES[] = { "scope", NULL };

enum kind { K_PATH, K_ID, K_AUDIENCE, K_URI, K_U32 };

struct key_def {
	const char *name;
	enum kind kind;
	size_t off;
	uint32_t min, max; /* K_U32 */
	bool required;
};

#define P(f) offsetof(struct kd_config, f)
static const struct key_def KEYS[] = {
	{ "broker", K_URI, P(broker), 0, 0, true },
	{ "client_id", K_ID, P(client_id), 0, 0, true },
	{ "identity", K_PATH, P(identity), 0, 0, true },
	{ "credential", K_PATH, P(credential), 0, 0, true },
	{ "authorities", K_PATH, P(authorities), 0, 0, true },
	{ "acl_file", K_PATH, P(acl_file), 0, 0, true },
	{ "revocation_file", K_PATH, P(revocation_file), 0, 0, false },
	{ "runtime_revocation_file", K_PATH, P(runtime_revocation_file), 0, 0, false },
	{ "database", K_PATH, P(database), 0, 0, true },
	{ "storage_key", K_PATH, P(storage_key), 0, 0, true },
	{ "tls_ca_file", K_PATH, P(tls_ca_file), 0, 0, false },
	{ "audience", K_AUDIENCE, P(audience), 0, 0, false },
	{ "token_window", K_U32, P(token_window), 1, 3600, false },
	{ "reissue_interval", K_U32, P(reissue_interval), 1, 3600, false },
	{ "rekey_grace", K_U32, P(rekey_grace), 0, 3600, false },
	{ "request_rate", K_U32, P(request_rate), 1, 100000, false },
	{ "keepalive", K_U32, P(keepalive), 5, 65535, false },
	{ "audit_days", K_U32, P(audit_days), 0, 36500, false },
};
#undef P
#define NKEYS (sizeof(KEYS) / sizeof(KEYS[0]))

static bool parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out)
{
	uint64_t v;
	if (!veil__decimal(s, min, max, &v))
		return false;
	*out = (uint32_t)v;
	return true;
}

static int fail(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));
static int fail(char *err, size_t errlen, const char *name, unsigned line, const char *fmt, ...)
{
	char why[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	veil__errf(err, errlen, "%s:%u: %s", name, line, why);
	return VEIL_ERR_PARSE;
}

/* A scope's filter: valid, not a '$' topic, '%c' only as a whole level,
 * never '%u' (a credential login's username is its client id: write %c). */
static const char *scope_filter_why(const char *f)
{
	if (strlen(f) > 255)
		return "is longer than 255 bytes";
	if (!veil__filter_valid(f))
		return "is not a valid topic filter";
	if (f[0] == '$')
		return "names a '$' topic (Veil's own topics are never keyd scopes)";
	const char *p = f;
	while (*p) {
		size_t n = strcspn(p, "/");
		if (n == 2 && !strncmp(p, "%u", 2))
			return "uses %u: a credential's username is its client id, write %c";
		for (size_t i = 0; n != 2 && i + 1 < n; i++)
			if (p[i] == '%' && (p[i + 1] == 'c' || p[i + 1] == 'u'))
				return "uses %c inside a level: it substitutes whole levels only";
		p += n;
		if (*p == '/')
			p++;
	}
	return NULL;
}

static int parse_scope(struct kd_config *c, char **f, size_t nf, unsigned line, char *err, size_t errlen)
{
	const char *name = c->path;
	if (nf < 2)
		return fail(err, errlen, name, line, "scope needs a topic filter");
	const char *why = scope_filter_why(f[1]);
	if (why)
		return fail(err, errlen, name, line, "scope '%.64s' %s", f[1], why);
	if (c->n_scopes >= KD_SCOPES_MAX)
		return fail(err, errlen, name, line, "more than 4096 scopes");
	struct kd_scope_conf s = { .depth = KD_DEFAULT_DEPTH, .line = line };
	static const char *const OPTS[] = { "period", "lead", "grace", "depth" };
	bool seen[4] = { false };
	for (size_t i = 2; i < nf; i += 2) {
		size_t k = 0;
		while (k < 4 && strcmp(OPTS[k], f[i]) != 0)
			k++;
		if (k == 4)
			return fail(err, errlen, name, line, "unknown scope option '%.32s' (period, lead, grace, depth)",
			            f[i]);
		if (seen[k])
			return fail(err, errlen, name, line, "scope option '%s' given twice", OPTS[k]);
		if (i + 1 >= nf)
			return fail(err, errlen, name, line, "scope option '%s' needs a value", OPTS[k]);
		seen[k] = true;
		uint32_t v;
		uint32_t min = k == 0 ? 1U : 0U;
		uint32_t max = k == 3 ? 16U : KD_PERIOD_MAX;
		if (!parse_u32(f[i + 1], min, max, &v)) {
			if (k == 3)
				return fail(err, errlen, name, line, "scope depth '%.32s' is not a number from 0 to 16",
				            f[i + 1]);
			return fail(err, errlen, name, line, "scope %s '%.32s' is not a number of seconds in range",
			            OPTS[k], f[i + 1]);
		}
		uint32_t *dst[] = { &s.period, &s.lead, &s.grace, &s.depth };
		*dst[k] = v;
	}
	for (size_t k = 0; k < 3; k++)
		if (!seen[k])
			return fail(err, errlen, name, line, "scope '%.64s' needs '%s <seconds>'", f[1], OPTS[k]);
	if (s.lead > s.period)
		return fail(err, errlen, name, line, "scope '%.64s': lead is longer than the period", f[1]);
	if ((uint64_t)s.lead + (uint64_t)s.depth * s.period > KD_PERIOD_MAX)
		return fail(err, errlen, name, line,
		            "scope '%.64s': lead + depth x period is more than a year: keys handed out that far ahead "
		            "defeat the epochs",
		            f[1]);
	for (size_t i = 0; i < c->n_scopes; i++) {
		if (!strcmp(c->scopes[i].filter, f[1])) {
			char prev[16];
			snprintf(prev, sizeof(prev), "%u", c->scopes[i].line);
			return fail(err, errlen, name, line, "scope '%.64s' already defined at line %s", f[1], prev);
		}
		if (kd_filter__overlap(c->scopes[i].filter, f[1], true)) {
			char prev[96];
			snprintf(prev, sizeof(prev), "'%.64s' (line %u)", c->scopes[i].filter, c->scopes[i].line);
			return fail(err, errlen, name, line,
			            "scope '%.64s' overlaps scope %s: a topic has one key scope", f[1], prev);
		}
	}
	s.filter = strdup(f[1]);
	if (!s.filter)
		return VEIL_ERR_NOMEM;
	s.per_device = kd_filter__has_subst(s.filter);
	void *p = realloc(c->scopes, (c->n_scopes + 1) * sizeof(*c->scopes));
	if (!p) {
		free(s.filter);
		return VEIL_ERR_NOMEM;
	}
	c->scopes = p;
	c->scopes[c->n_scopes++] = s;
	return VEIL_OK;
}

static int parse_line(struct kd_config *c, char *line, unsigned lineno, unsigned seen[NKEYS], char *err,
                      size_t errlen)
{
	char *f[12];
	size_t nf = veil__split(line, f, 11);
	if (nf == 0)
		return VEIL_OK;
	if (!strcmp(f[0], "scope")) {
		if (nf > 11)
			return fail(err, errlen, c->path, lineno, "too many fields on a scope line");
		return parse_scope(c, f, nf, lineno, err, errlen);
	}
	size_t k = 0;
	while (k < NKEYS && strcmp(KEYS[k].name, f[0]) != 0)
		k++;
	if (k == NKEYS)
		return fail(err, errlen, c->path, lineno, "unknown key '%.64s'", f[0]);
	if (seen[k]) {
		char prev[16];
		snprintf(prev, sizeof(prev), "%u", seen[k]);
		return fail(err, errlen, c->path, lineno, "duplicate key '%s' (first set on line %s)", f[0], prev);
	}
	if (nf < 2)
		return fail(err, errlen, c->path, lineno, "missing value for '%s'", f[0]);
	if (nf > 2)
		return fail(err, errlen, c->path, lineno, "'%s' takes one value", f[0]);
	seen[k] = lineno;
	const char *v = f[1];
	const char *why;
	switch (KEYS[k].kind) {
	case K_U32: {
		uint32_t n;
		if (!parse_u32(v, KEYS[k].min, KEYS[k].max, &n)) {
			char range[48];
			snprintf(range, sizeof(range), "%u to %u", KEYS[k].min, KEYS[k].max);
			return fail(err, errlen, c->path, lineno, "'%s' must be a number from %s", f[0], range);
		}
		memcpy((char *)c + KEYS[k].off, &n, sizeof(n));
		return VEIL_OK;
	}
	case K_ID:
		if ((why = veil__name_why(v, VEIL__NAME_CLIENT_ID)) != NULL)
			return fail(err, errlen, c->path, lineno, "client_id %s", why);
		break;
	case K_AUDIENCE: /* the token's rule (veil_audience_valid): a client id's */
		if ((why = veil__name_why(v, VEIL__NAME_CLIENT_ID)) != NULL)
			return fail(err, errlen, c->path, lineno, "audience %s", why);
		break;
	case K_URI:
		if (strncmp(v, "tcp://", 6) != 0 && strncmp(v, "ssl://", 6) != 0 && strncmp(v, "mqtt://", 7) != 0 &&
		    strncmp(v, "mqtts://", 8) != 0)
			return fail(err, errlen, c->path, lineno, "broker '%.64s' is not tcp://, ssl://, mqtt:// or mqtts://",
			            v);
		break;
	case K_PATH:
		break;
	}
	char *s = KEYS[k].kind == K_PATH ? veil__path_beside(c->path, v) : strdup(v);
	if (!s)
		return VEIL_ERR_NOMEM;
	memcpy((char *)c + KEYS[k].off, &s, sizeof(s));
	return VEIL_OK;
}

static int check_whole(struct kd_config *c, const unsigned seen[NKEYS], char *err, size_t errlen)
{
	for (size_t k = 0; k < NKEYS; k++) {
		if (KEYS[k].required && !seen[k]) {
			veil__errf(err, errlen, "%s: missing required key '%s'", c->path, KEYS[k].name);
			return VEIL_ERR_PARSE;
		}
	}
	/* Clock skew the fleet tolerates (the token window) must lose nothing:
	 * the next epoch arrives and the last one stays accepted at least two
	 * windows around every boundary. */
	for (size_t i = 0; i < c->n_scopes; i++) {
		const struct kd_scope_conf *s = &c->scopes[i];
		if ((uint64_t)s->lead < 2ULL * c->token_window || (uint64_t)s->grace < 2ULL * c->token_window) {
			veil__errf(err, errlen, "%s:%u: scope '%.64s': lead (%u) and grace (%u) must be at least twice "
			           "token_window (%u)", c->path, s->line, s->filter, s->lead, s->grace, c->token_window);
			return VEIL_ERR_PARSE;
		}
	}
	if (c->n_scopes == 0) {
		veil__errf(err, errlen, "%s: no scope: keyd would grant nothing", c->path);
		return VEIL_ERR_PARSE;
	}
	return VEIL_OK;
}

int kd_config__parse(const char *name, const char *text, size_t len, struct kd_config *out, char *err,
                     size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	memset(out, 0, sizeof(*out));
	out->token_window = KD_DEFAULT_TOKEN_WINDOW;
	out->reissue_interval = KD_DEFAULT_REISSUE;
	out->rekey_grace = KD_DEFAULT_REKEY_GRACE;
	out->request_rate = KD_DEFAULT_REQUEST_RATE;
	out->keepalive = KD_DEFAULT_KEEPALIVE;
	out->audit_days = KD_DEFAULT_AUDIT_DAYS;
	out->path = strdup(name ? name : "config");
	char *line = malloc(KD_CONFIG_MAX_LINE + 1U);
	if (!out->path || !line) {
		free(line);
		kd_config__free(out);
		veil__errf(err, errlen, "%s: out of memory", name);
		return VEIL_ERR_NOMEM;
	}
	unsigned seen[NKEYS] = { 0 };
	struct veil__lines it = { .text = text, .len = len, .filter_directives = FILTER_DIRECTIVES };
	enum veil__line ls;
	int rc = VEIL_OK;
	while (rc == VEIL_OK && (ls = veil__lines_next(&it, line, KD_CONFIG_MAX_LINE + 1U)) != VEIL__LINE_END) {
		if (ls == VEIL__LINE_NUL)
			rc = fail(err, errlen, out->path, it.lineno, "NUL byte in the file");
		else if (ls == VEIL__LINE_TOO_LONG)
			rc = fail(err, errlen, out->path, it.lineno, "line longer than 4096 bytes");
		else if (line[0])
			rc = parse_line(out, line, it.lineno, seen, err, errlen);
	}
	free(line);
	if (rc == VEIL_ERR_NOMEM)
		veil__errf(err, errlen, "%s:%u: out of memory", out->path, it.lineno);
	if (rc == VEIL_OK)
		rc = check_whole(out, seen, err, errlen);
	if (rc != VEIL_OK)
		kd_config__free(out);
	return rc;
}

int kd_config__load(const char *path, struct kd_config *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!path || !*path) {
		veil__errf(err, errlen, "no config file given");
		return VEIL_ERR_INVAL;
	}
	struct veil__text t;
	int rc = veil__file_read(path, 0, KD_CONFIG_MAX_BYTES, &t, err, errlen);
	if (rc == VEIL_OK)
		rc = kd_config__parse(path, t.text, t.len, out, err, errlen);
	veil__text_free(&t);
	return rc;
}

void kd_config__free(struct kd_config *c)
{
	if (!c)
		return;
	char **strs[] = { &c->path, &c->broker, &c->client_id, &c->identity, &c->credential, &c->authorities,
		          &c->acl_file, &c->revocation_file, &c->runtime_revocation_file, &c->database, &c->storage_key,
		          &c->tls_ca_file, &c->audience };
	for (size_t i = 0; i < sizeof(strs) / sizeof(strs[0]); i++) {
		free(*strs[i]);
		*strs[i] = NULL;
	}
	for (size_t i = 0; i < c->n_scopes; i++)
		free(c->scopes[i].filter);
	free(c->scopes);
	c->scopes = NULL;
	c->n_scopes = 0;
}

const struct kd_scope_conf *kd_config__scope(const struct kd_config *c, const char *filter)
{
	for (size_t i = 0; i < c->n_scopes; i++)
		if (!strcmp(c->scopes[i].filter, filter))
			return &c->scopes[i];
	return NULL;
}

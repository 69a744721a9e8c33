/*
 * Counters and gauges (see metrics.h): a uthash table of "family/label"
 * entries in a stable order (documented labels first, at zero, so a
 * Prometheus rate() has a first sample; others as they first appear).
 */
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>

#include "veil/error.h"
#include "../core/table.h"
#include "auth_private.h"
#include "metrics.h"
#include "options.h"
#include "plugin_private.h"

enum kind { COUNTER, GAUGE, MICROS };

#define KEY_MAX 320U /* family (<= 32) + '/' + a role (<= 255) */

struct metric {
	char key[KEY_MAX];          /* "family/label" */
	size_t family_len;
	uint64_t value;
	enum kind kind;
	UT_hash_handle hh;          /* iteration order: insertion order */
};

struct vp_metrics {
	uint32_t sys_interval;      /* s, 0 = never published */
	char *audit_format;         /* "text" (default) or "json" */
	bool json;
	struct metric *table;
	size_t n;
	bool published;             /* the first publication is due at once */
	uint64_t next_ms;
};

#define OFF(f) offsetof(struct vp_metrics, f)
static const struct vp_opt opt_defs[] = {
	/* seconds between $SYS/broker/veil publications (Mosquitto's sys_interval) */
	{ "sys_interval", VP_OPT_U32, OFF(sys_interval), 0, 86400, 10 },
	/* audit lines as text only, or also as JSON objects */
	{ "audit_format", VP_OPT_STRING, OFF(audit_format), 0, 0, 0 },
};
#define N_OPTS (sizeof(opt_defs) / sizeof(opt_defs[0]))

/* Which audit lines count where: (area, verb) -> family, labelled by the
 * value of one field of the line (or by a fixed label). */
static const struct {
	const char *area, *verb, *family, *field, *label;
} MAP[] = {
	{ "auth", "accept", "logins_accepted", "method", NULL },
	{ "auth", "token-v1", "token_v1_logins", NULL, "total" },
	{ "auth", "refuse", "logins_refused", "reason", NULL },
	{ "auth", "defer", "logins_deferred", "reason", NULL },
	{ "auth", "kick", "kicks", "reason", NULL },
	{ "control", "kick", "kicks", "reason", NULL },
	{ "acl", "deny", "acl_denied", "reason", NULL },
	{ "acl", "refuse", "envelope_refused", "reason", NULL },
	{ "auth", "load", "file_loads", "file", NULL },
	{ "acl", "loaded", "file_loads", NULL, "rules" },
	{ "auth", "reload-failed", "file_load_failures", "file", NULL },
	{ "acl", "load-failed", "file_load_failures", NULL, "rules" },
	{ "plugin", "reload", "reloads", "result", NULL },
	{ "control", "command", "control_commands", "command", NULL },
};

/* The documented labels (docs/AUTH.md "Reasons", docs/OPERATIONS.md),
 * published from the start at zero. */
static const struct {
	const char *family;
	enum kind kind;
	const char *labels;         /* space separated */
} SEED[] = {
	{ "logins_accepted", COUNTER, "credential password anonymous" },
	{ "logins_refused", COUNTER,
	  "invalid-client-id invalid-username username-mismatch client-id-reserved client-id-not-allowed "
	  "malformed-token stale-token wrong-authority bad-signature credential-not-yet-valid expired-credential "
	  "wrong-client-id wrong-audience token-v1-refused token-before-start revoked-credential revoked-client replayed-token "
	  "replay-cache-full login-quota no-authority-configured invalid-token rate-limited no-password unknown-user busy "
	  "bad-password anonymous password-without-username auth-after-connect reauthentication-not-supported "
	  "internal-error" },
	{ "logins_deferred", COUNTER, "unknown-user enhanced-auth-disabled" },
	{ "token_v1_logins", COUNTER, "total" },
	{ "kicks", COUNTER,
	  "revoked-client revoked-credential authority-removed expired-credential user-deleted auth-after-connect "
	  "anonymous admin-kick" },
	{ "acl_denied", COUNTER,
	  "rules unauthorised veil-topic veil-topic-keyd-only veil-topic-not-own-bundle veil-topic-not-own-request "
	  "veil-topic-retained-request veil-topic-empty-retained veil-control-admin-only veil-control" },
	{ "envelope_refused", COUNTER,
	  "too-large no-identity not-envelope wrong-sender unsigned bad-signature empty-payload malformed-credential" },
	{ "file_loads", COUNTER, "authority password revocation runtime-password runtime-revocation rules" },
	{ "file_load_failures", COUNTER, "authority password revocation runtime-password runtime-revocation rules" },
	{ "reloads", COUNTER, "ok failed" },
	{ "control_commands", COUNTER,
	  "listClients kickClient revokeClient revokeCredential removeRevocation listRevocations listPasswordUsers "
	  "addPasswordUser removePasswordUser reload getCounters unknown" },
	{ "control_errors", COUNTER,
	  "not-json not-admin too-large bad-request unknown-command missing-field bad-field not-found exists "
	  "operator-file no-state-dir write-failed reload-failed internal-error" },
	{ "clients", GAUGE, "online offline" },
	{ "clients_by_login", GAUGE, "credential password anonymous" },
	{ "argon2id_hashes", GAUGE, "total" },
	{ "argon2id_seconds", MICROS, "total" },
};

bool vp_metrics__option_known(const char *key)
{
	return vp_options__known(opt_defs, N_OPTS, key);
}

/* A label is one topic level and one Prometheus label value: [A-Za-z0-9_.-]. */
static bool label_ok(const char *s, size_t n)
{
	if (n == 0)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '.' || c == '-'))
			return false;
	}
	return true;
}

static struct metric *find(const struct vp_metrics *m, const char *key)
{
	struct metric *e = NULL;
	HASH_FIND_STR(m->table, key, e);
	return e;
}

/* The entry of family/label (created on first use; NULL on ENOMEM). A
 * label that is not one level, or past VP_METRICS_MAX entries, is "other". */
static struct metric *entry(struct vp_metrics *m, const char *family, const char *label, size_t label_len,
                            enum kind kind)
{
	char key[KEY_MAX];
	size_t fl = strlen(family);
	if (!label_ok(label, label_len) || fl + 1 + label_len >= sizeof(key)) {
		label = "other";
		label_len = 5;
	}
	snprintf(key, sizeof(key), "%s/%.*s", family, (int)label_len, label);
	struct metric *e = find(m, key);
	if (e)
		return e;
	if (m->n >= VP_METRICS_MAX) {
		snprintf(key, sizeof(key), "%s/other", family);
		if ((e = find(m, key)))
			return e;
	}
	e = calloc(1, sizeof(*e));
	if (!e)
		return NULL;
	snprintf(e->key, sizeof(e->key), "%s", key);
	e->family_len = fl;
	e->kind = kind;
	HASH_ADD_STR(m->table, key, e);
	if (!veil__table_added(e)) {
		free(e);
		return NULL;
	}
	m->n++;
	return e;
}

static int seed(struct vp_metrics *m)
{
	for (size_t i = 0; i < sizeof(SEED) / sizeof(SEED[0]); i++) {
		const char *p = SEED[i].labels;
		while (*p) {
			size_t n = strcspn(p, " ");
			if (!entry(m, SEED[i].family, p, n, SEED[i].kind))
				return VEIL_ERR_NOMEM;
			p += n + strspn(p + n, " ");
		}
	}
	return VEIL_OK;
}

int vp_metrics__new(const struct mosquitto_opt *opts, int count, struct vp_metrics **out)
{
	struct vp_metrics *m = calloc(1, sizeof(*m));
	if (!m)
		return VEIL_ERR_NOMEM;
	int rc = vp_options__parse(opt_defs, N_OPTS, m, "metrics", opts, count);
	if (rc == VEIL_OK && m->audit_format) {
		if (!strcmp(m->audit_format, "json"))
			m->json = true;
		else if (strcmp(m->audit_format, "text") != 0)
			rc = vp_options__refuse("metrics", "audit_format", m->audit_format, "expected-text-or-json");
	}
	if (rc == VEIL_OK)
		rc = seed(m);
	if (rc != VEIL_OK) {
		vp_metrics__free(&m);
		return rc;
	}
	*out = m;
	return VEIL_OK;
}

void vp_metrics__free(struct vp_metrics **mp)
{
	if (!mp || !*mp)
		return;
	struct vp_metrics *m = *mp;
	/* The table's own memory first, then the entries along their order. */
	struct metric *e = m->table, *next;
	HASH_CLEAR(hh, m->table);
	for (; e; e = next) {
		next = e->hh.next;
		free(e);
	}
	vp_options__free(opt_defs, N_OPTS, m);
	free(m);
	*mp = NULL;
}

bool vp_metrics__json_audit(const struct vp_metrics *m)
{
	return m && m->json;
}

/* The value of the field name=, up to a space. Fields are separated by
 * spaces; a quoted value (an error message) is skipped whole, so a
 * "reason=" inside it is never taken for the field. */
static const char *field(const char *fields, const char *name, size_t *len)
{
	size_t nl = strlen(name);
	const char *p = fields;
	while (p && *p) {
		while (*p == ' ')
			p++;
		if (!strncmp(p, name, nl) && p[nl] == '=') {
			*len = strcspn(p + nl + 1, " ");
			return p + nl + 1;
		}
		const char *eq = p + strcspn(p, "= ");
		if (*eq == '=' && eq[1] == '"') {
			const char *close = strchr(eq + 2, '"');
			p = close ? close + 1 : NULL;
		} else {
			p += strcspn(p, " ");
		}
	}
	return NULL;
}

static void bump(struct vp_metrics *m, const char *family, const char *label, size_t len)
{
	struct metric *e = entry(m, family, label, len, COUNTER);
	if (e)
		e->value++;
}

void vp_metrics__count(struct vp_metrics *m, const char *area, const char *verb, const char *fields)
{
	if (!m || !area || !verb)
		return;
	for (size_t i = 0; i < sizeof(MAP) / sizeof(MAP[0]); i++) {
		if (strcmp(MAP[i].area, area) != 0 || strcmp(MAP[i].verb, verb) != 0)
			continue;
		size_t len = 0;
		const char *label = MAP[i].label;
		if (label)
			len = strlen(label);
		else
			label = field(fields, MAP[i].field, &len);
		if (!label || !len) {
			label = "unknown";
			len = 7;
		}
		bump(m, MAP[i].family, label, len);
	}
	if (strcmp(area, "control") != 0 || strcmp(verb, "command") != 0)
		return;
	/* A failed command also counts under its error. */
	size_t rl = 0, el = 0;
	const char *result = field(fields, "result", &rl);
	const char *reason = field(fields, "reason", &el);
	if (result && rl == 5 && !strncmp(result, "error", 5))
		bump(m, "control_errors", reason ? reason : "unknown", reason ? el : 7);
}

uint64_t vp_metrics__get(const struct vp_metrics *m, const char *family, const char *label)
{
	char key[KEY_MAX];
	if (!m || !family || !label)
		return 0;
	snprintf(key, sizeof(key), "%s/%s", family, label);
	const struct metric *e = find(m, key);
	return e ? e->value : 0;
}

bool vp_metrics__due(struct vp_metrics *m, uint64_t now_ms)
{
	if (!m || m->sys_interval == 0)
		return false;
	if (m->published && now_ms < m->next_ms)
		return false;
	m->published = true;
	m->next_ms = now_ms + (uint64_t)m->sys_interval * 1000U;
	return true;
}

struct census {
	struct vp_metrics *m;
};

static void gauge_add(struct vp_metrics *m, const char *family, const char *label, size_t len)
{
	struct metric *e = entry(m, family, label, len, GAUGE);
	if (e)
		e->value++;
}

static bool count_client(struct vp_client *c, void *arg)
{
	struct census *k = arg;
	if (c->departed || c->login == VP_LOGIN_NONE)
		return true;
	if (c->parked) {
		gauge_add(k->m, "clients", "offline", 7);
		return true;
	}
	gauge_add(k->m, "clients", "online", 6);
	static const char *const login[] = { "none", "credential", "password", "anonymous" };
	const char *l = login[c->login];
	gauge_add(k->m, "clients_by_login", l, strlen(l));
	/* A client with several roles counts once in each. */
	for (const char *p = c->roles; *p;) {
		size_t n = strcspn(p, ",");
		if (n)
			gauge_add(k->m, "clients_by_role", p, n);
		p += n + (p[n] == ',');
	}
	return true;
}

void vp_metrics__refresh(struct vp_metrics *m, const struct vp_ctx *ctx)
{
	if (!m || !ctx)
		return;
	struct metric *e;
	/* A role nobody holds any more is published as 0, not left stale. */
	for (e = m->table; e; e = e->hh.next) {
		if (e->kind == GAUGE)
			e->value = 0;
	}
	struct census k = { m };
	vp_clients__foreach(ctx->clients, count_client, &k);
	if (ctx->auth) {
		if ((e = entry(m, "argon2id_hashes", "total", 5, GAUGE)))
			e->value = ctx->auth->hashes_total;
		if ((e = entry(m, "argon2id_seconds", "total", 5, MICROS)))
			e->value = ctx->auth->hash_us_total;
	}
}

static void text_of(const struct metric *e, char *buf, size_t cap)
{
	if (e->kind == MICROS)
		snprintf(buf, cap, "%llu.%06llu", (unsigned long long)(e->value / 1000000U),
		         (unsigned long long)(e->value % 1000000U));
	else
		snprintf(buf, cap, "%llu", (unsigned long long)e->value);
}

void vp_metrics__each(const struct vp_metrics *m, void (*fn)(void *arg, const char *topic, const char *value),
                      void *arg)
{
	if (!m || !fn)
		return;
	char topic[sizeof(VP_METRICS_TOPIC_PREFIX) + KEY_MAX], value[32];
	for (const struct metric *e = m->table; e; e = e->hh.next) {
		snprintf(topic, sizeof(topic), VP_METRICS_TOPIC_PREFIX "%s", e->key);
		text_of(e, value, sizeof(value));
		fn(arg, topic, value);
	}
}

cJSON *vp_metrics__json(const struct vp_metrics *m)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !m)
		return o;
	for (const struct metric *e = m->table; e; e = e->hh.next) {
		char family[KEY_MAX];
		snprintf(family, sizeof(family), "%.*s", (int)e->family_len, e->key);
		cJSON *f = cJSON_GetObjectItemCaseSensitive(o, family);
		if (!f && !(f = cJSON_AddObjectToObject(o, family)))
			goto nomem;
		double v = e->kind == MICROS ? (double)e->value / 1e6 : (double)e->value;
		if (!cJSON_AddNumberToObject(f, e->key + e->family_len + 1, v))
			goto nomem;
	}
	return o;
nomem:
	cJSON_Delete(o);
	return NULL;
}

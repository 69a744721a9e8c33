/*
 * The admin API's listings (control.c runs the commands): listClients from
 * the registry, listRevocations and listPasswordUsers from the operator's
 * file and the runtime file, each entry with its source. Sorted, paged by
 * offset and count. Nothing here changes state.
 */
#include <stdlib.h>
#include <string.h>

#include <cjson/cJSON.h>
#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <sodium.h>

#include "auth_private.h"
#include "control.h"
#include "passwd.h"
#include "plugin_private.h"
#include "revoke.h"

static int by_client_id(const void *x, const void *y)
{
	const struct vp_client *a = *(const struct vp_client *const *)x, *b = *(const struct vp_client *const *)y;
	return strcmp(a->client_id, b->client_id);
}

struct census {
	const struct vp_client **list;
	size_t n, cap;
	bool failed;
};

bool vp_control__online(const struct vp_client *c)
{
	return !c->parked && !c->departed && c->login != VP_LOGIN_NONE && c->client_id;
}

static bool collect(struct vp_client *c, void *arg)
{
	struct census *k = arg;
	if (!vp_control__online(c))
		return true;
	if (k->n == k->cap) {
		size_t nc = k->cap ? k->cap * 2 : 64;
		const struct vp_client **p = realloc(k->list, nc * sizeof(*p));
		if (!p) {
			k->failed = true;
			return false;
		}
		k->list = p;
		k->cap = nc;
	}
	k->list[k->n++] = c;
	return true;
}

/* The page [offset, offset + count) of n items (count 0: all). */
static void page(const struct vp_cmd *c, size_t n, size_t *from, size_t *to)
{
	*from = c->offset < n ? c->offset : n;
	*to = c->count && n - *from > c->count ? *from + c->count : n;
}

static bool add_client(cJSON *arr, const struct vp_client *c)
{
	static const char *const login[] = { "none", "credential", "password", "anonymous" };
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	cJSON *o = cJSON_CreateObject();
	if (!o)
		return false;
	cJSON_AddItemToArray(arr, o);
	const char *addr = mosquitto_client_address(c->mosq);
	if (!cJSON_AddStringToObject(o, "clientId", c->client_id) ||
	    (c->username && !cJSON_AddStringToObject(o, "username", c->username)) ||
	    !cJSON_AddStringToObject(o, "login", login[c->login]) ||
	    !cJSON_AddStringToObject(o, "address", addr ? addr : "") ||
	    !cJSON_AddNumberToObject(o, "connectedSince", (double)c->connected_at))
		return false;
	if (c->login != VP_LOGIN_CREDENTIAL)
		return true;
	cJSON *roles = cJSON_AddArrayToObject(o, "roles");
	if (!roles)
		return false;
	for (const char *p = c->roles; *p;) {
		size_t n = strcspn(p, ",");
		char role[VEIL_ROLES_MAX + 1];
		snprintf(role, sizeof(role), "%.*s", (int)n, p);
		cJSON *s = cJSON_CreateString(role);
		if (!s)
			return false;
		cJSON_AddItemToArray(roles, s);
		p += n + (p[n] == ',');
	}
	sodium_bin2hex(hex, sizeof(hex), c->credential_id, VEIL_CREDENTIAL_ID_BYTES);
	if (!cJSON_AddStringToObject(o, "credentialId", hex))
		return false;
	sodium_bin2hex(hex, sizeof(hex), c->authority_id, VEIL_AUTHORITY_ID_BYTES);
	return cJSON_AddStringToObject(o, "authority", hex) &&
	       cJSON_AddNumberToObject(o, "expires", (double)c->credential_expires) &&
	       cJSON_AddBoolToObject(o, "enhancedAuth", c->enhanced);
}

bool vp_control__list_clients(struct vp_ctx *ctx, const struct vp_cmd *cmd, cJSON *data)
{
	struct census k = { 0 };
	vp_clients__foreach(ctx->clients, collect, &k);
	if (k.failed) {
		free(k.list);
		return false;
	}
	if (k.n > 1)
		qsort(k.list, k.n, sizeof(*k.list), by_client_id);
	size_t from, to;
	page(cmd, k.n, &from, &to);
	cJSON *arr = cJSON_AddArrayToObject(data, "clients");
	bool ok = arr && cJSON_AddNumberToObject(data, "totalCount", (double)k.n) &&
	          cJSON_AddNumberToObject(data, "offline", (double)vp_clients__parked(ctx->clients));
	for (size_t i = from; ok && i < to; i++)
		ok = add_client(arr, k.list[i]);
	free(k.list);
	return ok;
}

/* Listings of both sources: the operator's file, then the runtime file's
 * entries the operator's lacks. */
struct listing {
	cJSON *all;                  /* [{..., "source"}] before paging */
	const char *source;
	const void *other;           /* the operator's list, when listing the runtime one */
	bool failed;
};

static void add_entry(struct listing *l, const char *key, const char *value)
{
	cJSON *o = cJSON_CreateObject();
	if (!o || !cJSON_AddStringToObject(o, key, value) || !cJSON_AddStringToObject(o, "source", l->source)) {
		cJSON_Delete(o);
		l->failed = true;
		return;
	}
	cJSON_AddItemToArray(l->all, o);
}

static void rev_entry(void *arg, const uint8_t *cred, const char *client)
{
	struct listing *l = arg;
	const struct vp_revoke *other = l->other;
	if (other && (cred ? vp_revoke__credential(other, cred) : vp_revoke__client(other, client)))
		return;
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	if (cred)
		sodium_bin2hex(hex, sizeof(hex), cred, VEIL_CREDENTIAL_ID_BYTES);
	add_entry(l, cred ? "credentialId" : "clientId", cred ? hex : client);
}

static void user_entry(void *arg, const char *user, const char *hash)
{
	struct listing *l = arg;
	(void)hash; /* never listed */
	if (!l->other || !vp_passwd__hash(l->other, user))
		add_entry(l, "username", user);
}

/* Move the page of l->all into data[name] with totalCount. */
static bool put_page(const struct vp_cmd *cmd, cJSON *data, struct listing *l, const char *name)
{
	int n = cJSON_GetArraySize(l->all);
	size_t from, to;
	page(cmd, (size_t)n, &from, &to);
	cJSON *arr = cJSON_AddArrayToObject(data, name);
	bool ok = !l->failed && arr && cJSON_AddNumberToObject(data, "totalCount", n);
	for (size_t i = from; ok && i < to; i++) {
		/* Always the item at index `from`: each detach shifts the rest. */
		cJSON *item = cJSON_DetachItemFromArray(l->all, (int)from);
		if (item)
			cJSON_AddItemToArray(arr, item);
	}
	cJSON_Delete(l->all);
	return ok;
}

bool vp_control__list_revocations(struct vp_ctx *ctx, const struct vp_cmd *cmd, cJSON *data)
{
	struct listing l = { .all = cJSON_CreateArray(), .source = "file" };
	if (!l.all)
		return false;
	vp_revoke__each(ctx->auth->revoke_file, rev_entry, &l);
	l.source = "runtime";
	l.other = ctx->auth->revoke_file;
	vp_revoke__each(ctx->auth->revoke_rt, rev_entry, &l);
	return put_page(cmd, data, &l, "revocations");
}

bool vp_control__list_users(struct vp_ctx *ctx, const struct vp_cmd *cmd, cJSON *data)
{
	struct listing l = { .all = cJSON_CreateArray(), .source = "file" };
	if (!l.all)
		return false;
	vp_passwd__each(ctx->auth->passwd_file, user_entry, &l);
	l.source = "runtime";
	l.other = ctx->auth->passwd_file;
	vp_passwd__each(ctx->auth->passwd_rt, user_entry, &l);
	return put_page(cmd, data, &l, "users");
}

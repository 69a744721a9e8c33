/*
 * The ACL module's broker side: options (its table, parsed by options.c),
 * loading and hot reload of the rules file (SIGHUP and polling of the
 * file's signature, file.c; atomic swap; a broken file keeps the old
 * rules), per-client views cached in vp_client.acl_cache and invalidated by
 * a generation counter, the ACL_CHECK decision, envelope
 * enforcement on WRITE (Will messages included: a client that has left is
 * found in the registry as departed, see clients.c) and the audit lines.
 * The pure logic lives in topic.c, acl_rules.c, acl_decide.c and enforce.c.
 */
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>
#include <sodium.h>

#include "veil/error.h"
#include "../core/bundle.h" /* struct veil__trust */
#include "acl_decide.h"
#include "bridge.h"
#include "enforce.h"
#include "file.h"
#include "options.h"
#include "plugin_private.h"
#include "veil_topics.h"

/*
 * vp_client.acl_cache: the client's view (lists that apply). Who the client
 * is (names, roles, identity) is read from the registry entry, which also
 * answers for a client that has left while its Will is being judged (a
 * departed entry, clients.c).
 */
struct acl_cache {
	struct vp_acl_view *view;
	/* The last decision: a subscriber gets one READ check per message, and
	 * a publisher usually repeats its topic; same topic and access under
	 * the same rules generation (the cache's) give the same answer. */
	int memo_access;                  /* 0: empty */
	struct vp_acl_result memo;
	char memo_topic[96];
};

struct vp_acl {
	struct vp_ctx *ctx;
	char *path;                 /* NULL: no rules file, every check is deferred */
	size_t max_bytes;
	uint32_t poll_interval;     /* seconds; 0 disables polling */
	size_t max_payload;         /* 0: no limit */
	struct vp_acl_rules *rules;
	uint64_t gen;
	struct vp_file_sig seen;    /* file identity at the last load attempt */
	time_t next_poll;
	struct timespec next_sweep; /* TICK runs every loop iteration: sweep rarely */
};

#define OFF(f) offsetof(struct vp_acl, f)
static const struct vp_opt opt_defs[] = {
	/* the rules file (Mosquitto acl_file syntax + extensions) */
	{ "acl_file", VP_OPT_STRING, OFF(path), 0, 0, 0 },
	/* seconds between change checks, 0 = only SIGHUP */
	{ "acl_poll_interval", VP_OPT_U32, OFF(poll_interval), 0, 86400, 1 },
	/* refuse larger rules files */
	{ "acl_max_file_bytes", VP_OPT_SIZE, OFF(max_bytes), 1, (uint64_t)1 << 40, VP_ACL_DEFAULT_MAX_BYTES },
	/* refuse PUBLISH payloads larger than this (0 = no limit) */
	{ "max_payload", VP_OPT_SIZE, OFF(max_payload), 0, 268435455, 0 },
};
#define N_OPTS (sizeof(opt_defs) / sizeof(opt_defs[0]))

bool vp_acl__option_known(const char *key)
{
	return vp_options__known(opt_defs, N_OPTS, key);
}

/* Load the file into a new rule set and swap it in; the old one stays on
 * any error. Caches built for the old set are dropped lazily (gen). */
static int load(struct vp_acl *acl, const char *why)
{
	/* Identity first: a change after this point triggers another reload. */
	vp_file__sig(acl->path, &acl->seen);
	struct vp_acl_rules *r = NULL;
	char err[300];
	char p[80];
	int rc = vp_acl_rules__load(acl->path, acl->max_bytes, &r, err, sizeof(err));
	if (rc != VEIL_OK) {
		/* At start there are no rules to keep: say which file stops the
		 * broker, in the words of the auth module's files. */
		if (!acl->rules)
			vp_log__audit(MOSQ_LOG_ERR, "acl", "init-failed",
			              "file=rules error=\"%s\" action=refuse-start (the plugin cannot start without a valid "
			              "rules file)", err);
		else
			vp_log__audit(MOSQ_LOG_ERR, "acl", "load-failed", "why=%s kept=old-rules error=%s", why, err);
		return rc;
	}
	vp_acl_rules__free(&acl->rules);
	acl->rules = r;
	acl->gen++;
	vp_log__audit(MOSQ_LOG_NOTICE, "acl", "loaded",
	              "why=%s file=%s rules=%zu users=%zu roles=%zu patterns=%zu protected=%s generation=%llu", why,
	              vp_log__clean(acl->path, p, sizeof(p)), r->nrules, r->nusers, r->nroles, r->npatterns,
	              r->has_attrs ? "yes" : "no", (unsigned long long)acl->gen);
	return VEIL_OK;
}

int vp_acl__new(struct vp_ctx *ctx, struct mosquitto_opt *opts, int count, struct vp_acl **out)
{
	struct vp_acl *acl = calloc(1, sizeof(*acl));
	if (!acl)
		return VEIL_ERR_NOMEM;
	acl->ctx = ctx;
	int rc = vp_options__parse(opt_defs, N_OPTS, acl, "acl", opts, count);
	if (rc == VEIL_OK && acl->path)
		rc = load(acl, "init"); /* a broken file at start refuses to start: fail closed */
	if (rc == VEIL_OK && !acl->path)
		vp_log__audit(MOSQ_LOG_WARNING, "acl", "no-rules-file",
		              "decision=defer (Mosquitto's acl_file decides; without one every check is denied)");
	if (rc != VEIL_OK) {
		vp_acl__free(&acl);
		return rc;
	}
	*out = acl;
	return VEIL_OK;
}

static void cache_destroy(struct acl_cache *k)
{
	if (!k)
		return;
	free(k->view);
	sodium_memzero(k, sizeof(*k));
	free(k);
}

void vp_acl__free(struct vp_acl **ap)
{
	if (!ap || !*ap)
		return;
	struct vp_acl *acl = *ap;
	vp_acl_rules__free(&acl->rules);
	vp_options__free(opt_defs, N_OPTS, acl);
	free(acl);
	*ap = NULL;
}

void vp_acl__client_cache_free(void *cache)
{
	cache_destroy(cache);
}

static struct acl_cache *cache_new(struct vp_acl *acl, const struct vp_acl_who *who)
{
	struct acl_cache *k = calloc(1, sizeof(*k));
	if (!k)
		return NULL;
	k->view = vp_acl_view__new(acl->rules, who, acl->gen);
	if (!k->view) {
		cache_destroy(k);
		return NULL;
	}
	return k;
}

int vp_acl__reload(struct vp_ctx *ctx)
{
	if (!ctx || !ctx->acl || !ctx->acl->path)
		return VEIL_OK;
	return load(ctx->acl, "reload");
}

bool vp_acl__enforcing(const struct vp_ctx *ctx)
{
	return ctx && ctx->acl && ctx->acl->rules;
}

static struct vp_acl_who who_of(const struct vp_client *c)
{
	return (struct vp_acl_who){ c->client_id, c->username, c->roles[0] ? c->roles : NULL };
}

/* Give every registered client its cache before its first check, so the
 * first check does not pay for it. A departed client gets at most its Will
 * checked: built on demand. */
static bool precompute(struct vp_client *c, void *arg)
{
	struct vp_acl *acl = arg;
	struct acl_cache *k = c->acl_cache;
	if (c->departed)
		return true;
	if (!k || k->view->gen != acl->gen) {
		struct vp_acl_who who = who_of(c);
		struct acl_cache *fresh = cache_new(acl, &who);
		if (!fresh)
			return false; /* ENOMEM: the check path retries, fail closed */
		cache_destroy(k);
		c->acl_cache = fresh;
	}
	return true;
}

void vp_acl__tick(struct vp_ctx *ctx, time_t now)
{
	struct vp_acl *acl = ctx ? ctx->acl : NULL;
	if (acl && acl->rules && ctx->clients) {
		struct timespec t;
		clock_gettime(CLOCK_MONOTONIC, &t);
		if (t.tv_sec > acl->next_sweep.tv_sec ||
		    (t.tv_sec == acl->next_sweep.tv_sec && t.tv_nsec >= acl->next_sweep.tv_nsec)) {
			vp_clients__foreach(ctx->clients, precompute, acl);
			/* At most 5 sweeps a second; a sweep reads a pointer and a generation per client. */
			t.tv_nsec += 200000000L;
			if (t.tv_nsec >= 1000000000L) {
				t.tv_sec++;
				t.tv_nsec -= 1000000000L;
			}
			acl->next_sweep = t;
		}
	}
	if (!acl || !acl->path || acl->poll_interval == 0 || now < acl->next_poll)
		return;
	acl->next_poll = now + (time_t)acl->poll_interval;
	struct vp_file_sig sig;
	vp_file__sig(acl->path, &sig);
	if (!vp_file__sig_equal(&sig, &acl->seen))
		load(acl, "file-changed");
}

static const char *access_name(int access)
{
	switch (access) {
	case MOSQ_ACL_READ:
		return "read";
	case MOSQ_ACL_WRITE:
		return "write";
	case MOSQ_ACL_SUBSCRIBE:
		return "subscribe";
	default:
		return "other";
	}
}

/* The decision for a registered client (c) or an unknown one (NULL). */
static int check_client(struct vp_acl *acl, const struct mosquitto_evt_acl_check *ed, struct vp_client *c)
{
	struct vp_acl_who who;
	if (c) {
		who = who_of(c);
	} else {
		who = (struct vp_acl_who){ mosquitto_client_id(ed->client), mosquitto_client_username(ed->client), NULL };
	}
	/* Offline, a client can only be publishing its Will. */
	const char *will = (c && (c->departed || c->parked)) ? " will=1" : "";
	struct acl_cache *k = c ? c->acl_cache : NULL;
	struct vp_acl_view *view = k ? k->view : NULL;
	struct vp_acl_view *temporary = NULL;
	if (!view || view->gen != acl->gen) {
		if (c) {
			struct acl_cache *fresh = cache_new(acl, &who);
			if (!fresh)
				return MOSQ_ERR_ACL_DENIED; /* fail closed */
			cache_destroy(c->acl_cache);
			c->acl_cache = fresh;
			view = fresh->view;
		} else {
			/* Not in the registry: nowhere to keep it. */
			temporary = vp_acl_view__new(acl->rules, &who, acl->gen);
			if (!temporary)
				return MOSQ_ERR_ACL_DENIED;
			view = temporary;
		}
	}

	struct vp_acl_result res;
	struct acl_cache *memo = (c && !temporary) ? c->acl_cache : NULL;
	if (memo && memo->memo_access == ed->access && !strcmp(memo->memo_topic, ed->topic)) {
		res = memo->memo;
	} else {
		vp_acl__decide(acl->rules, view, &who, (unsigned)ed->access, ed->topic, &res);
		size_t tl = strlen(ed->topic);
		if (memo && tl < sizeof(memo->memo_topic)) {
			memo->memo_access = ed->access;
			memo->memo = res;
			memcpy(memo->memo_topic, ed->topic, tl + 1);
		}
	}
	free(temporary);

	char cid[80], t[80];
	if (!res.allowed) {
		/* READ is checked per subscriber per message: not logged. */
		if (ed->access != MOSQ_ACL_READ)
			vp_log__audit(MOSQ_LOG_INFO, "acl", "deny", "client=%s access=%s topic=%s%s reason=rules",
			              vp_log__clean(who.client_id, cid, sizeof(cid)), access_name(ed->access),
			              vp_log__clean(ed->topic, t, sizeof(t)), will);
		return MOSQ_ERR_ACL_DENIED;
	}
	if (ed->access != MOSQ_ACL_WRITE)
		return MOSQ_ERR_SUCCESS;

	/* A bridge's envelopes are others': checked against their own signer. */
	struct veil__trust trust = { 0 };
	struct veil__credcache *cache = NULL;
	bool bridge = c && c->bridge;
	if (bridge)
		vp_bridge__trust(acl->ctx, &trust, &cache);
	struct vp_enforce_in in = {
		.topic = ed->topic,
		.payload = ed->payload,
		.len = ed->payloadlen,
		.retain = ed->retain,
		.attrs = res.attrs,
		.max_payload = acl->max_payload,
		.has_identity = c && c->has_identity,
		.sender_id = c ? c->sender_id : NULL,
		.device_pk = c ? c->device_pk : NULL,
		.bridge = bridge,
		.trust = bridge ? &trust : NULL,
		.credcache = cache,
	};
	enum vp_refuse why = vp_enforce__check(&in);
	if (why != VP_REFUSE_NONE) {
		vp_log__audit(MOSQ_LOG_NOTICE, "acl", "refuse", "client=%s topic=%s reason=%s retain=%d bytes=%u%s",
		              vp_log__clean(who.client_id, cid, sizeof(cid)), vp_log__clean(ed->topic, t, sizeof(t)),
		              vp_enforce__reason(why), ed->retain ? 1 : 0, (unsigned)ed->payloadlen, will);
		return MOSQ_ERR_ACL_DENIED;
	}
	return MOSQ_ERR_SUCCESS;
}

int vp_acl__check(struct vp_ctx *ctx, struct mosquitto_evt_acl_check *ed)
{
	struct vp_acl *acl = ctx ? ctx->acl : NULL;
	if (!acl || !ed || !ed->client)
		return MOSQ_ERR_ACL_DENIED;
	if (!acl->rules)
		return MOSQ_ERR_PLUGIN_DEFER;
	if (ed->access == MOSQ_ACL_UNSUBSCRIBE)
		return MOSQ_ERR_SUCCESS; /* leaving a subscription never widens access */
	if (!ed->topic)
		return MOSQ_ERR_ACL_DENIED;
	/* A client that has left is still in the registry for its Will, a
	 * WRITE; it never reads or subscribes again. */
	const char *cid = mosquitto_client_id(ed->client);
	/* A client the plugin no longer authorises gets nothing: not even what
	 * the names the broker reports would match (an offline session stays
	 * in the broker with its subscriptions, and must not queue). */
	if (vp_clients__refused(ctx->clients, ed->client, cid)) {
		char id[80], t[80];
		if (ed->access != MOSQ_ACL_READ)
			vp_log__audit(MOSQ_LOG_INFO, "acl", "deny", "client=%s access=%s topic=%s reason=unauthorised",
			              vp_log__clean(cid, id, sizeof(id)), access_name(ed->access),
			              vp_log__clean(ed->topic, t, sizeof(t)));
		return MOSQ_ERR_ACL_DENIED;
	}
	struct vp_client *c = ed->access == MOSQ_ACL_WRITE ? vp_clients__get_publisher(ctx->clients, ed->client, cid)
	                                                   : vp_clients__get(ctx->clients, ed->client);
	/* No entry: a client another mechanism logged in, or one that left
	 * long ago (a Will delayed past VP_DEPARTED_KEEP). A revoked client id
	 * is refused either way. */
	if (!c && vp_auth__client_id_revoked(ctx, cid)) {
		char id[80], t[80];
		if (ed->access != MOSQ_ACL_READ)
			vp_log__audit(MOSQ_LOG_INFO, "acl", "deny", "client=%s access=%s topic=%s reason=unauthorised",
			              vp_log__clean(cid, id, sizeof(id)), access_name(ed->access),
			              vp_log__clean(ed->topic, t, sizeof(t)));
		return MOSQ_ERR_ACL_DENIED;
	}
	/* Defence in depth: an entry is only ever the broker's client of the
	 * same id (logins drop stale entries of reused pointers, auth.c). */
	if (c && (!c->client_id || !cid || strcmp(c->client_id, cid) != 0))
		c = NULL;
	/* Veil's own topics: the plugin's rules (veil_topics.h), not the file's. */
	struct vp_vtopic_who vw = { cid, c && c->has_identity, c ? c->roles : NULL, ctx->admin_role };
	const char *vwhy = NULL;
	enum vp_vkind vkind = VP_VKIND_NONE;
	const char *vlevel = NULL;
	enum vp_vtopic vt = c && c->bridge ? vp_vtopic__bridge((unsigned)ed->access, ed->topic, ed->payloadlen,
	                                                       ed->retain, &vkind, &vlevel, &vwhy)
	                                   : vp_vtopic__decide(&vw, (unsigned)ed->access, ed->topic, ed->payloadlen,
	                                                       ed->retain, &vwhy);
	/* What a bridge forwards there must be the key service's, signed. */
	if (vt == VP_VTOPIC_ALLOW && vkind != VP_VKIND_NONE &&
	    (vwhy = vp_bridge__veil_payload(ctx, vkind, vlevel, ed->payload, ed->payloadlen)) != NULL) {
		char id[80], t[80];
		vp_log__audit(MOSQ_LOG_NOTICE, "acl", "refuse", "client=%s topic=%s reason=%s retain=%d bytes=%u",
		              vp_log__clean(cid, id, sizeof(id)), vp_log__clean(ed->topic, t, sizeof(t)), vwhy,
		              ed->retain ? 1 : 0, (unsigned)ed->payloadlen);
		return MOSQ_ERR_ACL_DENIED;
	}
	if (vt == VP_VTOPIC_ALLOW)
		return MOSQ_ERR_SUCCESS;
	if (vt == VP_VTOPIC_DENY) {
		char id[80], t[80];
		if (ed->access != MOSQ_ACL_READ)
			vp_log__audit(MOSQ_LOG_INFO, "acl", "deny", "client=%s access=%s topic=%s reason=%s",
			              vp_log__clean(cid, id, sizeof(id)), access_name(ed->access),
			              vp_log__clean(ed->topic, t, sizeof(t)), vwhy);
		return MOSQ_ERR_ACL_DENIED;
	}
	return check_client(acl, ed, c);
}

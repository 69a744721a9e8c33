/*
 * The ACL module's broker side: options, loading and hot reload of the rules
 * file (SIGHUP and mtime/size/inode polling, atomic swap, a broken file keeps
 * the old rules), per-client views cached in vp_client.acl_cache and
 * invalidated by a generation counter, the ACL_CHECK decision, envelope
 * enforcement on WRITE and the audit lines. The pure logic lives in
 * topic.c, acl_rules.c, acl_decide.c and enforce.c.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "acl_decide.h"
#include "enforce.h"
#include "plugin_private.h"

#define DEFAULT_POLL_INTERVAL 1

struct file_id {
	bool valid;
	dev_t dev;
	ino_t ino;
	off_t size;
	struct timespec mtime;
	struct timespec ctime;
};

struct vp_acl {
	char *path;                 /* NULL: no rules file, every check is deferred */
	size_t max_bytes;
	long poll_interval;         /* seconds; 0 disables polling */
	size_t max_payload;         /* 0: no limit */
	struct vp_acl_rules *rules;
	uint64_t gen;
	struct file_id seen;        /* file identity at the last load attempt */
	time_t next_poll;
};

static const char *const option_keys[] = {
	"acl_file",             /* path of the rules file (Mosquitto acl_file syntax + extensions) */
	"acl_poll_interval",    /* seconds between change checks, 0 = only SIGHUP (default 1) */
	"acl_max_file_bytes",   /* refuse larger rules files (default 64 MiB) */
	"max_payload",          /* refuse PUBLISH payloads larger than this (default 0 = no limit) */
};

bool vp_acl__option_known(const char *key)
{
	for (size_t i = 0; key && i < sizeof(option_keys) / sizeof(option_keys[0]); i++) {
		if (!strcmp(key, option_keys[i]))
			return true;
	}
	return false;
}

static bool parse_size(const char *s, unsigned long long max, unsigned long long *out)
{
	if (!s || !*s || *s == '-')
		return false;
	char *end = NULL;
	errno = 0;
	unsigned long long v = strtoull(s, &end, 10);
	if (errno || !end || *end || v > max)
		return false;
	*out = v;
	return true;
}

static struct file_id file_id_of(const char *path)
{
	struct file_id id = { 0 };
	struct stat st;
	if (path && stat(path, &st) == 0) {
		id.valid = true;
		id.dev = st.st_dev;
		id.ino = st.st_ino;
		id.size = st.st_size;
		id.mtime = st.st_mtim;
		id.ctime = st.st_ctim;
	}
	return id;
}

static bool file_id_equal(const struct file_id *a, const struct file_id *b)
{
	return a->valid == b->valid && a->dev == b->dev && a->ino == b->ino && a->size == b->size &&
	       a->mtime.tv_sec == b->mtime.tv_sec && a->mtime.tv_nsec == b->mtime.tv_nsec &&
	       a->ctime.tv_sec == b->ctime.tv_sec && a->ctime.tv_nsec == b->ctime.tv_nsec;
}

/* Load the file into a new rule set and swap it in; the old one stays on
 * any error. Caches built for the old set are dropped lazily (gen). */
static int load(struct vp_acl *acl, const char *why)
{
	/* Identity first: a change after this point triggers another reload. */
	acl->seen = file_id_of(acl->path);
	struct vp_acl_rules *r = NULL;
	char err[300];
	char p[80];
	if (vp_acl_rules__load(acl->path, acl->max_bytes, &r, err, sizeof(err)) != 0) {
		vp_log__audit(MOSQ_LOG_ERR, "acl", "load-failed", "why=%s kept=%s error=%s", why,
		              acl->rules ? "old-rules" : "none", err);
		return MOSQ_ERR_INVAL;
	}
	vp_acl_rules__free(&acl->rules);
	acl->rules = r;
	acl->gen++;
	vp_log__audit(MOSQ_LOG_NOTICE, "acl", "loaded",
	              "why=%s file=%s rules=%zu users=%zu roles=%zu patterns=%zu protected=%s generation=%llu", why,
	              vp_log__clean(acl->path, p, sizeof(p)), r->nrules, r->nusers, r->nroles, r->npatterns,
	              r->has_attrs ? "yes" : "no", (unsigned long long)acl->gen);
	return MOSQ_ERR_SUCCESS;
}

int vp_acl__new(struct vp_ctx *ctx, struct mosquitto_opt *opts, int count, struct vp_acl **out)
{
	(void)ctx;
	struct vp_acl *acl = calloc(1, sizeof(*acl));
	if (!acl)
		return MOSQ_ERR_NOMEM;
	acl->max_bytes = VP_ACL_DEFAULT_MAX_BYTES;
	acl->poll_interval = DEFAULT_POLL_INTERVAL;
	int rc = MOSQ_ERR_SUCCESS;
	for (int i = 0; i < count && rc == MOSQ_ERR_SUCCESS; i++) {
		const char *k = opts[i].key, *v = opts[i].value;
		unsigned long long n = 0;
		if (!k)
			continue;
		if (!strcmp(k, "acl_file")) {
			free(acl->path);
			acl->path = (v && *v) ? strdup(v) : NULL;
			if (!acl->path)
				rc = (v && *v) ? MOSQ_ERR_NOMEM : MOSQ_ERR_INVAL;
		} else if (!strcmp(k, "acl_poll_interval")) {
			if (parse_size(v, 86400, &n))
				acl->poll_interval = (long)n;
			else
				rc = MOSQ_ERR_INVAL;
		} else if (!strcmp(k, "acl_max_file_bytes")) {
			if (parse_size(v, (unsigned long long)1 << 40, &n) && n > 0)
				acl->max_bytes = (size_t)n;
			else
				rc = MOSQ_ERR_INVAL;
		} else if (!strcmp(k, "max_payload")) {
			if (parse_size(v, 268435455ULL, &n))
				acl->max_payload = (size_t)n;
			else
				rc = MOSQ_ERR_INVAL;
		}
		if (rc == MOSQ_ERR_INVAL)
			vp_log__audit(MOSQ_LOG_ERR, "acl", "init-failed", "reason=bad-value option=plugin_opt_%s", k);
	}
	if (rc == MOSQ_ERR_SUCCESS && acl->path)
		rc = load(acl, "init"); /* a broken file at start refuses to start: fail closed */
	if (rc == MOSQ_ERR_SUCCESS && !acl->path)
		vp_log__audit(MOSQ_LOG_WARNING, "acl", "no-rules-file",
		              "decision=defer (Mosquitto's acl_file decides; without one every check is denied)");
	if (rc != MOSQ_ERR_SUCCESS) {
		vp_acl__free(&acl);
		return rc;
	}
	*out = acl;
	return MOSQ_ERR_SUCCESS;
}

void vp_acl__free(struct vp_acl **ap)
{
	if (!ap || !*ap)
		return;
	vp_acl_rules__free(&(*ap)->rules);
	free((*ap)->path);
	free(*ap);
	*ap = NULL;
}

void vp_acl__client_cache_free(void *cache)
{
	free(cache);
}

int vp_acl__reload(struct vp_ctx *ctx)
{
	if (!ctx || !ctx->acl || !ctx->acl->path)
		return MOSQ_ERR_SUCCESS;
	return load(ctx->acl, "reload");
}

void vp_acl__tick(struct vp_ctx *ctx, time_t now)
{
	struct vp_acl *acl = ctx ? ctx->acl : NULL;
	if (!acl || !acl->path || acl->poll_interval <= 0 || now < acl->next_poll)
		return;
	acl->next_poll = now + acl->poll_interval;
	struct file_id id = file_id_of(acl->path);
	if (!file_id_equal(&id, &acl->seen))
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

	struct vp_client *c = vp_clients__get(ctx->clients, ed->client);
	struct vp_acl_who who = {
		c ? c->client_id : mosquitto_client_id(ed->client),
		c ? c->username : mosquitto_client_username(ed->client),
		(c && c->roles[0]) ? c->roles : NULL,
	};
	struct vp_acl_view *view = c ? c->acl_cache : NULL;
	bool temporary = false;
	if (!view || ((struct vp_acl_view *)view)->gen != acl->gen) {
		struct vp_acl_view *fresh = vp_acl_view__new(acl->rules, &who, acl->gen);
		if (!fresh)
			return MOSQ_ERR_ACL_DENIED; /* fail closed */
		if (c) {
			vp_acl__client_cache_free(c->acl_cache);
			c->acl_cache = fresh;
		} else {
			temporary = true; /* not in the registry: no place to keep it */
		}
		view = fresh;
	}

	struct vp_acl_result res;
	vp_acl__decide(acl->rules, view, &who, (unsigned)ed->access, ed->topic, &res);
	if (temporary)
		free(view);

	char cid[80], t[80];
	if (!res.allowed) {
		/* READ is checked per subscriber per message: not logged. */
		if (ed->access != MOSQ_ACL_READ)
			vp_log__audit(MOSQ_LOG_INFO, "acl", "deny", "client=%s access=%s topic=%s",
			              vp_log__clean(who.client_id, cid, sizeof(cid)), access_name(ed->access),
			              vp_log__clean(ed->topic, t, sizeof(t)));
		return MOSQ_ERR_ACL_DENIED;
	}
	if (ed->access != MOSQ_ACL_WRITE)
		return MOSQ_ERR_SUCCESS;

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
	};
	enum vp_refuse why = vp_enforce__check(&in);
	if (why != VP_REFUSE_NONE) {
		vp_log__audit(MOSQ_LOG_NOTICE, "acl", "refuse", "client=%s topic=%s reason=%s retain=%d bytes=%u",
		              vp_log__clean(who.client_id, cid, sizeof(cid)), vp_log__clean(ed->topic, t, sizeof(t)),
		              vp_enforce__reason(why), ed->retain ? 1 : 0, (unsigned)ed->payloadlen);
		return MOSQ_ERR_ACL_DENIED;
	}
	return MOSQ_ERR_SUCCESS;
}

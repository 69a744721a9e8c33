/*
 * The relay of runtime revocations between the nodes of a deployment (see
 * relay.h): records out when this node's runtime list grows, records in
 * from the bridges into this node's runtime file.
 */
#include <stdio.h>
#include <string.h>

#include <mosquitto.h>
#include <mosquitto_broker.h>
#include <mosquitto_plugin.h>

#include "veil/error.h"
#include "auth_private.h"
#include "plugin_private.h"
#include "relay.h"
#include "revoke.h"

/* Retained at QoS 1 (every node keeps the records, for the bridges that
 * reconnect later); clear: the zero-length retained publish that deletes it. */
static void publish(const uint8_t *cred, const char *client, bool clear)
{
	char topic[VP_RELAY_TOPIC_MAX];
	char line[VEIL_CLIENT_ID_MAX + 16], shown[VEIL_CLIENT_ID_MAX + 16], clean[80];
	if (!vp_relay__topic(cred, client, topic, sizeof(topic)))
		return;
	vp_relay__entry_text(cred, client, ' ', line, sizeof(line));
	vp_relay__entry_text(cred, client, ':', shown, sizeof(shown));
	int rc = mosquitto_broker_publish_copy(NULL, topic, clear ? 0 : (int)strlen(line), clear ? NULL : line, 1,
	                                       true, NULL);
	vp_log__audit(rc == MOSQ_ERR_SUCCESS ? MOSQ_LOG_NOTICE : MOSQ_LOG_WARNING, "relay", clear ? "clear" : "publish",
	              "entry=%s%s", vp_log__clean(shown, clean, sizeof(clean)), rc == MOSQ_ERR_SUCCESS ? "" : " failed=yes");
}

struct diff {
	const struct vp_revoke *other;
	bool clear;
};

static void each_missing(void *arg, const uint8_t *cred, const char *client)
{
	struct diff *d = arg;
	bool in_other = cred ? vp_revoke__credential(d->other, cred) : vp_revoke__client(d->other, client);
	if (!in_other)
		publish(cred, client, d->clear);
}

static void changed(struct vp_auth *a, const struct vp_revoke *old, const struct vp_revoke *new_list)
{
	if (!a || !a->started || a->relay_applying || !old)
		return;
	struct diff added = { old, false }, dropped = { new_list, true };
	vp_revoke__each(new_list, each_missing, &added);
	vp_revoke__each(old, each_missing, &dropped);
}

void vp_relay__attach(struct vp_ctx *ctx)
{
	if (ctx && ctx->auth)
		ctx->auth->runtime_revocations_changed = changed;
}

void vp_relay__tick(struct vp_ctx *ctx)
{
	struct vp_auth *a = ctx ? ctx->auth : NULL;
	if (!a || !a->started || a->relay_synced)
		return;
	a->relay_synced = true;
	struct diff all = { NULL, false };
	vp_revoke__each(a->revoke_rt, each_missing, &all);
}

/* This node's runtime list plus rec, written as the admin API writes it. */
static int apply(struct vp_auth *a, const struct vp_revoke *rec, char *err, size_t errlen)
{
	int rc = vp_auth__runtime_current(a, VP_RUNTIME_REVOCATIONS, err, errlen);
	struct vp_revoke *all = NULL;
	if (rc == VEIL_OK)
		rc = vp_revoke__merge(a->revoke_rt, rec, &all);
	size_t len = 0;
	char *text = rc == VEIL_OK ? vp_revoke__format(all, "# Written by mosquitto_veil.so: the admin API's "
	                                                    "revocations and those relayed from the deployment's other "
	                                                    "nodes; read in addition to the operator's file.",
	                                               &len)
	                           : NULL;
	if (rc == VEIL_OK && !text)
		rc = VEIL_ERR_NOMEM;
	if (rc == VEIL_OK) {
		a->relay_applying = true;
		rc = vp_auth__runtime_write(a, VP_RUNTIME_REVOCATIONS, text, len, err, errlen);
		a->relay_applying = false;
	}
	free(text);
	vp_revoke__free(&all);
	if (rc == VEIL_OK)
		a->sweep_now = true; /* connected clients it names go at the next TICK */
	return rc;
}

int vp_relay__message(struct vp_ctx *ctx, struct mosquitto_evt_message *ed)
{
	static const size_t plen = sizeof(VP_RELAY_PREFIX) - 1;
	if (!ed || !ed->topic || strncmp(ed->topic, VP_RELAY_PREFIX, plen) != 0)
		return MOSQ_ERR_SUCCESS;
	if (ed->payloadlen == 0)
		return MOSQ_ERR_SUCCESS; /* a record cleared on its node: removals stay per node */
	struct vp_auth *a = ctx->auth;
	const char *cid = mosquitto_client_id(ed->client);
	char id[80], t[120], clean[80];
	vp_log__clean(cid, id, sizeof(id));
	/* Only nodes: a declared bridge's login, or this node's own outgoing
	 * bridge (no login here, no registry entry). A client never gets here
	 * while the rules file decides Veil's topics (veil_topics.c). */
	const struct vp_client *c = vp_clients__get(ctx->clients, ed->client);
	if ((c && !c->bridge) || !vp_acl__enforcing(ctx)) {
		vp_log__audit(MOSQ_LOG_WARNING, "relay", "refuse", "client=%s topic=%s reason=not-a-node", id,
		              vp_log__clean(ed->topic, t, sizeof(t)));
		return MOSQ_ERR_ACL_DENIED;
	}
	struct vp_revoke *rec = NULL;
	struct vp_relay_entry e;
	const char *why = vp_relay__parse(ed->topic + plen, ed->payload, ed->payloadlen, &e, &rec);
	if (why) {
		vp_log__audit(MOSQ_LOG_WARNING, "relay", "refuse", "client=%s topic=%s reason=%s", id,
		              vp_log__clean(ed->topic, t, sizeof(t)), why);
		return MOSQ_ERR_ACL_DENIED;
	}
	char shown[VEIL_CLIENT_ID_MAX + 16];
	vp_relay__entry_text(e.is_cred ? e.cred : NULL, e.client, ':', shown, sizeof(shown));
	vp_log__clean(shown, clean, sizeof(clean));
	/* Already revoked here (either file): nothing to write. */
	if (e.is_cred ? vp_revoke__credential(a->revoke, e.cred) : vp_revoke__client(a->revoke, e.client)) {
		vp_revoke__free(&rec);
		return MOSQ_ERR_SUCCESS;
	}
	char err[300] = "";
	int rc = a->state_dir ? apply(a, rec, err, sizeof(err)) : VEIL_ERR_INVAL;
	vp_revoke__free(&rec);
	if (rc == VEIL_OK)
		vp_log__audit(MOSQ_LOG_NOTICE, "relay", "apply", "entry=%s from=%s", clean, id);
	else
		vp_log__audit(MOSQ_LOG_WARNING, "relay", "apply-failed", "entry=%s from=%s error=%s", clean, id,
		              a->state_dir ? err : "no plugin_opt_state_dir: nowhere to keep it");
	return MOSQ_ERR_SUCCESS;
}

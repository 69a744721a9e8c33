/*
 * The relay: one path for a runtime revocation to every node of a
 * deployment (docs/SCALING.md, "One path for a revocation"). The admin API
 * ($CONTROL/veil/v1) reaches the one node HAProxy sends the admin to; each
 * node keeps its own runtime revocation file (<state_dir>/revocations).
 *
 * Every entry that appears in a node's runtime file (a revocation through
 * the admin API, or an edit of the file) is published by that node's plugin
 * as a retained record
 *
 *   $veil/v1/revoked/credential/<32 hex>   payload "credential <32 hex>"
 *   $veil/v1/revoked/client/<hex of id>    payload "client <client id>"
 *
 * which the bridges carry ($veil/v1/# both) to every node. Each node's
 * plugin adds a record it receives to its own runtime file, exactly as the
 * admin API would (written atomically, loaded, connected clients kicked at
 * the next TICK), and veil-keyd reads the runtime file of the node whose
 * machine it runs on (its runtime_revocation_file): the rekey and the signed
 * statement then reach every device. A node that was down gets the records
 * it missed as retained messages when its bridge reconnects; after a start
 * a node publishes its whole runtime list once, for what its bridge had not
 * forwarded before it stopped.
 *
 * Records only add: a removal (removeRevocation, an edit) stays on its node
 * and clears the retained record there (a zero-length retained publish,
 * carried like the record), so a reconnecting bridge does not bring it
 * back. A record comes only from a node: no client may publish, read or
 * subscribe to these topics (veil_topics.c); a declared bridge may forward
 * them, a record whose payload is not the entry its topic names is refused
 * (bridge.c); on arrival over a node's own outgoing bridge Mosquitto asks
 * the plugin nothing but the MESSAGE event, where the same check is made.
 */
#ifndef VP_RELAY_H
#define VP_RELAY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"

struct vp_auth;
struct vp_ctx;
struct vp_revoke;
struct mosquitto_evt_message;

#define VP_RELAY_PREFIX "$veil/v1/revoked/"

/* At init, once the auth module exists: from then on, when the runtime list
 * goes from old to new (auth_config.c; old NULL at the first load), a
 * record for each entry new adds and a clearing for each entry it drops.
 * Nothing before the plugin has started, nor while the relay is itself
 * writing the file (the record came from the deployment). */
void vp_relay__attach(struct vp_ctx *ctx);

/* TICK: once after a start, a record for every runtime entry. */
void vp_relay__tick(struct vp_ctx *ctx);

/* MOSQ_EVT_MESSAGE: a record from another node goes into this node's
 * runtime file. MOSQ_ERR_SUCCESS for every other message (one prefix
 * compare), MOSQ_ERR_ACL_DENIED for a malformed record or one from a client
 * that is not a node (then neither stored nor forwarded; Mosquitto 2.0.11
 * may also close that connection: only a client of a node without a rules
 * file gets here, or a node that forwards a record no plugin wrote). */
int vp_relay__message(struct vp_ctx *ctx, struct mosquitto_evt_message *ed);

/* relay_record.c (no broker calls): the records themselves. */

/* Room for any record's topic, with its NUL. */
#define VP_RELAY_TOPIC_MAX (sizeof(VP_RELAY_PREFIX) + sizeof("credential/") + 2 * VEIL_CLIENT_ID_MAX)

/* One entry as a record carries it. */
struct vp_relay_entry {
	bool is_cred;
	uint8_t cred[VEIL_CREDENTIAL_ID_BYTES];
	char line[VEIL_CLIENT_ID_MAX + 16]; /* "credential <hex>" or "client <id>" */
	const char *client;                 /* in line, for a client entry */
};

/* The record topic of one entry (cred, else client): false when it has
 * none (a client id empty or longer than VEIL_CLIENT_ID_MAX) or out is too
 * small (VP_RELAY_TOPIC_MAX always suffices). */
bool vp_relay__topic(const uint8_t *cred, const char *client, char *out, size_t len);
/* The entry as its file line, "credential<sep><hex>" or "client<sep><id>":
 * sep ' ' is the record's payload, ':' an audit value. */
void vp_relay__entry_text(const uint8_t *cred, const char *client, char sep, char *out, size_t len);
/* A record that arrived: payload (len bytes, any bytes) must be exactly one
 * entry as vp_relay__entry_text writes it, "credential <32 lower-case hex>"
 * or "client <client id>" (the revocation file's rule for names), and level
 * (the topic after VP_RELAY_PREFIX) must be that entry's own. NULL with *e filled and *out a
 * list of exactly that entry (the caller frees it), else the reason
 * ("relay-malformed", "relay-topic-mismatch") and *out NULL. */
const char *vp_relay__parse(const char *level, const void *payload, size_t len, struct vp_relay_entry *e,
                            struct vp_revoke **out);
/* vp_relay__parse's verdict alone (bridge.c, at the ACL check). */
const char *vp_relay__check(const char *level, const void *payload, size_t len);

#endif

/*
 * The operator's console fixture (opsfx_), shared by
 * tests/broker/check_plugin_control.c, check_plugin_metrics.c and
 * check_cli_ctl.c: the libveil client fixture's files (authority, keyring),
 * devices with roles (admin-1 and admin-2 with veil-admin, dev-1 and dev-2
 * with sensor), a rules file, the operator's password file (prometheus, a
 * metrics reader) and revocation file, a state dir, and a real Mosquitto
 * with mosquitto_veil.so; admin sessions through libveil (the synchronous
 * client) that send JSON to $CONTROL/veil/v1 and wait for the response.
 */
#ifndef VEIL_TEST_OPS_FIXTURE_H
#define VEIL_TEST_OPS_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>

#include <cjson/cJSON.h>

#include "veil/client.h"
#include "client_fixture.h"

/* Sensors publish their own topics sealed; the metrics reader reads $SYS. */
#define OPSFX_ACL                                                                                  \
	"pattern readwrite,encrypted sensors/%c/#\n"                                               \
	"user prometheus\n"                                                                        \
	"topic read $SYS/broker/veil/#\n"
#define OPSFX_METRICS_USER "prometheus"
#define OPSFX_METRICS_PASSWORD "scrape-me"

struct opsfx {
	struct cfx c;               /* dir, authority, broker, uri */
	char auth_pub[400], acl[400], passwd[400], revoked[400], state[400];
	char ctl_keyring[400];      /* policy $CONTROL/veil/v1/# plaintext */
	char port[16];
	char extra[2048];           /* the broker config's tail, kept for restarts */
};

/* Files, devices and a broker: plugin with authority, rules, password and
 * revocation files, state dir, sys_interval 1; extra is appended. */
void opsfx_setup(struct opsfx *f, const char *extra);
void opsfx_teardown(struct opsfx *f);
/* <dir>/name */
void opsfx_path(const struct opsfx *f, const char *name, char *out, size_t cap);

/* A libveil client logged in as stem (a device of the fixture: token
 * login), or as a password user (its client id the user). */
struct opsfx_session {
	struct veil_client *c;
	struct cfx_sink sink;
	struct cfx_opts fo;
	char client_id[64];
};
/* Connected (asserted); subscribed to the response topic when subscribe
 * (SUBACK asserted granted). keyring: the session's keyring (NULL: the
 * fixture's ctl keyring, plaintext on $CONTROL/veil/v1 only). */
void opsfx_open(struct opsfx *f, struct opsfx_session *s, const char *stem, bool subscribe);
void opsfx_open_keyring(struct opsfx *f, struct opsfx_session *s, const char *stem, const char *keyring);
void opsfx_open_password(struct opsfx *f, struct opsfx_session *s, const char *user, const char *password);
void opsfx_close(struct opsfx_session *s);
/* SUBSCRIBE at QoS 1 and wait for the SUBACK: VEIL_OK, or VEIL_ERR_AUTH
 * when refused. */
int opsfx_subscribe(struct opsfx_session *s, const char *filter);
/* PUBLISH at QoS 1 and wait for its acknowledgement: the completion's
 * veil_err, *reason the PUBACK's MQTT 5 reason code. */
int opsfx_publish(struct opsfx_session *s, const char *topic, const void *payload, size_t len, int *reason);
/* opsfx_publish to $CONTROL/veil/v1. */
int opsfx_send(struct opsfx_session *s, const char *payload, size_t len, int *reason);
bool opsfx_connected(struct opsfx_session *s);
/* Wait until libveil reported s's connection lost (the broker's DISCONNECT
 * of a kick, or its closing the connection); false after base_ms (scaled). */
bool opsfx_gone(struct opsfx_session *s, int base_ms);
/* Send, then wait for the next response (asserted within 10 s): its parsed
 * tree (cJSON_Delete it). */
cJSON *opsfx_call(struct opsfx_session *s, const char *payload);
/* opsfx_call of one command: the "responses" element (in *tree, delete it). */
const cJSON *opsfx_one(struct opsfx_session *s, const char *payload, cJSON **tree);
/* Whether no response arrives within base_ms (scaled) after a marker: the
 * marker is a getCounters sent by admin, whose response must come first. */
bool opsfx_no_response(struct opsfx_session *admin, size_t seen_before);

/* One login and out: VEIL_OK, or the connect's error (VEIL_ERR_AUTH when
 * the broker refused it). A device of the fixture (token), or a password. */
int opsfx_login_rc(struct opsfx *f, const char *stem);
int opsfx_password_rc(struct opsfx *f, const char *user, const char *password);

/* The plain-text value of the field of a response object ("" if absent). */
const char *opsfx_str(const cJSON *o, const char *name);
/* The error reason of a response (NULL when it succeeded). */
const char *opsfx_reason(const cJSON *resp);

#endif

/*
 * The plugin-authentication fixture, shared by
 * tests/broker/check_plugin_auth*.c: one environment per test (auth_env, the
 * module's one global: a temp dir with an authority, a stranger authority
 * and a device identity, the password file (alice/wonderland,
 * bob/builder), an empty revocation list, a real broker with
 * mosquitto_veil.so), Paho MQTT 3.1.1/5 clients (auth_pc_), one-shot logins
 * and audit-log expectations.
 */
#ifndef VEIL_TEST_AUTH_ENV_H
#define VEIL_TEST_AUTH_ENV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <MQTTClient.h>

#include "veil/veil.h"
#include "broker.h"

/* CONNACK codes Mosquitto 2.0.11 sends for MOSQ_ERR_AUTH. */
#define V3_NOT_AUTHORIZED 5
#define V5_NOT_AUTHORIZED 135
#define V5_BAD_AUTH_METHOD 140

struct auth_env {
	char dir[256];
	char authority_pub[300], passwd[300], revoked[300];
	struct veil_identity *authority, *stranger, *device;
	struct test_broker b;
	char uri[64];
};
extern struct auth_env auth_env;

/* Fresh environment and broker; extra is appended to the broker config. */
void auth_env_start(const char *extra);
/* The same in two steps: the environment (dir, identities, files), so a
 * test can put more files in auth_env.dir; then the broker. */
void auth_env_prepare(void);
void auth_env_launch(const char *extra);
/* auth_env_start with an ACL file (<dir>/acl, plugin_opt_acl_file) of these rules. */
void auth_env_start_acl(const char *rules, const char *extra);
void auth_env_stop(void);
/* <auth_env.dir>/name into out. */
void auth_env_path(char *out, size_t cap, const char *name);
/* Write a file the broker reads (mode 0644), failing the test otherwise. */
void auth_env_write(const char *path, const char *text);
/* Mosquitto's own password_file (made by mosquitto_passwd) with one user,
 * at <dir>/mosquitto.passwd; its path in out. */
void auth_env_mosquitto_passwd(char *out, size_t cap, const char *user, const char *password);

/* The usual login: a fresh token for client_id from the trusted authority,
 * for auth_env.device (role "sensor"). Returns its length. */
size_t auth_good_token(const char *client_id, uint8_t tok[VEIL_TOKEN_MAX]);
/* A token for client_id dated now + skew_s, for auth_env.device, whose
 * credential (valid an hour) authority signed with roles (may be NULL). */
size_t auth_token(const struct veil_identity *authority, const char *client_id, const char *roles, int64_t skew_s,
                  uint8_t tok[VEIL_TOKEN_MAX]);
/* An MQTT 5 enhanced-auth login over a raw socket (tests/support/raw_mqtt.h)
 * with a fresh token from the trusted authority, that stays connected:
 * its fd (CONNACK 0 asserted). persistent / expiry: clean start off,
 * Session Expiry Interval in seconds (0: none). */
int auth_raw_keep5(const char *client_id, const char *roles, bool persistent, uint32_t expiry);

/* ---- Paho clients ---- */

struct auth_pc {
	MQTTClient c;
	int version;
	atomic_int lost;
};

void auth_pc_create(struct auth_pc *p, const char *cid, int version);
/* MQTT 3.1.1 CONNECT; returns the CONNACK code (0 = accepted). */
int auth_pc_connect3(struct auth_pc *p, const char *cid, const char *user, const char *pw);
/* MQTT 5 CONNECT, with the Authentication Method (and Data when tok is set). */
int auth_pc_connect5(struct auth_pc *p, const char *cid, const char *user, const char *pw, const char *method,
                     const uint8_t *tok, size_t tok_len);
void auth_pc_close(struct auth_pc *p);
/* Wait until the broker drops p (true) or base_ms (scaled) passes (false). */
bool auth_pc_wait_lost(struct auth_pc *p, int base_ms);
/* A SUBSCRIBE round trip: true when the broker still serves p and has
 * handled everything before (a kick decided earlier would have closed it). */
bool auth_pc_alive(struct auth_pc *p);

/* One-shot logins: connect, close, return the CONNACK code. Paho sometimes
 * reports a refused CONNECT as a bare failure (-1) when the broker closes
 * right after its CONNACK; such an attempt is retried once, so every
 * assertion is on a real CONNACK code. */
int auth_login3(const char *cid, const char *user, const char *pw);
int auth_login5(const char *cid, const char *user, const char *pw);
int auth_login5_token(const char *cid, const uint8_t *tok, size_t n);

/* The broker log has needle / gets it within 5 s (scaled), or the test fails. */
bool auth_log_has(const char *needle);
void auth_expect_log(const char *needle);

#endif

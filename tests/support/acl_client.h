/*
 * The plugin-ACL fixture, shared by tests/broker/check_plugin_acl*.c:
 *   acl_pc_   a real Paho MQTTClient (MQTT 5) that records what it receives
 *             and the PUBACK and SUBACK reason codes the broker returns;
 *   acl_env_  the files the plugin's authentication needs (an authority,
 *             a password file) and brokers with the plugin or with
 *             Mosquitto's built-in acl_file.
 */
#ifndef VEIL_TEST_ACL_CLIENT_H
#define VEIL_TEST_ACL_CLIENT_H

#include <pthread.h>
#include <stdbool.h>

#include <MQTTClient.h>

#include "veil/identity.h"
#include "broker.h"

#define ACL_PC_MAX_MSGS 512

struct acl_pc_msg {
	char topic[128];
	char payload[64];
	int retained;
};

struct acl_pc {
	MQTTClient c;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	struct acl_pc_msg msgs[ACL_PC_MAX_MSGS];
	int nmsgs;
	int acks;           /* PUBACKs received */
	int last_rc;        /* reason code of the last PUBACK */
	int bad_acks;       /* PUBACKs with a reason >= 0x80 */
	bool lost;
	int ntotal;         /* every message received, even past ACL_PC_MAX_MSGS */
	const char *watch;  /* topic prefix counted in nwatch (may be NULL) */
	int nwatch;
	char last_topic[128]; /* of the last message received */
};

/* Connect with MQTT 5 as id. user may be NULL; pass NULL means "pw-<user>"
 * (the password acl_env_init gives every user). will_topic (may be NULL)
 * sets a QoS 1 Will, sent will_delay seconds after the connection ends (MQTT
 * 5 Will Delay Interval; 0: at once). Returns the CONNACK reason code (0 =
 * accepted). */
int acl_pc_connect_will_delay(struct acl_pc *p, int port, const char *id, const char *user, const char *pass,
                              const char *will_topic, const void *will_payload, int will_len, int will_retain,
                              int will_delay);
int acl_pc_connect_will(struct acl_pc *p, int port, const char *id, const char *user, const char *pass,
                        const char *will_topic, const void *will_payload, int will_len, int will_retain);
int acl_pc_connect(struct acl_pc *p, int port, const char *id, const char *user);
/* SUBACK reason: 0/1/2 granted QoS, >= 0x80 refused. */
int acl_pc_sub(struct acl_pc *p, const char *filter, int qos);
/* Subscribe to n (<= 32) filters in one SUBSCRIBE (one round trip);
 * no_local: do not receive our own publications. */
void acl_pc_sub_many(struct acl_pc *p, const char *const *filters, int n, bool no_local);
/* Publish; for QoS 1 wait for the PUBACK (5 s, scaled) and return its
 * reason code (-1: none came). */
int acl_pc_pub(struct acl_pc *p, const char *topic, const void *payload, int len, int qos, int retain);
/* Wait until at least n messages arrived or base_ms (scaled) passed; returns the count. */
int acl_pc_wait(struct acl_pc *p, int n, int base_ms);
/* Wait until at least n messages on topic arrived; false after base_ms (scaled). */
bool acl_pc_wait_topic(struct acl_pc *p, const char *topic, int n, int base_ms);
/* Wait until the last message received was on topic (a publisher's
 * marker: everything it sent before has arrived); false after base_ms. */
bool acl_pc_wait_last(struct acl_pc *p, const char *topic, int base_ms);
/* A SUBSCRIBE round trip on p's connection. The broker sends what it
 * queued for p before the SUBACK, and Paho runs the message callback for
 * each before it reads the SUBACK: on return, every message the broker had
 * routed to p (while fewer than Mosquitto's 20 in flight) was counted.
 * For "this must not arrive" checks. */
void acl_pc_sync(struct acl_pc *p);
/* Messages received on topic (NULL: all kept). */
int acl_pc_count(struct acl_pc *p, const char *topic);
void acl_pc_close(struct acl_pc *p);

/* Files the plugin's authentication needs: an authority (for credential
 * logins), and a password file where every user has password "pw-<user>". */
struct acl_env {
	char dir[256];
	char passwd[300];
	char authority_pub[300];
	struct veil_identity *authority;
};

/* users: NULL-terminated. */
void acl_env_init(struct acl_env *e, const char *const *users);
void acl_env_free(struct acl_env *e);
/* Broker with the plugin (authentication + the rules file acl_path);
 * anonymous clients are allowed by the plugin, users log in with the
 * password file, devices with credential tokens. extra is appended. */
void acl_env_start_plugin(struct acl_env *e, struct test_broker *b, const char *acl_path, const char *extra);
/* Broker with Mosquitto's built-in acl_file (anonymous allowed). */
void acl_start_builtin(struct test_broker *b, const char *acl_path);

#endif

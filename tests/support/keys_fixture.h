/*
 * The key-service fixture (kfx_), shared by tests/broker/check_keyd_e2e.c,
 * check_keyd_device_e2e.c and check_cli_keyd.c:
 * everything real. A Mosquitto with the Veil plugin (authority, ACL,
 * revocation file), a veil-keyd child process (its own identity and
 * credential with the role veil-keyd, token login, one %c scope), and
 * devices provisioned with an identity, a credential and the authority's
 * public key only: no keyring file anywhere (key_service auto).
 *
 * The devices run on the front ends of the client session core: libveil's
 * veil_client_* and veil_async_* in the test process (kfx_lv), and
 * libveil_preload.so under small Paho programs with no Veil code (kfx_app):
 * this test binary run with "--app sync|nocb|async", an MQTTClient program
 * with callbacks, one without (Paho's synchronous mode, as Paho's
 * MQTTClient_publish sample) and an MQTTAsync program. The programs publish
 * on command, one line per command on a FIFO, and print what happened.
 *
 * The ACL: every device reads and writes factory/<its client id>/#
 * (encrypted); the role "dashboard" reads factory/#. keyd's scope is
 * factory/%c/#, so each device has its own instance and a dashboard
 * receives every instance's keys.
 */
#ifndef VEIL_TEST_KEYS_FIXTURE_H
#define VEIL_TEST_KEYS_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <check.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "broker.h"

#define KFX_SCOPE "factory/%c/#"
/* The scope's grace (accept-until after send-until): how long a message
 * under a key not held yet waits (docs/KEYS.md). keyd wants it >= twice
 * its token window, which the fixture sets to 5 s. */
#define KFX_GRACE_S 10

/* The front ends: libveil sync and async, the preload under an MQTTClient
 * program with callbacks, under an MQTTAsync program, and under an
 * MQTTClient program without callbacks. */
enum kfx_fe { KFX_SYNC, KFX_ASYNC, KFX_PSYNC, KFX_PASYNC, KFX_PNOCB, KFX_N };
extern const char *const kfx_name[KFX_N];
/* Each front end's own device (client id). */
extern const char *const kfx_id[KFX_N];

struct kfx {
	char dir[256];
	struct test_broker broker;
	char uri[64];
	struct veil_identity *authority;
	char authority_pub[320], keyd_conf[320], keyd_log[320], db[320];
	pid_t keyd;
};
extern struct kfx kfx_env;

/* main(): the program when argv[1] is "--app" (returns its exit status),
 * else -1 after remembering this binary's path. */
int kfx_main(int argc, char **argv);
/* The whole main() of a test program: the program, or the suite run. */
int kfx_run(int argc, char **argv, Suite *(*suite)(void));

/* Checked fixtures: material, the broker, keyd initialised (not started). */
void kfx_setup(void);
/* The same in a deployment named audience: the broker refuses version 1
 * tokens (plugin_opt_audience, plugin_opt_token_v1 refuse), keyd and every
 * kfx_device config carry the name. */
void kfx_setup_audience(const char *audience);
/* kfx_setup with more rules in the ACL (static topics of a keyring, say),
 * before the fleet's: outside any role block. */
void kfx_setup_rules(const char *extra_rules);
void kfx_teardown(void);
/* Start keyd and wait until it subscribed; stop it (SIGTERM, exit 0). */
void kfx_keyd_start(void);
void kfx_keyd_stop(void);
/* How often keyd's log holds needle; wait until it holds it count times. */
int kfx_keyd_count(const char *needle);
void kfx_keyd_wait(const char *needle, int count, int base_ms);
/* `veil keys --db ... rotate scope`, then wait until keyd rotated
 * instance (e.g. "factory/fe-sync/#"; NULL: do not wait). */
void kfx_rotate(const char *scope, const char *instance);

/* A device: <dir>/<id>.key, <id>.cred (roles may be NULL), and its client
 * config <dir>/<id>.conf: client_id, identity, credential, authorities,
 * state_dir <dir>/<id>.state; no keyring. */
void kfx_device(const char *id, const char *roles, char *conf, size_t cap);

/* A raw MQTT 3.1.1 connection (tests/support/raw_mqtt.h) logged in as the
 * kfx_device id with a token of its identity and credential, as a holder of
 * its files could: the socket, CONNACK accepted. */
int kfx_raw_connect(const char *id);
/* Read from such a connection (subscribed at QoS 0) until a PUBLISH on
 * topic: its payload, malloc'd, its length in *len. */
uint8_t *kfx_raw_wait_publish(int fd, const char *topic, size_t *len);

/* ---- libveil ---- */

struct kfx_msg {
	char topic[128];
	char payload[128];
	uint32_t key_id;
	uint64_t seq;
	char sender[VEIL_CLIENT_ID_MAX + 1];
};

struct kfx_lv;
struct kfx_lv_opts {
	int connect_timeout_s;       /* 0: 10 s, scaled */
	bool persistent;             /* QoS 1 messages are queued while it is away */
	const char *will_topic, *will_payload;
	bool keyring;                /* its config names a keyring file (else it must not) */
};
/* A client (KFX_SYNC or KFX_ASYNC) from conf, MQTT 5 (opts may be NULL).
 * Creation must succeed. */
struct kfx_lv *kfx_lv_new(enum kfx_fe fe, const char *conf, const struct kfx_lv_opts *opts);
/* Connect and return the connect's result (async: the completion's), and
 * how long it took in *ms (may be NULL). */
int kfx_lv_connect(struct kfx_lv *l, uint64_t *ms);
/* veil_async only: start connecting, do not wait. */
void kfx_lv_start_connect(struct kfx_lv *l);
int kfx_lv_subscribe(struct kfx_lv *l, const char *filter);
/* Publish at QoS 1 and wait for the acknowledgement. */
int kfx_lv_publish(struct kfx_lv *l, const char *topic, const char *payload);
/* Wait until payload was delivered (its message in *out, may be NULL). */
bool kfx_lv_wait_msg(struct kfx_lv *l, const char *payload, struct kfx_msg *out, int base_ms);
/* How many messages with this payload were delivered. */
size_t kfx_lv_count(struct kfx_lv *l, const char *payload);
/* Wait until count messages were refused with err. */
bool kfx_lv_wait_refused(struct kfx_lv *l, int err, size_t count, int base_ms);
size_t kfx_lv_refused(struct kfx_lv *l);
/* Whether the client logged a line holding needle. */
bool kfx_lv_logged(struct kfx_lv *l, const char *needle);
/* How many of its log lines hold needle; wait until count do. */
size_t kfx_lv_log_count(struct kfx_lv *l, const char *needle);
bool kfx_lv_wait_log(struct kfx_lv *l, const char *needle, size_t count, int base_ms);
/* Print its log to stderr (failure diagnostics). */
void kfx_lv_dump(struct kfx_lv *l, const char *what);
int kfx_lv_wait_keys(struct kfx_lv *l, int base_ms);
void kfx_lv_free(struct kfx_lv *l);

/* ---- the preload, under a Paho program ---- */

struct kfx_app {
	enum kfx_fe fe;
	pid_t pid;
	int fd;            /* commands */
	char out[512];     /* its output */
	char fifo[512];
};
/* Start the program (KFX_PSYNC, KFX_PASYNC or KFX_PNOCB) preloaded with
 * conf, publishing on topic; wait until its connect returned and check it
 * succeeded. */
void kfx_app_start(struct kfx_app *a, enum kfx_fe fe, const char *conf, const char *topic, int connect_timeout_s);
/* The MQTTAsync program, reporting "connect rc=0" once its connect call
 * returned (not its completion, which it prints as "onSuccess"). */
void kfx_app_start_async_nowait(struct kfx_app *a, const char *conf, const char *topic, int connect_timeout_s);
/* Publish payload at QoS 1 and wait for the program's report: Paho's
 * return code of the publish (0 when it was sent and acknowledged). */
int kfx_app_pub(struct kfx_app *a, const char *payload);
/* Disconnect, destroy, exit 0. */
void kfx_app_stop(struct kfx_app *a);

#endif

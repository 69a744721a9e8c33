/*
 * libveil: Eclipse Paho MQTT C clients that publish and receive plaintext
 * while the wire and the broker carry only Veil envelopes.
 *
 * Two flavours that follow Paho's own shapes so porting is mechanical:
 *   veil_client_*  wraps MQTTClient (blocking calls, callbacks on Paho's thread)
 *   veil_async_*   wraps MQTTAsync  (non-blocking calls, completion callbacks)
 *
 * Both take the same struct veil_client_options. On connect the client
 * authenticates to the Veil broker plugin with a fresh token signed by the
 * device identity (MQTT 5: Authentication Method/Data in CONNECT; MQTT 3.1.1:
 * username = client id, password = veil_token_to_password form). Publish seals
 * per the keyring policy of the topic and refuses topics the keyring does not
 * cover (VEIL_ERR_NO_POLICY) unless the policy allows plaintext. Received
 * payloads are opened and checked (key, topic binding, signature, replay)
 * before the message callback sees them; anything that fails goes to the
 * refusal callback with the reason and is counted, never to the app.
 *
 * Every function returns a veil_err code (error.h). A request the broker
 * refuses reports the MQTT reason code as well (veil_client_wait,
 * veil_done_cb; veil_mqtt_reason_text names it); Paho's own codes are kept in
 * struct veil_client_stats.last_mqtt_rc for diagnostics. The library never
 * prints: give it a log callback.
 *
 * This header needs no Paho header. MQTT 5 properties and subscription
 * options (Paho types) are in veil/paho.h.
 *
 * ABI: libveil.so.1. Caller-allocated structs carry a version
 * (veil_client_options) or their size (veil_client_stats), so fields can be
 * added without another SONAME change; VEIL_VERSION_NUMBER (veil.h) tells a
 * program what it was compiled against, veil_version_number() what it runs.
 *
 * Example: examples/sensor.c and examples/dashboard.c (compiled by the build).
 */
#ifndef VEIL_CLIENT_H
#define VEIL_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

#include "veil/export.h"
#include "veil/error.h"
#include "veil/identity.h"

#ifdef __cplusplus
extern "C" {
#endif

/* 3 adds audience; libveil also takes version 2 (without it). */
#define VEIL_CLIENT_OPTIONS_VERSION 3

/* MQTT protocol versions (the numbers Paho uses). */
#define VEIL_MQTT_311 4
#define VEIL_MQTT_5 5

/* How the client logs in to the broker. */
enum veil_auth_mode {
	VEIL_AUTH_TOKEN = 0,     /* default: signed token from identity + credential */
	VEIL_AUTH_PASSWORD = 1,  /* legacy: username/password passed through to Paho */
	VEIL_AUTH_NONE = 2       /* anonymous (a broker without the Veil plugin) */
};

/* Log levels for the log callback. Messages never contain keys or payloads. */
enum veil_log_level { VEIL_LOG_ERROR = 0, VEIL_LOG_WARNING = 1, VEIL_LOG_INFO = 2, VEIL_LOG_DEBUG = 3 };
typedef void (*veil_log_cb)(void *ctx, int level, const char *msg);

/* Whether the client takes topic keys from the key service (veil-keyd,
 * docs/KEYS.md): its keys are then requested at connect and applied as they
 * come, mixed with the keyring file's. */
enum veil_key_service {
	VEIL_KEYS_AUTO = 0,      /* default: on when there is no keyring file */
	VEIL_KEYS_ON = 1,
	VEIL_KEYS_OFF = 2
};

/* TLS to the broker, used when server_uri is ssl:// or mqtts://. */
struct veil_tls_options {
	const char *ca_file;          /* PEM certificates the broker's certificate must chain to;
	                               * NULL: the system's default trust store */
	const char *cert_file;        /* client certificate (PEM), optional */
	const char *key_file;         /* its private key (PEM, unencrypted), optional */
	bool no_hostname_check;       /* do not match the certificate against the host name
	                               * (default: matched) */
};

struct veil_client_options {
	int version;                  /* VEIL_CLIENT_OPTIONS_VERSION */
	const char *server_uri;       /* "tcp://host:1883", "ssl://host:8883", ... */
	const char *client_id;        /* must equal the credential's client id for token login */
	int mqtt_version;             /* VEIL_MQTT_5 (0 means 5) or VEIL_MQTT_311 */
	const char *identity_path;    /* device key file (veil_identity_load); needed to seal */
	const char *credential_path;  /* authority-signed credential (token login, signed sends) */
	const char *keyring_path;     /* topic keys and policy (veil_keyring_load); may be NULL
	                               * when the key service provides every key */
	const char *state_dir;        /* NULL: in-memory state. Else holds "seq" (sender
	                               * sequence) and "replay-<client id>" (receive windows);
	                               * owned by this user, no group/other write; one client
	                               * at a time (locked) */
	int auth;                     /* enum veil_auth_mode */
	const char *username;         /* VEIL_AUTH_PASSWORD only */
	const char *password;         /* VEIL_AUTH_PASSWORD only; copied, wiped on free */
	struct veil_tls_options tls;
	int keepalive_s;              /* 0: 60 */
	int connect_timeout_s;        /* 0: 10 */
	bool persistent_session;      /* false: clean session / clean start */
	uint32_t session_expiry_s;    /* MQTT 5 Session Expiry Interval: sent when set, or 86400
	                               * with persistent_session */
	bool sign_all;                /* sign every envelope, not only where policy requires */
	bool auto_reconnect;          /* veil_async_* only: reconnect with a fresh token */
	size_t max_senders;           /* receive windows per key (a new sender past it is
	                               * refused, never an old window forgotten); 0: 4096 */
	bool refuse_plaintext;        /* never send in clear, even where the keyring policy
	                               * allows plaintext (VEIL_ERR_CLEAR_REFUSED) */
	bool password_form;           /* MQTT 5 token login in the password form (username =
	                               * client id) instead of enhanced auth, for brokers with
	                               * plugin_opt_enhanced_auth false */
	const char *authority_path;   /* public keys of trusted authorities (besides the
	                               * keyring's "authority" lines): what signed envelopes'
	                               * credentials and the key service's bundles must chain to */
	int key_service;              /* enum veil_key_service */
	const char *will_topic;       /* a Will, sealed like any publish at every connect */
	const void *will_payload;
	size_t will_len;
	int will_qos;
	bool will_retained;
	veil_log_cb log;              /* may be NULL: then nothing is logged */
	void *log_ctx;
	/* version 3 */
	const char *audience;         /* the deployment's name (the broker's plugin_opt_audience):
	                               * login tokens are bound to it (version 2); NULL: version 1
	                               * tokens, valid at any broker trusting the authority */
};

struct MQTTProperties;            /* Paho's (MQTTProperties.h), see veil/paho.h */

/* A verified received message, valid only during the callback. */
struct veil_message {
	const char *topic;
	const uint8_t *payload;       /* verified plaintext (NUL terminated, not counted in len) */
	size_t len;
	int qos;
	bool retained;
	bool dup;
	bool is_signed;               /* Ed25519 signature by the sender's credential verified */
	bool plaintext;               /* arrived in clear on a topic whose policy allows it:
	                               * NOT verified, never present it as if it were */
	uint8_t sender[VEIL_SENDER_ID_BYTES];   /* zero when plaintext */
	char sender_hex[2 * VEIL_SENDER_ID_BYTES + 1];
	const char *sender_client_id; /* from the verified credential when signed, else "" */
	uint64_t seq;
	uint32_t key_id;
	const struct MQTTProperties *properties;  /* MQTT 5 properties as received, else NULL */
};

/* A message that failed to open; never delivered to the message callback. */
struct veil_refusal {
	const char *topic;
	int err;                      /* veil_err; veil_strerror / veil_errname give the reason */
	size_t len;                   /* size of the refused payload */
	int qos;
	bool retained;
};

typedef void (*veil_message_cb)(void *ctx, const struct veil_message *m);
typedef void (*veil_refusal_cb)(void *ctx, const struct veil_refusal *r);
typedef void (*veil_connection_lost_cb)(void *ctx, const char *cause);

#define VEIL_STATS_ERR_SLOTS 64   /* refused_by_err[-err] for err in (-64, 0] */

/* Set size = sizeof(struct veil_client_stats) before the call (VEIL_STATS_INIT):
 * the library fills what both sides know. */
struct veil_client_stats {
	size_t size;
	uint64_t published;           /* messages handed to Paho */
	uint64_t published_sealed;    /* of which sealed into an envelope */
	uint64_t publish_refused;     /* refused before sending (no policy, ...) */
	uint64_t received;            /* messages that arrived from the broker */
	uint64_t delivered;           /* passed every check and reached the app */
	uint64_t refused;             /* failed to open: went to the refusal callback */
	uint64_t refused_by_err[VEIL_STATS_ERR_SLOTS];
	uint64_t connects;            /* successful connects (including reconnects) */
	int last_mqtt_rc;             /* last non-zero Paho return or MQTT reason code */
};
#define VEIL_STATS_INIT { .size = sizeof(struct veil_client_stats) }

/* English name of an MQTT 5 reason code, e.g. 0x87 "Not authorized"; never
 * NULL. MQTT 5 codes only: an MQTT 3.1.1 CONNACK return code (1..5) means
 * something else under the same number ("unknown reason code" here); the
 * 3.1.1 SUBACK failure 0x80 reads "Unspecified error", as MQTT 5 numbers it. */
VEIL_EXPORT const char *veil_mqtt_reason_text(int reason_code);

/* ---- the client config file ---- */

/* Fill the file-related fields of *o (identity_path, credential_path,
 * keyring_path, state_dir, client_id, auth, sign_all) from a client config
 * file (the format libveil_preload.so reads; docs/SHIM.md). Other fields are
 * left as they are. The strings live in *cfg: keep it until the client is
 * created, then veil_client_config_free. err (may be NULL) gets
 * "path:line: reason". Errors: IO, PARSE, TOO_LARGE, NOMEM, INVAL. */
struct veil_client_config;
VEIL_EXPORT int veil_client_config_load(const char *path, struct veil_client_options *o,
                                        struct veil_client_config **cfg, char *err, size_t errlen);
VEIL_EXPORT void veil_client_config_free(struct veil_client_config **cfg);

/* ---- synchronous client (MQTTClient) ---- */

struct veil_client;

/* Loads identity, credential, keyring and state; creates the Paho client.
 * Errors: INVAL (bad options), IO/PARSE/PERM (files), STATE, AUTH (identity
 * does not match credential), CLIENT_ID, EXPIRED, NOMEM, MQTT; the log
 * callback gets the reason in words, naming the file. */
VEIL_EXPORT int veil_client_new(const struct veil_client_options *o, struct veil_client **out);
/* Set before connect (like MQTTClient_setCallbacks). They run on Paho's thread.
 * Any callback may be NULL. */
VEIL_EXPORT int veil_client_set_callbacks(struct veil_client *c, void *ctx, veil_message_cb on_message,
                                          veil_refusal_cb on_refusal, veil_connection_lost_cb on_lost);
/* Blocks until CONNACK. Call again after a lost connection: each call makes a
 * fresh token. Errors: AUTH (refused by the broker), MQTT, TIMEOUT.
 * With the key service (docs/KEYS.md) it returns once the client is ready to
 * publish: its keys applied (a bundle since it started, or keys kept in
 * state_dir that are valid now), bounded by connect_timeout_s. When no
 * bundle comes in that time it still returns VEIL_OK, connected, after a
 * VEIL_LOG_WARNING line: publishes under the key service's scopes are then
 * refused (VEIL_ERR_NO_KEY) until a bundle arrives, which the client keeps
 * asking for by itself (veil_client_wait_keys waits for it). Called from a
 * libveil callback it does not wait (that thread delivers the keys). */
VEIL_EXPORT int veil_client_connect(struct veil_client *c);
VEIL_EXPORT bool veil_client_is_connected(struct veil_client *c);
/* Wait until the client is ready to publish under the key service: VEIL_OK
 * at once without the key service or when ready, VEIL_ERR_TIMEOUT after
 * timeout_ms, VEIL_ERR_INVAL from inside a libveil callback (it would block
 * the thread that delivers the keys). */
VEIL_EXPORT int veil_client_wait_keys(struct veil_client *c, unsigned long timeout_ms);
/* Seal and publish; returns once Paho accepted the message (like
 * MQTTClient_publish). token (may be NULL) identifies it for veil_client_wait
 * (QoS 1/2 completion). */
VEIL_EXPORT int veil_client_publish(struct veil_client *c, const char *topic, const void *payload, size_t len,
                                    int qos, bool retained, int *token);
/* Wait for a QoS 1/2 publish to complete. Errors: TIMEOUT, MQTT, AUTH (the
 * broker refused it: MQTT 5 PUBACK/PUBREC reason >= 0x80, in *reason_code,
 * which may be NULL; MQTT 3.1.1 cannot report refusals). */
VEIL_EXPORT int veil_client_wait(struct veil_client *c, int token, unsigned long timeout_ms, int *reason_code);
/* Blocks until SUBACK; a refused subscription is VEIL_ERR_AUTH. */
VEIL_EXPORT int veil_client_subscribe(struct veil_client *c, const char *filter, int qos);
/* Blocks until UNSUBACK. An MQTT 5 reason below 0x80 is success, 0x11 (No
 * subscription existed) included, as for veil_async_unsubscribe. */
VEIL_EXPORT int veil_client_unsubscribe(struct veil_client *c, const char *filter);
VEIL_EXPORT int veil_client_disconnect(struct veil_client *c, int timeout_ms);
/* Re-read the keyring (same path) and apply it to new messages; the old one
 * stays when the new one does not load (the log says why, with file:line). */
VEIL_EXPORT int veil_client_reload(struct veil_client *c);
VEIL_EXPORT void veil_client_stats(struct veil_client *c, struct veil_client_stats *out);
/* Persists the replay windows (state dir), destroys Paho, wipes secrets; *c = NULL. */
VEIL_EXPORT void veil_client_free(struct veil_client **c);

/* ---- asynchronous client (MQTTAsync) ---- */

struct veil_async;

/* Completion of a request: rc is VEIL_OK or a veil_err; reason_code is the
 * broker's MQTT reason code when it answered (0 otherwise), so a refused
 * publish reads as rc VEIL_ERR_AUTH, reason_code 0x87. Runs on Paho's thread. */
typedef void (*veil_done_cb)(void *ctx, int rc, int reason_code);

VEIL_EXPORT int veil_async_new(const struct veil_client_options *o, struct veil_async **out);
VEIL_EXPORT int veil_async_set_callbacks(struct veil_async *a, void *ctx, veil_message_cb on_message,
                                         veil_refusal_cb on_refusal, veil_connection_lost_cb on_lost);
/* Starts connecting; done (may be NULL) gets the result. With auto_reconnect
 * the client reconnects by itself after a loss, each time with a fresh token.
 * With the key service, a successful connect is reported (done, then
 * on_connected) once the client is ready to publish, as veil_client_connect
 * says, bounded by connect_timeout_s (then VEIL_OK with the warning); that
 * report then comes from libveil's own thread, not Paho's. A connection lost
 * meanwhile reports the connect first, then the loss; veil_async_disconnect
 * reports it at once; veil_async_free drops it. */
VEIL_EXPORT int veil_async_connect(struct veil_async *a, veil_done_cb done, void *ctx);
VEIL_EXPORT bool veil_async_is_connected(struct veil_async *a);
/* As veil_client_wait_keys (blocks the caller; not from a libveil callback). */
VEIL_EXPORT int veil_async_wait_keys(struct veil_async *a, unsigned long timeout_ms);
/* Called with VEIL_OK after every successful connect, including automatic
 * reconnects (resubscribe there when sessions are clean). */
VEIL_EXPORT int veil_async_set_connected(struct veil_async *a, veil_done_cb on_connected, void *ctx);
/* Seals now (in the caller's thread) and queues; done gets the delivery result.
 * Paho's command queue holds at most 100 publishes not yet written (they wait
 * there while the broker's in-flight window is full): past that, or while not
 * connected, this returns VEIL_ERR_MQTT at once, nothing sent and done never
 * called (last_mqtt_rc: MQTTASYNC_MAX_BUFFERED_MESSAGES or _DISCONNECTED). */
VEIL_EXPORT int veil_async_publish(struct veil_async *a, const char *topic, const void *payload, size_t len,
                                   int qos, bool retained, veil_done_cb done, void *ctx);
VEIL_EXPORT int veil_async_subscribe(struct veil_async *a, const char *filter, int qos, veil_done_cb done,
                                     void *ctx);
VEIL_EXPORT int veil_async_unsubscribe(struct veil_async *a, const char *filter, veil_done_cb done, void *ctx);
VEIL_EXPORT int veil_async_disconnect(struct veil_async *a, int timeout_ms, veil_done_cb done, void *ctx);
VEIL_EXPORT int veil_async_reload(struct veil_async *a);
VEIL_EXPORT void veil_async_stats(struct veil_async *a, struct veil_client_stats *out);
/* Stops reconnecting, persists state, destroys Paho, wipes secrets; *a = NULL.
 * Do not call from a libveil callback. */
VEIL_EXPORT void veil_async_free(struct veil_async **a);

#ifdef __cplusplus
}
#endif
#endif

/*
 * What the sync (client.c) and async (async.c) flavours of libveil share:
 * the Paho-facing half of a client (options, callbacks, login properties,
 * delivery to the app) over the client session core (session.h), which
 * owns every security rule; and the one place where Paho codes become
 * veil_err codes. Private to libveil.
 */
#ifndef VEIL_SHIM_H
#define VEIL_SHIM_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "veil/veil.h"
#include "veil/paho.h"
#include "session.h"

struct veil__shim {
	/* Guards callbacks and the Paho-side stats: Paho delivers on its own
	 * thread while the app publishes from others. */
	pthread_mutex_t lock;
	struct veil__session *ses;       /* identity, keys, state, seal */
	struct veil__receiver *rcv;      /* this client's replay windows, open */
	char *server_uri;
	char *client_id;
	char *username;
	char *password;                  /* sodium_malloc'd copy, NULL if none */
	bool tls;                        /* ssl:// or mqtts:// */
	char *tls_ca_file, *tls_cert_file, *tls_key_file;
	bool tls_no_hostname_check;
	bool password_form;              /* MQTT 5 token login in the password form */
	int mqtt_version;
	int auth;
	int keepalive_s;
	int connect_timeout_s;
	bool persistent_session;
	uint32_t session_expiry_s;       /* 0: none sent */
	char *will_topic;                /* the Will's plaintext, sealed at every connect */
	uint8_t *will_payload;           /* sodium_malloc'd */
	size_t will_len;
	int will_qos;
	bool will_retained;
	/* The flavour's MQTT calls for the key service (client.c / async.c). */
	int (*raw_publish)(struct veil__shim *s, const char *topic, const uint8_t *payload, size_t len);
	int (*subscribe_service)(struct veil__shim *s, char *const *topics, int n);
	bool auto_reconnect;
	veil_log_cb log;
	void *log_ctx;
	void *cb_ctx;
	veil_message_cb on_message;
	veil_refusal_cb on_refusal;
	veil_connection_lost_cb on_lost;
	struct veil_client_stats stats;
};

/* Login material for exactly one CONNECT (a token is single-use), and the
 * Will sealed for it. */
struct veil__login {
	MQTTProperties props;            /* MQTT 5 Authentication Method/Data */
	const char *username;
	const char *password;            /* points into tok or at the shim's password */
	struct veil__token tok;
	uint8_t *will;                   /* sealed Will payload, NULL without a Will */
	size_t will_len;
};

int veil__shim_init(struct veil__shim *s, const struct veil_client_options *o);
/* Persist receive windows; never fails the caller (logs instead). */
void veil__shim_save_state(struct veil__shim *s);
/* Before the front end destroys its Paho handle: the key service's keeper
 * sends nothing through it any more (a send under way has ended). */
void veil__shim_detach(struct veil__shim *s);
void veil__shim_fini(struct veil__shim *s);

/* Build a fresh login for the configured auth mode. Wipe with login_wipe. */
int veil__shim_login(struct veil__shim *s, struct veil__login *l);
void veil__shim_login_wipe(struct veil__login *l);

/* Seal payload for topic into stackbuf when it fits, else a malloc'd buffer:
 * *out is one or the other; release with veil__shim_seal_release. */
#define VEIL__SEAL_STACK 2048U
int veil__shim_seal(struct veil__shim *s, const char *topic, const void *payload, size_t len, bool retained,
                    uint8_t *stackbuf, size_t stackcap, uint8_t **out, size_t *out_len);
#define veil__shim_seal_release veil__sealed_release
/* Open a received payload and call the message or refusal callback. */
void veil__shim_deliver(struct veil__shim *s, const char *topic, size_t topic_len, const void *payload,
                        size_t len, int qos, bool retained, bool dup, const MQTTProperties *props);

/* Paho TLS options from the client's veil_tls_options. */
void veil__shim_tls(const struct veil__shim *s, MQTTClient_SSLOptions *o);
void veil__shim_tls_async(const struct veil__shim *s, MQTTAsync_SSLOptions *o);
/* Re-read the keyring (session core). */
int veil__shim_reload(struct veil__shim *s);
/* After every successful connect: the key service's subscriptions and
 * request (no-ops without it). */
void veil__shim_connected(struct veil__shim *s);
void veil__shim_disconnected(struct veil__shim *s);
/* The connection-lost cause for an MQTT 5 DISCONNECT the broker sent. */
void veil__disconnect_cause(int reason_code, char *out, size_t cap);
/* Nonzero on a thread that is running one of libveil's Paho callbacks (or
 * the async flavour's own callbacks): waiting for keys there would block
 * the thread that delivers them. */
extern __thread int veil__in_callback;
/* veil_*_wait_keys: VEIL_OK once ready (or without the key service),
 * VEIL_ERR_TIMEOUT, VEIL_ERR_INVAL inside a callback (said in the log). */
int veil__shim_wait_keys(struct veil__shim *s, unsigned long timeout_ms);

/* Keep both Paho libraries' heap trackers live for the process (shim.c). */
void veil__paho_anchor(void);

/* The one translation of Paho return codes and MQTT reason codes. */
int veil__mqtt_err(struct veil__shim *s, int paho_rc);
void veil__stats_copy(struct veil__shim *s, struct veil_client_stats *out);
void veil__log(struct veil__shim *s, int level, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif

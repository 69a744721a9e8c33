/*
 * The libveil client fixture (cfx_), shared by the libveil integration tests
 * (tests/broker/check_client*.c): a temp dir with an authority, device
 * identities and credentials made with the core API, a keyring file (mode
 * 0600), a broker, a sink for what libveil delivers or refuses, and a plain
 * Paho "eavesdropper" (MQTT 3.1.1) that records raw payloads.
 */
#ifndef VEIL_TEST_CLIENT_FIXTURE_H
#define VEIL_TEST_CLIENT_FIXTURE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <MQTTClient.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "veil/paho.h"
#include "broker.h"

#define CFX_MAX_MSGS 64

struct cfx {
	char dir[256];
	char uri[64];
	struct test_broker broker;
	struct veil_identity *authority;
	uint8_t k_sensors[VEIL_KEY_BYTES], k_secure[VEIL_KEY_BYTES];
	char keyring[300];           /* receiver/sender keyring */
	char keyring_nosign[300];    /* same keys, 'secure/#' without the signed policy */
};

/* Files only (dir, authority, keyrings); the caller starts a broker with cfx_start. */
void cfx_setup_files(struct cfx *f);
/* A broker with conf; f->uri points at it. */
void cfx_start(struct cfx *f, const char *conf);
/* Files and a plain broker (no Veil plugin: libveil alone). */
void cfx_setup(struct cfx *f);
void cfx_teardown(struct cfx *f);
/* A keyring at path (mode 0600) naming f->authority, the sensors/# and
 * secure/# keys, public/# in clear, and secure/# signed if secure_signed. */
void cfx_write_keyring(struct cfx *f, const char *path, bool secure_signed);
/* Identity and credential for client_id: <dir>/<stem>.key and <dir>/<stem>.cred. */
void cfx_device_as(struct cfx *f, const char *stem, const char *client_id);
void cfx_device(struct cfx *f, const char *client_id);

/* Options for client_id with its own files; state dir <dir>/<state> (or none). */
struct cfx_opts {
	struct veil_client_options o;
	char key[400], cred[400], state[400];
};
void cfx_options(struct cfx *f, struct cfx_opts *fo, const char *client_id, int mqtt_version, const char *state);

/* ---- what a libveil client delivered or refused ---- */

struct cfx_msg {
	char topic[128];
	uint8_t payload[8192];
	size_t len;
	int qos;
	bool retained, is_signed, plaintext;
	char sender_hex[17];
	char sender_client_id[VEIL_CLIENT_ID_MAX + 1];
	uint64_t seq;
	char user_prop[64];          /* "key=value" of the first MQTT 5 user property */
};

/* Completions of libveil's async requests (veil_done_cb): how many came,
 * how many were VEIL_OK, and the latest one's result and reason code. */
struct cfx_done {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	size_t n, n_ok;
	int rc, reason;
};
void cfx_done_init(struct cfx_done *d);
void cfx_on_done(void *ctx, int rc, int reason_code); /* a veil_done_cb; ctx is a struct cfx_done */
/* Until want completions came; false after base_ms (scaled). */
bool cfx_done_wait(struct cfx_done *d, size_t want, int base_ms);

struct cfx_sink {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct cfx_msg msgs[CFX_MAX_MSGS];
	size_t n;                    /* messages kept in msgs */
	size_t total;                /* every message delivered, even past CFX_MAX_MSGS */
	int refused[CFX_MAX_MSGS];
	char refused_topic[CFX_MAX_MSGS][128];
	size_t n_refused;
	size_t lost;
	char lost_cause[256];        /* the latest connection-lost cause */
};

void cfx_sink_init(struct cfx_sink *s);
void cfx_sink_destroy(struct cfx_sink *s);
/* libveil callbacks (ctx: the sink). */
void cfx_on_message(void *ctx, const struct veil_message *m);
void cfx_on_refusal(void *ctx, const struct veil_refusal *r);
void cfx_on_lost(void *ctx, const char *cause);
/* Wait until *counter (one of the sink's: n, total, n_refused, lost) >= want;
 * false after base_ms (scaled). */
bool cfx_wait(struct cfx_sink *s, const size_t *counter, size_t want, int base_ms);

/* ---- a plain Paho client: eavesdropper and broker-side replayer ---- */

struct cfx_plain {
	MQTTClient mc;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	uint8_t *payload[CFX_MAX_MSGS];
	size_t len[CFX_MAX_MSGS];
	char topic[CFX_MAX_MSGS][128];
	size_t n;
};

/* Connect as client_id (MQTT 3.1.1, no login); subscribe to sub (QoS 1) if set. */
void cfx_plain_connect(struct cfx *f, struct cfx_plain *p, const char *client_id, const char *sub);
/* QoS 1 publish, waiting for its PUBACK. */
void cfx_plain_publish(struct cfx_plain *p, const char *topic, const void *payload, size_t len);
size_t cfx_plain_count(struct cfx_plain *p);
/* Wait until at least n messages arrived; false after base_ms (scaled). */
bool cfx_plain_wait(struct cfx_plain *p, size_t n, int base_ms);
/* True if any captured payload contains needle. */
bool cfx_plain_saw(struct cfx_plain *p, const void *needle, size_t len);
void cfx_plain_close(struct cfx_plain *p);

#endif

/*
 * keyd's MQTT side: one Paho MQTTAsync client (MQTT 5, persistent
 * session, QoS 1) logging in with a fresh token in the password form
 * (username = client id) at every connect, made on the main thread.
 * Paho's callbacks only copy what they get into a queue and wake the main
 * loop through a pipe; the main thread does all the work.
 *
 * Publishes are retained QoS 1 and kept until the broker's PUBACK: a
 * newer publish on the same topic replaces an unacknowledged older one,
 * whatever Paho has no room for (its in-flight window, the broker's
 * receive maximum) waits for the next PUBACK, and whatever is
 * unacknowledged at a disconnect is sent again after the next connect.
 */
#ifndef KD_MQTT_H
#define KD_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "keyd.h"
#include "service.h"

struct kd_mqtt;

enum kd_ev_type {
	KD_EV_CONNECTED = 1,
	KD_EV_CONNECT_FAILED,
	KD_EV_LOST,
	KD_EV_SUBSCRIBED,
	KD_EV_SUBSCRIBE_FAILED,
	KD_EV_MESSAGE,
	KD_EV_PUBACK,
	KD_EV_PUBLISH_FAILED,
};

struct kd_ev {
	enum kd_ev_type type;
	int code;                /* Paho return code or MQTT reason code */
	char *topic;             /* MESSAGE, PUBACK, PUBLISH_FAILED */
	uint8_t *payload;        /* MESSAGE */
	size_t len;
	uint64_t version;        /* PUBACK, PUBLISH_FAILED */
	struct kd_ev *next;
};

/* Reads keyd's identity and credential (cfg's files; again at every
 * connect). cfg is borrowed and read at every connect (client id,
 * keep-alive, TLS, the login files). */
int kd_mqtt__new(const struct kd_config *cfg, struct kd_mqtt **out, char *err, size_t errlen);
void kd_mqtt__free(struct kd_mqtt **m);
/* The read end of the wake-up pipe (readable when an event is queued). */
int kd_mqtt__fd(const struct kd_mqtt *m);
/* At most n publishes handed to Paho before their PUBACK (default 16).
 * The crash drill sets 1: when keyd dies after N PUBACKs, exactly N
 * bundles reached the broker. */
void kd_mqtt__set_window(struct kd_mqtt *m, size_t n);
/* Start a connect (fresh token at unix time now), with the identity and
 * credential files as they are now (the previous ones if they do not load). */
int kd_mqtt__connect(struct kd_mqtt *m, uint64_t now);
/* Next queued event, or NULL; free it with kd_mqtt__ev_free. */
struct kd_ev *kd_mqtt__next(struct kd_mqtt *m);
void kd_mqtt__ev_free(struct kd_ev *ev);
/* Apply an event to the connection's own state (subscribe after a
 * connect, resend unacknowledged publishes, forget acknowledged ones).
 * Returns true when a PUBACK completed a kept publish, with its version and
 * credential id (all zero for the statement) in *cred_id / *version. After
 * a PUBACK the caller calls kd_mqtt__flush once it handled it. */
bool kd_mqtt__on_event(struct kd_mqtt *m, const struct kd_ev *ev, uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES],
                       bool *is_bundle, uint64_t *version);
bool kd_mqtt__connected(const struct kd_mqtt *m);
/* How many publishes wait for their PUBACK. */
size_t kd_mqtt__unacked(const struct kd_mqtt *m);
/* kd_publish_fn for the service; ctx is the kd_mqtt. */
int kd_mqtt__publish(void *ctx, const char *topic, const uint8_t *buf, size_t len, const uint8_t *cred_id,
                     uint64_t version);
/* Hand Paho the publishes it had no room for (in publish order), until it
 * refuses one; after every PUBACK (the caller) and connect (on_event). */
void kd_mqtt__flush(struct kd_mqtt *m);
/* Clean disconnect (waits at most timeout_ms for it). */
void kd_mqtt__disconnect(struct kd_mqtt *m, int timeout_ms);

#endif

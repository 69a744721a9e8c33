/*
 * A minimal MQTT speaker over plain sockets, for the login load tests, the
 * attack tests (packets no client library would send: AUTH after CONNECT,
 * garbage properties) and bench/bench_connect.c, bench_spray.c: hundreds of
 * simultaneous logins without a client library thread per connection.
 * Speaks MQTT 3.1.1 (user, password) and MQTT 5 (plus Authentication
 * Method/Data, Session Expiry); reads whole packets, exactly their bytes;
 * SUBSCRIBE, PUBLISH, PUBACK, PINGREQ, DISCONNECT, AUTH.
 */
#ifndef VEIL_TEST_RAW_MQTT_H
#define VEIL_TEST_RAW_MQTT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct raw_login {
	int version;             /* 4 = 3.1.1, 5 = MQTT 5 */
	const char *client_id;
	const char *username;    /* may be NULL */
	const char *password;    /* may be NULL */
	const char *auth_method; /* MQTT 5 only, may be NULL */
	const uint8_t *auth_data;
	size_t auth_data_len;
	bool persistent;         /* clean session / clean start off */
	uint32_t session_expiry; /* MQTT 5: Session Expiry Interval (s), 0: none sent */
};

/* Encode CONNECT into out (cap >= 2048 + auth data); returns its length or 0. */
size_t raw_connect_encode(const struct raw_login *l, uint8_t *out, size_t cap);
/* Connected TCP socket to 127.0.0.1:port, or -1. */
int raw_socket(int port);
/* The same from a chosen local address (any 127.x.y.z is this host's
 * loopback on Linux: many client addresses without configuration); src
 * NULL: the system chooses. */
int raw_socket_from(int port, const char *src);
/* Open a socket and send CONNECT; returns the fd or -1. */
int raw_connect_send(int port, const struct raw_login *l);
int raw_connect_send_from(int port, const char *src, const struct raw_login *l);
/* Read the CONNACK: its return/reason code (0 = accepted), -1 when the
 * connection closed or nothing came within base_ms (scaled, timing.h). */
int raw_connack(int fd, int base_ms);
/* One login, start to finish: CONNACK code or -1. Closes the socket. */
int raw_login_once(int port, const struct raw_login *l, int base_ms);
/* Connect, send CONNECT and read the CONNACK: the fd of an accepted login,
 * or -1 (closed). *code (may be NULL) gets the CONNACK code or -1. */
int raw_login_keep(int port, const struct raw_login *l, int base_ms, int *code);
/* Close with a reset: neither end keeps the connection in TIME_WAIT (a
 * login storm would otherwise run out of local ports). */
void raw_abort(int fd);
/* PINGREQ on an accepted connection; true when the PINGRESP came back
 * within base_ms (scaled) as the next packet: the broker still serves it,
 * and has handled everything sent on it before. */
bool raw_ping(int fd, int base_ms);
/* Whether the broker closes fd (EOF or error) within base_ms (scaled). */
bool raw_closed_by_peer(int fd, int base_ms);

/* ---- whole packets ---- */

#define RAW_PACKET_MAX 16384

struct raw_packet {
	uint8_t type;                 /* first byte: packet type << 4 | flags */
	size_t len;                   /* remaining length = bytes in body */
	uint8_t body[RAW_PACKET_MAX];
};

#define RAW_CONNACK 0x20
#define RAW_PUBLISH 0x30
#define RAW_PUBACK 0x40
#define RAW_SUBACK 0x90
#define RAW_PINGRESP 0xd0
#define RAW_DISCONNECT 0xe0
#define RAW_AUTH 0xf0

/* Read exactly one packet. 0, or -1 when the connection closed, nothing
 * complete came within base_ms (scaled), or the packet exceeds
 * RAW_PACKET_MAX. */
int raw_read(int fd, struct raw_packet *p, int base_ms);
/* Send n bytes as they are; false on a short write or a closed socket. */
bool raw_send(int fd, const void *p, size_t n);

/* An AUTH packet. empty: the two bytes F0 00 (no reason code, no
 * properties). Otherwise the reason code, then either raw_props as they are
 * (property length and properties, possibly malformed) or the properties
 * method and data (each omitted when NULL). */
struct raw_auth {
	bool empty;
	uint8_t reason;
	const char *method;
	const uint8_t *data;
	size_t data_len;
	const uint8_t *raw_props;
	size_t raw_props_len;
};
/* Encode into out; returns the length, or 0 when it does not fit. */
size_t raw_auth_encode(const struct raw_auth *a, uint8_t *out, size_t cap);
bool raw_auth_send(int fd, const struct raw_auth *a);

/* SUBSCRIBE to one filter (packet id pid) and read until its SUBACK: the
 * SUBACK's return / reason code (0-2 granted QoS, >= 0x80 refused), or -1.
 * PUBLISH packets that arrive first are counted in *publishes (may be
 * NULL) and acknowledged when QoS 1. */
int raw_subscribe(int fd, int version, uint16_t pid, const char *filter, int qos, int base_ms,
                  int *publishes);
/* PUBLISH; for QoS 1 (pid != 0) this waits for the PUBACK and returns
 * false without it. */
bool raw_publish(int fd, int version, const char *topic, const void *payload, size_t len, int qos, uint16_t pid,
                 int base_ms);
/* A received PUBLISH: its topic (copied, NUL terminated), payload (pointing
 * into p), QoS and packet id. False if p is not a well-formed PUBLISH. */
struct raw_message {
	char topic[256];
	const uint8_t *payload;
	size_t len;
	int qos;
	uint16_t pid;
};
bool raw_publish_parse(const struct raw_packet *p, int version, struct raw_message *m);
/* Acknowledge a received QoS 1 PUBLISH. */
bool raw_puback(int fd, uint16_t pid);
/* PINGREQ, then read until the PINGRESP: true when it came within base_ms
 * (scaled). Everything the broker queued on this connection before the
 * PINGREQ arrives first: PUBLISH packets are counted in *publishes (may be
 * NULL) and acknowledged (QoS 1). */
bool raw_ping_count(int fd, int version, int base_ms, int *publishes);
/* Normal DISCONNECT (reason 0): a persistent session stays, no Will. */
bool raw_disconnect(int fd);

#endif

/*
 * A minimal MQTT CONNECT/CONNACK speaker over plain sockets, for the login
 * load tests and bench/bench_connect.c: hundreds of simultaneous logins
 * without a client library thread per connection. Speaks MQTT 3.1.1 (user,
 * password) and MQTT 5 (plus Authentication Method/Data).
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
};

/* Encode CONNECT into out (cap >= 2048 + auth data); returns its length or 0. */
size_t raw_connect_encode(const struct raw_login *l, uint8_t *out, size_t cap);
/* Connected TCP socket to 127.0.0.1:port, or -1. */
int raw_socket(int port);
/* Open a socket and send CONNECT; returns the fd or -1. */
int raw_connect_send(int port, const struct raw_login *l);
/* Read the CONNACK: its return/reason code (0 = accepted), -1 when the
 * connection closed or nothing came within base_ms (scaled, timing.h). */
int raw_connack(int fd, int base_ms);
/* One login, start to finish: CONNACK code or -1. Closes the socket. */
int raw_login_once(int port, const struct raw_login *l, int base_ms);
/* Close with a reset: neither end keeps the connection in TIME_WAIT (a
 * login storm would otherwise run out of local ports). */
void raw_abort(int fd);
/* PINGREQ on an accepted connection; true when the PINGRESP came back
 * within base_ms (scaled): the broker still serves it, and has handled
 * everything sent on it before. */
bool raw_ping(int fd, int base_ms);
/* Whether the broker closes fd (EOF or error) within base_ms (scaled). */
bool raw_closed_by_peer(int fd, int base_ms);

#endif

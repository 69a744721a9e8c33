/* A minimal MQTT CONNECT/CONNACK speaker over plain sockets (see raw_mqtt.h). */
#include "raw_mqtt.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "timing.h"

static size_t put16(uint8_t *p, size_t n)
{
	p[0] = (uint8_t)(n >> 8);
	p[1] = (uint8_t)n;
	return 2;
}

static size_t putstr(uint8_t *p, const void *s, size_t n)
{
	put16(p, n);
	memcpy(p + 2, s, n);
	return n + 2;
}

static size_t varint(uint8_t *p, size_t v)
{
	size_t i = 0;
	do {
		uint8_t b = (uint8_t)(v % 128);
		v /= 128;
		p[i++] = (uint8_t)(v ? (b | 0x80) : b);
	} while (v);
	return i;
}

/* Encode CONNECT into out (cap >= 2048 + auth data); returns its length or 0. */
size_t raw_connect_encode(const struct raw_login *l, uint8_t *out, size_t cap)
{
	uint8_t body[4096];
	size_t n = 0;
	if (l->auth_data_len > 2048 || cap < 16)
		return 0;
	n += putstr(body + n, "MQTT", 4);
	body[n++] = (uint8_t)l->version;
	uint8_t flags = 0x02; /* clean session / clean start */
	if (l->username)
		flags |= 0x80;
	if (l->password)
		flags |= 0x40;
	body[n++] = flags;
	n += put16(body + n, 60);
	if (l->version == 5) {
		uint8_t props[2200];
		size_t pn = 0;
		if (l->auth_method) {
			props[pn++] = 0x15;
			pn += putstr(props + pn, l->auth_method, strlen(l->auth_method));
			if (l->auth_data) {
				props[pn++] = 0x16;
				pn += putstr(props + pn, l->auth_data, l->auth_data_len);
			}
		}
		n += varint(body + n, pn);
		memcpy(body + n, props, pn);
		n += pn;
	}
	n += putstr(body + n, l->client_id, strlen(l->client_id));
	if (l->username)
		n += putstr(body + n, l->username, strlen(l->username));
	if (l->password)
		n += putstr(body + n, l->password, strlen(l->password));
	if (n + 5 > cap)
		return 0;
	size_t m = 0;
	out[m++] = 0x10;
	m += varint(out + m, n);
	memcpy(out + m, body, n);
	return m + n;
}

/* Connected TCP socket to 127.0.0.1:port, or -1. */
int raw_socket(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons((uint16_t)port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
		close(fd);
		return -1;
	}
	int one = 1;
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	return fd;
}

/* Open a socket and send CONNECT; returns the fd or -1. */
int raw_connect_send(int port, const struct raw_login *l)
{
	uint8_t pkt[4200];
	size_t n = raw_connect_encode(l, pkt, sizeof(pkt));
	if (n == 0)
		return -1;
	int fd = raw_socket(port);
	if (fd < 0)
		return -1;
	if (send(fd, pkt, n, MSG_NOSIGNAL) != (ssize_t)n) {
		close(fd);
		return -1;
	}
	return fd;
}

int raw_connack(int fd, int base_ms)
{
	uint8_t buf[256];
	size_t got = 0, need = 4;
	struct veil_deadline d = veil_deadline_in(base_ms);
	while (got < need) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, veil_deadline_left_ms(&d)) <= 0)
			return -1;
		ssize_t r = recv(fd, buf + got, sizeof(buf) - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
		/* The whole packet (MQTT 5 adds properties), so that nothing of it
		 * is left for a later read on this socket. */
		if (got >= 2 && buf[1] < 0x80)
			need = 2U + buf[1] > 4U ? 2U + buf[1] : 4U;
	}
	if (buf[0] != 0x20)
		return -1;
	return buf[3];
}

bool raw_closed_by_peer(int fd, int base_ms)
{
	uint8_t buf[64];
	struct veil_deadline d = veil_deadline_in(base_ms);
	for (;;) {
		struct pollfd p = { fd, POLLIN, 0 };
		int n = poll(&p, 1, veil_deadline_left_ms(&d));
		if (n < 0)
			return true;
		if (n == 0)
			return false;
		if (recv(fd, buf, sizeof(buf), 0) <= 0)
			return true;
	}
}

void raw_abort(int fd)
{
	struct linger lg = { 1, 0 };
	setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
	close(fd);
}

bool raw_ping(int fd, int base_ms)
{
	static const uint8_t pingreq[2] = { 0xc0, 0x00 };
	if (send(fd, pingreq, sizeof(pingreq), MSG_NOSIGNAL) != (ssize_t)sizeof(pingreq))
		return false;
	uint8_t buf[2];
	size_t got = 0;
	struct veil_deadline d = veil_deadline_in(base_ms);
	while (got < sizeof(buf)) {
		struct pollfd p = { fd, POLLIN, 0 };
		if (poll(&p, 1, veil_deadline_left_ms(&d)) <= 0)
			return false;
		ssize_t r = recv(fd, buf + got, sizeof(buf) - got, 0);
		if (r <= 0)
			return false;
		got += (size_t)r;
	}
	return buf[0] == 0xd0 && buf[1] == 0x00;
}

/* One login, start to finish: CONNACK code or -1. Closes the socket. */
int raw_login_once(int port, const struct raw_login *l, int base_ms)
{
	int fd = raw_connect_send(port, l);
	if (fd < 0)
		return -1;
	int rc = raw_connack(fd, base_ms);
	close(fd);
	return rc;
}

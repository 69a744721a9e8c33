/* A minimal MQTT speaker over plain sockets (see raw_mqtt.h). */
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

/* Fixed header (type, remaining length) and body into out; 0 if it does not fit. */
static size_t frame(uint8_t type, const uint8_t *body, size_t n, uint8_t *out, size_t cap)
{
	if (n + 5 > cap)
		return 0;
	size_t m = 0;
	out[m++] = type;
	m += varint(out + m, n);
	memcpy(out + m, body, n);
	return m + n;
}

/* The Authentication Method and Data properties (each omitted when NULL)
 * at p; returns their length. */
static size_t auth_props(uint8_t *p, const char *method, const uint8_t *data, size_t data_len)
{
	size_t n = 0;
	if (method) {
		p[n++] = 0x15;
		n += putstr(p + n, method, strlen(method));
	}
	if (data) {
		p[n++] = 0x16;
		n += putstr(p + n, data, data_len);
	}
	return n;
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
	uint8_t flags = l->persistent ? 0x00 : 0x02; /* clean session / clean start */
	if (l->username)
		flags |= 0x80;
	if (l->password)
		flags |= 0x40;
	body[n++] = flags;
	n += put16(body + n, 60);
	if (l->version == 5) {
		uint8_t props[2200];
		size_t pn = 0;
		if (l->session_expiry) {
			props[pn++] = 0x11;
			for (int s = 24; s >= 0; s -= 8)
				props[pn++] = (uint8_t)(l->session_expiry >> s);
		}
		if (l->auth_method)
			pn += auth_props(props + pn, l->auth_method, l->auth_data, l->auth_data_len);
		n += varint(body + n, pn);
		memcpy(body + n, props, pn);
		n += pn;
	}
	n += putstr(body + n, l->client_id, strlen(l->client_id));
	if (l->username)
		n += putstr(body + n, l->username, strlen(l->username));
	if (l->password)
		n += putstr(body + n, l->password, strlen(l->password));
	return frame(0x10, body, n, out, cap);
}

int raw_socket_from(int port, const char *src)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in sa;
	if (src) {
		memset(&sa, 0, sizeof(sa));
		sa.sin_family = AF_INET;
		if (inet_pton(AF_INET, src, &sa.sin_addr) != 1 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
			close(fd);
			return -1;
		}
	}
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

/* Connected TCP socket to 127.0.0.1:port, or -1. */
int raw_socket(int port)
{
	return raw_socket_from(port, NULL);
}

bool raw_send(int fd, const void *p, size_t n)
{
	return send(fd, p, n, MSG_NOSIGNAL) == (ssize_t)n;
}

int raw_connect_send_from(int port, const char *src, const struct raw_login *l)
{
	uint8_t pkt[4200];
	size_t n = raw_connect_encode(l, pkt, sizeof(pkt));
	if (n == 0)
		return -1;
	int fd = raw_socket_from(port, src);
	if (fd < 0)
		return -1;
	if (!raw_send(fd, pkt, n)) {
		close(fd);
		return -1;
	}
	return fd;
}

/* Open a socket and send CONNECT; returns the fd or -1. */
int raw_connect_send(int port, const struct raw_login *l)
{
	return raw_connect_send_from(port, NULL, l);
}

/* Exactly n bytes before the deadline; false on EOF, error or timeout. */
static bool read_exact(int fd, uint8_t *p, size_t n, const struct veil_deadline *d)
{
	while (n > 0) {
		struct pollfd pf = { fd, POLLIN, 0 };
		if (poll(&pf, 1, veil_deadline_left_ms(d)) <= 0)
			return false;
		ssize_t r = recv(fd, p, n, 0);
		if (r <= 0)
			return false;
		p += r;
		n -= (size_t)r;
	}
	return true;
}

static int read_packet(int fd, struct raw_packet *p, const struct veil_deadline *d)
{
	if (!read_exact(fd, &p->type, 1, d))
		return -1;
	size_t len = 0;
	for (unsigned shift = 0;; shift += 7) {
		uint8_t b;
		if (shift > 21 || !read_exact(fd, &b, 1, d))
			return -1;
		len |= (size_t)(b & 0x7f) << shift;
		if (!(b & 0x80))
			break;
	}
	if (len > sizeof(p->body))
		return -1;
	p->len = len;
	return read_exact(fd, p->body, len, d) ? 0 : -1;
}

int raw_read(int fd, struct raw_packet *p, int base_ms)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	return read_packet(fd, p, &d);
}

int raw_connack(int fd, int base_ms)
{
	struct raw_packet p;
	/* The whole packet (MQTT 5 adds properties), and nothing more: what
	 * follows (queued messages of a persistent session) stays readable. */
	if (raw_read(fd, &p, base_ms) != 0 || p.type != RAW_CONNACK || p.len < 2)
		return -1;
	return p.body[1];
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
	struct raw_packet p;
	return raw_send(fd, pingreq, sizeof(pingreq)) && raw_read(fd, &p, base_ms) == 0 && p.type == RAW_PINGRESP &&
	       p.len == 0;
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

int raw_login_keep(int port, const struct raw_login *l, int base_ms, int *code)
{
	int fd = raw_connect_send(port, l);
	int rc = fd >= 0 ? raw_connack(fd, base_ms) : -1;
	if (code)
		*code = rc;
	if (rc != 0 && fd >= 0) {
		close(fd);
		fd = -1;
	}
	return fd;
}

size_t raw_auth_encode(const struct raw_auth *a, uint8_t *out, size_t cap)
{
	static const uint8_t nothing[1] = { 0 };
	if (a->empty)
		return frame(0xf0, nothing, 0, out, cap);
	uint8_t body[4200];
	size_t n = 0;
	body[n++] = a->reason;
	if (a->raw_props) {
		if (a->raw_props_len > sizeof(body) - n)
			return 0;
		memcpy(body + n, a->raw_props, a->raw_props_len);
		n += a->raw_props_len;
		return frame(0xf0, body, n, out, cap);
	}
	uint8_t props[4100];
	size_t pn = 0;
	if ((a->method ? strlen(a->method) : 0) + a->data_len > 4000)
		return 0;
	pn += auth_props(props, a->method, a->data, a->data_len);
	n += varint(body + n, pn);
	memcpy(body + n, props, pn);
	return frame(0xf0, body, n + pn, out, cap);
}

bool raw_auth_send(int fd, const struct raw_auth *a)
{
	uint8_t pkt[4300];
	size_t n = raw_auth_encode(a, pkt, sizeof(pkt));
	return n > 0 && raw_send(fd, pkt, n);
}

bool raw_publish_parse(const struct raw_packet *p, int version, struct raw_message *m)
{
	if ((p->type & 0xf0) != RAW_PUBLISH || p->len < 2)
		return false;
	memset(m, 0, sizeof(*m));
	m->qos = (p->type >> 1) & 3;
	size_t tl = (size_t)p->body[0] << 8 | p->body[1], k = 2 + tl;
	if (k > p->len || tl >= sizeof(m->topic))
		return false;
	memcpy(m->topic, p->body + 2, tl);
	if (m->qos > 0) {
		if (k + 2 > p->len)
			return false;
		m->pid = (uint16_t)(p->body[k] << 8 | p->body[k + 1]);
		k += 2;
	}
	if (version == 5) {
		/* Property length (a variable byte integer), then the properties. */
		size_t plen = 0;
		for (unsigned shift = 0;; shift += 7) {
			if (k >= p->len || shift > 21)
				return false;
			uint8_t b = p->body[k++];
			plen |= (size_t)(b & 0x7f) << shift;
			if (!(b & 0x80))
				break;
		}
		if (k + plen > p->len)
			return false;
		k += plen;
	}
	m->payload = p->body + k;
	m->len = p->len - k;
	return true;
}

bool raw_puback(int fd, uint16_t pid)
{
	uint8_t pkt[4] = { RAW_PUBACK, 2, (uint8_t)(pid >> 8), (uint8_t)pid };
	return raw_send(fd, pkt, sizeof(pkt));
}

bool raw_disconnect(int fd)
{
	static const uint8_t pkt[2] = { RAW_DISCONNECT, 0 };
	return raw_send(fd, pkt, sizeof(pkt));
}

/* Read until a packet of type want (its first byte's high nibble) arrives;
 * PUBLISH packets before it are counted and acknowledged (QoS 1). */
static int read_until(int fd, int version, uint8_t want, struct raw_packet *p, int base_ms, int *publishes)
{
	struct veil_deadline d = veil_deadline_in(base_ms);
	for (;;) {
		if (read_packet(fd, p, &d) != 0)
			return -1;
		if ((p->type & 0xf0) == want)
			return 0;
		struct raw_message m;
		if (raw_publish_parse(p, version, &m)) {
			if (publishes)
				(*publishes)++;
			if (m.qos == 1 && !raw_puback(fd, m.pid))
				return -1;
		}
	}
}

int raw_subscribe(int fd, int version, uint16_t pid, const char *filter, int qos, int base_ms, int *publishes)
{
	uint8_t body[600], pkt[620];
	size_t n = 0, fl = strlen(filter);
	if (fl > 512)
		return -1;
	n += put16(body, pid);
	if (version == 5)
		body[n++] = 0; /* no properties */
	n += putstr(body + n, filter, fl);
	body[n++] = (uint8_t)qos;
	size_t m = frame(0x82, body, n, pkt, sizeof(pkt));
	struct raw_packet p;
	if (!m || !raw_send(fd, pkt, m) || read_until(fd, version, RAW_SUBACK, &p, base_ms, publishes) != 0)
		return -1;
	/* packet id, (MQTT 5: properties), then one code per filter */
	size_t k = 2;
	if (version == 5 && p.len > k)
		k += 1 + p.body[k];
	return k < p.len ? p.body[k] : -1;
}

bool raw_publish(int fd, int version, const char *topic, const void *payload, size_t len, int qos, uint16_t pid,
                 int base_ms)
{
	size_t tl = strlen(topic);
	if (tl > 1024 || len > RAW_PACKET_MAX - 1100)
		return false;
	uint8_t body[RAW_PACKET_MAX], pkt[RAW_PACKET_MAX + 8];
	size_t n = putstr(body, topic, tl);
	if (qos > 0)
		n += put16(body + n, pid);
	if (version == 5)
		body[n++] = 0; /* no properties */
	memcpy(body + n, payload, len);
	n += len;
	size_t m = frame((uint8_t)(0x30 | (qos << 1)), body, n, pkt, sizeof(pkt));
	if (!m || !raw_send(fd, pkt, m))
		return false;
	if (qos == 0)
		return true;
	struct raw_packet p;
	return read_until(fd, version, RAW_PUBACK, &p, base_ms, NULL) == 0 && p.len >= 2 &&
	       (p.body[0] << 8 | p.body[1]) == pid && (p.len < 3 || p.body[2] < 0x80);
}

bool raw_ping_count(int fd, int version, int base_ms, int *publishes)
{
	static const uint8_t pingreq[2] = { 0xc0, 0x00 };
	struct raw_packet p;
	return raw_send(fd, pingreq, sizeof(pingreq)) &&
	       read_until(fd, version, RAW_PINGRESP, &p, base_ms, publishes) == 0;
}

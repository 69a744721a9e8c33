/*
 * Debian's HAProxy in front of test brokers, as a deployment runs it
 * (docs/SCALING.md): TCP mode, on a free 127.0.0.1 port, started and
 * stopped by PID. Its connections to the brokers leave from a chosen
 * loopback address, so a broker log tells a client that came through it
 * from one that did not. A missing haproxy fails the test.
 */
#ifndef VEIL_TEST_HAPROXY_H
#define VEIL_TEST_HAPROXY_H

#include <stddef.h>
#include <sys/types.h>

struct test_haproxy {
	pid_t pid;
	int port;
	char dir[256];  /* private temp dir: haproxy.cfg, haproxy.log */
	char cfg[300];
	char log[300];
};

/* HAProxy (HAPROXY in the environment, else /usr/sbin/haproxy) on a free
 * port, round robin over the brokers on ports[0..n), connecting to them
 * from the address source (a 127.x.y.z). The config is checked first
 * (haproxy -c). 0 once it accepts connections, within 10 s (scaled);
 * otherwise its output is printed and -1 returned. */
int test_haproxy_start(struct test_haproxy *h, const int *ports, size_t n, const char *source);
/* Stop by PID and remove the directory. */
void test_haproxy_stop(struct test_haproxy *h);

#endif

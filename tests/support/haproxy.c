/* HAProxy in front of test brokers (see haproxy.h). */
#include "haproxy.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "broker.h"
#include "files.h"
#include "proc.h"
#include "raw_mqtt.h"
#include "timing.h"

static const char *haproxy_bin(void)
{
	const char *e = getenv("HAPROXY");
	return e && *e ? e : "/usr/sbin/haproxy";
}

static int write_cfg(const struct test_haproxy *h, const int *ports, size_t n, const char *source)
{
	FILE *f = fopen(h->cfg, "w");
	if (!f)
		return -1;
	fprintf(f,
	        "global\n"
	        "    maxconn 1024\n"
	        "defaults\n"
	        "    mode tcp\n"
	        "    timeout connect 2s\n"
	        "    timeout client 1m\n"
	        "    timeout server 1m\n"
	        "frontend mqtt\n"
	        "    bind 127.0.0.1:%d\n"
	        "    default_backend nodes\n"
	        "backend nodes\n"
	        "    balance roundrobin\n",
	        h->port);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "    server n%zu 127.0.0.1:%d source %s\n", i, ports[i], source);
	return fclose(f) == 0 ? 0 : -1;
}

int test_haproxy_start(struct test_haproxy *h, const int *ports, size_t n, const char *source)
{
	memset(h, 0, sizeof(*h));
	if (access(haproxy_bin(), X_OK) != 0) {
		fprintf(stderr, "haproxy: %s is missing (tools/install-deps.sh installs Debian's haproxy)\n",
		        haproxy_bin());
		return -1;
	}
	if (test_mkdtemp(h->dir, sizeof(h->dir)) != 0 || (h->port = test_free_port()) <= 0)
		return -1;
	snprintf(h->cfg, sizeof(h->cfg), "%s/haproxy.cfg", h->dir);
	snprintf(h->log, sizeof(h->log), "%s/haproxy.log", h->dir);
	if (write_cfg(h, ports, n, source) != 0)
		return -1;
	const char *check[] = { haproxy_bin(), "-c", "-f", h->cfg, NULL };
	struct test_spawn o = { .out = h->log };
	if (test_wait_exit(test_spawn(check, &o), 10000) != 0) {
		test_file_dump("haproxy -c", h->log);
		return -1;
	}
	const char *run[] = { haproxy_bin(), "-db", "-f", h->cfg, NULL };
	h->pid = test_spawn(run, &o);
	struct veil_deadline d = veil_deadline_in(10000);
	while (!veil_deadline_passed(&d)) {
		int fd = raw_socket(h->port);
		if (fd >= 0) {
			close(fd);
			return 0;
		}
		veil_poll_pause();
	}
	test_file_dump("haproxy", h->log);
	test_haproxy_stop(h);
	return -1;
}

void test_haproxy_stop(struct test_haproxy *h)
{
	if (h->pid > 0)
		test_stop(h->pid);
	h->pid = 0;
	if (h->dir[0])
		test_rmtree(h->dir);
	h->dir[0] = '\0';
}

/* Real Mosquitto brokers for tests (see broker.h). */
#include "broker.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "files.h"
#include "timing.h"

#ifndef MOSQUITTO_BIN
#define MOSQUITTO_BIN "/usr/sbin/mosquitto"
#endif

int test_free_port(void)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return -1;
	struct sockaddr_in a = { 0 };
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = 0;
	socklen_t len = sizeof(a);
	int port = -1;
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0 && getsockname(fd, (struct sockaddr *)&a, &len) == 0)
		port = ntohs(a.sin_port);
	close(fd);
	return port;
}

static bool port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return false;
	struct sockaddr_in a = { 0 };
	a.sin_family = AF_INET;
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	a.sin_port = htons((uint16_t)port);
	bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

/* Replace %PORT% and %DIR% in src. Caller frees. */
static char *substitute(const char *src, int port, const char *dir)
{
	char portstr[16];
	snprintf(portstr, sizeof(portstr), "%d", port);
	size_t cap = strlen(src) * 2 + 4096;
	char *out = malloc(cap);
	if (!out)
		return NULL;
	size_t o = 0;
	for (const char *p = src; *p;) {
		const char *rep = NULL;
		size_t skip = 0;
		if (strncmp(p, "%PORT%", 6) == 0) {
			rep = portstr;
			skip = 6;
		} else if (strncmp(p, "%DIR%", 5) == 0) {
			rep = dir;
			skip = 5;
		}
		if (rep) {
			size_t rl = strlen(rep);
			if (o + rl + 1 >= cap) {
				cap = (cap + rl) * 2;
				char *n = realloc(out, cap);
				if (!n) {
					free(out);
					return NULL;
				}
				out = n;
			}
			memcpy(out + o, rep, rl);
			o += rl;
			p += skip;
		} else {
			if (o + 2 >= cap) {
				cap *= 2;
				char *n = realloc(out, cap);
				if (!n) {
					free(out);
					return NULL;
				}
				out = n;
			}
			out[o++] = *p++;
		}
	}
	out[o] = '\0';
	return out;
}

static int spawn(struct test_broker *b)
{
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int fd = open(b->log, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
			close(fd);
		}
		/* ASan build: the plugin is instrumented, mosquitto is not. Leak
		 * checks of the broker belong to the valgrind runs, not here. */
		const char *asan = getenv("VEIL_ASAN_RUNTIME");
		if (asan && *asan) {
			/* A test may add options (broker.h, VEIL_TEST_BROKER_ASAN_OPTIONS). */
			const char *more = getenv("VEIL_TEST_BROKER_ASAN_OPTIONS");
			char opts[300];
			snprintf(opts, sizeof(opts), "detect_leaks=0:abort_on_error=1%s%s", more && *more ? ":" : "",
			         more && *more ? more : "");
			setenv("LD_PRELOAD", asan, 1);
			setenv("ASAN_OPTIONS", opts, 1);
		}
		if (getenv("VEIL_VALGRIND")) {
			char logopt[400];
			snprintf(logopt, sizeof(logopt), "--log-file=%s/valgrind.%%p.log", b->dir);
			execlp("valgrind", "valgrind", "--tool=memcheck", "--leak-check=full",
			       "--errors-for-leak-kinds=definite", "--error-exitcode=99", logopt, MOSQUITTO_BIN, "-c",
			       b->conf, (char *)NULL);
			_exit(127);
		}
		execl(MOSQUITTO_BIN, "mosquitto", "-c", b->conf, (char *)NULL);
		_exit(127);
	}
	b->pid = pid;
	/* Memcheck starts slowly: the timing factor covers it (x10). */
	struct veil_deadline d = veil_deadline_in(10000);
	while (!veil_deadline_passed(&d)) {
		if (port_open(b->port))
			return 0;
		int st;
		if (waitpid(pid, &st, WNOHANG) == pid) {
			b->pid = 0;
			test_file_dump("broker log", b->log);
			return -1;
		}
		veil_poll_pause();
	}
	test_file_dump("broker log", b->log);
	test_broker_stop(b);
	return -1;
}

int test_broker_start(struct test_broker *b, const char *extra_conf)
{
	memset(b, 0, sizeof(*b));
	if (test_mkdtemp(b->dir, sizeof(b->dir)) != 0)
		return -1;
	b->port = test_free_port();
	if (b->port <= 0)
		return -1;
	snprintf(b->conf, sizeof(b->conf), "%s/mosquitto.conf", b->dir);
	snprintf(b->log, sizeof(b->log), "%s/broker.log", b->dir);
	char *extra = substitute(extra_conf ? extra_conf : "", b->port, b->dir);
	if (!extra)
		return -1;
	FILE *f = fopen(b->conf, "w");
	if (!f) {
		free(extra);
		return -1;
	}
	/* As root, mosquitto would switch to the "mosquitto" user, which cannot
	 * read this private directory: stay the user running the test. */
	/* (Only when the test does not choose: mosquitto refuses a second one.) */
	bool has_user = strncmp(extra, "user ", 5) == 0 || strstr(extra, "\nuser ") != NULL;
	struct passwd *pw = getpwuid(getuid());
	if (!has_user)
		fprintf(f, "user %s\n", pw ? pw->pw_name : "root");
	/* log_dest file, not stdout: mosquitto's stdout into a file is block
	 * buffered, and tests wait for log lines while the broker runs. */
	fprintf(f,
	        "per_listener_settings false\n"
	        "log_dest file %s\n"
	        "log_type all\n"
	        "log_timestamp true\n"
	        "listener %d 127.0.0.1\n"
	        "%s\n",
	        b->log, b->port, extra);
	fclose(f);
	free(extra);
	return spawn(b);
}

int test_broker_start_refused(const char *extra_conf, const char *needle)
{
	struct test_broker b;
	int rc = test_broker_start(&b, extra_conf) == 0 ? -1 : 0;
	if (rc == -1)
		test_broker_stop(&b);
	else if (!test_broker_log_contains(&b, needle)) {
		fprintf(stderr, "no '%s' in the broker log\n", needle);
		rc = -2;
	}
	test_broker_cleanup(&b);
	return rc;
}

int test_broker_restart(struct test_broker *b)
{
	if (b->pid > 0)
		return -1;
	return spawn(b);
}

int test_broker_stop(struct test_broker *b)
{
	if (b->pid <= 0)
		return -1;
	kill(b->pid, SIGTERM);
	int st = 0;
	struct veil_deadline d = veil_deadline_in(6000);
	while (!veil_deadline_passed(&d)) {
		pid_t r = waitpid(b->pid, &st, WNOHANG);
		if (r == b->pid) {
			b->pid = 0;
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		}
		veil_poll_pause();
	}
	kill(b->pid, SIGKILL);
	waitpid(b->pid, &st, 0);
	b->pid = 0;
	return -1;
}

void test_broker_kill(struct test_broker *b)
{
	if (b->pid <= 0)
		return;
	kill(b->pid, SIGKILL);
	int st;
	waitpid(b->pid, &st, 0);
	b->pid = 0;
}

int test_broker_reload(struct test_broker *b)
{
	return b->pid > 0 ? kill(b->pid, SIGHUP) : -1;
}

void test_broker_cleanup(struct test_broker *b)
{
	if (b->pid > 0)
		test_broker_stop(b);
	if (b->dir[0]) {
		test_rmtree(b->dir);
		b->dir[0] = '\0';
	}
}

bool test_broker_log_contains(const struct test_broker *b, const char *needle)
{
	return test_file_has(b->log, needle);
}

bool test_broker_log_wait(const struct test_broker *b, const char *needle, int base_ms)
{
	return test_file_wait(b->log, needle, base_ms);
}

const char *test_plugin_path(void)
{
	const char *p = getenv("VEIL_PLUGIN");
	return (p && *p) ? p : NULL;
}

static long count_lines(const char *cmd)
{
	FILE *p = popen(cmd, "r");
	if (!p)
		return -1;
	long n = -1;
	if (fscanf(p, "%ld", &n) != 1)
		n = -1;
	pclose(p);
	return n;
}

bool test_broker_valgrind_clean(const struct test_broker *b, char *summary, size_t len)
{
	char cmd[700];
	/* Logs present, every ERROR SUMMARY says 0 errors, nothing definitely lost. */
	snprintf(cmd, sizeof(cmd), "cat '%s'/valgrind.*.log 2>/dev/null | grep -c 'ERROR SUMMARY'", b->dir);
	long logs = count_lines(cmd);
	snprintf(cmd, sizeof(cmd), "cat '%s'/valgrind.*.log | grep 'ERROR SUMMARY' | grep -vc ': 0 errors'", b->dir);
	long bad = count_lines(cmd);
	snprintf(cmd, sizeof(cmd),
	         "cat '%s'/valgrind.*.log | grep 'definitely lost:' | grep -vc 'definitely lost: 0 bytes'", b->dir);
	long leaks = count_lines(cmd);
	snprintf(summary, len, "memcheck logs=%ld with-errors=%ld with-definite-leaks=%ld", logs, bad, leaks);
	return logs > 0 && bad == 0 && leaks == 0;
}

/*
 * Real Mosquitto brokers for tests: start on a free 127.0.0.1 port with a
 * generated config, wait until it accepts connections, stop by PID. Every
 * wait has a deadline scaled by the test time factor (timing.h).
 */
#ifndef VEIL_TEST_BROKER_H
#define VEIL_TEST_BROKER_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

#include "files.h" /* test_mkdtemp, test_write_file: brokers' files */

struct test_broker {
	pid_t pid;
	int port;
	char dir[256];      /* private temp dir: config, log, persistence */
	char conf[300];
	char log[300];
};

/* A free TCP port on 127.0.0.1 (bound then released). */
int test_free_port(void);

/*
 * Start mosquitto. extra_conf is appended after "listener <port> 127.0.0.1"
 * (may be NULL; "%PORT%" and "%DIR%" are substituted). Returns 0 when the
 * broker accepts TCP connections within 10 s (scaled); on failure prints the
 * log.
 */
int test_broker_start(struct test_broker *b, const char *extra_conf);
/* Start again with the same dir, port and config (after a stop). */
int test_broker_restart(struct test_broker *b);
/* SIGTERM, wait up to 6 s (scaled), then SIGKILL; returns the exit status
 * (or -1). */
int test_broker_stop(struct test_broker *b);
/* SIGKILL without cleanup (fault tests). */
void test_broker_kill(struct test_broker *b);
/* Send SIGHUP (reload). */
int test_broker_reload(struct test_broker *b);
/* Remove the broker's directory. */
void test_broker_cleanup(struct test_broker *b);
/* True if the broker log contains needle. */
bool test_broker_log_contains(const struct test_broker *b, const char *needle);
/* Wait until needle appears in the log; false after base_ms (scaled). */
bool test_broker_log_wait(const struct test_broker *b, const char *needle, int base_ms);
/* A broker with extra_conf (as test_broker_start) that must not start:
 * 0 when it exited and its log says needle; -1 when it started (it is
 * stopped again), -2 when the log does not say needle (printed). The
 * broker's directory is removed either way. */
int test_broker_start_refused(const char *extra_conf, const char *needle);

/* In an ASan build (VEIL_ASAN_RUNTIME set by ctest), a child that loads an
 * instrumented plugin or preload must get this runtime first in LD_PRELOAD.
 * Brokers get ASAN_OPTIONS detect_leaks=0:abort_on_error=1, plus whatever
 * VEIL_TEST_BROKER_ASAN_OPTIONS says (e.g. quarantine_size_mb=0 for a test
 * that needs the broker's freed memory reused, as glibc's malloc does). */

/* VEIL_VALGRIND=1 in the environment runs brokers under valgrind memcheck
 * (logs in the broker dir). After test_broker_stop, this reports whether every
 * log shows zero errors and nothing definitely lost; summary gets the lines. */
bool test_broker_valgrind_clean(const struct test_broker *b, char *summary, size_t len);

/* Path of the built plugin (VEIL_PLUGIN env, set by ctest). */
const char *test_plugin_path(void);

#endif

/*
 * Child processes for tests (shipped programs, Paho's sample apps, the CLI,
 * mosquitto_sub/pub): started with fork/exec, output to files, waited for
 * with a deadline, stopped by their own PID.
 */
#ifndef VEIL_TEST_PROC_H
#define VEIL_TEST_PROC_H

#include <sys/types.h>

struct test_spawn {
	const char *in;   /* stdin from this file (NULL: /dev/null) */
	const char *out;  /* stdout to this file, truncated first (NULL: /dev/null) */
	const char *err;  /* stderr to this file, truncated first (NULL: with stdout) */
	/* Environment changes in the child: "NAME=value" sets, a bare "NAME"
	 * unsets; NULL-terminated (the array may be NULL). */
	const char *const *env;
};

/* Start argv (argv[0] looked up in PATH when it has no '/'). The output
 * files are truncated before the child starts: a reader never sees what a
 * previous process left there. Fails the test if fork fails. */
pid_t test_spawn(const char *const argv[], const struct test_spawn *o);
/* Exit status (128 + signal when killed by one), or -1 after killing it
 * with SIGKILL when base_ms (scaled) passed. */
int test_wait_exit(pid_t pid, int base_ms);
/* SIGTERM, then SIGKILL if it is still there after 3 s (scaled). */
void test_stop(pid_t pid);

#endif

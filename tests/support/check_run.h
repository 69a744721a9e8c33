/*
 * The main() of every Check test program: libsodium initialised, the whole
 * suite run (forking, as Check does by default), the exit status ctest reads.
 */
#ifndef VEIL_TEST_CHECK_RUN_H
#define VEIL_TEST_CHECK_RUN_H

#include <check.h>

/* Runs every test of s (the runner frees it); EXIT_SUCCESS if none failed. */
int veil_check_run(Suite *s);

#endif

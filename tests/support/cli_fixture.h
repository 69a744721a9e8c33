/*
 * The `veil` CLI fixture (clifx_), shared by tests/broker/check_cli_*.c: the
 * libveil client fixture's files (authority, keyrings, devices sensor-1 and
 * dash-1) and a real Mosquitto with mosquitto_veil.so (its ACL given by the
 * test), and the CLI ($VEIL_CLI) run as a user runs it: a process per
 * command, its stdout and stderr in files named by a tag, waited for with
 * deadlines.
 */
#ifndef VEIL_TEST_CLI_FIXTURE_H
#define VEIL_TEST_CLI_FIXTURE_H

#include <stdbool.h>
#include <sys/types.h>

#include "client_fixture.h"

/* Sensors write their own topics (encrypted), dashboards read everything,
 * public/# is open (plaintext allowed by the keyring too). */
#define CLIFX_ACL                                                                                  \
	"pattern readwrite,encrypted sensors/%c/#\n"                                               \
	"pattern read sensors/#\n"                                                                 \
	"pattern readwrite,signed secure/#\n"                                                      \
	"pattern readwrite public/#\n"

struct clifx {
	struct cfx c;              /* dir, authority, keyring, broker */
	char port[16];
	char auth_pub[400];
	char acl[400];
	const char *cli;
};

/* Files, devices sensor-1 and dash-1 (<dir>/<id>.key/.cred), and a broker
 * with the plugin: anonymous clients allowed (plain observers, "auto-" ids),
 * acl (NULL: CLIFX_ACL); extra is appended to the broker's config. */
void clifx_setup(struct clifx *f, const char *acl, const char *extra);
void clifx_teardown(struct clifx *f);

/* Run `veil CMD [connection args for dev] ARGS... NULL`. dev names a device
 * (-h, -p, --identity, --credential, --keyring of the fixture) or is NULL
 * (no connection arguments: tools that need none, or tests that give their
 * own). stdout/stderr go to <dir>/<tag>.out/.err, stdin comes from in (a
 * path, or NULL: /dev/null). start returns the PID, run the exit status
 * (-1 after 20 s, scaled). */
pid_t clifx_start(struct clifx *f, const char *tag, const char *in, const char *cmd, const char *dev, ...)
	__attribute__((sentinel));
int clifx_run(struct clifx *f, const char *tag, const char *in, const char *cmd, const char *dev, ...)
	__attribute__((sentinel));
/* The same with an environment change ("NAME=value"; NULL-terminated). */
int clifx_run_env(struct clifx *f, const char *const *env, const char *tag, const char *in, const char *cmd,
                  const char *dev, ...) __attribute__((sentinel));

/* <dir>/<name> */
void clifx_path(const struct clifx *f, const char *name, char *out, size_t cap);
/* What the command wrote so far (ext "out" or "err"), NUL terminated, in
 * one of a few rotating static buffers (valid until a few calls later). */
const char *clifx_text(const struct clifx *f, const char *tag, const char *ext);
/* Wait until <tag>.<ext> holds needle; false after base_ms (scaled). */
bool clifx_wait(const struct clifx *f, const char *tag, const char *ext, const char *needle, int base_ms);
/* Wait until the broker logged n SUBACKs to client_id (a subscriber is
 * ready): the broker's log is the event. */
bool clifx_wait_subacks(const struct clifx *f, const char *client_id, int n);

#endif

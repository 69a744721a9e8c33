/*
 * The key lifecycle fixture (lfx_), shared by issue 13's scenarios
 * (tests/broker/check_lifecycle_*.c, check_drill_*.c). Everything real: a
 * Mosquitto with the Veil plugin (or, for what must hold through a broker
 * that checks nothing, without it), veil-keyd child processes, libveil
 * devices (veil_async, key service on, no keyring file), a raw Paho client
 * that records traffic as an eavesdropper would.
 *
 * Authorities: lfx.auth[0] is the fleet's; lfx.auth[1] a second one (the
 * new authority of a rotation, or one a device must never come to trust).
 * The plugin and every keyd read lfx.trusted (lfx_trust sets it); each
 * device reads its own authorities file.
 *
 * A device keeps, as an adversary holding it would, every key it ever held:
 * each time it logs that a bundle was applied, the fixture reads its
 * state_dir's keys file into the device's "ever" key set once the file
 * holds that bundle's version (the device writes it behind, from its keeper
 * thread; two bundles applied before one write leave only the newer set on
 * disk). Every question about a device's keys first waits for that
 * (lifecycle_device.c).
 */
#ifndef VEIL_TEST_LIFECYCLE_FIXTURE_H
#define VEIL_TEST_LIFECYCLE_FIXTURE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "veil/veil.h"
#include "broker.h"

#define LFX_AUTH_MAX 2
#define LFX_KEYS_MAX 256

struct lfx_opts {
	bool no_plugin;           /* a broker that checks nothing (anonymous allowed) */
	const char *acl;          /* the rules: the plugin's and keyd's */
	const char *broker_extra; /* appended to the broker's config (may be NULL) */
	const char *passwd;       /* the plugin's password file (bridge logins), or NULL */
};

struct lfx {
	char dir[256];
	struct veil_identity *auth[LFX_AUTH_MAX];
	char trusted[320];        /* the authorities the plugin and keyd trust */
	char acl[320], revoked[320];
	bool plugin;
	struct test_broker broker;
	char uri[64];
};
extern struct lfx lfx;

/* Checked fixture parts: the dir, both authorities (only auth[0] trusted),
 * the rules, an empty revocation list, the broker (persistence on). */
void lfx_setup(const struct lfx_opts *o);
/* Stops every keyd and device process still running, the broker, removes
 * the dir. */
void lfx_teardown(void);
/* <dir>/<name> into out. */
void lfx_path(char *out, size_t cap, const char *name);
/* lfx.trusted (the plugin and keyd watch it) holds the authorities whose
 * bit is set in mask (bit i: lfx.auth[i]). */
void lfx_trust(unsigned mask);
/* A file <dir>/<name> holding the authorities of mask: a device's own. */
void lfx_authorities_file(const char *name, unsigned mask, char *out, size_t cap);
/* Add a line to the revocation list ("client <id>", "credential <hex>");
 * the plugin and keyd notice within about a second. */
void lfx_revoke(const char *line);
void lfx_revoke_credential(const uint8_t id[VEIL_CREDENTIAL_ID_BYTES]);
/* <dir>/<stem>.key and <dir>/<stem>.cred for client_id (roles may be
 * NULL), signed by lfx.auth[a], valid a day, each made when absent and kept
 * otherwise, unless how says: LFX_NEW_KEY a new identity (a stolen key
 * replaced), LFX_NEW_CRED a new credential (re-issued). The credential's
 * parsed form in *out (may be NULL). */
#define LFX_NEW_KEY 1U
#define LFX_NEW_CRED 2U
void lfx_identity(const char *stem, const char *client_id, const char *roles, int a, unsigned how,
                  struct veil_credential *out);

/* ---- veil-keyd -------------------------------------------------------- */

struct lfx_keyd {
	char name[32];
	char conf[320], log[320], db[320];
	pid_t pid;
};
/* A keyd named name (client id veil-keyd, its identity <name>.key with a
 * credential from lfx.auth[0], role veil-keyd), its config
 * <dir>/<name>.conf with settings appended (token_window, rekey_grace,
 * scope lines, ...), store and storage key initialised (--init). */
void lfx_keyd_new(struct lfx_keyd *k, const char *name, const char *settings);
/* Start it (env: "NAME=value" additions, NULL-terminated, may be NULL) and
 * wait until it subscribed. Its log is appended to across restarts. With
 * VEIL_KEYD_CRASH_AFTER in env it runs veil-keyd-test-hooks (VEIL_KEYD_HOOKS),
 * the test-only build that has the crash hook; veil-keyd otherwise. */
void lfx_keyd_start(struct lfx_keyd *k, const char *const *env);
/* SIGTERM, and it exits 0. */
void lfx_keyd_stop(struct lfx_keyd *k);
/* Its exit status once it exited by itself (-1 after base_ms, scaled). */
int lfx_keyd_exit(struct lfx_keyd *k, int base_ms);
int lfx_keyd_count(const struct lfx_keyd *k, const char *needle);
/* Wait until its log holds needle count times (the test fails after base_ms). */
void lfx_keyd_wait(const struct lfx_keyd *k, const char *needle, int count, int base_ms);

/* ---- key sets ------------------------------------------------------------ */

struct lfx_key {
	uint32_t key_id, epoch;
	uint64_t send_from;       /* the grant's, unix seconds */
	uint8_t flags;
	char scope[256];          /* a grant's scope: VEIL__GRANT_SCOPE_MAX + 1 */
	uint8_t key[VEIL_KEY_BYTES];
};
struct lfx_keyset {
	size_t n;
	struct lfx_key k[LFX_KEYS_MAX];
};
/* Add the epochs of a state_dir keys file to ks (a key id once); the
 * bundle version in *version (may be NULL). false when there is no file. */
bool lfx_keys_file(const char *path, struct lfx_keyset *ks, uint64_t *version);
const struct lfx_key *lfx_keyset_find(const struct lfx_keyset *ks, uint32_t key_id);
/* Open an envelope on topic with the key of its key id in ks: VEIL_OK and
 * the plaintext (NUL terminated) in pt, or why not (UNKNOWN_KEY when ks
 * lacks its key id). */
int lfx_open(const struct lfx_keyset *ks, const char *topic, const uint8_t *env, size_t len, char *pt,
             size_t cap, uint32_t *key_id);

/* ---- devices (libveil veil_async, lifecycle_device.c) --------------------- */

struct lfx_msg {
	char topic[96];
	char payload[96];
	uint32_t key_id;
	bool is_signed;
};

struct lfx_dev_opts {
	const char *roles;  /* the credential's (NULL: none) */
	int authority;      /* index of the credential's signer */
	unsigned trust;     /* the device's own trusted authorities (mask; 0: just auth[0]) */
	const char *uri;    /* another broker, without the plugin (NULL: lfx.uri) */
	bool reissue;       /* lfx_dev_renew: a new credential from authority */
};
struct lfx_dev;
/* A device with client id id: identity and credential (lfx_identity),
 * authorities file, state_dir <dir>/<id>.state, client config; the client
 * made (not connected). opts may be NULL. */
struct lfx_dev *lfx_dev_new(const char *id, const struct lfx_dev_opts *opts);
/* A device's files as lfx_dev_new writes them, without a client: for
 * another front end (the preload) to read. The config's path in conf;
 * extra (may be NULL) is appended to it. */
void lfx_dev_conf(const char *id, const struct lfx_dev_opts *opts, const char *extra, char *conf, size_t cap);
/* n devices dev-0 .. dev-<n-1> with role fleet, connected and subscribed
 * to fleet/# (the scenarios' shared scope). */
void lfx_fleet(struct lfx_dev **d, int n);
/* Connect (returns once ready to publish, or the connect's error). */
int lfx_dev_connect(struct lfx_dev *d);
/* The client freed and made again from the same files (a re-issued
 * credential, a changed authorities file): what it recorded stays. */
void lfx_dev_renew(struct lfx_dev *d, const struct lfx_dev_opts *opts);
int lfx_dev_sub(struct lfx_dev *d, const char *filter);
/* Publish at QoS 1 and wait for the broker's acknowledgement. */
int lfx_dev_pub(struct lfx_dev *d, const char *topic, const char *payload);
const char *lfx_dev_id(const struct lfx_dev *d);
const char *lfx_dev_state(const struct lfx_dev *d);
const struct veil_credential *lfx_dev_cred(const struct lfx_dev *d);
/* Messages delivered, in order (copies). */
size_t lfx_dev_n_msgs(struct lfx_dev *d);
struct lfx_msg lfx_dev_msg(struct lfx_dev *d, size_t i);
size_t lfx_dev_count(struct lfx_dev *d, const char *payload);
bool lfx_dev_wait_msg(struct lfx_dev *d, const char *payload, int base_ms);
/* Refusals with err (0: any). */
size_t lfx_dev_refused(struct lfx_dev *d, int err);
bool lfx_dev_wait_refused(struct lfx_dev *d, int err, size_t count, int base_ms);
/* Bundles applied since it was made. */
size_t lfx_dev_applied(struct lfx_dev *d);
bool lfx_dev_wait_applied(struct lfx_dev *d, size_t count, int base_ms);
/* Every key it ever held (a copy), and what its newest bundle held. */
void lfx_dev_ever(struct lfx_dev *d, struct lfx_keyset *out);
void lfx_dev_held(struct lfx_dev *d, struct lfx_keyset *out);
/* Whether its newest bundle holds a superseding epoch that old lacks:
 * it applied a rekey that came after old was taken. */
bool lfx_dev_rekeyed(struct lfx_dev *d, const struct lfx_keyset *old);
bool lfx_dev_wait_rekeyed(struct lfx_dev *d, const struct lfx_keyset *old, int base_ms);
/* That superseding epoch, copied to *out; false when there is none. */
bool lfx_dev_rekey_epoch(struct lfx_dev *d, const struct lfx_keyset *old, struct lfx_key *out);
size_t lfx_dev_log_count(struct lfx_dev *d, const char *needle);
bool lfx_dev_wait_log(struct lfx_dev *d, const char *needle, size_t count, int base_ms);
void lfx_dev_dump(struct lfx_dev *d);
bool lfx_dev_connected(struct lfx_dev *d);
/* Successful connects so far (libveil's stats; reconnects included). */
uint64_t lfx_dev_connects(struct lfx_dev *d);
/* Whether the connection was lost since it was made (by the broker). */
bool lfx_dev_wait_lost(struct lfx_dev *d, int base_ms);
void lfx_dev_free(struct lfx_dev *d);

/* ---- the eavesdropper: a raw Paho client recording what it may read ----- */

struct lfx_cap_msg {
	char topic[128];
	uint8_t *payload;
	size_t len;
};
struct lfx_cap;
/* Logs in as client_id (a credential with roles from lfx.auth[0]: the
 * plugin's rules decide what it reads) and subscribes to filters at QoS 1. */
struct lfx_cap *lfx_cap_start(const char *client_id, const char *roles, const char *const *filters, size_t n);
size_t lfx_cap_n(struct lfx_cap *c);
/* Message i (valid until lfx_cap_free). */
const struct lfx_cap_msg *lfx_cap_get(struct lfx_cap *c, size_t i);
/* Publish raw bytes (QoS 1, retained or not) and wait for the PUBACK:
 * what an attacker holding this login sends. */
int lfx_cap_publish(struct lfx_cap *c, const char *topic, const uint8_t *buf, size_t len, bool retained);
void lfx_cap_free(struct lfx_cap *c);

#endif

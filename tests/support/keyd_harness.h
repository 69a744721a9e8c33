/*
 * keyd's service in-process for unit tests (tests/unit/check_keyd_service.c,
 * check_keyd_rekey.c): real files in a temp dir (authority, keyd's identity
 * and credential, ACL, revocation list, config), a real store and storage
 * key, an injected clock; what the service publishes is captured (the
 * newest per topic) and its audit lines collected. Devices are the core-only
 * simulated ones of keyd_device.h.
 */
#ifndef VEIL_TEST_KEYD_HARNESS_H
#define VEIL_TEST_KEYD_HARNESS_H

#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"
#include "../../core/bundle.h"
#include "keyd_device.h"
#include "service.h"
#include "store.h"

#define KDH_MAXPUB 64

struct kdh_pub {
	char topic[200];
	uint8_t *buf;
	size_t len;
	uint64_t version;
};

struct kdh {
	char dir[256], cfgpath[300], aclpath[300], revpath[300], dbpath[300], skpath[300];
	struct veil_identity *auth;
	uint8_t auth_pk[VEIL_PK_BYTES];
	struct kd_store *st;
	uint8_t *skey;
	struct kd_service *svc;
	struct kd_now now;
	struct kdh_pub pubs[KDH_MAXPUB]; /* the newest publish per topic */
	size_t n_pubs, n_bundles, n_statements;
	char audit[1 << 16];
	size_t audit_len;
	void (*on_audit)(const char *line); /* a test's hook, called for each audit line */
};
extern struct kdh kdh;

/* The fleet's rules: sensors own factory/<id>/# (encrypted); the role
 * dashboard reads factory/#. */
extern const char kdh_acl[];

/* Checked fixture: files, storage key, config (scope factory/%c/# period
 * 3600 lead 300 grace 600 depth 1), the service started at the wall clock. */
void kdh_setup(void);
void kdh_teardown(void);
/* The config with extra lines appended. */
void kdh_write_config(const char *extra);
void kdh_start(void);
void kdh_stop(void);
uint64_t kdh_secs(void);
/* Both clocks s seconds on. */
void kdh_advance(uint64_t s);
/* A device message of d's (kind, ts, version) on its request topic. */
int kdh_send(struct test_kd_device *d, uint8_t kind, uint64_t ts, uint64_t version);
/* A device (credential valid 30 days, roles may be NULL) that asks and
 * opens its first bundle; its grants in *g (NULL: freed). */
void kdh_join(struct test_kd_device *d, const char *client_id, const char *roles, struct veil__grants **g);
/* A request now, holding d's version. */
int kdh_request(struct test_kd_device *d);
struct kdh_pub *kdh_pub_of(const char *topic);
struct kdh_pub *kdh_bundle_of(const struct test_kd_device *d);
/* Open d's newest bundle as d would; grants in *g. */
int kdh_open(struct test_kd_device *d, struct veil__grants **g);
/* The grant of scope carrying the supersedes flag, or NULL. */
const struct veil__grant *kdh_superseding(const struct veil__grants *g, const char *scope);
/* How many audit lines hold needle. */
size_t kdh_audit_count(const char *needle);
/* The authority file with a second key added (its path in the harness
 * dir); returns the file's former text (caller frees) to put back. */
char *kdh_add_authority(const uint8_t pk[VEIL_PK_BYTES]);

#endif

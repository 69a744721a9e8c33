/*
 * keyd's request handling and bundle issuing (docs/PROTOCOL.md sections
 * 10-13): verify device messages (veil__devmsg_verify, then keyd's own
 * nonce cache and newest-message check), keep one row per credential,
 * seal each bundle to the receive key of the device's newest accepted
 * message, version = max(last + 1, clock in microseconds) committed before
 * it is published, at most one bundle of unchanged content per
 * reissue_interval, rotations on time and on request, the revocation
 * statement. Single-threaded: the MQTT layer calls in from the main loop.
 */
#ifndef KD_SERVICE_H
#define KD_SERVICE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"
#include "acl.h"
#include "keyd.h"
#include "store.h"

/* What the config's files give keyd (replaced as a whole on reload). */
struct kd_material {
	struct veil_identity *id;
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t cred_len;
	struct veil_credential self;
	uint8_t (*auth)[VEIL_PK_BYTES];
	size_t n_auth;
	struct kd_acl *acl;
	struct vp_revoke *rev;
};
#define KD_AUTHORITIES_MAX 16U
/* Load what cfg names and check keyd's own credential: verifies against
 * the authorities at now, carries the role veil-keyd, names cfg's
 * client_id and the identity's key. */
int kd_material__load(const struct kd_config *cfg, uint64_t now, struct kd_material *m, char *err, size_t errlen);
void kd_material__free(struct kd_material *m);

/* The clock: wall time for what other machines compare (timestamps,
 * epochs, versions), monotonic for rates. Injected, so tests drive it. */
struct kd_now {
	uint64_t unix_us;
	uint64_t mono_ms;
};

/* Publish retained at QoS 1 (cred_id NULL: the revocation statement).
 * The layer copies buf and later calls kd_service__published. */
typedef int (*kd_publish_fn)(void *ctx, const char *topic, const uint8_t *buf, size_t len,
                             const uint8_t *cred_id, uint64_t version);

struct kd_service;

/* Takes cfg and m (they are freed with the service). */
int kd_service__new(struct kd_config *cfg, struct kd_material *m, struct kd_store *st, const struct kd_now *now,
                    struct kd_service **out, char *err, size_t errlen);
void kd_service__free(struct kd_service **s);
void kd_service__set_publisher(struct kd_service *s, kd_publish_fn fn, void *ctx);

/* One message from $veil/v1/req/+. VEIL_OK when accepted, else why it was
 * refused (also audited): the errors of veil__devmsg_verify, REPLAY,
 * OUTDATED, and VEIL_ERR_TIMEOUT for a message dropped by the rate limit
 * before any verification. */
int kd_service__message(struct kd_service *s, const char *topic, const uint8_t *payload, size_t len,
                        const struct kd_now *now);
/* Rotations (time, `veil keys rotate`), deferred re-issues, purges, and
 * bundles not yet acknowledged by the broker. Call at least every
 * kd_service__next_ms. */
int kd_service__tick(struct kd_service *s, const struct kd_now *now);
/* Milliseconds until the next tick is due (at most KD_ROTATE_POLL_MS). */
int kd_service__next_ms(const struct kd_service *s, const struct kd_now *now);
/* The broker acknowledged (PUBACK) the bundle of version to cred_id:
 * remembered at once, written to the store by kd_service__sync. */
void kd_service__published(struct kd_service *s, const uint8_t *cred_id, uint64_t version);
/* Commit what was only remembered: PUBACKs and devices' acknowledgements
 * (their rows and `ack | record` audit lines, logged once committed), one
 * transaction for all of them. Call after every batch of events, before
 * waiting for more. */
int kd_service__sync(struct kd_service *s);
/* The connection is up again: bundles the broker did not acknowledge are
 * issued anew at the next tick, the statement too. */
void kd_service__reconnected(struct kd_service *s);
/* SIGHUP: re-read the config file (scopes, timings), the ACL, the
 * revocation list and the authorities; keyd's identity stays. A file that
 * does not load keeps everything as it was. Newly revoked devices get
 * nothing more and every instance they held is rotated at once. */
int kd_service__reload(struct kd_service *s, const char *config_path, const struct kd_now *now, char *err,
                       size_t errlen);

/* Watch the config file and the files it names (ACL, revocation list,
 * authorities): kd_service__tick reloads, as SIGHUP does, when one changes
 * (the plugin's change signature: inode, size, times). inotify on their
 * directories tells at once; without it, a look once a second. */
int kd_service__watch(struct kd_service *s, const char *config_path);
/* The inotify descriptor to poll for reading (-1: none), and what to call
 * when it is readable (the next tick then looks at the files). */
int kd_service__watch_fd(const struct kd_service *s);
void kd_service__watch_read(struct kd_service *s);

/* For tests and `status`: counters since start. */
struct kd_stats {
	uint64_t accepted, refused, dropped, bundles, deferred, rotations, statements;
};
void kd_service__stats(const struct kd_service *s, struct kd_stats *out);
const struct kd_config *kd_service__config(const struct kd_service *s);

#endif

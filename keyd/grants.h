/*
 * Who gets which instance's keys (issue 12, "One source of truth for
 * rights"): a credential is entitled to an instance when the ACL lets it
 * read every topic of the instance's filter, or write at least one (then
 * it may also send: the grant's may-send flag). A revoked or expired
 * credential is entitled to nothing; removing a device's rights from the
 * ACL stops its grants at the next reload.
 */
#ifndef KD_GRANTS_H
#define KD_GRANTS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "epochs.h"
#include "keyd.h"

struct kd_ent {
	struct kd_inst *in;
	uint8_t flags;     /* VEIL__GRANT_MAY_SEND, VEIL__GRANT_SIGNED */
	bool write_only;   /* granted by write overlap alone (audited at load) */
};

/* Append to *out (malloc'd, *n entries) every usable instance w is
 * entitled to among those created after since_seq (0: all). So a device
 * joining a fleet of n costs each other device one question, not n. */
int kd_grants__entitle(const struct kd_epochs *E, const struct kd_acl *acl, const struct kd_who *w,
                       uint64_t since_seq, struct kd_ent **out, size_t *n);
/* The grants of those instances at now, every granted epoch of each, in
 * key-id order: the bundle's plaintext (sodium_malloc'd) and what the
 * store records of it. n of both may be 0. */
int kd_grants__collect(const struct kd_ent *ent, size_t n_ent, const struct kd_config *cfg, uint64_t now,
                       struct veil__grants **g, struct kd_grant_ref **refs);
/* Whether cur holds a (key id, flags) that last does not: the device
 * lacks something, so the bundle's version changes. */
bool kd_grants__news(const struct kd_grant_ref *cur, size_t n_cur, const struct kd_grant_ref *last, size_t n_last);

#endif

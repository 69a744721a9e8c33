/*
 * Each credential's share of the token replay cache (docs/AUTH.md,
 * "Replay"). The cache holds every live nonce and refuses logins when full
 * rather than forget one; without a share, one device with a valid
 * credential could fill it with fresh tokens and lock every credential
 * login out, the admins' included (outside attack review, round 2). A
 * credential may have at most `quota` accepted logins in the last two
 * periods of 2 x token_window + 1 seconds, which bounds its live nonces by
 * the same number (a nonce lives at most that long after its login).
 */
#ifndef VP_LOGIN_QUOTA_H
#define VP_LOGIN_QUOTA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "veil/identity.h"

struct vp_login_quota;

/* VEIL_OK, VEIL_ERR_INVAL (a zero argument), VEIL_ERR_NOMEM. At most
 * max_credentials are tracked; past that (after dropping the idle ones) a
 * new credential is refused, never an old one forgotten. */
int vp_login_quota__new(uint32_t quota, uint32_t period_s, size_t max_credentials, struct vp_login_quota **out);
void vp_login_quota__free(struct vp_login_quota **q);
/* Whether the credential has room for one more login now (no change). */
bool vp_login_quota__room(struct vp_login_quota *q, const uint8_t id[VEIL_CREDENTIAL_ID_BYTES], uint64_t now);
/* Count an accepted login (its nonce entered the cache); false when it
 * could not be counted (table full, out of memory): the caller refuses. */
bool vp_login_quota__count(struct vp_login_quota *q, const uint8_t id[VEIL_CREDENTIAL_ID_BYTES], uint64_t now);
/* Forget credentials with no login in the last two periods. */
void vp_login_quota__prune(struct vp_login_quota *q, uint64_t now);
size_t vp_login_quota__tracked(const struct vp_login_quota *q);
uint32_t vp_login_quota__quota(const struct vp_login_quota *q);

#endif

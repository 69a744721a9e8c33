/*
 * Failed-login back-off (pure logic, no broker calls): a fixed-size table of
 * failure counters keyed by a keyed hash of a string ("u:<user>", "a:<addr>").
 * After n consecutive failures the key is blocked for base * 2^(n-1) ms,
 * capped at max. Memory is bounded: when the table is full the entry that
 * failed least recently is reused.
 */
#ifndef VP_RATELIMIT_H
#define VP_RATELIMIT_H

#include <stddef.h>
#include <stdint.h>

struct vp_ratelimit;

/* capacity is rounded up to a power of two (minimum 64). VEIL_OK, or
 * VEIL_ERR_INVAL / VEIL_ERR_NOMEM. */
int vp_ratelimit__new(size_t capacity, uint32_t base_ms, uint32_t max_ms, struct vp_ratelimit **out);
void vp_ratelimit__free(struct vp_ratelimit **rl);
/* Milliseconds this key stays blocked at now_ms (0: allowed). */
uint64_t vp_ratelimit__blocked_ms(const struct vp_ratelimit *rl, const char *key, uint64_t now_ms);
/* Consecutive failures on record for the key at now_ms (0: none, or so
 * long ago that they are forgotten). */
uint32_t vp_ratelimit__failures(const struct vp_ratelimit *rl, const char *key, uint64_t now_ms);
/* Record a failure; returns the new block length in ms. A NULL key (or
 * rl) records nothing, and is never blocked. */
uint64_t vp_ratelimit__fail(struct vp_ratelimit *rl, const char *key, uint64_t now_ms);
/* Forget the key (a successful login). */
void vp_ratelimit__success(struct vp_ratelimit *rl, const char *key);
/* Entries currently holding a key (for tests). */
size_t vp_ratelimit__used(const struct vp_ratelimit *rl);
/* Monotonic clock in ms. */
uint64_t vp_ratelimit__now_ms(void);

#endif

/*
 * Scope instances and their epochs (ROUND2 design C). A scope line of the
 * config is one instance (`factory/#`) or, with a %c level, one instance
 * per known device (`factory/sensor-1/#`). Each instance has a chain of
 * epochs; an epoch is one topic key with one key id (>= 0x80000000, from
 * the store's counter, never reused):
 *
 *   send_from .. send_until      senders seal with it (period seconds)
 *   send_until .. accept_until   receivers still open it (grace seconds)
 *
 * Epoch n of an instance starts where n - 1 ended, on a grid anchored at
 * the scope's creation (periods nobody was there for are skipped, never
 * back-filled). An epoch is **granted** (put in bundles) while
 *
 *   superseded_at == 0  and  now < accept_until  and
 *   send_from <= now + lead + depth * period
 *
 * so with depth 0 the next epoch reaches devices `lead` seconds before
 * anyone sends with it, and with depth k devices also hold k further
 * periods: a keyd outage shorter than k * period + lead (at least k
 * periods, issue 13) loses nothing. A forced
 * rotation (`veil keys rotate`, a revocation) starts an epoch at once with
 * the supersedes flag; every older epoch of the instance, including those
 * granted ahead, is superseded and deleted rekey_grace seconds later.
 * Expired epochs are wiped and deleted (forward secrecy by epochs).
 */
#ifndef KD_EPOCHS_H
#define KD_EPOCHS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <uthash.h>

#include "keyd.h"
#include "store.h"

struct kd_inst {
	int64_t id;
	int64_t scope_id;
	uint64_t anchor;                          /* the scope's grid origin */
	char scope[VEIL__GRANT_SCOPE_MAX + 1];    /* the config's filter */
	char filter[VEIL__GRANT_SCOPE_MAX + 1];   /* %c substituted */
	char owner[VEIL_CLIENT_ID_MAX + 1];       /* "" for a shared scope */
	uint8_t attrs;                            /* VP_ATTR_* of its topics (grants: signed) */
	bool usable;                              /* in the config, attributes consistent */
	uint64_t seq;                             /* creation order (kd_epochs.inst_gen when it came) */
	uint64_t lost_by;                         /* rekey.c's scratch: the pass and device that lost it last */
	bool lost;                                /* rekey.c's scratch: to rotate in this pass */
	struct kd_epoch *ep;                      /* by key id, ascending */
	size_t n, cap;
	UT_hash_handle hh;                        /* by filter */
};

struct kd_epochs {
	struct kd_inst *by_filter;
	uint64_t gen;      /* bumped whenever an instance or an epoch comes or goes */
	uint64_t inst_gen; /* bumped when an instance comes: the newest instance's seq */
};

/* Load every instance and epoch (keys unsealed) from the store. */
int kd_epochs__load(struct kd_epochs *E, struct kd_store *s);
/* Wipe every key and free. */
void kd_epochs__free(struct kd_epochs *E);

/* The instance of scope sc for owner (NULL for a shared scope), created
 * (store row included) when new; inside the caller's transaction. */
int kd_epochs__instance(struct kd_epochs *E, struct kd_store *s, const struct kd_scope_conf *sc, const char *owner,
                        uint64_t now, struct kd_inst **out);
struct kd_inst *kd_epochs__find(const struct kd_epochs *E, const char *filter);

bool kd_epochs__granted(const struct kd_epoch *e, const struct kd_scope_conf *sc, uint64_t now);
/* Create the epochs the rule above grants at now (the current one
 * included); *added counts them. Inside the caller's transaction. */
int kd_epochs__advance(struct kd_epochs *E, struct kd_store *s, struct kd_inst *in, const struct kd_scope_conf *sc,
                       uint64_t now, size_t *added);
/* The next time (> now) advance would create an epoch. */
uint64_t kd_epochs__next_change(const struct kd_inst *in, const struct kd_scope_conf *sc, uint64_t now);
/* A forced rotation: a new epoch flagged supersedes, grace_s =
 * rekey_grace, sending from now - skew (the clock skew the fleet tolerates:
 * a device whose clock is behind keyd's can send with it at once, as every
 * older epoch stops sending when the bundle is applied; receivers accept an
 * epoch whatever its send_from); every older epoch superseded. */
int kd_epochs__rotate(struct kd_epochs *E, struct kd_store *s, struct kd_inst *in, const struct kd_scope_conf *sc,
                      uint64_t now, uint32_t skew, uint32_t rekey_grace);
/* Delete (wipe, store row, grants) every epoch whose accept_until passed or
 * that was superseded rekey_grace seconds ago. Inside the caller's
 * transaction; after its commit the caller truncates the WAL
 * (kd_store__checkpoint), so no copy of a deleted key stays there. */
int kd_epochs__purge(struct kd_epochs *E, struct kd_store *s, uint64_t now, uint32_t rekey_grace, size_t *deleted);

#endif

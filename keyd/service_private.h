/*
 * What service.c (requests) and issue.c (bundles, rotations, statement,
 * reload) share: the service's state.
 */
#ifndef KD_SERVICE_PRIVATE_H
#define KD_SERVICE_PRIVATE_H

#include <uthash.h>

#include "file.h" /* the plugin's one change signature */

#include "epochs.h"
#include "grants.h"
#include "service.h"

#define KD_NONCES_MAX 1000000U /* live nonces (each kept for one token window) */
#define KD_BUCKETS_MAX 100000U /* rate buckets; full ones are dropped first */
/* How often the store is asked for `veil keys rotate` requests: one query
 * of an indexed, nearly empty table, so an operator's rotation starts
 * within a tenth of a second. */
#define KD_ROTATE_POLL_MS 100U
/* Files a reload reads: config, ACL, revocation list, runtime revocation
 * list, authorities, keyd's own credential (re-issued, say by a new
 * authority). */
#define KD_WATCHED 6U

struct kd_nonce {
	uint8_t nonce[VEIL__DEVMSG_NONCE_BYTES];
	uint64_t until; /* unix s */
	UT_hash_handle hh;
};

struct kd_bucket {
	char cid[VEIL_CLIENT_ID_MAX + 1];
	double tokens;
	uint64_t at_ms, logged_ms;
	UT_hash_handle hh;
};

/* An accepted acknowledgement awaiting kd_service__sync's commit. */
struct kd_ack_note {
	uint64_t t; /* unix s */
	char fields[200];
};

/* One credential keyd has accepted a message from. */
struct kd_dev {
	struct kd_device_row row;
	struct kd_ent *ent;        /* instances it is entitled to */
	size_t n_ent;
	uint64_t ent_acl;          /* the ACL generation they were computed for */
	uint64_t ent_seq;          /* the newest instance they considered */
	struct kd_grant_ref *last; /* what its newest committed bundle held */
	size_t n_last;
	uint64_t due;              /* unix s a deferred re-issue is due (0: none) */
	bool revoked;
	bool republish;            /* committed but never acknowledged by the broker (restart) */
	bool published_dirty;      /* row.published_version not in the store yet */
	bool row_dirty;            /* an acknowledgement changed row: written by kd_service__sync */
	bool resealed;             /* its newest bundle is a reseal (kd_service__sync): no second one */
	bool reseal_due;           /* acknowledged the bundle before the newest: reseal at the sync */
	uint64_t prev_issued;      /* the version issued before row.issued_version (memory only) */
	UT_hash_handle hh;         /* by row.cred_id */
};

struct kd_service {
	struct kd_config *cfg;
	struct kd_material m;
	struct kd_store *st;
	struct kd_epochs E;
	struct kd_dev *devs;
	struct kd_nonce *nonces;
	size_t n_nonces;
	struct kd_bucket *buckets;
	kd_publish_fn publish;
	void *publish_ctx;
	uint64_t acl_gen;
	uint64_t scanned;          /* E.gen ^ acl_gen of the last full scan */
	bool scan;                 /* a full scan is due regardless */
	uint64_t next_change;      /* unix s an epoch is next created */
	uint64_t rotate_poll_ms;
	uint64_t prune_ms;         /* last nonce-cache sweep */
	bool statement_due;
	bool published_dirty;      /* some device's published_version awaits kd_service__sync */
	/* Acknowledgements accepted since the last kd_service__sync: their rows
	 * and audit lines are written there, all in one transaction (one WAL
	 * fsync for every ack handled together, not one each). */
	struct kd_ack_note *acks;
	size_t n_acks, cap_acks;
	bool rows_dirty;           /* some device's row_dirty is set */
	bool reseals_due;          /* some device's reseal_due is set */
	struct kd_now reseal_now;  /* when the newest of them was asked for */
	uint64_t lost_stamp;       /* rekey.c: one per device visited, for kd_inst.lost_by */
	bool checkpoint_due;       /* keys were deleted and the WAL not truncated yet (a reader held it) */
	uint64_t checkpoint_ms;    /* last attempt */
	char *watch_path;          /* the config file, when kd_service__watch was called */
	struct vp_file_sig sig[KD_WATCHED]; /* as last seen, in kd_svc__watched order */
	uint64_t watch_ms;
	int inotify;               /* -1 without: the once-a-second look alone */
	int wd[KD_WATCHED];        /* the watched files' directories (-1: none) */
	bool watch_kick;           /* inotify saw a watched name change: look now */
	struct kd_stats stats;
};

struct kd_dev *kd_svc__dev(const struct kd_service *s, const uint8_t cred_id[VEIL_CREDENTIAL_ID_BYTES]);
struct kd_dev *kd_svc__dev_add(struct kd_service *s, const struct kd_device_row *row);
void kd_svc__dev_free(struct kd_dev *d);
/* Reload when a watched file changed (at most once a second). */
void kd_svc__poll_files(struct kd_service *s, const struct kd_now *now);
/* Forget nonces whose message is past the freshness window. */
void kd_svc__nonces_prune(struct kd_service *s, uint64_t now);
bool kd_svc__revoked_row(const struct kd_service *s, const struct kd_device_row *r);
void kd_svc__free_state(struct kd_service *s);
/* Re-read instances, epochs and devices from the store (after a failed
 * transaction, memory follows the store). */
int kd_svc__reload_state(struct kd_service *s);
/* Whether the instance is in the config with consistent attributes. */
void kd_svc__inst_check(struct kd_service *s, struct kd_inst *in);
/* Issue d's bundle if it lacks a grant, or (request) re-issue it unless
 * one went out less than reissue_interval ago (then it is deferred). */
int kd_svc__consider(struct kd_service *s, struct kd_dev *d, bool request, const struct kd_now *now);
/* d acknowledged the version issued before its newest: mark it for a
 * reseal to the acknowledgement's receive key at the next sync. */
void kd_svc__reseal_due(struct kd_service *s, struct kd_dev *d, const struct kd_now *now);
/* d's entitlements, current with the ACL and every instance. */
int kd_svc__ent_refresh(struct kd_service *s, struct kd_dev *d);
/* A forced rotation of one instance (inside the caller's transaction). */
int kd_svc__rotate_instance(struct kd_service *s, struct kd_inst *in, uint64_t t, const char *why);

/* ---- rekey.c: taking keys away --------------------------------------------- */

/* Every instance in which a credential still holds a live epoch it may no
 * longer have (revoked, its authority no longer trusted, its ACL rights
 * gone) starts a superseding epoch; d->revoked follows the lists. At start
 * and after every reload, inside the caller's transaction: a revocation
 * made while keyd was down is acted on at its start. */
int kd_rekey__lost(struct kd_service *s, uint64_t t);
/* keyd's identity is not the one that issued the keys in store (a new
 * keyd after a compromise): every instance starts a superseding epoch and
 * the new identity is recorded. Inside the caller's transaction. */
int kd_rekey__issuer(struct kd_service *s, uint64_t t);
/* Publish the revocation statement: every revoked credential keyd knows
 * (credential id and sender id, until it expires) and every credential id
 * of the revocation lists it does not know (kept without end: keyd cannot
 * tell when it expires). */
int kd_rekey__statement(struct kd_service *s, const struct kd_now *now);

#endif

/*
 * The fleet scenario of issue 12, through real components only
 * (tests/support/lifecycle_fixture.h: Mosquitto with the Veil plugin, a
 * veil-keyd process, libveil devices): every device is provisioned with its
 * identity, its credential and the authority's public key, no keyring file
 * anywhere. Three sensors, each on its own instance of the scope
 * factory/%c/# (a sensor holds only its own key), publish sealed QoS 1
 * messages round after round; three dashboards (role dashboard, or rights
 * of their own) read factory/#. Period, lead and grace are scaled by the
 * test time factor; the scenario runs until every sensor's messages came
 * under at least 12 keys at the first dashboard: 11 rotations counted, one
 * of them the rekey below, so at least 10 on the period.
 * Meanwhile:
 *   - dash-1 goes away after the first rotation and stays away across three
 *     more, then connects again (clean session): it reads every message
 *     published after it subscribed again;
 *   - keyd is SIGKILLed after the second rotation, the traffic goes on while
 *     it is down, and it is started again on its store;
 *   - dash-x's own ACL block (`user dash-x`, read on factory/#) is removed
 *     from the rules file after the sixth rotation: keyd logs the rekey of
 *     what it held, dash-x never holds a sensor's epoch from that
 *     superseding one on, and no message sealed under such an epoch (an
 *     eavesdropper recorded them all) opens with every key it ever held.
 * Then: nothing lost and nothing refused (every message at every dashboard
 * that was entitled to it, exactly once); no publish refused; no epoch
 * skipped (each instance's epochs held by dash-0 are consecutive, across
 * keyd's kill too); and keyd's database with its -wal and -shm holds none of
 * the keys any device ever held, in any 32-byte window (a device's own keys
 * file, searched the same way, holds them: the search works).
 */
#include <check.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../../core/bundle.h"

#include "check_run.h"
#include "files.h"
#include "lifecycle_fixture.h"
#include "timing.h"

#define N_SENSORS 3
#define ROTATIONS 10
#define ROUNDS_MAX 20000
#define SEEN_MAX 64  /* distinct keys per sensor at dash-0 */

static const char ACL[] = "pattern readwrite,encrypted factory/%c/#\n"
                          "role dashboard\n"
                          "topic read factory/#\n"
                          "role capture\n"
                          "topic read factory/#\n";
static const char ACL_X[] = "user dash-x\n"
                            "topic read factory/#\n";

static void setup(void)
{
	char acl[sizeof(ACL) + sizeof(ACL_X)];
	snprintf(acl, sizeof(acl), "%s%s", ACL, ACL_X);
	struct lfx_opts o = { .acl = acl };
	lfx_setup(&o);
}

/* The rules file without dash-x's block: written beside and renamed, as an
 * operator's editor would, so neither the plugin nor keyd reads half. */
static void acl_remove_dash_x(void)
{
	char tmp[340];
	lfx_path(tmp, sizeof(tmp), "veil.acl.new");
	ck_assert_int_eq(test_write_file(tmp, ACL, 0644), 0);
	ck_assert_int_eq(rename(tmp, lfx.acl), 0);
}

/* keyd's log, dumped with a dashboard's when one lacks a message. */
static const char *keyd_log;

struct sensor {
	struct lfx_dev *d;
	char topic[64];
	int sent;                  /* messages <id>-0 .. <id>-(sent-1) */
	uint32_t keys[SEEN_MAX];   /* key ids its messages came under at dash-0, in order */
	size_t n_keys;
};

/* A dashboard, and from which message of each sensor on it must have
 * everything (from[i] <= n < until[i]). */
struct dash {
	struct lfx_dev *d;
	int from[N_SENSORS], until[N_SENSORS];
	bool online;
};

/* Everything a dashboard must have had: each payload exactly once, in
 * one pass over what it recorded. */
static void dash_check(struct dash *b, const struct sensor *s)
{
	size_t n = lfx_dev_n_msgs(b->d);
	unsigned char *got[N_SENSORS];
	for (int i = 0; i < N_SENSORS; i++) {
		got[i] = calloc((size_t)s[i].sent + 1, 1);
		ck_assert_ptr_nonnull(got[i]);
	}
	for (size_t k = 0; k < n; k++) {
		struct lfx_msg m = lfx_dev_msg(b->d, k);
		int i = -1, seq = -1;
		if (sscanf(m.payload, "sensor-%d-%d", &i, &seq) != 2 || i < 0 || i >= N_SENSORS || seq < 0 ||
		    seq >= s[i].sent)
			ck_abort_msg("%s got an unexpected message '%s'", lfx_dev_id(b->d), m.payload);
		ck_assert_msg(got[i][seq] < 255, "overflow");
		got[i][seq]++;
	}
	for (int i = 0; i < N_SENSORS; i++) {
		for (int k = b->from[i]; k < b->until[i]; k++) {
			if (got[i][k] != 1) {
				lfx_dev_dump(b->d);
				test_file_dump("keyd", keyd_log);
			}
			ck_assert_msg(got[i][k] == 1, "%s got sensor-%d-%d %u times", lfx_dev_id(b->d), i, k, got[i][k]);
		}
		free(got[i]);
	}
}

/* One round: each sensor publishes (QoS 1, acknowledged), then dash-0 gets
 * all of them (held ones included: a sensor may seal under an epoch before
 * dash-0 applied the bundle naming it). The key ids at dash-0 counted. */
static void round_of(struct sensor *s, struct lfx_dev *dash0)
{
	char pt[64];
	for (int i = 0; i < N_SENSORS; i++) {
		snprintf(pt, sizeof(pt), "%s-%d", lfx_dev_id(s[i].d), s[i].sent);
		int rc = lfx_dev_pub(s[i].d, s[i].topic, pt);
		if (rc != VEIL_OK)
			lfx_dev_dump(s[i].d);
		ck_assert_msg(rc == VEIL_OK, "%s: publish %s refused (%s)", lfx_dev_id(s[i].d), pt, veil_errname(rc));
		s[i].sent++;
	}
	for (int i = 0; i < N_SENSORS; i++) {
		snprintf(pt, sizeof(pt), "%s-%d", lfx_dev_id(s[i].d), s[i].sent - 1);
		if (!lfx_dev_wait_msg(dash0, pt, 15000)) {
			lfx_dev_dump(dash0);
			ck_abort_msg("dash-0 never got %s", pt);
		}
	}
	/* The newest message of each sensor is the last of its payload. */
	size_t n = lfx_dev_n_msgs(dash0);
	bool done[N_SENSORS] = { false };
	int found = 0;
	for (size_t k = n; k-- > 0 && found < N_SENSORS;) {
		struct lfx_msg m = lfx_dev_msg(dash0, k);
		int i = -1, seq = -1;
		if (sscanf(m.payload, "sensor-%d-%d", &i, &seq) != 2 || i < 0 || i >= N_SENSORS || done[i])
			continue;
		done[i] = true;
		found++;
		ck_assert_uint_ge(m.key_id, VEIL_GRANTED_KEY_ID_MIN);
		if (!s[i].n_keys || s[i].keys[s[i].n_keys - 1] != m.key_id) {
			ck_assert_uint_lt(s[i].n_keys, SEEN_MAX);
			s[i].keys[s[i].n_keys++] = m.key_id;
		}
	}
}

/* Rotations every sensor's messages went through at dash-0. */
static size_t rotations(const struct sensor *s)
{
	size_t r = SIZE_MAX;
	for (int i = 0; i < N_SENSORS; i++)
		r = s[i].n_keys - 1 < r ? s[i].n_keys - 1 : r;
	return s[0].n_keys ? r : 0;
}

/* Add what a device's state_dir keys file holds now to seen (the device
 * writes it behind its bundles; read after every round, it misses none of
 * the epochs, each of which stays in its bundles for periods). */
static void keys_now(struct lfx_dev *d, struct lfx_keyset *seen)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/keys", lfx_dev_state(d));
	(void)lfx_keys_file(path, seen, NULL);
}

/* A device's keys: every one it ever held (the fixture's record), what its
 * keys file held after any round (seen), and the file once more. */
static void all_keys(struct lfx_dev *d, const struct lfx_keyset *seen, struct lfx_keyset *ks)
{
	lfx_dev_ever(d, ks);
	for (size_t i = 0; i < seen->n; i++)
		if (!lfx_keyset_find(ks, seen->k[i].key_id) && ks->n < LFX_KEYS_MAX)
			ks->k[ks->n++] = seen->k[i];
	keys_now(d, ks);
}

/* Whether file holds any key of ks in a 32-byte window; *hits counts them. */
static size_t keys_in_file(const char *file, const struct lfx_keyset *ks)
{
	size_t hits = 0;
	for (size_t i = 0; i < ks->n; i++)
		hits += test_file_has_n(file, ks->k[i].key, VEIL_KEY_BYTES);
	return hits;
}

/* The epochs dash-0 held for instance, as a bitmap from the smallest:
 * consecutive, no epoch skipped. Returns how many. */
static size_t epochs_consecutive(const struct lfx_keyset *ks, const char *instance)
{
	uint32_t lo = UINT32_MAX, hi = 0;
	size_t n = 0;
	for (size_t i = 0; i < ks->n; i++) {
		if (strcmp(ks->k[i].scope, instance) != 0)
			continue;
		lo = ks->k[i].epoch < lo ? ks->k[i].epoch : lo;
		hi = ks->k[i].epoch > hi ? ks->k[i].epoch : hi;
		n++;
	}
	ck_assert_msg(n > 0, "dash-0 never held a key of %s", instance);
	if (hi - lo + 1 != n)
		for (size_t i = 0; i < ks->n; i++)
			if (!strcmp(ks->k[i].scope, instance))
				fprintf(stderr, "%s: epoch %u key 0x%08x flags 0x%02x\n", instance, ks->k[i].epoch,
				        ks->k[i].key_id, ks->k[i].flags);
	/* Key ids are unique in a key set; epochs of one instance must be too. */
	ck_assert_msg(hi - lo + 1 == n, "%s: dash-0 held %zu epochs numbered %u..%u: one skipped or repeated", instance,
	              n, lo, hi);
	return n;
}

START_TEST(fleet_without_keyrings)
{
	/* Scaled: the protocol's bounds are real seconds, so slower builds get
	 * longer periods, not a different verdict. */
	int f = (int)(veil_test_time_factor() + 0.5);
	int tw = 2 * f, period = 4 * f;
	char settings[256];
	snprintf(settings, sizeof(settings), "token_window %d\nrekey_grace %d\nscope factory/%%c/# period %d lead %d grace "
	         "%d depth 1\n", tw, 2 * tw, period, 2 * tw, 2 * tw);
	struct lfx_keyd k;
	lfx_keyd_new(&k, "keyd", settings);
	keyd_log = k.log;
	lfx_keyd_start(&k, NULL);
	const char *filters[] = { "factory/#" };
	struct lfx_cap *cap = lfx_cap_start("capture", "capture", filters, 1);

	/* No keyring file anywhere: each device's config names its identity,
	 * credential and authorities only (lifecycle_device.c). */
	struct dash b[3];
	memset(b, 0, sizeof(b));
	const char *bid[3] = { "dash-0", "dash-1", "dash-x" };
	for (int j = 0; j < 3; j++) {
		struct lfx_dev_opts o = { .roles = j < 2 ? "dashboard" : NULL };
		b[j].d = lfx_dev_new(bid[j], &o);
		ck_assert_int_eq(lfx_dev_connect(b[j].d), VEIL_OK);
		ck_assert_int_eq(lfx_dev_sub(b[j].d, "factory/#"), VEIL_OK);
		b[j].online = true;
	}
	static struct sensor s[N_SENSORS];
	memset(s, 0, sizeof(s));
	for (int i = 0; i < N_SENSORS; i++) {
		char id[32];
		snprintf(id, sizeof(id), "sensor-%d", i);
		s[i].d = lfx_dev_new(id, NULL);
		snprintf(s[i].topic, sizeof(s[i].topic), "factory/%s/t", id);
		ck_assert_int_eq(lfx_dev_connect(s[i].d), VEIL_OK);
	}
	struct dash *d1 = &b[1], *dx = &b[2];

	size_t off_at = 0, x_pre_rot = 0;
	bool d1_gone = false, d1_back = false, killed = false, restarted = false, removed = false;
	int kill_round = -1, x_rekey_logs = 0;
	static struct lfx_keyset x_before, seen0, seenx, none;
	memset(&x_before, 0, sizeof(x_before));
	memset(&seen0, 0, sizeof(seen0));
	memset(&seenx, 0, sizeof(seenx));
	struct veil_deadline dl = veil_deadline_in((ROTATIONS + 8) * 4 * 1000 + 30000);
	int round;
	for (round = 0; round < ROUNDS_MAX; round++) {
		/* Pacing, not a wait for an event: about 20 rounds a second,
		 * whatever the period, so the run stays light on a shared machine. */
		uint64_t next = veil_test_now_ms() + 50;
		if (veil_deadline_passed(&dl)) {
			test_file_dump("keyd", k.log);
			ck_abort_msg("only %zu rotations after %d rounds", rotations(s), round);
		}
		round_of(s, b[0].d);
		keys_now(b[0].d, &seen0);
		keys_now(dx->d, &seenx);
		size_t rot = rotations(s);
		if (!d1_gone && rot >= 1) {
			/* dash-1 goes away (its client freed: a clean disconnect). */
			for (int i = 0; i < N_SENSORS; i++)
				d1->until[i] = s[i].sent;
			/* Everything so far arrived before it leaves. */
			for (int i = 0; i < N_SENSORS; i++) {
				char pt[64];
				snprintf(pt, sizeof(pt), "sensor-%d-%d", i, s[i].sent - 1);
				ck_assert_msg(lfx_dev_wait_msg(d1->d, pt, 15000), "dash-1 never got %s", pt);
			}
			dash_check(d1, s);
			lfx_dev_renew(d1->d, &(struct lfx_dev_opts){ .roles = "dashboard" });
			d1->online = false;
			d1_gone = true;
			off_at = rot;
		}
		if (d1_gone && !d1_back && rot >= off_at + 3) {
			/* Back after three rotations: its keys are all past. */
			struct lfx_keyset old;
			lfx_dev_held(d1->d, &old);
			size_t applied = lfx_dev_applied(d1->d);
			ck_assert_int_eq(lfx_dev_connect(d1->d), VEIL_OK);
			ck_assert_int_eq(lfx_dev_sub(d1->d, "factory/#"), VEIL_OK);
			ck_assert_msg(lfx_dev_wait_applied(d1->d, applied + 1, 15000), "dash-1 got no bundle after coming back");
			for (int i = 0; i < N_SENSORS; i++) {
				d1->from[i] = s[i].sent;
				ck_assert_msg(!lfx_keyset_find(&old, s[i].keys[s[i].n_keys - 1]),
				              "sensor-%d still seals under a key dash-1 held before it left", i);
			}
			d1->online = true;
			d1_back = true;
		}
		if (!killed && rot >= 2) {
			/* keyd dies at no chosen point; the rounds go on without it. */
			kill(k.pid, SIGKILL);
			ck_assert_int_eq(lfx_keyd_exit(&k, 5000), 128 + SIGKILL);
			killed = true;
			kill_round = round;
		}
		if (killed && !restarted && round >= kill_round + 20) {
			lfx_keyd_start(&k, NULL);
			restarted = true;
		}
		if (restarted && !removed && rot >= 6) {
			/* Every message dash-x was entitled to, before its rights go. */
			for (int i = 0; i < N_SENSORS; i++) {
				char pt[64];
				snprintf(pt, sizeof(pt), "sensor-%d-%d", i, s[i].sent - 1);
				ck_assert_msg(lfx_dev_wait_msg(dx->d, pt, 15000), "dash-x never got %s", pt);
				dx->until[i] = s[i].sent;
			}
			dash_check(dx, s);
			ck_assert_uint_eq(lfx_dev_refused(dx->d, 0), 0);
			x_rekey_logs = lfx_keyd_count(&k, "rights | rekey | client=dash-x ");
			all_keys(dx->d, &seenx, &x_before);
			acl_remove_dash_x();
			removed = true;
			x_pre_rot = rot;
		}
		while (veil_test_now_ms() < next)
			veil_poll_pause();
		if (rot >= ROTATIONS + 1 && d1_back && removed && rot >= x_pre_rot + 2 && d1->from[0] + 2 < s[0].sent)
			break;
	}
	ck_assert_int_lt(round, ROUNDS_MAX);
	size_t rot = rotations(s);
	fprintf(stderr, "fleet: %d rounds, %zu rotations, keys at dash-0:", round + 1, rot);
	for (int i = 0; i < N_SENSORS; i++)
		fprintf(stderr, " sensor-%d %zu", i, s[i].n_keys);
	fprintf(stderr, "\n");
	ck_assert_uint_ge(rot, ROTATIONS + 1); /* one of them dash-x's rekey */

	/* Nothing lost, nothing refused: dash-0 throughout, dash-1 before it
	 * left and since it came back. */
	for (int i = 0; i < N_SENSORS; i++) {
		b[0].until[i] = s[i].sent;
		d1->until[i] = s[i].sent;
		char pt[64];
		snprintf(pt, sizeof(pt), "sensor-%d-%d", i, s[i].sent - 1);
		ck_assert_msg(lfx_dev_wait_msg(d1->d, pt, 15000), "dash-1 never got %s after coming back", pt);
	}
	dash_check(&b[0], s);
	dash_check(d1, s);
	ck_assert_uint_eq(lfx_dev_refused(b[0].d, 0), 0);
	ck_assert_uint_eq(lfx_dev_refused(d1->d, 0), 0);
	for (int i = 0; i < N_SENSORS; i++)
		ck_assert_uint_eq(lfx_dev_log_count(s[i].d, "no-key"), 0);

	/* keyd rekeyed what dash-x held once its rights were gone. */
	lfx_keyd_wait(&k, "rights | rekey | client=dash-x ", x_rekey_logs + 1, 10000);
	/* Each sensor holds its own instance only; dash-0 every instance, with
	 * no epoch skipped across keyd's kill and the rekey. */
	struct lfx_keyset ks0, ksx;
	all_keys(b[0].d, &seen0, &ks0);
	all_keys(dx->d, &seenx, &ksx);
	for (int i = 0; i < N_SENSORS; i++) {
		struct lfx_keyset si;
		all_keys(s[i].d, &none, &si);
		char inst[64];
		snprintf(inst, sizeof(inst), "factory/%s/#", lfx_dev_id(s[i].d));
		for (size_t j = 0; j < si.n; j++)
			ck_assert_msg(!strcmp(si.k[j].scope, inst), "%s held a key of %s", lfx_dev_id(s[i].d), si.k[j].scope);
		size_t n = epochs_consecutive(&ks0, inst);
		ck_assert_uint_ge(n, ROTATIONS + 1);
		/* The superseding epoch of dash-x's loss: the newest epoch with
		 * the flag that dash-x did not hold before. */
		uint32_t rekey_epoch = 0;
		for (size_t j = 0; j < ks0.n; j++)
			if (!strcmp(ks0.k[j].scope, inst) && (ks0.k[j].flags & VEIL__GRANT_SUPERSEDES) &&
			    !lfx_keyset_find(&x_before, ks0.k[j].key_id) && ks0.k[j].epoch > rekey_epoch)
				rekey_epoch = ks0.k[j].epoch;
		ck_assert_msg(rekey_epoch > 0, "no superseding epoch of %s after dash-x lost its rights", inst);
		/* dash-x holds nothing of the instance from it on. */
		for (size_t j = 0; j < ksx.n; j++)
			ck_assert_msg(strcmp(ksx.k[j].scope, inst) != 0 || ksx.k[j].epoch < rekey_epoch,
			              "dash-x holds epoch %u of %s (the rekey for its loss is %u)", ksx.k[j].epoch, inst,
			              rekey_epoch);
		/* And every message sealed under it or later, recorded by the
		 * eavesdropper, opens with dash-0's keys but none of dash-x's. */
		size_t after = 0;
		for (size_t m = 0; m < lfx_cap_n(cap); m++) {
			const struct lfx_cap_msg *c = lfx_cap_get(cap, m);
			if (strcmp(c->topic, s[i].topic) != 0)
				continue;
			char pt[128];
			uint32_t kid = 0;
			ck_assert_int_eq(lfx_open(&ks0, c->topic, c->payload, c->len, pt, sizeof(pt), &kid), VEIL_OK);
			const struct lfx_key *e = lfx_keyset_find(&ks0, kid);
			if (e->epoch < rekey_epoch)
				continue;
			after++;
			ck_assert_msg(lfx_open(&ksx, c->topic, c->payload, c->len, pt, sizeof(pt), NULL) == VEIL_ERR_UNKNOWN_KEY,
			              "dash-x opened a message under epoch %u of %s", e->epoch, inst);
		}
		ck_assert_msg(after > 0, "no message of %s under its rekey epoch", inst);
	}

	/* Every bundle was applied live: the sensors and dash-0 applied one per
	 * rotation at least, on the connection they opened at the start. */
	for (int i = 0; i < N_SENSORS; i++) {
		ck_assert_uint_ge(lfx_dev_applied(s[i].d), ROTATIONS);
		ck_assert_msg(lfx_dev_connects(s[i].d) == 1, "%s connected %llu times", lfx_dev_id(s[i].d),
		              (unsigned long long)lfx_dev_connects(s[i].d));
	}
	ck_assert_uint_ge(lfx_dev_applied(b[0].d), ROTATIONS);
	ck_assert_msg(lfx_dev_connects(b[0].d) == 1, "dash-0 connected %llu times",
	              (unsigned long long)lfx_dev_connects(b[0].d));

	/* keyd's store (database, -wal, -shm) holds none of the keys any device
	 * ever held, in any 32-byte window; a device's keys file, searched the
	 * same way, holds its live ones. */
	struct lfx_keyset all = ks0;
	for (size_t j = 0; j < ksx.n; j++)
		if (!lfx_keyset_find(&all, ksx.k[j].key_id) && all.n < LFX_KEYS_MAX)
			all.k[all.n++] = ksx.k[j];
	char wal[400], shm[400], own[400];
	snprintf(wal, sizeof(wal), "%s-wal", k.db);
	snprintf(shm, sizeof(shm), "%s-shm", k.db);
	snprintf(own, sizeof(own), "%s/keys", lfx_dev_state(b[0].d));
	ck_assert_uint_gt(keys_in_file(own, &all), 0);
	ck_assert_msg(access(wal, F_OK) == 0, "keyd runs without a WAL?");
	const char *store[] = { k.db, wal, shm };
	for (int pass = 0; pass < 2; pass++) {
		for (size_t f2 = 0; f2 < 3; f2++)
			ck_assert_msg(keys_in_file(store[f2], &all) == 0, "%s holds a topic key in clear (%s)", store[f2],
			              pass ? "keyd stopped" : "keyd running");
		if (pass == 0)
			lfx_keyd_stop(&k);
	}
	fprintf(stderr, "fleet: %zu keys searched in keyd's store\n", all.n);

	for (int i = 0; i < N_SENSORS; i++)
		lfx_dev_free(s[i].d);
	for (int j = 0; j < 3; j++)
		lfx_dev_free(b[j].d);
	lfx_cap_free(cap);
	sodium_memzero(&all, sizeof(all));
	sodium_memzero(&ks0, sizeof(ks0));
	sodium_memzero(&ksx, sizeof(ksx));
	sodium_memzero(&seen0, sizeof(seen0));
	sodium_memzero(&seenx, sizeof(seenx));
	sodium_memzero(&x_before, sizeof(x_before));
}
END_TEST

static Suite *suite(void)
{
	Suite *su = suite_create("keyd_fleet");
	TCase *tc = veil_tcase("fleet", 120);
	tcase_add_checked_fixture(tc, setup, lfx_teardown);
	tcase_add_test(tc, fleet_without_keyrings);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	return veil_check_run(suite());
}

/* Tests for core/envelope.c: round trips, every tamper region, wrong key and
 * topic, structure errors, and the independent test vectors. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../../core/internal.h"
#include "vectors.h"
#include "check_run.h"
#include "timing.h"

static uint8_t key[32], key2[32];
static struct veil_identity *dev;
static uint8_t cred[VEIL_CREDENTIAL_MAX];
static size_t cred_len;
static const char *topic = "factory/line1/temp";

static void setup(void)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	veil_topic_key_generate(key);
	veil_topic_key_generate(key2);
	ck_assert_int_eq(veil_identity_generate(&dev), VEIL_OK);
	struct veil_identity *auth = NULL;
	ck_assert_int_eq(veil_identity_generate(&auth), VEIL_OK);
	struct veil_credential c = { 0 };
	veil_identity_public(dev, c.device_pk);
	strcpy(c.client_id, "dev-1");
	c.issued_at = 1;
	c.expires_at = 4102444800ULL;
	ck_assert_int_eq(veil_credential_issue(auth, &c, cred, sizeof(cred), &cred_len), VEIL_OK);
	veil_identity_free(&auth);
}

static void teardown(void)
{
	veil_identity_free(&dev);
}

static size_t seal(const uint8_t *pt, size_t n, bool sign, uint8_t **out)
{
	struct veil_seal_params p = { .key = key, .key_id = 9, .seq = 42 };
	uint8_t pk[32];
	veil_identity_public(dev, pk);
	veil_sender_id(pk, p.sender);
	if (sign) {
		p.signer = dev;
		p.credential = cred;
		p.credential_len = cred_len;
	}
	size_t cap = sign ? veil_sealed_signed_len(n, cred_len) : veil_sealed_len(n);
	*out = malloc(cap);
	size_t len = 0;
	ck_assert_int_eq(veil_envelope_seal(&p, topic, pt, n, *out, cap, &len), VEIL_OK);
	ck_assert_uint_eq(len, cap);
	return len;
}

static int open_with(const uint8_t *env, size_t len, const char *t, const uint8_t *k, uint8_t *pt, size_t *ptl)
{
	struct veil_envelope_view v;
	int rc = veil_envelope_parse(env, len, &v);
	if (rc != VEIL_OK)
		return rc;
	return veil_envelope_open(&v, t, k, pt, len, ptl);
}

START_TEST(test_round_trip_sizes)
{
	static const size_t sizes[] = { 0, 1, 255, 256 * 1024 };
	size_t n = sizes[_i / 2];
	bool sign = _i % 2;
	uint8_t *pt = malloc(n + 1);
	randombytes_buf(pt, n);
	uint8_t *env = NULL;
	size_t len = seal(pt, n, sign, &env);
	ck_assert_uint_eq(len, sign ? n + 64 + 2 + cred_len + 64 : n + 64);
	uint8_t *out = malloc(len);
	size_t outl = 99;
	ck_assert_int_eq(open_with(env, len, topic, key, out, &outl), VEIL_OK);
	ck_assert_uint_eq(outl, n);
	ck_assert(n == 0 || memcmp(out, pt, n) == 0);
	if (sign) {
		struct veil_envelope_view v;
		ck_assert_int_eq(veil_envelope_parse(env, len, &v), VEIL_OK);
		uint8_t pk[32];
		veil_identity_public(dev, pk);
		ck_assert_int_eq(veil_envelope_verify_signature(&v, topic, pk), VEIL_OK);
	}
	free(pt);
	free(env);
	free(out);
}
END_TEST

START_TEST(test_overhead_is_64)
{
	ck_assert_uint_eq(veil_overhead_bytes(), 64);
	ck_assert_uint_eq(veil_sealed_len(100), 164);
}
END_TEST

/* Flip one byte in each region: header fields, nonce, ciphertext, tag. */
START_TEST(test_tamper_every_region)
{
	const uint8_t pt[] = "temperature 21.5";
	uint8_t *env = NULL;
	size_t len = seal(pt, sizeof(pt), false, &env);
	uint8_t out[256];
	size_t outl;
	for (size_t i = 0; i < len; i++) {
		env[i] ^= 0x01;
		int rc = open_with(env, len, topic, key, out, &outl);
		ck_assert_msg(rc != VEIL_OK, "tamper at byte %zu accepted", i);
		if (i == 0)
			ck_assert_int_eq(rc, VEIL_ERR_VERSION);
		else if (i == 1) /* now claims a signed trailer that is not there */
			ck_assert(rc == VEIL_ERR_TRUNCATED || rc == VEIL_ERR_PARSE);
		else if (i == 6 || i == 7)
			ck_assert_int_eq(rc, VEIL_ERR_WRONG_KEY);
		else
			ck_assert_int_eq(rc, VEIL_ERR_DECRYPT);
		env[i] ^= 0x01;
	}
	ck_assert_int_eq(open_with(env, len, topic, key, out, &outl), VEIL_OK);
	free(env);
}
END_TEST

START_TEST(test_tamper_signed_trailer)
{
	const uint8_t pt[] = "valve open";
	uint8_t *env = NULL;
	size_t len = seal(pt, sizeof(pt), true, &env);
	uint8_t pk[32];
	veil_identity_public(dev, pk);
	struct veil_envelope_view v;
	size_t trailer = VEIL_HEADER_BYTES + sizeof(pt) + VEIL_TAG_BYTES;
	for (size_t i = 0; i < len; i++) {
		env[i] ^= 0x80;
		int rc = veil_envelope_parse(env, len, &v);
		if (rc == VEIL_OK)
			rc = veil_envelope_verify_signature(&v, topic, pk);
		ck_assert_msg(rc != VEIL_OK, "signed tamper at byte %zu accepted", i);
		if (i >= 2 && i < trailer)
			ck_assert_int_eq(rc, VEIL_ERR_BAD_SIGNATURE);
		env[i] ^= 0x80;
	}
	/* Downgrade: clear the signed flag and cut the trailer -> AEAD fails. */
	env[1] = 0;
	uint8_t out[64];
	size_t outl;
	ck_assert_int_eq(open_with(env, trailer, topic, key, out, &outl), VEIL_ERR_DECRYPT);
	free(env);
}
END_TEST

START_TEST(test_wrong_key_and_topic)
{
	const uint8_t pt[] = "x";
	uint8_t *env = NULL;
	size_t len = seal(pt, sizeof(pt), false, &env);
	uint8_t out[64];
	size_t outl;
	ck_assert_int_eq(open_with(env, len, topic, key2, out, &outl), VEIL_ERR_WRONG_KEY);
	ck_assert_int_eq(open_with(env, len, "factory/line2/temp", key, out, &outl), VEIL_ERR_DECRYPT);
	/* The signature is bound to the topic too. */
	free(env);
	len = seal(pt, sizeof(pt), true, &env);
	struct veil_envelope_view v;
	ck_assert_int_eq(veil_envelope_parse(env, len, &v), VEIL_OK);
	uint8_t pk[32];
	veil_identity_public(dev, pk);
	ck_assert_int_eq(veil_envelope_verify_signature(&v, "factory/line2/temp", pk), VEIL_ERR_BAD_SIGNATURE);
	struct veil_identity *other = NULL;
	ck_assert_int_eq(veil_identity_generate(&other), VEIL_OK);
	veil_identity_public(other, pk);
	ck_assert_int_eq(veil_envelope_verify_signature(&v, topic, pk), VEIL_ERR_BAD_SIGNATURE);
	veil_identity_free(&other);
	free(env);
}
END_TEST

START_TEST(test_structure_errors)
{
	const uint8_t pt[] = "hello";
	uint8_t *env = NULL;
	size_t len = seal(pt, sizeof(pt), false, &env);
	struct veil_envelope_view v;
	/* A zero-length payload has its own name (PROTOCOL.md section 5). */
	ck_assert_int_eq(veil_envelope_parse(env, 0, &v), VEIL_ERR_EMPTY);
	ck_assert_int_eq(veil_envelope_parse(NULL, 0, &v), VEIL_ERR_EMPTY);
	ck_assert_str_eq(veil_errname(VEIL_ERR_EMPTY), "empty-payload");
	for (size_t cut = 1; cut < VEIL_OVERHEAD; cut++) {
		int rc = veil_envelope_parse(env, cut, &v);
		ck_assert_int_eq(rc, VEIL_ERR_TRUNCATED);
	}
	ck_assert_int_eq(veil_envelope_parse(env, len, &v), VEIL_OK);
	env[0] = 2;
	ck_assert_int_eq(veil_envelope_parse(env, len, &v), VEIL_ERR_VERSION);
	env[0] = 1;
	/* Every reserved flag bit, alone and with the signed bit. */
	for (unsigned bit = 1; bit < 8; bit++) {
		env[1] = (uint8_t)(1U << bit);
		ck_assert_int_eq(veil_envelope_parse(env, len, &v), VEIL_ERR_RESERVED_FLAGS);
		env[1] |= VEIL_FLAG_SIGNED;
		ck_assert_int_eq(veil_envelope_parse(env, len, &v), VEIL_ERR_RESERVED_FLAGS);
	}
	ck_assert_str_eq(veil_errname(VEIL_ERR_RESERVED_FLAGS), "reserved-flags");
	free(env);
	/* Oversized: a header claiming more than VEIL_MAX_PLAINTEXT. */
	size_t big = veil_sealed_len(VEIL_MAX_PLAINTEXT) + 1;
	uint8_t *huge = calloc(1, big);
	huge[0] = 1;
	ck_assert_int_eq(veil_envelope_parse(huge, big, &v), VEIL_ERR_TOO_LARGE);
	free(huge);
	/* Signed envelope whose credential length does not fit. */
	len = seal(pt, sizeof(pt), true, &env);
	env[len - 65] = 0xff;
	env[len - 66] = 0xff;
	ck_assert_int_eq(veil_envelope_parse(env, len, &v), VEIL_ERR_TRUNCATED);
	/* The longest C that still leaves a 16-byte ciphertext fits; one more does not. */
	size_t fit = len - (VEIL_OVERHEAD + 2 + VEIL_SIG_BYTES);
	env[len - 66] = (uint8_t)(fit >> 8);
	env[len - 65] = (uint8_t)fit;
	ck_assert_int_eq(veil_envelope_parse(env, len, &v), VEIL_OK);
	ck_assert_uint_eq(v.ciphertext_len, VEIL_TAG_BYTES);
	env[len - 65] = (uint8_t)(fit + 1);
	ck_assert_int_eq(veil_envelope_parse(env, len, &v), VEIL_ERR_TRUNCATED);
	free(env);
	/* Caller errors stay distinct from input errors. */
	struct veil_seal_params p = { .key = key };
	uint8_t small[10];
	size_t ol;
	ck_assert_int_eq(veil_envelope_seal(&p, topic, pt, sizeof(pt), small, sizeof(small), &ol), VEIL_ERR_INVAL);
	ck_assert_int_eq(veil_envelope_seal(&p, "", pt, sizeof(pt), small, sizeof(small), &ol), VEIL_ERR_INVAL);
}
END_TEST

/* PROTOCOL.md section 8: the parser checks only the signed trailer's lengths;
 * the credential is the receiver's step 5 (after the key id), so a malformed
 * one is no parse error. */
START_TEST(test_signed_credential_not_parsed)
{
	const uint8_t pt[] = "21.5C";
	uint8_t *env = NULL;
	size_t len = seal(pt, sizeof(pt), true, &env);
	struct veil_envelope_view v;
	size_t cred_off = VEIL_HEADER_BYTES + sizeof(pt) + VEIL_TAG_BYTES;
	env[cred_off] = 2; /* credential version 2 */
	ck_assert_int_eq(veil_envelope_parse(env, len, &v), VEIL_OK);
	ck_assert_ptr_eq(v.credential, env + cred_off);
	ck_assert_uint_eq(v.credential_len, cred_len);
	ck_assert_ptr_eq(v.signature, env + len - VEIL_SIG_BYTES);
	ck_assert_uint_eq(v.ciphertext_len, sizeof(pt) + VEIL_TAG_BYTES);
	struct veil_credential c;
	ck_assert_int_eq(veil_credential_parse(v.credential, v.credential_len, &c), VEIL_ERR_VERSION);
	free(env);
	/* A zero-length credential: the trailer fits, the credential is the
	 * receiver's business (truncated at step 5). */
	uint8_t z[VEIL_OVERHEAD + 2 + VEIL_SIG_BYTES] = { 1, VEIL_FLAG_SIGNED };
	ck_assert_int_eq(veil_envelope_parse(z, sizeof(z), &v), VEIL_OK);
	ck_assert_uint_eq(v.credential_len, 0);
	ck_assert_int_eq(veil_envelope_parse(z, sizeof(z) - 1, &v), VEIL_ERR_TRUNCATED);
}
END_TEST

/* The 16 MiB plaintext bound counts the real credential length: a signed
 * envelope with a short credential cannot carry more (it could carry up to
 * 523 - C bytes more when the bound assumed the longest credential). */
START_TEST(test_signed_plaintext_limit)
{
	size_t trailer = cred_len + 2 + VEIL_SIG_BYTES;
	size_t len = VEIL_HEADER_BYTES + VEIL_MAX_PLAINTEXT + 1 + VEIL_TAG_BYTES + trailer;
	ck_assert_uint_lt(len, veil_sealed_signed_len(VEIL_MAX_PLAINTEXT, VEIL_CREDENTIAL_MAX));
	uint8_t *buf = calloc(1, len);
	ck_assert_ptr_nonnull(buf);
	buf[0] = 1;
	buf[1] = VEIL_FLAG_SIGNED;
	memcpy(buf + len - trailer, cred, cred_len);
	buf[len - VEIL_SIG_BYTES - 2] = (uint8_t)(cred_len >> 8);
	buf[len - VEIL_SIG_BYTES - 1] = (uint8_t)cred_len;
	struct veil_envelope_view v;
	ck_assert_int_eq(veil_envelope_parse(buf, len, &v), VEIL_ERR_TOO_LARGE);
	/* Exactly 16 MiB of plaintext is allowed. */
	memmove(buf + len - trailer - 1, buf + len - trailer, trailer);
	ck_assert_int_eq(veil_envelope_parse(buf, len - 1, &v), VEIL_OK);
	ck_assert_uint_eq(v.ciphertext_len, VEIL_MAX_PLAINTEXT + VEIL_TAG_BYTES);
	ck_assert_uint_eq(v.credential_len, cred_len);
	free(buf);
}
END_TEST

START_TEST(test_vectors)
{
	uint8_t seed[32], apk_seed[32], k[32], cred_v[1024], env_v[1024], want[1024];
	ck_assert_int_eq(test_vector("device_seed", seed, 32), 32);
	ck_assert_int_eq(test_vector("authority_seed", apk_seed, 32), 32);
	ck_assert_int_eq(test_vector("topic_key", k, 32), 32);
	long cl = test_vector("credential", cred_v, sizeof(cred_v));
	ck_assert_int_gt(cl, 0);
	struct veil_identity *d = NULL;
	ck_assert_int_eq(veil_identity_from_seed(seed, &d), VEIL_OK);
	uint8_t pk[32], sid[8];
	veil_identity_public(d, pk);
	veil_sender_id(pk, sid);
	ck_assert_int_eq(test_vector("sender_id", want, sizeof(want)), 8);
	ck_assert_mem_eq(sid, want, 8);
	ck_assert_int_eq(test_vector("kcv", want, sizeof(want)), 2);
	ck_assert_uint_eq(veil_key_check(k), (uint16_t)(want[0] << 8 | want[1]));

	uint8_t nonce[24];
	for (int i = 0; i < 24; i++)
		nonce[i] = (uint8_t)(0xC0 + i);
	struct veil_seal_params p = { .key = k, .key_id = 7, .seq = 1700000000000000ULL };
	memcpy(p.sender, sid, 8);
	size_t n = 0;
	ck_assert_int_eq(veil__envelope_seal_nonce(&p, "factory/line1/temp", (const uint8_t *)"21.5C", 5, nonce,
	                                           env_v, sizeof(env_v), &n),
	                 VEIL_OK);
	long wl = test_vector("envelope_unsigned", want, sizeof(want));
	ck_assert_int_eq((long)n, wl);
	ck_assert_mem_eq(env_v, want, n);

	p.seq++;
	p.signer = d;
	p.credential = cred_v;
	p.credential_len = (size_t)cl;
	ck_assert_int_eq(veil__envelope_seal_nonce(&p, "factory/line1/temp", (const uint8_t *)"21.5C", 5, nonce,
	                                           env_v, sizeof(env_v), &n),
	                 VEIL_OK);
	wl = test_vector("envelope_signed", want, sizeof(want));
	ck_assert_int_eq((long)n, wl);
	ck_assert_mem_eq(env_v, want, n);

	p.seq++;
	p.signer = NULL;
	ck_assert_int_eq(veil__envelope_seal_nonce(&p, "factory/line1/temp", NULL, 0, nonce, env_v, sizeof(env_v), &n),
	                 VEIL_OK);
	wl = test_vector("envelope_empty", want, sizeof(want));
	ck_assert_int_eq((long)n, wl);
	ck_assert_mem_eq(env_v, want, n);

	/* And the vector opens with the C opener. */
	wl = test_vector("envelope_unsigned", want, sizeof(want));
	uint8_t out[64];
	size_t outl = 0;
	ck_assert_int_eq(open_with(want, (size_t)wl, "factory/line1/temp", k, out, &outl), VEIL_OK);
	ck_assert_mem_eq(out, "21.5C", 5);
	veil_identity_free(&d);
}
END_TEST

/* Every code of enum veil_err, none skipped up to the last, has its own
 * name and text: audit logs and counters key on the name. */
START_TEST(test_error_names)
{
	ck_assert_str_eq(veil_errname(VEIL_OK), "ok");
	for (int e = -1; e >= VEIL_ERR_CLEAR_REFUSED; e--) {
		ck_assert_msg(strcmp(veil_errname(e), "unknown") != 0, "code %d has no name", e);
		ck_assert_msg(strcmp(veil_strerror(e), "unknown error") != 0, "code %d has no text", e);
		for (int f = e + 1; f <= -1; f++)
			ck_assert_msg(strcmp(veil_errname(e), veil_errname(f)) != 0, "codes %d and %d share '%s'", e, f,
			              veil_errname(e));
	}
	ck_assert_str_eq(veil_errname(VEIL_ERR_CLEAR_REFUSED - 1), "unknown");
	ck_assert_str_eq(veil_errname(VEIL_ERR_CLEAR_REFUSED), "clear-refused");
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("envelope");
	TCase *tc = veil_tcase("core", 2);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, test_round_trip_sizes, 0, 8);
	tcase_add_test(tc, test_overhead_is_64);
	tcase_add_test(tc, test_tamper_every_region);
	tcase_add_test(tc, test_tamper_signed_trailer);
	tcase_add_test(tc, test_wrong_key_and_topic);
	tcase_add_test(tc, test_structure_errors);
	tcase_add_test(tc, test_signed_credential_not_parsed);
	tcase_add_test(tc, test_signed_plaintext_limit);
	tcase_add_test(tc, test_vectors);
	tcase_add_test(tc, test_error_names);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}

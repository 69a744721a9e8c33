/* Tests for core/keyring.c: format, policy lookup, errors with file:line. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../../core/internal.h"
#include "../../core/util.h"
#include "broker.h"
#include "check_run.h"
#include "timing.h"

static char K1[64], K2[64], K3[64], PK[64];

static void b64(char *out, size_t cap, uint8_t fill)
{
	uint8_t k[32];
	memset(k, fill, sizeof(k));
	sodium_bin2base64(out, cap, k, sizeof(k), sodium_base64_VARIANT_ORIGINAL);
}

static void setup(void)
{
	ck_assert_int_eq(veil_init(), VEIL_OK);
	b64(K1, sizeof(K1), 1);
	b64(K2, sizeof(K2), 2);
	b64(K3, sizeof(K3), 3);
	b64(PK, sizeof(PK), 4);
}

static struct veil_keyring *parse_ok(const char *text)
{
	struct veil_keyring *kr = NULL;
	char err[256] = "";
	int rc = veil_keyring_parse(text, strlen(text), "kr", &kr, err, sizeof(err));
	ck_assert_msg(rc == VEIL_OK, "parse failed: %s", err);
	return kr;
}

/* Expect a parse error mentioning "kr:<line>:". */
static void parse_bad(const char *text, unsigned line, const char *needle)
{
	struct veil_keyring *kr = NULL;
	char err[256] = "";
	int rc = veil_keyring_parse(text, strlen(text), "kr", &kr, err, sizeof(err));
	ck_assert_int_ne(rc, VEIL_OK);
	ck_assert_ptr_null(kr);
	char want[32];
	snprintf(want, sizeof(want), "kr:%u:", line);
	ck_assert_msg(strstr(err, want) != NULL, "want %s in '%s'", want, err);
	ck_assert_msg(strstr(err, needle) != NULL, "want '%s' in '%s'", needle, err);
}

START_TEST(test_policy_lookup)
{
	char text[1024];
	snprintf(text, sizeof(text),
	         "# fleet keyring\n"
	         "authority %s\n"
	         "key sensors/+/temp 1 %s\n"
	         "key sensors/+/temp 2 %s send\n"
	         "policy sensors/+/temp signed\n"
	         "key sensors/# 3 %s\n"
	         "policy public/# plaintext\n",
	         PK, K1, K2, K3);
	struct veil_keyring *kr = parse_ok(text);
	struct veil_topic_policy p;
	ck_assert_int_eq(veil_keyring_policy(kr, "sensors/a/temp", &p), VEIL_OK);
	ck_assert_str_eq(p.filter, "sensors/+/temp");
	ck_assert_uint_eq(p.send_key_id, 2);
	ck_assert(p.require_signature);
	ck_assert(!p.allow_plaintext);
	ck_assert_int_eq(veil_keyring_policy(kr, "sensors/a/humidity", &p), VEIL_OK);
	ck_assert_uint_eq(p.send_key_id, 3);
	ck_assert(!p.require_signature);
	ck_assert_int_eq(veil_keyring_policy(kr, "public/news", &p), VEIL_OK);
	ck_assert_ptr_null(p.send_key);
	ck_assert(p.allow_plaintext);
	ck_assert_int_eq(veil_keyring_policy(kr, "other", &p), VEIL_ERR_NO_POLICY);
	/* $-topics are not matched by leading wildcards. */
	ck_assert_int_eq(veil_keyring_policy(kr, "$SYS/x", &p), VEIL_ERR_NO_POLICY);

	const uint8_t *key = NULL;
	ck_assert_int_eq(veil_keyring_find_key(kr, "sensors/a/temp", 1, &key), VEIL_OK);
	ck_assert_uint_eq(key[0], 1);
	ck_assert_int_eq(veil_keyring_find_key(kr, "sensors/a/temp", 3, &key), VEIL_ERR_WRONG_TOPIC);
	ck_assert_int_eq(veil_keyring_find_key(kr, "sensors/a/temp", 99, &key), VEIL_ERR_UNKNOWN_KEY);
	ck_assert_int_eq(veil_keyring_find_key(kr, "elsewhere", 1, &key), VEIL_ERR_WRONG_TOPIC);
	ck_assert_int_eq(veil_keyring_find_key(kr, "elsewhere", 99, &key), VEIL_ERR_NO_POLICY);
	const uint8_t(*pks)[32] = NULL;
	ck_assert_uint_eq(veil_keyring_authorities(kr, &pks), 1);
	ck_assert_uint_eq(pks[0][0], 4);
	veil_keyring_free(&kr);
	ck_assert_ptr_null(kr);
}
END_TEST

START_TEST(test_highest_key_sends_without_mark)
{
	char text[512];
	snprintf(text, sizeof(text), "key a/# 5 %s\nkey a/# 9 %s\nkey a/# 7 %s\n", K1, K2, K3);
	struct veil_keyring *kr = parse_ok(text);
	struct veil_topic_policy p;
	ck_assert_int_eq(veil_keyring_policy(kr, "a/b", &p), VEIL_OK);
	ck_assert_uint_eq(p.send_key_id, 9);
	ck_assert_int_eq(veil_keyring_policy(kr, "a", &p), VEIL_OK); /* a/# matches the parent */
	veil_keyring_free(&kr);
}
END_TEST

START_TEST(test_parse_errors)
{
	char t[512];
	parse_bad("\n\nbogus a b\n", 3, "unknown directive");
	snprintf(t, sizeof(t), "key a/# 1 %s\nkey b/# 1 %s\n", K1, K2);
	parse_bad(t, 2, "already defined at line 1");
	snprintf(t, sizeof(t), "key a/#/b 1 %s\n", K1);
	parse_bad(t, 1, "invalid topic filter");
	snprintf(t, sizeof(t), "key a/+x 1 %s\n", K1);
	parse_bad(t, 1, "invalid topic filter");
	snprintf(t, sizeof(t), "# x\nkey a 1 AAAA\n");
	parse_bad(t, 2, "32 bytes");
	snprintf(t, sizeof(t), "key a 99999999999 %s\n", K1);
	parse_bad(t, 1, "key id");
	snprintf(t, sizeof(t), "key a -1 %s\n", K1);
	parse_bad(t, 1, "key id");
	snprintf(t, sizeof(t), "key a 1 %s sned\n", K1);
	parse_bad(t, 1, "expected 'key");
	snprintf(t, sizeof(t), "key a 1 %s send\nkey a 2 %s send\n", K1, K2);
	parse_bad(t, 2, "already has a send key");
	parse_bad("policy a signed loud\n", 1, "unknown policy word");
	snprintf(t, sizeof(t), "key a 1 %s\npolicy a\npolicy a signed\n", K1);
	parse_bad(t, 3, "second policy");
	parse_bad("policy x/# signed\n", 1, "has no key");
	parse_bad("authority AAAA\n", 1, "32 bytes");
	parse_bad("key\n", 1, "expected 'key");
	/* A line longer than the limit. */
	char *lng = malloc(3000);
	memset(lng, 'a', 2999);
	lng[2999] = '\0';
	memcpy(lng, "key ", 4);
	parse_bad(lng, 1, "longer than");
	free(lng);
	/* NUL bytes and oversize input. */
	struct veil_keyring *kr = NULL;
	char err[128];
	ck_assert_int_eq(veil_keyring_parse("key\0x", 5, "kr", &kr, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_int_eq(veil_keyring_parse("", (size_t)5 << 20, "kr", &kr, err, sizeof(err)), VEIL_ERR_TOO_LARGE);
	/* Empty keyring is valid (and matches nothing). */
	kr = parse_ok("# nothing\n");
	struct veil_topic_policy p;
	ck_assert_int_eq(veil_keyring_policy(kr, "a", &p), VEIL_ERR_NO_POLICY);
	veil_keyring_free(&kr);
}
END_TEST

/* PROTOCOL.md sections 2 and 6: a field that begins with '#' starts a comment,
 * except the topic-filter field of key and policy lines, where '#' is the MQTT
 * wildcard. */
START_TEST(test_trailing_comments)
{
	char t[1024];
	snprintf(t, sizeof(t),
	         "authority %s          # trusted for signed envelopes (max 16)\n"
	         "key a/b 2 %s   #send (a comment: a/b has no send mark)\n"
	         "key a/b 5 %s\t# older\n"
	         "policy a/b signed # commands\n"
	         "key # 1 %s send # everything else\n"
	         "policy # plaintext # migration\n"
	         "   # indented comment line\n",
	         PK, K1, K2, K3);
	struct veil_keyring *kr = parse_ok(t);
	const uint8_t(*pks)[32] = NULL;
	ck_assert_uint_eq(veil_keyring_authorities(kr, &pks), 1);
	struct veil_topic_policy p;
	ck_assert_int_eq(veil_keyring_policy(kr, "a/b", &p), VEIL_OK);
	ck_assert_str_eq(p.filter, "a/b");
	ck_assert_uint_eq(p.send_key_id, 5); /* no send mark: the highest id */
	ck_assert(p.require_signature);
	ck_assert(!p.allow_plaintext);
	ck_assert_int_eq(veil_keyring_policy(kr, "x/y", &p), VEIL_OK);
	ck_assert_str_eq(p.filter, "#");
	ck_assert_uint_eq(p.send_key_id, 1);
	ck_assert(p.allow_plaintext);
	ck_assert(!p.require_signature);
	veil_keyring_free(&kr);
	/* The filter field is never a comment, even when it is exactly '#'. */
	kr = parse_ok("policy # plaintext\n");
	ck_assert_int_eq(veil_keyring_policy(kr, "any/topic", &p), VEIL_OK);
	ck_assert(p.allow_plaintext);
	veil_keyring_free(&kr);
	parse_bad("policy #  # a keyless filter without plaintext\n", 1, "has no key");
	/* Elsewhere a comment cuts the line: these lines lose a required field. */
	parse_bad("authority #key-comes-later\n", 1, "expected 'authority");
	snprintf(t, sizeof(t), "key a/# # 1 %s\n", K1);
	parse_bad(t, 1, "expected 'key");
	parse_bad("policy a/# #signed\n", 1, "has no key");
	/* A '#' inside a field is no comment: "signed#x" is an unknown word. */
	snprintf(t, sizeof(t), "key a 1 %s\npolicy a signed#x\n", K1);
	parse_bad(t, 2, "unknown policy word");
}
END_TEST

/* PROTOCOL.md section 6: a first-level '+' or '#' never matches a '$' topic;
 * at a later level '+' matches a '$' level like any other. */
START_TEST(test_dollar_levels)
{
	char t[512];
	snprintf(t, sizeof(t), "key + 1 %s\nkey +/x 2 %s\nkey a/+ 3 %s\nkey $SYS/+ 4 %s\n", K1, K2, K3, PK);
	struct veil_keyring *kr = parse_ok(t);
	struct veil_topic_policy p;
	ck_assert_int_eq(veil_keyring_policy(kr, "$SYS", &p), VEIL_ERR_NO_POLICY);
	ck_assert_int_eq(veil_keyring_policy(kr, "$x", &p), VEIL_ERR_NO_POLICY);
	ck_assert_int_eq(veil_keyring_policy(kr, "$SYS/x", &p), VEIL_OK);
	ck_assert_str_eq(p.filter, "$SYS/+"); /* not +/x */
	ck_assert_int_eq(veil_keyring_policy(kr, "a/$x", &p), VEIL_OK);
	ck_assert_str_eq(p.filter, "a/+");
	ck_assert_int_eq(veil_keyring_policy(kr, "b", &p), VEIL_OK);
	ck_assert_str_eq(p.filter, "+");
	ck_assert_int_eq(veil_keyring_policy(kr, "b/x", &p), VEIL_OK);
	ck_assert_str_eq(p.filter, "+/x");
	ck_assert_int_eq(veil_keyring_policy(kr, "$SYS/x/y", &p), VEIL_ERR_NO_POLICY);
	veil_keyring_free(&kr);
	snprintf(t, sizeof(t), "key # 1 %s\nkey +/# 2 %s\n", K1, K2);
	kr = parse_ok(t);
	ck_assert_int_eq(veil_keyring_policy(kr, "$SYS", &p), VEIL_ERR_NO_POLICY);
	ck_assert_int_eq(veil_keyring_policy(kr, "$SYS/a/b", &p), VEIL_ERR_NO_POLICY);
	ck_assert_int_eq(veil_keyring_policy(kr, "a/$SYS", &p), VEIL_OK);
	veil_keyring_free(&kr);
}
END_TEST

START_TEST(test_file_permissions)
{
	char dir[256], path[300], err[512];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/keyring", dir);
	char text[256];
	snprintf(text, sizeof(text), "key a/# 1 %s\n", K1);
	ck_assert_int_eq(test_write_file(path, text, 0644), 0);
	struct veil_keyring *kr = NULL;
	ck_assert_int_eq(veil_keyring_load(path, &kr, err, sizeof(err)), VEIL_ERR_PERM);
	ck_assert_ptr_nonnull(strstr(err, "chmod 600"));
	/* "mode 0600" = no group or other bit (PROTOCOL.md section 2). */
	ck_assert_int_eq(chmod(path, 0604), 0);
	ck_assert_int_eq(veil_keyring_load(path, &kr, err, sizeof(err)), VEIL_ERR_PERM);
	ck_assert_int_eq(chmod(path, 0610), 0);
	ck_assert_int_eq(veil_keyring_load(path, &kr, err, sizeof(err)), VEIL_ERR_PERM);
	ck_assert_int_eq(chmod(path, 0400), 0);
	ck_assert_int_eq(veil_keyring_load(path, &kr, err, sizeof(err)), VEIL_OK);
	veil_keyring_free(&kr);
	ck_assert_int_eq(chmod(path, 0600), 0);
	ck_assert_int_eq(veil_keyring_load(path, &kr, err, sizeof(err)), VEIL_OK);
	veil_keyring_free(&kr);
	ck_assert_int_eq(test_write_file(path, "\nkey a/# 1 xx\n", 0600), 0);
	ck_assert_int_eq(veil_keyring_load(path, &kr, err, sizeof(err)), VEIL_ERR_PARSE);
	char want[320];
	snprintf(want, sizeof(want), "%s:2:", path);
	ck_assert_msg(strstr(err, want) != NULL, "%s", err);
	ck_assert_int_eq(veil_keyring_load("/nonexistent/kr", &kr, err, sizeof(err)), VEIL_ERR_IO);
	remove(path);
	remove(dir);
}
END_TEST

/* Found in the issue-7 review: parse errors echoed the offending field, and
 * with a key line's fields out of order (or a pasted key on its own line) that
 * field is the base64 topic key, which then went to the application's log. */
START_TEST(test_parse_errors_never_echo_keys)
{
	char lines[4][200], err[300];
	struct veil_keyring *kr = NULL;
	char plus_key[64]; /* a key whose base64 has '+', so it is not a valid filter either */
	uint8_t k[32];
	memset(k, 0xfb, sizeof(k));
	sodium_bin2base64(plus_key, sizeof(plus_key), k, sizeof(k), sodium_base64_VARIANT_ORIGINAL);
	ck_assert_ptr_nonnull(strchr(plus_key, '+'));
	const char *keys[] = { K1, plus_key };
	for (size_t j = 0; j < 2; j++) {
		snprintf(lines[0], sizeof(lines[0]), "key a/# %s 1\n", keys[j]);
		snprintf(lines[1], sizeof(lines[1]), "key %s 1 a/#\n", keys[j]);
		snprintf(lines[2], sizeof(lines[2]), "%s\n", keys[j]);
		snprintf(lines[3], sizeof(lines[3]), "key a/# 1 %s\n%s\n", K2, keys[j]);
		for (size_t i = 0; i < 4; i++) {
			err[0] = '\0';
			ck_assert_int_eq(veil_keyring_parse(lines[i], strlen(lines[i]), "t", &kr, err, sizeof(err)),
			                 VEIL_ERR_PARSE);
			ck_assert_ptr_null(kr);
			ck_assert_msg(err[0] != '\0', "no error message for '%s'", lines[i]);
			ck_assert_msg(strstr(err, keys[j]) == NULL, "key echoed: %s", err);
		}
	}
	/* A mistyped directive is still named. */
	parse_bad("polcy a/# signed\n", 1, "unknown directive 'polcy'");
}
END_TEST


/* Filter against filter: is there a topic both match? */
START_TEST(test_filters_overlap)
{
	static const struct {
		const char *a, *b;
		bool overlap;
	} cases[] = {
		{ "a/b", "a/b", true },       { "a/b", "a/c", false },     { "a/+", "a/b", true },
		{ "a/#", "a", true },         { "a", "a/#", true },        { "a/#", "a/b/c", true },
		{ "+/b", "a/+", true },       { "+/b", "a/c", false },     { "#", "$SYS/x", false },
		{ "+/x", "$SYS/x", false },   { "$SYS/#", "$SYS/x", true }, { "#", "+/+", true },
		{ "a/+/c", "a/b", false },    { "a/+/c", "a/b/#", true },  { "a", "b", false },
		{ "factory/%c/#", "factory/#", true }, { "a//b", "a/+/b", true }, { "a/b/c", "a/b", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_msg(veil__filters_overlap(cases[i].a, cases[i].b) == cases[i].overlap, "%s ~ %s", cases[i].a,
		              cases[i].b);
		ck_assert_msg(veil__filters_overlap(cases[i].b, cases[i].a) == cases[i].overlap, "%s ~ %s", cases[i].b,
		              cases[i].a);
	}
}
END_TEST

struct refusals {
	char (*r)[512];
	size_t *n;
};

static void refuse_cb(void *ctx, const char *why)
{
	struct refusals *rf = ctx;
	if (*rf->n < 2)
		snprintf(rf->r[*rf->n], 512, "%s", why);
	(*rf->n)++;
}

/* Key service epochs in a keyring: the newest epoch whose send window holds
 * now seals; none: no-key (never an older key, never plaintext); receivers
 * accept an epoch until its accept-until; a static filter overlapping a
 * scope refuses the grant with its file line; static keyrings refuse the
 * key service's key ids. */
START_TEST(test_granted_epochs)
{
	char text[512];
	snprintf(text, sizeof(text), "authority %s\nkey static/# 1 %s send\nkey factory/line9/# 2 %s\n", PK, K1, K2);
	struct veil_keyring *base = NULL, *kr = NULL;
	ck_assert_int_eq(veil_keyring_parse(text, strlen(text), "kr", &base, NULL, 0), VEIL_OK);
	uint8_t e1[32], e2[32], e3[32];
	memset(e1, 0x11, 32);
	memset(e2, 0x22, 32);
	memset(e3, 0x33, 32);
	const uint64_t t0 = 1800000000;
	struct veil__keyring_grant g[] = {
		{ "factory/s1/#", 0x80000001U, e1, t0, t0 + 100, t0 + 300, false, true },
		{ "factory/s1/#", 0x80000002U, e2, t0 + 100, t0 + 200, t0 + 400, false, true },
		{ "factory/s2/#", 0x80000003U, e3, t0, t0 + 100, t0 + 300, true, false }, /* receive only, signed */
		{ "factory/#", 0x80000004U, e3, t0, t0 + 100, t0 + 300, false, true },    /* overlaps kr:3 */
		{ "static/x", 0x00000005U, e3, t0, t0 + 100, t0 + 300, false, true },     /* not a grant id */
	};
	char refused[2][512] = { "", "" };
	size_t nref = 0;
	struct refusals rf = { refused, &nref };
	ck_assert_int_eq(veil__keyring_compose(base, "kr", g, 5, &kr, refuse_cb, &rf), VEIL_OK);
	ck_assert_uint_eq(nref, 2);
	ck_assert_msg(strstr(refused[0], "kr:3: filter 'factory/line9/#' overlaps the key service's scope 'factory/#'"),
	              "%s", refused[0]);
	struct veil_topic_policy pol;
	/* Static filters still answer, first. */
	ck_assert_int_eq(veil__keyring_policy_at(kr, "static/a", t0, &pol), VEIL_OK);
	ck_assert_uint_eq(pol.send_key_id, 1);
	ck_assert(!pol.granted);
	/* Epoch 1 seals in its window; epoch 2 from its send_from on. */
	ck_assert_int_eq(veil__keyring_policy_at(kr, "factory/s1/t", t0 + 50, &pol), VEIL_OK);
	ck_assert_uint_eq(pol.send_key_id, 0x80000001U);
	ck_assert(pol.granted);
	ck_assert_int_eq(veil__keyring_policy_at(kr, "factory/s1/t", t0 + 150, &pol), VEIL_OK);
	ck_assert_uint_eq(pol.send_key_id, 0x80000002U);
	/* Past every send window: no key, never an older one. */
	ck_assert_int_eq(veil__keyring_policy_at(kr, "factory/s1/t", t0 + 250, &pol), VEIL_ERR_NO_KEY);
	ck_assert_ptr_null(pol.send_key);
	/* Receive-only grant: the device may not send, but the policy is there. */
	ck_assert_int_eq(veil__keyring_policy_at(kr, "factory/s2/t", t0 + 10, &pol), VEIL_ERR_NO_KEY);
	ck_assert(pol.require_signature);
	/* Receiving: until accept-until. */
	const uint8_t *key = NULL;
	uint16_t kcv;
	ck_assert_int_eq(veil__keyring_find_key_kcv(kr, "factory/s1/t", 0x80000001U, t0 + 299, &key, &kcv), VEIL_OK);
	ck_assert_int_eq(memcmp(key, e1, 32), 0);
	ck_assert_int_eq(veil__keyring_find_key_kcv(kr, "factory/s1/t", 0x80000001U, t0 + 300, &key, &kcv),
	                 VEIL_ERR_UNKNOWN_KEY);
	ck_assert_int_eq(veil__keyring_find_key_kcv(kr, "factory/s2/t", 0x80000001U, t0, &key, &kcv), VEIL_ERR_WRONG_TOPIC);
	ck_assert(veil__keyring_granted_topic(kr, "factory/s2/x"));
	ck_assert(!veil__keyring_granted_topic(kr, "static/x"));
	/* The authorities come along. */
	const uint8_t(*pks)[VEIL_PK_BYTES] = NULL;
	ck_assert_uint_eq(veil_keyring_authorities(kr, &pks), 1);
	veil_keyring_free(&kr);
	/* Without a static keyring at all. */
	ck_assert_int_eq(veil__keyring_compose(NULL, NULL, g, 2, &kr, NULL, NULL), VEIL_OK);
	ck_assert_int_eq(veil__keyring_policy_at(kr, "factory/s1/t", t0 + 50, &pol), VEIL_OK);
	/* It trusts no authority until the session adds its authorities file's
	 * (signed messages are checked against these): once each. */
	ck_assert_uint_eq(veil_keyring_authorities(kr, &pks), 0);
	uint8_t extra[2][VEIL_PK_BYTES];
	memset(extra[0], 0x11, VEIL_PK_BYTES);
	memset(extra[1], 0x22, VEIL_PK_BYTES);
	ck_assert_int_eq(veil__keyring_add_authorities(kr, (const uint8_t(*)[VEIL_PK_BYTES])extra, 2), VEIL_OK);
	ck_assert_int_eq(veil__keyring_add_authorities(kr, (const uint8_t(*)[VEIL_PK_BYTES])extra, 2), VEIL_OK);
	ck_assert_uint_eq(veil_keyring_authorities(kr, &pks), 2);
	ck_assert_int_eq(memcmp(pks[1], extra[1], VEIL_PK_BYTES), 0);
	ck_assert_int_eq(veil__keyring_add_authorities(kr, NULL, 0), VEIL_OK);
	ck_assert_int_eq(veil__keyring_add_authorities(NULL, (const uint8_t(*)[VEIL_PK_BYTES])extra, 1), VEIL_ERR_INVAL);
	veil_keyring_free(&kr);
	veil_keyring_free(&base);
	/* A static keyring never uses the key service's ids. */
	snprintf(text, sizeof(text), "key a/# 2147483648 %s\n", K1);
	char err[256] = "";
	ck_assert_int_eq(veil_keyring_parse(text, strlen(text), "kr", &base, err, sizeof(err)), VEIL_ERR_PARSE);
	ck_assert_msg(strstr(err, "kr:1: key id 2147483648 is in the key service's range"), "%s", err);
}
END_TEST


static Suite *suite(void)
{
	Suite *s = suite_create("keyring");
	TCase *tc = veil_tcase("core", 2);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_policy_lookup);
	tcase_add_test(tc, test_highest_key_sends_without_mark);
	tcase_add_test(tc, test_parse_errors);
	tcase_add_test(tc, test_parse_errors_never_echo_keys);
	tcase_add_test(tc, test_trailing_comments);
	tcase_add_test(tc, test_dollar_levels);
	tcase_add_test(tc, test_file_permissions);
	tcase_add_test(tc, test_filters_overlap);
	tcase_add_test(tc, test_granted_epochs);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}

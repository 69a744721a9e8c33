/*
 * plugin/relay_record.c: the relay's records (relay.h), what a node accepts
 * from another, and the two revoke.c functions the relay writes and reads
 * with (vp_revoke__entry, vp_revoke__format). A record is exactly one entry,
 * and only under its own topic: anything else is refused, never applied.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "veil/identity.h"
#include "files.h"
#include "relay.h"
#include "revoke.h"
#include "check_run.h"
#include "timing.h"
#include "vectors.h"

#define PLEN (sizeof(VP_RELAY_PREFIX) - 1)

static const uint8_t CRED[16] = { 0x00, 0x11, 0x22, 0x33, 0x44, 0x55, 0x66, 0x77,
	                          0x88, 0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff };
static const uint8_t CRED2[16] = { 0xff, 0xee, 0xdd, 0xcc, 0xbb, 0xaa, 0x99, 0x88,
	                           0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0x00 };

/* The level (after the prefix) of an entry's record topic. */
static const char *level_of(const uint8_t *cred, const char *client, char *buf, size_t len)
{
	ck_assert(vp_relay__topic(cred, client, buf, len));
	ck_assert(!strncmp(buf, VP_RELAY_PREFIX, PLEN));
	return buf + PLEN;
}

/* A record accepted: exactly its entry, in the list and in *e. */
static void accepted(const char *level, const char *payload, const uint8_t *cred, const char *client)
{
	struct vp_relay_entry e;
	struct vp_revoke *r = NULL;
	const char *why = vp_relay__parse(level, payload, strlen(payload), &e, &r);
	ck_assert_msg(why == NULL, "'%s' on %s: %s", payload, level, why);
	ck_assert_ptr_nonnull(r);
	ck_assert_uint_eq(vp_revoke__count(r), 1);
	ck_assert(e.is_cred == (cred != NULL));
	if (cred) {
		ck_assert_mem_eq(e.cred, cred, 16);
		ck_assert(vp_revoke__credential(r, cred));
	} else {
		ck_assert_str_eq(e.client, client);
		ck_assert(vp_revoke__client(r, client));
	}
	vp_revoke__free(&r);
	ck_assert_ptr_null(vp_relay__check(level, payload, strlen(payload)));
}

static void refused(const char *level, const void *payload, size_t len, const char *want)
{
	struct vp_relay_entry e;
	struct vp_revoke *r = (struct vp_revoke *)1; /* must be reset */
	const char *why = vp_relay__parse(level, payload, len, &e, &r);
	ck_assert_msg(why != NULL, "accepted on %s", level ? level : "(null)");
	ck_assert_ptr_null(r);
	if (want)
		ck_assert_str_eq(why, want);
	ck_assert_ptr_nonnull(vp_relay__check(level, payload, len));
}

START_TEST(test_topics)
{
	char t[VP_RELAY_TOPIC_MAX];
	ck_assert(vp_relay__topic(CRED, NULL, t, sizeof(t)));
	ck_assert_str_eq(t, "$veil/v1/revoked/credential/00112233445566778899aabbccddeeff");
	ck_assert(vp_relay__topic(NULL, "lost", t, sizeof(t)));
	ck_assert_str_eq(t, "$veil/v1/revoked/client/6c6f7374");
	/* The longest client id fits VP_RELAY_TOPIC_MAX; a longer one, an empty
	 * one or a short buffer has no topic. */
	char id[VEIL_CLIENT_ID_MAX + 2];
	memset(id, 'x', VEIL_CLIENT_ID_MAX);
	id[VEIL_CLIENT_ID_MAX] = '\0';
	ck_assert(vp_relay__topic(NULL, id, t, sizeof(t)));
	ck_assert_uint_eq(strlen(t), PLEN + strlen("client/") + 2 * VEIL_CLIENT_ID_MAX);
	id[VEIL_CLIENT_ID_MAX] = 'x';
	id[VEIL_CLIENT_ID_MAX + 1] = '\0';
	ck_assert(!vp_relay__topic(NULL, id, t, sizeof(t)));
	ck_assert(!vp_relay__topic(NULL, "", t, sizeof(t)));
	ck_assert(!vp_relay__topic(NULL, NULL, t, sizeof(t)));
	ck_assert(!vp_relay__topic(CRED, NULL, t, 20));
	char line[VEIL_CLIENT_ID_MAX + 16];
	vp_relay__entry_text(CRED, NULL, ' ', line, sizeof(line));
	ck_assert_str_eq(line, "credential 00112233445566778899aabbccddeeff");
	vp_relay__entry_text(NULL, "my device", ':', line, sizeof(line));
	ck_assert_str_eq(line, "client:my device");
}
END_TEST

START_TEST(test_accepted)
{
	char t[VP_RELAY_TOPIC_MAX];
	accepted(level_of(CRED, NULL, t, sizeof(t)), "credential 00112233445566778899aabbccddeeff", CRED, NULL);
	accepted(level_of(NULL, "lost", t, sizeof(t)), "client lost", NULL, "lost");
	accepted(level_of(NULL, "my device", t, sizeof(t)), "client my device", NULL, "my device");
	accepted(level_of(NULL, "\xc3\xa9t\xc3\xa9", t, sizeof(t)), "client \xc3\xa9t\xc3\xa9", NULL,
	         "\xc3\xa9t\xc3\xa9");
}
END_TEST

START_TEST(test_refused)
{
	char t[VP_RELAY_TOPIC_MAX], t2[VP_RELAY_TOPIC_MAX];
	const char *cred = level_of(CRED, NULL, t, sizeof(t));
	const char *lost = level_of(NULL, "lost", t2, sizeof(t2));
	/* Another entry than its topic names: a node never applies it. */
	refused(cred, "credential ffeeddccbbaa99887766554433221100", 43, "relay-topic-mismatch");
	refused(lost, "client lost2", 12, "relay-topic-mismatch");
	refused(lost, "credential 00112233445566778899aabbccddeeff", 43, "relay-topic-mismatch");
	refused(cred, "client lost", 11, "relay-topic-mismatch");
	refused("client/6c6f7374/x", "client lost", 11, "relay-topic-mismatch");
	refused("", "client lost", 11, "relay-topic-mismatch");
	/* Not the one form the relay writes: two blanks, a tab. */
	refused(lost, "client  lost", 12, NULL);
	refused(lost, "client\tlost", 11, "relay-malformed");
	refused(cred, "credential\t00112233445566778899aabbccddeeff", 43, "relay-malformed");
	refused(cred, "credential 00112233445566778899AABBCCDDEEFF", 43, "relay-malformed");
	/* Not one entry: empty, a comment, two lines, a NUL, control bytes,
	 * a trailing comment or blank, a wildcard, a short id. */
	refused(lost, "", 0, "relay-malformed");
	refused(lost, "# client lost", 13, "relay-malformed");
	refused(lost, "client lost\nclient other", 24, "relay-malformed");
	refused(lost, "client lost\n", 12, "relay-malformed");
	refused(lost, "client lost\0x", 13, "relay-malformed");
	refused(lost, "client lo\x01st", 12, "relay-malformed");
	refused(lost, "client lost #x", 14, "relay-malformed");
	refused(lost, "client lost ", 12, "relay-malformed");
	refused(lost, "client lo+t", 11, "relay-malformed");
	refused(cred, "credential 0011", 15, "relay-malformed");
	refused(cred, "revoke everything", 17, "relay-malformed");
	refused(NULL, "client lost", 11, "relay-malformed");
	refused(lost, NULL, 11, "relay-malformed");
	/* Longer than any entry: refused before it is read. */
	char big[VEIL_CLIENT_ID_MAX + 40];
	memset(big, 'x', sizeof(big));
	memcpy(big, "client ", 7);
	refused(lost, big, sizeof(big), "relay-malformed");
}
END_TEST

/* What the relay writes into a node's runtime file is read back as the
 * same list by the file's own loader. */
START_TEST(test_format_round_trip)
{
	struct vp_revoke *a = NULL, *b = NULL, *all = NULL, *back = NULL;
	char why[160] = "";
	ck_assert_int_eq(vp_revoke__entry("credential ffeeddccbbaa99887766554433221100", &a, why, sizeof(why)), VEIL_OK);
	ck_assert_int_eq(vp_revoke__entry("client my device", &b, why, sizeof(why)), VEIL_OK);
	ck_assert_int_eq(vp_revoke__merge(a, b, &all), VEIL_OK);
	vp_revoke__free(&b);
	ck_assert_int_eq(vp_revoke__entry("credential 00112233445566778899aabbccddeeff", &b, why, sizeof(why)), VEIL_OK);
	struct vp_revoke *three = NULL;
	ck_assert_int_eq(vp_revoke__merge(all, b, &three), VEIL_OK);
	size_t len = 0;
	char *text = vp_revoke__format(three, "# written by the relay", &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_uint_eq(len, strlen(text));
	ck_assert_str_eq(text, "# written by the relay\n"
	                       "credential 00112233445566778899aabbccddeeff\n"
	                       "credential ffeeddccbbaa99887766554433221100\n"
	                       "client my device\n");
	char dir[256], path[300];
	ck_assert_int_eq(test_mkdtemp(dir, sizeof(dir)), 0);
	snprintf(path, sizeof(path), "%s/revocations", dir);
	ck_assert_int_eq(test_write_file(path, text, 0600), 0);
	char err[256] = "";
	ck_assert_msg(vp_revoke__load(path, &back, err, sizeof(err)) == VEIL_OK, "%s", err);
	ck_assert_uint_eq(vp_revoke__count(back), 3);
	ck_assert(vp_revoke__credential(back, CRED));
	ck_assert(vp_revoke__credential(back, CRED2));
	ck_assert(vp_revoke__client(back, "my device"));
	remove(path);
	remove(dir);
	free(text);
	/* An empty list: one empty line, no header; a blank line: no entry. */
	vp_revoke__free(&b);
	ck_assert_int_eq(vp_revoke__entry("", &b, why, sizeof(why)), VEIL_OK);
	ck_assert_uint_eq(vp_revoke__count(b), 0);
	text = vp_revoke__format(b, NULL, &len);
	ck_assert_ptr_nonnull(text);
	ck_assert_str_eq(text, "\n");
	free(text);
	/* Refused lines give no list and say why. */
	struct vp_revoke *bad = NULL;
	ck_assert_int_eq(vp_revoke__entry("client a+b", &bad, why, sizeof(why)), VEIL_ERR_PARSE);
	ck_assert_ptr_null(bad);
	ck_assert(why[0] != '\0');
	ck_assert_int_eq(vp_revoke__entry(NULL, &bad, why, sizeof(why)), VEIL_ERR_INVAL);
	vp_revoke__free(&a);
	vp_revoke__free(&b);
	vp_revoke__free(&all);
	vp_revoke__free(&three);
	vp_revoke__free(&back);
}
END_TEST

/* The records of PROTOCOL.md section 14 for the vectors' credential (its
 * id) and client id: the same bytes as tools/gen_vectors.py, the
 * independent implementation, wrote into tests/vectors/core.txt. */
START_TEST(test_vectors)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX], want[512];
	long cl = test_vector("credential", cred, sizeof(cred));
	ck_assert_int_gt(cl, 0);
	struct veil_credential c;
	ck_assert_int_eq(veil_credential_parse(cred, (size_t)cl, &c), VEIL_OK);
	char topic[VP_RELAY_TOPIC_MAX], payload[256];
	ck_assert(vp_relay__topic(c.id, NULL, topic, sizeof(topic)));
	long wl = test_vector("relay_credential_topic", want, sizeof(want));
	ck_assert_int_gt(wl, 0);
	ck_assert_uint_eq(strlen(topic), (size_t)wl);
	ck_assert_mem_eq(topic, want, (size_t)wl);
	vp_relay__entry_text(c.id, NULL, ' ', payload, sizeof(payload));
	wl = test_vector("relay_credential_payload", want, sizeof(want));
	ck_assert_int_gt(wl, 0);
	ck_assert_uint_eq(strlen(payload), (size_t)wl);
	ck_assert_mem_eq(payload, want, (size_t)wl);
	accepted(topic + PLEN, payload, c.id, NULL);

	ck_assert(vp_relay__topic(NULL, c.client_id, topic, sizeof(topic)));
	wl = test_vector("relay_client_topic", want, sizeof(want));
	ck_assert_int_gt(wl, 0);
	ck_assert_uint_eq(strlen(topic), (size_t)wl);
	ck_assert_mem_eq(topic, want, (size_t)wl);
	vp_relay__entry_text(NULL, c.client_id, ' ', payload, sizeof(payload));
	wl = test_vector("relay_client_payload", want, sizeof(want));
	ck_assert_int_gt(wl, 0);
	ck_assert_uint_eq(strlen(payload), (size_t)wl);
	ck_assert_mem_eq(payload, want, (size_t)wl);
	accepted(topic + PLEN, payload, NULL, c.client_id);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("relay");
	TCase *tc = veil_tcase("relay", 2);
	tcase_add_test(tc, test_topics);
	tcase_add_test(tc, test_accepted);
	tcase_add_test(tc, test_refused);
	tcase_add_test(tc, test_format_round_trip);
	tcase_add_test(tc, test_vectors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return veil_check_run(suite());
}

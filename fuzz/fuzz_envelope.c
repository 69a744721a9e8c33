/*
 * libFuzzer target: the receive path of an envelope. Input = one selector
 * byte choosing the topic, then the payload. Selector < FUZZ_NTOPICS picks a
 * fixed topic (each lands on a different keyring policy); any other value
 * takes the topic from the input: one length byte, then that many topic bytes
 * (so topic matching is fuzzed as well). The payload goes through
 * veil_envelope_parse, veil_envelope_open with the vector topic key,
 * veil_envelope_verify_signature (vector device key, and the key of the
 * embedded credential), and veil_message_open against a fixed keyring with a
 * fresh replay window. Seeds: fuzz/corpus/envelope (vectors with selector 0).
 */
#include <stdbool.h>
#include <string.h>

#include "veil/envelope.h"
#include "veil/identity.h"
#include "veil/keyring.h"
#include "veil/message.h"
#include "veil/replay.h"

#include "fuzz_common.h"

/* Topic key of the vectors: bytes 64..95; key id 7 on factory/#. Key 8 (another
 * key) on secure/#, which requires signatures (key ids are unique in a
 * keyring, so id 7 there is "wrong-topic"); open/# takes plaintext. */
static const char keyring_text[] =
	"# fuzz keyring\n"
	"authority Kay64UG8yvCyLhqU000LxzYeUm0L/hLIl5S8kyKWbdc=\n"
	"key factory/# 7 QEFCQ0RFRkdISUpLTE1OT1BRUlNUVVZXWFlaW1xdXl8= send\n"
	"key secure/# 8 YGFiY2RlZmdoaWprbG1ub3BxcnN0dXZ3eHl6e3x9fn8= send\n"
	"policy secure/# signed\n"
	"policy open/# plaintext\n";

static const char *const topics[] = {
	"factory/line1/temp", "secure/line1/temp", "open/x", "nowhere", "factory/line2/temp",
};
#define FUZZ_NTOPICS (sizeof(topics) / sizeof(topics[0]))

static struct veil_keyring *kr;
static uint8_t topic_key[VEIL_KEY_BYTES];

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	char err[256];
	if (veil_keyring_parse(keyring_text, sizeof(keyring_text) - 1, "fuzz", &kr, err, sizeof(err)) != VEIL_OK)
		abort();
	for (size_t i = 0; i < sizeof(topic_key); i++)
		topic_key[i] = (uint8_t)(64 + i);
	return 0;
}

static void open_direct(const uint8_t *p, size_t n, const char *topic)
{
	struct veil_envelope_view v;
	if (veil_envelope_parse(p, n, &v) != VEIL_OK)
		return;
	/* The view points into p: every length must stay inside it. */
	if (v.ciphertext_len < VEIL_TAG_BYTES || v.ciphertext < p || v.ciphertext + v.ciphertext_len > p + n)
		abort();
	size_t cap = v.ciphertext_len - VEIL_TAG_BYTES;
	uint8_t *pt = malloc(cap ? cap : 1);
	if (!pt)
		abort();
	size_t pt_len = 0;
	if (veil_envelope_open(&v, topic, topic_key, pt, cap, &pt_len) == VEIL_OK && pt_len != cap)
		abort();
	free(pt);
	if (v.credential) {
		(void)veil_envelope_verify_signature(&v, topic, fuzz_device_pk);
		struct veil_credential c;
		if (veil_credential_parse(v.credential, v.credential_len, &c) == VEIL_OK)
			(void)veil_envelope_verify_signature(&v, topic, c.device_pk);
	}
}

static void open_message(const uint8_t *p, size_t n, const char *topic)
{
	struct veil_replay *replay = NULL;
	if (veil_replay_new(4, &replay) != VEIL_OK)
		abort();
	size_t cap = n + 1;
	uint8_t *out = malloc(cap);
	if (!out)
		abort();
	size_t out_len = 0;
	struct veil_open_info info;
	int rc = veil_message_open(kr, replay, topic, p, n, FUZZ_NOW, out, cap, &out_len, &info);
	if (rc == VEIL_OK) {
		if (out_len > n)
			abort();
		/* The same envelope a second time is a replay (plaintext excepted). */
		if (!info.plaintext &&
		    veil_message_open(kr, replay, topic, p, n, FUZZ_NOW, out, cap, &out_len, &info) == VEIL_OK)
			abort();
	}
	free(out);
	veil_replay_free(&replay);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (size < 1)
		return 0;
	char topic_buf[256];
	const char *topic;
	const uint8_t *p;
	size_t n;
	if (data[0] < FUZZ_NTOPICS) {
		topic = topics[data[0]];
		p = data + 1;
		n = size - 1;
	} else {
		if (size < 2 || (size_t)data[1] > size - 2)
			return 0;
		size_t tl = data[1];
		memcpy(topic_buf, data + 2, tl);
		topic_buf[tl] = '\0';
		topic = topic_buf;
		p = data + 2 + tl;
		n = size - 2 - tl;
	}
	/* An exact-size heap copy, so ASan catches any read past the payload. */
	uint8_t *copy = malloc(n ? n : 1);
	if (!copy)
		abort();
	if (n)
		memcpy(copy, p, n);
	open_direct(copy, n, topic);
	open_message(copy, n, topic);
	free(copy);
	return 0;
}

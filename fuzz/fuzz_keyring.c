/*
 * libFuzzer target: the keyring text parser (veil_keyring_parse). A keyring
 * that parses is then queried the way senders and receivers do: policy and
 * key lookup for a few topics (plain, deep, '$' topics, and the first filter
 * of the input used as a topic), and the authority list. Seeds:
 * fuzz/corpus/keyring (small keyrings in the format of docs/PROTOCOL.md 6).
 */
#include <stdbool.h>
#include <string.h>

#include "veil/keyring.h"

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	return 0;
}

static void query(const struct veil_keyring *kr, const char *topic)
{
	struct veil_topic_policy pol;
	if (veil_keyring_policy(kr, topic, &pol) == VEIL_OK) {
		if (!pol.filter)
			abort();
		const uint8_t *key = NULL;
		if (pol.send_key) {
			/* The send key must be found again by its id on the same topic. */
			if (veil_keyring_find_key(kr, topic, pol.send_key_id, &key) != VEIL_OK ||
			    memcmp(key, pol.send_key, VEIL_KEY_BYTES) != 0 ||
			    veil_key_check(pol.send_key) != pol.send_key_kcv)
				abort();
		}
	}
	const uint8_t *key = NULL;
	for (uint32_t id = 0; id < 4; id++)
		(void)veil_keyring_find_key(kr, topic, id, &key);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy without a terminator: the parser takes a length. */
	char *text = malloc(size ? size : 1);
	if (!text)
		abort();
	if (size)
		memcpy(text, data, size);
	struct veil_keyring *kr = NULL;
	char err[256];
	int rc = veil_keyring_parse(text, size, "fuzz", &kr, err, sizeof(err));
	if (rc == VEIL_OK) {
		if (!kr)
			abort();
		static const char *const topics[] = { "a", "a/b", "a/b/c", "sensors/1/temp", "$SYS/x", "/", "a//b" };
		for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
			query(kr, topics[i]);
		/* The second word of the first "key"/"policy" line, as a topic. */
		char word[128];
		const char *sp = memchr(text, ' ', size);
		if (sp) {
			size_t off = (size_t)(sp + 1 - text), k = 0;
			while (off + k < size && k + 1 < sizeof(word) && text[off + k] != ' ' && text[off + k] != '\n')
				k++;
			memcpy(word, text + off, k);
			word[k] = '\0';
			query(kr, word);
		}
		const uint8_t (*pks)[VEIL_PK_BYTES] = NULL;
		if (veil_keyring_authorities(kr, &pks) > VEIL_MAX_AUTHORITIES)
			abort();
		veil_keyring_free(&kr);
		if (kr)
			abort();
	} else if (kr) {
		abort(); /* a failed parse must not hand out a keyring */
	}
	free(text);
	return 0;
}

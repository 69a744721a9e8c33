/*
 * libFuzzer target: the ACL rules file parser and its decisions
 * (core/acl/acl_rules.c, acl_decide.c, topic.c). Input: the rules file image;
 * if it holds a NUL byte, the bytes after the first NUL are the topic to
 * decide on (the parser only sees the bytes before it), else a fixed topic
 * list is used. Every parsed rule set is asked READ, WRITE and SUBSCRIBE for
 * an anonymous client, a user with roles, and a client with wildcard
 * characters in its ids, and every list's cover and overlap of the topic as
 * a filter (keyd's questions: covering implies overlapping). Seeds:
 * fuzz/corpus/acl.
 */
#include <stdbool.h>
#include <string.h>

#include "acl_decide.h"
#include "acl_rules.h"

#include "fuzz_common.h"

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	return 0;
}

static const struct vp_acl_who whos[] = {
	{ "anon-1", NULL, NULL },
	{ "sensor-1", "alice", "sensor,eu" },
	{ "a+b", "x#", "admin," },
};

static void decide_all(const struct vp_acl_rules *r, const char *topic)
{
	for (size_t w = 0; w < sizeof(whos) / sizeof(whos[0]); w++) {
		struct vp_acl_view *v = vp_acl_view__new(r, &whos[w], 1);
		if (!v)
			abort();
		static const unsigned acc[] = { VP_ACC_READ, VP_ACC_WRITE, VP_ACC_SUBSCRIBE };
		for (size_t a = 0; a < 3; a++) {
			struct vp_acl_result res;
			vp_acl__decide(r, v, &whos[w], acc[a], topic, &res);
			if (!res.allowed && res.attrs)
				abort(); /* attributes only come with an allowed WRITE */
		}
		/* keyd's questions: a rule covering the filter also overlaps it
		 * (unless the filter matches no topic at all: "" covers vacuously). */
		struct vp_subst sub = { whos[w].client_id, whos[w].username };
		for (size_t i = 0; *topic && i < v->n; i++) {
			struct vp_match c = { 0, 0, false }, o = { 0, 0, false };
			bool cov = vp_trie__cover(r->trie, v->lists[i], topic, &sub, &c);
			bool ovl = vp_trie__overlap(r->trie, v->lists[i], topic, &sub, &o);
			if (cov != ovl || (c.allow & ~o.allow) || (c.deny && !o.deny))
				abort();
		}
		free(v);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	const uint8_t *nul = memchr(data, '\0', size);
	size_t rlen = nul ? (size_t)(nul - data) : size;
	char *rules = malloc(rlen ? rlen : 1);
	if (!rules)
		abort();
	if (rlen)
		memcpy(rules, data, rlen);
	struct vp_acl_rules *r = NULL;
	char err[256];
	if (vp_acl_rules__parse("fuzz", rules, rlen, &r, err, sizeof(err)) == 0 && r) {
		if (nul) {
			size_t tl = size - rlen - 1;
			char *topic = malloc(tl + 1);
			if (!topic)
				abort();
			memcpy(topic, nul + 1, tl);
			topic[tl] = '\0';
			decide_all(r, topic);
			free(topic);
		} else {
			static const char *const topics[] = { "a/b", "sensors/sensor-1/temp", "$SYS/broker/load",
			                                      "$share/g/a/#", "+/+", "#", "alice/x", "" };
			for (size_t i = 0; i < sizeof(topics) / sizeof(topics[0]); i++)
				decide_all(r, topics[i]);
		}
	}
	vp_acl_rules__free(&r);
	free(rules);
	return 0;
}

/*
 * Keyring: parse the text format (include/veil/keyring.h, docs/PROTOCOL.md
 * section 6) and answer "which key and policy for this topic". Key bytes
 * live in one sodium_malloc'd block, wiped on free.
 *
 * A keyring may also hold keys granted by the key service (epochs, each with
 * its send and accept windows; veil__keyring_compose): their filters come
 * after the static ones and never overlap them, a sender picks the newest
 * epoch whose send window holds now (none: no-key, never an older key or
 * plaintext), and a receiver accepts an epoch until its accept-until.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "veil/keyring.h"
#include "internal.h"
#include "util.h"

#define KEYRING_MAX_BYTES (4U << 20)

/* Directives whose second field is a topic filter: '#' there is the MQTT
 * wildcard, never the start of a comment (veil__line_content). */
static const char *const FILTER_DIRECTIVES[] = { "key", "policy", NULL };

struct kr_key {
	uint32_t id;
	uint8_t *bytes;     /* into keyring->keymem */
	uint16_t kcv;       /* veil_key_check(bytes), computed at load */
	bool send;
	unsigned line;
	/* granted (key service) keys only */
	bool may_send;
	uint64_t send_from, send_until, accept_until; /* unix s */
};

struct kr_filter {
	char *filter;
	struct kr_key *keys;
	size_t nkeys;
	bool has_policy;
	bool require_signature;
	bool allow_plaintext;
	bool granted;       /* the key service's scope: keys by time */
	unsigned first_line;
};

struct veil_keyring {
	struct kr_filter *filters;
	size_t nfilters;
	uint8_t *keymem;    /* sodium_malloc: nkeys_total * 32 */
	size_t keymem_used;
	size_t keymem_cap;
	uint8_t authorities[VEIL_MAX_AUTHORITIES][VEIL_PK_BYTES];
	size_t nauthorities;
};

void veil_topic_key_generate(uint8_t key[VEIL_KEY_BYTES])
{
	randombytes_buf(key, VEIL_KEY_BYTES);
}

void veil_keyring_free(struct veil_keyring **krp)
{
	if (!krp || !*krp)
		return;
	struct veil_keyring *kr = *krp;
	for (size_t i = 0; i < kr->nfilters; i++) {
		free(kr->filters[i].filter);
		free(kr->filters[i].keys);
	}
	free(kr->filters);
	if (kr->keymem)
		sodium_free(kr->keymem);
	free(kr);
	*krp = NULL;
}

static struct kr_filter *filter_get(struct veil_keyring *kr, const char *filter, unsigned line)
{
	for (size_t i = 0; i < kr->nfilters; i++) {
		if (strcmp(kr->filters[i].filter, filter) == 0)
			return &kr->filters[i];
	}
	struct kr_filter *nf = realloc(kr->filters, (kr->nfilters + 1) * sizeof(*nf));
	if (!nf)
		return NULL;
	kr->filters = nf;
	struct kr_filter *f = &kr->filters[kr->nfilters];
	memset(f, 0, sizeof(*f));
	f->filter = strdup(filter);
	if (!f->filter)
		return NULL;
	f->first_line = line;
	kr->nfilters++;
	return f;
}

static bool key_id_used(const struct veil_keyring *kr, uint32_t id, unsigned *line)
{
	for (size_t i = 0; i < kr->nfilters; i++) {
		for (size_t k = 0; k < kr->filters[i].nkeys; k++) {
			if (kr->filters[i].keys[k].id == id) {
				*line = kr->filters[i].keys[k].line;
				return true;
			}
		}
	}
	return false;
}

static int parse_u32(const char *s, uint32_t *out)
{
	char *end = NULL;
	if (!*s || *s == '-' || *s == '+')
		return -1;
	unsigned long long v = strtoull(s, &end, 0);
	if (*end || v > UINT32_MAX)
		return -1;
	*out = (uint32_t)v;
	return 0;
}

#define FAIL(code, ...)                                        \
	do {                                                   \
		veil__errf(errbuf, errlen, __VA_ARGS__);       \
		rc = (code);                                   \
		goto out;                                      \
	} while (0)

static int parse_line(struct veil_keyring *kr, char *line, const char *name, unsigned ln, char *errbuf,
                      size_t errlen)
{
	int rc = VEIL_OK;
	char *f[8];
	size_t n = veil__split(line, f, 6);
	if (n == 0)
		return VEIL_OK;
	if (n > 6)
		FAIL(VEIL_ERR_PARSE, "%s:%u: too many fields", name, ln);
	if (!strcmp(f[0], "authority")) {
		if (n != 2)
			FAIL(VEIL_ERR_PARSE, "%s:%u: expected 'authority <base64 public key>'", name, ln);
		if (kr->nauthorities == VEIL_MAX_AUTHORITIES)
			FAIL(VEIL_ERR_PARSE, "%s:%u: more than %u authorities", name, ln, VEIL_MAX_AUTHORITIES);
		size_t got = 0;
		if (veil__b64_decode(f[1], strlen(f[1]), kr->authorities[kr->nauthorities], VEIL_PK_BYTES, &got) !=
		            VEIL_OK ||
		    got != VEIL_PK_BYTES)
			FAIL(VEIL_ERR_PARSE, "%s:%u: authority key is not 32 bytes of base64", name, ln);
		kr->nauthorities++;
	} else if (!strcmp(f[0], "key")) {
		if (n < 4 || n > 5 || (n == 5 && strcmp(f[4], "send") != 0))
			FAIL(VEIL_ERR_PARSE, "%s:%u: expected 'key <topic-filter> <key-id> <base64 key> [send]'", name, ln);
		/* Fields of a key line are never echoed: in a line with its fields out
		 * of order, the one reported could be the base64 topic key, and these
		 * messages end up in logs. */
		if (!veil__filter_valid(f[1]))
			FAIL(VEIL_ERR_PARSE, "%s:%u: invalid topic filter in a key line (expected 'key <topic-filter> "
			     "<key-id> <base64 key> [send]')", name, ln);
		uint32_t id;
		if (parse_u32(f[2], &id) != 0)
			FAIL(VEIL_ERR_PARSE, "%s:%u: key id is not a number from 0 to 4294967295", name, ln);
		if (id >= VEIL_GRANTED_KEY_ID_MIN)
			FAIL(VEIL_ERR_PARSE, "%s:%u: key id %u is in the key service's range (%u and above): use an id below "
			     "%u", name, ln, id, VEIL_GRANTED_KEY_ID_MIN, VEIL_GRANTED_KEY_ID_MIN);
		unsigned prev = 0;
		if (key_id_used(kr, id, &prev))
			FAIL(VEIL_ERR_PARSE, "%s:%u: key id %u already defined at line %u", name, ln, id, prev);
		if (kr->keymem_used == kr->keymem_cap)
			FAIL(VEIL_ERR_INVAL, "%s:%u: internal key count mismatch", name, ln);
		uint8_t *slot = kr->keymem + kr->keymem_used * VEIL_KEY_BYTES;
		size_t got = 0;
		int drc = veil__b64_decode(f[3], strlen(f[3]), slot, VEIL_KEY_BYTES, &got);
		sodium_memzero(f[3], strlen(f[3]));
		if (drc != VEIL_OK || got != VEIL_KEY_BYTES)
			FAIL(VEIL_ERR_PARSE, "%s:%u: key is not 32 bytes of base64", name, ln);
		struct kr_filter *flt = filter_get(kr, f[1], ln);
		if (!flt)
			FAIL(VEIL_ERR_NOMEM, "%s:%u: out of memory", name, ln);
		bool send = n == 5;
		if (send) {
			for (size_t k = 0; k < flt->nkeys; k++) {
				if (flt->keys[k].send)
					FAIL(VEIL_ERR_PARSE, "%s:%u: filter '%s' already has a send key (line %u)", name, ln,
					     f[1], flt->keys[k].line);
			}
		}
		struct kr_key *nk = realloc(flt->keys, (flt->nkeys + 1) * sizeof(*nk));
		if (!nk)
			FAIL(VEIL_ERR_NOMEM, "%s:%u: out of memory", name, ln);
		flt->keys = nk;
		flt->keys[flt->nkeys++] = (struct kr_key){ .id = id, .bytes = slot, .kcv = veil_key_check(slot), .send = send,
		                                           .line = ln };
		kr->keymem_used++;
	} else if (!strcmp(f[0], "policy")) {
		if (n < 2)
			FAIL(VEIL_ERR_PARSE, "%s:%u: expected 'policy <topic-filter> [signed] [plaintext]'", name, ln);
		if (!veil__filter_valid(f[1]))
			FAIL(VEIL_ERR_PARSE, "%s:%u: invalid topic filter '%s'", name, ln, f[1]);
		bool sig = false, plain = false;
		for (size_t i = 2; i < n; i++) {
			if (!strcmp(f[i], "signed"))
				sig = true;
			else if (!strcmp(f[i], "plaintext"))
				plain = true;
			else
				FAIL(VEIL_ERR_PARSE, "%s:%u: unknown policy word '%s' (signed, plaintext)", name, ln, f[i]);
		}
		struct kr_filter *flt = filter_get(kr, f[1], ln);
		if (!flt)
			FAIL(VEIL_ERR_NOMEM, "%s:%u: out of memory", name, ln);
		if (flt->has_policy)
			FAIL(VEIL_ERR_PARSE, "%s:%u: second policy for filter '%s'", name, ln, f[1]);
		flt->has_policy = true;
		flt->require_signature = sig;
		flt->allow_plaintext = plain;
	} else {
		/* Echo only what looks like a mistyped word: a line holding just a
		 * pasted key (a wrapped `veil keygen topic-key` line) must not put
		 * the key into a log. */
		if (strlen(f[0]) <= 16 && strspn(f[0], "abcdefghijklmnopqrstuvwxyz_-") == strlen(f[0]))
			FAIL(VEIL_ERR_PARSE, "%s:%u: unknown directive '%s' (authority, key, policy)", name, ln, f[0]);
		FAIL(VEIL_ERR_PARSE, "%s:%u: unknown directive (authority, key, policy)", name, ln);
	}
out:
	return rc;
}

static size_t count_key_lines(const char *text, size_t len)
{
	size_t n = 0;
	for (size_t i = 0; i + 4 <= len; i++) {
		if ((i == 0 || text[i - 1] == '\n' || text[i - 1] == ' ' || text[i - 1] == '\t') &&
		    memcmp(text + i, "key", 3) == 0 && (text[i + 3] == ' ' || text[i + 3] == '\t'))
			n++;
	}
	return n;
}

int veil_keyring_parse(const char *text, size_t len, const char *name, struct veil_keyring **out, char *errbuf,
                       size_t errlen)
{
	if (!text || !out)
		return VEIL_ERR_INVAL;
	if (!name)
		name = "keyring";
	if (len > KEYRING_MAX_BYTES) {
		veil__errf(errbuf, errlen, "%s: larger than %u bytes", name, KEYRING_MAX_BYTES);
		return VEIL_ERR_TOO_LARGE;
	}
	if (memchr(text, '\0', len) != NULL) {
		veil__errf(errbuf, errlen, "%s: contains a NUL byte (not a text keyring)", name);
		return VEIL_ERR_PARSE;
	}
	struct veil_keyring *kr = calloc(1, sizeof(*kr));
	if (!kr)
		return VEIL_ERR_NOMEM;
	/* An upper bound of the key count (lines starting a word "key"). */
	kr->keymem_cap = count_key_lines(text, len);
	if (kr->keymem_cap) {
		kr->keymem = sodium_malloc(kr->keymem_cap * VEIL_KEY_BYTES);
		if (!kr->keymem) {
			free(kr);
			return VEIL_ERR_NOMEM;
		}
	}
	char *line = sodium_malloc(1024);
	if (!line) {
		veil_keyring_free(&kr);
		return VEIL_ERR_NOMEM;
	}
	struct veil__lines it = { .text = text, .len = len, .filter_directives = FILTER_DIRECTIVES };
	enum veil__line ls;
	int rc = VEIL_OK;
	while (rc == VEIL_OK && (ls = veil__lines_next(&it, line, 1024)) != VEIL__LINE_END) {
		if (ls != VEIL__LINE_OK) {
			veil__errf(errbuf, errlen, "%s:%u: line longer than 1023 bytes", name, it.lineno);
			rc = VEIL_ERR_PARSE; /* a NUL byte was refused above */
			break;
		}
		rc = parse_line(kr, line, name, it.lineno, errbuf, errlen);
	}
	sodium_free(line);
	for (size_t i = 0; rc == VEIL_OK && i < kr->nfilters; i++) {
		struct kr_filter *f = &kr->filters[i];
		if (f->nkeys == 0 && !f->allow_plaintext) {
			veil__errf(errbuf, errlen, "%s:%u: filter '%s' has no key and does not allow plaintext", name,
			           f->first_line, f->filter);
			rc = VEIL_ERR_PARSE;
		}
	}
	if (rc != VEIL_OK) {
		veil_keyring_free(&kr);
		return rc;
	}
	*out = kr;
	return VEIL_OK;
}

int veil_keyring_load(const char *path, struct veil_keyring **out, char *errbuf, size_t errlen)
{
	if (!path || !out)
		return VEIL_ERR_INVAL;
	struct veil__text t;
	int rc = veil__file_read(path, VEIL__FILE_SECRET, KEYRING_MAX_BYTES, &t, errbuf, errlen);
	if (rc != VEIL_OK)
		return rc;
	rc = veil_keyring_parse(t.text, t.len, path, out, errbuf, errlen);
	veil__text_free(&t);
	return rc;
}

static const struct kr_filter *match(const struct veil_keyring *kr, const char *topic)
{
	for (size_t i = 0; i < kr->nfilters; i++) {
		if (veil__filter_matches(kr->filters[i].filter, topic))
			return &kr->filters[i];
	}
	return NULL;
}

/* A granted scope's send key at now: the newest epoch (key ids only grow)
 * the device may send with whose send window holds now. */
static const struct kr_key *granted_send_key(const struct kr_filter *f, uint64_t now)
{
	const struct kr_key *send = NULL;
	for (size_t k = 0; k < f->nkeys; k++) {
		const struct kr_key *c = &f->keys[k];
		if (c->may_send && c->send_from <= now && now < c->send_until && (!send || c->id > send->id))
			send = c;
	}
	return send;
}

int veil__keyring_policy_at(const struct veil_keyring *kr, const char *topic, uint64_t now,
                            struct veil_topic_policy *out)
{
	if (!kr || !topic || !out)
		return VEIL_ERR_INVAL;
	memset(out, 0, sizeof(*out));
	const struct kr_filter *f = match(kr, topic);
	if (!f)
		return VEIL_ERR_NO_POLICY;
	out->filter = f->filter;
	out->line = f->first_line;
	out->require_signature = f->require_signature;
	out->allow_plaintext = f->allow_plaintext;
	out->granted = f->granted;
	const struct kr_key *send = NULL;
	if (f->granted) {
		send = granted_send_key(f, now);
		if (!send)
			return VEIL_ERR_NO_KEY;
	} else {
		for (size_t k = 0; k < f->nkeys; k++) {
			if (f->keys[k].send) {
				send = &f->keys[k];
				break;
			}
			if (!send || f->keys[k].id > send->id)
				send = &f->keys[k];
		}
	}
	if (send) {
		out->send_key = send->bytes;
		out->send_key_id = send->id;
		out->send_key_kcv = send->kcv;
	}
	return VEIL_OK;
}

int veil_keyring_policy(const struct veil_keyring *kr, const char *topic, struct veil_topic_policy *out)
{
	return veil__keyring_policy_at(kr, topic, (uint64_t)time(NULL), out);
}

int veil_keyring_find_key(const struct veil_keyring *kr, const char *topic, uint32_t key_id, const uint8_t **key)
{
	uint16_t kcv;
	return veil__keyring_find_key_kcv(kr, topic, key_id, (uint64_t)time(NULL), key, &kcv);
}

int veil__keyring_find_key_kcv(const struct veil_keyring *kr, const char *topic, uint32_t key_id, uint64_t now,
                               const uint8_t **key, uint16_t *kcv)
{
	if (!kr || !topic || !key || !kcv)
		return VEIL_ERR_INVAL;
	const struct kr_filter *f = match(kr, topic);
	if (f) {
		for (size_t k = 0; k < f->nkeys; k++) {
			if (f->keys[k].id != key_id)
				continue;
			/* A granted epoch past its accept-until is gone (the session
			 * wipes it soon); until then this keeps it from opening anything. */
			if (f->granted && now >= f->keys[k].accept_until)
				return VEIL_ERR_UNKNOWN_KEY;
			*key = f->keys[k].bytes;
			*kcv = f->keys[k].kcv;
			return VEIL_OK;
		}
	}
	unsigned line;
	if (key_id_used(kr, key_id, &line))
		return VEIL_ERR_WRONG_TOPIC;
	return f ? VEIL_ERR_UNKNOWN_KEY : VEIL_ERR_NO_POLICY;
}

bool veil__keyring_granted_topic(const struct veil_keyring *kr, const char *topic)
{
	const struct kr_filter *f = kr && topic ? match(kr, topic) : NULL;
	return f && f->granted;
}

/* The static filter (with its line) that overlaps filter, if any. */
static const struct kr_filter *static_overlap(const struct veil_keyring *kr, const char *filter)
{
	for (size_t i = 0; kr && i < kr->nfilters; i++) {
		if (!kr->filters[i].granted && veil__filters_overlap(kr->filters[i].filter, filter))
			return &kr->filters[i];
	}
	return NULL;
}

int veil__keyring_compose(const struct veil_keyring *base, const char *base_name,
                          const struct veil__keyring_grant *g, size_t n, struct veil_keyring **out,
                          void (*refused)(void *ctx, const char *why), void *ctx)
{
	if (!out || (n && !g))
		return VEIL_ERR_INVAL;
	*out = NULL;
	struct veil_keyring *kr = calloc(1, sizeof(*kr));
	if (!kr)
		return VEIL_ERR_NOMEM;
	size_t nkeys = n;
	for (size_t i = 0; base && i < base->nfilters; i++)
		nkeys += base->filters[i].nkeys;
	int rc = VEIL_OK;
	if (nkeys && !(kr->keymem = sodium_malloc(nkeys * VEIL_KEY_BYTES)))
		rc = VEIL_ERR_NOMEM;
	kr->keymem_cap = nkeys;
	if (base) {
		memcpy(kr->authorities, base->authorities, sizeof(kr->authorities));
		kr->nauthorities = base->nauthorities;
	}
	/* The static filters first, in file order: they match first. */
	for (size_t i = 0; rc == VEIL_OK && base && i < base->nfilters; i++) {
		const struct kr_filter *bf = &base->filters[i];
		struct kr_filter *f = filter_get(kr, bf->filter, bf->first_line);
		if (!f) {
			rc = VEIL_ERR_NOMEM;
			break;
		}
		f->has_policy = bf->has_policy;
		f->require_signature = bf->require_signature;
		f->allow_plaintext = bf->allow_plaintext;
		f->granted = bf->granted;
		if (bf->nkeys && !(f->keys = calloc(bf->nkeys, sizeof(*f->keys)))) {
			rc = VEIL_ERR_NOMEM;
			break;
		}
		for (size_t k = 0; k < bf->nkeys && kr->keymem; k++) {
			uint8_t *slot = kr->keymem + kr->keymem_used++ * VEIL_KEY_BYTES;
			memcpy(slot, bf->keys[k].bytes, VEIL_KEY_BYTES);
			f->keys[k] = bf->keys[k];
			f->keys[k].bytes = slot;
		}
		f->nkeys = bf->nkeys;
	}
	for (size_t i = 0; rc == VEIL_OK && i < n; i++) {
		char why[512];
		const struct kr_filter *clash = static_overlap(base, g[i].filter);
		unsigned prev;
		if (!veil__filter_valid(g[i].filter) || g[i].key_id < VEIL_GRANTED_KEY_ID_MIN) {
			snprintf(why, sizeof(why), "granted key %u for '%s' refused: not a key service grant", g[i].key_id,
			         g[i].filter);
		} else if (clash) {
			/* A topic is keyd-managed or static, never both. */
			snprintf(why, sizeof(why), "%s:%u: filter '%s' overlaps the key service's scope '%s': granted key "
			         "%u refused (remove the static entry)", base_name ? base_name : "keyring", clash->first_line,
			         clash->filter, g[i].filter, g[i].key_id);
		} else if (key_id_used(kr, g[i].key_id, &prev)) {
			snprintf(why, sizeof(why), "granted key %u for '%s' refused: key id already held", g[i].key_id,
			         g[i].filter);
		} else {
			struct kr_filter *f = filter_get(kr, g[i].filter, 0);
			if (!f) {
				rc = VEIL_ERR_NOMEM;
				break;
			}
			struct kr_key *nk = realloc(f->keys, (f->nkeys + 1) * sizeof(*nk));
			if (!nk) {
				rc = VEIL_ERR_NOMEM;
				break;
			}
			f->keys = nk;
			f->granted = true;
			f->has_policy = true;
			/* One scope has one policy (keyd takes it from the ACL). */
			f->require_signature = f->require_signature || g[i].require_signature;
			if (!kr->keymem) { /* sized for every key above: not reached */
				rc = VEIL_ERR_NOMEM;
				break;
			}
			uint8_t *slot = kr->keymem + kr->keymem_used++ * VEIL_KEY_BYTES;
			memcpy(slot, g[i].key, VEIL_KEY_BYTES);
			f->keys[f->nkeys++] = (struct kr_key){ .id = g[i].key_id, .bytes = slot, .kcv = veil_key_check(slot),
				                               .may_send = g[i].may_send, .send_from = g[i].send_from,
				                               .send_until = g[i].send_until,
				                               .accept_until = g[i].accept_until };
			continue;
		}
		if (refused)
			refused(ctx, why);
	}
	if (rc != VEIL_OK) {
		veil_keyring_free(&kr);
		return rc;
	}
	*out = kr;
	return VEIL_OK;
}

int veil__keyring_add_authorities(struct veil_keyring *kr, const uint8_t (*pks)[VEIL_PK_BYTES], size_t n)
{
	if (!kr || (n && !pks))
		return VEIL_ERR_INVAL;
	for (size_t i = 0; i < n; i++) {
		bool held = false;
		for (size_t k = 0; k < kr->nauthorities && !held; k++)
			held = sodium_memcmp(kr->authorities[k], pks[i], VEIL_PK_BYTES) == 0;
		if (held)
			continue;
		if (kr->nauthorities == VEIL_MAX_AUTHORITIES)
			return VEIL_ERR_INVAL;
		memcpy(kr->authorities[kr->nauthorities++], pks[i], VEIL_PK_BYTES);
	}
	return VEIL_OK;
}

size_t veil_keyring_authorities(const struct veil_keyring *kr, const uint8_t (**pks)[VEIL_PK_BYTES])
{
	if (!kr || !pks)
		return 0;
	*pks = (const uint8_t(*)[VEIL_PK_BYTES])kr->authorities;
	return kr->nauthorities;
}

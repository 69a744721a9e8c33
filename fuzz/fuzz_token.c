/*
 * libFuzzer target: login material. The input is taken as a credential
 * (veil_credential_parse, veil_credential_verify against the vector
 * authority), as a token of either version (veil_token_verify for the vector
 * client id and for the client id the input's own credential claims, and
 * veil_token_verify_for at the audience the token names and at others), and,
 * NUL terminated, as an MQTT 3.1.1 password (veil_password_to_token, then the
 * token it yields is verified). Checked: token -> password -> token gives the
 * same bytes; veil_token_parse + veil_token_verify_with (the plugin's cached
 * path) accept exactly what veil_token_verify accepts; veil_token_audience
 * accepts exactly the structures veil_token_parse accepts and gives a valid
 * audience (version 2) or none (version 1); a version 2 token is accepted at
 * its own audience only, never without one; a version 1 token is judged
 * alike at every audience. Seeds: fuzz/corpus/token (vector credential,
 * tokens of both versions, their passwords).
 */
#include <stdbool.h>
#include <string.h>

#include "veil/identity.h"

#include "fuzz_common.h"

static const uint8_t (*authorities)[VEIL_PK_BYTES] = &fuzz_authority_pk;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	(void)argc;
	(void)argv;
	fuzz_sodium_init();
	return 0;
}

static void as_credential(const uint8_t *p, size_t n)
{
	struct veil_credential c;
	if (veil_credential_parse(p, n, &c) == VEIL_OK) {
		/* Decoded strings are NUL terminated within their arrays. */
		if (!memchr(c.client_id, '\0', sizeof(c.client_id)) || !memchr(c.roles, '\0', sizeof(c.roles)))
			abort();
	}
	struct veil_credential v;
	if (veil_credential_verify(p, n, authorities, 1, FUZZ_NOW, &v) == VEIL_OK) {
		/* verify implies parse */
		if (veil_credential_parse(p, n, &c) != VEIL_OK || memcmp(c.id, v.id, sizeof(c.id)) != 0)
			abort();
	}
}

/* The audience rule (docs/PROTOCOL.md 4, step 2) for client id cid. */
static void audiences(const uint8_t *p, size_t n, const char *cid)
{
	unsigned version = 0;
	char aud[VEIL_AUDIENCE_MAX + 1];
	if (veil_token_audience(p, n, &version, aud) != VEIL_OK)
		return;
	struct veil_token t, o;
	int none = veil_token_verify(p, n, cid, authorities, 1, FUZZ_NOW, 300, &o);
	int other = veil_token_verify_for(p, n, cid, "elsewhere", authorities, 1, FUZZ_NOW, 300, &o);
	int own = veil_token_verify_for(p, n, cid, version == 2 ? aud : "factory-eu", authorities, 1, FUZZ_NOW, 300, &t);
	if (version == 1) {
		/* No audience: every verifier judges it alike. */
		if (aud[0] || own != none || other != none)
			abort();
		return;
	}
	if (version != 2 || !veil_audience_valid(aud) || none != VEIL_ERR_WRONG_AUDIENCE)
		abort();
	if (strcmp(aud, "elsewhere") != 0 && other != VEIL_ERR_WRONG_AUDIENCE)
		abort();
	if (own == VEIL_OK && strcmp(t.cred.client_id, cid) != 0)
		abort();
}

static void as_token(const uint8_t *p, size_t n)
{
	struct veil_token t;
	if (veil_token_verify(p, n, "sensor-1", authorities, 1, FUZZ_NOW, 300, &t) == VEIL_OK &&
	    strcmp(t.cred.client_id, "sensor-1") != 0)
		abort();
	audiences(p, n, "sensor-1");
	/* A token carries its credential after 1+8+16+2 bytes, or (version 2)
	 * 1+8+16+1+A+2 (docs/PROTOCOL.md 4): also try the client id that
	 * credential names, to get past that check. */
	size_t off = 1U + 8U + VEIL_TOKEN_NONCE_BYTES;
	if (n > off && p[0] == 2)
		off += 1U + p[off];
	if (n > off + 2U) {
		size_t cl = ((size_t)p[off] << 8) | p[off + 1];
		struct veil_credential c;
		if (cl <= n - off - 2U && veil_credential_parse(p + off + 2U, cl, &c) == VEIL_OK) {
			(void)veil_token_verify(p, n, c.client_id, authorities, 1, FUZZ_NOW, 300, &t);
			audiences(p, n, c.client_id);
		}
	}
	/* The split the plugin's credential cache uses: veil_token_parse, then
	 * veil_token_verify_with on the credential verified separately, must
	 * accept exactly the tokens veil_token_verify accepts. */
	uint64_t ts = 0;
	uint8_t nonce[VEIL_TOKEN_NONCE_BYTES];
	const uint8_t *cred = NULL;
	size_t cred_len = 0;
	unsigned version = 0;
	char aud[VEIL_AUDIENCE_MAX + 1];
	bool parsed = veil_token_parse(p, n, &ts, nonce, &cred, &cred_len) == VEIL_OK;
	if (parsed != (veil_token_audience(p, n, &version, aud) == VEIL_OK))
		abort();
	if (parsed) {
		if (!cred || cred < p || cred_len > n || cred > p + n - cred_len)
			abort(); /* the credential must lie inside the token */
		struct veil_credential vc;
		if (veil_credential_verify(cred, cred_len, authorities, 1, FUZZ_NOW, &vc) == VEIL_OK) {
			struct veil_token t1, t2;
			bool full = veil_token_verify(p, n, vc.client_id, authorities, 1, FUZZ_NOW, 300, &t1) == VEIL_OK;
			bool with = veil_token_verify_with(p, n, vc.client_id, &vc, FUZZ_NOW, 300, &t2) == VEIL_OK;
			if (full != with || (full && (t1.timestamp != ts || t2.timestamp != ts)))
				abort();
		}
	}
	/* Round trip through the password form. */
	char pw[VEIL_PASSWORD_MAX];
	if (n > 0 && veil_token_to_password(p, n, pw, sizeof(pw)) == VEIL_OK) {
		uint8_t back[VEIL_TOKEN_MAX];
		size_t back_len = 0;
		if (veil_password_to_token(pw, back, sizeof(back), &back_len) != VEIL_OK || back_len != n ||
		    memcmp(back, p, n) != 0)
			abort();
	}
}

static void as_password(const uint8_t *p, size_t n)
{
	char *pw = malloc(n + 1);
	if (!pw)
		abort();
	memcpy(pw, p, n);
	pw[n] = '\0';
	uint8_t tok[VEIL_TOKEN_MAX];
	size_t tok_len = 0;
	if (veil_password_to_token(pw, tok, sizeof(tok), &tok_len) == VEIL_OK) {
		if (tok_len > sizeof(tok))
			abort();
		struct veil_token t;
		(void)veil_token_verify(tok, tok_len, "sensor-1", authorities, 1, FUZZ_NOW, 300, &t);
	}
	free(pw);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size heap copy, so ASan catches any read past the input. */
	uint8_t *copy = malloc(size ? size : 1);
	if (!copy)
		abort();
	if (size)
		memcpy(copy, data, size);
	as_credential(copy, size);
	as_token(copy, size);
	as_password(copy, size);
	free(copy);
	return 0;
}

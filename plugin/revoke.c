/*
 * Revocation list (see revoke.h): sorted arrays searched with bsearch, so a
 * lookup on every login and on every tick sweep is O(log n) whatever ids
 * clients send. Not a hash table: the list is built once per load and never
 * changes, and sorted arrays hold it in the least memory.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/error.h"
#include "../core/names.h" /* the one rule for names */
#include "file.h"
#include "revoke.h"

struct vp_revoke {
	uint8_t (*creds)[VEIL_CREDENTIAL_ID_BYTES];
	size_t n_creds, cap_creds;
	char **clients;
	size_t n_clients, cap_clients;
};

int vp_revoke__empty(struct vp_revoke **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? VEIL_OK : VEIL_ERR_NOMEM;
}

void vp_revoke__free(struct vp_revoke **rp)
{
	if (!rp || !*rp)
		return;
	struct vp_revoke *r = *rp;
	for (size_t i = 0; i < r->n_clients; i++)
		free(r->clients[i]);
	free(r->clients);
	free(r->creds);
	free(r);
	*rp = NULL;
}

static int cmp_cred(const void *a, const void *b)
{
	return memcmp(a, b, VEIL_CREDENTIAL_ID_BYTES);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int add_cred(struct vp_revoke *r, const uint8_t id[VEIL_CREDENTIAL_ID_BYTES])
{
	if (r->n_creds == r->cap_creds) {
		size_t nc = r->cap_creds ? r->cap_creds * 2 : 16;
		void *p = realloc(r->creds, nc * VEIL_CREDENTIAL_ID_BYTES);
		if (!p)
			return VEIL_ERR_NOMEM;
		r->creds = p;
		r->cap_creds = nc;
	}
	memcpy(r->creds[r->n_creds++], id, VEIL_CREDENTIAL_ID_BYTES);
	return VEIL_OK;
}

static int add_client(struct vp_revoke *r, const char *id)
{
	if (r->n_clients == r->cap_clients) {
		size_t nc = r->cap_clients ? r->cap_clients * 2 : 16;
		char **p = realloc(r->clients, nc * sizeof(*p));
		if (!p)
			return VEIL_ERR_NOMEM;
		r->clients = p;
		r->cap_clients = nc;
	}
	char *s = strdup(id);
	if (!s)
		return VEIL_ERR_NOMEM;
	r->clients[r->n_clients++] = s;
	return VEIL_OK;
}

/* The rest of a line after its first word (the line comes trimmed). */
static const char *after_word(const char *s, size_t wlen)
{
	return s + wlen + strspn(s + wlen, " \t");
}

static int parse_line(void *obj, char *s, char *why, size_t whylen)
{
	struct vp_revoke *r = obj;
	if (*s == '\0') /* blank or comment only */
		return VEIL_OK;
	if (!strncmp(s, "credential", 10) && (s[10] == ' ' || s[10] == '\t')) {
		const char *hex = after_word(s, 10);
		uint8_t id[VEIL_CREDENTIAL_ID_BYTES];
		size_t n = 0;
		const char *end = NULL;
		if (strlen(hex) != 2 * VEIL_CREDENTIAL_ID_BYTES ||
		    sodium_hex2bin(id, sizeof(id), hex, strlen(hex), NULL, &n, &end) != 0 || n != sizeof(id) ||
		    *end != '\0') {
			snprintf(why, whylen, "credential id must be 32 hex digits");
			return VEIL_ERR_PARSE;
		}
		return add_cred(r, id);
	}
	if (!strncmp(s, "client", 6) && (s[6] == ' ' || s[6] == '\t')) {
		/* Any login's client id, so the username rule (password logins use
		 * client id = username). */
		const char *id = after_word(s, 6);
		const char *bad = veil__name_why(id, VEIL__NAME_USERNAME);
		if (bad) {
			snprintf(why, whylen, "client id %s", bad);
			return VEIL_ERR_PARSE;
		}
		return add_client(r, id);
	}
	snprintf(why, whylen, "expected 'credential <hex id>' or 'client <client id>'");
	return VEIL_ERR_PARSE;
}

/* Sorted for bsearch, each entry once (a list may name one twice, and a
 * merged one holds two files). */
static void finish(struct vp_revoke *r)
{
	if (r->n_creds)
		qsort(r->creds, r->n_creds, VEIL_CREDENTIAL_ID_BYTES, cmp_cred);
	size_t k = 0;
	for (size_t i = 0; i < r->n_creds; i++) {
		if (k == 0 || memcmp(r->creds[k - 1], r->creds[i], VEIL_CREDENTIAL_ID_BYTES) != 0)
			memmove(r->creds[k++], r->creds[i], VEIL_CREDENTIAL_ID_BYTES);
	}
	r->n_creds = k;
	if (r->n_clients)
		qsort(r->clients, r->n_clients, sizeof(*r->clients), cmp_str);
	k = 0;
	for (size_t i = 0; i < r->n_clients; i++) {
		if (k == 0 || strcmp(r->clients[k - 1], r->clients[i]) != 0)
			r->clients[k++] = r->clients[i];
		else
			free(r->clients[i]);
	}
	r->n_clients = k;
}

int vp_revoke__load(const char *path, struct vp_revoke **out, char *err, size_t errlen)
{
	if (!path || !out)
		return VEIL_ERR_INVAL;
	struct vp_revoke *r = NULL;
	int rc = vp_revoke__empty(&r);
	if (rc == VEIL_OK)
		rc = vp_file__each_line(path, parse_line, r, err, errlen);
	if (rc != VEIL_OK) {
		vp_revoke__free(&r);
		return rc;
	}
	finish(r);
	*out = r;
	return VEIL_OK;
}

int vp_revoke__entry(const char *line, struct vp_revoke **out, char *why, size_t whylen)
{
	if (!line || !out || strlen(line) >= VP_LINE_MAX)
		return VEIL_ERR_INVAL;
	char buf[VP_LINE_MAX];
	snprintf(buf, sizeof(buf), "%s", line);
	struct vp_revoke *r = NULL;
	int rc = vp_revoke__empty(&r);
	if (rc == VEIL_OK)
		rc = parse_line(r, buf, why, whylen);
	if (rc != VEIL_OK) {
		vp_revoke__free(&r);
		return rc;
	}
	finish(r);
	*out = r;
	return VEIL_OK;
}

/* Text that grows; failed once an allocation failed. */
struct text {
	char *s;
	size_t len, cap;
	bool failed;
};

static void text_add(struct text *t, const char *a, const char *b)
{
	if (!a || !b) {
		t->failed = true;
		return;
	}
	size_t need = t->len + strlen(a) + strlen(b) + 2;
	if (t->failed || need > t->cap) {
		size_t nc = need * 2;
		char *p = t->failed ? NULL : realloc(t->s, nc);
		if (!p) {
			t->failed = true;
			return;
		}
		t->s = p;
		t->cap = nc;
	}
	t->len += (size_t)snprintf(t->s + t->len, t->cap - t->len, "%s%s\n", a, b);
}

static void format_entry(void *arg, const uint8_t *cred, const char *client)
{
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	if (cred) {
		sodium_bin2hex(hex, sizeof(hex), cred, VEIL_CREDENTIAL_ID_BYTES);
		text_add(arg, "credential ", hex);
	} else {
		text_add(arg, "client ", client);
	}
}

char *vp_revoke__format(const struct vp_revoke *r, const char *header, size_t *len)
{
	struct text t = { 0 };
	if (header)
		text_add(&t, header, "");
	vp_revoke__each(r, format_entry, &t);
	if (!t.s && !t.failed)
		text_add(&t, "", ""); /* an empty list: one empty line */
	if (t.failed) {
		free(t.s);
		return NULL;
	}
	*len = t.len;
	return t.s;
}

static int add_all(struct vp_revoke *dst, const struct vp_revoke *src)
{
	int rc = VEIL_OK;
	for (size_t i = 0; src && rc == VEIL_OK && i < src->n_creds; i++)
		rc = add_cred(dst, src->creds[i]);
	for (size_t i = 0; src && rc == VEIL_OK && i < src->n_clients; i++)
		rc = add_client(dst, src->clients[i]);
	return rc;
}

int vp_revoke__merge(const struct vp_revoke *a, const struct vp_revoke *b, struct vp_revoke **out)
{
	if (!out)
		return VEIL_ERR_INVAL;
	struct vp_revoke *r = NULL;
	int rc = vp_revoke__empty(&r);
	if (rc == VEIL_OK)
		rc = add_all(r, a);
	if (rc == VEIL_OK)
		rc = add_all(r, b);
	if (rc != VEIL_OK) {
		vp_revoke__free(&r);
		return rc;
	}
	finish(r);
	*out = r;
	return VEIL_OK;
}

void vp_revoke__each(const struct vp_revoke *r,
                     void (*fn)(void *arg, const uint8_t *credential_id, const char *client_id), void *arg)
{
	for (size_t i = 0; r && fn && i < r->n_creds; i++)
		fn(arg, r->creds[i], NULL);
	for (size_t i = 0; r && fn && i < r->n_clients; i++)
		fn(arg, NULL, r->clients[i]);
}

bool vp_revoke__credential(const struct vp_revoke *r, const uint8_t id[VEIL_CREDENTIAL_ID_BYTES])
{
	return r && id && r->n_creds && bsearch(id, r->creds, r->n_creds, VEIL_CREDENTIAL_ID_BYTES, cmp_cred);
}

bool vp_revoke__client(const struct vp_revoke *r, const char *client_id)
{
	return r && client_id && r->n_clients &&
	       bsearch(&client_id, r->clients, r->n_clients, sizeof(*r->clients), cmp_str);
}

size_t vp_revoke__count(const struct vp_revoke *r)
{
	return r ? r->n_creds + r->n_clients : 0;
}

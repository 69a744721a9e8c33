/* The load balancers' addresses (see proxy.h). */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "veil/error.h"
#include "proxy.h"

struct vp_proxies {
	size_t n;
	uint8_t addr[VP_PROXIES_MAX][16];
};

/* A numeric address as 16 bytes (IPv4 mapped); false when it is none. */
static bool ip16(const char *s, uint8_t out[16])
{
	struct in_addr v4;
	if (inet_pton(AF_INET, s, &v4) == 1) {
		memset(out, 0, 10);
		out[10] = out[11] = 0xff;
		memcpy(out + 12, &v4, 4);
		return true;
	}
	return inet_pton(AF_INET6, s, out) == 1;
}

static int add_words(struct vp_proxies *p, const char *value, char *bad, size_t badlen, const char **why)
{
	const char *blanks = " \t";
	for (const char *w = value + strspn(value, blanks); *w; w += strspn(w, blanks)) {
		size_t len = strcspn(w, blanks);
		char word[INET6_ADDRSTRLEN];
		snprintf(bad, badlen, "%.*s", (int)len, w);
		*why = "not-an-ip-address";
		if (len >= sizeof(word))
			return VEIL_ERR_INVAL;
		memcpy(word, w, len);
		word[len] = '\0';
		w += len;
		uint8_t a[16];
		if (!ip16(word, a))
			return VEIL_ERR_INVAL;
		if (vp_proxies__has(p, word))
			continue;
		*why = "too-many-addresses";
		if (p->n >= VP_PROXIES_MAX)
			return VEIL_ERR_INVAL;
		memcpy(p->addr[p->n++], a, 16);
	}
	return VEIL_OK;
}

int vp_proxies__parse(char *const *values, struct vp_proxies **out, char *bad, size_t badlen, const char **why)
{
	static const char *none = "";
	*out = NULL;
	*why = none;
	if (badlen)
		bad[0] = '\0';
	if (!values || !values[0])
		return VEIL_OK;
	struct vp_proxies *p = calloc(1, sizeof(*p));
	if (!p)
		return VEIL_ERR_NOMEM;
	for (size_t i = 0; values[i]; i++) {
		int rc = add_words(p, values[i], bad, badlen, why);
		if (rc != VEIL_OK) {
			free(p);
			return rc;
		}
	}
	if (p->n == 0) {
		snprintf(bad, badlen, "%s", values[0]);
		*why = "not-an-ip-address";
		free(p);
		return VEIL_ERR_INVAL;
	}
	*out = p;
	return VEIL_OK;
}

void vp_proxies__free(struct vp_proxies **p)
{
	if (!p)
		return;
	free(*p);
	*p = NULL;
}

bool vp_proxies__has(const struct vp_proxies *p, const char *addr)
{
	uint8_t a[16];
	if (!p || !addr || !ip16(addr, a))
		return false;
	for (size_t i = 0; i < p->n; i++) {
		if (!memcmp(p->addr[i], a, 16))
			return true;
	}
	return false;
}

size_t vp_proxies__count(const struct vp_proxies *p)
{
	return p ? p->n : 0;
}

/*
 * The load balancers in front of the broker (plugin_opt_proxy_addresses,
 * docs/AUTH.md "Rate limit"). Mosquitto 2.0 has no PROXY protocol: every
 * client that comes through a load balancer has the load balancer's
 * address, so the rate limit does not key failed logins on such an address
 * (it would throttle every user behind it for one user's guesses). An
 * address is kept as 16 bytes, an IPv4 address in its IPv4-mapped IPv6 form,
 * so "127.0.0.1" and "::ffff:127.0.0.1" are one address. Exact addresses,
 * not networks. Pure logic.
 */
#ifndef VP_PROXY_H
#define VP_PROXY_H

#include <stdbool.h>
#include <stddef.h>

#define VP_PROXIES_MAX 64U

struct vp_proxies;

/* The values of plugin_opt_proxy_addresses (NULL-terminated; each one or
 * more numeric IPv4/IPv6 addresses separated by blanks; values may be NULL:
 * no load balancer). VEIL_OK; VEIL_ERR_INVAL with the offending word in bad
 * and the reason in *why ("not-an-ip-address", "too-many-addresses");
 * VEIL_ERR_NOMEM. *out is NULL when there is no address. */
int vp_proxies__parse(char *const *values, struct vp_proxies **out, char *bad, size_t badlen, const char **why);
void vp_proxies__free(struct vp_proxies **p);
/* Whether addr (Mosquitto's client address) is one of them; false for NULL
 * p or an address that does not parse. */
bool vp_proxies__has(const struct vp_proxies *p, const char *addr);
size_t vp_proxies__count(const struct vp_proxies *p);

#endif

/*
 * What keyd asks the ACL engine (the plugin's rules file, one engine for
 * both: docs/ACL.md). keyd evaluates the rules with the inputs the plugin
 * has for a credential login: client id, username = client id, the
 * credential's roles.
 *
 *   read_all    the client may read every topic the filter can match
 *   write_some  the client may write at least one topic the filter matches
 *   attrs       the protection (encrypted, signed) of the filter's topics;
 *               a filter whose topics differ is refused (straddles)
 */
#ifndef KD_ACL_H
#define KD_ACL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Protection attributes: the engine's VP_ATTR_* values. */
#define KD_ATTR_ENCRYPTED 0x01U
#define KD_ATTR_SIGNED 0x02U

struct kd_acl;

struct kd_who {
	const char *client_id; /* also the username */
	const char *roles;     /* comma separated, or NULL */
};

struct kd_rights {
	bool read_all;
	bool write_some;
};

/* VEIL_OK, or an error with "path:line: reason" in err. */
int kd_acl__load(const char *path, struct kd_acl **out, char *err, size_t errlen);
void kd_acl__free(struct kd_acl **a);
/* The rule lists that apply to w, resolved once for many questions (NULL
 * on ENOMEM); valid while a lives. */
struct kd_acl_view;
struct kd_acl_view *kd_acl__view(const struct kd_acl *a, const struct kd_who *w);
void kd_acl__view_free(struct kd_acl_view **v);
void kd_acl__rights(const struct kd_acl_view *v, const char *filter, struct kd_rights *out);
/* false when the topics of filter (for client_id's %c) carry different
 * protection attributes. */
bool kd_acl__attrs(const struct kd_acl *a, const char *filter, const char *client_id, uint8_t *attrs);

#endif

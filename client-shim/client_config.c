/*
 * veil_client_config_load: libveil's public door to the client config file
 * parser (config.c, shared with the preload). Only maps parsed values onto
 * struct veil_client_options; the parsing rules live in config.c.
 */
#include <stdlib.h>

#include "../core/util.h" /* veil__errf */
#include "config.h"
#include "shim.h"

struct veil_client_config {
	struct veil_config c;
};

int veil_client_config_load(const char *path, struct veil_client_options *o, struct veil_client_config **cfg,
                            char *err, size_t errlen)
{
	if (!path || !o || !cfg)
		return VEIL_ERR_INVAL;
	*cfg = NULL;
	struct veil_client_config *k = calloc(1, sizeof(*k));
	if (!k)
		return VEIL_ERR_NOMEM;
	int rc = veil_config_load(path, &k->c, err, errlen);
	if (rc != VEIL_OK) {
		veil_config_free(&k->c);
		free(k);
		return rc;
	}
	if (k->c.identity)
		o->identity_path = k->c.identity;
	if (k->c.credential)
		o->credential_path = k->c.credential;
	if (k->c.keyring)
		o->keyring_path = k->c.keyring;
	if (k->c.authorities)
		o->authority_path = k->c.authorities;
	o->key_service = k->c.key_service == VEIL_CONFIG_KEYS_ON    ? VEIL_KEYS_ON
	                 : k->c.key_service == VEIL_CONFIG_KEYS_OFF ? VEIL_KEYS_OFF
	                                                            : VEIL_KEYS_AUTO;
	if (k->c.state_dir)
		o->state_dir = k->c.state_dir;
	if (k->c.client_id)
		o->client_id = k->c.client_id;
	if (k->c.audience && o->version < 3) {
		/* An older caller's struct has no room for it. */
		veil__errf(err, errlen, "%s: 'audience' needs options of VEIL_CLIENT_OPTIONS_VERSION 3 or later",
		           k->c.path);
		veil_config_free(&k->c);
		free(k);
		return VEIL_ERR_INVAL;
	}
	if (k->c.audience)
		o->audience = k->c.audience;
	switch (k->c.auth) {
	case VEIL_CONFIG_AUTH_PASSWORD:
		o->auth = VEIL_AUTH_PASSWORD;
		break;
	case VEIL_CONFIG_AUTH_NONE:
		o->auth = VEIL_AUTH_NONE;
		break;
	default:
		o->auth = VEIL_AUTH_TOKEN;
		break;
	}
	o->sign_all = k->c.sign == VEIL_CONFIG_SIGN_ALWAYS;
	*cfg = k;
	return VEIL_OK;
}

void veil_client_config_free(struct veil_client_config **cfg)
{
	if (!cfg || !*cfg)
		return;
	veil_config_free(&(*cfg)->c);
	free(*cfg);
	*cfg = NULL;
}

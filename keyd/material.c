/*
 * The files keyd's config names (service.h, kd_material): its identity
 * and credential, the authorities it trusts, the plugin's ACL and
 * revocation list. Loaded whole, so a reload that fails keeps the old set.
 */
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/error.h"
#include "../core/bundle.h"
#include "../core/util.h"
#include "revoke.h"
#include "service.h"

void kd_material__free(struct kd_material *m)
{
	veil_identity_free(&m->id);
	free(m->auth);
	kd_acl__free(&m->acl);
	vp_revoke__free(&m->rev);
	memset(m, 0, sizeof(*m));
}

/* The plugin's revocation input as one list: the operator's file and the
 * runtime file its admin API writes (absent until the first revocation
 * through the API: then empty, as the plugin takes it). */
static int load_revocations(const struct kd_config *cfg, struct vp_revoke **out, char *err, size_t errlen)
{
	struct vp_revoke *file = NULL, *rt = NULL;
	int rc = cfg->revocation_file ? vp_revoke__load(cfg->revocation_file, &file, err, errlen) : VEIL_OK;
	if (rc == VEIL_OK && cfg->runtime_revocation_file && access(cfg->runtime_revocation_file, F_OK) == 0)
		rc = vp_revoke__load(cfg->runtime_revocation_file, &rt, err, errlen);
	if (rc == VEIL_OK)
		rc = vp_revoke__merge(file, rt, out);
	vp_revoke__free(&file);
	vp_revoke__free(&rt);
	return rc;
}

int kd_material__load(const struct kd_config *cfg, uint64_t now, struct kd_material *m, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	int rc = veil_identity_load(cfg->identity, &m->id, err, errlen);
	if (rc == VEIL_OK)
		rc = veil_credential_load(cfg->credential, m->cred, sizeof(m->cred), &m->cred_len, err, errlen);
	if (rc == VEIL_OK) {
		m->auth = calloc(KD_AUTHORITIES_MAX, VEIL_PK_BYTES);
		rc = m->auth ? veil_public_keys_load(cfg->authorities, m->auth, KD_AUTHORITIES_MAX, &m->n_auth, err, errlen)
		             : VEIL_ERR_NOMEM;
	}
	if (rc == VEIL_OK) {
		rc = veil_credential_verify(m->cred, m->cred_len, (const uint8_t(*)[VEIL_PK_BYTES])m->auth, m->n_auth,
		                            now, &m->self);
		if (rc != VEIL_OK) {
			veil__errf(err, errlen, "%s: keyd's credential does not verify: %s", cfg->credential,
			           veil_strerror(rc));
		} else {
			uint8_t pk[VEIL_PK_BYTES];
			veil_identity_public(m->id, pk);
			if (!veil__credential_has_role(&m->self, VEIL__ROLE_KEYD)) {
				veil__errf(err, errlen, "%s: keyd's credential lacks the role %s", cfg->credential,
				           VEIL__ROLE_KEYD);
				rc = VEIL_ERR_WRONG_ROLE;
			} else if (strcmp(m->self.client_id, cfg->client_id) != 0) {
				veil__errf(err, errlen, "%s: keyd's credential is for client id '%s', client_id is '%s'",
				           cfg->credential, m->self.client_id, cfg->client_id);
				rc = VEIL_ERR_CLIENT_ID;
			} else if (sodium_memcmp(pk, m->self.device_pk, VEIL_PK_BYTES) != 0) {
				veil__errf(err, errlen, "%s: identity does not match credential %s", cfg->identity,
				           cfg->credential);
				rc = VEIL_ERR_SENDER;
			}
		}
	}
	if (rc == VEIL_OK)
		rc = kd_acl__load(cfg->acl_file, &m->acl, err, errlen);
	if (rc == VEIL_OK)
		rc = load_revocations(cfg, &m->rev, err, errlen);
	if (rc != VEIL_OK)
		kd_material__free(m);
	return rc;
}

/*
 * The client config file, shared by libveil and libveil_preload.so.
 *
 * Text, one "key value" per line; blank lines are ignored. Comments follow
 * Veil's one rule (docs/PROTOCOL.md section 2): a word that begins with '#'
 * starts a comment to the end of the line ("log none   # quiet"); a '#'
 * inside a word is part of the value, so paths may contain it ("a#b"), but
 * a path cannot contain a word that begins with '#' ("my #2 dir"). Keys:
 *
 *   identity   <path>                       device identity (secret, mode 0600)
 *   credential <path>                       authority-signed credential
 *   keyring    <path>                       topic keys and policy (required with
 *                                           key_service off)
 *   authorities <path>                      public keys of trusted authorities
 *   key_service auto|on|off                 keys from veil-keyd; auto (default):
 *                                           on when there is no keyring
 *   state_dir  <path>                       sequence / replay state directory
 *   client_id  <id>                         must equal the credential's client id
 *                                           (the rule of docs/PROTOCOL.md section 3)
 *   audience   <name>                       the deployment's name: login tokens are
 *                                           bound to it (version 2, PROTOCOL.md
 *                                           section 4); absent: version 1
 *   auth       credential|password|none     default credential
 *   sign       always|policy                default policy
 *   log        stderr|none                  default stderr
 *
 * Relative paths are taken relative to the config file's directory.
 * Passwords are secrets and never belong in this file: a "password" line is
 * refused. Every error names the file and, for line errors, the line:
 * "path:line: reason". The parser only reads text; it does not open the
 * files it names (the caller loads them and reports their own errors).
 */
#ifndef VEIL_CLIENT_CONFIG_H
#define VEIL_CLIENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

enum veil_config_auth {
	VEIL_CONFIG_AUTH_CREDENTIAL = 0,   /* token in the password field, username = client id */
	VEIL_CONFIG_AUTH_PASSWORD = 1,     /* the app's own username/password (legacy) */
	VEIL_CONFIG_AUTH_NONE = 2          /* no credentials injected */
};

enum veil_config_sign {
	VEIL_CONFIG_SIGN_POLICY = 0,       /* sign where the keyring policy requires it */
	VEIL_CONFIG_SIGN_ALWAYS = 1        /* sign every message */
};

enum veil_config_keys {
	VEIL_CONFIG_KEYS_AUTO = 0,
	VEIL_CONFIG_KEYS_ON = 1,
	VEIL_CONFIG_KEYS_OFF = 2
};

enum veil_config_log {
	VEIL_CONFIG_LOG_STDERR = 0,
	VEIL_CONFIG_LOG_NONE = 1
};

#define VEIL_CONFIG_MAX_BYTES (64U * 1024U)
#define VEIL_CONFIG_MAX_LINE 4096U

/* All strings are malloc'd (NULL when the key is absent). */
struct veil_config {
	char *path;          /* the file this was loaded from */
	char *identity;
	char *credential;
	char *keyring;
	char *authorities;
	char *state_dir;
	char *client_id;
	char *audience;
	enum veil_config_auth auth;
	enum veil_config_sign sign;
	enum veil_config_log log;
	enum veil_config_keys key_service;
};

/*
 * Load and validate path into *out (zeroed first; free with veil_config_free
 * even on error). Returns VEIL_OK, VEIL_ERR_IO (cannot read: err has
 * "path: strerror"), VEIL_ERR_PARSE (err has "path:line: reason", or
 * "path: reason" for a missing required key), VEIL_ERR_TOO_LARGE,
 * VEIL_ERR_NOMEM or VEIL_ERR_INVAL (NULL arguments). err may be NULL.
 *
 *   struct veil_config c;
 *   char err[512];
 *   if (veil_config_load("/etc/veil/client.conf", &c, err, sizeof(err)) != VEIL_OK)
 *           fprintf(stderr, "veil: %s\n", err);
 *   veil_config_free(&c);
 */
int veil_config_load(const char *path, struct veil_config *out, char *err, size_t errlen);
/* Free the strings and zero the struct; safe on a zeroed or half-loaded struct. */
void veil_config_free(struct veil_config *c);

const char *veil_config_auth_name(enum veil_config_auth a);

#endif

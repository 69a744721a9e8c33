/*
 * veil keygen | credential | token: identities, topic keys, authority-signed
 * credentials, and login tokens. Secrets go only to 0600 files, never to
 * stdout, except a topic key when explicitly asked for a keyring line.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cJSON.h>
#include <sodium.h>

#include "veil/veil.h"
#include "../core/names.h" /* the one rule for client ids, with the reason */
#include "cli.h"

/* A decimal number in 1..max (whole string, no sign): strtol/strtoull without
 * an end check took "--days 1e9" as 1 and "--time x" as 0 (a token from 1970),
 * and a huge --days wrapped expires_at below issued_at. */
static bool parse_count(const char *s, uint64_t max, uint64_t *out)
{
	uint64_t v = 0;
	if (!s || !*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (max - (uint64_t)(*s - '0')) / 10U)
			return false;
		v = v * 10U + (uint64_t)(*s - '0');
	}
	if (v == 0)
		return false;
	*out = v;
	return true;
}

static void keygen_usage(FILE *f)
{
	fprintf(f,
	        "usage: veil keygen identity  -o KEYFILE [--pub PUBFILE]\n"
	        "       veil keygen authority -o KEYFILE [--pub PUBFILE]\n"
	        "       veil keygen topic-key --filter FILTER --id N [--send]\n"
	        "\n"
	        "identity/authority: a new Ed25519 key pair. The secret goes to KEYFILE\n"
	        "  (mode 0600, never overwritten); the public key to PUBFILE (default\n"
	        "  KEYFILE.pub). An authority signs credentials; its .pub is what the\n"
	        "  broker plugin (plugin_opt_authority_file) and keyrings trust. Prints\n"
	        "  the authority id (as credential show names it) or the sender id.\n"
	        "topic-key: a random 32-byte topic key, printed as a keyring line:\n"
	        "  key FILTER N <base64> [send]   (append it to a 0600 keyring file)\n");
}

int veil_cmd_keygen(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "out", required_argument, NULL, 'o' }, { "pub", required_argument, NULL, 'P' },
		{ "filter", required_argument, NULL, 'f' }, { "id", required_argument, NULL, 'n' },
		{ "send", no_argument, NULL, 's' },        { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *out = NULL, *pub = NULL, *filter = NULL, *id = NULL;
	bool send = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'o': out = optarg; break;
		case 'P': pub = optarg; break;
		case 'f': filter = optarg; break;
		case 'n': id = optarg; break;
		case 's': send = true; break;
		case 'h': keygen_usage(stdout); return VEIL_EXIT_OK;
		default: keygen_usage(stderr); return VEIL_EXIT_USAGE;
		}
	}
	if (optind != argc - 1) {
		keygen_usage(stderr);
		return VEIL_EXIT_USAGE;
	}
	const char *kind = argv[optind];
	if (!strcmp(kind, "topic-key")) {
		char *end = NULL;
		unsigned long v = id ? strtoul(id, &end, 10) : 0;
		if (!filter || !id || *end || v > UINT32_MAX) {
			fprintf(stderr, "veil keygen topic-key: --filter and a numeric --id are required\n");
			return VEIL_EXIT_USAGE;
		}
		uint8_t key[VEIL_KEY_BYTES];
		char b64[64];
		veil_topic_key_generate(key);
		sodium_bin2base64(b64, sizeof(b64), key, sizeof(key), sodium_base64_VARIANT_ORIGINAL);
		printf("key %s %lu %s%s\n", filter, v, b64, send ? " send" : "");
		sodium_memzero(key, sizeof(key));
		sodium_memzero(b64, sizeof(b64));
		return VEIL_EXIT_OK;
	}
	if (strcmp(kind, "identity") != 0 && strcmp(kind, "authority") != 0) {
		fprintf(stderr, "veil keygen: unknown kind '%s' (identity, authority, topic-key)\n", kind);
		return VEIL_EXIT_USAGE;
	}
	if (!out) {
		fprintf(stderr, "veil keygen %s: -o KEYFILE is required\n", kind);
		return VEIL_EXIT_USAGE;
	}
	char pubpath[4096];
	snprintf(pubpath, sizeof(pubpath), "%s.pub", out);
	if (!pub)
		pub = pubpath;
	struct veil_identity *idn = NULL;
	int rc = veil_identity_generate(&idn);
	if (rc == VEIL_OK && (rc = veil_identity_save(idn, out)) != VEIL_OK)
		fprintf(stderr, "veil keygen: cannot write %s (exists already?)\n", out);
	uint8_t pk[VEIL_PK_BYTES];
	if (rc == VEIL_OK) {
		veil_identity_public(idn, pk);
		if ((rc = veil_public_key_save(pk, pub)) != VEIL_OK)
			fprintf(stderr, "veil keygen: cannot write %s\n", pub);
	}
	veil_identity_free(&idn);
	if (rc != VEIL_OK)
		return VEIL_EXIT_FAIL;
	/* What `credential show` and the plugin's log call it: an authority's
	 * id (the credentials it signs carry it), a device's sender id. */
	bool authority = !strcmp(kind, "authority");
	uint8_t id8[VEIL_SENDER_ID_BYTES];
	if (authority)
		veil_authority_id(pk, id8);
	else
		veil_sender_id(pk, id8);
	char hex[2 * VEIL_SENDER_ID_BYTES + 1];
	sodium_bin2hex(hex, sizeof(hex), id8, sizeof(id8));
	printf("%s: %s (secret, 0600)\npublic key: %s\n%s: %s\n", kind, out, pub,
	       authority ? "authority id" : "sender id", hex);
	return VEIL_EXIT_OK;
}

static void credential_usage(FILE *f)
{
	fprintf(f,
	        "usage: veil credential issue --authority AUTH.key (--device-pub DEV.pub | --device DEV.key)\n"
	        "                             --client-id ID [--roles r1,r2] [--days N] [--hours N]\n"
	        "                             [--minutes N] -o DEV.cred\n"
	        "       veil credential show CREDFILE [--authority-pub AUTH.pub] [--json]\n"
	        "\n"
	        "issue: the authority signs the device's public key for client id ID, valid\n"
	        "  from now for the sum of --days, --hours and --minutes (default 365 days).\n"
	        "  Roles select ACL 'role' blocks.\n"
	        "show: prints the fields (times in Unix seconds and UTC); with --authority-pub\n"
	        "  also verifies the signature and the validity now; --json: one JSON object.\n");
}

static int credential_show(const char *path, const char *auth_pub, bool json)
{
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	size_t len = 0;
	char err[512];
	if (veil_credential_load(path, cred, sizeof(cred), &len, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "veil credential: %s\n", err);
		return VEIL_EXIT_FAIL;
	}
	struct veil_credential c;
	int rc = veil_credential_parse(cred, len, &c);
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil credential: %s: %s\n", path, veil_strerror(rc));
		return VEIL_EXIT_FAIL;
	}
	int verified = -1; /* not asked */
	if (auth_pub) {
		uint8_t pks[VEIL_MAX_AUTHORITIES][VEIL_PK_BYTES];
		size_t n = 0;
		if (veil_public_keys_load(auth_pub, pks, VEIL_MAX_AUTHORITIES, &n, err, sizeof(err)) != VEIL_OK) {
			fprintf(stderr, "veil credential: %s\n", err);
			return VEIL_EXIT_FAIL;
		}
		struct veil_credential checked;
		verified = veil_credential_verify(cred, len, (const uint8_t(*)[VEIL_PK_BYTES])pks, n, (uint64_t)time(NULL),
		                                  &checked);
	}
	uint8_t s[VEIL_SENDER_ID_BYTES];
	veil_sender_id(c.device_pk, s);
	int status = verified == -1 || verified == VEIL_OK ? VEIL_EXIT_OK : VEIL_EXIT_FAIL;
	if (json) {
		cJSON *o = cJSON_CreateObject();
		if (!o)
			return VEIL_EXIT_FAIL;
		cli_json_hex(o, "credential_id", c.id, sizeof(c.id));
		cJSON_AddStringToObject(o, "client_id", c.client_id);
		cJSON *roles = cJSON_AddArrayToObject(o, "roles");
		char rbuf[VEIL_ROLES_MAX + 1];
		snprintf(rbuf, sizeof(rbuf), "%s", c.roles);
		for (char *save = NULL, *r = strtok_r(rbuf, ",", &save); r && roles; r = strtok_r(NULL, ",", &save))
			cJSON_AddItemToArray(roles, cJSON_CreateString(r));
		cli_json_hex(o, "authority_id", c.authority_id, sizeof(c.authority_id));
		cli_json_hex(o, "device_key", c.device_pk, sizeof(c.device_pk));
		cli_json_hex(o, "sender_id", s, sizeof(s));
		cli_json_time(o, "issued_at", c.issued_at);
		cli_json_time(o, "expires_at", c.expires_at);
		if (verified != -1) {
			cJSON_AddBoolToObject(o, "verified", verified == VEIL_OK);
			if (verified != VEIL_OK)
				cJSON_AddStringToObject(o, "error", veil_errname(verified));
		}
		return cli_json_print(o) == VEIL_EXIT_OK ? status : VEIL_EXIT_FAIL;
	}
	char idhex[33], aid[17], pk[65], sid[17], from[32], until[32];
	sodium_bin2hex(idhex, sizeof(idhex), c.id, sizeof(c.id));
	sodium_bin2hex(aid, sizeof(aid), c.authority_id, sizeof(c.authority_id));
	sodium_bin2hex(pk, sizeof(pk), c.device_pk, sizeof(c.device_pk));
	sodium_bin2hex(sid, sizeof(sid), s, sizeof(s));
	cli_utc(c.issued_at, from, sizeof(from));
	cli_utc(c.expires_at, until, sizeof(until));
	printf("credential id: %s\nclient id:     %s\nroles:         %s\nauthority id:  %s\n"
	       "device key:    %s\nsender id:     %s\nissued at:     %llu (%s)\nexpires at:    %llu (%s)\n",
	       idhex, c.client_id, c.roles[0] ? c.roles : "-", aid, pk, sid, (unsigned long long)c.issued_at, from,
	       (unsigned long long)c.expires_at, until);
	if (verified != -1)
		printf("verification:  %s\n", verified == VEIL_OK ? "ok" : veil_strerror(verified));
	return status;
}

int veil_cmd_credential(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "authority", required_argument, NULL, 'a' }, { "device-pub", required_argument, NULL, 'p' },
		{ "device", required_argument, NULL, 'd' },    { "client-id", required_argument, NULL, 'i' },
		{ "roles", required_argument, NULL, 'r' },     { "days", required_argument, NULL, 'D' },
		{ "out", required_argument, NULL, 'o' },       { "authority-pub", required_argument, NULL, 'A' },
		{ "hours", required_argument, NULL, 'H' },     { "minutes", required_argument, NULL, 'M' },
		{ "json", no_argument, NULL, 'j' },            { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *auth = NULL, *dpub = NULL, *dkey = NULL, *cid = NULL, *roles = "", *out = NULL, *apub = NULL;
	uint64_t days = 0, hours = 0, minutes = 0;
	bool days_ok = true, json = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:i:h", opts, NULL)) != -1) {
		switch (c) {
		case 'a': auth = optarg; break;
		case 'p': dpub = optarg; break;
		case 'd': dkey = optarg; break;
		case 'i': cid = optarg; break;
		case 'r': roles = optarg; break;
		case 'D': days_ok = days_ok && parse_count(optarg, 100U * 366U, &days); break;
		case 'H': days_ok = days_ok && parse_count(optarg, 100U * 366U * 24U, &hours); break;
		case 'M': days_ok = days_ok && parse_count(optarg, 100U * 366U * 24U * 60U, &minutes); break;
		case 'j': json = true; break;
		case 'o': out = optarg; break;
		case 'A': apub = optarg; break;
		case 'h': credential_usage(stdout); return VEIL_EXIT_OK;
		default: credential_usage(stderr); return VEIL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		credential_usage(stderr);
		return VEIL_EXIT_USAGE;
	}
	if (!strcmp(argv[optind], "show") && optind + 1 < argc)
		return credential_show(argv[optind + 1], apub, json);
	if (strcmp(argv[optind], "issue") != 0 || !auth || !(dpub || dkey) || !cid || !out || !days_ok) {
		credential_usage(stderr);
		return VEIL_EXIT_USAGE;
	}
	/* Each bounded by 100 years above, so the sum cannot wrap. */
	uint64_t valid_s = days * 86400U + hours * 3600U + minutes * 60U;
	if (valid_s == 0)
		valid_s = 365U * 86400U;
	if (valid_s > 100U * 366U * 86400U) {
		fprintf(stderr, "veil credential: a validity over 100 years\n");
		return VEIL_EXIT_USAGE;
	}
	char err[512];
	struct veil_identity *a = NULL;
	if (veil_identity_load(auth, &a, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "veil credential: %s\n", err);
		return VEIL_EXIT_FAIL;
	}
	struct veil_credential cr = { 0 };
	int rc = VEIL_OK;
	if (dkey) {
		struct veil_identity *d = NULL;
		rc = veil_identity_load(dkey, &d, err, sizeof(err));
		if (rc == VEIL_OK)
			veil_identity_public(d, cr.device_pk);
		veil_identity_free(&d);
	} else {
		uint8_t pk[1][VEIL_PK_BYTES];
		size_t n = 0;
		rc = veil_public_keys_load(dpub, pk, 1, &n, err, sizeof(err));
		if (rc == VEIL_OK)
			memcpy(cr.device_pk, pk[0], VEIL_PK_BYTES);
	}
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil credential: %s\n", err);
		veil_identity_free(&a);
		return VEIL_EXIT_FAIL;
	}
	const char *bad = veil__name_why(cid, VEIL__NAME_CLIENT_ID);
	if (bad || strlen(roles) > VEIL_ROLES_MAX) {
		if (bad)
			fprintf(stderr, "veil credential: client id %s (docs/PROTOCOL.md section 3)\n", bad);
		else
			fprintf(stderr, "veil credential: roles longer than %u bytes\n", VEIL_ROLES_MAX);
		veil_identity_free(&a);
		return VEIL_EXIT_USAGE;
	}
	memcpy(cr.client_id, cid, strlen(cid) + 1); /* lengths checked above */
	memcpy(cr.roles, roles, strlen(roles) + 1);
	cr.issued_at = (uint64_t)time(NULL) - 60; /* tolerate small clock skew */
	cr.expires_at = cr.issued_at + 60 + valid_s;
	uint8_t buf[VEIL_CREDENTIAL_MAX];
	size_t len = 0;
	rc = veil_credential_issue(a, &cr, buf, sizeof(buf), &len);
	veil_identity_free(&a);
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil credential: %s (roles are comma separated [A-Za-z0-9_.-])\n", veil_strerror(rc));
		return VEIL_EXIT_FAIL;
	}
	if (veil_credential_save(buf, len, out) != VEIL_OK) {
		fprintf(stderr, "veil credential: cannot write %s\n", out);
		return VEIL_EXIT_FAIL;
	}
	printf("credential for '%s' written to %s\n", cid, out);
	return VEIL_EXIT_OK;
}

/* A token as `veil token` prints it (hex) or in its password form. */
static int token_decode(const char *text, uint8_t *tok, size_t cap, size_t *len)
{
	if (!strncmp(text, VEIL_PASSWORD_PREFIX, strlen(VEIL_PASSWORD_PREFIX)))
		return veil_password_to_token(text, tok, cap, len);
	return cli_hex_decode(text, tok, cap, len) == 0 ? VEIL_OK : VEIL_ERR_PARSE;
}

static void token_verify_usage(FILE *f)
{
	fprintf(f, "usage: veil token verify --authority-pub AUTH.pub --client-id ID [--window SECONDS]\n"
	           "                         [--time UNIX] [--audience NAME] [TOKEN | -]\n"
	           "Checks a login token offline, as the broker plugin does: its audience (a\n"
	           "version 2 token must name the deployment given by --audience, the broker's\n"
	           "plugin_opt_audience; without --audience none is accepted), its credential\n"
	           "(signed by an authority in AUTH.pub, valid now), the client id, the device's\n"
	           "signature, and its time against this machine's clock within the window\n"
	           "(default 60 s, the plugin's plugin_opt_token_window). TOKEN is hex (veil\n"
	           "token) or the password form (veil1:...); - or nothing: the first line of\n"
	           "standard input. Prints the clock difference; exit 0 when the broker would\n"
	           "accept it (the nonce cache aside), 1 when not.\n");
}

static int token_verify(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "authority-pub", required_argument, NULL, 'A' }, { "client-id", required_argument, NULL, 'i' },
		{ "window", required_argument, NULL, 'w' },        { "time", required_argument, NULL, 't' },
		{ "audience", required_argument, NULL, 'a' },      { "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *apub = NULL, *cid = NULL, *audience = NULL;
	uint64_t window = 60, now = (uint64_t)time(NULL);
	bool ok = true;
	int ch;
	optind = 1;
	while ((ch = getopt_long(argc, argv, "i:h", opts, NULL)) != -1) {
		switch (ch) {
		case 'A': apub = optarg; break;
		case 'i': cid = optarg; break;
		case 'w': ok = ok && parse_count(optarg, UINT32_MAX, &window); break;
		case 't': ok = ok && parse_count(optarg, UINT64_MAX, &now); break;
		case 'a': audience = optarg; ok = ok && veil_audience_valid(optarg); break;
		case 'h': token_verify_usage(stdout); return VEIL_EXIT_OK;
		default: ok = false; break;
		}
	}
	if (!ok || !apub || !cid || argc - optind > 1) {
		token_verify_usage(stderr);
		return VEIL_EXIT_USAGE;
	}
	char line[2 * VEIL_TOKEN_MAX + 64] = "";
	const char *text = optind < argc ? argv[optind] : "-";
	if (!strcmp(text, "-")) {
		if (!fgets(line, sizeof(line), stdin)) {
			fprintf(stderr, "veil token verify: no token on standard input\n");
			return VEIL_EXIT_USAGE;
		}
		line[strcspn(line, "\r\n")] = '\0';
		text = line;
	}
	uint8_t tok[VEIL_TOKEN_MAX], pks[VEIL_MAX_AUTHORITIES][VEIL_PK_BYTES], nonce[VEIL_TOKEN_NONCE_BYTES];
	size_t tl = 0, n = 0, cl = 0;
	char err[512];
	const uint8_t *cred = NULL;
	uint64_t ts = 0;
	struct veil_credential c;
	int rc = token_decode(text, tok, sizeof(tok), &tl);
	if (rc == VEIL_OK && (rc = veil_token_parse(tok, tl, &ts, nonce, &cred, &cl)) == VEIL_OK)
		rc = veil_credential_parse(cred, cl, &c);
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil token verify: not a Veil login token: %s (%s)\n", veil_strerror(rc),
		        veil_errname(rc));
		return VEIL_EXIT_FAIL;
	}
	if (veil_public_keys_load(apub, pks, VEIL_MAX_AUTHORITIES, &n, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "veil token verify: %s\n", err);
		return VEIL_EXIT_FAIL;
	}
	unsigned version = 0;
	char aud[VEIL_AUDIENCE_MAX + 1] = "";
	(void)veil_token_audience(tok, tl, &version, aud); /* parsed above */
	struct veil_token out;
	rc = veil_token_verify_for(tok, tl, cid, audience, (const uint8_t(*)[VEIL_PK_BYTES])pks, n, now,
	                           (uint32_t)window, &out);
	char t_tok[32], t_now[32], from[32], until[32], cred_id[33], aid[17];
	cli_utc(ts, t_tok, sizeof(t_tok));
	cli_utc(now, t_now, sizeof(t_now));
	cli_utc(c.issued_at, from, sizeof(from));
	cli_utc(c.expires_at, until, sizeof(until));
	sodium_bin2hex(cred_id, sizeof(cred_id), c.id, sizeof(c.id));
	sodium_bin2hex(aid, sizeof(aid), c.authority_id, sizeof(c.authority_id));
	long long skew = (long long)(ts - now); /* two's complement: the signed difference */
	printf("token:         version %u, %s%s%s\n"
	       "client id:     %s (credential %s, authority id %s)\n"
	       "credential:    valid from %s to %s\n"
	       "token time:    %s, %lld s %s this machine's clock (%s); window %llu s\n"
	       "verification:  %s\n",
	       version, version == 1 ? "bound to no deployment" : "audience '", aud, version == 1 ? "" : "'",
	       c.client_id, cred_id, aid, from, until, t_tok, skew < 0 ? -skew : skew,
	       skew < 0 ? "behind" : "ahead of", t_now, (unsigned long long)window,
	       rc == VEIL_OK ? "ok" : veil_strerror(rc));
	if (rc == VEIL_ERR_STALE)
		fprintf(stderr, "veil token verify: stale token: its time is %lld s %s this machine's clock, more than "
		                "the %llu s window: check the clock of the device and of this machine\n",
		        skew < 0 ? -skew : skew, skew < 0 ? "behind" : "ahead of", (unsigned long long)window);
	else if (rc == VEIL_ERR_EXPIRED)
		fprintf(stderr, "veil token verify: credential expired at %s\n", until);
	else if (rc == VEIL_ERR_NOT_YET_VALID)
		fprintf(stderr, "veil token verify: credential not valid before %s (check the clock)\n", from);
	else if (rc == VEIL_ERR_CLIENT_ID)
		fprintf(stderr, "veil token verify: the token is for client id '%s', not '%s'\n", c.client_id, cid);
	else if (rc == VEIL_ERR_WRONG_AUDIENCE)
		fprintf(stderr, "veil token verify: the token is for the deployment '%s', %s%s%s\n", aud,
		        audience ? "not '" : "and no --audience was given", audience ? audience : "", audience ? "'" : "");
	else if (rc == VEIL_ERR_WRONG_AUTHORITY)
		fprintf(stderr, "veil token verify: credential signed by authority %s, which %s does not list\n", aid,
		        apub);
	else if (rc != VEIL_OK)
		fprintf(stderr, "veil token verify: %s (%s)\n", veil_strerror(rc), veil_errname(rc));
	sodium_memzero(tok, sizeof(tok));
	sodium_memzero(line, sizeof(line));
	return rc == VEIL_OK ? VEIL_EXIT_OK : VEIL_EXIT_FAIL;
}

int veil_cmd_token(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return token_verify(argc - 1, argv + 1);
	static const struct option opts[] = {
		{ "identity", required_argument, NULL, 'k' }, { "credential", required_argument, NULL, 'c' },
		{ "client-id", required_argument, NULL, 'i' }, { "password", no_argument, NULL, 'p' },
		{ "time", required_argument, NULL, 't' },      { "audience", required_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },            { NULL, 0, NULL, 0 },
	};
	const char *key = NULL, *credp = NULL, *cid = NULL, *audience = NULL;
	bool password = false;
	uint64_t when = (uint64_t)time(NULL);
	bool when_ok = true;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "i:h", opts, NULL)) != -1) {
		switch (c) {
		case 'k': key = optarg; break;
		case 'c': credp = optarg; break;
		case 'i': cid = optarg; break;
		case 'p': password = true; break;
		case 't': when_ok = parse_count(optarg, UINT64_MAX, &when); break;
		case 'a': audience = optarg; when_ok = when_ok && veil_audience_valid(optarg); break;
		case 'h':
		default:
			fprintf(c == 'h' ? stdout : stderr,
			        "usage: veil token --identity DEV.key --credential DEV.cred --client-id ID [--password]\n"
			        "                  [--time UNIX] [--audience NAME]\n"
			        "       veil token verify ...   (veil token verify --help)\n"
			        "Prints a fresh login token as hex, or with --password the MQTT 3.1.1 password\n"
			        "form (username = client id); with --audience bound to that deployment (token\n"
			        "version 2), else version 1. For debugging and scripted tests: a token is\n"
			        "valid only inside the broker's freshness window and only once.\n");
			return c == 'h' ? VEIL_EXIT_OK : VEIL_EXIT_USAGE;
		}
	}
	if (!key || !credp || !cid || !when_ok)
		return veil_cmd_token(2, (char *[]){ "token", "--bad", NULL });
	char err[512];
	struct veil_identity *d = NULL;
	uint8_t cred[VEIL_CREDENTIAL_MAX], tok[VEIL_TOKEN_MAX];
	size_t cl = 0, tl = 0;
	if (veil_identity_load(key, &d, err, sizeof(err)) != VEIL_OK ||
	    veil_credential_load(credp, cred, sizeof(cred), &cl, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "veil token: %s\n", err);
		veil_identity_free(&d);
		return VEIL_EXIT_FAIL;
	}
	int rc = veil_token_create_for(d, cred, cl, cid, audience, when, tok, sizeof(tok), &tl);
	veil_identity_free(&d);
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil token: %s\n", veil_strerror(rc));
		return VEIL_EXIT_FAIL;
	}
	if (password) {
		char pw[VEIL_PASSWORD_MAX];
		if (veil_token_to_password(tok, tl, pw, sizeof(pw)) != VEIL_OK) {
			fprintf(stderr, "veil token: cannot encode the password form\n");
			return VEIL_EXIT_FAIL;
		}
		printf("%s\n", pw);
	} else {
		char hex[2 * VEIL_TOKEN_MAX + 1];
		sodium_bin2hex(hex, sizeof(hex), tok, tl);
		printf("%s\n", hex);
	}
	return VEIL_EXIT_OK;
}

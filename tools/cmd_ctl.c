/*
 * `veil ctl`: the plugin's admin API ($CONTROL/veil/v1, docs/OPERATIONS.md)
 * from the command line, shaped like mosquitto_ctrl: connection and login
 * options as `veil pub` (a credential with the admin role), then a command
 * and its arguments. It subscribes to $CONTROL/veil/v1/response, publishes
 * one command with a random correlationData, and waits for the response
 * that carries it (other admins' responses go by).
 *
 * The commands are JSON for the broker itself, so they go in clear: TLS
 * (--cafile) is their protection on the wire, as for mosquitto_ctrl. libveil
 * sends in clear only where a keyring policy says plaintext, so the command
 * gets a one-line keyring of its own (policy $CONTROL/veil/v1/# plaintext,
 * in a private temporary directory) and no key service: it seals nothing.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <cjson/cJSON.h>
#include <sodium.h>

#include "veil/veil.h"
#include "veil/client.h"
#include "../core/util.h" /* veil__file_write_atomic */
#include "cli.h"
#include "cli_mqtt.h"

#define CTL_REQUEST_TOPIC "$CONTROL/veil/v1"
#define CTL_RESPONSE_TOPIC "$CONTROL/veil/v1/response"
#define CTL_PASSWORD_MAX 1025U /* the plugin takes 1024 bytes */

struct ctl {
	struct cli_mqtt m;
	bool json;
	int timeout_s;
	long offset, count;                /* -1: not given */
	char corr[33];                     /* our correlationData */
	char dir[256];                     /* private temp dir of the keyring */
	char keyring[300];
	/* under m.lock */
	char *answer;                      /* the response payload that names corr */
};

enum { OPT_JSON = CLI_OPT_FIRST_CMD, OPT_TIMEOUT, OPT_OFFSET, OPT_COUNT };

static const char *const COMMANDS[] = { "listClients", "kickClient", "revokeClient", "revokeCredential",
	                                "removeRevocation", "listRevocations", "listPasswordUsers",
	                                "addPasswordUser", "removePasswordUser", "reload", "getCounters" };

static void usage(FILE *f)
{
	fprintf(f,
	        "usage: veil ctl [connection options] [--json] [--timeout S] COMMAND [ARGS]\n"
	        "The plugin's admin API ($CONTROL/veil/v1): log in with a credential that has the\n"
	        "broker's admin role (plugin_opt_admin_role, default veil-admin).\n\n"
	        "commands (docs/OPERATIONS.md):\n"
	        "  listClients [--offset N] [--count N]   connected clients, their logins and roles\n"
	        "  kickClient CLIENT_ID                   disconnect it (it may log in again)\n"
	        "  revokeClient CLIENT_ID                 revoke every login with this client id\n"
	        "  revokeCredential ID|CREDFILE           revoke a credential (32 hex digits or its file)\n"
	        "  removeRevocation client CLIENT_ID | credential ID|CREDFILE\n"
	        "                                         undo a revocation made through the API\n"
	        "  listRevocations [--offset N] [--count N]\n"
	        "  listPasswordUsers [--offset N] [--count N]\n"
	        "  addPasswordUser USER                   password from the terminal (twice) or the\n"
	        "                                         first line of standard input\n"
	        "  removePasswordUser USER                its connected clients are kicked\n"
	        "  reload                                 re-read the plugin's files now\n"
	        "  getCounters                            the counters of $SYS/broker/veil\n\n"
	        " --json           print the broker's response as it came (JSON)\n"
	        " --timeout S      wait at most S seconds for the response (default 10)\n\n"
	        "Exit status 0 when the broker did it; 1 when it answered an error (said on\n"
	        "stderr), refused the command, or gave no answer in time; 2 for a usage error.\n"
	        "Commands cross the network as JSON in clear: use TLS (--cafile) beyond this host.\n"
	        "No keyring is needed (veil ctl seals nothing); --keyring and --state-dir are ignored.\n\n");
	cli_mqtt_help(f, false);
}

/* The response that names our correlationData, if this payload holds it. */
static bool ours(const struct ctl *c, const uint8_t *payload, size_t len)
{
	cJSON *t = cJSON_ParseWithLength((const char *)payload, len);
	const cJSON *r;
	bool found = false;
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(t, "responses")) {
		const cJSON *corr = cJSON_GetObjectItemCaseSensitive(r, "correlationData");
		if (cJSON_IsString(corr) && !strcmp(corr->valuestring, c->corr))
			found = true;
	}
	cJSON_Delete(t);
	return found;
}

static void on_msg(void *ctx, const struct veil_message *msg)
{
	struct cli_mqtt *m = ctx;
	struct ctl *c = m->user;
	if (strcmp(msg->topic, CTL_RESPONSE_TOPIC) != 0 || !ours(c, msg->payload, msg->len))
		return;
	char *copy = strndup((const char *)msg->payload, msg->len);
	pthread_mutex_lock(&m->lock);
	if (!c->answer)
		c->answer = copy;
	else
		free(copy);
	pthread_mutex_unlock(&m->lock);
	cli_mqtt_wake(m);
}

/* A credential id: 32 hex digits, or the id of a credential file. */
static int credential_id(const char *arg, char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1])
{
	uint8_t id[VEIL_CREDENTIAL_ID_BYTES];
	size_t n = 0;
	if (strlen(arg) == 2 * VEIL_CREDENTIAL_ID_BYTES && cli_hex_decode(arg, id, sizeof(id), &n) == 0 &&
	    n == sizeof(id)) {
		sodium_bin2hex(hex, 2 * VEIL_CREDENTIAL_ID_BYTES + 1, id, sizeof(id));
		return 0;
	}
	uint8_t cred[VEIL_CREDENTIAL_MAX];
	struct veil_credential parsed;
	char err[512] = "";
	int rc = veil_credential_load(arg, cred, sizeof(cred), &n, err, sizeof(err));
	if (rc == VEIL_OK)
		rc = veil_credential_parse(cred, n, &parsed);
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil ctl: %s is neither 32 hex digits nor a credential file (%s)\n", arg,
		        err[0] ? err : veil_strerror(rc));
		return -1;
	}
	sodium_bin2hex(hex, 2 * VEIL_CREDENTIAL_ID_BYTES + 1, parsed.id, VEIL_CREDENTIAL_ID_BYTES);
	return 0;
}

/* The command object for argv[0..argc) (argv[0] the command); NULL after a
 * usage error (said). *canon gets the command's own spelling. */
static cJSON *build(struct ctl *c, int argc, char **argv, const char **canon)
{
	size_t i = 0;
	while (i < sizeof(COMMANDS) / sizeof(COMMANDS[0]) && strcasecmp(COMMANDS[i], argv[0]) != 0)
		i++;
	if (i == sizeof(COMMANDS) / sizeof(COMMANDS[0])) {
		fprintf(stderr, "veil ctl: unknown command '%s'\n", argv[0]);
		return NULL;
	}
	const char *cmd = *canon = COMMANDS[i];
	int want = !strcmp(cmd, "removeRevocation") ? 2
	           : (!strcmp(cmd, "kickClient") || !strcmp(cmd, "revokeClient") || !strcmp(cmd, "revokeCredential") ||
	              !strcmp(cmd, "addPasswordUser") || !strcmp(cmd, "removePasswordUser"))
	               ? 1
	               : 0;
	if (argc - 1 != want) {
		fprintf(stderr, "veil ctl: %s takes %d argument%s\n", cmd, want, want == 1 ? "" : "s");
		return NULL;
	}
	bool paged = !strncmp(cmd, "list", 4);
	if (!paged && (c->offset >= 0 || c->count >= 0)) {
		fprintf(stderr, "veil ctl: --offset and --count go with the list commands\n");
		return NULL;
	}
	cJSON *o = cJSON_CreateObject();
	char hex[2 * VEIL_CREDENTIAL_ID_BYTES + 1];
	bool ok = o && cJSON_AddStringToObject(o, "command", cmd) && cJSON_AddStringToObject(o, "correlationData", c->corr);
	if (ok && (!strcmp(cmd, "kickClient") || !strcmp(cmd, "revokeClient")))
		ok = cJSON_AddStringToObject(o, "clientId", argv[1]) != NULL;
	else if (ok && !strcmp(cmd, "revokeCredential"))
		ok = credential_id(argv[1], hex) == 0 && cJSON_AddStringToObject(o, "credentialId", hex);
	else if (ok && !strcmp(cmd, "removeRevocation")) {
		if (!strcmp(argv[1], "client"))
			ok = cJSON_AddStringToObject(o, "clientId", argv[2]) != NULL;
		else if (!strcmp(argv[1], "credential"))
			ok = credential_id(argv[2], hex) == 0 && cJSON_AddStringToObject(o, "credentialId", hex);
		else {
			fprintf(stderr, "veil ctl: removeRevocation client CLIENT_ID | credential ID|CREDFILE\n");
			ok = false;
		}
	} else if (ok && (!strcmp(cmd, "addPasswordUser") || !strcmp(cmd, "removePasswordUser")))
		ok = cJSON_AddStringToObject(o, "username", argv[1]) != NULL;
	if (ok && paged && c->offset >= 0)
		ok = cJSON_AddNumberToObject(o, "offset", (double)c->offset) != NULL;
	if (ok && paged && c->count >= 0)
		ok = cJSON_AddNumberToObject(o, "count", (double)c->count) != NULL;
	if (ok && !strcmp(cmd, "addPasswordUser")) {
		char *pw = sodium_malloc(CTL_PASSWORD_MAX);
		ok = pw && cli_read_password("ctl", pw, CTL_PASSWORD_MAX, true) == 0;
		if (pw && !ok)
			fprintf(stderr, "veil ctl: cannot read the password (at most %u bytes)\n", CTL_PASSWORD_MAX - 1);
		else if (ok && !pw[0]) {
			fprintf(stderr, "veil ctl: empty password\n");
			ok = false;
		}
		ok = ok && cJSON_AddStringToObject(o, "password", pw);
		sodium_free(pw);
	}
	if (!ok) {
		cJSON_Delete(o);
		return NULL;
	}
	return o;
}

/* Wipes a password in the tree before it is freed. */
static void wipe_free(cJSON *req)
{
	const cJSON *cmds = cJSON_GetObjectItemCaseSensitive(req, "commands");
	const cJSON *o;
	cJSON_ArrayForEach(o, cmds) {
		cJSON *pw = cJSON_GetObjectItemCaseSensitive(o, "password");
		if (cJSON_IsString(pw))
			sodium_memzero(pw->valuestring, strlen(pw->valuestring));
	}
	cJSON_Delete(req);
}

/* ---- printing ---- */

static const char *str(const cJSON *o, const char *name)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsString(j) ? j->valuestring : "";
}

static double num(const cJSON *o, const char *name)
{
	const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, name);
	return cJSON_IsNumber(j) ? j->valuedouble : 0;
}

static void print_clients(const cJSON *data)
{
	const cJSON *cl;
	cJSON_ArrayForEach(cl, cJSON_GetObjectItemCaseSensitive(data, "clients")) {
		char since[32];
		cli_utc((uint64_t)num(cl, "connectedSince"), since, sizeof(since));
		printf("%s %s %s since %s", str(cl, "clientId"), str(cl, "login"), str(cl, "address"), since);
		const cJSON *roles = cJSON_GetObjectItemCaseSensitive(cl, "roles");
		const cJSON *r;
		int i = 0;
		cJSON_ArrayForEach(r, roles) {
			printf("%s%s", i++ ? "," : " roles=", cJSON_IsString(r) ? r->valuestring : "");
		}
		if (*str(cl, "credentialId"))
			printf(" credential=%s authority=%s", str(cl, "credentialId"), str(cl, "authority"));
		printf("\n");
	}
}

static void print_counters(const cJSON *data)
{
	const cJSON *fam, *v;
	cJSON_ArrayForEach(fam, cJSON_GetObjectItemCaseSensitive(data, "counters")) {
		cJSON_ArrayForEach(v, fam) {
			if (!strcmp(fam->string, "argon2id_seconds"))
				printf("%s/%s %.6f\n", fam->string, v->string, v->valuedouble);
			else
				printf("%s/%s %.0f\n", fam->string, v->string, v->valuedouble);
		}
	}
}

static void print_data(const char *cmd, const cJSON *data, const char *const *argv)
{
	const cJSON *e;
	if (!strcmp(cmd, "listClients")) {
		print_clients(data);
	} else if (!strcmp(cmd, "listRevocations")) {
		/* The revocation file's own lines, and where each comes from. */
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(data, "revocations")) {
			printf("%s %s   # %s\n", *str(e, "credentialId") ? "credential" : "client",
			       *str(e, "credentialId") ? str(e, "credentialId") : str(e, "clientId"), str(e, "source"));
		}
	} else if (!strcmp(cmd, "listPasswordUsers")) {
		cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(data, "users")) {
			printf("%s   # %s\n", str(e, "username"), str(e, "source"));
		}
	} else if (!strcmp(cmd, "getCounters")) {
		print_counters(data);
	} else if (!strcmp(cmd, "revokeClient") || !strcmp(cmd, "revokeCredential")) {
		if (cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "alreadyRevoked")))
			printf("%s was already revoked\n", argv[1]);
		else
			printf("revoked %s (%.0f connected client(s) kicked)\n", argv[1], num(data, "kicked"));
	} else if (!strcmp(cmd, "removeRevocation")) {
		printf("revocation of %s removed%s\n", argv[2],
		       cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(data, "stillRevoked"))
		           ? " (still revoked by the operator's revocation file)"
		           : "");
	} else if (!strcmp(cmd, "kickClient")) {
		printf("kicked %s\n", argv[1]);
	} else if (!strcmp(cmd, "addPasswordUser")) {
		printf("added user %s\n", argv[1]);
	} else if (!strcmp(cmd, "removePasswordUser")) {
		printf("removed user %s (%.0f connected client(s) kicked)\n", argv[1], num(data, "kicked"));
	} else if (!strcmp(cmd, "reload")) {
		printf("reloaded: authentication files %s, rules %s\n", str(data, "auth"), str(data, "acl"));
	}
}

/* Print the answer; the exit status. */
static int report(struct ctl *c, const char *cmd, char *const *argv)
{
	cJSON *t = cJSON_Parse(c->answer);
	const cJSON *r, *mine = NULL;
	cJSON_ArrayForEach(r, cJSON_GetObjectItemCaseSensitive(t, "responses")) {
		if (!strcmp(str(r, "correlationData"), c->corr))
			mine = r;
	}
	const char *error = mine ? str(mine, "error") : "the response names no command";
	bool failed = *error != '\0'; /* error lives in the tree */
	if (c->json)
		printf("%s\n", c->answer);
	else if (!failed)
		print_data(cmd, cJSON_GetObjectItemCaseSensitive(mine, "data"), (const char *const *)argv);
	if (failed)
		fprintf(stderr, "veil ctl: %s: %s (%s)\n", cmd, error, mine ? str(mine, "reason") : "bad-response");
	cJSON_Delete(t);
	return failed ? VEIL_EXIT_FAIL : VEIL_EXIT_OK;
}

/* ---- the exchange ---- */

static int keyring_setup(struct ctl *c)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(c->dir, sizeof(c->dir), "%s/veil-ctl.XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(c->dir)) {
		fprintf(stderr, "veil ctl: %s: %s\n", c->dir, strerror(errno));
		c->dir[0] = '\0';
		return -1;
	}
	static const char text[] = "# veil ctl: the admin API's JSON goes to the broker in clear (TLS protects it)\n"
	                            "policy " CTL_REQUEST_TOPIC "/# plaintext\n"
	                            "policy " CTL_REQUEST_TOPIC " plaintext\n";
	snprintf(c->keyring, sizeof(c->keyring), "%s/keyring", c->dir);
	if (veil__file_write_atomic(c->keyring, text, sizeof(text) - 1, 0600, true) != VEIL_OK) {
		fprintf(stderr, "veil ctl: %s: %s\n", c->keyring, strerror(errno));
		return -1;
	}
	return 0;
}

static void keyring_remove(struct ctl *c)
{
	if (c->keyring[0])
		unlink(c->keyring);
	if (c->dir[0])
		rmdir(c->dir);
}

static int exchange(struct ctl *c, cJSON *req)
{
	struct cli_mqtt *m = &c->m;
	char why[160];
	struct cli_done d;
	cli_done_init(&d, m);
	int rc = veil_async_subscribe(m->a, CTL_RESPONSE_TOPIC, 1, cli_done_cb, &d);
	if (rc != VEIL_OK || !cli_done_wait(&d, c->timeout_s * 1000)) {
		cli_say(m, "no SUBACK for %s%s", CTL_RESPONSE_TOPIC, m->lost ? ": connection lost" : "");
		return VEIL_EXIT_FAIL;
	}
	if (d.rc != VEIL_OK) {
		cli_say(m, "the broker refused the subscription to %s: %s; does the credential have the broker's admin "
		           "role (plugin_opt_admin_role)?",
		        CTL_RESPONSE_TOPIC, d.reason > 0 ? cli_reason(m, d.reason, false, why, sizeof(why)) : "refused");
		return VEIL_EXIT_FAIL;
	}
	char *payload = cJSON_PrintUnformatted(req);
	if (!payload)
		return VEIL_EXIT_FAIL;
	size_t len = strlen(payload);
	cli_done_init(&d, m);
	rc = veil_async_publish(m->a, CTL_REQUEST_TOPIC, payload, len, 1, false, cli_done_cb, &d);
	sodium_memzero(payload, len); /* a password, for addPasswordUser; libveil has its copy */
	cJSON_free(payload);
	if (rc != VEIL_OK) {
		cli_say(m, "cannot send the command: %s (%s)", veil_strerror(rc), veil_errname(rc));
		return VEIL_EXIT_FAIL;
	}
	if (!cli_done_wait(&d, c->timeout_s * 1000)) {
		cli_say(m, "no acknowledgement of the command%s", m->lost ? ": connection lost" : "");
		return VEIL_EXIT_FAIL;
	}
	if (d.rc != VEIL_OK) {
		if (d.reason >= 0x80)
			cli_say(m, "the broker refused the command: %s; does the credential have the broker's admin role "
			           "(plugin_opt_admin_role)?",
			        cli_reason(m, d.reason, false, why, sizeof(why)));
		else
			cli_say(m, "the command was not delivered: %s", veil_strerror(d.rc));
		return VEIL_EXIT_FAIL;
	}
	struct timespec until = cli_mono_at(cli_now_ms() + (uint64_t)c->timeout_s * 1000U);
	pthread_mutex_lock(&m->lock);
	while (!c->answer && !m->lost && pthread_cond_timedwait(&m->cond, &m->lock, &until) != ETIMEDOUT)
		;
	bool got = c->answer != NULL;
	pthread_mutex_unlock(&m->lock);
	if (!got) {
		cli_say(m, "no response from the broker within %d s%s", c->timeout_s,
		        m->mqtt_version == VEIL_MQTT_311
		            ? " (MQTT 3.1.1 cannot say that a command was refused: try MQTT 5, the default)"
		            : m->lost ? ": connection lost" : " (is mosquitto_veil.so loaded, with the admin API?)");
		return VEIL_EXIT_FAIL;
	}
	return VEIL_EXIT_OK;
}

int veil_cmd_ctl(int argc, char **argv)
{
	static const struct option longopts[] = {
		CLI_MQTT_LONG,
		{ "json", no_argument, NULL, OPT_JSON },       { "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "offset", required_argument, NULL, OPT_OFFSET }, { "count", required_argument, NULL, OPT_COUNT },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl *c = calloc(1, sizeof(*c));
	if (!c)
		return VEIL_EXIT_FAIL;
	cli_mqtt_init(&c->m, "ctl");
	c->m.user = c;
	c->timeout_s = 10;
	c->offset = c->count = -1;
	int ch, v = 0, status = VEIL_EXIT_USAGE;
	cJSON *req = NULL, *cmd = NULL;
	const char *canon = NULL;
	enum cli_next nx;
	optind = 1;
	while ((nx = cli_mqtt_next(&c->m, argc, argv, "h:p:i:V:u:P:dk:L:cx:", longopts, &ch)) == CLI_NEXT_OWN) {
		switch (ch) {
		case OPT_JSON: c->json = true; break;
		case OPT_TIMEOUT:
			if (cli_parse_int(optarg, 1, 3600, &c->timeout_s) != 0)
				goto bad;
			break;
		case OPT_OFFSET:
		case OPT_COUNT:
			if (cli_parse_int(optarg, 0, 1000000000, &v) != 0)
				goto bad;
			*(ch == OPT_OFFSET ? &c->offset : &c->count) = v;
			break;
		default: goto bad;
		}
	}
	if (nx != CLI_NEXT_END) {
		status = cli_mqtt_stop(nx, usage);
		goto out;
	}
	if (optind >= argc || c->m.n_topics || c->m.will_topic) {
		fprintf(stderr, "veil ctl: %s\n", optind >= argc ? "a command is needed" : "no -t or Will here");
		goto bad;
	}
	unsigned char rnd[16];
	randombytes_buf(rnd, sizeof(rnd));
	sodium_bin2hex(c->corr, sizeof(c->corr), rnd, sizeof(rnd));
	if (!(cmd = build(c, argc - optind, argv + optind, &canon)))
		goto bad;
	req = cJSON_CreateObject();
	cJSON *cmds = req ? cJSON_AddArrayToObject(req, "commands") : NULL;
	if (!cmds) {
		cJSON_Delete(cmd);
		status = VEIL_EXIT_FAIL;
		goto out;
	}
	cJSON_AddItemToArray(cmds, cmd);
	if (keyring_setup(c) != 0) {
		status = VEIL_EXIT_FAIL;
		goto out;
	}
	/* Its own keyring, no state, no key service: veil ctl seals nothing. */
	c->m.o.keyring_path = c->keyring;
	c->m.o.state_dir = NULL;
	c->m.o.key_service = VEIL_KEYS_OFF;
	c->m.o.refuse_plaintext = false;
	if ((status = cli_mqtt_finish(&c->m)) != VEIL_EXIT_OK)
		goto out;
	bool local = !strcmp(c->m.host, "localhost") || !strcmp(c->m.host, "127.0.0.1") || !strcmp(c->m.host, "::1");
	if (!strcmp(canon, "addPasswordUser") && !c->m.o.tls.ca_file && !c->m.url_tls && !local)
		cli_say(&c->m, "warning: without TLS (--cafile) the password crosses the network in clear");
	if ((status = cli_mqtt_connect(&c->m, on_msg, NULL)) != VEIL_EXIT_OK)
		goto out;
	status = exchange(c, req);
	if (status == VEIL_EXIT_OK)
		status = report(c, canon, argv + optind);
	goto out;
bad:
	usage(stderr);
	status = VEIL_EXIT_USAGE;
out:
	if (req)
		wipe_free(req);
	cli_mqtt_close(&c->m);
	keyring_remove(c);
	free(c->answer);
	free(c);
	return status;
}

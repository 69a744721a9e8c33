/* veil inspect: decode an envelope's header without any key. */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cJSON.h>
#include <sodium.h>

#include "veil/veil.h"
#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: veil inspect [FILE | -] [--hex HEX] [--json]\n"
	           "Decodes the header of a Veil envelope (the raw MQTT payload, from FILE,\n"
	           "stdin, or a hex string): version, flags, key id, sender id, sequence,\n"
	           "sizes, and for signed envelopes the embedded credential. Needs no key and\n"
	           "decrypts nothing. Exits 1 if the bytes are not a well-formed envelope.\n"
	           "--json: one JSON object (\"envelope\": false and \"error\" when it is not one).\n");
}

int veil_cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hex", required_argument, NULL, 'x' }, { "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },      { NULL, 0, NULL, 0 }
	};
	const char *hex = NULL;
	bool json = false;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'x')
			hex = optarg;
		else if (c == 'j')
			json = true;
		else if (c == 'h') {
			usage(stdout);
			return VEIL_EXIT_OK;
		} else {
			usage(stderr);
			return VEIL_EXIT_USAGE;
		}
	}
	unsigned char *buf = NULL;
	size_t len = 0;
	if (hex) {
		size_t cap = strlen(hex) / 2 + 1;
		buf = malloc(cap);
		if (!buf || cli_hex_decode(hex, buf, cap, &len) != 0) {
			fprintf(stderr, "veil inspect: --hex is not valid hex\n");
			free(buf);
			return VEIL_EXIT_USAGE;
		}
	} else {
		const char *path = optind < argc ? argv[optind] : "-";
		buf = cli_read_file(path, &len);
		if (!buf) {
			perror(path);
			return VEIL_EXIT_FAIL;
		}
	}
	struct veil_envelope_view v;
	int rc = veil_envelope_parse(buf, len, &v);
	int status = rc == VEIL_OK ? VEIL_EXIT_OK : VEIL_EXIT_FAIL;
	struct veil_credential cr;
	bool has_cred = rc == VEIL_OK && v.credential &&
	                veil_credential_parse(v.credential, v.credential_len, &cr) == VEIL_OK;
	if (json) {
		cJSON *o = cJSON_CreateObject();
		if (!o) {
			free(buf);
			return VEIL_EXIT_FAIL;
		}
		cJSON_AddBoolToObject(o, "envelope", rc == VEIL_OK);
		cli_json_u64(o, "bytes", len);
		if (rc != VEIL_OK) {
			cJSON_AddStringToObject(o, "error", veil_errname(rc));
			cJSON_AddStringToObject(o, "reason", veil_strerror(rc));
		} else {
			cli_json_u64(o, "version", v.h.version);
			cJSON_AddBoolToObject(o, "signed", (v.h.flags & VEIL_FLAG_SIGNED) != 0);
			cli_json_u64(o, "key_id", v.h.key_id);
			char kcv[8];
			snprintf(kcv, sizeof(kcv), "%04x", v.h.kcv);
			cJSON_AddStringToObject(o, "key_check", kcv);
			cli_json_hex(o, "sender", v.h.sender, sizeof(v.h.sender));
			cli_json_u64(o, "seq", v.h.seq);
			cli_json_hex(o, "nonce", v.h.nonce, sizeof(v.h.nonce));
			cli_json_u64(o, "ciphertext_bytes", v.ciphertext_len);
			cli_json_u64(o, "plaintext_bytes", v.ciphertext_len - VEIL_TAG_BYTES);
			if (has_cred) {
				cJSON *cj = cJSON_AddObjectToObject(o, "credential");
				if (cj) {
					cJSON_AddStringToObject(cj, "client_id", cr.client_id);
					cJSON_AddStringToObject(cj, "roles", cr.roles);
					cli_json_hex(cj, "authority_id", cr.authority_id, sizeof(cr.authority_id));
					cli_json_time(cj, "expires_at", cr.expires_at);
					cJSON_AddBoolToObject(cj, "signature_checked", false);
				}
			}
		}
		free(buf);
		return cli_json_print(o) == VEIL_EXIT_OK ? status : VEIL_EXIT_FAIL;
	}
	if (rc != VEIL_OK) {
		printf("not a Veil envelope: %s (%zu bytes)\n", veil_strerror(rc), len);
		free(buf);
		return VEIL_EXIT_FAIL;
	}
	char sid[17], nonce[49];
	sodium_bin2hex(sid, sizeof(sid), v.h.sender, sizeof(v.h.sender));
	sodium_bin2hex(nonce, sizeof(nonce), v.h.nonce, sizeof(v.h.nonce));
	printf("version:     %u\nsigned:      %s\nkey id:      %u\nkey check:   %04x\nsender id:   %s\n"
	       "sequence:    %llu\nnonce:       %s\nciphertext:  %zu bytes (plaintext %zu)\nenvelope:    %zu bytes\n",
	       v.h.version, (v.h.flags & VEIL_FLAG_SIGNED) ? "yes" : "no", v.h.key_id, v.h.kcv, sid,
	       (unsigned long long)v.h.seq, nonce, v.ciphertext_len, v.ciphertext_len - VEIL_TAG_BYTES, len);
	if (has_cred) {
		char until[32];
		cli_utc(cr.expires_at, until, sizeof(until));
		printf("credential:  client id %s, roles %s, expires %llu (%s) (signature not checked here)\n",
		       cr.client_id, cr.roles[0] ? cr.roles : "-", (unsigned long long)cr.expires_at, until);
	}
	free(buf);
	return VEIL_EXIT_OK;
}

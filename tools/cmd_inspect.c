/* veil inspect: decode an envelope's header without any key. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "veil/veil.h"
#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: veil inspect [FILE | -] [--hex HEX]\n"
	           "Decodes the header of a Veil envelope (the raw MQTT payload, from FILE,\n"
	           "stdin, or a hex string): version, flags, key id, sender id, sequence,\n"
	           "sizes, and for signed envelopes the embedded credential. Needs no key and\n"
	           "decrypts nothing. Exits 1 if the bytes are not a well-formed envelope.\n");
}

int veil_cmd_inspect(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "hex", required_argument, NULL, 'x' }, { "help", no_argument, NULL, 'h' }, { NULL, 0, NULL, 0 }
	};
	const char *hex = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
		if (c == 'x')
			hex = optarg;
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
	if (v.credential) {
		struct veil_credential cr;
		if (veil_credential_parse(v.credential, v.credential_len, &cr) == VEIL_OK)
			printf("credential:  client id %s, roles %s, expires %llu (signature not checked here)\n",
			       cr.client_id, cr.roles[0] ? cr.roles : "-", (unsigned long long)cr.expires_at);
	}
	free(buf);
	return VEIL_EXIT_OK;
}

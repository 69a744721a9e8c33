/* `veil`: key, credential, envelope and client tooling. Dispatch only. */
#include <stdio.h>
#include <string.h>

#include "veil/veil.h"
#include "cli.h"

static const struct {
	const char *name;
	int (*fn)(int, char **);
	const char *summary;
} commands[] = {
	{ "keygen", veil_cmd_keygen, "generate an identity, an authority or a topic key" },
	{ "credential", veil_cmd_credential, "issue or show an authority-signed device credential" },
	{ "token", veil_cmd_token, "make a login token / MQTT password, or verify one offline (clock)" },
	{ "inspect", veil_cmd_inspect, "decode an envelope header (no key needed)" },
	{ "pub", veil_cmd_pub, "publish an encrypted message (like mosquitto_pub)" },
	{ "sub", veil_cmd_sub, "subscribe and print decrypted messages (like mosquitto_sub)" },
	{ "passwd", veil_cmd_passwd, "manage the Argon2id password file for legacy clients" },
	{ "keys", veil_cmd_keys, "the key service's store: status, devices, rotate a scope (veil-keyd)" },
	{ "ctl", veil_cmd_ctl, "the broker plugin's admin API: clients, revocations, users (like mosquitto_ctrl)" },
};

static void usage(FILE *f)
{
	fprintf(f, "usage: veil <command> [options]\n\ncommands:\n");
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		fprintf(f, "  %-11s %s\n", commands[i].name, commands[i].summary);
	}
	fprintf(f, "\n'veil <command> --help' shows a command's options.\n");
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		usage(stderr);
		return VEIL_EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		usage(stdout);
		return VEIL_EXIT_OK;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("veil %s\n", veil_version());
		return VEIL_EXIT_OK;
	}
	if (veil_init() != VEIL_OK) {
		fprintf(stderr, "veil: libsodium failed to initialise\n");
		return VEIL_EXIT_FAIL;
	}
	for (size_t i = 0; i < sizeof(commands) / sizeof(commands[0]); i++) {
		if (!strcmp(argv[1], commands[i].name))
			return commands[i].fn(argc - 1, argv + 1);
	}
	fprintf(stderr, "veil: unknown command '%s'\n\n", argv[1]);
	usage(stderr);
	return VEIL_EXIT_USAGE;
}

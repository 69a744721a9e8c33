/*
 * veil keys: the key service's store, for operators (issue 12):
 *
 *   veil keys --db /var/lib/veil/keyd.db status        epochs, who holds and acknowledged each
 *   veil keys --db /var/lib/veil/keyd.db devices       credentials keyd serves, versions, epochs held
 *   veil keys --db /var/lib/veil/keyd.db rotate SCOPE  queue a forced rotation of a scope
 *
 * The store is read in WAL mode while veil-keyd runs, through keyd's own
 * store module (keyd/store.h) without the storage key: nothing here can
 * unseal a topic key. `rotate` only queues a request; keyd picks it up
 * within a second and records the result, which `status` shows.
 */
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "veil/veil.h"
#include "store.h"
#include "cli.h"

static void usage(FILE *f)
{
	fprintf(f, "usage: veil keys --db PATH status          epochs per scope instance: state, devices granted, acknowledged\n"
	           "       veil keys --db PATH devices         every credential keyd serves, bundle versions,\n"
	           "                                           the epochs each holds, acknowledged or not\n"
	           "       veil keys --db PATH rotate SCOPE    start a new epoch of SCOPE now (as written in keyd's config,\n"
	           "                                           or one instance); older epochs are superseded\n");
}

int veil_cmd_keys(int argc, char **argv)
{
	static const struct option opts[] = { { "db", required_argument, NULL, 'd' },
		                              { "help", no_argument, NULL, 'h' },
		                              { NULL, 0, NULL, 0 } };
	const char *db = NULL;
	int c;
	optind = 1;
	while ((c = getopt_long(argc, argv, "d:h", opts, NULL)) != -1) {
		if (c == 'd') {
			db = optarg;
		} else if (c == 'h') {
			usage(stdout);
			return VEIL_EXIT_OK;
		} else {
			usage(stderr);
			return VEIL_EXIT_USAGE;
		}
	}
	const char *cmd = optind < argc ? argv[optind] : NULL;
	bool rotate = cmd && !strcmp(cmd, "rotate");
	if (!db || !cmd || (rotate ? optind + 2 != argc : optind + 1 != argc) ||
	    (!rotate && strcmp(cmd, "status") != 0 && strcmp(cmd, "devices") != 0)) {
		usage(stderr);
		return VEIL_EXIT_USAGE;
	}
	struct kd_store *s = NULL;
	char err[512] = "";
	if (kd_store__open(db, NULL, false, &s, err, sizeof(err)) != VEIL_OK) {
		fprintf(stderr, "veil keys: %s\n", err);
		return VEIL_EXIT_FAIL;
	}
	int rc;
	uint64_t now = (uint64_t)time(NULL);
	if (!strcmp(cmd, "status")) {
		rc = kd_store__report_status(s, stdout, now);
	} else if (!strcmp(cmd, "devices")) {
		rc = kd_store__report_devices(s, stdout);
	} else {
		/* keyd refuses an unknown scope too, but only in its audit log: say
		 * so here, where the operator is looking. */
		bool known = false;
		const char *scope = argv[optind + 1];
		rc = kd_store__scope_known(s, scope, &known);
		if (rc == VEIL_OK && !known) {
			fprintf(stderr,
			        "veil keys: %s: no scope or scope instance named '%s'; veil-keyd has loaded these scopes "
			        "from its config (a new one appears once veil-keyd runs with it):\n",
			        db, scope);
			kd_store__scopes_print(s, stderr);
			kd_store__close(&s);
			return VEIL_EXIT_FAIL;
		}
		if (rc == VEIL_OK)
			rc = kd_store__rotate_request(s, scope, now);
		if (rc == VEIL_OK)
			printf("rotation of %s queued; veil-keyd applies it within a second (see 'veil keys status')\n",
			       argv[optind + 1]);
	}
	kd_store__close(&s);
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil keys: %s: %s\n", db, veil_strerror(rc));
		return VEIL_EXIT_FAIL;
	}
	return VEIL_EXIT_OK;
}

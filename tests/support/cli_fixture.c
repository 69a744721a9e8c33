/* The `veil` CLI fixture (see cli_fixture.h). */
#include "cli_fixture.h"

#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "files.h"
#include "material.h"
#include "proc.h"
#include "timing.h"

#define MAX_ARGS 64

void clifx_setup(struct clifx *f, const char *acl, const char *extra)
{
	memset(f, 0, sizeof(*f));
	f->cli = getenv("VEIL_CLI");
	ck_assert_msg(f->cli && *f->cli, "VEIL_CLI not set (run through ctest)");
	const char *plugin = test_plugin_path();
	ck_assert_msg(plugin != NULL, "VEIL_PLUGIN not set (run through ctest)");
	cfx_setup_files(&f->c);
	cfx_device(&f->c, "sensor-1");
	cfx_device(&f->c, "dash-1");
	ck_assert_int_eq(chmod(f->c.dir, 0755), 0);
	test_authority_save(f->c.authority, f->c.dir, f->auth_pub, sizeof(f->auth_pub));
	clifx_path(f, "acl", f->acl, sizeof(f->acl));
	ck_assert_int_eq(test_write_file(f->acl, acl ? acl : CLIFX_ACL, 0644), 0);
	char conf[4096];
	int n = snprintf(conf, sizeof(conf),
	                 "allow_anonymous true\n"
	                 "plugin %s\n"
	                 "plugin_opt_allow_anonymous true\n"
	                 "plugin_opt_authority_file %s\n"
	                 "plugin_opt_acl_file %s\n"
	                 "%s",
	                 plugin, f->auth_pub, f->acl, extra ? extra : "");
	ck_assert_int_lt(n, (int)sizeof(conf));
	cfx_start(&f->c, conf);
	snprintf(f->port, sizeof(f->port), "%d", f->c.broker.port);
}

void clifx_teardown(struct clifx *f)
{
	cfx_teardown(&f->c);
}

void clifx_path(const struct clifx *f, const char *name, char *out, size_t cap)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s", f->c.dir, name), (int)cap);
}

static void out_path(const struct clifx *f, const char *tag, const char *ext, char *out, size_t cap)
{
	ck_assert_int_lt(snprintf(out, cap, "%s/%s.%s", f->c.dir, tag, ext), (int)cap);
}

static pid_t start(struct clifx *f, const char *const *env, const char *tag, const char *in, const char *cmd,
                   const char *dev, va_list ap)
{
	static char key[400], cred[400];
	const char *argv[MAX_ARGS];
	size_t n = 0;
	argv[n++] = f->cli;
	argv[n++] = cmd;
	if (dev) {
		clifx_path(f, dev, key, sizeof(key));
		ck_assert_int_lt(snprintf(cred, sizeof(cred), "%s.cred", key), (int)sizeof(cred));
		ck_assert_int_lt(snprintf(key + strlen(key), sizeof(key) - strlen(key), ".key"), (int)sizeof(key));
		const char *conn[] = { "-h", "127.0.0.1", "-p", f->port, "--identity", key, "--credential", cred,
			               "--keyring", f->c.keyring };
		for (size_t i = 0; i < sizeof(conn) / sizeof(conn[0]); i++)
			argv[n++] = conn[i];
	}
	const char *a;
	while ((a = va_arg(ap, const char *)) != NULL) {
		ck_assert_uint_lt(n, MAX_ARGS - 1);
		argv[n++] = a;
	}
	argv[n] = NULL;
	char out[400], err[400];
	out_path(f, tag, "out", out, sizeof(out));
	out_path(f, tag, "err", err, sizeof(err));
	struct test_spawn o = { .in = in, .out = out, .err = err, .env = env };
	return test_spawn(argv, &o);
}

pid_t clifx_start(struct clifx *f, const char *tag, const char *in, const char *cmd, const char *dev, ...)
{
	va_list ap;
	va_start(ap, dev);
	pid_t pid = start(f, NULL, tag, in, cmd, dev, ap);
	va_end(ap);
	return pid;
}

int clifx_run(struct clifx *f, const char *tag, const char *in, const char *cmd, const char *dev, ...)
{
	va_list ap;
	va_start(ap, dev);
	pid_t pid = start(f, NULL, tag, in, cmd, dev, ap);
	va_end(ap);
	return test_wait_exit(pid, 20000);
}

int clifx_run_env(struct clifx *f, const char *const *env, const char *tag, const char *in, const char *cmd,
                  const char *dev, ...)
{
	va_list ap;
	va_start(ap, dev);
	pid_t pid = start(f, env, tag, in, cmd, dev, ap);
	va_end(ap);
	return test_wait_exit(pid, 20000);
}

const char *clifx_text(const struct clifx *f, const char *tag, const char *ext)
{
	static char bufs[4][32768];
	static unsigned next;
	char *buf = bufs[next++ % 4];
	char path[400];
	out_path(f, tag, ext, path, sizeof(path));
	size_t len = 0;
	char *text = test_file_read(path, &len);
	snprintf(buf, sizeof(bufs[0]), "%s", text ? text : "");
	free(text);
	return buf;
}

bool clifx_wait(const struct clifx *f, const char *tag, const char *ext, const char *needle, int base_ms)
{
	char path[400];
	out_path(f, tag, ext, path, sizeof(path));
	return test_file_wait(path, needle, base_ms);
}

bool clifx_wait_subacks(const struct clifx *f, const char *client_id, int n)
{
	char needle[200];
	snprintf(needle, sizeof(needle), "Sending SUBACK to %s\n", client_id);
	return test_file_wait_count(f->c.broker.log, needle, n, 10000);
}

/*
 * veil passwd add|delete|verify FILE USER: the Argon2id password file the
 * plugin reads (plugin_opt_password_file), one "user:$argon2id$..." line per
 * user, like mosquitto_passwd. The password comes from the terminal (no
 * echo, asked twice for add) or from the first line of stdin, never from
 * argv where every local user could read it. The file is rewritten through
 * a 0600 temporary file and rename(), so the broker never sees half a file.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../core/util.h" /* veil__line_content: the one comment rule of Veil's files */
#include "cli.h"

#define PW_MAX 1024U
#define LINE_MAX_ 1024U

static void usage(FILE *f)
{
	fprintf(f, "usage: veil passwd add FILE USER      add or replace USER (file created 0600)\n"
	           "       veil passwd delete FILE USER   remove USER\n"
	           "       veil passwd verify FILE USER   exit 0 if the password matches\n"
	           "\n"
	           "The password is read from the terminal without echo, or from the first\n"
	           "line of standard input when it is not a terminal. Hashes are Argon2id\n"
	           "(libsodium crypto_pwhash_str, interactive limits).\n");
}

/* The plugin's rules for a user name (plugin/auth_names.c), plus no ':'. */
static int user_valid(const char *u)
{
	size_t n = strlen(u);
	if (n == 0 || n > VEIL_CLIENT_ID_MAX)
		return 0;
	for (const unsigned char *p = (const unsigned char *)u; *p; p++) {
		if (*p < 0x20 || *p == 0x7f || *p == '+' || *p == '#' || *p == ':')
			return 0;
	}
	return 1;
}

static int read_line(FILE *in, char *buf, size_t cap)
{
	if (!fgets(buf, (int)cap, in))
		return -1;
	size_t n = strlen(buf);
	if (n > 0 && buf[n - 1] == '\n')
		buf[--n] = '\0';
	else if (!feof(in))
		return -1; /* longer than PW_MAX */
	if (n > 0 && buf[n - 1] == '\r')
		buf[--n] = '\0';
	return 0;
}

static int prompt(const char *text, char *buf, size_t cap)
{
	struct termios old, quiet;
	fprintf(stderr, "%s", text);
	fflush(stderr);
	if (tcgetattr(STDIN_FILENO, &old) != 0)
		return -1;
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	quiet.c_lflag |= ECHONL;
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
	int rc = read_line(stdin, buf, cap);
	tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
	return rc;
}

/* 0 with the password in pw; asks twice on a terminal when confirm. */
static int get_password(char *pw, size_t cap, int confirm)
{
	if (!isatty(STDIN_FILENO))
		return read_line(stdin, pw, cap);
	if (prompt("Password: ", pw, cap) != 0)
		return -1;
	if (confirm) {
		char again[PW_MAX];
		int rc = prompt("Reenter password: ", again, sizeof(again));
		int same = rc == 0 && strcmp(pw, again) == 0;
		sodium_memzero(again, sizeof(again));
		if (!same) {
			fprintf(stderr, "veil passwd: passwords do not match\n");
			return -1;
		}
	}
	return 0;
}

/* Does line hold an entry for user? */
static int line_is_user(const char *line, const char *user)
{
	size_t n = strlen(user);
	return strncmp(line, user, n) == 0 && line[n] == ':';
}

/* Copy path to a temp file except user's line, then append "user:new_entry" when set. */
static int rewrite(const char *path, const char *user, const char *new_entry, int *found)
{
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp))
		return -1;
	int fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "veil passwd: %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	fchmod(fd, 0600);
	FILE *out = fdopen(fd, "w");
	if (!out) {
		close(fd);
		unlink(tmp);
		return -1;
	}
	FILE *in = fopen(path, "r");
	if (!in && errno != ENOENT) {
		fprintf(stderr, "veil passwd: %s: %s\n", path, strerror(errno));
		fclose(out);
		unlink(tmp);
		return -1;
	}
	*found = 0;
	char line[LINE_MAX_ + 2];
	int rc = 0;
	while (in && fgets(line, sizeof(line), in)) {
		if (line_is_user(line, user)) {
			*found = 1;
			continue;
		}
		fputs(line, out);
		if (line[0] && line[strlen(line) - 1] != '\n')
			fputc('\n', out);
	}
	if (in && ferror(in))
		rc = -1;
	if (new_entry)
		fprintf(out, "%s:%s\n", user, new_entry);
	if (in)
		fclose(in);
	if (fflush(out) != 0 || fsync(fileno(out)) != 0)
		rc = -1;
	if (fclose(out) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0) {
		fprintf(stderr, "veil passwd: %s: %s\n", path, strerror(errno));
		rc = -1;
	}
	if (rc != 0)
		unlink(tmp);
	return rc;
}

static int find_hash(const char *path, const char *user, char *hash, size_t cap)
{
	FILE *in = fopen(path, "r");
	if (!in) {
		fprintf(stderr, "veil passwd: %s: %s\n", path, strerror(errno));
		return -1;
	}
	char line[LINE_MAX_ + 2];
	int rc = 1;
	while (fgets(line, sizeof(line), in)) {
		if (line_is_user(line, user)) {
			line[strcspn(line, "\r\n")] = '\0';
			line[veil__line_content(line, strlen(line), NULL)] = '\0'; /* as the plugin reads it */
			snprintf(hash, cap, "%s", line + strlen(user) + 1);
			rc = 0;
			break;
		}
	}
	fclose(in);
	return rc;
}

int veil_cmd_passwd(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return VEIL_EXIT_OK;
	}
	if (argc != 4) {
		usage(stderr);
		return VEIL_EXIT_USAGE;
	}
	const char *cmd = argv[1], *path = argv[2], *user = argv[3];
	if (!user_valid(user)) {
		fprintf(stderr, "veil passwd: invalid user name (1-%u bytes, no ':', '+', '#' or control characters)\n",
		        VEIL_CLIENT_ID_MAX);
		return VEIL_EXIT_USAGE;
	}
	if (!strcmp(cmd, "delete")) {
		int found = 0;
		if (rewrite(path, user, NULL, &found) != 0)
			return VEIL_EXIT_FAIL;
		if (!found) {
			fprintf(stderr, "veil passwd: no user '%s' in %s\n", user, path);
			return VEIL_EXIT_FAIL;
		}
		return VEIL_EXIT_OK;
	}
	if (strcmp(cmd, "add") != 0 && strcmp(cmd, "verify") != 0) {
		usage(stderr);
		return VEIL_EXIT_USAGE;
	}
	char pw[PW_MAX];
	char hash[crypto_pwhash_STRBYTES];
	int rc = VEIL_EXIT_FAIL;
	if (get_password(pw, sizeof(pw), !strcmp(cmd, "add")) != 0) {
		fprintf(stderr, "veil passwd: cannot read the password\n");
		goto out;
	}
	if (!strcmp(cmd, "verify")) {
		int f = find_hash(path, user, hash, sizeof(hash));
		if (f == 0 && crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0) {
			rc = VEIL_EXIT_OK;
		} else if (f >= 0) {
			fprintf(stderr, "veil passwd: %s\n", f ? "unknown user" : "password does not match");
		}
		goto out;
	}
	if (pw[0] == '\0') {
		fprintf(stderr, "veil passwd: empty password\n");
		goto out;
	}
	if (crypto_pwhash_str(hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		fprintf(stderr, "veil passwd: out of memory hashing the password\n");
		goto out;
	}
	int found = 0;
	if (rewrite(path, user, hash, &found) == 0) {
		fprintf(stderr, "veil passwd: %s '%s'\n", found ? "updated" : "added", user);
		rc = VEIL_EXIT_OK;
	}
out:
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

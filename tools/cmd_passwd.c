/*
 * veil passwd add|delete|verify FILE USER: the Argon2id password file the
 * plugin reads (plugin_opt_password_file), one "user:$argon2id$..." line per
 * user, like mosquitto_passwd. The password comes from the terminal (no
 * echo, asked twice for add) or from the first line of stdin, never from
 * argv where every local user could read it. The file is rewritten through
 * a 0600 temporary file and rename(), so the broker never sees half a file.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../core/names.h"       /* the one rule for user names */
#include "../core/util.h"        /* the one file reader and line reader, the comment rule */
#include "../plugin/auth_file.h" /* the password file's limits, as the plugin reads it */
#include "cli.h"

#define PW_MAX 1024U

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

/* The password file as the plugin reads it (plugin/auth_file.h): the whole
 * file in wiped memory (ENOENT: empty), its limits. 0, or -1 after an error. */
static int read_passwd(const char *path, bool missing_ok, struct veil__text *t)
{
	char err[512];
	int rc = veil__file_read(path, VEIL__FILE_WIPE, VP_AUTH_FILE_MAX_BYTES, t, err, sizeof(err));
	if (rc == VEIL_ERR_IO && errno == ENOENT && missing_ok)
		return 0;
	if (rc != VEIL_OK) {
		fprintf(stderr, "veil passwd: %s\n", err);
		return -1;
	}
	return 0;
}

/* The next line of the file as it is (raw) and, in entry, where its user
 * name starts as the plugin sees it (comment and blanks removed); 1, 0 at
 * the end, -1 after an error. */
static int next_entry(const char *path, struct veil__lines *it, char *raw, size_t cap, const char **entry)
{
	enum veil__line ls = veil__lines_next(it, raw, cap);
	if (ls == VEIL__LINE_END)
		return 0;
	if (ls != VEIL__LINE_OK) {
		fprintf(stderr, "veil passwd: %s:%u: %s\n", path, it->lineno,
		        ls == VEIL__LINE_NUL ? "NUL byte in the line" : "line too long");
		return -1;
	}
	*entry = raw + strspn(raw, " \t");
	return 1;
}

/* Does entry (a line's content) hold the entry for user? */
static int entry_is_user(const char *entry, const char *user)
{
	size_t n = strlen(user);
	return strncmp(entry, user, n) == 0 && entry[n] == ':';
}

/* Copy path to a temp file except user's line, then append "user:new_entry" when set. */
static int rewrite(const char *path, const char *user, const char *new_entry, int *found)
{
	struct veil__text in;
	if (read_passwd(path, true, &in) != 0)
		return -1;
	char tmp[4096];
	if (snprintf(tmp, sizeof(tmp), "%s.tmpXXXXXX", path) >= (int)sizeof(tmp)) {
		veil__text_free(&in);
		return -1;
	}
	int fd = mkstemp(tmp);
	if (fd < 0) {
		fprintf(stderr, "veil passwd: %s: %s\n", tmp, strerror(errno));
		veil__text_free(&in);
		return -1;
	}
	fchmod(fd, 0600);
	FILE *out = fdopen(fd, "w");
	if (!out) {
		close(fd);
		unlink(tmp);
		veil__text_free(&in);
		return -1;
	}
	*found = 0;
	struct veil__lines it = { .text = in.text, .len = in.len, .verbatim = true };
	char line[VP_LINE_MAX];
	const char *entry = NULL;
	int rc = 0, got;
	while ((got = next_entry(path, &it, line, sizeof(line), &entry)) > 0) {
		char content[VP_LINE_MAX];
		memcpy(content, entry, strlen(entry) + 1);
		content[veil__line_content(content, strlen(content), NULL)] = '\0';
		if (entry_is_user(content, user))
			*found = 1;
		else
			fprintf(out, "%s\n", line);
		sodium_memzero(content, sizeof(content));
	}
	sodium_memzero(line, sizeof(line));
	veil__text_free(&in);
	if (got < 0)
		rc = -1;
	if (new_entry)
		fprintf(out, "%s:%s\n", user, new_entry);
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

/* 0 with user's hash in hash, 1 when user has no entry, -1 after an error. */
static int find_hash(const char *path, const char *user, char *hash, size_t cap)
{
	struct veil__text in;
	if (read_passwd(path, false, &in) != 0)
		return -1;
	struct veil__lines it = { .text = in.text, .len = in.len };
	char line[VP_LINE_MAX];
	const char *entry = NULL;
	int rc = 1, got;
	while (rc == 1 && (got = next_entry(path, &it, line, sizeof(line), &entry)) != 0) {
		if (got < 0)
			rc = -1;
		else if (entry_is_user(entry, user))
			rc = snprintf(hash, cap, "%s", entry + strlen(user) + 1) < (int)cap ? 0 : -1;
	}
	sodium_memzero(line, sizeof(line));
	veil__text_free(&in);
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
	const char *bad = veil__name_why(user, VEIL__NAME_PASSWD_USER);
	if (bad) {
		fprintf(stderr, "veil passwd: user name %s (docs/PROTOCOL.md section 3)\n", bad);
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

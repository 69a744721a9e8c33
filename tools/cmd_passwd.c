/*
 * veil passwd: the Argon2id password file the plugin reads
 * (plugin_opt_password_file), one "user:$argon2id$..." line per user, with
 * Veil's add|delete|verify and mosquitto_passwd's -c -b -D -U forms. The
 * password comes from the terminal (no echo, asked twice for add), from the
 * first line of stdin, or with -b (as mosquitto_passwd) from argv. The file
 * is rewritten through a temporary file and rename(), so the broker never
 * sees half a file, and keeps its owner and mode, so the broker can still
 * read it. A hash the plugin cannot verify ($7$, mosquitto_passwd's) is
 * named with its line: such a user must be re-created.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "veil/veil.h"
#include "../core/names.h"       /* the one rule for user names */
#include "../core/util.h"        /* the one file reader and line reader, the comment rule */
#include "../plugin/file.h" /* the password file's limits, as the plugin reads it */
#include "cli.h"

#define PW_MAX 1024U

static void usage(FILE *f)
{
	fprintf(f, "usage: veil passwd add FILE USER      add or replace USER (FILE created 0600 if missing)\n"
	           "       veil passwd delete FILE USER   remove USER\n"
	           "       veil passwd verify FILE USER   exit 0 if the password matches\n"
	           "mosquitto_passwd's forms:\n"
	           "       veil passwd [-c | -D] FILE USER          add or update USER (FILE must exist);\n"
	           "                                                -c creates or replaces FILE, -D deletes USER\n"
	           "       veil passwd -b [-c] FILE USER PASSWORD   the password on the command line (batch)\n"
	           "       veil passwd -U FILE                      hash every plain-text password in FILE\n"
	           "\n"
	           "The password is read from the terminal without echo, or from the first\n"
	           "line of standard input when it is not a terminal; -b takes it from the\n"
	           "command line, where other local users can see it (ps, shell history).\n"
	           "Hashes are Argon2id (libsodium crypto_pwhash_str, interactive limits): a\n"
	           "mosquitto_passwd hash ($6$, $7$) cannot be verified or converted without the\n"
	           "password; such users are named and must be re-created with veil passwd.\n"
	           "An existing FILE keeps its owner and mode (the broker must still read it).\n");
}

/* The password file as the plugin reads it (plugin/file.h): the whole
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

/* What a password file line holds where a hash should be: NULL for an
 * Argon2id hash (what the plugin verifies), else what it is instead. */
static const char *foreign_hash(const char *h)
{
	if (!strncmp(h, "$argon2id$", 10))
		return NULL;
	if (!strncmp(h, "$7$", 3))
		return "$7$, mosquitto_passwd's PBKDF2-SHA512";
	if (!strncmp(h, "$6$", 3))
		return "$6$, mosquitto_passwd's SHA512";
	if (h[0] == '$')
		return "an unknown hash format";
	return "a plain-text password? veil passwd -U hashes them";
}

static void say_foreign(const char *path, unsigned line, const char *user, const char *what)
{
	fprintf(stderr, "veil passwd: %s:%u: user '%s': not an Argon2id hash (%s); re-create this user with veil "
	                "passwd (the broker plugin refuses the whole file until then)\n",
	        path, line, user, what);
}

enum edit_kind { EDIT_SET, EDIT_DELETE, EDIT_UPGRADE };

struct edit {
	enum edit_kind kind;
	const char *user;       /* SET, DELETE */
	const char *hash;       /* SET: the new entry's hash */
	bool create;            /* -c: a new file (an existing one is replaced) */
	int found;              /* SET, DELETE: entries of user; UPGRADE: passwords hashed */
	int foreign;            /* UPGRADE: hashes it cannot turn into Argon2id */
};

/* The owner and mode the rewritten file must keep. A rename replaces the
 * file with ours: run as root, a 0600 root file the broker (running as
 * mosquitto) cannot read, and every password login fails. 0, or -1 (said)
 * when this process could not keep the owner. */
static int keep_owner(const char *path, int fd, bool *existed)
{
	struct stat st;
	*existed = stat(path, &st) == 0;
	if (!*existed) {
		if (errno != ENOENT) {
			fprintf(stderr, "veil passwd: %s: %s\n", path, strerror(errno));
			return -1;
		}
		return fchmod(fd, 0600);
	}
	if (!S_ISREG(st.st_mode)) {
		fprintf(stderr, "veil passwd: %s: not a regular file\n", path);
		return -1;
	}
	if ((st.st_uid != geteuid() || st.st_gid != getegid()) && fchown(fd, st.st_uid, st.st_gid) != 0) {
		fprintf(stderr, "veil passwd: %s belongs to uid %u gid %u: rewriting it as uid %u would change its "
		                "owner, and the broker might no longer read it (%s); run as root or as its owner\n",
		        path, (unsigned)st.st_uid, (unsigned)st.st_gid, (unsigned)geteuid(), strerror(errno));
		return -1;
	}
	return fchmod(fd, st.st_mode & 07777);
}

/* Hash pw into hash (Argon2id, interactive limits); 0 or -1 (said). */
static int hash_password(const char *pw, char hash[crypto_pwhash_STRBYTES])
{
	if (crypto_pwhash_str(hash, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
	                      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0) {
		fprintf(stderr, "veil passwd: Argon2id needs %zu MiB of memory and could not get it\n",
		        (size_t)crypto_pwhash_MEMLIMIT_INTERACTIVE >> 20);
		return -1;
	}
	return 0;
}

/* One line of the old file onto out, as the edit says. 0 or -1 (said). */
static int edit_line(struct edit *e, const char *path, unsigned lineno, const char *line, const char *entry,
                     FILE *out)
{
	char content[VP_LINE_MAX];
	memcpy(content, entry, strlen(entry) + 1);
	content[veil__line_content(content, strlen(content), NULL)] = '\0';
	char *colon = strchr(content, ':');
	int rc = 0;
	if (!colon) { /* blank, comment, or not an entry: kept as it is */
		fprintf(out, "%s\n", line);
		goto done;
	}
	*colon = '\0';
	const char *user = content, *what = foreign_hash(colon + 1);
	if (e->kind != EDIT_UPGRADE && !strcmp(user, e->user)) {
		if (e->kind == EDIT_SET && !e->found)
			fprintf(out, "%s:%s\n", e->user, e->hash); /* in place */
		e->found++;
		goto done;
	}
	if (e->kind != EDIT_UPGRADE || !what || colon[1] == '$') {
		/* Another user's entry, an Argon2id hash, or one -U cannot turn
		 * into Argon2id without the password: kept as it is, said. */
		if (what) {
			say_foreign(path, lineno, user, what);
			e->foreign += e->kind == EDIT_UPGRADE;
		}
		fprintf(out, "%s\n", line);
		goto done;
	}
	/* -U: everything after the first ':' of the line is the password. */
	const char *bad = veil__name_why(user, VEIL__NAME_PASSWD_USER);
	if (bad) {
		fprintf(stderr, "veil passwd: %s:%u: user name %s\n", path, lineno, bad);
		rc = -1;
		goto done;
	}
	const char *pw = strchr(entry, ':') + 1;
	char hash[crypto_pwhash_STRBYTES];
	if (*pw == '\0') {
		fprintf(stderr, "veil passwd: %s:%u: user '%s' has an empty password\n", path, lineno, user);
		rc = -1;
	} else if ((rc = hash_password(pw, hash)) == 0) {
		fprintf(out, "%s:%s\n", user, hash);
		e->found++;
	}
	sodium_memzero(hash, sizeof(hash));
done:
	sodium_memzero(content, sizeof(content));
	return rc;
}

/* Rewrite path through a temporary file in the same directory and
 * rename(): the broker never reads half a file, and the file keeps its
 * owner and mode. 0, or -1 (said) with the file untouched. */
static int rewrite(const char *path, struct edit *e)
{
	struct veil__text in = { 0 };
	if (!e->create && read_passwd(path, true, &in) != 0)
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
	bool existed = false;
	FILE *out = keep_owner(path, fd, &existed) == 0 ? fdopen(fd, "w") : NULL;
	if (!out) {
		close(fd);
		unlink(tmp);
		veil__text_free(&in);
		return -1;
	}
	struct veil__lines it = { .text = in.text, .len = in.len, .verbatim = true };
	char line[VP_LINE_MAX];
	const char *entry = NULL;
	int rc = 0, got = 0;
	while (!e->create && rc == 0 && (got = next_entry(path, &it, line, sizeof(line), &entry)) > 0)
		rc = edit_line(e, path, it.lineno, line, entry, out);
	sodium_memzero(line, sizeof(line));
	veil__text_free(&in);
	if (got < 0 || e->foreign)
		rc = -1;
	if (rc == 0 && e->kind == EDIT_SET && !e->found)
		fprintf(out, "%s:%s\n", e->user, e->hash);
	if (fflush(out) != 0 || fsync(fileno(out)) != 0)
		rc = -1;
	if (fclose(out) != 0)
		rc = -1;
	if (rc == 0 && rename(tmp, path) != 0) {
		fprintf(stderr, "veil passwd: %s: %s\n", path, strerror(errno));
		rc = -1;
	}
	if (rc != 0) {
		unlink(tmp);
		return -1;
	}
	if (!existed && geteuid() == 0)
		fprintf(stderr, "veil passwd: created %s (mode 0600, owner root): the broker reads it as the user it "
		                "runs as (chown mosquitto %s)\n", path, path);
	return 0;
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

/* veil passwd verify: 0 when the password matches user's hash. */
static int verify(const char *path, const char *user, const char *pw)
{
	char hash[VP_LINE_MAX];
	int f = find_hash(path, user, hash, sizeof(hash));
	int rc = VEIL_EXIT_FAIL;
	const char *what = f == 0 ? foreign_hash(hash) : NULL;
	if (f < 0)
		; /* said */
	else if (f == 1)
		fprintf(stderr, "veil passwd: no user '%s' in %s\n", user, path);
	else if (what)
		fprintf(stderr, "veil passwd: user '%s' in %s: not an Argon2id hash (%s), which Veil cannot verify; "
		                "re-create this user with veil passwd\n", user, path, what);
	else if (crypto_pwhash_str_verify(hash, pw, strlen(pw)) == 0)
		rc = VEIL_EXIT_OK;
	else
		fprintf(stderr, "veil passwd: password does not match\n");
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

/* The command line, in Veil's words or mosquitto_passwd's. */
struct args {
	const char *path, *user, *password;  /* password: -b */
	enum edit_kind kind;
	bool verify, create, must_exist;
};

static int parse_args(int argc, char **argv, struct args *a)
{
	memset(a, 0, sizeof(*a));
	if (argc == 4 && (!strcmp(argv[1], "add") || !strcmp(argv[1], "delete") || !strcmp(argv[1], "verify"))) {
		a->kind = !strcmp(argv[1], "delete") ? EDIT_DELETE : EDIT_SET;
		a->verify = !strcmp(argv[1], "verify");
		a->path = argv[2];
		a->user = argv[3];
		return 0;
	}
	bool batch = false, del = false, upgrade = false;
	int ch;
	optind = 1;
	opterr = 0;
	while ((ch = getopt(argc, argv, "+bcDUH:")) != -1) {
		switch (ch) {
		case 'b': batch = true; break;
		case 'c': a->create = true; break;
		case 'D': del = true; break;
		case 'U': upgrade = true; break;
		case 'H':
			fprintf(stderr, "veil passwd: -H %s: Veil hashes with Argon2id only (the plugin verifies nothing "
			                "else)\n", optarg);
			return -1;
		default: return -1;
		}
	}
	int n = argc - optind;
	char **pos = argv + optind;
	if (upgrade) {
		if (batch || del || a->create || n != 1)
			return -1;
		a->kind = EDIT_UPGRADE;
		a->path = pos[0];
		a->must_exist = true;
		return 0;
	}
	if ((del && (batch || a->create)) || n != (batch ? 3 : 2))
		return -1;
	a->kind = del ? EDIT_DELETE : EDIT_SET;
	a->path = pos[0];
	a->user = pos[1];
	a->password = batch ? pos[2] : NULL;
	a->must_exist = !a->create; /* as mosquitto_passwd: -c makes a file */
	return 0;
}

int veil_cmd_passwd(int argc, char **argv)
{
	if (argc >= 2 && (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h"))) {
		usage(stdout);
		return VEIL_EXIT_OK;
	}
	struct args a;
	if (parse_args(argc, argv, &a) != 0 || !a.path || (a.kind != EDIT_UPGRADE && !a.user)) {
		usage(stderr);
		return VEIL_EXIT_USAGE;
	}
	if (a.user) {
		const char *bad = veil__name_why(a.user, VEIL__NAME_PASSWD_USER);
		if (bad) {
			fprintf(stderr, "veil passwd: user name %s (docs/PROTOCOL.md section 3)\n", bad);
			return VEIL_EXIT_USAGE;
		}
	}
	if (a.must_exist && access(a.path, F_OK) != 0) {
		fprintf(stderr, "veil passwd: %s: %s (-c creates it)\n", a.path, strerror(errno));
		return VEIL_EXIT_FAIL;
	}
	struct edit e = { .kind = a.kind, .user = a.user, .create = a.create };
	if (a.kind == EDIT_UPGRADE || a.kind == EDIT_DELETE) {
		if (rewrite(a.path, &e) != 0)
			return VEIL_EXIT_FAIL;
		if (a.kind == EDIT_UPGRADE) {
			fprintf(stderr, "veil passwd: %s: %d plain-text password(s) hashed\n", a.path, e.found);
			return VEIL_EXIT_OK;
		}
		if (!e.found) {
			fprintf(stderr, "veil passwd: no user '%s' in %s\n", a.user, a.path);
			return VEIL_EXIT_FAIL;
		}
		return VEIL_EXIT_OK;
	}
	char pw[PW_MAX];
	char hash[crypto_pwhash_STRBYTES];
	int rc = VEIL_EXIT_FAIL;
	if (a.password) {
		if (snprintf(pw, sizeof(pw), "%s", a.password) >= (int)sizeof(pw)) {
			fprintf(stderr, "veil passwd: password longer than %u bytes\n", PW_MAX - 1);
			goto out;
		}
	} else if (cli_read_password("passwd", pw, sizeof(pw), !a.verify) != 0) {
		fprintf(stderr, "veil passwd: cannot read the password\n");
		goto out;
	}
	if (a.verify) {
		rc = verify(a.path, a.user, pw);
		goto out;
	}
	if (pw[0] == '\0') {
		fprintf(stderr, "veil passwd: empty password\n");
		goto out;
	}
	if (hash_password(pw, hash) != 0)
		goto out;
	e.hash = hash;
	if (rewrite(a.path, &e) == 0) {
		fprintf(stderr, "veil passwd: %s '%s'\n", e.found ? "updated" : "added", a.user);
		rc = VEIL_EXIT_OK;
	}
out:
	sodium_memzero(pw, sizeof(pw));
	sodium_memzero(hash, sizeof(hash));
	return rc;
}

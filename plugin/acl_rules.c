/*
 * ACL rules parser (see acl_rules.h). Line handling copies Mosquitto
 * 2.0.11's aclfile__parse so an unchanged acl_file means the same thing:
 * trailing white space is stripped, '#' in the first column starts a comment
 * (no trailing comments: this is Mosquitto's format, not a Veil one), words
 * are separated by spaces only (a tab is an ordinary character: inside the
 * first word it makes the line invalid, after it it belongs to a word or the
 * topic, as in Mosquitto), the topic is the rest of the line with blanks
 * trimmed (it may contain spaces), "topic x" alone means readwrite on x, and
 * a username is the rest of the `user` line. Any error refuses the whole file.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "acl_rules.h"

struct vp_owner {
	char *name;
	bool role;
	struct vp_topic_node *root;
	struct vp_owner *next;
};

enum owner_kind { OWNER_ANON, OWNER_USER, OWNER_ROLE };

static void fail(char *err, size_t errlen, const char *name, size_t line, const char *fmt, ...)
	__attribute__((format(printf, 5, 6)));

static void fail(char *err, size_t errlen, const char *name, size_t line, const char *fmt, ...)
{
	if (!err || errlen == 0)
		return;
	int k = snprintf(err, errlen, "%s:%zu: ", name, line);
	if (k < 0 || (size_t)k >= errlen)
		return;
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err + k, errlen - (size_t)k, fmt, ap);
	va_end(ap);
}

static size_t name_hash(const char *s, size_t n, bool role)
{
	uint64_t h = role ? 0x9E3779B97F4A7C15ULL : 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++) {
		h ^= (unsigned char)s[i];
		h *= 1099511628211ULL;
	}
	return (size_t)(h ^ (h >> 31));
}

static struct vp_owner *owner_find(const struct vp_acl_rules *r, const char *name, size_t n, bool role)
{
	if (!r->owners)
		return NULL;
	for (struct vp_owner *o = r->owners[name_hash(name, n, role) & (r->nowners_buckets - 1)]; o; o = o->next) {
		if (o->role == role && strlen(o->name) == n && memcmp(o->name, name, n) == 0)
			return o;
	}
	return NULL;
}

static void owners_grow(struct vp_acl_rules *r)
{
	size_t nb = r->nowners_buckets ? r->nowners_buckets * 2 : 64;
	struct vp_owner **b = calloc(nb, sizeof(*b));
	if (!b)
		return;
	for (size_t i = 0; i < r->nowners_buckets; i++) {
		struct vp_owner *o = r->owners[i];
		while (o) {
			struct vp_owner *next = o->next;
			size_t k = name_hash(o->name, strlen(o->name), o->role) & (nb - 1);
			o->next = b[k];
			b[k] = o;
			o = next;
		}
	}
	free(r->owners);
	r->owners = b;
	r->nowners_buckets = nb;
}

/* The list of a user or role, created on first use (Mosquitto merges
 * repeated `user` blocks with the same name). */
static struct vp_topic_node *owner_root(struct vp_acl_rules *r, const char *name, bool role)
{
	size_t n = strlen(name);
	struct vp_owner *o = owner_find(r, name, n, role);
	if (o)
		return o->root;
	size_t count = r->nusers + r->nroles;
	if (count + 1 > r->nowners_buckets)
		owners_grow(r);
	if (!r->owners)
		return NULL;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->name = strdup(name);
	o->root = vp_trie__new_root(r->trie);
	if (!o->name || !o->root) {
		free(o->name);
		free(o);
		return NULL;
	}
	o->role = role;
	size_t k = name_hash(name, n, role) & (r->nowners_buckets - 1);
	o->next = r->owners[k];
	r->owners[k] = o;
	if (role)
		r->nroles++;
	else
		r->nusers++;
	return o->root;
}

void vp_acl_rules__free(struct vp_acl_rules **rp)
{
	if (!rp || !*rp)
		return;
	struct vp_acl_rules *r = *rp;
	for (size_t i = 0; i < r->nowners_buckets; i++) {
		struct vp_owner *o = r->owners[i];
		while (o) {
			struct vp_owner *next = o->next;
			free(o->name);
			free(o);
			o = next;
		}
	}
	free(r->owners);
	vp_trie__free(&r->trie);
	free(r);
	*rp = NULL;
}

const struct vp_topic_node *vp_acl_rules__user(const struct vp_acl_rules *r, const char *username)
{
	if (!r || !username)
		return NULL;
	struct vp_owner *o = owner_find(r, username, strlen(username), false);
	return o ? o->root : NULL;
}

const struct vp_topic_node *vp_acl_rules__role(const struct vp_acl_rules *r, const char *name, size_t n)
{
	if (!r || !name)
		return NULL;
	struct vp_owner *o = owner_find(r, name, n, true);
	return o ? o->root : NULL;
}

/* misc__trimblanks: leading and trailing isspace. */
static char *trim(char *s)
{
	while (*s && isspace((unsigned char)*s))
		s++;
	size_t n = strlen(s);
	while (n > 0 && isspace((unsigned char)s[n - 1]))
		s[--n] = '\0';
	return s;
}

struct access {
	uint8_t allow;
	uint8_t attrs;
	bool deny;
};

/* Mosquitto's words, then the comma-separated extension list. */
static int parse_access(const char *s, struct access *a, char *bad, size_t badlen)
{
	memset(a, 0, sizeof(*a));
	if (!strcmp(s, "read")) {
		a->allow = VP_ACC_READ;
		return 0;
	}
	if (!strcmp(s, "write")) {
		a->allow = VP_ACC_WRITE;
		return 0;
	}
	if (!strcmp(s, "readwrite")) {
		a->allow = VP_ACC_READ | VP_ACC_WRITE;
		return 0;
	}
	if (!strcmp(s, "deny")) {
		a->deny = true;
		return 0;
	}
	bool any_access = false;
	const char *p = s;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char word[16];
		if (n == 0 || n >= sizeof(word)) {
			snprintf(bad, badlen, "invalid access \"%.40s\"", s);
			return -1;
		}
		memcpy(word, p, n);
		word[n] = '\0';
		if (!strcmp(word, "read")) {
			a->allow |= VP_ACC_READ;
			any_access = true;
		} else if (!strcmp(word, "write")) {
			a->allow |= VP_ACC_WRITE;
			any_access = true;
		} else if (!strcmp(word, "readwrite")) {
			a->allow |= VP_ACC_READ | VP_ACC_WRITE;
			any_access = true;
		} else if (!strcmp(word, "subscribe")) {
			a->allow |= VP_ACC_SUBSCRIBE;
			any_access = true;
		} else if (!strcmp(word, "deny")) {
			a->deny = true;
			any_access = true;
		} else if (!strcmp(word, "encrypted")) {
			a->attrs |= VP_ATTR_ENCRYPTED;
		} else if (!strcmp(word, "signed")) {
			a->attrs |= VP_ATTR_ENCRYPTED | VP_ATTR_SIGNED; /* a signature is over an envelope */
		} else {
			snprintf(bad, badlen, "invalid access \"%.40s\"", word);
			return -1;
		}
		p += n;
		if (*p == ',')
			p++;
		if (end && !*p) {
			snprintf(bad, badlen, "invalid access \"%.40s\" (trailing comma)", s);
			return -1;
		}
	}
	if (!any_access) {
		snprintf(bad, badlen, "no access (read, write, readwrite, subscribe or deny) in \"%.40s\"", s);
		return -1;
	}
	if (a->deny && (a->allow || a->attrs)) {
		snprintf(bad, badlen, "deny cannot be combined with other access words in \"%.40s\"", s);
		return -1;
	}
	return 0;
}

struct parser {
	struct vp_acl_rules *r;
	enum owner_kind kind;
	struct vp_topic_node *owner; /* current user/role list */
	const char *name;
	size_t line;
	char *err;
	size_t errlen;
};

static int add_rule(struct parser *ps, bool pattern, const char *topic, const struct access *a)
{
	struct vp_acl_rules *r = ps->r;
	struct vp_topic_node *root;
	bool subst = pattern;
	if (pattern && ps->kind != OWNER_ROLE) {
		/* Mosquitto: pattern lines apply to every client wherever they are. */
		if (!r->patterns)
			r->patterns = vp_trie__new_root(r->trie);
		root = r->patterns;
		r->npatterns++;
	} else if (ps->kind == OWNER_ANON) {
		if (!r->anon)
			r->anon = vp_trie__new_root(r->trie);
		root = r->anon;
	} else {
		root = ps->owner;
	}
	if (!root || vp_trie__insert(r->trie, root, topic, subst, a->allow, a->deny, a->attrs) != 0) {
		fail(ps->err, ps->errlen, ps->name, ps->line, "out of memory");
		return -1;
	}
	if (a->attrs) {
		if (!r->protect)
			r->protect = vp_trie__new_root(r->trie);
		if (!r->protect || vp_trie__insert(r->trie, r->protect, topic, subst, 0, false, a->attrs) != 0) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "out of memory");
			return -1;
		}
		r->has_attrs = true;
	}
	r->nrules++;
	return 0;
}

static int parse_line(struct parser *ps, char *buf)
{
	size_t slen = strlen(buf);
	while (slen > 0 && isspace((unsigned char)buf[slen - 1]))
		buf[--slen] = '\0';
	if (buf[0] == '#')
		return 0;
	char *save = NULL;
	char *tok = strtok_r(buf, " ", &save);
	if (!tok)
		return 0;
	if (!strcmp(tok, "topic") || !strcmp(tok, "pattern")) {
		bool pattern = tok[0] == 'p';
		char *access_s = strtok_r(NULL, " ", &save);
		if (!access_s) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "empty topic");
			return -1;
		}
		char *rest = strtok_r(NULL, "", &save);
		char *topic;
		struct access a = { VP_ACC_READ | VP_ACC_WRITE, 0, false };
		if (rest) {
			topic = trim(rest);
			char bad[160];
			if (parse_access(access_s, &a, bad, sizeof(bad)) != 0) {
				fail(ps->err, ps->errlen, ps->name, ps->line, "%s", bad);
				return -1;
			}
		} else {
			topic = access_s;
		}
		if (!*topic || !vp_topic__valid_filter(topic)) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "invalid topic \"%.80s\"", topic);
			return -1;
		}
		return add_rule(ps, pattern, topic, &a);
	}
	if (!strcmp(tok, "user") || !strcmp(tok, "role")) {
		bool role = tok[0] == 'r';
		char *rest = strtok_r(NULL, "", &save);
		char *who = rest ? trim(rest) : NULL;
		if (!who || !*who) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "missing %s name", role ? "role" : "user");
			return -1;
		}
		if (role && (strchr(who, ',') || strchr(who, ' '))) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "role name \"%.80s\" contains ',' or ' '", who);
			return -1;
		}
		ps->owner = owner_root(ps->r, who, role);
		if (!ps->owner) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "out of memory");
			return -1;
		}
		ps->kind = role ? OWNER_ROLE : OWNER_USER;
		return 0;
	}
	fail(ps->err, ps->errlen, ps->name, ps->line, "invalid line \"%.40s\" (expected topic, pattern, user or role)",
	     tok);
	return -1;
}

int vp_acl_rules__parse(const char *name, const char *buf, size_t len, struct vp_acl_rules **out, char *err,
                        size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!name || (!buf && len) || !out)
		return -1;
	struct vp_acl_rules *r = calloc(1, sizeof(*r));
	char *line = malloc(VP_ACL_MAX_LINE + 1);
	if (!r || !line || vp_trie__new(&r->trie) != 0) {
		free(line);
		free(r);
		fail(err, errlen, name, 0, "out of memory");
		return -1;
	}
	struct parser ps = { r, OWNER_ANON, NULL, name, 0, err, errlen };
	size_t pos = 0;
	int rc = 0;
	while (pos < len && rc == 0) {
		ps.line++;
		const char *nl = memchr(buf + pos, '\n', len - pos);
		size_t n = nl ? (size_t)(nl - (buf + pos)) : len - pos;
		if (n > VP_ACL_MAX_LINE) {
			fail(err, errlen, name, ps.line, "line longer than %u bytes", VP_ACL_MAX_LINE);
			rc = -1;
			break;
		}
		if (memchr(buf + pos, '\0', n)) {
			fail(err, errlen, name, ps.line, "NUL byte in line");
			rc = -1;
			break;
		}
		memcpy(line, buf + pos, n);
		line[n] = '\0';
		rc = parse_line(&ps, line);
		pos += n + (nl ? 1 : 0);
	}
	free(line);
	if (rc != 0) {
		vp_acl_rules__free(&r);
		return -1;
	}
	*out = r;
	return 0;
}

int vp_acl_rules__load(const char *path, size_t max_bytes, struct vp_acl_rules **out, char *err, size_t errlen)
{
	if (!path)
		return -1;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		fail(err, errlen, path, 0, "cannot open: %s", strerror(errno));
		return -1;
	}
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
		fail(err, errlen, path, 0, "not a regular file");
		close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size > (uint64_t)max_bytes) {
		fail(err, errlen, path, 0, "file larger than %zu bytes", max_bytes);
		close(fd);
		return -1;
	}
	size_t size = (size_t)st.st_size;
	char *buf = malloc(size + 1);
	if (!buf) {
		fail(err, errlen, path, 0, "out of memory");
		close(fd);
		return -1;
	}
	size_t got = 0;
	while (got < size) {
		ssize_t k = read(fd, buf + got, size - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			break;
		got += (size_t)k;
	}
	close(fd);
	/* A file rewritten while we read it must not load half a policy. */
	if (got != size) {
		free(buf);
		fail(err, errlen, path, 0, "file changed while reading");
		return -1;
	}
	int rc = vp_acl_rules__parse(path, buf, size, out, err, errlen);
	free(buf);
	return rc;
}

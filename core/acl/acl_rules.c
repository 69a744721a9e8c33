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

#include "veil/error.h"
#include "../table.h" /* uthash with the keyed hash */
#include "../util.h"  /* the one file reader and line reader */
#include "acl_rules.h"

/* A `user` or `role` block's rule list, in the users or roles table. */
struct vp_owner {
	char *name;
	struct vp_topic_node *root;
	UT_hash_handle hh;
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

static struct vp_owner *owner_find(struct vp_owner *table, const char *name, size_t n)
{
	struct vp_owner *o = NULL;
	HASH_FIND(hh, table, name, n, o);
	return o;
}

/* The list of a user or role, created on first use (Mosquitto merges
 * repeated `user` blocks with the same name). */
static struct vp_topic_node *owner_root(struct vp_acl_rules *r, const char *name, bool role)
{
	struct vp_owner **table = role ? &r->roles : &r->users;
	size_t n = strlen(name);
	struct vp_owner *o = owner_find(*table, name, n);
	if (o)
		return o->root;
	o = calloc(1, sizeof(*o));
	if (!o)
		return NULL;
	o->name = strdup(name);
	o->root = vp_trie__new_root(r->trie);
	if (o->name && o->root)
		HASH_ADD_KEYPTR(hh, *table, o->name, n, o);
	if (!o->name || !o->root || !veil__table_added(o)) {
		free(o->name);
		free(o);
		return NULL; /* a root made above stays in the trie, freed with it */
	}
	if (role)
		r->nroles++;
	else
		r->nusers++;
	return o->root;
}

static void owners_free(struct vp_owner **table)
{
	struct vp_owner *o, *tmp;
	HASH_ITER(hh, *table, o, tmp) {
		HASH_DEL(*table, o);
		free(o->name);
		free(o);
	}
}

void vp_acl_rules__free(struct vp_acl_rules **rp)
{
	if (!rp || !*rp)
		return;
	struct vp_acl_rules *r = *rp;
	owners_free(&r->users);
	owners_free(&r->roles);
	vp_trie__free(&r->trie);
	free(r);
	*rp = NULL;
}

const struct vp_topic_node *vp_acl_rules__user(const struct vp_acl_rules *r, const char *username)
{
	if (!r || !username)
		return NULL;
	struct vp_owner *o = owner_find(r->users, username, strlen(username));
	return o ? o->root : NULL;
}

const struct vp_topic_node *vp_acl_rules__role(const struct vp_acl_rules *r, const char *name, size_t n)
{
	if (!r || !name)
		return NULL;
	struct vp_owner *o = owner_find(r->roles, name, n);
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
		return VEIL_OK;
	}
	if (!strcmp(s, "write")) {
		a->allow = VP_ACC_WRITE;
		return VEIL_OK;
	}
	if (!strcmp(s, "readwrite")) {
		a->allow = VP_ACC_READ | VP_ACC_WRITE;
		return VEIL_OK;
	}
	if (!strcmp(s, "deny")) {
		a->deny = true;
		return VEIL_OK;
	}
	bool any_access = false;
	const char *p = s;
	while (*p) {
		const char *end = strchr(p, ',');
		size_t n = end ? (size_t)(end - p) : strlen(p);
		char word[16];
		if (n == 0 || n >= sizeof(word)) {
			snprintf(bad, badlen, "invalid access \"%.40s\"", s);
			return VEIL_ERR_PARSE;
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
			return VEIL_ERR_PARSE;
		}
		p += n;
		if (*p == ',')
			p++;
		if (end && !*p) {
			snprintf(bad, badlen, "invalid access \"%.40s\" (trailing comma)", s);
			return VEIL_ERR_PARSE;
		}
	}
	if (!any_access) {
		snprintf(bad, badlen, "no access (read, write, readwrite, subscribe or deny) in \"%.40s\"", s);
		return VEIL_ERR_PARSE;
	}
	if (a->deny && (a->allow || a->attrs)) {
		snprintf(bad, badlen, "deny cannot be combined with other access words in \"%.40s\"", s);
		return VEIL_ERR_PARSE;
	}
	return VEIL_OK;
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

/* A pattern's filter for the protection trie: each whole "%c" or "%u"
 * level becomes "+". Protection is a property of the topic: a pattern
 * "write,encrypted factory/%c/#" protects every device's factory/<id>/#
 * against every publisher, not only a device's own against itself. Returns
 * a malloc'd string, NULL when out of memory. */
static char *protect_filter(const char *topic)
{
	char *f = strdup(topic);
	if (!f)
		return NULL;
	for (char *lv = f; lv;) {
		char *slash = strchr(lv, '/');
		size_t n = slash ? (size_t)(slash - lv) : strlen(lv);
		if (n == 2 && (!strncmp(lv, "%c", 2) || !strncmp(lv, "%u", 2))) {
			lv[0] = '+';
			memmove(lv + 1, lv + 2, strlen(lv + 2) + 1);
			slash = strchr(lv, '/');
		}
		lv = slash ? slash + 1 : NULL;
	}
	return f;
}

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
	if (!root || vp_trie__insert(r->trie, root, topic, subst, a->allow, a->deny, a->attrs) != VEIL_OK) {
		fail(ps->err, ps->errlen, ps->name, ps->line, "out of memory");
		return VEIL_ERR_NOMEM;
	}
	if (a->attrs) {
		if (!r->protect)
			r->protect = vp_trie__new_root(r->trie);
		char *pf = subst ? protect_filter(topic) : NULL;
		int rc = !r->protect || (subst && !pf)
		                 ? VEIL_ERR_NOMEM
		                 : vp_trie__insert(r->trie, r->protect, pf ? pf : topic, false, 0, false, a->attrs);
		free(pf);
		if (rc != VEIL_OK) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "out of memory");
			return VEIL_ERR_NOMEM;
		}
		r->has_attrs = true;
	}
	r->nrules++;
	return VEIL_OK;
}

static int parse_line(struct parser *ps, char *buf)
{
	size_t slen = strlen(buf);
	while (slen > 0 && isspace((unsigned char)buf[slen - 1]))
		buf[--slen] = '\0';
	if (buf[0] == '#')
		return VEIL_OK;
	char *save = NULL;
	char *tok = strtok_r(buf, " ", &save);
	if (!tok)
		return VEIL_OK;
	if (!strcmp(tok, "topic") || !strcmp(tok, "pattern")) {
		bool pattern = tok[0] == 'p';
		char *access_s = strtok_r(NULL, " ", &save);
		if (!access_s) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "empty topic");
			return VEIL_ERR_PARSE;
		}
		char *rest = strtok_r(NULL, "", &save);
		char *topic;
		struct access a = { VP_ACC_READ | VP_ACC_WRITE, 0, false };
		if (rest) {
			topic = trim(rest);
			char bad[160];
			if (parse_access(access_s, &a, bad, sizeof(bad)) != VEIL_OK) {
				fail(ps->err, ps->errlen, ps->name, ps->line, "%s", bad);
				return VEIL_ERR_PARSE;
			}
		} else {
			topic = access_s;
		}
		if (!*topic || !vp_topic__valid_filter(topic)) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "invalid topic \"%.80s\"", topic);
			return VEIL_ERR_PARSE;
		}
		/* Only a first level naming "$veil" reaches Veil's own topics (a
		 * wildcard there never matches a '$' topic); the plugin decides
		 * those itself, so a rule on them could only mislead. */
		if (!strncmp(topic, VP_VEIL_ROOT, sizeof(VP_VEIL_ROOT) - 1) &&
		    (topic[sizeof(VP_VEIL_ROOT) - 1] == '/' || topic[sizeof(VP_VEIL_ROOT) - 1] == '\0')) {
			fail(ps->err, ps->errlen, ps->name, ps->line,
			     "rule on Veil's own topics \"%.80s\": the plugin protects " VP_VEIL_ROOT "/... itself", topic);
			return VEIL_ERR_PARSE;
		}
		return add_rule(ps, pattern, topic, &a);
	}
	if (!strcmp(tok, "user") || !strcmp(tok, "role")) {
		bool role = tok[0] == 'r';
		char *rest = strtok_r(NULL, "", &save);
		char *who = rest ? trim(rest) : NULL;
		if (!who || !*who) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "missing %s name", role ? "role" : "user");
			return VEIL_ERR_PARSE;
		}
		if (role && (strchr(who, ',') || strchr(who, ' '))) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "role name \"%.80s\" contains ',' or ' '", who);
			return VEIL_ERR_PARSE;
		}
		ps->owner = owner_root(ps->r, who, role);
		if (!ps->owner) {
			fail(ps->err, ps->errlen, ps->name, ps->line, "out of memory");
			return VEIL_ERR_NOMEM;
		}
		ps->kind = role ? OWNER_ROLE : OWNER_USER;
		return VEIL_OK;
	}
	fail(ps->err, ps->errlen, ps->name, ps->line, "invalid line \"%.40s\" (expected topic, pattern, user or role)",
	     tok);
	return VEIL_ERR_PARSE;
}

int vp_acl_rules__parse(const char *name, const char *buf, size_t len, struct vp_acl_rules **out, char *err,
                        size_t errlen)
{
	if (err && errlen)
		err[0] = '\0';
	if (!name || (!buf && len) || !out)
		return VEIL_ERR_INVAL;
	struct vp_acl_rules *r = calloc(1, sizeof(*r));
	char *line = malloc(VP_ACL_MAX_LINE + 1);
	if (!r || !line || vp_trie__new(&r->trie) != VEIL_OK) {
		free(line);
		free(r);
		fail(err, errlen, name, 0, "out of memory");
		return VEIL_ERR_NOMEM;
	}
	struct parser ps = { r, OWNER_ANON, NULL, name, 0, err, errlen };
	/* Mosquitto's format: lines as they are, no Veil comment rule. */
	struct veil__lines it = { .text = buf, .len = len, .verbatim = true };
	enum veil__line ls;
	int rc = VEIL_OK;
	while (rc == VEIL_OK && (ls = veil__lines_next(&it, line, VP_ACL_MAX_LINE + 1)) != VEIL__LINE_END) {
		ps.line = it.lineno;
		if (ls == VEIL__LINE_TOO_LONG) {
			fail(err, errlen, name, ps.line, "line longer than %u bytes", VP_ACL_MAX_LINE);
			rc = VEIL_ERR_PARSE;
		} else if (ls == VEIL__LINE_NUL) {
			fail(err, errlen, name, ps.line, "NUL byte in line");
			rc = VEIL_ERR_PARSE;
		} else {
			rc = parse_line(&ps, line);
		}
	}
	free(line);
	if (rc != VEIL_OK) {
		vp_acl_rules__free(&r);
		return rc;
	}
	*out = r;
	return VEIL_OK;
}

int vp_acl_rules__load(const char *path, size_t max_bytes, struct vp_acl_rules **out, char *err, size_t errlen)
{
	if (!path)
		return VEIL_ERR_INVAL;
	struct veil__text t;
	int rc = veil__file_read(path, 0, max_bytes, &t, err, errlen);
	if (rc == VEIL_OK)
		rc = vp_acl_rules__parse(path, t.text, t.len, out, err, errlen);
	veil__text_free(&t);
	return rc;
}

// SPDX-License-Identifier: GPL-2.0
/*
 * --web.config.file (web_config.h). The YAML is read into libyaml's document tree and
 * walked; every mapping is checked against the keys mftrace supports, so that a typo or a
 * toolkit option mftrace would silently ignore (cipher_suites, http2, ...) is an error
 * rather than a weaker server than the file asked for.
 */
#include <crypt.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <yaml.h>
#include <gnutls/crypto.h>
#include <gnutls/gnutls.h>
#include "commands/web_config.h"

#define MAX_FILE (1 << 20) /* a config, a certificate chain or a key: far below a MiB */

/* The bcrypt hash of a random password thrown away: unknown users are checked against it, so that
 * the time taken does not tell which users exist. */
static const char dummy_hash[] = "$2b$10$kp0p1E2sx.ehk7PwryCnsOZbbvVUQUBsg5F6gm/9XFMYep/c8bvIC";

static int read_file(const char *path, char **out, char *err, size_t errlen)
{
	struct stat st;
	char *buf;
	ssize_t n;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fstat(fd, &st)) {
		snprintf(err, errlen, "cannot read %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE) {
		snprintf(err, errlen, "%s: not a regular file of at most 1 MiB", path);
		close(fd);
		return -1;
	}
	buf = malloc((size_t)st.st_size + 1);
	n = buf ? read(fd, buf, (size_t)st.st_size) : -1;
	close(fd);
	if (n != st.st_size) {
		snprintf(err, errlen, "cannot read %s: %s", path, n < 0 ? strerror(errno) : "short read");
		free(buf);
		return -1;
	}
	buf[n] = '\0';
	*out = buf;
	return 0;
}

struct walk {
	yaml_document_t *doc;
	const char *path;
	char *err;
	size_t errlen;
};

static int fail(struct walk *w, const yaml_node_t *n, const char *fmt, const char *a, const char *b)
{
	char msg[384];

	snprintf(msg, sizeof(msg), fmt, a, b);
	snprintf(w->err, w->errlen, "%s:%lu: %s", w->path, n ? (unsigned long)n->start_mark.line + 1 : 0ul, msg);
	return -1;
}

static const char *scalar(const yaml_node_t *n)
{
	return n && n->type == YAML_SCALAR_NODE ? (const char *)n->data.scalar.value : NULL;
}

/* A scalar value into dst (an empty value is refused). */
static int string(struct walk *w, const char *key, const yaml_node_t *v, char *dst, size_t cap)
{
	const char *s = scalar(v);

	if (!s || !s[0])
		return fail(w, v, "%s needs a string value%s", key, "");
	if (strlen(s) >= cap)
		return fail(w, v, "%s is too long%s", key, "");
	snprintf(dst, cap, "%s", s);
	return 0;
}

/* A path relative to the config file's folder, as the toolkit reads them. */
static void relative(const char *config, char *p, size_t cap)
{
	const char *slash = strrchr(config, '/');
	char tmp[PATH_MAX];

	if (p[0] == '/' || !slash)
		return;
	snprintf(tmp, sizeof(tmp), "%.*s/%s", (int)(slash - config), config, p);
	snprintf(p, cap, "%s", tmp);
}

static int tls_server_config(struct walk *w, const yaml_node_t *map, struct mft_web_config *c)
{
	static const char supported[] = "cert_file, key_file, client_auth_type, client_ca_file, min_version";

	if (map->type != YAML_MAPPING_NODE)
		return fail(w, map, "tls_server_config must be a mapping%s%s", "", "");
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
		const yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
		const char *k = scalar(kn), *v;
		char tmp[64];

		if (!k)
			return fail(w, kn, "a key in tls_server_config is not a string%s%s", "", "");
		if (!strcmp(k, "cert_file")) {
			if (string(w, k, vn, c->cert_file, sizeof(c->cert_file)))
				return -1;
		} else if (!strcmp(k, "key_file")) {
			if (string(w, k, vn, c->key_file, sizeof(c->key_file)))
				return -1;
		} else if (!strcmp(k, "client_ca_file")) {
			if (string(w, k, vn, c->client_ca_file, sizeof(c->client_ca_file)))
				return -1;
		} else if (!strcmp(k, "client_auth_type")) {
			if (string(w, k, vn, tmp, sizeof(tmp)))
				return -1;
			if (!strcmp(tmp, "NoClientCert"))
				c->client_auth = MFT_CLIENT_AUTH_NONE;
			else if (!strcmp(tmp, "VerifyClientCertIfGiven"))
				c->client_auth = MFT_CLIENT_AUTH_VERIFY_IF_GIVEN;
			else if (!strcmp(tmp, "RequireAndVerifyClientCert"))
				c->client_auth = MFT_CLIENT_AUTH_REQUIRE_VERIFY;
			else
				return fail(w, vn,
					    "client_auth_type '%s' is not supported (NoClientCert, "
					    "VerifyClientCertIfGiven, RequireAndVerifyClientCert)%s",
					    tmp, "");
		} else if (!strcmp(k, "min_version")) {
			if (string(w, k, vn, tmp, sizeof(tmp)))
				return -1;
			v = !strcmp(tmp, "TLS13")   ? "NORMAL:-VERS-ALL:+VERS-TLS1.3"
			    : !strcmp(tmp, "TLS12") ? "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"
						    : NULL;
			if (!v)
				return fail(w, vn, "min_version '%s' is not supported (TLS12, TLS13)%s", tmp, "");
			snprintf(c->priorities, sizeof(c->priorities), "%s", v);
		} else {
			return fail(w, kn, "unknown or unsupported key '%s' in tls_server_config (supported: %s)", k,
				    supported);
		}
	}
	if (!c->cert_file[0] || !c->key_file[0])
		return fail(w, map, "tls_server_config needs cert_file and key_file%s%s", "", "");
	if (c->client_auth != MFT_CLIENT_AUTH_NONE && !c->client_ca_file[0])
		return fail(w, map, "client_auth_type needs client_ca_file%s%s", "", "");
	if (c->client_auth == MFT_CLIENT_AUTH_NONE && c->client_ca_file[0])
		return fail(w, map, "client_ca_file needs a client_auth_type that verifies%s%s", "", "");
	c->tls = true;
	return 0;
}

static bool bcrypt_shaped(const char *h)
{
	return strlen(h) == 60 && h[0] == '$' && h[1] == '2' && strchr("aby", h[2]) && h[3] == '$';
}

static int basic_auth_users(struct walk *w, const yaml_node_t *map, struct mft_web_config *c)
{
	if (map->type != YAML_MAPPING_NODE)
		return fail(w, map, "basic_auth_users must be a mapping of user names to bcrypt hashes%s%s", "", "");
	for (yaml_node_pair_t *p = map->data.mapping.pairs.start; p < map->data.mapping.pairs.top; p++) {
		const yaml_node_t *kn = yaml_document_get_node(w->doc, p->key);
		const yaml_node_t *vn = yaml_document_get_node(w->doc, p->value);
		const char *k = scalar(kn);
		struct mft_web_user *u;

		if (!k || !k[0] || strchr(k, ':'))
			return fail(w, kn, "a user name must be a non-empty string without ':'%s%s", "", "");
		if (c->n_users == MFT_WEB_MAX_USERS)
			return fail(w, kn, "at most 64 users%s%s", "", "");
		for (int i = 0; i < c->n_users; i++)
			if (!strcmp(c->users[i].name, k))
				return fail(w, kn, "user '%s' is listed twice%s", k, "");
		u = &c->users[c->n_users];
		if (string(w, "a password hash", vn, u->hash, sizeof(u->hash)) ||
		    snprintf(u->name, sizeof(u->name), "%s", k) >= (int)sizeof(u->name))
			return fail(w, vn, "user '%.100s': a bcrypt hash is needed (and a name of at most 127 bytes)%s",
				    k, "");
		if (!bcrypt_shaped(u->hash))
			return fail(w, vn, "user '%.100s': not a bcrypt hash ($2a$, $2b$ or $2y$, 60 characters)%s", k,
				    "");
		c->n_users++;
	}
	return 0;
}

int mft_web_config_load(const char *path, struct mft_web_config *c, char *err, size_t errlen)
{
	yaml_parser_t parser;
	yaml_document_t doc;
	struct walk w = { &doc, path, err, errlen };
	yaml_node_t *root;
	char *text;
	int rc = -1;

	memset(c, 0, sizeof(*c));
	pthread_mutex_init(&c->lock, NULL);
	if (read_file(path, &text, err, errlen))
		return -1;
	yaml_parser_initialize(&parser);
	yaml_parser_set_input_string(&parser, (const unsigned char *)text, strlen(text));
	if (!yaml_parser_load(&parser, &doc)) {
		snprintf(err, errlen, "%s:%lu: not valid YAML: %s", path, (unsigned long)parser.problem_mark.line + 1,
			 parser.problem ? parser.problem : "parse error");
		yaml_parser_delete(&parser);
		free(text);
		return -1;
	}
	root = yaml_document_get_root_node(&doc);
	if (!root) { /* an empty file: the toolkit's defaults, plain HTTP without authentication */
		rc = 0;
		goto out;
	}
	if (root->type != YAML_MAPPING_NODE) {
		fail(&w, root, "the top level must be a mapping (tls_server_config, basic_auth_users)%s%s", "", "");
		goto out;
	}
	for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top; p++) {
		const yaml_node_t *kn = yaml_document_get_node(&doc, p->key);
		const yaml_node_t *vn = yaml_document_get_node(&doc, p->value);
		const char *k = scalar(kn);

		if (k && !strcmp(k, "tls_server_config")) {
			if (tls_server_config(&w, vn, c))
				goto out;
		} else if (k && !strcmp(k, "basic_auth_users")) {
			if (basic_auth_users(&w, vn, c))
				goto out;
		} else {
			fail(&w, kn,
			     "unknown or unsupported key '%s' (supported: tls_server_config, basic_auth_users)%s",
			     k ? k : "?", "");
			goto out;
		}
	}
	if (c->tls) {
		relative(path, c->cert_file, sizeof(c->cert_file));
		relative(path, c->key_file, sizeof(c->key_file));
		if (read_file(c->cert_file, &c->cert_pem, err, errlen) ||
		    read_file(c->key_file, &c->key_pem, err, errlen))
			goto out;
		if (c->client_ca_file[0]) {
			relative(path, c->client_ca_file, sizeof(c->client_ca_file));
			if (read_file(c->client_ca_file, &c->ca_pem, err, errlen))
				goto out;
		}
	}
	rc = 0;
out:
	yaml_document_delete(&doc);
	yaml_parser_delete(&parser);
	free(text);
	if (rc)
		mft_web_config_free(c);
	return rc;
}

void mft_web_config_free(struct mft_web_config *c)
{
	free(c->cert_pem);
	free(c->key_pem);
	free(c->ca_pem);
	c->cert_pem = c->key_pem = c->ca_pem = NULL;
}

static bool same(const void *a, const void *b, size_t n)
{
	const unsigned char *x = a, *y = b;
	unsigned char d = 0;

	for (size_t i = 0; i < n; i++)
		d |= x[i] ^ y[i];
	return !d;
}

bool mft_web_auth_ok(struct mft_web_config *c, const char *user, const char *password)
{
	static __thread struct crypt_data cd; /* 32 KiB: not on the stack */
	struct mft_web_user *u = NULL;
	unsigned char digest[32];
	const char *out;
	bool ok;

	for (int i = 0; i < c->n_users; i++)
		if (!strcmp(c->users[i].name, user))
			u = &c->users[i];
	if (gnutls_hash_fast(GNUTLS_DIG_SHA256, password, strlen(password), digest))
		return false;
	pthread_mutex_lock(&c->lock);
	ok = u && u->ok_cached && same(u->ok_digest, digest, sizeof(digest));
	pthread_mutex_unlock(&c->lock);
	if (ok)
		return true;
	memset(&cd, 0, sizeof(cd));
	out = crypt_r(password, u ? u->hash : dummy_hash, &cd);
	ok = u && out && out[0] != '*' && strlen(out) == strlen(u->hash) && same(out, u->hash, strlen(u->hash));
	if (ok) {
		pthread_mutex_lock(&c->lock);
		memcpy(u->ok_digest, digest, sizeof(digest));
		u->ok_cached = true;
		pthread_mutex_unlock(&c->lock);
	}
	return ok;
}

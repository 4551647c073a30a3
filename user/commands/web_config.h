/* SPDX-License-Identifier: GPL-2.0 */
/*
 * The exporter's --web.config.file, in the Prometheus exporter toolkit's YAML format
 * (parsed with libyaml): TLS (tls_server_config: cert_file, key_file, client_auth_type,
 * client_ca_file, min_version) and basic authentication (basic_auth_users: user -> bcrypt
 * hash, checked with libxcrypt's crypt_r). A key the toolkit has but mftrace does not
 * support, or one neither knows, is refused with a one-line error naming the key and line.
 */
#ifndef MFT_WEB_CONFIG_H
#define MFT_WEB_CONFIG_H

#include <limits.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>

#define MFT_WEB_MAX_USERS 64

enum mft_client_auth { MFT_CLIENT_AUTH_NONE, MFT_CLIENT_AUTH_VERIFY_IF_GIVEN, MFT_CLIENT_AUTH_REQUIRE_VERIFY };

struct mft_web_user {
	char name[128];
	char hash[128];              /* bcrypt: $2a$, $2b$ or $2y$ */
	unsigned char ok_digest[32]; /* SHA-256 of the password that last matched (a cache: bcrypt is slow) */
	bool ok_cached;
};

struct mft_web_config {
	bool tls;
	char cert_file[PATH_MAX], key_file[PATH_MAX], client_ca_file[PATH_MAX];
	char *cert_pem, *key_pem, *ca_pem; /* the files' contents, for libmicrohttpd */
	int client_auth;                   /* enum mft_client_auth */
	char priorities[128];              /* GnuTLS priority string ("" = libmicrohttpd's default) */
	struct mft_web_user users[MFT_WEB_MAX_USERS];
	int n_users;
	pthread_mutex_t lock; /* the users' caches */
};

/* Read and check path (the certificate and key files too). 0, or -1 with one line in err. */
int mft_web_config_load(const char *path, struct mft_web_config *c, char *err, size_t errlen);
void mft_web_config_free(struct mft_web_config *c);
/* Does user:password match a basic_auth_users entry? Unknown users cost a bcrypt too. */
bool mft_web_auth_ok(struct mft_web_config *c, const char *user, const char *password);

#endif

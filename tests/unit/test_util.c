/* The bottom floor's helpers that stand between mftrace and hostile input: secrets
 * redacted from command lines, names made safe for a terminal, output files that never
 * follow a link or clobber, and the hash index the readers of hostile files use. */
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>
#include "unit.h"
#include "base/util.h"

static const char *red(const char *s)
{
	static char buf[1024];

	return mft_redact(buf, sizeof(buf), s);
}

static void test_redact_qemu_options(void)
{
	CHECK_STR(red("qemu-system-x86_64 -object secret,id=sec0,data=hunter2,format=raw -m 512"),
		  "qemu-system-x86_64 -object secret,id=sec0,data=<redacted>,format=raw -m 512");
	/* ",," is a comma inside the value: all of it goes */
	CHECK_STR(red("-spice port=5900,password=abc,,def,disable-ticketing=off"),
		  "-spice port=5900,password=<redacted>,disable-ticketing=off");
	CHECK_STR(red("-iscsi user=me,password=pw -iscsi initiator-name=x"),
		  "-iscsi user=me,password=<redacted> -iscsi initiator-name=x");
	CHECK_STR(red("-blockdev driver=nbd,tls-creds=tls0,key-secret=sec0"),
		  "-blockdev driver=nbd,tls-creds=tls0,key-secret=<redacted>");
	CHECK_STR(red("-object tls-creds-psk,id=tls0,endpoint=server,dir=/etc/psk,PSK=abcd"),
		  "-object tls-creds-psk,id=tls0,endpoint=server,dir=/etc/psk,PSK=<redacted>");
	/* rbd's colon syntax: the key and whatever follows it up to the next comma */
	CHECK_STR(red("-drive file=rbd:pool/img:id=admin:key=AQBx/+==:conf=/etc/ceph.conf,format=raw"),
		  "-drive file=rbd:pool/img:id=admin:key=<redacted>,format=raw");
	/* a URL's user:password@ and its query */
	CHECK_STR(red("-drive file=https://alice:s3cret@example.org/d.img?token=t0k&x=1,if=none"),
		  "-drive file=https://alice:<redacted>@example.org/d.img?token=<redacted>,if=none");
	/* QEMU's JSON syntax, as libvirt writes it */
	CHECK_STR(
		red("-object {\"qom-type\":\"secret\",\"id\":\"s0\",\"data\": \"c2Vj\\\"cmV0\",\"format\":\"base64\"}"),
		"-object {\"qom-type\":\"secret\",\"id\":\"s0\",\"data\": \"<redacted>\",\"format\":\"base64\"}");
}

static void test_redact_leaves_the_rest(void)
{
	static const char *const same[] = {
		"qemu-system-x86_64 -name guest=vm1,debug-threads=on -M pc -incoming defer",
		"-device virtio-net,netdev=n0,mac=52:54:00:12:34:56 -k en-us",
		"-object secret,id=master0,keyid=none,file=/run/master.key,format=raw", /* keyid: a name */
		"monkey=1,passthrough=on,keys=3 file=/a:b:c",
		"http://example.org/no-userinfo:here",
		"",
	};

	for (size_t i = 0; i < sizeof(same) / sizeof(same[0]); i++)
		CHECK_STR(red(same[i]), same[i]);
}

static void test_redact_args(void)
{
	static const char args[] = "qemu\0-object\0secret,id=s,data=two words,format=raw\0-name\0vm 1";
	char buf[256], small[12];

	/* a value ends at its argument's end, spaces and all */
	CHECK_STR(mft_redact_args(buf, sizeof(buf), args, sizeof(args)),
		  "qemu -object secret,id=s,data=<redacted>,format=raw -name vm 1");
	CHECK_STR(mft_redact_args(buf, sizeof(buf), "password=a b\0", 13), "password=<redacted>");
	CHECK_STR(mft_redact_args(small, sizeof(small), args, sizeof(args)), "qemu -objec");
	CHECK_STR(mft_redact(small, sizeof(small), "data=xyz"), "data=<redac");
}

static void test_sanitize(void)
{
	char buf[64];

	CHECK_STR(mft_sanitize(buf, sizeof(buf),
			       "\x1b[31mred\x7f\xc2\x9b"
			       "2J\r\nvm"),
		  "?[31mred??2J??vm");
	CHECK_STR(mft_sanitize(buf, sizeof(buf), "v\xc3\xa9m"), "v\xc3\xa9m"); /* UTF-8 letters stay */
	CHECK_STR(mft_sanitize(buf, 4, "abcdef"), "abc");
}

static char dir[64];

static const char *path(const char *name)
{
	static char p[128];

	snprintf(p, sizeof(p), "%s/%s", dir, name);
	return p;
}

static void test_create_output(void)
{
	char err[256], target[128], got[16] = "";
	struct stat st;
	mode_t old = umask(022);
	int fd;

	snprintf(target, sizeof(target), "%s", path("precious"));
	fd = open(target, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	CHECK(fd >= 0 && write(fd, "keep", 4) == 4);
	close(fd);
	/* new file: created, 0640 */
	fd = mft_create_output(path("new"), false, err, sizeof(err));
	CHECK(fd >= 0);
	CHECK(fstat(fd, &st) == 0 && (st.st_mode & 07777) == 0640);
	close(fd);
	/* an existing file is not clobbered; --force replaces it */
	CHECK(mft_create_output(path("new"), false, err, sizeof(err)) < 0);
	CHECK(strstr(err, "already exists (--force replaces it)"));
	fd = mft_create_output(path("new"), true, err, sizeof(err));
	CHECK(fd >= 0);
	close(fd);
	/* a link is never followed: refused, or with force replaced itself */
	CHECK(symlink(target, path("link")) == 0);
	CHECK(mft_create_output(path("link"), false, err, sizeof(err)) < 0);
	fd = mft_create_output(path("link"), true, err, sizeof(err));
	CHECK(fd >= 0 && write(fd, "new", 3) == 3);
	close(fd);
	CHECK(lstat(path("link"), &st) == 0 && S_ISREG(st.st_mode));
	fd = open(target, O_RDONLY);
	CHECK(fd >= 0 && read(fd, got, sizeof(got)) == 4);
	close(fd);
	CHECK_STR(got, "keep");
	/* a dangling link to a file that does not exist yet is not followed either */
	snprintf(target, sizeof(target), "%s", path("would-be-created"));
	CHECK(symlink(target, path("dangling")) == 0);
	CHECK(mft_create_output(path("dangling"), false, err, sizeof(err)) < 0);
	CHECK(access(target, F_OK) != 0);
	/* a directory stays */
	CHECK(mkdir(path("d"), 0700) == 0);
	CHECK(mft_create_output(path("d"), true, err, sizeof(err)) < 0);
	CHECK(strstr(err, "is a directory"));
	umask(old);
}

struct items {
	const uint64_t *v;
};

static bool same_item(const void *ctx, size_t pos)
{
	(void)ctx;
	(void)pos;
	return true;
}

static void test_index(void)
{
	struct mft_index ix = { 0 };
	enum { N = 200000 };
	uint64_t *keys = malloc(N * sizeof(*keys));

	CHECK(keys);
	for (size_t i = 0; i < N; i++) {
		keys[i] = (uint64_t)i << 20; /* low bits all zero: the hash must spread them */
		CHECK(mft_index_set(&ix, keys[i], i, NULL, NULL) == 0);
	}
	CHECK_INT(ix.n, N);
	for (size_t i = 0; i < N; i++)
		CHECK_INT(mft_index_find(&ix, keys[i], NULL, NULL), i);
	CHECK(mft_index_find(&ix, 12345, NULL, NULL) == SIZE_MAX);
	CHECK(mft_index_set(&ix, keys[7], 99, same_item, NULL) == 0); /* replaces */
	CHECK_INT(ix.n, N);
	CHECK_INT(mft_index_find(&ix, keys[7], NULL, NULL), 99);
	mft_index_free(&ix);
	free(keys);
}

int main(void)
{
	snprintf(dir, sizeof(dir), "/tmp/mft-util-XXXXXX");
	if (!mkdtemp(dir))
		return 1;
	RUN(test_redact_qemu_options);
	RUN(test_redact_leaves_the_rest);
	RUN(test_redact_args);
	RUN(test_sanitize);
	RUN(test_create_output);
	RUN(test_index);
	{
		char cmd[128];

		snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
		if (system(cmd))
			return 1;
	}
	UNIT_EXIT();
}

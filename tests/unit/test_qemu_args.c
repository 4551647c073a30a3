/* A QEMU's command line read for its migration settings (user/collect/qemu_args.c), and
 * multifd-clean-tls-termination told from it and the QEMU version, without the monitor. */
#include "unit.h"
#include "collect/qemu_args.h"

#define PARSE(a, lit) mft_qemu_args_parse(lit, sizeof(lit), a) /* sizeof: the NULs included */

static void libvirt_style(void)
{
	static const char cmd[] = "/usr/bin/qemu-system-x86_64\0-name\0guest=db1,debug-threads=on\0-machine\0"
				  "pc-q35-9.2,usb=off,dump-guest-core=off\0-uuid\0"
				  "0f8fad5b-d9cb-469f-a165-70867728950e\0-object\0"
				  "{\"qom-type\":\"tls-creds-x509\",\"id\":\"objlibvirt_migrate_tls0\"}\0"
				  "-incoming\0defer";
	struct mft_qemu_args a;

	PARSE(&a, cmd);
	CHECK_STR(a.machine, "pc-q35-9.2");
	CHECK_STR(a.uuid, "0f8fad5b-d9cb-469f-a165-70867728950e");
	CHECK_STR(a.incoming, "defer");
	CHECK(a.tls_creds);
	CHECK_INT(a.clean_tls, -1);
}

static void forms(void)
{
	static const char c1[] = "qemu\0--machine\0type=pc-i440fx-10.0,accel=kvm\0--incoming\0unix:/run/mig.sock";
	static const char c2[] = "qemu\0-M\0q35\0-incoming\0tcp:127.0.0.1:4444\0-object\0tls-creds-psk,id=tls0,dir=/x";
	static const char c3[] = "qemu\0-machine\0accel=kvm\0-global\0migration.multifd-clean-tls-termination=off";
	static const char c4[] = "qemu\0-global\0driver=migration,property=multifd-clean-tls-termination,value=on";
	static const char c5[] = "qemu\0-uuid\0not-a-uuid\0-incoming\0{\"channel-type\":\"main\"}";
	static const char c6[] = "qemu\0-incoming\0fd:3\0-incoming\0tcp:x:1"; /* the first counts */
	static const char c7[] = "qemu\0-incoming";                           /* no value: nothing */
	struct mft_qemu_args a;

	PARSE(&a, c1);
	CHECK_STR(a.machine, "pc-i440fx-10.0");
	CHECK_STR(a.incoming, "unix");
	CHECK(!a.tls_creds);
	PARSE(&a, c2);
	CHECK_STR(a.machine, "q35");
	CHECK_STR(a.incoming, "tcp");
	CHECK(a.tls_creds);
	PARSE(&a, c3);
	CHECK_STR(a.machine, "");
	CHECK_INT(a.clean_tls, 0);
	PARSE(&a, c4);
	CHECK_INT(a.clean_tls, 1);
	PARSE(&a, c5);
	CHECK_STR(a.uuid, "");
	CHECK_STR(a.incoming, "channel");
	PARSE(&a, c6);
	CHECK_STR(a.incoming, "fd");
	PARSE(&a, c7);
	CHECK_STR(a.incoming, "");
	/* not NUL-terminated, cut in a value */
	mft_qemu_args_parse("qemu\0-machine\0pc-q35-10.0XXXX", 23, &a);
	CHECK_STR(a.machine, "pc-q35-10");
}

static const char *clean(const char *cmd, size_t n, const char *version)
{
	struct mft_qemu_args a;
	char why[160];

	mft_qemu_args_parse(cmd, n, &a);
	return mft_clean_tls_termination(&a, version, why, sizeof(why));
}

#define CLEAN(lit, v) clean(lit, sizeof(lit), v)

static void clean_tls_termination(void)
{
	/* QEMU 10.0: by machine type */
	CHECK_STR(CLEAN("qemu\0-machine\0pc-q35-10.0", "10.0.2 (Debian 1:10.0.2+ds-1~bpo12+1)"), "on");
	CHECK_STR(CLEAN("qemu\0-machine\0pc-i440fx-9.2", "10.0.2"), "off");
	CHECK_STR(CLEAN("qemu\0-M\0pc-i440fx-7.2", "10.0.2"), "off");
	CHECK_STR(CLEAN("qemu\0-M\0pc-q35-9.1", "10.1.0"), "off");
	CHECK_STR(CLEAN("qemu\0-M\0pc-q35-10.1", "10.1.0"), "on");
	CHECK_STR(CLEAN("qemu\0-M\0pc", "10.0.2"), "on");
	CHECK_STR(CLEAN("qemu\0-M\0q35", "10.0.2"), "on");
	CHECK_STR(CLEAN("qemu\0-incoming\0defer", "10.0.2"), "on"); /* x86's default: the newest pc */
	CHECK_STR(CLEAN("qemu\0-M\0microvm", "10.0.2"), "unknown");
	/* QEMU < 10.0: no such property */
	CHECK_STR(CLEAN("qemu\0-M\0pc-q35-7.2", "7.2.15 (Debian 1:7.2+dfsg-7+deb12u18)"), "off");
	CHECK_STR(CLEAN("qemu", "9.2.0"), "off");
	/* set by hand wins */
	CHECK_STR(CLEAN("qemu\0-M\0pc-q35-7.2\0-global\0migration.multifd-clean-tls-termination=on", "10.0.2"), "on");
	CHECK_STR(CLEAN("qemu\0-global\0migration.multifd-clean-tls-termination=false", "10.0.2"), "off");
	/* unknown version */
	CHECK_STR(CLEAN("qemu\0-M\0pc-q35-10.0", ""), "unknown");
	CHECK_STR(CLEAN("qemu\0-M\0pc-q35-10.0", "v10"), "unknown");
}

static void versions(void)
{
	int a, b;

	CHECK_INT(mft_qemu_version_parse("10.0.2 (Debian)", &a, &b), 0);
	CHECK_INT(a, 10);
	CHECK_INT(b, 0);
	CHECK_INT(mft_qemu_version_parse("7.2.15", &a, &b), 0);
	CHECK_INT(a * 100 + b, 702);
	CHECK_INT(mft_qemu_version_parse("x7.2", &a, &b), -1);
	CHECK_INT(mft_qemu_version_parse("7.", &a, &b), -1);
	CHECK_INT(mft_qemu_version_parse(NULL, &a, &b), -1);
	CHECK_INT(mft_qemu_version_parse("99999999999999999999.1", &a, &b), -1);
}

int main(void)
{
	RUN(libvirt_style);
	RUN(forms);
	RUN(clean_tls_termination);
	RUN(versions);
	UNIT_EXIT();
}

// SPDX-License-Identifier: GPL-2.0
/*
 * `mftrace report FILE...`: recordings replayed through the correlator live mode runs,
 * printed by the sinks live mode uses (text or JSON lines), or rendered as Chrome Trace
 * Event JSON or a self-contained HTML timeline. Several recordings (a source host's and a
 * destination host's) become one timeline on one clock (timeline.c).
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "base/util.h"
#include "commands/cli.h"
#include "commands/commands.h"
#include "present/output.h"
#include "store/recfile.h"
#include "store/timeline.h"

static const char usage[] =
	"Usage: mftrace report [FILE...] [-i FILE ...] [--format text|json|chrome|html] [-o OUT] [-q] [-w]\n"
	"\n"
	"Analyse recordings made by `mftrace record`, on any machine: the same correlator and\n"
	"the same verdicts as live mode. Given a source host's and a destination host's\n"
	"recordings of one migration, join them into one timeline: channels are matched by\n"
	"their TCP 4-tuple, the clocks aligned from the recorded CLOCK_REALTIME snapshots and\n"
	"then by cause and effect (a FIN is received after it was sent); the remaining\n"
	"uncertainty is stated. Damaged or cut files are read up to what is intact.\n"
	"Without a FILE, mftrace.data in the current folder (what `mftrace record` writes\n"
	"without -o).\n"
	"\n"
	"Options:\n"
	"  -i, --input FILE recording to read (repeat for several; the same as naming it)\n"
	"  -f, --format F   text (default: what live mode prints), json (JSON lines, as\n"
	"                   `mftrace --json`), chrome (Chrome Trace Event JSON: open it in\n"
	"                   ui.perfetto.dev), html (a self-contained page with an SVG timeline)\n"
	"  -j, --json       the same as --format json\n"
	"  -o, --output OUT write there instead of standard output: created with mode 0640,\n"
	"                   never through a symbolic link, never over an existing file\n"
	"      --force      replace an existing OUT (a link is replaced, not followed)\n"
	"  -q, --quiet      text and json: no event lines, only the verdicts\n"
	"  -w, --wide       text: every column of the verdict table (see mftrace --help)\n"
	"  -h, --help       this help\n"
	"\n"
	"Exit status: 0, 1 if a file could not be read at all (the others are still reported),\n"
	"2 if a migration was flagged (a shutdown beat a final read).\n";


static void lost_text(const struct mft_recording *rec, char *buf, size_t len)
{
	const struct mft_rec_counters *c = &rec->counters;

	snprintf(buf, len,
		 "%" PRIu64 " lost in the kernel (ring buffer full), %" PRIu64 " sockets untracked, %" PRIu64
		 " malformed, %" PRIu64 " overwritten by the flight recorder, %" PRIu64
		 " not written (I/O errors), %" PRIu64 " damaged records skipped",
		 c->rb_dropped, c->sockmap_full, c->bad_events, c->events_overwritten, c->events_unwritten,
		 rec->corrupt_regions + rec->bad_records);
}

static bool lost_any(const struct mft_recording *rec)
{
	const struct mft_rec_counters *c = &rec->counters;

	return c->rb_dropped || c->sockmap_full || c->bad_events || c->events_overwritten || c->events_unwritten ||
	       rec->corrupt_regions || rec->bad_records;
}

/* Text from a recording, made safe for a terminal: a file is input from elsewhere. */
static const char *safe(const char *s)
{
	static char buf[8][4096];
	static unsigned next;

	return mft_sanitize(buf[next++ % 8], sizeof(buf[0]), s);
}

/* "probes: 31 attached (kernel: shutdown tracepoint, close tracepoint); unavailable: ..." */
static void probes_text(FILE *f, const struct mft_recording *r)
{
	size_t ok = 0;
	bool first = true;

	for (size_t k = 0; k < r->n_probes; k++)
		ok += r->probes[k].ok;
	fprintf(f, "    probes: %zu attached", ok);
	for (size_t k = 0; k < r->n_probes; k++)
		if (!r->probes[k].pid && r->probes[k].ok &&
		    (!strcmp(r->probes[k].what, "shutdown") || !strcmp(r->probes[k].what, "close")))
			fprintf(f, ", %s by %s", safe(r->probes[k].what), safe(r->probes[k].mech));
	for (size_t k = 0; k < r->n_probes; k++)
		if (!r->probes[k].ok) {
			fprintf(f, "%s%s (%s)", first ? "; unavailable: " : ", ", safe(r->probes[k].what),
				safe(r->probes[k].mech));
			first = false;
		}
	fputc('\n', f);
}

static void summary_text(FILE *f, const struct mft_timeline *tl)
{
	struct mft_output o = { .mono_to_real = tl->mono_to_real };

	fprintf(f, "mftrace report: %d recording%s\n", tl->n_hosts, tl->n_hosts == 1 ? "" : "s");
	for (int i = 0; i < tl->n_hosts; i++) {
		const struct mft_tl_host *h = &tl->hosts[i];
		const struct mft_recording *r = &h->rec;
		char lost[512], from[32] = "?", to[32] = "?";

		if (r->n_events) {
			mft_fmt_clock(&o, (uint64_t)((int64_t)r->t_first_event + h->align.offset), from, sizeof(from));
			mft_fmt_clock(&o, (uint64_t)((int64_t)r->t_last_event + h->align.offset), to, sizeof(to));
		}
		fprintf(f, "  %s: host %s, kernel %s, format %u.%u%s, %s mode\n", safe(h->path), safe(h->label),
			safe(r->host.kernel), r->major, r->minor, r->ring ? ", flight recorder" : "",
			r->host.tls_records ? "--tls-records" : "default");
		for (size_t k = 0; k < r->n_targets; k++)
			fprintf(f, "    pid %u%s %s: QEMU %s, GnuTLS %s%s\n", r->targets[k].pid + h->pid_add,
				r->targets[k].incoming ? " (incoming)" : "", safe(r->targets[k].name),
				r->targets[k].qemu_version[0] ? safe(r->targets[k].qemu_version) : "?",
				r->targets[k].gnutls_version[0] ? safe(r->targets[k].gnutls_version) : "not mapped",
				r->targets[k].removed ? ", tracing ended" : "");
		probes_text(f, r);
		lost_text(r, lost, sizeof(lost));
		fprintf(f, "    %zu events from %s to %s%s; %s\n", r->n_events, from, to,
			r->n_carried ? " (openings carried over included)" : "", lost);
		fprintf(f, "    %s\n", r->stopped);
		for (int k = 0; k < r->n_problems; k++)
			fprintf(f, "    problem: %s\n", safe(r->problems[k]));
		fprintf(f, "    clock: %s\n", safe(h->align.text));
	}
	for (int i = 0; i < tl->n_notes; i++)
		fprintf(f, "  note: %s\n", safe(tl->notes[i]));
	fflush(f);
}

static void json_num_or_null(FILE *f, const char *name, bool have, int64_t v)
{
	if (have)
		fprintf(f, ",\"%s\":%" PRId64, name, v);
	else
		fprintf(f, ",\"%s\":null", name);
}

/* "name":"value" pairs (names and values alternate in kv), separated by commas */
static void json_strs(FILE *f, const char *const *kv, size_t n)
{
	for (size_t i = 0; i + 1 < n; i += 2) {
		fprintf(f, "%s\"%s\":", i ? "," : "", kv[i]);
		mft_json_str(f, kv[i + 1]);
	}
}

static void summary_json(FILE *f, const struct mft_timeline *tl)
{
	static char cmd[sizeof(((struct mft_rec_target *)0)->cmdline) * 2];

	for (int i = 0; i < tl->n_hosts; i++) {
		const struct mft_tl_host *h = &tl->hosts[i];
		const struct mft_recording *r = &h->rec;
		const struct mft_rec_counters *c = &r->counters;
		const struct mft_tl_align *a = &h->align;

		fputs("{\"type\":\"recording\",", f);
		json_strs(f,
			  (const char *const[]){ "file", h->path, "host", h->label, "kernel", r->host.kernel, "boot_id",
						 r->host.boot_id },
			  8);
		fprintf(f,
			",\"format\":\"%u.%u\",\"flight_recorder\":%s,\"tls_records\":%s,\"events\":%zu,\"carried\":%zu",
			r->major, r->minor, r->ring ? "true" : "false", r->host.tls_records ? "true" : "false",
			r->n_events, r->n_carried);
		fprintf(f,
			",\"lost\":{\"ring_buffer\":%" PRIu64 ",\"untracked_sockets\":%" PRIu64
			",\"malformed\":%" PRIu64 ",\"overwritten\":%" PRIu64 ",\"unwritten\":%" PRIu64
			",\"damaged_records\":%" PRIu64 "}",
			c->rb_dropped, c->sockmap_full, c->bad_events, c->events_overwritten, c->events_unwritten,
			r->corrupt_regions + r->bad_records);
		fprintf(f, ",\"clean_end\":%s,\"end_offset\":%" PRIu64 ",\"file_size\":%" PRIu64 ",\"stopped\":",
			r->clean_end ? "true" : "false", r->end_offset, r->file_size);
		mft_json_str(f, r->stopped);
		fputs(",\"problems\":[", f);
		for (int k = 0; k < r->n_problems; k++) {
			fputs(k ? "," : "", f);
			mft_json_str(f, r->problems[k]);
		}
		fputs("],\"targets\":[", f);
		for (size_t k = 0; k < r->n_targets; k++) {
			fprintf(f, "%s{\"pid\":%u,\"name\":", k ? "," : "", r->targets[k].pid + h->pid_add);
			mft_json_str(f, r->targets[k].name);
			fputs(",\"qemu_version\":", f);
			mft_json_str(f, r->targets[k].qemu_version);
			fputs(",\"gnutls_version\":", f);
			mft_json_str(f, r->targets[k].gnutls_version);
			fputs(",\"cmdline\":", f); /* redacted again: the file may come from an older mftrace */
			mft_json_str(f, mft_redact(cmd, sizeof(cmd), r->targets[k].cmdline));
			fputc('}', f);
		}
		fputs("],\"probes\":[", f);
		for (size_t k = 0; k < r->n_probes; k++) {
			const struct mft_rec_probe *p = &r->probes[k];

			fprintf(f, "%s{\"pid\":%u,\"what\":", k ? "," : "", p->pid ? p->pid + h->pid_add : 0);
			mft_json_str(f, p->what);
			fputs(",\"mechanism\":", f);
			mft_json_str(f, p->mech);
			fprintf(f, ",\"attached\":%s,\"required\":%s,\"why\":", p->ok ? "true" : "false",
				p->required ? "true" : "false");
			mft_json_str(f, p->why);
			fputc('}', f);
		}
		fprintf(f, "],\"clock\":{\"method\":\"%s\",\"offset_ns\":%" PRId64 ",\"against\":%d,\"same_clock\":%s",
			a->method ? a->method : "", a->offset, a->against, a->same_clock ? "true" : "false");
		json_num_or_null(f, "realtime_offset_ns", a->have_realtime, a->realtime_offset);
		json_num_or_null(f, "bound_lo_ns", a->have_lo, a->lo);
		json_num_or_null(f, "bound_hi_ns", a->have_hi, a->hi);
		fputs(",\"bound_lo_by\":", f);
		mft_json_str(f, a->lo_why);
		fputs(",\"bound_hi_by\":", f);
		mft_json_str(f, a->hi_why);
		fprintf(f, ",\"connections\":%d,\"constraints\":%d,\"text\":", a->n_pairs, a->n_constraints);
		mft_json_str(f, a->text);
		fputs("}}\n", f);
	}
	for (int i = 0; i < tl->n_notes; i++) {
		fputs("{\"type\":\"note\",\"text\":", f);
		mft_json_str(f, tl->notes[i]);
		fputs("}\n", f);
	}
	fflush(f);
}

int mft_cmd_report(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "format", required_argument, NULL, 'f' },
		{ "json", no_argument, NULL, 'j' },
		{ "output", required_argument, NULL, 'o' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "wide", no_argument, NULL, 'w' },
		{ "force", no_argument, NULL, 'F' },
		{ "input", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	static struct mft_timeline tl;
	struct mft_output rep = { 0 };
	int fmt = MFT_FMT_TEXT;
	const char *out_path = NULL;
	bool quiet = false, wide = false, force = false;
	int opt, unreadable = 0, rc = 0, n_files = 0;
	const char **files = calloc((size_t)argc + 1, sizeof(*files)); /* -i FILE and FILE: at most argc */
	FILE *out = stdout;

	opterr = 0;
	optind = 1;
	if (!files) {
		fprintf(stderr, "mftrace: out of memory\n");
		return 1;
	}
	while ((opt = getopt_long(argc, argv, ":f:ji:o:qwh", longopts, NULL)) != -1) {
		switch (opt) {
		case 'f':
			if (mft_cli_format(optarg, true, &fmt)) {
				free(files);
				return 1;
			}
			break;
		case 'j': fmt = MFT_FMT_JSON; break;
		case 'w': wide = true; break;
		case 'o': out_path = optarg; break;
		case 'q': quiet = true; break;
		case 'F': force = true; break;
		case 'i': files[n_files++] = optarg; break;
		case 'h':
			fputs(usage, stdout);
			free(files);
			return 0;
		default: free(files); return mft_cli_option_error("report", opt, argv);
		}
	}
	for (int i = optind; i < argc; i++)
		files[n_files++] = argv[i];
	if (!n_files)
		files[n_files++] = "mftrace.data";
	argv = (char **)files; /* the names below: argv[i] */
	mft_tl_init(&tl);
	/* the renderers draw every migration at the end; text and JSON are written as the
	 * replay goes, so that nothing but the live channels is held */
	tl.keep = fmt == MFT_FMT_CHROME || fmt == MFT_FMT_HTML;
	for (int i = 0; i < n_files; i++) {
		struct mft_recording rec;
		const struct mft_recording *r;
		char lost[512];
		int added = tl.n_hosts == MFT_TL_MAX_HOSTS ? -2 : mft_tl_add_file(&tl, argv[i], &rec);

		if (added == -1) {
			fprintf(stderr, "mftrace: %s: %s\n", safe(argv[i]),
				rec.n_problems ? rec.problems[0] : "unreadable");
			mft_rec_free(&rec);
			unreadable++;
			continue;
		}
		if (added == -2) {
			fprintf(stderr, "mftrace: %s: at most %d recordings at once; skipped\n", argv[i],
				MFT_TL_MAX_HOSTS);
			unreadable++;
			continue;
		}
		r = &tl.hosts[tl.n_hosts - 1].rec;
		for (int k = 0; k < r->n_problems; k++)
			fprintf(stderr, "mftrace: %s: %s\n", safe(argv[i]), r->problems[k]);
		if (!r->clean_end)
			fprintf(stderr, "mftrace: %s: %s\n", argv[i], r->stopped);
		if (lost_any(r)) {
			lost_text(r, lost, sizeof(lost));
			fprintf(stderr, "mftrace: %s: events: %s\n", argv[i], lost);
		}
	}
	if (!tl.n_hosts) {
		fprintf(stderr, "mftrace: no readable recording\n");
		free(files);
		return 1;
	}
	if (out_path) {
		char err[512];
		int fd = mft_create_output(out_path, force, err, sizeof(err));

		if (fd < 0 || !(out = fdopen(fd, "w"))) {
			if (fd >= 0) {
				snprintf(err, sizeof(err), "cannot write %s: %s", out_path, strerror(errno));
				close(fd);
			}
			fprintf(stderr, "mftrace: %s\n", err);
			mft_tl_free(&tl);
			free(files);
			return 1;
		}
	}
	mft_tl_align(&tl);
	for (int i = 0; i < tl.n_notes; i++)
		fprintf(stderr, "mftrace: note: %s\n", safe(tl.notes[i]));
	rep.out = out;
	rep.json = fmt == MFT_FMT_JSON;
	rep.events = !quiet;
	rep.buffered = true; /* a file or a pipe: written in blocks, flushed at the end */
	rep.mono_to_real = tl.mono_to_real;
	mft_out_fit(&rep, wide);
	if (fmt == MFT_FMT_TEXT || fmt == MFT_FMT_JSON) {
		struct mft_sink sink = { .ctx = &rep, .event = mft_out_event, .migration = mft_out_migration };

		if (fmt == MFT_FMT_TEXT)
			summary_text(out, &tl);
		else
			summary_json(out, &tl);
		mft_tl_run(&tl, &sink);
	} else {
		mft_tl_run(&tl, NULL);
		for (size_t i = 0; i < tl.n_migs; i++)
			rep.flagged += tl.migs[i].m.verdict.flagged;
		rc = fmt == MFT_FMT_CHROME ? mft_tl_chrome(&tl, out) : mft_tl_html(&tl, out);
	}
	if (fflush(out) || rc || (out != stdout && fclose(out))) {
		fprintf(stderr, "mftrace: writing %s failed: %s\n", out_path ? out_path : "the output",
			strerror(errno));
		mft_tl_free(&tl);
		free(files);
		return 1;
	}
	mft_tl_free(&tl);
	free(files);
	return unreadable ? 1 : rep.flagged ? 2 : 0;
}

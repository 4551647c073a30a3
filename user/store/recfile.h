/* SPDX-License-Identifier: GPL-2.0 */
/*
 * Recordings: the versioned file format of `mftrace record` (docs/recording-format.md),
 * its writer (one growing file, or a flight recorder: a ring of segments in a file of
 * bounded size) and its reader. Plain C and POSIX file I/O, no libbpf: the unit tests and
 * the fuzzer link this file and base/util.c alone.
 */
#ifndef MFT_RECFILE_H
#define MFT_RECFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "mftrace.h"

#define MFT_REC_MAJOR 2 /* a reader refuses a larger major; it reads 1.x and 2.x */
#define MFT_REC_MINOR 0 /* a reader reads a larger minor (new record types and tail fields are skipped) */

#define MFT_REC_PREAMBLE_LEN 64
#define MFT_REC_HDR_LEN 16
#define MFT_REC_MAX_PAYLOAD (1u << 20)
#define MFT_REC_EVENT_LEN 168   /* the v1 event payload */
#define MFT_REC_EVENT2_MAX 256  /* the most bytes one event takes in a format-2 block */
#define MFT_REC_BLOCK_MAX 32768 /* a format-2 block of events is closed at this size... */
#define MFT_REC_BLOCK_CTX 64    /* ...or when it would hold a 65th (pid, sk) */
#define MFT_REC_MIN_SEGMENT 4096

/* Record types */
enum mft_rec_type {
	MFT_REC_SEGMENT = 1, /* first record of every segment: its sequence number */
	MFT_REC_HOST,        /* host name, kernel, boot id, tool version, mode */
	MFT_REC_CLOCK,       /* CLOCK_MONOTONIC (bpf ktime) <-> CLOCK_REALTIME */
	MFT_REC_TARGET,      /* a traced QEMU: pid, versions, command line */
	MFT_REC_PROBE,       /* one attach point and how it went */
	MFT_REC_COUNTERS,    /* lost-event counters; with MFT_RECF_FINAL, the trailer */
	MFT_REC_EVENT,       /* one struct mft_event (format 1) */
	MFT_REC_EVENTS,      /* a block of coded events (format 2) */
	MFT_REC__MAX,
};

/* Record flags */
#define MFT_RECF_CARRIED 0x1 /* EVENT: repeated from an older segment (flight recorder) */
#define MFT_RECF_FINAL 0x2   /* COUNTERS: the trailer of a recording that stopped cleanly */

/* Preamble flags */
#define MFT_RECP_RING 0x1

struct mft_rec_host {
	char hostname[256];
	char kernel[256]; /* uname release and version */
	char machine[32];
	char boot_id[40]; /* same boot id: the same CLOCK_MONOTONIC */
	char tool_version[32];
	char mechanism[32]; /* forced kernel-probe mechanism, "" for automatic */
	bool tls_records;
	bool all_qemus;
};

struct mft_rec_clock {
	uint64_t mono_ns;
	int64_t real_ns;
	uint64_t err_ns; /* half the time the two readings took */
};

struct mft_rec_target {
	uint32_t pid;
	bool incoming;
	bool removed; /* tracing of it stopped at t_mono */
	uint64_t t_mono;
	char name[64];
	char exe[512];
	char qemu_version[128];
	char gnutls[512];
	char gnutls_version[64];
	char cmdline[4096]; /* arguments joined by spaces */
};

struct mft_rec_probe {
	uint32_t pid; /* 0: kernel-wide */
	bool ok, required;
	char what[48];
	char mech[16];
	char why[320];
};

struct mft_rec_counters {
	uint64_t mono_ns;
	uint64_t kernel_events;      /* submitted by the BPF side */
	uint64_t rb_dropped;         /* lost: ring buffer full */
	uint64_t sockmap_full;       /* sockets the kernel could not track */
	uint64_t bad_events;         /* malformed samples rejected by the collector */
	uint64_t events_written;     /* by the writer, since the start */
	uint64_t events_overwritten; /* flight recorder: in segments that were reused */
	uint64_t events_unwritten;   /* lost to write errors (disk full, ...) */
	bool final;
};

/* ------------------------------------------------------------------ writer */

struct mft_recw_opts {
	uint64_t max_size;   /* 0: one segment that grows; else a ring of n_segments */
	unsigned n_segments; /* 0: 8 */
	bool force;          /* replace an existing file (never one a link points to) */
	unsigned format;     /* major format version to write: 0 for MFT_REC_MAJOR; 1 for 1.0 (older readers) */
};

struct mft_recw_stats {
	uint64_t events_written, events_overwritten, events_unwritten;
	uint64_t bytes_written;    /* bytes handed to the file */
	uint64_t segments_started; /* including the first */
	uint64_t carried;          /* events repeated at segment starts */
	int last_errno;
};

struct mft_recw;

/* NULL with a one-line reason in err. The file is created, mode 0640, never through a
 * symbolic link and never over an existing file unless o->force (mft_create_output). */
struct mft_recw *mft_recw_open(const char *path, const struct mft_recw_opts *o, char *err, size_t errlen);
/* Metadata: written now and repeated at the start of every segment. */
void mft_recw_host(struct mft_recw *w, const struct mft_rec_host *h);
void mft_recw_clock(struct mft_recw *w, const struct mft_rec_clock *c);
void mft_recw_target(struct mft_recw *w, const struct mft_rec_target *t);
void mft_recw_probe(struct mft_recw *w, const struct mft_rec_probe *p);
/* The writer fills in its own fields (events_written, ...). */
void mft_recw_counters(struct mft_recw *w, const struct mft_rec_counters *c);
void mft_recw_event(struct mft_recw *w, const struct mft_event *ev);
/* Hand buffered records to the file (write(2)): after this, a kill -9 loses none of them. */
int mft_recw_flush(struct mft_recw *w);
/* Trailer (final counters, if given), flush, fsync, close; the last stats in *st if not
 * NULL. 0, or -errno of the first failure. */
int mft_recw_close(struct mft_recw *w, const struct mft_rec_counters *final, struct mft_recw_stats *st);
const struct mft_recw_stats *mft_recw_stats(const struct mft_recw *w);
/*
 * A snapshot: the recording as it stands now copied to a new file at path (created as
 * mft_create_output does: no link followed, nothing clobbered), ended with a trailer of
 * the final counters given, as mft_recw_close would end it, so that it reads as a
 * complete recording of what the file (a flight recorder's ring) holds now. The writer
 * goes on. 0, or -1 with a one-line reason in err (a partial copy is removed).
 */
int mft_recw_snapshot(struct mft_recw *w, const char *path, const struct mft_rec_counters *final, char *err,
		      size_t errlen);

/* Event payload codec (little-endian, fixed layout; see docs/recording-format.md). */
void mft_rec_encode_event(uint8_t out[MFT_REC_EVENT_LEN], const struct mft_event *ev);
void mft_rec_decode_event(const uint8_t in[MFT_REC_EVENT_LEN], struct mft_event *ev);
uint32_t mft_crc32(uint32_t crc, const void *buf, size_t len);

/* ------------------------------------------------------------------ reader */

#define MFT_REC_MAX_PROBLEMS 8
/* What the reader keeps of a file, whatever it holds (docs/recording-format.md, Limits) */
#define MFT_REC_MAX_TARGETS 4096 /* distinct pids with a TARGET record */
#define MFT_REC_MAX_PROBES 32768 /* distinct (pid, what, mechanism) PROBE records */

struct mft_recording {
	unsigned major, minor;
	bool ring;
	uint64_t segment_size;
	unsigned n_segments;
	bool has_host;
	struct mft_rec_host host;
	struct mft_rec_clock *clocks;
	size_t n_clocks;
	struct mft_rec_target *targets; /* one per pid: the latest word on it */
	size_t n_targets;
	struct mft_rec_probe *probes; /* one per pid, what and mechanism: the latest */
	size_t n_probes;
	uint64_t targets_dropped, probes_dropped; /* past the limits above */
	bool has_counters;
	struct mft_rec_counters counters;     /* the latest */
	struct mft_event *events;             /* in file order (segments by sequence number); NULL when streamed */
	size_t n_events;                      /* read (kept in events or not) */
	uint64_t t_first_event, t_last_event; /* the first and the last event's ts_ns, in file order */
	size_t n_carried;                     /* of which repeated from lost segments */
	/* what the reader found */
	uint64_t file_size;
	uint64_t end_offset; /* just past the last complete record of the newest segment */
	uint64_t tail_bytes; /* bytes after it in that segment (a cut record, or stale data) */
	bool clean_end;      /* the trailer was read */
	uint64_t first_seq, last_seq;
	unsigned segments_read, segments_bad;
	uint64_t corrupt_regions, corrupt_bytes;
	uint64_t unknown_records;                 /* of types this reader does not know (newer minor) */
	uint64_t bad_records;                     /* known type, valid checksum, malformed payload */
	char problems[MFT_REC_MAX_PROBLEMS][256]; /* one line each */
	int n_problems;
	char stopped[320]; /* one line: where and how the recording ends */
};

/*
 * Parse a recording held in memory. Returns 0 when anything could be read (see problems
 * and stopped for what was wrong), -1 when nothing could (problems[0] says why: not a
 * recording, a newer format, a damaged preamble). Never reads outside buf.
 */
int mft_rec_parse(const uint8_t *buf, size_t len, struct mft_recording *r);
/*
 * The same, as a stream: the events one at a time (mft_rec_next: 1, or 0 at the end),
 * none kept, through a window of a few MiB, so that a file of any size reads in bounded
 * memory. r gets the metadata as its records are read, and is complete (stopped,
 * problems, counters) once mft_rec_next has returned 0. NULL when nothing can be read
 * (problems[0] says why). mft_rec_close frees the stream, not r (mft_rec_free).
 */
struct mft_rec_iter;
struct mft_rec_iter *mft_rec_open(const char *path, struct mft_recording *r);
struct mft_rec_iter *mft_rec_open_mem(const uint8_t *buf, size_t len, struct mft_recording *r);
int mft_rec_next(struct mft_rec_iter *it, struct mft_event *ev);
/* The same without a copy: *ev points into the stream, valid until its next call. */
int mft_rec_next_ref(struct mft_rec_iter *it, const struct mft_event **ev);
/*
 * From now on the stream's events (format 2.0 blocks) are checked as thoroughly but only
 * their time, pid and type are decoded: the other fields of what mft_rec_next gives are
 * not the event's. The metadata, counts and problems are the same as a full read's.
 */
void mft_rec_skim(struct mft_rec_iter *it);
void mft_rec_close(struct mft_rec_iter *it);
/* Read the file and parse it. -1 also when the file cannot be read (problems[0]). */
int mft_rec_load(const char *path, struct mft_recording *r);
void mft_rec_free(struct mft_recording *r);

#endif

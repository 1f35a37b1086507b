/*
 * cairn-wal - show the write-ahead log of a data directory, read-only.
 *
 *   cairn-wal DATA_DIR [--from LSN] [--to LSN] [--ns NAME]
 *             [--segments] [--frames] [--records]
 *
 * Lists the segments, the frames or (by default) the records of
 * DATA_DIR/wal, filtered by LSN range and namespace, then a summary and
 * what ends the log: clean, a torn tail (which the next open truncates) or
 * corruption in mid-log (which the next open refuses).  It reads through
 * wal_scan, the same classification recovery uses, and writes nothing.
 *
 * Exit status: 0 when the log could be read (whatever its end), 1
 * (EXIT_FAILURE) on a usage error or when it could not be read.
 */
#include "config.h"

#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "frame.h"
#include "record.h"
#include "wal.h"
#include "toolutil.h"

#define PROG "cairn-wal"
#define KEY_SHOW_MAX 64 /* key bytes printed before "..." */

enum { SHOW_SEGMENTS = 1, SHOW_FRAMES = 2, SHOW_RECORDS = 4 };

struct seg_info {
  uint64_t frames, first_lsn, last_lsn;
};

struct wal_view {
  unsigned show;
  uint64_t from, to;
  const char *ns;
  size_t ns_len;
  struct tool_file *files; /* the segment files, sorted */
  struct seg_info *info;
  size_t nfiles, cur;
  uint64_t *base; /* bytes of the files before each one, for progress */
  struct tool_progress prog;
  uint64_t shown_frames, shown_records;
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s DATA_DIR [--from LSN] [--to LSN] [--ns NAME]\n"
          "       [--segments] [--frames] [--records] [-h|--help] "
          "[-V|--version]\n"
          "Show the write-ahead log of a cairn data directory, read-only.\n"
          "  --segments  list the segment files\n"
          "  --frames    list the frames\n"
          "  --records   list the records (the default)\n"
          "  --from LSN, --to LSN  only records (frames) in this LSN range\n"
          "  --ns NAME   only records of this namespace\n",
          PROG);
}

/* ------------------------------------------------------------------------
 * Printing records.
 * --------------------------------------------------------------------- */

static const char *op_name(unsigned op) {
  static const char *const names[] = {"?", "put", "del", "expire",
                                      "expired", "batch", "coll"};
  return op < sizeof names / sizeof *names ? names[op] : "?";
}

static const char *type_name(unsigned t) {
  static const char *const names[] = {"string", "hash", "set", "zset",
                                      "list"};
  return t < sizeof names / sizeof *names ? names[t] : "?";
}

static void print_ms_time(const char *label, int64_t ms) {
  time_t t = (time_t)(ms / 1000);
  struct tm tm;
  char buf[32];
  if (gmtime_r(&t, &tm) && strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm))
    printf(" %s=%" PRId64 " (%s)", label, ms, buf);
  else
    printf(" %s=%" PRId64, label, ms);
}

/* One record (or sub-record) on one line, after indent. */
static void print_rec(const char *indent, const struct rec *r) {
  printf("%s%s ns=", indent, op_name(r->op));
  tool_print_bytes(stdout, r->ns, r->ns_len, NS_NAME_MAX);
  if (r->op == REC_BATCH) {
    printf(" ops=%" PRIu32 " bytes=%" PRIu32 "\n", r->klen, r->vlen);
    return;
  }
  printf(" key=");
  tool_print_bytes(stdout, r->key, r->klen, KEY_SHOW_MAX);
  if (r->op == REC_PUT || r->op == REC_COLL)
    printf(" vlen=%" PRIu32, r->vlen);
  if (r->op == REC_COLL || (r->op == REC_PUT && r->type != REC_T_STRING))
    printf(" type=%s%s", type_name(r->type),
           r->flags & REC_F_FRESH ? " fresh" : "");
  if (r->expire_at_ms) print_ms_time("expire_at", r->expire_at_ms);
  if (r->max_idle_ms) printf(" max_idle=%" PRIu64 "ms", r->max_idle_ms);
  putchar('\n');
}

static int ns_match(const struct wal_view *v, const struct rec *r) {
  return !v->ns || (r->ns_len == v->ns_len &&
                    memcmp(r->ns, v->ns, v->ns_len) == 0);
}

/* A batch: shown when any sub-record matches the namespace filter, with
 * the matching sub-records indented below it. */
static void print_batch(const struct wal_view *v, uint64_t lsn,
                        uint64_t epoch, const struct rec *b) {
  struct rec sub;
  size_t off = 0;
  int any = !v->ns;
  for (uint32_t i = 0; !any && i < b->klen; i++)
    if (rec_decode(b->val, b->vlen, &off, &sub) == 0 && ns_match(v, &sub))
      any = 1;
  if (!any) return;
  printf("lsn=%" PRIu64 " epoch=%" PRIu64 " ", lsn, epoch);
  printf("batch ops=%" PRIu32 " bytes=%" PRIu32 "\n", b->klen, b->vlen);
  off = 0;
  for (uint32_t i = 0; i < b->klen; i++) {
    if (rec_decode(b->val, b->vlen, &off, &sub) != 0) break;
    if (ns_match(v, &sub)) print_rec("    ", &sub);
  }
}

/* The records of a frame; the scan has checked them all already. */
static void print_records(struct wal_view *v, const struct frame_hdr *h,
                          const void *raw) {
  size_t off = 0;
  uint64_t n = h->last_lsn - h->first_lsn + 1;
  for (uint64_t i = 0; i < n; i++) {
    struct rec r;
    if (rec_decode(raw, h->raw_len, &off, &r) != 0) break;
    uint64_t lsn = h->first_lsn + i;
    if (lsn < v->from || lsn > v->to) continue;
    if (r.op == REC_BATCH) {
      print_batch(v, lsn, h->epoch, &r);
      v->shown_records++;
      continue;
    }
    if (!ns_match(v, &r)) continue;
    printf("lsn=%" PRIu64 " epoch=%" PRIu64 " ", lsn, h->epoch);
    print_rec("", &r);
    v->shown_records++;
  }
}

/* ------------------------------------------------------------------------
 * The scan.
 * --------------------------------------------------------------------- */

static int on_frame(void *arg, const char *path, uint64_t offset,
                    const struct frame_hdr *h, const void *raw) {
  struct wal_view *v = arg;
  const char *name = tool_basename(path);
  while (v->cur < v->nfiles && strcmp(v->files[v->cur].name, name) != 0)
    v->cur++;
  if (v->cur < v->nfiles) {
    struct seg_info *si = &v->info[v->cur];
    if (!si->frames) si->first_lsn = h->first_lsn;
    si->frames++;
    si->last_lsn = h->last_lsn;
    tool_progress(&v->prog, v->base[v->cur] + offset);
  } else {
    v->cur = 0; /* not in the listing (appeared since): rescan next time */
  }
  if (h->last_lsn < v->from || h->first_lsn > v->to) return 0;
  if (v->show & SHOW_FRAMES) {
    tool_progress_end(&v->prog);
    printf("frame %s offset=%" PRIu64 " epoch=%" PRIu64 " lsn=%" PRIu64
           "..%" PRIu64 " records=%" PRIu64 " raw=%" PRIu32 " stored=%"
           PRIu32 " %s\n", name, offset, h->epoch, h->first_lsn,
           h->last_lsn, h->last_lsn - h->first_lsn + 1, h->raw_len,
           h->stored_len, h->flags & FRAME_F_LZ4 ? "lz4" : "raw");
    v->shown_frames++;
  }
  if (v->show & SHOW_RECORDS) {
    tool_progress_end(&v->prog);
    print_records(v, h, raw);
  }
  return 0;
}

static void print_segments(const struct wal_view *v) {
  for (size_t i = 0; i < v->nfiles; i++) {
    const struct seg_info *si = &v->info[i];
    printf("segment %s size=%" PRIu64 " frames=%" PRIu64, v->files[i].name,
           v->files[i].size, si->frames);
    if (si->frames)
      printf(" lsn=%" PRIu64 "..%" PRIu64, si->first_lsn, si->last_lsn);
    putchar('\n');
  }
}

static void print_end(const char *waldir, const struct wal_scan_result *r) {
  char path[WAL_PATH_MAX];
  if (r->corrupt) {
    wal_segment_path(waldir, r->corrupt_seq, path);
    printf("end: corruption at %s:%" PRIu64 ": %s\n", tool_basename(path),
           r->corrupt_offset, r->why);
  } else if (r->torn) {
    wal_segment_path(waldir, r->torn_seq, path);
    printf("end: torn tail at %s:%" PRIu64 " (%" PRIu64 " bytes from LSN %"
           PRIu64 "): %s\n", tool_basename(path), r->torn_offset,
           r->torn_bytes, r->torn_lsn, r->why);
  } else {
    wal_segment_path(waldir, r->end_seq, path);
    printf("end: clean at %s:%" PRIu64 "\n", tool_basename(path),
           r->end_offset);
  }
}

static int run(const char *dir, struct wal_view *v) {
  char waldir[WAL_PATH_MAX];
  struct stat st;
  if (stat(dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    tool_err(PROG, "%s: not a directory", dir);
    return EXIT_FAILURE;
  }
  snprintf(waldir, sizeof waldir, "%s/wal", dir);
  int rc = tool_files(waldir, ".wal", &v->files, &v->nfiles);
  if (rc == 0) {
    v->info = calloc(v->nfiles + 1, sizeof *v->info);
    v->base = calloc(v->nfiles + 1, sizeof *v->base);
    if (!v->info || !v->base) rc = -ENOMEM;
  }
  if (rc) {
    tool_err(PROG, "%s: %s", waldir, strerror(-rc));
    return EXIT_FAILURE;
  }
  for (size_t i = 0; i < v->nfiles; i++)
    v->base[i + 1] = v->base[i] + v->files[i].size;
  tool_progress_start(&v->prog, "scanning", v->base[v->nfiles],
                      !(v->show & (SHOW_FRAMES | SHOW_RECORDS)));
  struct wal_scan_result r;
  rc = wal_scan(waldir, on_frame, v, &r);
  tool_progress_end(&v->prog);
  if (rc) {
    tool_err(PROG, "%s: %s", waldir, cairn_strerror(rc));
    return EXIT_FAILURE;
  }
  if (v->show & SHOW_SEGMENTS) print_segments(v);
  /* wal_scan does not count the segment its bad frame is in. */
  uint64_t segs = r.segments + (r.torn || r.corrupt);
  printf("summary: %zu segment files, %" PRIu64 " in the log, %" PRIu64
         " frames, %" PRIu64 " records", v->nfiles, segs, r.frames,
         r.records);
  if (r.frames) printf(" (LSN %" PRIu64 "..%" PRIu64 ")", r.first_lsn,
                       r.last_lsn);
  if (v->show & SHOW_FRAMES) printf(", %" PRIu64 " frames shown",
                                    v->shown_frames);
  if (v->show & SHOW_RECORDS) printf(", %" PRIu64 " records shown",
                                     v->shown_records);
  putchar('\n');
  print_end(waldir, &r);
  return EXIT_SUCCESS;
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"from", required_argument, NULL, 'f'},
      {"to", required_argument, NULL, 't'},
      {"ns", required_argument, NULL, 'n'},
      {"segments", no_argument, NULL, 's'},
      {"frames", no_argument, NULL, 'F'},
      {"records", no_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  struct wal_view v = {.to = UINT64_MAX};
  int c;
  while ((c = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
    switch (c) {
    case 'f':
    case 't':
      if (tool_parse_u64(optarg, c == 'f' ? &v.from : &v.to) != 0) {
        tool_err(PROG, "--%s: not an LSN: %s", c == 'f' ? "from" : "to",
                 optarg);
        usage(stderr);
        return EXIT_FAILURE;
      }
      break;
    case 'n':
      v.ns = optarg;
      v.ns_len = strlen(optarg);
      if (v.ns_len < 1 || v.ns_len > NS_NAME_MAX) {
        tool_err(PROG, "--ns: a namespace has 1 to %u bytes", NS_NAME_MAX);
        usage(stderr);
        return EXIT_FAILURE;
      }
      break;
    case 's': v.show |= SHOW_SEGMENTS; break;
    case 'F': v.show |= SHOW_FRAMES; break;
    case 'r': v.show |= SHOW_RECORDS; break;
    case 'h': usage(stdout); return EXIT_SUCCESS;
    case 'V': tool_version(PROG); return EXIT_SUCCESS;
    default: usage(stderr); return EXIT_FAILURE;
    }
  }
  if (optind + 1 != argc) {
    tool_err(PROG, optind == argc ? "missing DATA_DIR" : "too many arguments");
    usage(stderr);
    return EXIT_FAILURE;
  }
  if (v.from > v.to) {
    tool_err(PROG, "--from is above --to");
    usage(stderr);
    return EXIT_FAILURE;
  }
  if (!v.show) v.show = SHOW_RECORDS;
  int rc = run(argv[optind], &v);
  free(v.files);
  free(v.info);
  free(v.base);
  return rc;
}

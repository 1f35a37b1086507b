/*
 * cairn-check - verify a data directory offline, and cut a torn tail.
 *
 *   cairn-check DATA_DIR [--json] [--repair]
 *
 * Checks, without changing anything:
 *   - the log (DATA_DIR/wal) through wal_scan, the classification recovery
 *     uses: frame checksums, LSN continuity, what ends it (clean, a torn
 *     tail, corruption in mid-log); the epochs of its frames, which must
 *     never go down;
 *   - the store (DATA_DIR/lmdb) through store_verify: every database walked
 *     completely with a cursor, every entry decoded, the expiry index
 *     consistent with the data both ways;
 *   - the checkpoint LSN against the log: the log must reach back to
 *     checkpoint LSN + 1 or lie entirely at or below it (recovery's rule).
 * It holds DATA_DIR/LOCK (flock, as cairn_open does) while it runs, and
 * refuses a directory that a process has open.
 *
 * --repair cuts a torn tail exactly as recovery does (zeroes from the torn
 * frame to the end of its segment, then fdatasync) and checks again.  It
 * changes nothing else, and nothing at all when anything is corrupt.
 *
 * Exit status: 0 clean; 1 a torn tail (the next open truncates it); 2
 * corruption (mid-log, in the store, the index, or a gap between the
 * checkpoint and the log); 3 the check could not run (usage error,
 * directory in use, I/O error).
 */
#include "config.h"

#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "frame.h"
#include "log.h"
#include "store.h"
#include "wal.h"
#include "toolutil.h"

#define PROG "cairn-check"
#define EXIT_TORN 1
#define EXIT_CORRUPT 2
#define EXIT_NOCHECK 3
#define PROBLEMS_KEPT 100 /* problem lines kept for the report */
#define EPOCHS_KEPT 64    /* distinct epochs listed */
#define ZERO_CHUNK_BYTES (1u << 20)

struct check {
  const char *dir;
  char waldir[WAL_PATH_MAX], lmdbdir[WAL_PATH_MAX];
  int json;
  /* log */
  struct wal_scan_result log;
  uint64_t epochs[EPOCHS_KEPT];
  size_t nepochs;
  int epoch_back; /* a frame's epoch below an earlier one */
  struct tool_file *files;
  size_t nfiles, cur;
  uint64_t *base;
  struct tool_progress prog;
  /* store */
  int have_store;
  uint64_t ckpt_lsn;
  struct store_verify_result sv;
  char *problems[PROBLEMS_KEPT];
  size_t nproblems;
  uint64_t problems_total;
  int gap;
  int repaired;
};

static void usage(FILE *f) {
  fprintf(f,
          "usage: %s DATA_DIR [--json] [--repair] [-h|--help] "
          "[-V|--version]\n"
          "Verify a cairn data directory (log, store, checkpoint) offline.\n"
          "  --json    print the report as one JSON object\n"
          "  --repair  cut a torn log tail, as opening would, then check "
          "again\n"
          "Exit status: 0 clean, 1 torn tail, 2 corruption, 3 could not "
          "check.\n",
          PROG);
}

static void problem(struct check *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void problem(struct check *c, const char *fmt, ...) {
  c->problems_total++;
  if (c->nproblems == PROBLEMS_KEPT) return;
  char buf[512];
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(buf, sizeof buf, fmt, ap);
  va_end(ap);
  char *s = strdup(buf);
  if (s) c->problems[c->nproblems++] = s;
}

static void store_problem(void *arg, const char *msg) {
  problem(arg, "%s", msg);
}

/* The store's own error lines go to stderr, marked as ours. */
static void log_line(void *arg, int level, const char *msg) {
  (void)arg;
  (void)level;
  tool_err(PROG, "store: %s", msg);
}

/* ------------------------------------------------------------------------
 * The log.
 * --------------------------------------------------------------------- */

static int on_frame(void *arg, const char *path, uint64_t offset,
                    const struct frame_hdr *h, const void *raw) {
  struct check *c = arg;
  (void)raw;
  if (c->nepochs && h->epoch < c->epochs[c->nepochs - 1] && !c->epoch_back) {
    c->epoch_back = 1;
    problem(c, "log: %s:%" PRIu64 ": epoch %" PRIu64 " after epoch %" PRIu64,
            tool_basename(path), offset, h->epoch, c->epochs[c->nepochs - 1]);
  }
  if ((!c->nepochs || h->epoch != c->epochs[c->nepochs - 1]) &&
      c->nepochs < EPOCHS_KEPT)
    c->epochs[c->nepochs++] = h->epoch;
  const char *name = tool_basename(path);
  while (c->cur < c->nfiles && strcmp(c->files[c->cur].name, name) != 0)
    c->cur++;
  if (c->cur < c->nfiles) tool_progress(&c->prog, c->base[c->cur] + offset);
  else c->cur = 0;
  return 0;
}

static int check_log(struct check *c) {
  free(c->files);
  free(c->base);
  c->files = NULL;
  c->base = NULL;
  c->cur = c->nepochs = 0;
  c->epoch_back = 0;
  int rc = tool_files(c->waldir, ".wal", &c->files, &c->nfiles);
  if (rc == 0 && !(c->base = calloc(c->nfiles + 1, sizeof *c->base)))
    rc = -ENOMEM;
  if (rc) {
    tool_err(PROG, "%s: %s", c->waldir, strerror(-rc));
    return rc;
  }
  for (size_t i = 0; i < c->nfiles; i++)
    c->base[i + 1] = c->base[i] + c->files[i].size;
  tool_progress_start(&c->prog, "checking the log", c->base[c->nfiles], 1);
  rc = wal_scan(c->waldir, on_frame, c, &c->log);
  tool_progress_end(&c->prog);
  if (rc) tool_err(PROG, "%s: %s", c->waldir, cairn_strerror(rc));
  return rc;
}

/* ------------------------------------------------------------------------
 * The store, and the checkpoint against the log.
 * --------------------------------------------------------------------- */

static int check_store(struct check *c) {
  char data[WAL_PATH_MAX + 16];
  snprintf(data, sizeof data, "%s/data.mdb", c->lmdbdir);
  struct stat st;
  if (stat(data, &st) != 0) {
    /* store_open would create it: a check must not. */
    problem(c, "store: %s is missing", data);
    return 0;
  }
  struct logger lg = {log_line, NULL, CAIRN_LOG_ERROR};
  struct store_config cfg = {.dir = c->lmdbdir, .max_readers = 8, .log = &lg};
  struct store *s;
  int rc = store_open(&cfg, &s);
  if (rc == CAIRN_ECORRUPT || rc == CAIRN_EVERFMT) {
    problem(c, "store: cannot open %s: %s", c->lmdbdir, cairn_strerror(rc));
    return 0;
  }
  if (rc) {
    tool_err(PROG, "%s: %s", c->lmdbdir, cairn_strerror(rc));
    return rc;
  }
  c->have_store = 1;
  c->ckpt_lsn = store_ckpt_lsn(s);
  rc = store_verify(s, store_problem, c, &c->sv);
  store_close(s);
  if (rc == CAIRN_ECORRUPT) {
    problem(c, "store: a B-tree cannot be walked: %s", cairn_strerror(rc));
    rc = 0;
  } else if (rc) {
    tool_err(PROG, "%s: %s", c->lmdbdir, cairn_strerror(rc));
  }
  return rc;
}

/* recover_gap's rule: a log that begins after checkpoint LSN + 1 lost
 * records. */
static void check_gap(struct check *c) {
  c->gap = c->have_store && c->log.frames > 0 &&
           c->log.first_lsn > c->ckpt_lsn + 1;
  if (c->gap)
    problem(c, "log: begins at LSN %" PRIu64 " but the checkpoint is at LSN %"
            PRIu64 ": LSNs %" PRIu64 " to %" PRIu64 " are missing",
            c->log.first_lsn, c->ckpt_lsn, c->ckpt_lsn + 1,
            c->log.first_lsn - 1);
}

static int status(const struct check *c) {
  if (c->log.corrupt || c->problems_total) return EXIT_CORRUPT;
  return c->log.torn ? EXIT_TORN : EXIT_SUCCESS;
}

static void problems_clear(struct check *c) {
  for (size_t i = 0; i < c->nproblems; i++) free(c->problems[i]);
  c->nproblems = 0;
  c->problems_total = 0;
}

static int check_all(struct check *c) {
  problems_clear(c);
  c->have_store = 0;
  c->ckpt_lsn = 0;
  memset(&c->sv, 0, sizeof c->sv);
  int rc = check_log(c);
  if (rc == 0) rc = check_store(c);
  if (rc == 0) check_gap(c);
  return rc;
}

/* ------------------------------------------------------------------------
 * Repair: cut a torn tail.
 * --------------------------------------------------------------------- */

/* Zero the torn segment from the torn frame to its end and make it
 * durable: what recovery's seg_cut does. */
static int cut_tail(struct check *c) {
  char path[WAL_PATH_MAX];
  wal_segment_path(c->waldir, c->log.torn_seq, path);
  int fd = open(path, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    int e = errno;
    tool_err(PROG, "%s: %s", path, strerror(e));
    return -e;
  }
  static const unsigned char zeros[ZERO_CHUNK_BYTES];
  struct stat st;
  int rc = fstat(fd, &st) != 0 ? -errno : 0;
  uint64_t end = rc ? 0 : (uint64_t)st.st_size;
  for (uint64_t p = c->log.torn_offset; rc == 0 && p < end;) {
    size_t n = end - p < sizeof zeros ? (size_t)(end - p) : sizeof zeros;
    ssize_t w = pwrite(fd, zeros, n, (off_t)p);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) rc = w < 0 ? -errno : -EIO;
    else p += (uint64_t)w;
  }
  if (rc == 0 && fdatasync(fd) != 0) rc = -errno;
  close(fd);
  if (rc) tool_err(PROG, "%s: cutting at offset %" PRIu64 ": %s", path,
                   c->log.torn_offset, strerror(-rc));
  else if (!c->json)
    printf("repair: zeroed %s from offset %" PRIu64 " (%" PRIu64
           " bytes from LSN %" PRIu64 ")\n", tool_basename(path),
           c->log.torn_offset, c->log.torn_bytes, c->log.torn_lsn);
  return rc;
}

/* ------------------------------------------------------------------------
 * Reports.
 * --------------------------------------------------------------------- */

/* wal_scan does not count the segment its bad frame is in. */
static uint64_t log_segments(const struct wal_scan_result *r) {
  return r->segments + (r->torn || r->corrupt);
}

static const char *end_name(const struct wal_scan_result *r) {
  return r->corrupt ? "corrupt" : r->torn ? "torn" : "clean";
}

static void print_human(const struct check *c) {
  const struct wal_scan_result *r = &c->log;
  char path[WAL_PATH_MAX];
  printf("log: %" PRIu64 " segments, %" PRIu64 " frames, %" PRIu64
         " records", log_segments(r), r->frames, r->records);
  if (r->frames) printf(", LSN %" PRIu64 "..%" PRIu64, r->first_lsn,
                        r->last_lsn);
  printf(", epochs");
  for (size_t i = 0; i < c->nepochs; i++)
    printf("%s%" PRIu64, i ? "," : " ", c->epochs[i]);
  if (!c->nepochs) printf(" none");
  putchar('\n');
  if (r->corrupt) {
    wal_segment_path(c->waldir, r->corrupt_seq, path);
    printf("log end: corrupt at %s:%" PRIu64 ": %s (the database will not "
           "open)\n", tool_basename(path), r->corrupt_offset, r->why);
  } else if (r->torn) {
    wal_segment_path(c->waldir, r->torn_seq, path);
    printf("log end: torn tail at %s:%" PRIu64 " (%" PRIu64 " bytes from LSN %"
           PRIu64 "): %s (opening truncates it; --repair cuts it now)\n",
           tool_basename(path), r->torn_offset, r->torn_bytes, r->torn_lsn,
           r->why);
  } else {
    printf("log end: clean\n");
  }
  if (c->have_store)
    printf("store: %" PRIu64 " entries, %" PRIu64 " expiry index entries, %"
           PRIu64 " pages, checkpoint LSN %" PRIu64 "\n", c->sv.entries,
           c->sv.expiry_index, c->sv.pages, c->ckpt_lsn);
  printf("checkpoint vs log: %s\n", c->gap ? "gap" : "ok");
  for (size_t i = 0; i < c->nproblems; i++)
    printf("problem: %s\n", c->problems[i]);
  if (c->problems_total > c->nproblems)
    printf("problem: ... and %" PRIu64 " more\n",
           c->problems_total - c->nproblems);
  int st = status(c);
  printf("status: %s (exit %d)\n",
         st == 0 ? "clean" : st == EXIT_TORN ? "torn tail" : "corrupt", st);
}

static void json_log(const struct check *c) {
  const struct wal_scan_result *r = &c->log;
  char path[WAL_PATH_MAX];
  printf("\"log\":{\"segments\":%" PRIu64 ",\"frames\":%" PRIu64
         ",\"records\":%" PRIu64 ",\"first_lsn\":%" PRIu64 ",\"last_lsn\":%"
         PRIu64 ",\"epochs\":[", log_segments(r), r->frames, r->records,
         r->first_lsn, r->last_lsn);
  for (size_t i = 0; i < c->nepochs; i++)
    printf("%s%" PRIu64, i ? "," : "", c->epochs[i]);
  printf("],\"end\":\"%s\",\"torn\":", end_name(r));
  if (r->torn) {
    wal_segment_path(c->waldir, r->torn_seq, path);
    printf("{\"file\":");
    tool_json_str(stdout, path);
    printf(",\"offset\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"lsn\":%" PRIu64
           "}", r->torn_offset, r->torn_bytes, r->torn_lsn);
  } else {
    printf("null");
  }
  printf(",\"corrupt\":");
  if (r->corrupt) {
    wal_segment_path(c->waldir, r->corrupt_seq, path);
    printf("{\"file\":");
    tool_json_str(stdout, path);
    printf(",\"offset\":%" PRIu64 ",\"why\":", r->corrupt_offset);
    tool_json_str(stdout, r->why);
    putchar('}');
  } else {
    printf("null");
  }
  putchar('}');
}

static void print_json(const struct check *c) {
  putchar('{');
  json_log(c);
  printf(",\"store\":{\"entries\":%" PRIu64 ",\"expiry_index\":%" PRIu64
         ",\"pages\":%" PRIu64 ",\"checkpoint_lsn\":%" PRIu64
         ",\"problems\":[", c->sv.entries, c->sv.expiry_index, c->sv.pages,
         c->ckpt_lsn);
  for (size_t i = 0; i < c->nproblems; i++) {
    if (i) putchar(',');
    tool_json_str(stdout, c->problems[i]);
  }
  printf("],\"problems_total\":%" PRIu64 "},\"checkpoint_vs_log\":\"%s\","
         "\"repaired\":%s,\"exit_code\":%d}\n", c->problems_total,
         c->gap ? "gap" : "ok", c->repaired ? "true" : "false", status(c));
}

/* ------------------------------------------------------------------------
 * Main.
 * --------------------------------------------------------------------- */

/* Hold DIR/LOCK as cairn_open does, so no process opens the directory
 * while it is checked.  Returns the fd, or -1 after saying why. */
static int lock_dir(const char *dir, int repair) {
  char path[WAL_PATH_MAX];
  snprintf(path, sizeof path, "%s/LOCK", dir);
  /* Only a repair may create the lock file; a check changes nothing. */
  int fd = open(path, O_RDWR | O_CLOEXEC | (repair ? O_CREAT : 0), 0644);
  if (fd < 0 && errno == ENOENT) return -2; /* never opened: no holder */
  if (fd < 0) {
    tool_err(PROG, "%s: %s", path, strerror(errno));
    return -1;
  }
  if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    if (e == EWOULDBLOCK)
      tool_err(PROG, "%s is in use by another process (a cairnd or "
               "cairn_open holds %s); stop it before checking", dir, path);
    else
      tool_err(PROG, "%s: flock: %s", path, strerror(e));
    return -1;
  }
  return fd;
}

static int run(struct check *c, int repair) {
  struct stat st;
  if (stat(c->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
    tool_err(PROG, "%s: not a directory", c->dir);
    return EXIT_NOCHECK;
  }
  snprintf(c->waldir, sizeof c->waldir, "%s/wal", c->dir);
  snprintf(c->lmdbdir, sizeof c->lmdbdir, "%s/lmdb", c->dir);
  if (stat(c->waldir, &st) != 0 && stat(c->lmdbdir, &st) != 0) {
    tool_err(PROG, "%s: not a cairn data directory (no wal/ nor lmdb/)",
             c->dir);
    return EXIT_NOCHECK;
  }
  int lock = lock_dir(c->dir, repair);
  if (lock == -1) return EXIT_NOCHECK;
  int rc = check_all(c);
  if (rc == 0 && repair && status(c) == EXIT_TORN) {
    rc = cut_tail(c);
    if (rc == 0) {
      c->repaired = 1;
      rc = check_all(c);
    }
  } else if (rc == 0 && repair && status(c) == EXIT_CORRUPT) {
    tool_err(PROG, "%s: corruption found: --repair changes nothing (it only "
             "cuts a torn tail)", c->dir);
  }
  if (rc == 0) {
    if (c->json) print_json(c);
    else print_human(c);
  }
  if (lock >= 0) close(lock);
  return rc ? EXIT_NOCHECK : status(c);
}

int main(int argc, char **argv) {
  static const struct option opts[] = {
      {"json", no_argument, NULL, 'j'},
      {"repair", no_argument, NULL, 'r'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  struct check c = {0};
  int repair = 0, ch;
  while ((ch = getopt_long(argc, argv, "hV", opts, NULL)) != -1) {
    switch (ch) {
    case 'j': c.json = 1; break;
    case 'r': repair = 1; break;
    case 'h': usage(stdout); return EXIT_SUCCESS;
    case 'V': tool_version(PROG); return EXIT_SUCCESS;
    default: usage(stderr); return EXIT_NOCHECK;
    }
  }
  if (optind + 1 != argc) {
    tool_err(PROG, optind == argc ? "missing DATA_DIR" : "too many arguments");
    usage(stderr);
    return EXIT_NOCHECK;
  }
  c.dir = argv[optind];
  int rc = run(&c, repair);
  problems_clear(&c);
  free(c.files);
  free(c.base);
  return rc;
}

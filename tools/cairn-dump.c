/*
 * cairn-dump - write a consistent dump of a data directory (src/dump.h,
 * doc/format-dump.md), or list the entries of a dump.
 *
 *   cairn-dump [-o FILE|-] [--ns NAME]... [--live] DATA_DIR
 *   cairn-dump --list FILE|-
 *
 * The dump is the state as of one LSN: the store's last checkpoint (one
 * LMDB read transaction, a consistent snapshot) with every complete log
 * frame after it applied in LSN order, in memory.  Nothing in DATA_DIR is
 * written, except LMDB's own reader table in lmdb/lock.mdb; cairn_open is
 * never called (its close would checkpoint).
 *
 * While dumping, the tool holds a shared flock on DIR/LOCK, so no daemon
 * can open the directory meanwhile.  If a process already holds it (a
 * running cairnd), the tool refuses unless --live: then the same reading
 * runs beside the daemon.  That blocks no writer; a checkpoint that
 * commits between the snapshot and the log scan may release the log the
 * snapshot needs, which shows as a gap in LSNs, and the tool starts over
 * (DUMP_LIVE_TRIES times).
 *
 * Exit codes: 0 done; 1 error; 2 usage; 3 the directory is in use (no
 * --live).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "coll.h"
#include "dump.h"
#include "frame.h"
#include "hash.h"
#include "record.h"
#include "store.h"
#include "toolutil.h"
#include "util.h"
#include "wal.h"

#define PROG "cairn-dump"
#define EXIT_USAGE 2
#define EXIT_BUSY 3
#define DUMP_LIVE_TRIES 5
#define NS_FILTER_MAX 64
#define GAP_RC (-EAGAIN) /* the log after the snapshot is gone: retry */

/* ------------------------------------------------------------------------
 * The state being rebuilt: a map keyed by namespace and key.
 * --------------------------------------------------------------------- */

struct ent {
  uint64_t hash;
  uint8_t ns_len, type, live;
  char ns[NS_NAME_MAX];
  uint8_t *key, *val;
  uint32_t klen, vlen;
  int64_t expire_at_ms, last_access_ms;
  uint64_t max_idle_ms;
};

struct emap {
  struct ent **slot;
  size_t cap, used;
};

static uint64_t ent_hash(const char *ns, size_t ns_len, const void *key,
                         size_t klen) {
  return hash64_2(ns, ns_len, key, klen) ^ ns_len;
}

static size_t emap_pos(const struct emap *m, uint64_t h, const char *ns,
                       size_t ns_len, const void *key, size_t klen) {
  size_t i = h & (m->cap - 1);
  for (;;) { /* the map is never full: it grows at half load */
    const struct ent *e = m->slot[i];
    if (!e || (e->hash == h && e->ns_len == ns_len && e->klen == klen &&
               !memcmp(e->ns, ns, ns_len) && !memcmp(e->key, key, klen)))
      return i;
    i = (i + 1) & (m->cap - 1);
  }
}

static int emap_grow(struct emap *m) {
  size_t cap = m->cap ? m->cap * 2 : 1024;
  struct ent **s = calloc(cap, sizeof *s);
  if (!s) return CAIRN_ENOMEM;
  for (size_t i = 0; i < m->cap; i++) {
    struct ent *e = m->slot[i];
    if (!e) continue;
    size_t j = e->hash & (cap - 1);
    while (s[j]) j = (j + 1) & (cap - 1);
    s[j] = e;
  }
  free(m->slot);
  m->slot = s;
  m->cap = cap;
  return 0;
}

/* The entry for (ns, key), created (not live) if missing; NULL: no memory. */
static struct ent *emap_get(struct emap *m, const char *ns, size_t ns_len,
                            const void *key, size_t klen) {
  if ((m->used + 1) * 2 > m->cap && emap_grow(m) != 0) return NULL;
  uint64_t h = ent_hash(ns, ns_len, key, klen);
  size_t i = emap_pos(m, h, ns, ns_len, key, klen);
  if (m->slot[i]) return m->slot[i];
  struct ent *e = calloc(1, sizeof *e);
  if (!e || !(e->key = malloc(klen))) {
    free(e);
    return NULL;
  }
  e->hash = h;
  e->ns_len = (uint8_t)ns_len;
  memcpy(e->ns, ns, ns_len);
  memcpy(e->key, key, klen);
  e->klen = (uint32_t)klen;
  m->slot[i] = e;
  m->used++;
  return e;
}

static struct ent *emap_find(const struct emap *m, const char *ns,
                             size_t ns_len, const void *key, size_t klen) {
  if (!m->cap) return NULL;
  uint64_t h = ent_hash(ns, ns_len, key, klen);
  struct ent *e = m->slot[emap_pos(m, h, ns, ns_len, key, klen)];
  return e && e->live ? e : NULL;
}

static void emap_free(struct emap *m) {
  for (size_t i = 0; i < m->cap; i++) {
    if (!m->slot[i]) continue;
    free(m->slot[i]->key);
    free(m->slot[i]->val);
    free(m->slot[i]);
  }
  free(m->slot);
  memset(m, 0, sizeof *m);
}

/* Give e the value val (copied unless own, in which case e takes it). */
static int ent_set(struct ent *e, int type, void *val, size_t vlen, int own,
                   int64_t expire_at_ms, uint64_t max_idle_ms,
                   int64_t last_access_ms) {
  void *v = val;
  if (!own) {
    v = malloc(vlen ? vlen : 1);
    if (!v) return CAIRN_ENOMEM;
    if (vlen) memcpy(v, val, vlen);
  }
  free(e->val);
  e->val = v;
  e->vlen = (uint32_t)vlen;
  e->type = (uint8_t)type;
  e->live = 1;
  e->expire_at_ms = expire_at_ms;
  e->max_idle_ms = max_idle_ms;
  e->last_access_ms = last_access_ms;
  return 0;
}

static void ent_kill(struct ent *e) {
  free(e->val);
  e->val = NULL;
  e->vlen = 0;
  e->live = 0;
}

/* ------------------------------------------------------------------------
 * Reading the source: the store's snapshot, then the log after it.
 * --------------------------------------------------------------------- */

struct source {
  const char *dir;
  struct emap map;
  uint64_t ckpt_lsn, epoch, lsn; /* lsn: the last one applied */
  uint64_t records;
  char err[WAL_PATH_MAX + 256];
};

static int snap_visit(void *arg, const char *ns, size_t ns_len,
                      const void *key, size_t klen,
                      const struct store_val *v) {
  struct source *src = arg;
  struct ent *e = emap_get(&src->map, ns, ns_len, key, klen);
  if (!e) return CAIRN_ENOMEM;
  int type = v->type <= REC_T_MAX ? v->type : REC_T_STRING;
  return ent_set(e, type, v->data, v->len, 0, v->expire_at_ms,
                 v->max_idle_ms, v->last_access_ms);
}

/* A collection delta, applied as recovery applies it (db.c). */
static int apply_coll(struct source *src, const struct rec *r) {
  struct ent *e = emap_find(&src->map, r->ns, r->ns_len, r->key, r->klen);
  const void *base = NULL;
  size_t blen = 0;
  if (e && !(r->flags & REC_F_FRESH)) {
    if (e->type != r->type) return CAIRN_ECORRUPT;
    base = e->val;
    blen = e->vlen;
  }
  void *blob = NULL;
  size_t n = 0;
  int rc = coll_apply(r->type, base, blen, r->val, r->vlen, &blob, &n);
  if (rc) return CAIRN_ECORRUPT;
  if (!e) e = emap_get(&src->map, r->ns, r->ns_len, r->key, r->klen);
  if (!e) {
    free(blob);
    return CAIRN_ENOMEM;
  }
  if (!blob) {
    ent_kill(e);
    return 0;
  }
  return ent_set(e, r->type, blob, n, 1, r->expire_at_ms, r->max_idle_ms,
                 (int64_t)r->ts_ms);
}

static int apply_one(struct source *src, const struct rec *r) {
  struct ent *e;
  switch (r->op) {
  case REC_PUT:
    e = emap_get(&src->map, r->ns, r->ns_len, r->key, r->klen);
    if (!e) return CAIRN_ENOMEM;
    return ent_set(e, r->type, (void *)r->val, r->vlen, 0, r->expire_at_ms,
                   r->max_idle_ms, (int64_t)r->ts_ms);
  case REC_COLL:
    return apply_coll(src, r);
  case REC_EXPIRE:
    e = emap_find(&src->map, r->ns, r->ns_len, r->key, r->klen);
    if (e) {
      e->expire_at_ms = r->expire_at_ms;
      e->max_idle_ms = r->max_idle_ms;
      e->last_access_ms = (int64_t)r->ts_ms;
    }
    return 0;
  case REC_DEL:
  case REC_EXPIRED:
    e = emap_find(&src->map, r->ns, r->ns_len, r->key, r->klen);
    if (e) ent_kill(e);
    return 0;
  default:
    return CAIRN_ECORRUPT;
  }
}

static int apply_rec(struct source *src, const struct rec *r) {
  if (r->op != REC_BATCH) return apply_one(src, r);
  size_t off = 0;
  for (uint32_t i = 0; i < r->klen; i++) {
    struct rec sub;
    if (rec_decode(r->val, r->vlen, &off, &sub) != 0 || sub.op == REC_BATCH)
      return CAIRN_ECORRUPT;
    int rc = apply_one(src, &sub);
    if (rc) return rc;
  }
  return 0;
}

/* wal_frame_fn: apply the records of one frame past the checkpoint. */
static int frame_visit(void *arg, const char *path, uint64_t offset,
                       const struct frame_hdr *h, const void *raw) {
  struct source *src = arg;
  if (h->raw_len == 0 || h->last_lsn <= src->lsn) return 0;
  if (h->first_lsn > src->lsn + 1) {
    snprintf(src->err, sizeof src->err, "%s offset %" PRIu64 ": the log "
             "jumps from LSN %" PRIu64 " to %" PRIu64, path, offset,
             src->lsn, h->first_lsn);
    return GAP_RC;
  }
  size_t off = 0;
  for (uint64_t lsn = h->first_lsn; lsn <= h->last_lsn; lsn++) {
    struct rec r;
    int rc = rec_decode(raw, h->raw_len, &off, &r);
    if (!rc && lsn > src->lsn) rc = apply_rec(src, &r);
    if (rc) {
      snprintf(src->err, sizeof src->err, "%s offset %" PRIu64 ": record "
               "at LSN %" PRIu64 ": %s", path, offset, lsn,
               cairn_strerror(rc));
      return rc;
    }
    if (lsn > src->lsn) src->records++;
  }
  src->lsn = h->last_lsn;
  src->epoch = h->epoch;
  return 0;
}

static void quiet_log(void *arg, int level, const char *msg) {
  (void)arg;
  if (level <= CAIRN_LOG_ERROR) fprintf(stderr, PROG ": %s\n", msg);
}

static const struct logger tool_logger = {quiet_log, NULL, CAIRN_LOG_ERROR};

/* One attempt: the store's snapshot, then the log.  0, GAP_RC or an
 * error (src->err says what, when it can). */
static int source_read(struct source *src) {
  char path[WAL_PATH_MAX];
  emap_free(&src->map);
  src->records = 0;
  snprintf(path, sizeof path, "%s/lmdb", src->dir);
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(src->err, sizeof src->err, "%s: not a cairn data directory "
             "(no lmdb/)", src->dir);
    return CAIRN_EINVAL;
  }
  struct store_config cfg = {.dir = path, .log = &tool_logger};
  struct store *s;
  int rc = store_open(&cfg, &s);
  if (!rc) {
    rc = store_snapshot(s, snap_visit, src, &src->ckpt_lsn, &src->epoch);
    store_close(s);
  }
  if (rc) {
    snprintf(src->err, sizeof src->err, "%s: %s", path, cairn_strerror(rc));
    return rc;
  }
  src->lsn = src->ckpt_lsn;
  snprintf(path, sizeof path, "%s/wal", src->dir);
  struct wal_scan_result res;
  rc = wal_scan(path, frame_visit, src, &res);
  if (!rc && res.corrupt) {
    snprintf(src->err, sizeof src->err, "log segment %016" PRIx64 " offset %"
             PRIu64 ": %s (a damaged frame followed by valid ones)",
             res.corrupt_seq, res.corrupt_offset, res.why);
    return CAIRN_ECORRUPT;
  }
  if (rc && !src->err[0])
    snprintf(src->err, sizeof src->err, "%s: %s", path, cairn_strerror(rc));
  return rc;
}

/* Take a shared lock on DIR/LOCK: 0, 1 if another process holds it (a
 * running daemon), or -errno.  A missing LOCK file is not created. */
static int dir_lock(const char *dir, int *fd_out) {
  char path[WAL_PATH_MAX];
  snprintf(path, sizeof path, "%s/LOCK", dir);
  *fd_out = -1;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -errno;
  if (flock(fd, LOCK_SH | LOCK_NB) != 0) {
    int e = errno;
    close(fd);
    return e == EWOULDBLOCK ? 1 : -e;
  }
  *fd_out = fd;
  return 0;
}

/* ------------------------------------------------------------------------
 * Progress: entries/s, bytes and ETA on a terminal only.
 * --------------------------------------------------------------------- */

struct progress {
  int on;
  uint64_t total, t0, last;
};

static void progress_start(struct progress *p, uint64_t total, int quiet) {
  p->on = !quiet && isatty(STDERR_FILENO);
  p->total = total;
  p->t0 = p->last = tool_mono_ms();
}

static void progress(struct progress *p, uint64_t done, uint64_t bytes) {
  uint64_t now = tool_mono_ms();
  if (!p->on || (now - p->last < 200 && done < p->total)) return;
  p->last = now;
  double s = (double)(now - p->t0) / 1000.0, rate = s > 0 ? done / s : 0;
  double eta = rate > 0 && p->total > done ? (p->total - done) / rate : 0;
  fprintf(stderr, "\r%" PRIu64 "/%" PRIu64 " entries  %.1f MiB  %.0f "
          "entries/s  ETA %.0f s   ", done, p->total,
          (double)bytes / 1048576.0, rate, eta);
  fflush(stderr);
}

static void progress_end(struct progress *p) {
  if (p->on) fprintf(stderr, "\r%*s\r", 78, "");
}

/* ------------------------------------------------------------------------
 * Writing the dump.
 * --------------------------------------------------------------------- */

struct opts {
  const char *out, *dir;
  const char *ns[NS_FILTER_MAX];
  int nns, live, list, quiet;
};

static int ns_wanted(const struct opts *o, const char *ns, size_t ns_len) {
  if (!o->nns) return 1;
  for (int i = 0; i < o->nns; i++)
    if (strlen(o->ns[i]) == ns_len && !memcmp(o->ns[i], ns, ns_len)) return 1;
  return 0;
}

/* The deadline of an entry: min(lifespan end, last access + max-idle). */
static int64_t ent_deadline(int64_t expire_at, uint64_t max_idle,
                            int64_t last_access) {
  int64_t d = expire_at > 0 ? expire_at : 0;
  if (max_idle && max_idle < (uint64_t)INT64_MAX / 2) {
    int64_t idle = (last_access > 0 ? last_access : 0) + (int64_t)max_idle;
    if (!d || idle < d) d = idle;
  }
  return d;
}

static int ent_cmp(const void *a, const void *b) {
  const struct ent *x = *(struct ent *const *)a, *y = *(struct ent *const *)b;
  size_t n = MIN(x->ns_len, y->ns_len);
  int c = memcmp(x->ns, y->ns, n);
  if (c || x->ns_len != y->ns_len) return c ? c : (x->ns_len < y->ns_len ? -1 : 1);
  c = memcmp(x->key, y->key, MIN(x->klen, y->klen));
  if (c || x->klen == y->klen) return c;
  return x->klen < y->klen ? -1 : 1;
}

/* The live, wanted, unexpired entries, sorted; *skipped counts expired. */
static struct ent **collect(const struct emap *m, const struct opts *o,
                            int64_t now, size_t *n_out, uint64_t *skipped) {
  struct ent **v = malloc((m->used ? m->used : 1) * sizeof *v);
  if (!v) return NULL;
  size_t n = 0;
  for (size_t i = 0; i < m->cap; i++) {
    struct ent *e = m->slot[i];
    if (!e || !e->live || !ns_wanted(o, e->ns, e->ns_len)) continue;
    int64_t d = ent_deadline(e->expire_at_ms, e->max_idle_ms,
                             e->last_access_ms);
    if (d && d <= now) {
      (*skipped)++;
      continue;
    }
    v[n++] = e;
  }
  if (n) qsort(v, n, sizeof *v, ent_cmp);
  *n_out = n;
  return v;
}

static int write_entries(FILE *f, struct ent **v, size_t n,
                         const struct source *src, int64_t now,
                         const struct opts *o, uint64_t *bytes) {
  struct dump_header h = {.lsn = src->lsn, .epoch = src->epoch,
                          .created_ms = now, .entries = n};
  struct dump_writer *w;
  int rc = dump_writer_new(f, &h, &w);
  if (rc) return rc;
  struct progress p;
  progress_start(&p, n, o->quiet);
  for (size_t i = 0; i < n && !rc; i++) {
    const struct ent *e = v[i];
    struct dump_entry de = {
        .ns = e->ns, .ns_len = e->ns_len, .key = e->key, .klen = e->klen,
        .val = e->val, .vlen = e->vlen, .type = e->type,
        .expire_at_ms = e->expire_at_ms, .max_idle_ms = e->max_idle_ms,
        .last_access_ms = e->last_access_ms};
    rc = dump_writer_add(w, &de);
    progress(&p, i + 1, dump_writer_bytes(w));
  }
  progress_end(&p);
  if (rc) {
    dump_writer_free(w);
    return rc;
  }
  return dump_writer_finish(w, bytes);
}

/* Read the source, retrying a live read that lost its log to a
 * checkpoint. */
static int read_source(struct source *src, int live) {
  int rc = GAP_RC;
  for (int i = 0; i < (live ? DUMP_LIVE_TRIES : 1) && rc == GAP_RC; i++) {
    src->err[0] = '\0';
    rc = source_read(src);
  }
  if (rc == GAP_RC) rc = CAIRN_ECORRUPT;
  if (rc) tool_err(PROG, "%s", src->err[0] ? src->err : cairn_strerror(rc));
  return rc;
}

static int open_output(const struct opts *o, FILE **f) {
  if (!o->out || !strcmp(o->out, "-")) {
    if (isatty(STDOUT_FILENO)) {
      tool_err(PROG, "refusing to write a dump to a terminal; use -o FILE");
      return -1;
    }
    *f = stdout;
    return 0;
  }
  *f = fopen(o->out, "wbe");
  if (!*f) {
    tool_err(PROG, "%s: %s", o->out, strerror(errno));
    return -1;
  }
  return 0;
}

static int close_output(const struct opts *o, FILE *f, int failed) {
  int rc = 0;
  if (f == stdout) {
    if (fflush(f) != 0 || fsync(fileno(f)) != 0)
      rc = errno == EINVAL || errno == EROFS ? 0 : -errno;
    return rc;
  }
  if (!failed && (fflush(f) != 0 || fsync(fileno(f)) != 0)) rc = -errno;
  if (fclose(f) != 0 && !rc) rc = -errno;
  if (rc) tool_err(PROG, "%s: %s", o->out, strerror(-rc));
  if (failed || rc) unlink(o->out);
  return rc;
}

static int do_dump(const struct opts *o) {
  int lock_fd = -1;
  int lr = dir_lock(o->dir, &lock_fd);
  if (lr < 0) {
    tool_err(PROG, "%s/LOCK: %s", o->dir, strerror(-lr));
    return EXIT_FAILURE;
  }
  if (lr == 1 && !o->live) {
    tool_err(PROG, "%s is in use by a running process (cairnd?); use "
             "--live to dump beside it", o->dir);
    return EXIT_BUSY;
  }
  uint64_t t0 = tool_mono_ms();
  struct source src = {.dir = o->dir};
  FILE *f = NULL;
  int rc = read_source(&src, lr == 1);
  if (!rc && open_output(o, &f) != 0) rc = -1;
  uint64_t skipped = 0, bytes = 0;
  size_t n = 0;
  if (!rc) {
    int64_t now = now_ms();
    struct ent **v = collect(&src.map, o, now, &n, &skipped);
    rc = v ? write_entries(f, v, n, &src, now, o, &bytes) : CAIRN_ENOMEM;
    if (rc) tool_err(PROG, "writing %s: %s", o->out ? o->out : "-",
                     cairn_strerror(rc));
    free(v);
    if (close_output(o, f, rc != 0) != 0) rc = -1;
  }
  emap_free(&src.map);
  if (lock_fd >= 0) close(lock_fd);
  if (rc) return EXIT_FAILURE;
  if (!o->quiet)
    fprintf(stderr, PROG ": %zu entries, %" PRIu64 " bytes, as of LSN %"
            PRIu64 " (checkpoint %" PRIu64 " + %" PRIu64 " log records); "
            "%" PRIu64 " expired skipped; %.2f s\n", n, bytes, src.lsn,
            src.ckpt_lsn, src.records, skipped,
            (double)(tool_mono_ms() - t0) / 1000.0);
  return EXIT_SUCCESS;
}

/* ------------------------------------------------------------------------
 * --list: the entries of a dump, one line each, in file order.
 * --------------------------------------------------------------------- */

static const char *type_name(int t) {
  static const char *names[] = {"string", "hash", "set", "zset", "list"};
  return t >= 0 && t <= REC_T_MAX ? names[t] : "?";
}

static void list_entry(const struct dump_entry *e) {
  tool_print_bytes(stdout, e->ns, e->ns_len, SIZE_MAX);
  putchar('\t');
  tool_print_bytes(stdout, e->key, e->klen, SIZE_MAX);
  printf("\t%s\t%" PRId64 "\t%" PRIu64 "\t", type_name(e->type),
         e->expire_at_ms, e->max_idle_ms);
  tool_print_bytes(stdout, e->val, e->vlen, SIZE_MAX);
  putchar('\n');
}

/* Feed the whole of f to r, calling fn per entry.  0, or 1 after an error
 * was printed. */
static int read_dump(FILE *f, const char *name, struct dump_reader *r,
                     void (*fn)(const struct dump_entry *)) {
  static uint8_t buf[1 << 20];
  int rc = 0;
  size_t n;
  while (rc >= 0 && (n = fread(buf, 1, sizeof buf, f)) > 0) {
    rc = dump_reader_feed(r, buf, n);
    struct dump_entry e;
    while (rc >= 0 && (rc = dump_reader_next(r, &e)) == 1) fn(&e);
  }
  if (rc >= 0 && ferror(f)) {
    tool_err(PROG, "%s: %s", name, strerror(errno));
    return 1;
  }
  if (rc >= 0) rc = dump_reader_end(r);
  if (rc < 0) {
    tool_err(PROG, "%s: %s", name, dump_reader_error(r)[0]
                                       ? dump_reader_error(r)
                                       : cairn_strerror(rc));
    return 1;
  }
  return 0;
}

static int do_list(const char *file) {
  FILE *f = strcmp(file, "-") ? fopen(file, "rbe") : stdin;
  if (!f) {
    tool_err(PROG, "%s: %s", file, strerror(errno));
    return EXIT_FAILURE;
  }
  struct dump_reader *r;
  int rc = dump_reader_new(&r) ? 1 : read_dump(f, file, r, list_entry);
  if (!rc) {
    const struct dump_header *h = dump_reader_header(r);
    printf("# lsn %" PRIu64 " epoch %" PRIu64 " created %" PRId64
           " entries %" PRIu64 "\n", h->lsn, h->epoch, h->created_ms,
           h->entries);
  }
  dump_reader_free(r);
  if (f != stdin) fclose(f);
  return rc || fflush(stdout) ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ------------------------------------------------------------------------
 * Command line.
 * --------------------------------------------------------------------- */

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " [-o FILE|-] [--ns NAME]... [--live] [-q] DATA_DIR\n"
          "       " PROG " --list FILE|-\n"
          "Write a consistent dump of DATA_DIR (to stdout by default), or\n"
          "list the entries of a dump.\n"
          "  -o, --output FILE  write the dump to FILE (- for stdout)\n"
          "  -n, --ns NAME      dump only namespace NAME (repeatable)\n"
          "  -l, --live         dump beside a running cairnd\n"
          "  -L, --list         list a dump's entries, one per line\n"
          "  -q, --quiet        no progress or summary\n"
          "  -h, --help         this help\n"
          "  -V, --version      the version\n"
          "Exit: 0 done, 1 error, 2 usage, 3 the directory is in use.\n");
}

static int usage_err(const char *why) {
  tool_err(PROG, "%s", why);
  usage(stderr);
  return EXIT_USAGE;
}

int main(int argc, char **argv) {
  static const struct option lo[] = {
      {"output", required_argument, NULL, 'o'},
      {"ns", required_argument, NULL, 'n'},
      {"live", no_argument, NULL, 'l'},
      {"list", no_argument, NULL, 'L'},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  struct opts o = {0};
  int c;
  while ((c = getopt_long(argc, argv, "o:n:lLqhV", lo, NULL)) != -1) {
    switch (c) {
    case 'o': o.out = optarg; break;
    case 'n':
      if (!*optarg || strlen(optarg) > NS_NAME_MAX)
        return usage_err("a namespace name has 1 to 64 bytes");
      if (o.nns == NS_FILTER_MAX) return usage_err("too many --ns");
      o.ns[o.nns++] = optarg;
      break;
    case 'l': o.live = 1; break;
    case 'L': o.list = 1; break;
    case 'q': o.quiet = 1; break;
    case 'h': usage(stdout); return EXIT_SUCCESS;
    case 'V': tool_version(PROG); return EXIT_SUCCESS;
    default: usage(stderr); return EXIT_USAGE;
    }
  }
  if (optind != argc - 1)
    return usage_err(optind < argc ? "too many arguments"
                                   : o.list ? "missing FILE"
                                            : "missing DATA_DIR");
  if (o.list) return do_list(argv[optind]);
  o.dir = argv[optind];
  return do_dump(&o);
}

/*
 * cairn-dump - write a consistent dump of a data directory (src/dump.h,
 * doc/format-dump.md), or list the entries of a dump.
 *
 *   cairn-dump [-o FILE|-] [--ns NAME]... [--live] DATA_DIR
 *   cairn-dump --list FILE|-
 *
 * The dump is the state as of one LSN: the store's last checkpoint (one
 * LMDB read transaction, a consistent snapshot) with every complete log
 * frame after it applied in LSN order.  Nothing in DATA_DIR is written,
 * except LMDB's own reader table in lmdb/lock.mdb; cairn_open is never
 * called (its close would checkpoint).
 *
 * One pass, with memory in proportion to the log tail only.  Inside the
 * snapshot's transaction, before its first entry, the log after the
 * checkpoint is read and its records grouped by key (the tail); the tail's
 * keys are sorted in the store's data-key order (store.h).  The snapshot
 * is then streamed in that same order and merged with them: a key the
 * tail touched is written with its records applied over the snapshot's
 * value (or over nothing, for a key the snapshot lacks), any other entry
 * straight from LMDB into the dump's block.  So the dump comes out in the
 * store's key order, which lets cairn-restore append instead of sort.
 * The entry count is known only at the end: the header is rewritten then
 * (DUMP_ENTRIES_LATER), which needs a seekable output; a dump to stdout is
 * spooled through an unlinked temporary file.
 *
 * While dumping, the tool holds a shared flock on DIR/LOCK, so no daemon
 * can open the directory meanwhile.  If a process already holds it (a
 * running cairnd), the tool refuses unless --live: then the same reading
 * runs beside the daemon.  That blocks no writer; a checkpoint that
 * commits between the snapshot and the log scan may release the log the
 * snapshot needs, which shows as a gap in LSNs before anything was
 * written, and the tool starts over (DUMP_LIVE_TRIES times).
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
#include "table.h"
#include "toolutil.h"
#include "util.h"
#include "wal.h"

#define PROG "cairn-dump"
#define EXIT_USAGE 2
#define EXIT_BUSY 3
#define DUMP_LIVE_TRIES 5
#define NS_FILTER_MAX 64
#define GAP_RC (-EAGAIN) /* the log after the snapshot is gone: retry */
#define DK_BUF 512       /* a data key (store.h: at most 503 bytes) */
#define VERSION_MEM_BIT (1ull << 63) /* a version that is not an LSN */

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

/* ------------------------------------------------------------------------
 * Data keys: the store's order (store.h), rebuilt from its documented
 * layout so that the tail can be merged into the snapshot's stream.
 * --------------------------------------------------------------------- */

static void put_be(uint8_t *p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; i++) p[i] = (uint8_t)(v >> (8 * (bytes - 1 - i)));
}

/* The data key of (ns, key) at dst (DK_BUF bytes); returns its length. */
static size_t dkey_make(uint8_t *dst, const struct store *s, const char *ns,
                        size_t ns_len, const void *key, size_t klen) {
  uint64_t h = table_hash(key, klen);
  size_t sk = store_klen_max(s, ns_len);
  dst[0] = (uint8_t)ns_len;
  memcpy(dst + 1, ns, ns_len);
  dst[1 + ns_len] = (uint8_t)table_shard(h);
  put_be(dst + 2 + ns_len, h >> 32, 4);
  uint8_t *part = dst + 6 + ns_len;
  if (klen <= sk) {
    memcpy(part, key, klen);
    return 6 + ns_len + klen;
  }
  /* A long key's stand-in: its first sk - 8 bytes, 0xff, XXH3-64. */
  memcpy(part, key, sk - 8);
  part[sk - 8] = 0xff;
  put_be(part + sk - 7, hash64(key, klen), 8);
  return 6 + ns_len + sk + 1;
}

/* LMDB's default order: bytewise, then shorter first. */
static int dkey_cmp(const uint8_t *a, size_t alen, const uint8_t *b,
                    size_t blen) {
  int c = memcmp(a, b, MIN(alen, blen));
  if (c) return c;
  return alen < blen ? -1 : alen > blen;
}

/* ------------------------------------------------------------------------
 * The log tail: the records past the checkpoint, in LSN order per key.
 * --------------------------------------------------------------------- */

struct trec {
  struct trec *next;
  uint64_t lsn;
  uint8_t op, flags, type;
  int64_t expire_at_ms, ts_ms;
  uint64_t max_idle_ms;
  uint32_t vlen;
  uint8_t val[];
};

struct tkey {
  uint64_t hash;         /* of (ns, key), for the map */
  struct trec *first, *last;
  uint8_t *key, *dk;     /* one allocation: key then data key */
  uint32_t klen;
  uint16_t dk_len;
  uint8_t ns_len;
  char ns[NS_NAME_MAX];
};

struct tail {
  struct tkey **slot;    /* open addressing, grown at half load */
  size_t cap, used;
  struct tkey **order;   /* every key, in data-key order */
  size_t pos;            /* order[pos] is the next one to write */
};

static uint64_t tkey_hash(const char *ns, size_t ns_len, const void *key,
                          size_t klen) {
  return hash64_2(ns, ns_len, key, klen) ^ ns_len;
}

static size_t tail_pos(const struct tail *t, uint64_t h, const char *ns,
                       size_t ns_len, const void *key, size_t klen) {
  size_t i = h & (t->cap - 1);
  for (;;) { /* never full: it grows at half load */
    const struct tkey *k = t->slot[i];
    if (!k || (k->hash == h && k->ns_len == ns_len && k->klen == klen &&
               !memcmp(k->ns, ns, ns_len) && !memcmp(k->key, key, klen)))
      return i;
    i = (i + 1) & (t->cap - 1);
  }
}

static int tail_grow(struct tail *t) {
  size_t cap = t->cap ? t->cap * 2 : 1024;
  struct tkey **s = calloc(cap, sizeof *s);
  if (!s) return CAIRN_ENOMEM;
  for (size_t i = 0; i < t->cap; i++) {
    struct tkey *k = t->slot[i];
    if (!k) continue;
    size_t j = k->hash & (cap - 1);
    while (s[j]) j = (j + 1) & (cap - 1);
    s[j] = k;
  }
  free(t->slot);
  t->slot = s;
  t->cap = cap;
  return 0;
}

/* The key (ns, key), created if missing; NULL: no memory. */
static struct tkey *tail_key(struct tail *t, const char *ns, size_t ns_len,
                             const void *key, size_t klen) {
  if ((t->used + 1) * 2 > t->cap && tail_grow(t) != 0) return NULL;
  uint64_t h = tkey_hash(ns, ns_len, key, klen);
  size_t i = tail_pos(t, h, ns, ns_len, key, klen);
  if (t->slot[i]) return t->slot[i];
  struct tkey *k = calloc(1, sizeof *k);
  if (!k || !(k->key = malloc(klen + DK_BUF))) {
    free(k);
    return NULL;
  }
  k->hash = h;
  k->ns_len = (uint8_t)ns_len;
  memcpy(k->ns, ns, ns_len);
  memcpy(k->key, key, klen);
  k->klen = (uint32_t)klen;
  k->dk = k->key + klen;
  t->slot[i] = k;
  t->used++;
  return k;
}

/* Keep a copy of one (non-batch) record at lsn. */
static int tail_add(struct tail *t, uint64_t lsn, const struct rec *r) {
  struct tkey *k = tail_key(t, r->ns, r->ns_len, r->key, r->klen);
  struct trec *x = k ? malloc(sizeof *x + r->vlen) : NULL;
  if (!x) return CAIRN_ENOMEM;
  *x = (struct trec){.lsn = lsn, .op = r->op, .flags = r->flags,
                     .type = r->type, .expire_at_ms = r->expire_at_ms,
                     .ts_ms = (int64_t)r->ts_ms, .max_idle_ms = r->max_idle_ms,
                     .vlen = r->vlen};
  if (r->vlen) memcpy(x->val, r->val, r->vlen);
  if (k->last) k->last->next = x;
  else k->first = x;
  k->last = x;
  return 0;
}

static void tail_free(struct tail *t) {
  for (size_t i = 0; i < t->cap; i++) {
    struct tkey *k = t->slot[i];
    if (!k) continue;
    for (struct trec *x = k->first, *n; x; x = n) {
      n = x->next;
      free(x);
    }
    free(k->key);
    free(k);
  }
  free(t->slot);
  free(t->order);
  memset(t, 0, sizeof *t);
}

static int tkey_cmp(const void *a, const void *b) {
  const struct tkey *x = *(struct tkey *const *)a, *y = *(struct tkey *const *)b;
  return dkey_cmp(x->dk, x->dk_len, y->dk, y->dk_len);
}

/* Put the tail's keys in data-key order. */
static int tail_sort(struct tail *t, const struct store *s) {
  t->order = malloc((t->used ? t->used : 1) * sizeof *t->order);
  if (!t->order) return CAIRN_ENOMEM;
  size_t n = 0;
  for (size_t i = 0; i < t->cap; i++) {
    struct tkey *k = t->slot[i];
    if (!k) continue;
    k->dk_len = (uint16_t)dkey_make(k->dk, s, k->ns, k->ns_len, k->key,
                                    k->klen);
    t->order[n++] = k;
  }
  if (n) qsort(t->order, n, sizeof *t->order, tkey_cmp);
  t->pos = 0;
  return 0;
}

/* ------------------------------------------------------------------------
 * An entry's state while the tail's records are applied to it.
 * --------------------------------------------------------------------- */

struct state {
  int live, type;
  const void *val;       /* borrowed, or own */
  size_t vlen;
  void *own;             /* a collection rebuilt by coll_apply */
  int64_t expire_at_ms, last_access_ms;
  uint64_t max_idle_ms;
};

static void state_set_own(struct state *st, void *blob, size_t n) {
  free(st->own);
  st->own = blob;
  st->val = blob;
  st->vlen = n;
}

/* Apply one record as recovery applies it (db.c). */
static int state_apply(struct state *st, const struct trec *x) {
  switch (x->op) {
  case REC_PUT:
    state_set_own(st, NULL, 0);
    *st = (struct state){.live = 1, .type = x->type, .val = x->val,
                         .vlen = x->vlen, .expire_at_ms = x->expire_at_ms,
                         .last_access_ms = x->ts_ms,
                         .max_idle_ms = x->max_idle_ms};
    return 0;
  case REC_COLL: {
    int on_base = st->live && !(x->flags & REC_F_FRESH);
    if (on_base && st->type != x->type) return CAIRN_ECORRUPT;
    void *blob = NULL;
    size_t n = 0;
    if (coll_apply(x->type, on_base ? st->val : NULL, on_base ? st->vlen : 0,
                   x->val, x->vlen, &blob, &n) != 0)
      return CAIRN_ECORRUPT;
    state_set_own(st, blob, n);
    st->live = blob != NULL;
    st->type = x->type;
    st->expire_at_ms = x->expire_at_ms;
    st->max_idle_ms = x->max_idle_ms;
    st->last_access_ms = x->ts_ms;
    return 0;
  }
  case REC_EXPIRE:
    if (st->live) {
      st->expire_at_ms = x->expire_at_ms;
      st->max_idle_ms = x->max_idle_ms;
      st->last_access_ms = x->ts_ms;
    }
    return 0;
  case REC_DEL:
  case REC_EXPIRED:
    st->live = 0;
    return 0;
  default:
    return CAIRN_ECORRUPT;
  }
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
 * Reading the source and writing the dump, in one pass.
 * --------------------------------------------------------------------- */

struct source {
  const struct opts *o;
  struct store *store;
  struct tail tail;
  FILE *f;
  struct dump_writer *w;
  int scanned;                   /* the log was read, w was started */
  int64_t now;
  uint64_t ckpt_lsn, epoch, lsn; /* lsn: the last one read from the log */
  uint64_t records, skipped, total_est;
  struct progress prog;
  char err[WAL_PATH_MAX + 256];
};

/* Keep the records of one frame past the checkpoint. */
static int tail_frame(struct source *src, const struct frame_hdr *h,
                      const void *raw) {
  size_t off = 0;
  for (uint64_t lsn = h->first_lsn; lsn <= h->last_lsn; lsn++) {
    struct rec r;
    int rc = rec_decode(raw, h->raw_len, &off, &r);
    if (rc) return rc;
    if (lsn <= src->lsn) continue;
    src->records++;
    size_t soff = 0;
    uint32_t n = r.op == REC_BATCH ? r.klen : 1;
    for (uint32_t i = 0; i < n; i++) { /* bounded by the batch's count */
      struct rec sub = r;
      if (r.op == REC_BATCH &&
          (rec_decode(r.val, r.vlen, &soff, &sub) != 0 || sub.op == REC_BATCH))
        return CAIRN_ECORRUPT;
      if (!ns_wanted(src->o, sub.ns, sub.ns_len)) continue;
      if ((rc = tail_add(&src->tail, lsn, &sub)) != 0) return rc;
    }
  }
  return 0;
}

/* wal_frame_fn: the frames past the checkpoint, which must follow on. */
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
  int rc = tail_frame(src, h, raw);
  if (rc) {
    snprintf(src->err, sizeof src->err, "%s offset %" PRIu64 ": a record "
             "of LSNs %" PRIu64 "..%" PRIu64 ": %s", path, offset,
             h->first_lsn, h->last_lsn, cairn_strerror(rc));
    return rc;
  }
  src->lsn = h->last_lsn;
  src->epoch = h->epoch;
  return 0;
}

/* Read the log past the snapshot's checkpoint, sort the tail, and start
 * the dump (its LSN is now known). */
static int tail_begin(struct source *src, const char *dir) {
  char path[WAL_PATH_MAX];
  src->scanned = 1;
  src->lsn = src->ckpt_lsn;
  snprintf(path, sizeof path, "%s/wal", dir);
  struct wal_scan_result res;
  int rc = wal_scan(path, frame_visit, src, &res);
  if (!rc && res.corrupt) {
    snprintf(src->err, sizeof src->err, "log segment %016" PRIx64 " offset %"
             PRIu64 ": %s (a damaged frame followed by valid ones)",
             res.corrupt_seq, res.corrupt_offset, res.why);
    return CAIRN_ECORRUPT;
  }
  if (rc && !src->err[0])
    snprintf(src->err, sizeof src->err, "%s: %s", path, cairn_strerror(rc));
  if (!rc) rc = tail_sort(&src->tail, src->store);
  struct dump_header h = {.lsn = src->lsn, .epoch = src->epoch,
                          .created_ms = src->now,
                          .entries = DUMP_ENTRIES_LATER};
  if (!rc) rc = dump_writer_new(src->f, &h, &src->w);
  if (!rc) progress_start(&src->prog, src->total_est, src->o->quiet);
  return rc;
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

/* Write one entry, unless it has expired. */
static int emit(struct source *src, struct dump_entry *e) {
  int64_t d = ent_deadline(e->expire_at_ms, e->max_idle_ms,
                           e->last_access_ms);
  if (d && d <= src->now) {
    src->skipped++;
    return 0;
  }
  int rc = dump_writer_add(src->w, e);
  if (src->prog.on)
    progress(&src->prog, dump_writer_entries(src->w),
             dump_writer_bytes(src->w));
  return rc;
}

/* Write a tail key: its records applied over the snapshot's value base
 * (NULL: the snapshot lacks the key).  Records a partial checkpoint
 * already folded into base (LSN <= its version) are not applied again. */
static int tail_emit(struct source *src, const struct tkey *k,
                     const struct store_val *base) {
  struct state st = {0};
  uint64_t ver = 0;
  if (base) {
    st = (struct state){.live = 1, .type = base->type <= REC_T_MAX
                                               ? base->type : REC_T_STRING,
                        .val = base->data, .vlen = base->len,
                        .expire_at_ms = base->expire_at_ms,
                        .last_access_ms = base->last_access_ms,
                        .max_idle_ms = base->max_idle_ms};
    ver = base->version & VERSION_MEM_BIT ? 0 : base->version;
  }
  int rc = 0;
  for (const struct trec *x = k->first; x && !rc; x = x->next)
    if (x->lsn > ver) rc = state_apply(&st, x);
  if (!rc && st.live) {
    struct dump_entry e = {
        .ns = k->ns, .ns_len = k->ns_len, .key = k->key, .klen = k->klen,
        .val = st.val, .vlen = st.vlen, .type = st.type,
        .expire_at_ms = st.expire_at_ms, .max_idle_ms = st.max_idle_ms,
        .last_access_ms = st.last_access_ms};
    rc = emit(src, &e);
  }
  free(st.own);
  if (rc == CAIRN_ECORRUPT)
    snprintf(src->err, sizeof src->err, "the log's records for a key of %"
             PRIu32 " bytes do not apply to its value", k->klen);
  return rc;
}

/* store_snap_fn: one snapshot entry, merged with the tail keys before it. */
static int snap_visit(void *arg, const char *ns, size_t ns_len,
                      const void *key, size_t klen,
                      const struct store_val *v) {
  struct source *src = arg;
  int rc;
  if (!src->scanned && (rc = tail_begin(src, src->o->dir)) != 0) return rc;
  if (!ns_wanted(src->o, ns, ns_len)) return 0;
  struct tail *t = &src->tail;
  if (t->pos < t->used) {
    uint8_t dk[DK_BUF];
    size_t dl = dkey_make(dk, src->store, ns, ns_len, key, klen);
    while (t->pos < t->used) { /* each pass takes one tail key */
      struct tkey *k = t->order[t->pos];
      int c = dkey_cmp(k->dk, k->dk_len, dk, dl);
      if (c > 0) break;
      t->pos++;
      if (c == 0 && k->klen == klen && !memcmp(k->key, key, klen))
        return tail_emit(src, k, v);
      if ((rc = tail_emit(src, k, NULL)) != 0) return rc;
    }
  }
  struct dump_entry e = {
      .ns = ns, .ns_len = ns_len, .key = key, .klen = klen, .val = v->data,
      .vlen = v->len, .type = v->type <= REC_T_MAX ? v->type : REC_T_STRING,
      .expire_at_ms = v->expire_at_ms, .max_idle_ms = v->max_idle_ms,
      .last_access_ms = v->last_access_ms};
  return emit(src, &e);
}

static void quiet_log(void *arg, int level, const char *msg) {
  (void)arg;
  if (level <= CAIRN_LOG_ERROR) fprintf(stderr, PROG ": %s\n", msg);
}

static const struct logger tool_logger = {quiet_log, NULL, CAIRN_LOG_ERROR};

/* One attempt: the snapshot merged with the log.  0, GAP_RC (nothing was
 * written) or an error (src->err says what, when it can). */
static int source_dump(struct source *src) {
  char path[WAL_PATH_MAX];
  tail_free(&src->tail);
  src->records = src->skipped = 0;
  src->scanned = 0;
  snprintf(path, sizeof path, "%s/lmdb", src->o->dir);
  struct stat st;
  if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) {
    snprintf(src->err, sizeof src->err, "%s: not a cairn data directory "
             "(no lmdb/)", src->o->dir);
    return CAIRN_EINVAL;
  }
  struct store_config cfg = {.dir = path, .log = &tool_logger};
  int rc = store_open(&cfg, &src->store);
  if (rc) {
    snprintf(src->err, sizeof src->err, "%s: %s", path, cairn_strerror(rc));
    return rc;
  }
  struct store_stats ss;
  src->total_est = store_stats(src->store, &ss) == 0 ? ss.entries : 0;
  rc = store_snapshot(src->store, snap_visit, src, &src->ckpt_lsn,
                      &src->epoch);
  if (!rc && !src->scanned) rc = tail_begin(src, src->o->dir); /* empty */
  struct tail *t = &src->tail;
  while (!rc && t->pos < t->used) rc = tail_emit(src, t->order[t->pos++], NULL);
  store_close(src->store);
  src->store = NULL;
  if (rc && !src->err[0])
    snprintf(src->err, sizeof src->err, "%s: %s", src->o->dir,
             cairn_strerror(rc));
  return rc;
}

/* Dump, retrying a live read that lost its log to a checkpoint. */
static int dump_source(struct source *src, int live) {
  int rc = GAP_RC;
  for (int i = 0; i < (live ? DUMP_LIVE_TRIES : 1) && rc == GAP_RC; i++) {
    src->err[0] = '\0';
    rc = source_dump(src);
  }
  if (rc == GAP_RC) rc = CAIRN_ECORRUPT;
  progress_end(&src->prog);
  if (rc) tool_err(PROG, "%s", src->err[0] ? src->err : cairn_strerror(rc));
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
 * The output: FILE, or stdout through a spool file.
 * --------------------------------------------------------------------- */

static int to_stdout(const struct opts *o) {
  return !o->out || !strcmp(o->out, "-");
}

static int open_output(const struct opts *o, FILE **f) {
  if (to_stdout(o) && isatty(STDOUT_FILENO)) {
    tool_err(PROG, "refusing to write a dump to a terminal; use -o FILE");
    return -1;
  }
  /* The header is rewritten at the end, so the output must be seekable
   * and readable: stdout gets a spool file, copied to it at the end. */
  *f = to_stdout(o) ? tmpfile() : fopen(o->out, "w+be");
  if (!*f) {
    tool_err(PROG, "%s: %s", to_stdout(o) ? "temporary file" : o->out,
             strerror(errno));
    return -1;
  }
  return 0;
}

static int spool_copy(FILE *f) {
  static uint8_t buf[1 << 20];
  if (fseeko(f, 0, SEEK_SET) != 0) return -errno;
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0)
    if (fwrite(buf, 1, n, stdout) != n) return errno ? -errno : -EIO;
  if (ferror(f)) return errno ? -errno : -EIO;
  if (fflush(stdout) != 0) return -errno;
  if (fsync(STDOUT_FILENO) != 0 && errno != EINVAL && errno != EROFS)
    return -errno;
  return 0;
}

static int close_output(const struct opts *o, FILE *f, int failed) {
  int rc = 0;
  if (to_stdout(o)) {
    if (!failed) rc = spool_copy(f);
    fclose(f);
    if (rc) tool_err(PROG, "writing stdout: %s", strerror(-rc));
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
  uint64_t t0 = tool_mono_ms(), bytes = 0, n = 0;
  struct source src = {.o = o, .now = now_ms()};
  int rc = open_output(o, &src.f);
  if (!rc) rc = dump_source(&src, lr == 1);
  if (!rc) {
    n = dump_writer_entries(src.w);
    rc = dump_writer_finish(src.w, &bytes);
    src.w = NULL;
    if (rc) tool_err(PROG, "writing %s: %s", o->out ? o->out : "-",
                     cairn_strerror(rc));
  }
  dump_writer_free(src.w);
  if (src.f && close_output(o, src.f, rc != 0) != 0) rc = -1;
  tail_free(&src.tail);
  if (lock_fd >= 0) close(lock_fd);
  if (rc) return EXIT_FAILURE;
  if (!o->quiet)
    fprintf(stderr, PROG ": %" PRIu64 " entries, %" PRIu64 " bytes, as of "
            "LSN %" PRIu64 " (checkpoint %" PRIu64 " + %" PRIu64 " log "
            "records); %" PRIu64 " expired skipped; %.2f s\n", n, bytes,
            src.lsn, src.ckpt_lsn, src.records, src.skipped,
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

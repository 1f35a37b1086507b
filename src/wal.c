/*
 * wal.c - the write-ahead log: segment files, group commit, recovery.
 *
 * The only file that includes <liburing.h>.
 *
 * On disk.  A log directory holds segment files "%016" PRIx64 ".wal",
 * numbered from 1 in the order the log fills them.  Each is created as
 * "NAME.tmp", preallocated to segment_bytes with fallocate, fdatasynced,
 * renamed into place and made durable with an fsync of the directory, so a
 * segment under its final name is always fully allocated.  A frame larger
 * than segment_bytes gets a segment extended to fit it.
 *
 *   segment: frame frame ... frame [END frame] zeros | stale bytes
 *
 * Frames (frame.h) start at offset 0 and follow each other, each padded to
 * FRAME_ALIGN.  The first frame of the log sets the expected LSN; every
 * later frame must start exactly at the expected LSN.  The data of a
 * segment ends at:
 *   - four zero bytes where a magic is expected (every write of a frame
 *     carries FRAME_TRAILER zero bytes after it, which the next frame
 *     overwrites, so this holds in recycled segments too);
 *   - a FRAME_F_END frame: the log moved on to the next segment on purpose
 *     (it is written, and the segment fdatasynced, before leaving);
 *   - a valid frame whose first LSN is below the expected one: stale data
 *     of a recycled segment;
 *   - the end of the file.
 * The log goes on in the next segment if its first frame continues the
 * LSN sequence.  A bad frame (header, checksum, payload, or length past
 * the file) is corruption in mid-log when a valid frame with an LSN at or
 * above the expected one follows it anywhere, and a torn tail otherwise.
 * Recovery truncates a torn tail (zeroes it) and refuses mid-log
 * corruption unless asked to salvage what precedes it.
 *
 * In memory.  Writers append encoded records to one of two buffers under
 * the mutex; the log thread swaps buffers, frames the full one, writes it
 * at the current offset (linked to an fdatasync when a record needs it or
 * unsynced data has waited interval_ms), then advances written_lsn and
 * durable_lsn and runs the completions.  Exactly one flush is in flight.
 *
 * Frames from a leader.  A follower's log is fed whole frames
 * (wal_append_frame) instead of records.  They are checked (header,
 * checksum, records, first LSN == last_lsn + 1, epoch not older), copied
 * into a group of their own (a raw group: one kind of content per group,
 * so records pending are flushed first and LSN order holds), and the log
 * thread writes them unchanged, as many per write as fit the segment, the
 * last write fdatasynced.  The log's epoch follows theirs.  On disk they
 * are indistinguishable from the log's own frames.
 *
 * Reading frames back.  Each segment entry knows the LSN its first frame
 * has (or will have), so a cursor finds the segment of an LSN without
 * reading, walks the headers of that one segment to the frame, and then
 * keeps (segment, offset, expected LSN).  It reads with pread and trusts
 * bytes only up to the written LSN sampled before the read; every frame
 * it hands out is checked for the expected LSN and its checksum, so a
 * segment recycled under it reads as CAIRN_ENOTFOUND, never as data.
 *
 * Retention.  wal_release keeps every segment holding an LSN above the
 * floor set by wal_retain (the followers' oldest need).
 *
 * Cutting a tail (wal_truncate_after), offline: the frame that begins
 * after the cut LSN and the rest of its segment are zeroed, later
 * segments deleted; recovery then finds the log's end there.
 *
 * Locks: seg_mu (segment files, the spare, the segment list) is taken
 * before mu (buffers, positions, counters), never the other way round.
 * Cursors take each only for a moment, one at a time.
 */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "frame.h"
#include "limits.h"
#include "sys.h"
#include "util.h"
#include "wal.h"

#define FRAME_TRAILER 8u          /* zero bytes written after each frame */
#define RETRY_MS      100u        /* backoff while the disk is full */
#define SEGMENTS_MAX  (1u << 20)  /* segment files a directory may hold */
#define ZERO_CHUNK    (64u * 1024u)
#define EINTR_MAX     1000u
#define GATHER_NS_MAX 200000u     /* longest wait for a group to fill */
#define LINGER_NS_MAX 200000u     /* longest wait for a burst (wal_linger) */

_Static_assert(FRAME_TRAILER % FRAME_ALIGN == 0, "trailer keeps alignment");
_Static_assert(FRAME_TRAILER <= FRAME_HDR_BYTES, "trailer fits the END room");

struct seg_ent {
  uint64_t seq;
  uint64_t first_lsn; /* LSN its first frame has or will have; 0: none */
  uint64_t last_lsn;  /* of its last frame; 0 if none */
};

struct comp {
  uint64_t lsn;
  cairn_durability mode;
  cairn_done_fn done;
  void *arg;
};

/* Records waiting for one flush, and the completions they carry.  A raw
 * group holds whole frames received from a leader instead of records. */
struct group {
  unsigned char *data;
  size_t len, cap;
  uint64_t first_lsn, last_lsn; /* 0 when empty */
  int need_sync;
  int raw;          /* data holds frames (wal_append_frame), not records */
  uint64_t nframes; /* raw: frames in data */
  uint64_t epoch;   /* records: stamped on their frame, set at the swap */
  struct comp *comps;
  size_t ncomp, comp_cap;
};

struct wal {
  struct wal_config cfg;
  char *dir;
  const struct logger *log;
  size_t end_len; /* room always kept for the END frame */

  pthread_mutex_t mu;
  pthread_cond_t log_cv, writer_cv, done_cv;
  struct group grp[2];
  int cur;               /* the group writers fill */
  size_t reserved, nres; /* outstanding reservations: bytes, count */
  uint64_t last_lsn, written_lsn, durable_lsn;
  /* Frames up to shipped_lsn are whole in the segment files, though
   * perhaps not yet fdatasynced: senders may ship them while the
   * fdatasync runs, so that a follower's sync overlaps ours.  It is
   * ship_next once the write of the frames up to ship_next completed. */
  uint64_t shipped_lsn, ship_next;
  int failed, stop, exited, nospace, sync_req;
  unsigned holds;        /* wal_hold: no frame may end while > 0 */
  unsigned lingering;    /* wal_linger: a burst of appends is under way */
  unsigned blocked;      /* writers in wait_locked */
  int gave_up; /* closed while the disk was full: nothing more is written */
  uint64_t avail_cur;      /* bytes left in the current segment */
  uint64_t avail_spare;    /* bytes of the ready spare; 0: none */
  uint64_t inflight_bound; /* bytes the flush in flight may take */
  uint64_t next_alloc_ns;  /* no spare allocation before this */
  struct wal_stats st;
  /* cfg.epoch (set by wal_set_epoch and wal_append_frame) is under mu. */

  pthread_mutex_t seg_mu;
  struct seg_ent *segs; /* live segments in order; the current is last */
  size_t nsegs, segs_cap;
  int fd;
  uint64_t seq, off, seg_size;
  int spare_fd; /* segment seq + 1, ready; -1: none */
  uint64_t spare_size;
  uint64_t retain_floor; /* wal_retain; atomic, so setting it never waits */

  /* Log thread only. */
  pthread_t thread;
  int thread_started;
  uint64_t disk_next;   /* first LSN of the next frame on disk */
  uint64_t disk_epoch;  /* of the last frame written: END frames carry it */
  uint64_t unsynced_ns; /* when unsynced data was first written; 0: none */
  uint64_t gather_target; /* records in the last synced group */
  uint64_t sync_ns;       /* recent time of a write + fdatasync */
  int uring;
  struct io_uring ring;
  unsigned char *fbuf;
  size_t fcap;
};

/* ------------------------------------------------------------------------
 * Small helpers.
 * --------------------------------------------------------------------- */

void wal_segment_path(const char *dir, uint64_t seq, char *buf) {
  snprintf(buf, WAL_PATH_MAX, "%s/%016" PRIx64 ".wal", dir, seq);
}

static void lock(pthread_mutex_t *m) { pthread_mutex_lock(m); }
static void unlock(pthread_mutex_t *m) { pthread_mutex_unlock(m); }

/* Wait on cv until woken or until the monotonic time until_ns. */
static void wait_until(pthread_cond_t *cv, pthread_mutex_t *mu,
                       uint64_t until_ns) {
  struct timespec ts = {.tv_sec = (time_t)(until_ns / 1000000000u),
                        .tv_nsec = (long)(until_ns % 1000000000u)};
  pthread_cond_timedwait(cv, mu, &ts);
}

static uint64_t interval_ns(const struct wal *w) {
  return (uint64_t)w->cfg.interval_ms * 1000000u;
}

static int grow(void **p, size_t *cap, size_t need, size_t elem) {
  if (*cap >= need) return 0;
  size_t n = *cap ? *cap : 16;
  while (n < need) n *= 2;
  void *q = realloc(*p, n * elem);
  if (!q) return CAIRN_ENOMEM;
  *p = q;
  *cap = n;
  return 0;
}

/* Make room in g for `bytes` more record bytes and `n` more completions. */
static int group_grow(struct group *g, size_t bytes, size_t n) {
  int rc = grow((void **)&g->data, &g->cap, g->len + bytes, 1);
  if (rc == 0)
    rc = grow((void **)&g->comps, &g->comp_cap, g->ncomp + n,
              sizeof(struct comp));
  return rc;
}

static void group_reset(struct group *g) {
  g->len = 0;
  g->first_lsn = g->last_lsn = 0;
  g->need_sync = 0;
  g->raw = 0;
  g->nframes = 0;
  g->ncomp = 0;
}

/* The log can no longer be trusted to reach the disk: log why, make it
 * read-only for good and wake everyone.  Never retried: after a failed
 * fdatasync the kernel may have dropped the dirty pages.  Returns
 * CAIRN_EIO.  Called without mu held. */
static int wal_fatal(struct wal *w, uint64_t seq, const char *what, int err) {
  char path[WAL_PATH_MAX];
  wal_segment_path(w->dir, seq, path);
  log_error(w->log, "%s: %s failed: %s (errno %d); the log is read-only",
            path, what, strerror(err), err);
  lock(&w->mu);
  w->failed = 1;
  w->st.failed = 1;
  pthread_cond_broadcast(&w->log_cv);
  pthread_cond_broadcast(&w->writer_cv);
  pthread_cond_broadcast(&w->done_cv);
  unlock(&w->mu);
  return CAIRN_EIO;
}

/* The disk is full: writers get CAIRN_EFULL until space comes back. */
static int nospace_enter(struct wal *w, uint64_t seq, const char *what) {
  lock(&w->mu);
  int was = w->nospace;
  w->nospace = 1;
  w->next_alloc_ns = mono_ns() + RETRY_MS * 1000000ull;
  pthread_cond_broadcast(&w->writer_cv);
  unlock(&w->mu);
  if (!was) {
    char path[WAL_PATH_MAX];
    wal_segment_path(w->dir, seq, path);
    log_warn(w->log, "%s: %s: no space left on device; writes are refused "
             "until space is freed", path, what);
  }
  return -ENOSPC;
}

static void nospace_leave(struct wal *w) {
  lock(&w->mu);
  int was = w->nospace;
  w->nospace = 0;
  pthread_cond_broadcast(&w->writer_cv);
  unlock(&w->mu);
  if (was) log_info(w->log, "space for the log is available again");
}

static uint64_t seg_room(const struct wal *w) {
  return w->seg_size >= w->off + w->end_len
             ? w->seg_size - w->off - w->end_len : 0;
}

/* ------------------------------------------------------------------------
 * Listing and reading segments.
 * --------------------------------------------------------------------- */

static int cmp_u64(const void *a, const void *b) {
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

/* Parse "%016" PRIx64 ".wal"; returns 1 and sets *seq if name is one. */
static int seg_name(const char *name, uint64_t *seq) {
  if (strlen(name) != 20 || strcmp(name + 16, ".wal") != 0) return 0;
  uint64_t v = 0;
  for (int i = 0; i < 16; i++) {
    char c = name[i];
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
    if (d < 0) return 0;
    v = v << 4 | (uint64_t)d;
  }
  *seq = v;
  return 1;
}

/* The segment numbers in dir, sorted.  A missing dir has none. */
static int seg_list(const char *dir, uint64_t **out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : -errno;
  uint64_t *v = NULL;
  size_t n = 0, cap = 0;
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL) {
    uint64_t seq;
    if (!seg_name(e->d_name, &seq)) continue;
    if (n >= SEGMENTS_MAX) { rc = CAIRN_ECORRUPT; break; }
    if ((rc = grow((void **)&v, &cap, n + 1, sizeof *v)) != 0) break;
    v[n++] = seq;
  }
  closedir(d);
  if (rc) { free(v); return rc; }
  if (n) qsort(v, n, sizeof *v, cmp_u64);
  *out = v;
  *n_out = n;
  return 0;
}

struct map {
  unsigned char *p;
  size_t len;
};

static int map_open(const char *dir, uint64_t seq, struct map *m) {
  char path[WAL_PATH_MAX];
  wal_segment_path(dir, seq, path);
  m->p = NULL;
  m->len = 0;
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -errno;
  struct stat st;
  int rc = 0;
  if (fstat(fd, &st) != 0) rc = -errno;
  else if ((uint64_t)st.st_size > SEGMENT_SCAN_MAX) rc = CAIRN_ECORRUPT;
  else if (st.st_size > 0) {
    void *p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (p == MAP_FAILED) rc = -errno;
    else { m->p = p; m->len = (size_t)st.st_size; }
  }
  close(fd);
  return rc;
}

static void map_close(struct map *m) {
  if (m->p) munmap(m->p, m->len);
  m->p = NULL;
}

/* ------------------------------------------------------------------------
 * Scanning: classify every frame of the log, read-only.
 * --------------------------------------------------------------------- */

struct scan {
  const char *dir;
  wal_frame_fn fn;
  void *arg;
  struct wal_scan_result *res;
  uint64_t *seqs, *last; /* per segment: number, last LSN of its frames */
  size_t n;
  unsigned char *scratch;
  size_t scratch_cap;
  uint64_t expected;
  int have; /* expected is set */
};

enum { AT_VALID, AT_ZERO, AT_EOF, AT_BAD };

/* What is at off in m: AT_* or CAIRN_ENOMEM.  AT_VALID fills h and raw,
 * AT_BAD sets why. */
static int frame_at(struct scan *s, const struct map *m, size_t off,
                    struct frame_hdr *h, const void **raw, const char **why) {
  if (m->len - off < 4) return AT_EOF;
  if (get_u32(m->p + off) == 0) return AT_ZERO;
  if (frame_hdr_decode(m->p + off, m->len - off, h, why) != 0) return AT_BAD;
  if (frame_len(h) > m->len - off) {
    *why = "frame runs past the end of the file";
    return AT_BAD;
  }
  if (grow((void **)&s->scratch, &s->scratch_cap, h->raw_len, 1) != 0)
    return CAIRN_ENOMEM;
  if (frame_payload(m->p + off, h, s->scratch, raw, why) != 0) return AT_BAD;
  return AT_VALID;
}

/* Is there a valid frame at or above the expected LSN after (i, off)? */
static int scan_valid_after(struct scan *s, size_t i, const struct map *m,
                            size_t off, int *found) {
  *found = 0;
  for (size_t j = i; j < s->n && !*found; j++) {
    struct map mj = *m;
    size_t p = off + FRAME_ALIGN;
    if (j != i) {
      int rc = map_open(s->dir, s->seqs[j], &mj);
      if (rc) return rc;
      p = 0;
    }
    for (; p + FRAME_HDR_BYTES <= mj.len; p += FRAME_ALIGN) {
      if (get_u32(mj.p + p) != FRAME_MAGIC) continue;
      struct frame_hdr h;
      const void *raw;
      const char *why;
      int at = frame_at(s, &mj, p, &h, &raw, &why);
      if (at < 0) {
        if (j != i) map_close(&mj);
        return at;
      }
      if (at == AT_VALID && (!s->have || h.first_lsn >= s->expected)) {
        *found = 1;
        break;
      }
    }
    if (j != i) map_close(&mj);
  }
  return 0;
}

/* A bad frame at (i, off): mid-log corruption or a torn tail. */
static int scan_bad(struct scan *s, size_t i, const struct map *m, size_t off,
                    const char *why) {
  struct wal_scan_result *res = s->res;
  int found;
  int rc = scan_valid_after(s, i, m, off, &found);
  if (rc) return rc;
  if (found) {
    res->corrupt = 1;
    res->corrupt_seq = s->seqs[i];
    res->corrupt_offset = off;
  } else {
    size_t e = m->len;
    while (e > off && m->p[e - 1] == 0) e--;
    res->torn = 1;
    res->torn_seq = s->seqs[i];
    res->torn_offset = off;
    res->torn_bytes = e - off;
    res->torn_lsn = s->have ? s->expected : 0;
  }
  snprintf(res->why, sizeof res->why, "%s", why ? why : "bad frame");
  res->end_seq = s->seqs[i];
  res->end_offset = off;
  return 0;
}

static int scan_deliver(struct scan *s, size_t i, size_t off,
                        const struct frame_hdr *h, const void *raw) {
  struct wal_scan_result *res = s->res;
  res->frames++;
  res->records += h->last_lsn - h->first_lsn + 1;
  if (!res->first_lsn) res->first_lsn = h->first_lsn;
  res->last_lsn = h->last_lsn;
  s->last[i] = h->last_lsn;
  s->expected = h->last_lsn + 1;
  if (!s->fn) return 0;
  char path[WAL_PATH_MAX];
  wal_segment_path(s->dir, s->seqs[i], path);
  return s->fn(s->arg, path, off, h, raw);
}

enum { SEG_DATA_END, SEG_END_FRAME, SEG_BAD };

/* Walk the frames of segment i; *how says what ended them, at *off. */
static int scan_segment(struct scan *s, size_t i, const struct map *m,
                        size_t *off_out, int *how) {
  size_t off = 0;
  /* Each valid frame moves off forward by at least a header. */
  for (;;) {
    struct frame_hdr h;
    const void *raw = NULL;
    const char *why = NULL;
    int at = frame_at(s, m, off, &h, &raw, &why);
    *off_out = off;
    if (at < 0) return at;
    *how = SEG_DATA_END;
    if (at == AT_ZERO || at == AT_EOF) return 0;
    if (at == AT_VALID && s->have && h.first_lsn < s->expected) return 0;
    if (at == AT_VALID && s->have && h.first_lsn > s->expected) {
      at = AT_BAD;
      why = "LSN gap";
    }
    if (at == AT_BAD) {
      *how = SEG_BAD;
      return scan_bad(s, i, m, off, why);
    }
    if (!s->have) {
      s->have = 1;
      s->expected = h.first_lsn;
    }
    if (h.flags & FRAME_F_END) {
      *how = SEG_END_FRAME;
      return 0;
    }
    int rc = scan_deliver(s, i, off, &h, raw);
    if (rc) return rc;
    off += frame_len(&h);
  }
}

/* Does segment i go on with the log?  1 yes, 0 no (the log ended), or an
 * error.  After an END frame a bad first frame is a bad frame of the log;
 * otherwise segment i is a leftover (a spare, zeroed or recycled). */
static int scan_continues(struct scan *s, size_t i, int after_end) {
  struct map m;
  int rc = map_open(s->dir, s->seqs[i], &m);
  if (rc) return rc;
  struct frame_hdr h;
  const void *raw;
  const char *why = NULL;
  int at = m.len ? frame_at(s, &m, 0, &h, &raw, &why) : AT_EOF;
  if (at < 0) rc = at;
  else if (at == AT_VALID) rc = !s->have || h.first_lsn == s->expected;
  else if (at == AT_BAD && after_end) rc = scan_bad(s, i, &m, 0, why);
  else rc = 0;
  map_close(&m);
  return rc;
}

static int scan_run(struct scan *s) {
  struct wal_scan_result *res = s->res;
  res->end_seq = s->n ? s->seqs[0] : 1;
  for (size_t i = 0; i < s->n; i++) {
    struct map m;
    int rc = map_open(s->dir, s->seqs[i], &m);
    if (rc) return rc;
    size_t off = 0;
    int how = SEG_DATA_END;
    rc = scan_segment(s, i, &m, &off, &how);
    map_close(&m);
    if (rc || how == SEG_BAD) return rc;
    res->segments++;
    res->end_seq = how == SEG_END_FRAME ? s->seqs[i] + 1 : s->seqs[i];
    res->end_offset = how == SEG_END_FRAME ? 0 : off;
    if (i + 1 == s->n) return 0;
    rc = scan_continues(s, i + 1, how == SEG_END_FRAME);
    if (rc <= 0 || res->torn || res->corrupt) return rc < 0 ? rc : 0;
  }
  return 0;
}

/* wal_scan, also handing back the segment numbers and their last LSNs. */
static int scan_dir(const char *dir, wal_frame_fn fn, void *arg,
                    struct wal_scan_result *res, uint64_t **seqs_out,
                    uint64_t **last_out, size_t *n_out) {
  struct scan s = {.dir = dir, .fn = fn, .arg = arg, .res = res};
  memset(res, 0, sizeof *res);
  int rc = seg_list(dir, &s.seqs, &s.n);
  if (rc) return rc;
  s.last = calloc(s.n ? s.n : 1, sizeof *s.last);
  if (!s.last) rc = CAIRN_ENOMEM;
  if (rc == 0) rc = scan_run(&s);
  free(s.scratch);
  if (rc == 0 && seqs_out) {
    *seqs_out = s.seqs;
    *last_out = s.last;
    *n_out = s.n;
    return 0;
  }
  free(s.seqs);
  free(s.last);
  return rc;
}

int wal_scan(const char *dir, wal_frame_fn fn, void *arg,
             struct wal_scan_result *res) {
  struct wal_scan_result r;
  int rc = scan_dir(dir, fn, arg, &r, NULL, NULL, NULL);
  if (rc == 0) *res = r;
  return rc;
}

/* ------------------------------------------------------------------------
 * Segment files.
 * --------------------------------------------------------------------- */

/* Create segment seq of size bytes, durable under its final name.
 * Returns 0, or -errno with *what naming the step that failed. */
static int seg_create(const char *dir, uint64_t seq, uint64_t size,
                      int *fd_out, const char **what) {
  char path[WAL_PATH_MAX], tmp[WAL_PATH_MAX + 8];
  wal_segment_path(dir, seq, path);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = sys_ops.open(tmp, O_RDWR | O_CREAT | O_TRUNC, 0644);
  if (fd < 0) {
    *what = "create";
    return -errno;
  }
  int rc = 0;
  if (sys_ops.fallocate(fd, 0, 0, (off_t)size) != 0) {
    *what = "fallocate";
    rc = -errno;
  } else if (sys_ops.fdatasync(fd) != 0) {
    *what = "fdatasync";
    rc = -errno;
  } else if (sys_ops.rename(tmp, path) != 0) {
    *what = "rename";
    rc = -errno;
  } else if ((rc = sys_fsync_dir(dir)) != 0) {
    *what = "fsync of the directory";
  }
  if (rc) {
    close(fd);
    sys_ops.unlink(tmp);
    return rc;
  }
  *fd_out = fd;
  return 0;
}

/* Make the spare (segment seq + 1) ready.  seg_mu held.  Returns 0,
 * -ENOSPC or CAIRN_EIO. */
static int spare_make(struct wal *w, uint64_t size) {
  const char *what = "create";
  int fd = -1;
  int rc = seg_create(w->dir, w->seq + 1, size, &fd, &what);
  if (rc == -ENOSPC) return nospace_enter(w, w->seq + 1, what);
  if (rc) return wal_fatal(w, w->seq + 1, what, -rc);
  w->spare_fd = fd;
  w->spare_size = size;
  lock(&w->mu);
  w->avail_spare = size - w->end_len;
  unlock(&w->mu);
  nospace_leave(w);
  return 0;
}

/* Extend the spare to size bytes, for a frame larger than a segment. */
static int spare_extend(struct wal *w, uint64_t size) {
  if (sys_ops.fallocate(w->spare_fd, 0, 0, (off_t)size) != 0) {
    int err = errno;
    if (err == ENOSPC) return nospace_enter(w, w->seq + 1, "fallocate");
    return wal_fatal(w, w->seq + 1, "fallocate", err);
  }
  if (sys_ops.fdatasync(w->spare_fd) != 0)
    return wal_fatal(w, w->seq + 1, "fdatasync", errno);
  w->spare_size = size;
  return 0;
}

/* Close the current segment with an END frame, durably, before leaving
 * it, so recovery tells a rotation from a torn tail. */
static int seg_leave(struct wal *w) {
  if (w->off + w->end_len <= w->seg_size) {
    unsigned char end[FRAME_HDR_BYTES + 64];
    cairn_assert(frame_bound(0) <= sizeof end);
    size_t n = frame_encode(end, w->disk_epoch, w->disk_next,
                            w->disk_next - 1, FRAME_F_END, NULL, 0);
    int rc = sys_pwrite_all(w->fd, end, n, (off_t)w->off);
    if (rc == -ENOSPC) return nospace_enter(w, w->seq, "write");
    if (rc) return wal_fatal(w, w->seq, "write", -rc);
  }
  if (sys_ops.fdatasync(w->fd) != 0)
    return wal_fatal(w, w->seq, "fdatasync", errno);
  w->unsynced_ns = 0;
  lock(&w->mu);
  w->durable_lsn = w->written_lsn;
  w->st.syncs++;
  pthread_cond_broadcast(&w->done_cv);
  unlock(&w->mu);
  return 0;
}

/* Move to the next segment, one of at least need bytes.  seg_mu held. */
static int seg_rotate(struct wal *w, uint64_t need) {
  int rc = 0;
  if (w->spare_fd < 0)
    rc = spare_make(w, MAX(w->cfg.segment_bytes, need));
  if (rc == 0 && w->spare_size < need) rc = spare_extend(w, need);
  if (rc == 0) rc = seg_leave(w);
  if (rc == 0 && grow((void **)&w->segs, &w->segs_cap, w->nsegs + 1,
                      sizeof *w->segs) != 0)
    rc = wal_fatal(w, w->seq + 1, "growing the segment list", ENOMEM);
  if (rc) return rc;
  close(w->fd);
  w->fd = w->spare_fd;
  w->seq++;
  w->off = 0;
  w->seg_size = w->spare_size;
  w->spare_fd = -1;
  w->spare_size = 0;
  w->segs[w->nsegs++] =
      (struct seg_ent){.seq = w->seq, .first_lsn = w->disk_next};
  lock(&w->mu);
  w->avail_cur = seg_room(w);
  w->avail_spare = 0;
  w->st.segments = w->nsegs;
  unlock(&w->mu);
  return 0;
}

/* Zero segment seq of dir from off to its end, durably: cuts a torn
 * tail, everything from a bad frame on when salvaging, or a divergent
 * tail (wal_truncate_after). */
static int seg_zero(const char *dir, const struct logger *log, uint64_t seq,
                    uint64_t off) {
  char path[WAL_PATH_MAX];
  wal_segment_path(dir, seq, path);
  int fd = sys_ops.open(path, O_RDWR, 0);
  if (fd < 0) return -errno;
  static const unsigned char zeros[ZERO_CHUNK];
  struct stat st;
  int rc = fstat(fd, &st) != 0 ? -errno : 0;
  uint64_t end = rc ? 0 : (uint64_t)st.st_size;
  for (uint64_t p = off; rc == 0 && p < end; p += ZERO_CHUNK)
    rc = sys_pwrite_all(fd, zeros, (size_t)MIN((uint64_t)ZERO_CHUNK, end - p),
                        (off_t)p);
  if (rc == 0 && sys_ops.fdatasync(fd) != 0) rc = -errno;
  close(fd);
  if (rc) log_error(log, "%s: cannot cut the log at offset %" PRIu64 ": %s",
                    path, off, strerror(-rc));
  return rc;
}

static int seg_cut(struct wal *w, uint64_t seq, uint64_t off) {
  return seg_zero(w->dir, w->log, seq, off);
}

/* ------------------------------------------------------------------------
 * Writing: io_uring, or pwritev + fdatasync.
 * --------------------------------------------------------------------- */

/* The write of the frames up to w->ship_next completed: senders may read
 * them (cursors, wal_wait_written). */
static void ship_publish(struct wal *w) {
  lock(&w->mu);
  if (w->ship_next > w->shipped_lsn) {
    w->shipped_lsn = w->ship_next;
    pthread_cond_broadcast(&w->done_cv);
  }
  unlock(&w->mu);
}

/* Submit a write (if len) linked to an fdatasync (if sync) and reap both;
 * every result passes through sys_ops.uring_result. */
static int uring_run(struct wal *w, const void *buf, size_t len, uint64_t off,
                     int sync, int *wres, int *sres) {
  unsigned n = 0;
  struct io_uring_sqe *sqe;
  if (len) {
    sqe = io_uring_get_sqe(&w->ring);
    cairn_assert(sqe);
    io_uring_prep_write(sqe, w->fd, buf, (unsigned)len, off);
    sqe->user_data = SYS_OP_WRITE;
    if (sync) sqe->flags |= IOSQE_IO_LINK;
    n++;
  }
  if (sync) {
    sqe = io_uring_get_sqe(&w->ring);
    cairn_assert(sqe);
    io_uring_prep_fsync(sqe, w->fd, IORING_FSYNC_DATASYNC);
    sqe->user_data = SYS_OP_FDATASYNC;
    n++;
  }
  int rc;
  unsigned tries = 0;
  do rc = io_uring_submit(&w->ring);
  while ((rc == -EINTR || rc == -EAGAIN) && ++tries < EINTR_MAX);
  if (rc < 0) return rc;
  for (unsigned i = 0; i < n; i++) {
    struct io_uring_cqe *cqe;
    tries = 0;
    do rc = io_uring_wait_cqe(&w->ring, &cqe);
    while (rc == -EINTR && ++tries < EINTR_MAX);
    if (rc < 0) return rc;
    int op = (int)cqe->user_data;
    int res = sys_ops.uring_result(op, cqe->res);
    io_uring_cqe_seen(&w->ring, cqe);
    *(op == SYS_OP_WRITE ? wres : sres) = res;
    if (op == SYS_OP_WRITE && res == (int)len && sync) ship_publish(w);
  }
  return 0;
}

static int uring_write(struct wal *w, const unsigned char *buf, size_t len,
                       int sync) {
  int wres = (int)len, sres = 0;
  int rc = uring_run(w, buf, len, w->off, sync, &wres, &sres);
  if (rc < 0) return wal_fatal(w, w->seq, "io_uring submit", -rc);
  if (wres == -ENOSPC) return -ENOSPC;
  if (wres < 0) return wal_fatal(w, w->seq, "write", -wres);
  if (sync && sres < 0 && (size_t)wres == len)
    return wal_fatal(w, w->seq, "fdatasync", -sres);
  if ((size_t)wres < len) {
    /* A short write breaks the link, so its fdatasync was cancelled (or
     * ran before the rest was written): write the rest, then sync anew.
     * An fdatasync that ran and failed is still fatal. */
    if (sync && sres < 0 && sres != -ECANCELED)
      return wal_fatal(w, w->seq, "fdatasync", -sres);
    rc = sys_pwrite_all(w->fd, buf + wres, len - (size_t)wres,
                        (off_t)(w->off + (uint64_t)wres));
    if (rc == -ENOSPC) return -ENOSPC;
    if (rc) return wal_fatal(w, w->seq, "write", -rc);
    if (!sync) return 0;
    sres = 0;
    rc = uring_run(w, NULL, 0, 0, 1, &wres, &sres);
    if (rc < 0) return wal_fatal(w, w->seq, "io_uring submit", -rc);
    if (sres < 0) return wal_fatal(w, w->seq, "fdatasync", -sres);
  }
  return 0;
}

static int plain_sync(struct wal *w) {
  if (sys_ops.fdatasync(w->fd) != 0)
    return wal_fatal(w, w->seq, "fdatasync", errno);
  return 0;
}

static int plain_write(struct wal *w, const unsigned char *buf, size_t len,
                       int sync) {
  size_t done = 0;
  unsigned eintr = 0;
  /* Each pass writes at least a byte or leaves the loop. */
  while (done < len) {
    struct iovec iov = {.iov_base = (void *)(buf + done),
                        .iov_len = len - done};
    ssize_t k = sys_ops.pwritev(w->fd, &iov, 1, (off_t)(w->off + done));
    if (k < 0) {
      int err = errno;
      if (err == EINTR && ++eintr < EINTR_MAX) continue;
      if (err == ENOSPC) return -ENOSPC;
      return wal_fatal(w, w->seq, "write", err);
    }
    if (k == 0) return wal_fatal(w, w->seq, "write", EIO);
    done += (size_t)k;
  }
  if (!sync) return 0;
  ship_publish(w);
  return plain_sync(w);
}

/* Write len bytes at the current offset, synced if asked.  Returns 0,
 * -ENOSPC (nothing acknowledged; try again later) or CAIRN_EIO. */
static int io_write(struct wal *w, const unsigned char *buf, size_t len,
                    int sync) {
  return w->uring ? uring_write(w, buf, len, sync)
                  : plain_write(w, buf, len, sync);
}

static int io_sync(struct wal *w) {
  if (!w->uring) return plain_sync(w);
  int wres = 0, sres = 0;
  int rc = uring_run(w, NULL, 0, 0, 1, &wres, &sres);
  if (rc < 0) return wal_fatal(w, w->seq, "io_uring submit", -rc);
  if (sres < 0) return wal_fatal(w, w->seq, "fdatasync", -sres);
  return 0;
}

/* ------------------------------------------------------------------------
 * The log thread.
 * --------------------------------------------------------------------- */

/* Rotate first if a frame of flen bytes does not fit the segment. */
static int group_place(struct wal *w, size_t flen) {
  uint64_t need = flen + w->end_len;
  if (w->off + need <= w->seg_size) return 0;
  lock(&w->seg_mu);
  int rc = seg_rotate(w, need);
  unlock(&w->seg_mu);
  return rc;
}

/* Sleep RETRY_MS while the disk is full.  0 if closing: give up then. */
static int backoff(struct wal *w, unsigned attempt) {
  lock(&w->mu);
  int go_on = !(w->stop && attempt > 0);
  uint64_t until = mono_ns() + RETRY_MS * 1000000ull;
  while (go_on && !w->stop && mono_ns() < until)
    wait_until(&w->log_cv, &w->mu, until);
  unlock(&w->mu);
  return go_on;
}

/* Write the frames in w->fbuf[0..flen) (LSNs first..last, the last one
 * of epoch), followed by FRAME_TRAILER zeros, at the current offset,
 * rotating first if they do not fit.  On ENOSPC the frames are kept and
 * the write (never an fdatasync) retried until it succeeds.  Returns 0,
 * CAIRN_EIO, or CAIRN_EFULL if the log closes while the disk is still
 * full. */
static int frames_write(struct wal *w, size_t flen, uint64_t first,
                        uint64_t last, uint64_t epoch, int sync) {
  memset(w->fbuf + flen, 0, FRAME_TRAILER);
  for (unsigned attempt = 0;; attempt++) {
    int rc = group_place(w, flen);
    w->ship_next = last;
    if (rc == 0) rc = io_write(w, w->fbuf, flen + FRAME_TRAILER, sync);
    if (rc == 0) break;
    if (rc != -ENOSPC) return rc;
    nospace_enter(w, w->seq, "write");
    if (!backoff(w, attempt)) return CAIRN_EFULL;
  }
  w->off += flen;
  w->disk_next = last + 1;
  w->disk_epoch = epoch;
  lock(&w->seg_mu);
  struct seg_ent *e = &w->segs[w->nsegs - 1];
  if (!e->first_lsn) e->first_lsn = first;
  e->last_lsn = last;
  unlock(&w->seg_mu);
  lock(&w->mu);
  int was_full = w->nospace;
  w->avail_cur = seg_room(w);
  unlock(&w->mu);
  if (was_full) nospace_leave(w);
  return 0;
}

/* Frame the records of g and write them. */
static int group_write(struct wal *w, const struct group *g, int sync,
                       size_t *flen_out) {
  size_t bound = frame_bound(g->len) + FRAME_TRAILER;
  if (grow((void **)&w->fbuf, &w->fcap, bound, 1) != 0)
    return wal_fatal(w, w->seq, "allocating a frame", ENOMEM);
  size_t flen = frame_encode(w->fbuf, g->epoch, g->first_lsn, g->last_lsn,
                             0, g->data, g->len);
  int rc = frames_write(w, flen, g->first_lsn, g->last_lsn, g->epoch, sync);
  if (rc == 0) *flen_out = flen;
  return rc;
}

/* The frames of raw group g from byte off that go into one write: as many
 * as fit the room left in the current segment or, if the first does not,
 * in the segment a rotation makes for it; always at least one.  Returns
 * where they end, with their LSNs and the last one's epoch. */
static size_t raw_chunk(const struct wal *w, const struct group *g,
                        size_t off, uint64_t *first, uint64_t *last,
                        uint64_t *epoch) {
  uint64_t room = w->seg_size >= w->off + w->end_len
                      ? w->seg_size - w->off - w->end_len : 0;
  size_t end = off;
  /* Each pass takes a frame; the frames were checked when queued. */
  while (end < g->len) {
    struct frame_hdr h;
    const char *why;
    int rc = frame_hdr_decode(g->data + end, g->len - end, &h, &why);
    cairn_assert(rc == 0);
    size_t flen = frame_len(&h);
    if (end == off) {
      if (flen > room) room = MAX(w->cfg.segment_bytes, flen + w->end_len)
                              - w->end_len;
      *first = h.first_lsn;
    } else if (end - off + flen > room) {
      break;
    }
    *last = h.last_lsn;
    *epoch = h.epoch;
    end += flen;
  }
  return end;
}

/* Write the frames of raw group g unchanged, as few writes as segment
 * boundaries allow; the last write is fdatasynced (a rotation fdatasyncs
 * the segment it leaves). */
static int raw_write(struct wal *w, const struct group *g, size_t *bytes) {
  size_t off = 0;
  /* Each pass writes at least one frame. */
  while (off < g->len) {
    uint64_t first = 0, last = 0, epoch = 0;
    size_t end = raw_chunk(w, g, off, &first, &last, &epoch);
    size_t n = end - off;
    if (grow((void **)&w->fbuf, &w->fcap, n + FRAME_TRAILER, 1) != 0)
      return wal_fatal(w, w->seq, "allocating a frame", ENOMEM);
    memcpy(w->fbuf, g->data + off, n);
    int rc = frames_write(w, n, first, last, epoch, end == g->len);
    if (rc) return rc;
    off = end;
  }
  *bytes = g->len;
  return 0;
}

static void run_comps(const struct group *g, int rc) {
  for (size_t i = 0; i < g->ncomp; i++)
    g->comps[i].done(g->comps[i].arg, rc, g->comps[i].lsn);
}

/* A group that needs no fdatasync waits for the burst under way to end
 * (wal_linger), unless a writer is blocked on the log.  mu held. */
static void linger(struct wal *w) {
  uint64_t deadline =
      mono_ns() + (w->cfg.linger_ns ? w->cfg.linger_ns : LINGER_NS_MAX);
  while (w->lingering && !w->blocked && !w->stop && !w->failed &&
         mono_ns() < deadline)
    wait_until(&w->log_cv, &w->mu, deadline);
}

/* Group commit: a flush that will fdatasync first waits a little for the
 * writers that the previous flush released, so that they share this
 * fdatasync instead of each paying for the next one.  The wait ends once
 * the group is as large as the last synced one and no reserved record is
 * still on its way, and lasts at most half an fdatasync: at worst a write
 * waits 50% longer, while a full group saves whole fdatasyncs.  A lone
 * writer never waits (its last group had one record). 
 * mu held. */
static void gather(struct wal *w) {
  const struct group *g = &w->grp[w->cur];
  /* A burst's end (wal_linger) is a better signal than the guess below:
   * every writer of the burst is in, and the rest wait for the reply. */
  if (!g->need_sync || (w->lingering && !g->raw)) {
    linger(w);
    return;
  }
  if (w->stop || w->failed || w->gather_target < 2) return;
  uint64_t deadline = mono_ns() + MIN(w->sync_ns / 2, GATHER_NS_MAX);
  while (!w->stop &&
         (g->last_lsn - g->first_lsn + 1 < w->gather_target || w->nres > 0)) {
    if (mono_ns() >= deadline) break;
    wait_until(&w->log_cv, &w->mu, deadline);
  }
}

/* Remember the size of a synced group and how long its flush took. */
static void gather_learn(struct wal *w, const struct group *g, uint64_t ns) {
  w->gather_target = g->last_lsn - g->first_lsn + 1;
  w->sync_ns = w->sync_ns ? (w->sync_ns * 7 + ns) / 8 : ns;
}

/* Swap the groups and flush the full one.  mu held (released during the
 * I/O).  With the log failed, only fails the completions. */
static void flush_group(struct wal *w) {
  struct group *g = &w->grp[w->cur], *next = &w->grp[!w->cur];
  /* Writers holding reservations will append into the next group. */
  if (group_grow(next, w->reserved, w->nres) != 0) {
    wait_until(&w->log_cv, &w->mu, mono_ns() + 10000000u);
    return;
  }
  w->cur = !w->cur;
  uint64_t now = mono_ns();
  int sync = g->need_sync || w->sync_req || w->stop ||
             (w->unsynced_ns && now - w->unsynced_ns >= interval_ns(w));
  if (sync) w->sync_req = 0;
  int failed = w->failed, gave_up = w->gave_up;
  g->epoch = w->cfg.epoch;
  w->inflight_bound = g->raw ? g->len + FRAME_TRAILER + w->end_len
                             : frame_bound(g->len) + w->end_len;
  pthread_cond_broadcast(&w->writer_cv);
  unlock(&w->mu);

  size_t flen = 0;
  int rc = failed    ? CAIRN_EIO
           : gave_up ? CAIRN_EFULL
           : g->raw  ? raw_write(w, g, &flen)
                     : group_write(w, g, sync, &flen);
  if (rc == 0 && sync) gather_learn(w, g, mono_ns() - now);
  if (rc == CAIRN_EFULL && !gave_up) {
    log_error(w->log, "closing with the disk still full: records from LSN "
              "%" PRIu64 " on were not written", g->first_lsn);
    lock(&w->mu);
    w->gave_up = 1; /* later frames would leave a gap in the log */
    unlock(&w->mu);
  }
  if (rc == 0 && !sync && !w->unsynced_ns) w->unsynced_ns = now;
  if (rc == 0 && sync) w->unsynced_ns = 0;

  lock(&w->mu);
  w->inflight_bound = 0;
  if (rc == 0) {
    w->written_lsn = g->last_lsn;
    w->shipped_lsn = MAX(w->shipped_lsn, w->written_lsn);
    if (sync) {
      w->durable_lsn = g->last_lsn;
      w->st.syncs++;
    }
    w->st.frames += g->raw ? g->nframes : 1;
    w->st.bytes += flen;
  }
  pthread_cond_broadcast(&w->done_cv);
  pthread_cond_broadcast(&w->writer_cv);
  unlock(&w->mu);
  /* g is the log thread's own until the next swap. */
  run_comps(g, rc);
  lock(&w->mu);
  group_reset(g);
}

/* fdatasync what was written but not yet synced.  mu held. */
static void sync_only(struct wal *w) {
  uint64_t target = w->written_lsn;
  w->sync_req = 0;
  unlock(&w->mu);
  int rc = io_sync(w);
  if (rc == 0) w->unsynced_ns = 0;
  lock(&w->mu);
  if (rc == 0) {
    w->durable_lsn = MAX(w->durable_lsn, target);
    w->st.syncs++;
    pthread_cond_broadcast(&w->done_cv);
  }
}

static int sync_due(const struct wal *w, uint64_t now) {
  if (w->written_lsn <= w->durable_lsn) return 0;
  return w->sync_req || w->stop ||
         (w->unsynced_ns && now - w->unsynced_ns >= interval_ns(w));
}

/* Sleep until there is work: an append, a sync due, a spare to retry. */
static void idle_wait(struct wal *w) {
  uint64_t until = UINT64_MAX;
  if (w->written_lsn > w->durable_lsn && w->unsynced_ns)
    until = w->unsynced_ns + interval_ns(w);
  if (w->avail_spare == 0) until = MIN(until, w->next_alloc_ns);
  if (until == UINT64_MAX) pthread_cond_wait(&w->log_cv, &w->mu);
  else wait_until(&w->log_cv, &w->mu, until);
}

static void spare_try(struct wal *w) {
  lock(&w->seg_mu);
  if (w->spare_fd < 0) spare_make(w, w->cfg.segment_bytes);
  unlock(&w->seg_mu);
}

static void *log_main(void *arg) {
  struct wal *w = arg;
  lock(&w->mu);
  for (;;) {
    uint64_t now = mono_ns();
    /* The spare comes first: writers may be waiting for its room. */
    if (w->avail_spare == 0 && !w->stop && !w->failed &&
        now >= w->next_alloc_ns) {
      unlock(&w->mu);
      spare_try(w);
      lock(&w->mu);
    } else if (w->grp[w->cur].len > 0 && !w->holds) {
      gather(w);
      flush_group(w);
    } else if (w->failed) {
      if (w->stop) break;
      pthread_cond_wait(&w->log_cv, &w->mu);
    } else if (sync_due(w, now)) {
      sync_only(w);
    } else if (w->stop) {
      break;
    } else {
      idle_wait(w);
    }
  }
  w->exited = 1;
  pthread_cond_broadcast(&w->done_cv);
  pthread_cond_broadcast(&w->writer_cv);
  unlock(&w->mu);
  return NULL;
}

/* ------------------------------------------------------------------------
 * Writers.
 * --------------------------------------------------------------------- */

enum { SPACE_OK = 0, SPACE_WAIT = 1 };

/* Can raw bytes of records, framed, still go to disk?  Counts the current
 * segment and a ready spare; a larger need is met by allocating at
 * rotation unless the disk is known to be full. */
static int space_need(const struct wal *w, uint64_t framed) {
  uint64_t need = w->inflight_bound + framed + FRAME_TRAILER;
  if (need <= w->avail_cur + w->avail_spare) return SPACE_OK;
  if (w->nospace) return CAIRN_EFULL;
  return w->avail_spare ? SPACE_OK : SPACE_WAIT;
}

static int space_check(const struct wal *w, size_t raw) {
  return space_need(w, frame_bound(raw));
}

int wal_reserve(struct wal *w, size_t bytes) {
  lock(&w->mu);
  int rc;
  /* Each wait ends with a flush, a new spare, a failure or the close. */
  for (;;) {
    if (w->failed) { rc = CAIRN_EIO; break; }
    if (w->stop) { rc = CAIRN_ECLOSING; break; }
    struct group *g = &w->grp[w->cur];
    size_t used = g->len + w->reserved;
    rc = space_check(w, used + bytes);
    /* A record over the cap goes into an empty buffer; while the frame is
     * held open (wal_hold), the buffer grows instead, since no flush can
     * come to empty it. */
    if (rc == SPACE_OK && used > 0 && used + bytes > w->cfg.group_max_bytes &&
        !w->holds)
      rc = SPACE_WAIT;
    /* Leader frames queued (a follower being promoted): they go first. */
    if (rc == SPACE_OK && g->raw && g->len > 0) rc = SPACE_WAIT;
    if (rc == SPACE_OK) rc = group_grow(g, w->reserved + bytes, w->nres + 1);
    if (rc == SPACE_WAIT && w->holds) rc = CAIRN_EFULL;
    if (rc != SPACE_WAIT) break;
    if (w->nospace) w->next_alloc_ns = 0; /* retry allocating now */
    w->blocked++;
    pthread_cond_signal(&w->log_cv);
    pthread_cond_wait(&w->writer_cv, &w->mu);
    w->blocked--;
  }
  if (rc == 0) {
    w->reserved += bytes;
    w->nres++;
  }
  unlock(&w->mu);
  return rc;
}

void wal_unreserve(struct wal *w, size_t bytes) {
  lock(&w->mu);
  cairn_assert(w->nres > 0 && w->reserved >= bytes);
  w->reserved -= bytes;
  w->nres--;
  pthread_cond_broadcast(&w->writer_cv);
  unlock(&w->mu);
}

void wal_hold(struct wal *w) {
  lock(&w->mu);
  w->holds++;
  unlock(&w->mu);
}

void wal_linger(struct wal *w, int on) {
  lock(&w->mu);
  if (on) {
    w->lingering++;
  } else {
    cairn_assert(w->lingering > 0);
    if (--w->lingering == 0) pthread_cond_signal(&w->log_cv);
  }
  unlock(&w->mu);
}

void wal_release_hold(struct wal *w) {
  lock(&w->mu);
  cairn_assert(w->holds > 0);
  w->holds--;
  pthread_cond_signal(&w->log_cv);
  unlock(&w->mu);
}

void wal_reserve_shrink(struct wal *w, size_t bytes) {
  lock(&w->mu);
  cairn_assert(w->nres > 0 && w->reserved >= bytes);
  w->reserved -= bytes;
  pthread_cond_broadcast(&w->writer_cv);
  unlock(&w->mu);
}

uint64_t wal_append(struct wal *w, const struct rec *r, cairn_durability mode,
                    cairn_done_fn done, void *done_arg) {
  size_t size = rec_size(r);
  lock(&w->mu);
  cairn_assert(w->nres > 0 && w->reserved >= size);
  w->reserved -= size;
  w->nres--;
  struct group *g = &w->grp[w->cur];
  cairn_assert(g->len + size <= g->cap && g->ncomp < g->comp_cap);
  g->len += rec_encode(r, g->data + g->len);
  uint64_t lsn = ++w->last_lsn;
  if (!g->first_lsn) g->first_lsn = lsn;
  g->last_lsn = lsn;
  if (mode == CAIRN_DURABILITY_FSYNC) g->need_sync = 1;
  if (done)
    g->comps[g->ncomp++] =
        (struct comp){.lsn = lsn, .mode = mode, .done = done, .arg = done_arg};
  /* In a burst the log thread would only wake to linger again. */
  if (!w->lingering) pthread_cond_signal(&w->log_cv);
  unlock(&w->mu);
  return lsn;
}

/* Wait until lsn is covered in mode.  mu held. */
static int wait_locked(struct wal *w, uint64_t lsn, cairn_durability mode) {
  /* Each wake-up follows a flush, a sync, a failure or the close. */
  for (;;) {
    uint64_t pos = mode == CAIRN_DURABILITY_FSYNC ? w->durable_lsn
                                                  : w->written_lsn;
    if (pos >= lsn) return 0;
    if (w->failed) return CAIRN_EIO;
    if (w->exited || lsn > w->last_lsn) return CAIRN_ECLOSING;
    w->blocked++;
    pthread_cond_signal(&w->log_cv); /* it may be lingering */
    pthread_cond_wait(&w->done_cv, &w->mu);
    w->blocked--;
  }
}

int wal_wait(struct wal *w, uint64_t lsn, cairn_durability mode) {
  lock(&w->mu);
  int rc = wait_locked(w, lsn, mode);
  unlock(&w->mu);
  return rc;
}

int wal_sync(struct wal *w) {
  lock(&w->mu);
  uint64_t target = w->last_lsn;
  if (w->durable_lsn < target && !w->failed) {
    w->sync_req = 1;
    pthread_cond_signal(&w->log_cv);
  }
  int rc = wait_locked(w, target, CAIRN_DURABILITY_FSYNC);
  unlock(&w->mu);
  return rc;
}

/* ------------------------------------------------------------------------
 * Frames from a leader (a follower's log).
 * --------------------------------------------------------------------- */

/* Is frame[0..len) one whole valid frame that carries records?  Fills h.
 * Checked outside the lock: it decompresses and walks every record. */

/* Can a raw frame of len bytes join the current group now?  0, SPACE_WAIT
 * or an error.  mu held. */
static int raw_room(struct wal *w, size_t len, int with_done) {
  struct group *g = &w->grp[w->cur];
  /* Records pending or on their way: they are flushed first, which keeps
   * LSN order and one kind of content per frame group. */
  if ((!g->raw && g->len > 0) || w->nres > 0) return SPACE_WAIT;
  int rc = space_need(w, (uint64_t)g->len + len);
  if (rc == SPACE_OK && g->len > 0 && g->len + len > w->cfg.group_max_bytes)
    rc = SPACE_WAIT;
  if (rc == SPACE_OK) rc = group_grow(g, len, with_done ? 1 : 0);
  return rc;
}

/* Queue the checked frame.  mu held, room made. */
static void raw_queue(struct wal *w, const void *frame, size_t len,
                      const struct frame_hdr *h, cairn_done_fn done,
                      void *done_arg) {
  struct group *g = &w->grp[w->cur];
  memcpy(g->data + g->len, frame, len);
  g->len += len;
  g->raw = 1;
  g->nframes++;
  g->need_sync = 1; /* a follower acknowledges fsynced positions */
  if (!g->first_lsn) g->first_lsn = h->first_lsn;
  g->last_lsn = h->last_lsn;
  if (done)
    g->comps[g->ncomp++] =
        (struct comp){.lsn = h->last_lsn, .mode = CAIRN_DURABILITY_FSYNC,
                      .done = done, .arg = done_arg};
  w->last_lsn = h->last_lsn;
  w->cfg.epoch = h->epoch;
  pthread_cond_signal(&w->log_cv);
}

int wal_append_frame(struct wal *w, const void *frame, size_t len,
                     cairn_done_fn done, void *done_arg) {
  struct frame_hdr h;
  void *scratch;
  const void *raw;
  const char *why;
  int rc = frame_check_whole(frame, len, &h, &scratch, &raw, &why);
  free(scratch);
  return rc ? rc : wal_append_checked(w, frame, len, &h, done, done_arg);
}

int wal_append_checked(struct wal *w, const void *frame, size_t len,
                       const struct frame_hdr *hp, cairn_done_fn done,
                       void *done_arg) {
  struct frame_hdr h = *hp;
  int rc;
  lock(&w->mu);
  /* Each wait ends with a flush, a new spare, a failure or the close. */
  for (;;) {
    if (w->failed) { rc = CAIRN_EIO; break; }
    if (w->stop) { rc = CAIRN_ECLOSING; break; }
    if (h.first_lsn != w->last_lsn + 1 || h.epoch < w->cfg.epoch) {
      rc = CAIRN_EINVAL;
      break;
    }
    rc = raw_room(w, len, done != NULL);
    if (rc != SPACE_WAIT) break;
    if (w->nospace) w->next_alloc_ns = 0; /* retry allocating now */
    pthread_cond_signal(&w->log_cv);
    pthread_cond_wait(&w->writer_cv, &w->mu);
  }
  if (rc == 0) raw_queue(w, frame, len, &h, done, done_arg);
  unlock(&w->mu);
  return rc;
}

void wal_set_epoch(struct wal *w, uint64_t epoch) {
  lock(&w->mu);
  w->cfg.epoch = epoch;
  unlock(&w->mu);
}

uint64_t wal_wait_written(struct wal *w, uint64_t lsn, unsigned timeout_ms) {
  uint64_t deadline = mono_ns() + (uint64_t)timeout_ms * 1000000u;
  lock(&w->mu);
  /* Each wake-up follows a flush, a failure, the close or the deadline. */
  while (w->shipped_lsn <= lsn && !w->failed && !w->stop && !w->exited &&
         mono_ns() < deadline)
    wait_until(&w->done_cv, &w->mu, deadline);
  uint64_t written = w->shipped_lsn;
  unlock(&w->mu);
  return written;
}

/* ------------------------------------------------------------------------
 * Opening: recovery.
 * --------------------------------------------------------------------- */

struct replay {
  wal_apply_fn apply;
  void *arg;
  uint64_t start_lsn, applied;
};

static int replay_frame(void *arg, const char *path, uint64_t offset,
                        const struct frame_hdr *h, const void *raw) {
  (void)path;
  (void)offset;
  struct replay *rp = arg;
  size_t pos = 0;
  uint64_t lsn = h->first_lsn;
  /* frame_payload checked the count; the loop is bounded by it. */
  for (; lsn <= h->last_lsn; lsn++) {
    struct rec r;
    int rc = rec_decode(raw, h->raw_len, &pos, &r);
    if (rc) return rc;
    if (lsn <= rp->start_lsn || !rp->apply) continue;
    if ((rc = rp->apply(rp->arg, lsn, &r)) != 0) return rc;
    rp->applied++;
  }
  return 0;
}

/* Create dir if missing, drop half-made segments, and fsync every segment
 * before reading it: a page written before a crash may still sit in the
 * cache, and must reach the disk before its data is relied on. */
static int dir_prepare(struct wal *w) {
  if (mkdir(w->dir, 0755) != 0 && errno != EEXIST) return -errno;
  DIR *d = opendir(w->dir);
  if (!d) return -errno;
  int rc = 0;
  struct dirent *e;
  while (rc == 0 && (e = readdir(d)) != NULL) {
    char path[WAL_PATH_MAX + 256];
    uint64_t seq;
    size_t n = strlen(e->d_name);
    snprintf(path, sizeof path, "%s/%s", w->dir, e->d_name);
    if (n > 4 && strcmp(e->d_name + n - 4, ".tmp") == 0) {
      if (sys_ops.unlink(path) != 0 && errno != ENOENT) rc = -errno;
    } else if (seg_name(e->d_name, &seq)) {
      int fd = sys_ops.open(path, O_RDWR, 0);
      if (fd < 0) rc = -errno;
      else {
        if (sys_ops.fsync(fd) != 0) rc = -errno;
        close(fd);
      }
    }
  }
  closedir(d);
  if (rc == 0) rc = sys_fsync_dir(w->dir);
  return rc;
}

/* Unlink the segments of seqs[0..n) numbered lo..hi. */
static int seg_drop(struct wal *w, const uint64_t *seqs, size_t n,
                    uint64_t lo, uint64_t hi) {
  int rc = 0, any = 0;
  for (size_t i = 0; i < n; i++) {
    if (seqs[i] < lo || seqs[i] > hi) continue;
    char path[WAL_PATH_MAX];
    wal_segment_path(w->dir, seqs[i], path);
    if (sys_ops.unlink(path) != 0 && errno != ENOENT && !rc) rc = -errno;
    any = 1;
  }
  if (any && rc == 0) rc = sys_fsync_dir(w->dir);
  return rc;
}

/* Log and act on what ended the scan: refuse or cut corruption, cut a
 * torn tail. */
static int recover_tail(struct wal *w, const struct wal_scan_result *res) {
  char path[WAL_PATH_MAX];
  if (res->corrupt) {
    wal_segment_path(w->dir, res->corrupt_seq, path);
    if (!(w->cfg.flags & WAL_SALVAGE)) {
      log_error(w->log, "%s: offset %" PRIu64 ": %s (corruption in mid-log; "
                "open with salvage to keep what precedes it)",
                path, res->corrupt_offset, res->why);
      return CAIRN_ECORRUPT;
    }
    log_warn(w->log, "%s: offset %" PRIu64 ": %s (corruption in mid-log; "
             "salvaging: the log is cut there)",
             path, res->corrupt_offset, res->why);
    return seg_cut(w, res->corrupt_seq, res->corrupt_offset);
  }
  if (!res->torn) return 0;
  wal_segment_path(w->dir, res->torn_seq, path);
  log_warn(w->log, "truncated torn tail: %" PRIu64 " bytes from LSN %" PRIu64
           " in %s at offset %" PRIu64 " (%s)",
           res->torn_bytes, res->torn_lsn, path, res->torn_offset, res->why);
  w->st.truncated_bytes = res->torn_bytes;
  return seg_cut(w, res->torn_seq, res->torn_offset);
}

/* The log must reach back to start_lsn: a log that begins later lost
 * records (a segment deleted by hand, a copy of part of a directory). */
static int recover_gap(struct wal *w, const struct wal_scan_result *res,
                       uint64_t start_lsn) {
  if (res->frames == 0 || res->first_lsn <= start_lsn + 1) return 0;
  if (!(w->cfg.flags & WAL_SALVAGE)) {
    log_error(w->log, "%s: the log begins at LSN %" PRIu64 " but LSN %"
              PRIu64 " is the first one needed: segments are missing "
              "(open with salvage to go on without them)", w->dir,
              res->first_lsn, start_lsn + 1);
    return CAIRN_ECORRUPT;
  }
  log_warn(w->log, "%s: LSNs %" PRIu64 " to %" PRIu64 " are missing from "
           "the log; salvaging without them", w->dir, start_lsn + 1,
           res->first_lsn - 1);
  return 0;
}

/* Open (or create) segment seq as the current one, writing at off. */
static int seg_adopt(struct wal *w, uint64_t seq, uint64_t off) {
  char path[WAL_PATH_MAX];
  wal_segment_path(w->dir, seq, path);
  int fd = sys_ops.open(path, O_RDWR, 0);
  uint64_t size = w->cfg.segment_bytes;
  if (fd < 0 && errno == ENOENT) {
    const char *what = "create";
    int rc = seg_create(w->dir, seq, size, &fd, &what);
    if (rc == -ENOSPC) return CAIRN_EFULL;
    if (rc) {
      log_error(w->log, "%s: %s failed: %s", path, what, strerror(-rc));
      return rc;
    }
  } else if (fd < 0) {
    return -errno;
  } else {
    struct stat st;
    if (fstat(fd, &st) != 0) {
      int rc = -errno;
      close(fd);
      return rc;
    }
    size = (uint64_t)st.st_size;
  }
  w->fd = fd;
  w->seq = seq;
  w->off = off;
  w->seg_size = size;
  w->avail_cur = seg_room(w);
  return 0;
}

/* The live segments (up to the current one) with their LSN ranges.  The
 * scan checked that the log runs on from one segment to the next, so each
 * segment with frames begins after the last LSN of the one before; the
 * log's first frame begins at first, and the current segment, if it has
 * none yet, at next. */
static int segs_init(struct wal *w, const uint64_t *seqs,
                     const uint64_t *last, size_t n, uint64_t first,
                     uint64_t next) {
  for (size_t i = 0; i <= n; i++) {
    uint64_t seq = i < n ? seqs[i] : w->seq;
    if (seq > w->seq || (i == n && w->nsegs && w->segs[w->nsegs - 1].seq == seq))
      continue;
    if (grow((void **)&w->segs, &w->segs_cap, w->nsegs + 1, sizeof *w->segs))
      return CAIRN_ENOMEM;
    struct seg_ent e = {.seq = seq, .last_lsn = i < n ? last[i] : 0};
    if (e.last_lsn) {
      e.first_lsn = first;
      first = e.last_lsn + 1;
    } else if (seq == w->seq) {
      e.first_lsn = next;
    }
    w->segs[w->nsegs++] = e;
  }
  w->st.segments = w->nsegs;
  return 0;
}

static int recover(struct wal *w, uint64_t start_lsn, wal_apply_fn apply,
                   void *arg) {
  struct replay rp = {.apply = apply, .arg = arg, .start_lsn = start_lsn};
  struct wal_scan_result res = {0};
  uint64_t *seqs = NULL, *last = NULL;
  size_t n = 0;
  int rc = scan_dir(w->dir, replay_frame, &rp, &res, &seqs, &last, &n);
  if (rc == 0) rc = recover_gap(w, &res, start_lsn);
  if (rc == 0) rc = recover_tail(w, &res);
  uint64_t end_seq = res.end_seq, end_off = res.end_offset;
  uint64_t top = MAX(res.last_lsn, start_lsn);
  if (rc == 0 && res.frames > 0 && start_lsn > res.last_lsn) {
    /* Everything logged is older than the caller's state: start a fresh
     * log above it, so no LSN gap ever sits inside the log. */
    end_seq = (n ? seqs[n - 1] : end_seq) + 1;
    end_off = 0;
    rc = seg_drop(w, seqs, n, 0, UINT64_MAX);
    n = 0;
  } else if (rc == 0) {
    rc = seg_drop(w, seqs, n, end_seq + 1, UINT64_MAX);
  }
  if (rc == 0) rc = seg_adopt(w, end_seq, end_off);
  if (rc == 0) rc = segs_init(w, seqs, last, n, res.first_lsn, top + 1);
  free(seqs);
  free(last);
  if (rc) return rc;
  w->st.recovered_records = rp.applied;
  w->last_lsn = w->written_lsn = w->durable_lsn = w->shipped_lsn = top;
  w->disk_next = top + 1;
  w->disk_epoch = w->cfg.epoch;
  return 0;
}

static void io_setup(struct wal *w) {
  if (w->cfg.flags & WAL_NO_URING) {
    log_info(w->log, "log I/O: pwritev + fdatasync (io_uring disabled)");
    return;
  }
  int rc = sys_ops.uring_init();
  if (rc == 0) rc = io_uring_queue_init(URING_ENTRIES, &w->ring, 0);
  if (rc != 0) {
    log_warn(w->log, "io_uring unavailable (%s); the log uses pwritev + "
             "fdatasync", strerror(rc < 0 ? -rc : rc));
    return;
  }
  w->uring = 1;
}

static int wal_alloc(const struct wal_config *cfg, struct wal **out) {
  if (!cfg || !cfg->dir || !*cfg->dir) return CAIRN_EINVAL;
  struct wal *w = calloc(1, sizeof *w);
  if (!w) return CAIRN_ENOMEM;
  w->cfg = *cfg;
  if (!w->cfg.segment_bytes) w->cfg.segment_bytes = SEGMENT_BYTES_DEFAULT;
  if (!w->cfg.group_max_bytes) w->cfg.group_max_bytes = GROUP_BYTES_DEFAULT;
  if (!w->cfg.interval_ms) w->cfg.interval_ms = INTERVAL_MS_DEFAULT;
  w->log = cfg->log;
  w->dir = strdup(cfg->dir);
  w->end_len = frame_bound(0);
  w->fd = w->spare_fd = -1;
  w->retain_floor = UINT64_MAX;
  pthread_condattr_t ca;
  pthread_condattr_init(&ca);
  pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
  pthread_mutex_init(&w->mu, NULL);
  pthread_mutex_init(&w->seg_mu, NULL);
  pthread_cond_init(&w->log_cv, &ca);
  pthread_cond_init(&w->writer_cv, &ca);
  pthread_cond_init(&w->done_cv, &ca);
  pthread_condattr_destroy(&ca);
  *out = w;
  if (!w->dir) return CAIRN_ENOMEM;
  if (w->cfg.segment_bytes < SEGMENT_BYTES_MIN ||
      w->cfg.segment_bytes > SEGMENT_BYTES_MAX ||
      w->cfg.group_max_bytes < GROUP_BYTES_MIN ||
      w->cfg.group_max_bytes > GROUP_BYTES_MAX)
    return CAIRN_EINVAL;
  return 0;
}

static void wal_free(struct wal *w) {
  if (w->fd >= 0) close(w->fd);
  if (w->spare_fd >= 0) close(w->spare_fd);
  if (w->uring) io_uring_queue_exit(&w->ring);
  for (int i = 0; i < 2; i++) {
    free(w->grp[i].data);
    free(w->grp[i].comps);
  }
  free(w->segs);
  free(w->fbuf);
  free(w->dir);
  pthread_mutex_destroy(&w->mu);
  pthread_mutex_destroy(&w->seg_mu);
  pthread_cond_destroy(&w->log_cv);
  pthread_cond_destroy(&w->writer_cv);
  pthread_cond_destroy(&w->done_cv);
  free(w);
}

int wal_open(const struct wal_config *cfg, uint64_t start_lsn,
             wal_apply_fn apply, void *arg, struct wal **out) {
  struct wal *w = NULL;
  int rc = wal_alloc(cfg, &w);
  if (rc == 0) rc = dir_prepare(w);
  if (rc == 0) rc = recover(w, start_lsn, apply, arg);
  if (rc == 0) {
    lock(&w->seg_mu);
    rc = spare_make(w, w->cfg.segment_bytes);
    unlock(&w->seg_mu);
    if (rc == -ENOSPC) rc = 0; /* the log thread retries */
  }
  if (rc == 0) {
    io_setup(w);
    for (int i = 0; i < 2 && rc == 0; i++)
      rc = group_grow(&w->grp[i], w->cfg.group_max_bytes, 64);
  }
  if (rc == 0) {
    rc = -pthread_create(&w->thread, NULL, log_main, w);
    w->thread_started = rc == 0;
  }
  if (rc) {
    if (w) wal_free(w);
    return rc;
  }
  *out = w;
  return 0;
}

/* ------------------------------------------------------------------------
 * Closing, positions, releasing segments.
 * --------------------------------------------------------------------- */

void wal_close(struct wal *w) {
  if (!w) return;
  lock(&w->mu);
  w->stop = 1;
  pthread_cond_broadcast(&w->log_cv);
  pthread_cond_broadcast(&w->writer_cv);
  pthread_cond_broadcast(&w->done_cv); /* wal_wait_written */
  unlock(&w->mu);
  if (w->thread_started) pthread_join(w->thread, NULL);
  wal_free(w);
}

void wal_stats(struct wal *w, struct wal_stats *out) {
  lock(&w->seg_mu);
  uint64_t oldest = 0;
  for (size_t i = 0; i < w->nsegs && !oldest; i++)
    oldest = w->segs[i].first_lsn;
  unlock(&w->seg_mu);
  lock(&w->mu);
  *out = w->st;
  out->oldest_lsn = oldest;
  out->last_lsn = w->last_lsn;
  out->written_lsn = w->written_lsn;
  out->durable_lsn = w->durable_lsn;
  out->epoch = w->cfg.epoch;
  out->uring = w->uring;
  out->failed = w->failed;
  unlock(&w->mu);
}

uint64_t wal_last_lsn(struct wal *w) {
  lock(&w->mu);
  uint64_t lsn = w->last_lsn;
  unlock(&w->mu);
  return lsn;
}

/* ------------------------------------------------------------------------
 * Reading the live log back (the checkpointer).
 * --------------------------------------------------------------------- */

struct reader {
  uint64_t from, upto, next; /* next: the LSN expected next */
  wal_apply_fn fn;
  void *arg;
  struct scan sc;            /* for frame_at and its scratch */
};

/* Deliver the records of one segment that fall in (from, upto].  Returns
 * 1 once upto is reached, 0 to go on with the next segment, or an error. */
static int read_segment(struct reader *r, const char *dir, uint64_t seq) {
  struct map m;
  int rc = map_open(dir, seq, &m);
  if (rc) return rc;
  size_t off = 0;
  for (;;) {
    struct frame_hdr h;
    const void *raw = NULL;
    const char *why = NULL;
    int at = frame_at(&r->sc, &m, off, &h, &raw, &why);
    if (at < 0) { rc = at; break; }
    /* Below upto every frame was written whole: anything else is damage. */
    if (at != AT_VALID || (h.flags & FRAME_F_END)) {
      rc = 0;
      break;
    }
    if (r->next == 0) { /* the oldest frame: it must not start too late */
      if (h.first_lsn > r->from + 1) { rc = 0; break; }
      r->next = h.first_lsn;
    }
    if (h.first_lsn > r->next) { rc = 0; break; }
    if (h.first_lsn == r->next) {
      size_t pos = 0;
      uint64_t lsn = h.first_lsn;
      for (; lsn <= h.last_lsn && lsn <= r->upto && rc == 0; lsn++) {
        struct rec rec;
        rc = rec_decode(raw, h.raw_len, &pos, &rec);
        if (rc == 0 && lsn > r->from) rc = r->fn(r->arg, lsn, &rec);
      }
      r->next = lsn;
      if (rc || r->next > r->upto) { rc = rc ? rc : 1; break; }
    }
    off += frame_len(&h);
  }
  map_close(&m);
  return rc;
}

int wal_read(struct wal *w, uint64_t from, uint64_t upto, wal_apply_fn fn,
             void *arg) {
  lock(&w->mu);
  int ok = upto <= w->written_lsn;
  unlock(&w->mu);
  if (!ok) return CAIRN_EINVAL;
  if (upto <= from) return 0;
  /* The segments that may hold (from, upto]: a copy, since the log thread
   * appends to the list; only wal_release removes from it, and that is
   * the caller's own doing. */
  lock(&w->seg_mu);
  size_t n = w->nsegs;
  struct seg_ent *segs = malloc(n * sizeof *segs);
  if (segs) memcpy(segs, w->segs, n * sizeof *segs);
  unlock(&w->seg_mu);
  if (!segs) return CAIRN_ENOMEM;
  struct reader r = {.from = from, .upto = upto, .next = 0, .fn = fn,
                     .arg = arg};
  int rc = 0;
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (segs[i].last_lsn && segs[i].last_lsn <= from) continue;
    rc = read_segment(&r, w->dir, segs[i].seq);
  }
  free(segs);
  free(r.sc.scratch);
  if (rc == 1) return 0;
  if (rc == 0) {
    log_error(w->log, "%s: the log does not hold LSNs %" PRIu64 " to %" PRIu64,
              w->dir, r.next ? r.next : from + 1, upto);
    return CAIRN_ECORRUPT;
  }
  return rc;
}

/* Retire segment seq: it becomes the spare if none is ready (saving an
 * allocation; its stale frames read as the end of the log), else goes.
 * seg_mu held. */
static int seg_retire(struct wal *w, uint64_t seq) {
  char path[WAL_PATH_MAX], spare[WAL_PATH_MAX];
  wal_segment_path(w->dir, seq, path);
  struct stat st;
  if (w->spare_fd < 0 && stat(path, &st) == 0 &&
      (uint64_t)st.st_size == w->cfg.segment_bytes) {
    wal_segment_path(w->dir, w->seq + 1, spare);
    if (sys_ops.rename(path, spare) == 0) {
      int fd = sys_ops.open(spare, O_RDWR, 0);
      if (fd < 0) return -errno;
      w->spare_fd = fd;
      w->spare_size = (uint64_t)st.st_size;
      lock(&w->mu);
      w->avail_spare = w->spare_size - w->end_len;
      pthread_cond_broadcast(&w->writer_cv);
      unlock(&w->mu);
      return 0;
    }
  }
  if (sys_ops.unlink(path) != 0 && errno != ENOENT) return -errno;
  return 0;
}

void wal_retain(struct wal *w, uint64_t floor) {
  __atomic_store_n(&w->retain_floor, floor, __ATOMIC_RELEASE);
}

int wal_release(struct wal *w, uint64_t lsn) {
  uint64_t floor = __atomic_load_n(&w->retain_floor, __ATOMIC_ACQUIRE);
  lock(&w->seg_mu);
  size_t k = 0;
  /* The current segment (last) is never released, nor one that holds an
   * LSN above the followers' floor. */
  while (k + 1 < w->nsegs && w->segs[k].last_lsn < lsn &&
         w->segs[k].last_lsn <= floor)
    k++;
  int rc = 0;
  for (size_t i = 0; i < k; i++) {
    int r = seg_retire(w, w->segs[i].seq);
    if (r && !rc) rc = r;
  }
  if (k) {
    memmove(w->segs, w->segs + k, (w->nsegs - k) * sizeof *w->segs);
    w->nsegs -= k;
    int r = sys_fsync_dir(w->dir);
    if (r && !rc) rc = r;
  }
  lock(&w->mu);
  w->st.segments = w->nsegs;
  unlock(&w->mu);
  unlock(&w->seg_mu);
  return rc;
}

/* ------------------------------------------------------------------------
 * Cursors: whole frames read back for the replication sender.
 *
 * A cursor keeps (segment, offset, expected LSN) and a window of the
 * segment read with pread.  Bytes of the window are trusted only up to
 * what was written when it was read (win_written is sampled before the
 * read), so a cursor that keeps up reads each byte about once, and a
 * frame is never handed out before the log thread has finished writing
 * it.  Every frame handed out has the expected first LSN and a verified
 * checksum, so a segment recycled under the cursor is noticed (its bytes
 * no longer match) and never yields wrong data.
 * --------------------------------------------------------------------- */

#define CURSOR_READ_BYTES (64u * 1024u) /* one pread of the window */

struct wal_cursor {
  struct wal *w;
  uint64_t seq, off;   /* where the next frame (or the END before it) is */
  uint64_t expect;     /* first LSN of the next frame */
  int fd;              /* segment seq; -1: not open yet */
  unsigned char *buf;  /* bytes [win_off, win_off + win_len) of seq */
  size_t cap, win_len;
  uint64_t win_off, win_written;
  unsigned char *scratch; /* decompressed payloads, for the check */
  size_t scratch_cap;
};

static uint64_t written_now(struct wal *w) {
  lock(&w->mu);
  uint64_t lsn = w->shipped_lsn;
  unlock(&w->mu);
  return lsn;
}

/* Is segment seq live?  If after is set, also find the first live one
 * after it: *next and its first LSN (0 if none). */
static int seg_lookup(struct wal *w, uint64_t seq, uint64_t *next,
                      uint64_t *next_first) {
  lock(&w->seg_mu);
  int live = 0;
  if (next) *next = *next_first = 0;
  for (size_t i = 0; i < w->nsegs; i++) {
    if (w->segs[i].seq == seq) live = 1;
    if (next && w->segs[i].seq > seq) {
      *next = w->segs[i].seq;
      *next_first = w->segs[i].first_lsn;
      break;
    }
  }
  unlock(&w->seg_mu);
  return live;
}

/* The bytes at the cursor are not what the log holds there: recycled or
 * released under it (CAIRN_ENOTFOUND), or damaged (CAIRN_ECORRUPT). */
static int cur_lost(struct wal_cursor *c, const char *why) {
  if (!seg_lookup(c->w, c->seq, NULL, NULL)) return CAIRN_ENOTFOUND;
  char path[WAL_PATH_MAX];
  wal_segment_path(c->w->dir, c->seq, path);
  log_error(c->w->log, "%s: offset %" PRIu64 ": %s where the written log "
            "holds LSN %" PRIu64, path, c->off, why, c->expect);
  return CAIRN_ECORRUPT;
}

static void cur_leave(struct wal_cursor *c, uint64_t seq) {
  if (c->fd >= 0) close(c->fd);
  c->fd = -1;
  c->seq = seq;
  c->off = 0;
  c->win_len = 0;
}

/* Read the window at off: at least need bytes unless the file ends. */
static int cur_fill(struct wal_cursor *c, uint64_t off, size_t need) {
  if (c->fd < 0) {
    char path[WAL_PATH_MAX];
    wal_segment_path(c->w->dir, c->seq, path);
    c->fd = open(path, O_RDONLY | O_CLOEXEC);
    if (c->fd < 0) return errno == ENOENT ? CAIRN_ENOTFOUND : -errno;
  }
  size_t want = MAX(need, (size_t)CURSOR_READ_BYTES);
  if (grow((void **)&c->buf, &c->cap, want, 1) != 0) return CAIRN_ENOMEM;
  c->win_len = 0;
  c->win_written = written_now(c->w);
  size_t got = 0;
  unsigned eintr = 0;
  /* Each pass reads at least a byte or leaves. */
  while (got < want) {
    ssize_t k = pread(c->fd, c->buf + got, want - got, (off_t)(off + got));
    if (k < 0 && errno == EINTR && ++eintr < EINTR_MAX) continue;
    if (k < 0) return -errno;
    if (k == 0) break;
    got += (size_t)k;
  }
  c->win_off = off;
  c->win_len = got;
  return 0;
}

/* n bytes at off from the window, re-read unless it holds them as written
 * at LSN fresh or later; NULL if the file ends first (or an error in
 * *rc). */
static const unsigned char *cur_bytes(struct wal_cursor *c, uint64_t off,
                                      size_t n, uint64_t fresh, int *rc) {
  *rc = 0;
  if (c->win_written < fresh || off < c->win_off ||
      off - c->win_off + n > c->win_len) {
    if ((*rc = cur_fill(c, off, n)) != 0) return NULL;
  }
  if (off - c->win_off + n > c->win_len) return NULL;
  return c->buf + (off - c->win_off);
}

enum { CUR_FRAME, CUR_END, CUR_NONE, CUR_BAD };

/* What is at the cursor: CUR_FRAME (header in h; if whole, the whole
 * frame at *p), CUR_END, CUR_NONE (zeros or the end of the file), CUR_BAD
 * (*why says what), or an error. */
static int cur_frame_at(struct wal_cursor *c, uint64_t fresh, int whole,
                        struct frame_hdr *h, const unsigned char **p,
                        const char **why) {
  int rc;
  const unsigned char *b = cur_bytes(c, c->off, 4, fresh, &rc);
  if (!b || get_u32(b) == 0) return rc ? rc : CUR_NONE;
  b = cur_bytes(c, c->off, FRAME_HDR_BYTES, fresh, &rc);
  if (!b) {
    *why = "truncated header";
    return rc ? rc : CUR_BAD;
  }
  if (frame_hdr_decode(b, FRAME_HDR_BYTES, h, why) != 0) return CUR_BAD;
  if (h->flags & FRAME_F_END) return CUR_END;
  if (!whole) return CUR_FRAME;
  *p = cur_bytes(c, c->off, frame_len(h), fresh, &rc);
  if (!*p) {
    *why = "frame runs past the end of the file";
    return rc ? rc : CUR_BAD;
  }
  return CUR_FRAME;
}

/* The segment the cursor is in has no more frames: go on in the next live
 * one, which must begin at the expected LSN. */
static int cur_advance(struct wal_cursor *c, const char *why) {
  uint64_t next, first;
  seg_lookup(c->w, c->seq, &next, &first);
  if (!next || first != c->expect) return cur_lost(c, why);
  cur_leave(c, next);
  return 0;
}

/* Walk the headers of the chosen segment (its first frame at LSN chain)
 * up to the frame that begins at c->expect.  written: sampled before the
 * segment was chosen. */
static int cur_seek(struct wal_cursor *c, uint64_t chain, uint64_t written) {
  /* Each pass moves past a frame, within one segment's bounded size. */
  while (chain < c->expect) {
    struct frame_hdr h;
    const unsigned char *p = NULL;
    const char *why = "end of data";
    int at = cur_frame_at(c, written, 0, &h, &p, &why);
    if (at < 0) return at;
    if (at != CUR_FRAME || h.first_lsn != chain)
      return cur_lost(c, at == CUR_FRAME ? "LSN mismatch" : why);
    if (h.last_lsn >= c->expect) return CAIRN_ENOTFOUND; /* inside it */
    c->off += frame_len(&h);
    chain = h.last_lsn + 1;
  }
  return 0;
}

int wal_cursor_open(struct wal *w, uint64_t from, struct wal_cursor **out) {
  uint64_t written = written_now(w);
  if (from > written) return CAIRN_EINVAL;
  struct wal_cursor *c = calloc(1, sizeof *c);
  if (!c) return CAIRN_ENOMEM;
  c->w = w;
  c->fd = -1;
  c->expect = from + 1;
  /* The last segment whose first LSN is at or below the one wanted. */
  uint64_t seq = 0, first = 0;
  lock(&w->seg_mu);
  for (size_t i = 0; i < w->nsegs; i++) {
    if (w->segs[i].first_lsn && w->segs[i].first_lsn <= c->expect) {
      seq = w->segs[i].seq;
      first = w->segs[i].first_lsn;
    }
  }
  unlock(&w->seg_mu);
  int rc = first ? 0 : CAIRN_ENOTFOUND;
  if (rc == 0) {
    cur_leave(c, seq);
    rc = cur_seek(c, first, written);
  }
  if (rc) {
    wal_cursor_close(c);
    return rc;
  }
  *out = c;
  return 0;
}

/* Check the frame at p (header h) and step past it. */
static int cur_take(struct wal_cursor *c, const unsigned char *p,
                    const struct frame_hdr *h) {
  const void *raw;
  const char *why = NULL;
  if (grow((void **)&c->scratch, &c->scratch_cap, h->raw_len, 1) != 0)
    return CAIRN_ENOMEM;
  if (frame_payload(p, h, c->scratch, &raw, &why) != 0)
    return cur_lost(c, why);
  c->off += frame_len(h);
  c->expect = h->last_lsn + 1;
  return 0;
}

int wal_cursor_next(struct wal_cursor *c, const void **frame, size_t *len,
                    struct frame_hdr *hout) {
  uint64_t written = written_now(c->w);
  if (c->expect > written) return 0;
  /* Each pass hands out a frame or moves to a later live segment. */
  for (unsigned hops = 0; hops <= SEGMENTS_MAX; hops++) {
    struct frame_hdr h;
    const unsigned char *p = NULL;
    const char *why = "end of data";
    int at = cur_frame_at(c, c->expect, 1, &h, &p, &why);
    if (at < 0) return at;
    if (at == CUR_FRAME && h.first_lsn == c->expect) {
      if (h.last_lsn > written) return 0; /* not whole on disk yet */
      int rc = cur_take(c, p, &h);
      if (rc) return rc;
      *frame = p;
      *len = frame_len(&h);
      if (hout) *hout = h;
      return 1;
    }
    /* The data of this segment ends here (a lower LSN is stale data of a
     * recycled segment): the log goes on in the next one. */
    if (at == CUR_END || at == CUR_NONE ||
        (at == CUR_FRAME && h.first_lsn < c->expect)) {
      int rc = cur_advance(c, at == CUR_FRAME ? "stale frame" : why);
      if (rc) return rc;
      continue;
    }
    return cur_lost(c, at == CUR_FRAME ? "LSN gap" : why);
  }
  return CAIRN_ECORRUPT;
}

void wal_cursor_close(struct wal_cursor *c) {
  if (!c) return;
  if (c->fd >= 0) close(c->fd);
  free(c->buf);
  free(c->scratch);
  free(c);
}

/* ------------------------------------------------------------------------
 * Cutting a divergent tail (offline).
 * --------------------------------------------------------------------- */

struct cut {
  uint64_t lsn, frames;
  int found;
  uint64_t seq, off; /* where the first frame past lsn is */
  char path[WAL_PATH_MAX];
  uint64_t records, bytes;
};

static int cut_frame(void *arg, const char *path, uint64_t offset,
                     const struct frame_hdr *h, const void *raw) {
  (void)raw;
  struct cut *k = arg;
  if (!k->found && h->last_lsn > k->lsn) {
    /* Below the whole log is fine (it all goes); inside a frame is not. */
    int first_of_log = k->frames == 0 && h->first_lsn > k->lsn;
    if (h->first_lsn != k->lsn + 1 && !first_of_log) return CAIRN_EINVAL;
    const char *base = strrchr(path, '/');
    if (!seg_name(base ? base + 1 : path, &k->seq)) return CAIRN_EINVAL;
    k->found = 1;
    k->off = offset;
    snprintf(k->path, sizeof k->path, "%s", path);
  }
  k->frames++;
  if (k->found) {
    k->records += h->last_lsn - h->first_lsn + 1;
    k->bytes += frame_len(h);
  }
  return 0;
}

/* Zero the cut segment from the cut on, delete every later segment. */
static int cut_apply(const char *dir, const struct logger *log,
                     const struct cut *k, const uint64_t *seqs, size_t n) {
  int rc = seg_zero(dir, log, k->seq, k->off);
  for (size_t i = 0; i < n && rc == 0; i++) {
    if (seqs[i] <= k->seq) continue;
    char path[WAL_PATH_MAX];
    wal_segment_path(dir, seqs[i], path);
    if (sys_ops.unlink(path) != 0 && errno != ENOENT) rc = -errno;
  }
  if (rc == 0) rc = sys_fsync_dir(dir);
  return rc;
}

int wal_truncate_after(const char *dir, uint64_t lsn,
                       const struct logger *log, uint64_t *cut_records,
                       uint64_t *cut_bytes) {
  if (!dir || !*dir) return CAIRN_EINVAL;
  struct cut k = {.lsn = lsn};
  struct wal_scan_result res;
  uint64_t *seqs = NULL, *last = NULL;
  size_t n = 0;
  int rc = scan_dir(dir, cut_frame, &k, &res, &seqs, &last, &n);
  if (rc == CAIRN_EINVAL)
    log_error(log, "%s: cannot cut the log after LSN %" PRIu64 ": that LSN "
              "is inside a frame", dir, lsn);
  if (rc == 0 && res.corrupt && !k.found) {
    char path[WAL_PATH_MAX];
    wal_segment_path(dir, res.corrupt_seq, path);
    log_error(log, "%s: offset %" PRIu64 ": %s (corruption in mid-log "
              "before LSN %" PRIu64 ")", path, res.corrupt_offset, res.why,
              lsn);
    rc = CAIRN_ECORRUPT;
  }
  if (rc == 0 && k.found) {
    rc = cut_apply(dir, log, &k, seqs, n);
    if (rc == 0)
      log_warn(log, "%s: offset %" PRIu64 ": cut the log after LSN %" PRIu64
               ": %" PRIu64 " records, %" PRIu64 " bytes removed", k.path,
               k.off, lsn, k.records, k.bytes);
  }
  free(seqs);
  free(last);
  if (rc) return rc;
  if (cut_records) *cut_records = k.found ? k.records : 0;
  if (cut_bytes) *cut_bytes = k.found ? k.bytes : 0;
  return 0;
}

/*
 * cairn-restore - restore a dump (src/dump.h) into a data directory.
 *
 *   cairn-restore [--ns NAME]... [--force] [-q] FILE|- DATA_DIR
 *
 * Nothing becomes visible until every checksum held: the entries go into a
 * fresh directory beside the target (DATA_DIR.restore-XXXXXX), whose store
 * is synced once, at the end; only then does it take the target's name by
 * rename.  An empty target is removed first; a
 * non-empty one is refused unless --force, which moves it aside, renames,
 * and then removes it.  On any error the temporary directory is removed
 * and the target is left as it was.
 *
 * Expiry stays absolute: an entry whose deadline has passed by restore
 * time is skipped and counted; the others get the lifespan that remains.
 * Max-idle counts from the restore, as it counts from an open (db.c).
 *
 * Exit codes: 0 done; 1 error (bad input, I/O; the target is untouched);
 * 2 usage; 3 the target is not empty (no --force).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <getopt.h>
#include <inttypes.h>
#include <linux/limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cairn.h"
#include "dump.h"
#include "limits.h"
#include "store.h"
#include "table.h"
#include "toolutil.h"
#include "util.h"

#define PROG "cairn-restore"
#define EXIT_USAGE 2
#define EXIT_NOTEMPTY 3
#define NS_FILTER_MAX 64
#define READ_CHUNK (1u << 20)

struct opts {
  const char *file, *dir;
  const char *ns[NS_FILTER_MAX];
  int nns, force, quiet;
};

/* Entries go straight into the store; the log is not involved: the
 * restored store's checkpoint LSN covers every entry, and the log of the
 * new directory starts after it.
 *
 * A dump written by cairn-dump comes in the store's key order, so its
 * entries are appended as they arrive (store_load_put: no sort, no
 * lookup, no sync until the end).  An entry out of that order (a dump
 * from elsewhere) ends the appending; it and the rest take the general
 * path: held in memory up to RESTORE_HELD_MAX entries or bytes, sorted in
 * the store's key order, and written in transactions of CKPT_TXN_KEYS
 * keys, as a checkpoint writes them. */
#define RESTORE_HELD_MAX   (1u << 20)
#define RESTORE_HELD_BYTES (256u << 20)

struct held {
  uint64_t khash;       /* table_hash of the key: shard and h32 */
  int64_t expire_at_ms, last_access_ms;
  uint64_t max_idle_ms;
  uint32_t klen, vlen;
  uint8_t ns_len, type;
  char data[];          /* ns, key, value */
};

struct restore {
  const struct opts *o;
  struct store *store;
  struct store_load *load; /* while the entries come in order */
  int general;             /* an entry came out of order */
  int64_t now;
  uint64_t entries, bytes, expired, filtered;
  int rc;
  struct held **held;
  size_t nheld, held_bytes;
  uint64_t version;     /* given to each entry written, in order */
};

/* ------------------------------------------------------------------------
 * Directories.
 * --------------------------------------------------------------------- */

static int rm_one(const char *path, const struct stat *st, int flag,
                  struct FTW *ftw) {
  (void)st;
  (void)ftw;
  return (flag == FTW_DP ? rmdir(path) : unlink(path)) ? -1 : 0;
}

/* rm -rf path; 0 or -1. */
static int rmrf(const char *path) {
  return nftw(path, rm_one, 32, FTW_DEPTH | FTW_PHYS);
}

/* 0: missing, 1: an empty directory, 2: a non-empty one, -errno (also
 * -ENOTDIR). */
static int dir_state(const char *path) {
  struct stat st;
  if (stat(path, &st) != 0) return errno == ENOENT ? 0 : -errno;
  if (!S_ISDIR(st.st_mode)) return -ENOTDIR;
  DIR *d = opendir(path);
  if (!d) return -errno;
  int state = 1;
  struct dirent *e;
  while (state == 1 && (e = readdir(d)) != NULL)
    if (strcmp(e->d_name, ".") && strcmp(e->d_name, "..")) state = 2;
  closedir(d);
  return state;
}

static int fsync_parent(const char *path) {
  char buf[PATH_MAX];
  snprintf(buf, sizeof buf, "%s", path);
  char *slash = strrchr(buf, '/');
  if (slash == buf) slash[1] = '\0';
  else if (slash) *slash = '\0';
  else snprintf(buf, sizeof buf, ".");
  int fd = open(buf, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return -errno;
  int rc = fsync(fd) ? -errno : 0;
  close(fd);
  return rc;
}

/* Whether a process holds dir/LOCK (a running daemon): 1, 0, or -errno. */
static int dir_in_use(const char *dir) {
  char path[PATH_MAX];
  snprintf(path, sizeof path, "%s/LOCK", dir);
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return errno == ENOENT ? 0 : -errno;
  int rc = flock(fd, LOCK_EX | LOCK_NB) == 0 ? 0
           : errno == EWOULDBLOCK        ? 1
                                         : -errno;
  close(fd);
  return rc;
}

/* Give tmp the name dir (state: dir_state(dir)). */
static int swap_in(const char *tmp, const char *dir, int state) {
  char old[PATH_MAX];
  if (state == 1 && rmdir(dir) != 0) return -errno;
  if (state == 2) {
    snprintf(old, sizeof old, "%s.old-XXXXXX", dir);
    if (!mkdtemp(old)) return -errno;
    if (rmdir(old) != 0 || rename(dir, old) != 0) return -errno;
  }
  if (rename(tmp, dir) != 0) {
    int e = errno;
    if (state == 2 && rename(old, dir) != 0)
      tool_err(PROG, "the old directory is now %s", old);
    return -e;
  }
  int rc = fsync_parent(dir);
  if (state == 2 && rmrf(old) != 0)
    tool_err(PROG, "could not remove the old directory %s", old);
  return rc;
}

/* ------------------------------------------------------------------------
 * Entries.
 * --------------------------------------------------------------------- */

static int ns_wanted(const struct opts *o, const char *ns, size_t ns_len) {
  if (!o->nns) return 1;
  for (int i = 0; i < o->nns; i++)
    if (strlen(o->ns[i]) == ns_len && !memcmp(o->ns[i], ns, ns_len)) return 1;
  return 0;
}

/* The deadline: min(lifespan end, last access + max-idle), 0 if none. */
static int64_t deadline(const struct dump_entry *e) {
  int64_t d = e->expire_at_ms > 0 ? e->expire_at_ms : 0;
  if (e->max_idle_ms && e->max_idle_ms < (uint64_t)INT64_MAX / 2) {
    int64_t last = e->last_access_ms > 0 ? e->last_access_ms : 0;
    int64_t idle = last + (int64_t)e->max_idle_ms;
    if (!d || idle < d) d = idle;
  }
  return d;
}

/* Store order: namespace (length, bytes), shard, h32, key. */
static int held_cmp(const void *a, const void *b) {
  const struct held *x = *(struct held *const *)a, *y = *(struct held *const *)b;
  if (x->ns_len != y->ns_len) return x->ns_len < y->ns_len ? -1 : 1;
  int c = memcmp(x->data, y->data, x->ns_len);
  if (c) return c;
  unsigned sx = table_shard(x->khash), sy = table_shard(y->khash);
  if (sx != sy) return sx < sy ? -1 : 1;
  uint32_t hx = (uint32_t)(x->khash >> 32), hy = (uint32_t)(y->khash >> 32);
  if (hx != hy) return hx < hy ? -1 : 1;
  c = memcmp(x->data + x->ns_len, y->data + y->ns_len, MIN(x->klen, y->klen));
  if (c) return c;
  return x->klen < y->klen ? -1 : x->klen > y->klen;
}

static int held_put(struct restore *st, struct store_txn *t,
                    const struct held *h) {
  const char *key = h->data + h->ns_len;
  struct store_val v = {++st->version, h->expire_at_ms, h->max_idle_ms,
                        h->last_access_ms, (uint8_t)h->type,
                        (void *)(key + h->klen), h->vlen};
  return store_put(t, h->data, h->ns_len, table_shard(h->khash),
                   (uint32_t)(h->khash >> 32), key, h->klen, &v);
}

/* Write the held entries; with last, record the checkpoint LSN that
 * covers every version given.  0 or a cairn error. */
static int held_flush(struct restore *st, int last) {
  if (st->nheld) qsort(st->held, st->nheld, sizeof *st->held, held_cmp);
  int rc = 0;
  size_t lo = 0;
  do {
    size_t hi = MIN(st->nheld, lo + CKPT_TXN_KEYS);
    struct store_txn *t;
    if ((rc = store_begin(st->store, &t)) != 0) break;
    for (size_t i = lo; rc == 0 && i < hi; i++) rc = held_put(st, t, st->held[i]);
    if (rc) {
      store_abort(t);
      break;
    }
    int final = last && hi == st->nheld;
    rc = store_commit(t, final ? st->version : store_ckpt_lsn(st->store), 1);
    lo = hi;
  } while (rc == 0 && lo < st->nheld);
  for (size_t i = 0; i < st->nheld; i++) free(st->held[i]);
  st->nheld = st->held_bytes = 0;
  return rc;
}

/* Append e; 1 if it is out of order (nothing was written), 0, or an
 * error. */
static int load_entry(struct restore *st, const struct dump_entry *e) {
  uint64_t h = table_hash(e->key, e->klen);
  struct store_val v = {st->version + 1, e->expire_at_ms, e->max_idle_ms,
                        e->max_idle_ms ? st->now : e->last_access_ms,
                        (uint8_t)e->type, (void *)e->val, e->vlen};
  int rc = store_load_put(st->load, e->ns, e->ns_len, table_shard(h),
                          (uint32_t)(h >> 32), e->key, e->klen, &v);
  if (rc == CAIRN_EEXISTS) return 1;
  if (rc) return rc;
  st->version++;
  st->entries++;
  st->bytes += e->klen + e->vlen;
  return 0;
}

/* Leave the appending path: commit what it wrote (the checkpoint LSN is
 * recorded by the general path's last commit). */
static int load_end(struct restore *st) {
  st->general = 1;
  int rc = store_load_commit(st->load, store_ckpt_lsn(st->store), 1);
  st->load = NULL;
  return rc;
}

static int restore_entry(struct restore *st, const struct dump_entry *e) {
  if (!ns_wanted(st->o, e->ns, e->ns_len)) {
    st->filtered++;
    return 0;
  }
  int64_t d = deadline(e);
  if (d && d <= st->now) {
    st->expired++;
    return 0;
  }
  if (!st->general) {
    int rc = load_entry(st, e);
    if (rc <= 0) return rc;
    if ((rc = load_end(st)) != 0) return rc;
  }
  if (!st->held && !(st->held = malloc(RESTORE_HELD_MAX * sizeof *st->held)))
    return CAIRN_ENOMEM;
  struct held *h = malloc(sizeof *h + e->ns_len + e->klen + e->vlen);
  if (!h) return CAIRN_ENOMEM;
  h->khash = table_hash(e->key, e->klen);
  h->expire_at_ms = e->expire_at_ms;
  /* Max-idle counts from the restore, as it does from an open. */
  h->last_access_ms = e->max_idle_ms ? st->now : e->last_access_ms;
  h->max_idle_ms = e->max_idle_ms;
  h->ns_len = (uint8_t)e->ns_len;
  h->klen = (uint32_t)e->klen;
  h->vlen = (uint32_t)e->vlen;
  h->type = (uint8_t)e->type;
  memcpy(h->data, e->ns, e->ns_len);
  memcpy(h->data + e->ns_len, e->key, e->klen);
  if (e->vlen) memcpy(h->data + e->ns_len + e->klen, e->val, e->vlen);
  st->held[st->nheld++] = h;
  st->held_bytes += sizeof *h + e->ns_len + e->klen + e->vlen;
  st->entries++;
  st->bytes += e->klen + e->vlen;
  if (st->nheld == RESTORE_HELD_MAX || st->held_bytes >= RESTORE_HELD_BYTES)
    return held_flush(st, 0);
  return 0;
}

/* Feed f through the reader into st's store.  0, or 1 after a printed error. */
static int restore_stream(struct restore *st, FILE *f, struct dump_reader *r,
                          uint8_t *buf) {
  struct progress_state { int on; uint64_t t0, last; } p = {
      !st->o->quiet && isatty(STDERR_FILENO), tool_mono_ms(), 0};
  uint64_t fed = 0;
  int rc = 0;
  size_t n;
  while (rc >= 0 && (n = fread(buf, 1, READ_CHUNK, f)) > 0) {
    fed += n;
    rc = dump_reader_feed(r, buf, n);
    struct dump_entry e;
    while (rc >= 0 && (rc = dump_reader_next(r, &e)) == 1) {
      if ((rc = restore_entry(st, &e)) != 0) {
        tool_err(PROG, "%s: restoring an entry: %s", st->o->file,
                 cairn_strerror(rc));
        return 1;
      }
    }
    const struct dump_header *h = dump_reader_header(r);
    uint64_t now = tool_mono_ms(), done = st->entries + st->expired +
                                          st->filtered;
    if (p.on && h && now - p.last >= 200) {
      double s = (double)(now - p.t0) / 1000.0, rate = s > 0 ? done / s : 0;
      p.last = now;
      fprintf(stderr, "\r%" PRIu64 "/%" PRIu64 " entries  %.1f MiB  %.0f "
              "entries/s  ETA %.0f s   ", done, h->entries,
              (double)fed / 1048576.0, rate,
              rate > 0 && h->entries > done ? (h->entries - done) / rate : 0);
    }
  }
  if (p.on) fprintf(stderr, "\r%*s\r", 78, "");
  if (rc >= 0 && ferror(f)) {
    tool_err(PROG, "%s: %s", st->o->file, strerror(errno));
    return 1;
  }
  if (rc >= 0) rc = dump_reader_end(r);
  if (rc < 0) {
    tool_err(PROG, "%s: %s", st->o->file, dump_reader_error(r)[0]
                                              ? dump_reader_error(r)
                                              : cairn_strerror(rc));
    return 1;
  }
  return 0;
}

static void restore_log(void *arg, int level, const char *msg) {
  (void)arg;
  if (level <= CAIRN_LOG_ERROR) fprintf(stderr, PROG ": %s\n", msg);
}

static const struct logger restore_logger = {restore_log, NULL,
                                             CAIRN_LOG_ERROR};

/* A new, empty database in tmp (meta, log, store), whose store is then
 * opened for st.  0, or 1 after a printed error. */
static int build_open(struct restore *st, const char *tmp) {
  cairn_options opt;
  cairn_options_init(&opt);
  opt.flags |= CAIRN_OPEN_NO_EXPIRY;
  opt.log_fn = restore_log;
  cairn *db;
  int rc = cairn_open(tmp, &opt, &db);
  if (rc == 0) {
    cairn_close(db);
    char sdir[PATH_MAX + 8];
    if ((size_t)snprintf(sdir, sizeof sdir, "%s/lmdb", tmp) >= sizeof sdir)
      return tool_err(PROG, "%s: path too long", tmp), 1;
    struct store_config cfg = {.dir = sdir,
                               .map_bytes = MAP_BYTES_INITIAL,
                               .map_bytes_max = MAP_BYTES_MAX_DEFAULT,
                               .max_readers = STORE_READERS,
                               .log = &restore_logger};
    rc = store_open(&cfg, &st->store);
    if (!rc && (rc = store_load_begin(st->store, &st->load)) != 0) {
      store_close(st->store);
      st->store = NULL;
    }
  }
  if (rc) tool_err(PROG, "%s: %s", tmp, cairn_strerror(rc));
  return rc != 0;
}

/* Build the restored database in tmp.  0, or 1 after a printed error. */
static int build(struct restore *st, FILE *f, const char *tmp) {
  if (build_open(st, tmp)) return 1;
  int rc;
  struct dump_reader *r = NULL;
  uint8_t *buf = malloc(READ_CHUNK);
  int bad = !buf || dump_reader_new(&r) != 0;
  if (bad) tool_err(PROG, "out of memory");
  if (!bad) bad = restore_stream(st, f, r, buf);
  /* The last write records the checkpoint LSN, after every checksum of
   * the file was verified by restore_stream. */
  if (!bad) {
    rc = st->load ? store_load_commit(st->load, st->version, 1)
                  : held_flush(st, 1);
    st->load = NULL;
    if (rc) {
      tool_err(PROG, "%s: %s", tmp, cairn_strerror(rc));
      bad = 1;
    }
  }
  store_load_abort(st->load);
  st->load = NULL;
  for (size_t i = 0; i < st->nheld; i++) free(st->held[i]);
  free(st->held);
  dump_reader_free(r);
  free(buf);
  store_close(st->store);
  st->store = NULL;
  return bad;
}

/* ------------------------------------------------------------------------
 * Command line.
 * --------------------------------------------------------------------- */

static int do_restore(const struct opts *o) {
  int state = dir_state(o->dir);
  if (state < 0) {
    tool_err(PROG, "%s: %s", o->dir, strerror(-state));
    return EXIT_FAILURE;
  }
  if (state == 2 && !o->force) {
    tool_err(PROG, "%s is not empty; use --force to replace it", o->dir);
    return EXIT_NOTEMPTY;
  }
  if (state == 2 && dir_in_use(o->dir) != 0) {
    tool_err(PROG, "%s is in use by a running process (or its LOCK is "
             "unreadable); not replacing it", o->dir);
    return EXIT_FAILURE;
  }
  FILE *f = strcmp(o->file, "-") ? fopen(o->file, "rbe") : stdin;
  if (!f) {
    tool_err(PROG, "%s: %s", o->file, strerror(errno));
    return EXIT_FAILURE;
  }
  char tmp[PATH_MAX];
  snprintf(tmp, sizeof tmp, "%s.restore-XXXXXX", o->dir);
  if (!mkdtemp(tmp)) {
    tool_err(PROG, "%s: %s", tmp, strerror(errno));
    if (f != stdin) fclose(f);
    return EXIT_FAILURE;
  }
  uint64_t t0 = tool_mono_ms();
  struct restore st = {.o = o, .now = now_ms()};
  int bad = build(&st, f, tmp);
  if (f != stdin) fclose(f);
  int rc = bad ? 0 : swap_in(tmp, o->dir, state);
  if (rc) tool_err(PROG, "renaming %s to %s: %s", tmp, o->dir, strerror(-rc));
  if ((bad || rc) && rmrf(tmp) != 0)
    tool_err(PROG, "could not remove %s", tmp);
  if (bad || rc) return EXIT_FAILURE;
  if (!o->quiet)
    printf(PROG ": %" PRIu64 " entries, %" PRIu64 " bytes restored into %s; "
           "%" PRIu64 " expired skipped, %" PRIu64 " filtered out; %.2f s\n",
           st.entries, st.bytes, o->dir, st.expired, st.filtered,
           (double)(tool_mono_ms() - t0) / 1000.0);
  return EXIT_SUCCESS;
}

static void usage(FILE *f) {
  fprintf(f,
          "usage: " PROG " [--ns NAME]... [--force] [-q] FILE|- DATA_DIR\n"
          "Restore the dump FILE into DATA_DIR, which must be empty or "
          "missing.\n"
          "  -n, --ns NAME  restore only namespace NAME (repeatable)\n"
          "  -f, --force    replace a non-empty DATA_DIR\n"
          "  -q, --quiet    no progress or summary\n"
          "  -h, --help     this help\n"
          "  -V, --version  the version\n"
          "Exit: 0 done, 1 error (DATA_DIR untouched), 2 usage, 3 DATA_DIR "
          "is not empty.\n");
}

static int usage_err(const char *why) {
  tool_err(PROG, "%s", why);
  usage(stderr);
  return EXIT_USAGE;
}

int main(int argc, char **argv) {
  static const struct option lo[] = {
      {"ns", required_argument, NULL, 'n'},
      {"force", no_argument, NULL, 'f'},
      {"quiet", no_argument, NULL, 'q'},
      {"help", no_argument, NULL, 'h'},
      {"version", no_argument, NULL, 'V'},
      {NULL, 0, NULL, 0}};
  struct opts o = {0};
  int c;
  while ((c = getopt_long(argc, argv, "n:fqhV", lo, NULL)) != -1) {
    switch (c) {
    case 'n':
      if (!*optarg || strlen(optarg) > NS_NAME_MAX)
        return usage_err("a namespace name has 1 to 64 bytes");
      if (o.nns == NS_FILTER_MAX) return usage_err("too many --ns");
      o.ns[o.nns++] = optarg;
      break;
    case 'f': o.force = 1; break;
    case 'q': o.quiet = 1; break;
    case 'h': usage(stdout); return EXIT_SUCCESS;
    case 'V': tool_version(PROG); return EXIT_SUCCESS;
    default: usage(stderr); return EXIT_USAGE;
    }
  }
  if (argc - optind != 2)
    return usage_err(argc - optind < 2 ? "missing FILE or DATA_DIR"
                                       : "too many arguments");
  o.file = argv[optind];
  char dir[PATH_MAX];
  snprintf(dir, sizeof dir, "%s", argv[optind + 1]);
  for (size_t n = strlen(dir); n > 1 && dir[n - 1] == '/'; n--)
    dir[n - 1] = '\0';
  o.dir = dir;
  return do_restore(&o);
}

/*
 * test_ckpt_crash.c - kill a writing process while it checkpoints, then
 * check that recovery from the store plus the log keeps every acknowledged
 * write.
 *
 * Each round forks a child that opens the database with FSYNC durability,
 * 1 MiB log segments, checkpoints every CK_CKPT_BYTES of log (so they run
 * all the time) and a small memory budget (so entries are evicted and read
 * back from the store, and writes to old keys look them up there).  Its
 * sys_ops.test_hook fires inside each checkpoint at one of two named
 * windows, chosen per round:
 *
 *   SYS_HOOK_CKPT_MID_TXN    half the checkpoint's keys are in the LMDB
 *                            write transaction, not committed
 *   SYS_HOOK_CKPT_COMMITTED  LMDB committed, log segments not yet recycled
 *
 * In half the rounds the hook kills the child right there (raise(SIGKILL))
 * in one of its first CK_KILL_AT_MAX checkpoints; in the others it sleeps 0-30 ms,
 * widening the window, while the parent SIGKILLs the child at a random
 * moment.  The rounds that died in each window are counted, and the test
 * asserts that both windows were hit.
 *
 * Checking is exact, as in test_crash.c (read its header): each of the
 * CK_THREADS writer threads runs a deterministic program over keys only it
 * touches, acknowledges every call that returned success over a pipe, and
 * the parent replays the program: acknowledged operations must all be
 * there, the one in flight may or may not be, and nothing later was
 * started.  Operations: puts of new keys, overwrites of old ones (which
 * memory has usually evicted), overwrites of a few hot keys, deletes, an
 * incr of the thread's own counter, and reads that the child checks itself
 * (a wrong value read through the store fails the test).
 *
 * A directory serves CK_FRESH_EVERY rounds, so recovery also starts from
 * stores left by earlier crashes; every round re-checks the keys of the
 * earlier rounds in it.  After each reopen a full scan of both namespaces
 * must visit exactly the live keys, once each, with their values.
 *
 * Environment: CAIRN_CRASH_ROUNDS (default 24), CAIRN_CRASH_SEED.
 */

#include <criterion/criterion.h>
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"
#include "sys.h"
#include "../testutil.h"

#define CK_THREADS        3u
#define CK_ROUNDS         24u
#define CK_FRESH_EVERY    4u
#define CK_CKPT_BYTES     (256u * 1024u)
#define CK_MAX_MEMORY     (512u * 1024u)
#define CK_HOOK_SLEEP_MS  30u   /* the hook sleeps 0 .. this */
#define CK_HOOK_WAIT_MS   10000u /* a killing hook's round ends by then */
#define CK_KILL_MS_MAX    600u
#define CK_KILL_AT_MAX    5u    /* a killing hook fires at hit 1 .. this: the
                                   later ones follow recycled segments */
#define HOT_SLOTS         4u
#define GEN_MAX           250u
#define KEY_CAP           64u
#define VALUE_CAP         8192u
#define BIG_VALUE_BYTES   6000u
#define CHILD_ALARM_S     30u
#define SCAN_CALLS_MAX    100000u
#define NS_SESS           "sess"

/* ======================================================================
 * Thread programs: run by the child, replayed by the parent.
 * ==================================================================== */

enum op_kind {
  OP_PUT = 1, OP_REPUT, OP_HOT, OP_INCR, OP_DEL, OP_GET, OP_FAIL, OP_HOOK
};

/* What a thread's keys hold after the operations generated so far. */
struct tstate {
  uint32_t nplain;         /* plain keys created */
  uint32_t cap;
  uint8_t *gen;            /* per plain key: 0 absent, else its generation */
  uint64_t hot[HOT_SLOTS]; /* 0: never written, else the writing step + 1 */
  int64_t ctr;             /* 0: never incremented */
  /* Visits by the last scan. */
  uint8_t *seen;
  uint8_t hot_seen[HOT_SLOTS], ctr_seen;
};

struct prog {
  uint64_t rng;
  uint32_t round, thread;
  uint64_t step;
  struct tstate st;
  uint32_t nlive, live_cap;
  uint32_t *live; /* plain keys present */
};

struct op {
  int kind;
  uint64_t step;
  uint32_t idx;  /* plain key or hot slot */
  uint32_t gen;  /* the plain key's generation after the op */
  uint64_t hot;  /* the value a hot overwrite writes */
  int64_t ctr;   /* the counter after an incr */
};

/* Sent by the child after each successful call, on failure (OP_FAIL), and
 * by a hook about to kill (OP_HOOK, point in value). */
struct ack {
  uint32_t kind, thread;
  uint64_t step;
  int64_t value;
};
_Static_assert(sizeof(struct ack) <= 512, "acks are written atomically");

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void *xrealloc(void *p, size_t n) {
  p = realloc(p, n);
  if (!p) abort();
  return p;
}

static void tstate_free(struct tstate *t) {
  free(t->gen);
  free(t->seen);
  memset(t, 0, sizeof *t);
}

/* A copy of t, to check against while the program runs on. */
static void tstate_copy(struct tstate *d, const struct tstate *t) {
  *d = *t;
  d->cap = t->nplain ? t->nplain : 1;
  d->gen = xrealloc(NULL, d->cap);
  if (t->nplain) memcpy(d->gen, t->gen, t->nplain);
  d->seen = xrealloc(NULL, d->cap);
}

static void prog_init(struct prog *p, uint64_t seed, uint32_t round,
                      uint32_t thread) {
  memset(p, 0, sizeof *p);
  p->rng = seed ^ ((uint64_t)round << 32) ^ ((uint64_t)thread * 0x51ed27u);
  p->round = round;
  p->thread = thread;
}

static void prog_free(struct prog *p) {
  tstate_free(&p->st);
  free(p->live);
  p->live = NULL;
}

static uint32_t prog_new_key(struct prog *p) {
  struct tstate *t = &p->st;
  if (t->nplain == t->cap) {
    t->cap = t->cap ? t->cap * 2 : 256;
    t->gen = xrealloc(t->gen, t->cap);
  }
  if (p->nlive == p->live_cap) {
    p->live_cap = p->live_cap ? p->live_cap * 2 : 256;
    p->live = xrealloc(p->live, p->live_cap * sizeof *p->live);
  }
  uint32_t idx = t->nplain++;
  t->gen[idx] = 1;
  p->live[p->nlive++] = idx;
  return idx;
}

/* The next operation; every one is expected to succeed. */
static void prog_next(struct prog *p, struct op *o) {
  memset(o, 0, sizeof *o);
  o->step = p->step++;
  unsigned r = (unsigned)(splitmix(&p->rng) % 100);
  if (r >= 55 && p->nlive == 0) r = 0;
  uint32_t j = p->nlive ? (uint32_t)(splitmix(&p->rng) % p->nlive) : 0;
  if (r < 30) {
    o->kind = OP_PUT;
    o->idx = prog_new_key(p);
    o->gen = 1;
  } else if (r < 42) {
    o->kind = OP_HOT;
    o->idx = (uint32_t)(splitmix(&p->rng) % HOT_SLOTS);
    o->hot = p->st.hot[o->idx] = o->step + 1;
  } else if (r < 55) {
    o->kind = OP_INCR;
    o->ctr = ++p->st.ctr;
  } else if (r < 70) {
    o->kind = OP_REPUT;
    o->idx = p->live[j];
    o->gen = p->st.gen[o->idx] = (uint8_t)(p->st.gen[o->idx] % GEN_MAX + 1);
  } else if (r < 82) {
    o->kind = OP_DEL;
    o->idx = p->live[j];
    p->live[j] = p->live[--p->nlive];
    p->st.gen[o->idx] = 0;
  } else {
    o->kind = OP_GET;
    o->idx = p->live[j];
    o->gen = p->st.gen[o->idx];
  }
}

/* ----------------------------------------------------------------------
 * Keys and values: every value names its key.
 * ------------------------------------------------------------------- */

static const char *plain_ns(uint32_t idx) { return idx % 2 ? NS_SESS : NULL; }

static size_t plain_key(char *buf, uint32_t round, uint32_t t, uint32_t idx) {
  return (size_t)snprintf(buf, KEY_CAP, "r%" PRIu32 "/t%" PRIu32 "/p%" PRIu32,
                          round, t, idx);
}

/* A header naming (round, thread, idx, gen), then pseudo-random bytes
 * (which LZ4 cannot shrink, so the log grows and checkpoints come often). */
static size_t plain_value(char *buf, uint32_t round, uint32_t t, uint32_t idx,
                          uint32_t gen) {
  int n = snprintf(buf, VALUE_CAP, "p%" PRIu32 "/%" PRIu32 "/%" PRIu32
                   "/%" PRIu32 ":", round, t, idx, gen);
  uint64_t s = ((uint64_t)round << 48) ^ ((uint64_t)t << 40) ^
               ((uint64_t)gen << 32) ^ idx;
  size_t fill = idx % 11 == 10 ? BIG_VALUE_BYTES
                                 : 50 + (size_t)(splitmix(&s) % 1500);
  for (size_t i = 0; i < fill; i++) buf[n + i] = (char)splitmix(&s);
  return (size_t)n + fill;
}

static size_t hot_key(char *buf, uint32_t round, uint32_t t, uint32_t slot) {
  return (size_t)snprintf(buf, KEY_CAP, "r%" PRIu32 "/t%" PRIu32 "/h%" PRIu32,
                          round, t, slot);
}

static size_t hot_value(char *buf, uint64_t v) {
  int n = snprintf(buf, VALUE_CAP, "h%" PRIu64 ":", v);
  uint64_t s = v;
  for (size_t i = 0; i < 200; i++) buf[n + i] = (char)('a' + splitmix(&s) % 26);
  return (size_t)n + 200;
}

static size_t ctr_key(char *buf, uint32_t round, uint32_t t) {
  return (size_t)snprintf(buf, KEY_CAP, "r%" PRIu32 "/t%" PRIu32 "/ctr", round,
                          t);
}

/* ======================================================================
 * The child
 * ==================================================================== */

struct hook_cfg {
  int point;        /* SYS_HOOK_CKPT_* the hook acts at */
  int kill;         /* 1: die at hit number kill_at; 0: only sleep */
  unsigned kill_at;
  unsigned hits;
  uint64_t rng;
  int wfd;
};

static struct hook_cfg hk;

static void send_ack(int wfd, const struct ack *a) {
  while (write(wfd, a, sizeof *a) < 0 && errno == EINTR) {
  }
}

__attribute__((noreturn)) static void child_fail(int wfd, uint32_t thread,
                                                 int kind, int64_t rc) {
  struct ack a = {.kind = OP_FAIL, .thread = thread, .step = (uint64_t)kind,
                  .value = rc};
  send_ack(wfd, &a);
  _exit(3);
}

static void hook_sleep(void) {
  uint64_t s = __atomic_add_fetch(&hk.rng, 0x9e3779b97f4a7c15ull,
                                  __ATOMIC_RELAXED);
  unsigned ms = (unsigned)(splitmix(&s) % (CK_HOOK_SLEEP_MS + 1));
  struct timespec ts = {0, (long)ms * 1000000L};
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR) {
  }
}

/* sys_ops.test_hook, from the checkpoint thread. */
static void ckpt_hook(int point) {
  if (point != hk.point) return;
  unsigned n = __atomic_add_fetch(&hk.hits, 1, __ATOMIC_RELAXED);
  if (hk.kill && n >= hk.kill_at) {
    struct ack a = {.kind = OP_HOOK, .thread = UINT32_MAX, .value = point};
    send_ack(hk.wfd, &a);
    raise(SIGKILL);
  }
  hook_sleep();
}

struct child {
  cairn *db;
  int wfd;
  uint64_t seed;
  uint32_t round;
};

/* Read plain key idx and compare it with generation gen: 0 or -1. */
static int check_get(cairn *db, uint32_t round, uint32_t t, uint32_t idx,
                     uint32_t gen) {
  char key[KEY_CAP], want[VALUE_CAP];
  size_t klen = plain_key(key, round, t, idx);
  size_t wlen = plain_value(want, round, t, idx, gen);
  cairn_value v = {0};
  int rc = cairn_get(db, plain_ns(idx), key, klen, &v);
  if (rc) return rc;
  rc = v.len == wlen && memcmp(v.data, want, wlen) == 0 ? 0 : -1;
  cairn_value_free(&v);
  return rc;
}

static int run_op(cairn *db, uint32_t round, uint32_t t, const struct op *o,
                  int64_t *result) {
  char key[KEY_CAP], val[VALUE_CAP];
  size_t klen, vlen;
  switch (o->kind) {
  case OP_PUT:
  case OP_REPUT:
    klen = plain_key(key, round, t, o->idx);
    vlen = plain_value(val, round, t, o->idx, o->gen);
    return cairn_put(db, plain_ns(o->idx), key, klen, val, vlen, NULL);
  case OP_HOT:
    klen = hot_key(key, round, t, o->idx);
    vlen = hot_value(val, o->hot);
    return cairn_put(db, NULL, key, klen, val, vlen, NULL);
  case OP_INCR:
    klen = ctr_key(key, round, t);
    return cairn_incr(db, NULL, key, klen, 1, result, NULL);
  case OP_DEL:
    klen = plain_key(key, round, t, o->idx);
    return cairn_del(db, plain_ns(o->idx), key, klen, NULL);
  case OP_GET:
    return check_get(db, round, t, o->idx, o->gen);
  }
  return CAIRN_EINVAL;
}

struct writer {
  struct child *c;
  uint32_t thread;
};

static void *writer_main(void *arg) {
  struct writer *wr = arg;
  struct child *c = wr->c;
  static struct prog progs[CK_THREADS];
  struct prog *p = &progs[wr->thread];
  prog_init(p, c->seed, c->round, wr->thread);
  for (;;) { /* ends with SIGKILL, or SIGALRM if the parent is gone */
    struct op o;
    prog_next(p, &o);
    int64_t result = 0;
    int rc = run_op(c->db, c->round, wr->thread, &o, &result);
    if (rc) child_fail(c->wfd, wr->thread, o.kind, rc);
    if (o.kind == OP_INCR && result != o.ctr)
      child_fail(c->wfd, wr->thread, o.kind, -2);
    struct ack a = {.kind = (uint32_t)o.kind, .thread = wr->thread,
                    .step = o.step, .value = result};
    send_ack(c->wfd, &a);
  }
  return NULL;
}

static cairn_options ck_options(void) {
  cairn_options opt;
  cairn_options_init(&opt);
  opt.durability = CAIRN_DURABILITY_FSYNC;
  opt.segment_bytes = 1u << 20;
  opt.checkpoint_bytes = CK_CKPT_BYTES;
  opt.max_memory = CK_MAX_MEMORY;
  opt.expire_tick_ms = 20;
  opt.log_fn = tu_quiet;
  return opt;
}

/* Runs in the forked child: never returns, never touches Criterion. */
__attribute__((noreturn)) static void child_main(const char *dir,
                                                 const struct hook_cfg *h,
                                                 uint32_t round, uint64_t seed,
                                                 int wfd) {
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  alarm(CHILD_ALARM_S);
  signal(SIGPIPE, SIG_IGN);
  hk = *h;
  hk.wfd = wfd;
  sys_ops.test_hook = ckpt_hook; /* before the open: its checkpoint too */
  cairn_options opt = ck_options();
  static struct child c;
  c.wfd = wfd;
  c.seed = seed;
  c.round = round;
  int rc = cairn_open(dir, &opt, &c.db);
  if (rc) child_fail(wfd, UINT32_MAX, 0, rc);
  static struct writer wr[CK_THREADS];
  pthread_t tid[CK_THREADS];
  for (uint32_t t = 0; t < CK_THREADS; t++) {
    wr[t] = (struct writer){.c = &c, .thread = t};
    if (pthread_create(&tid[t], NULL, writer_main, &wr[t]))
      child_fail(wfd, UINT32_MAX, 0, -EAGAIN);
  }
  for (;;) pause();
}

/* ======================================================================
 * The parent
 * ==================================================================== */

/* The expected state of one (round, thread): exact, except that the
 * operation in flight at the kill may have landed. */
struct expect {
  uint32_t round, thread;
  struct tstate st;
  struct op inflight;
  int has_inflight;
};

struct dirstate {
  uint32_t first_round, nrounds;
  struct expect *e; /* nrounds * CK_THREADS */
};

struct round {
  uint64_t seed;
  uint32_t round;
  struct prog prog[CK_THREADS];
  struct hook_cfg hook;
  uint64_t acked;
  int hook_died;     /* the SYS_HOOK_* point the child died at, or 0 */
  int failed;        /* 1: a call failed in the child; 2: a bad ack */
  struct ack fail;
  struct cairn_stats st;
};

static void take_ack(struct round *r, const struct ack *a) {
  if (r->failed) return;
  if (a->kind == OP_HOOK) {
    r->hook_died = (int)a->value;
    return;
  }
  if (a->kind == OP_FAIL || a->thread >= CK_THREADS) {
    r->fail = *a;
    r->failed = 1;
    return;
  }
  struct op o;
  prog_next(&r->prog[a->thread], &o);
  if (o.step != a->step || (uint32_t)o.kind != a->kind ||
      (o.kind == OP_INCR && a->value != o.ctr)) {
    r->fail = *a;
    r->failed = 2;
    return;
  }
  r->acked++;
}

static int read_acks(int fd, struct round *r, char *buf, size_t *have) {
  ssize_t n = read(fd, buf + *have, 64 * sizeof(struct ack) - *have);
  if (n < 0) {
    cr_assert(errno == EINTR || errno == EAGAIN, "read: %s", strerror(errno));
    return 1;
  }
  if (n == 0) return 0;
  *have += (size_t)n;
  size_t used = 0;
  for (; *have - used >= sizeof(struct ack); used += sizeof(struct ack)) {
    struct ack a;
    memcpy(&a, buf + used, sizeof a);
    take_ack(r, &a);
  }
  memmove(buf, buf + used, *have - used);
  *have -= used;
  return 1;
}

static uint64_t mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Collect acks until the child dies (a killing hook) or kill_ms passes,
 * then SIGKILL it, drain the pipe and reap it. */
static void watch_child(pid_t pid, int fd, unsigned kill_ms, struct round *r) {
  char buf[64 * sizeof(struct ack)];
  size_t have = 0;
  uint64_t deadline = mono_ms() + kill_ms;
  int open = 1;
  for (uint64_t now = mono_ms(); open && now < deadline; now = mono_ms()) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    if (poll(&pfd, 1, (int)(deadline - now)) > 0)
      open = read_acks(fd, r, buf, &have);
  }
  kill(pid, SIGKILL);
  while (open) open = read_acks(fd, r, buf, &have);
  close(fd);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
  cr_assert_eq(have, 0, "a torn acknowledgement");
  cr_assert(r->failed != 1,
            "seed %" PRIu64 " round %" PRIu32 ": child thread %" PRIu32
            " failed op kind %" PRIu64 ": %s (%" PRId64 ")",
            r->seed, r->round, r->fail.thread, r->fail.step,
            r->fail.value == -1 ? "read a wrong value"
            : r->fail.value == -2 ? "wrong incr result"
                                  : cairn_strerror((int)r->fail.value),
            r->fail.value);
  cr_assert(r->failed != 2,
            "seed %" PRIu64 " round %" PRIu32 ": thread %" PRIu32
            " acknowledged step %" PRIu64 " kind %" PRIu32
            ", not its next operation",
            r->seed, r->round, r->fail.thread, r->fail.step, r->fail.kind);
  cr_assert(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
            "seed %" PRIu64 " round %" PRIu32
            ": child ended by itself (status 0x%x)",
            r->seed, r->round, status);
}

/* Freeze each thread's acknowledged state, and its next operation as the
 * one that may have landed. */
static void record_round(struct dirstate *d, struct round *r) {
  uint32_t k = r->round - d->first_round;
  cr_assert_eq(k, d->nrounds);
  d->nrounds++;
  d->e = xrealloc(d->e, d->nrounds * CK_THREADS * sizeof *d->e);
  for (uint32_t t = 0; t < CK_THREADS; t++) {
    struct expect *e = &d->e[k * CK_THREADS + t];
    memset(e, 0, sizeof *e);
    e->round = r->round;
    e->thread = t;
    tstate_copy(&e->st, &r->prog[t].st);
    prog_next(&r->prog[t], &e->inflight);
    e->has_inflight = 1;
  }
}

/* ----------------------------------------------------------------------
 * Checking the reopened database
 * ------------------------------------------------------------------- */

/* Does v hold exactly want? */
static int same(const cairn_value *v, const char *want, size_t wlen) {
  return v->len == wlen && memcmp(v->data, want, wlen) == 0;
}

/* Plain key idx must hold generation gen, or alt if the in-flight
 * operation landed (alt < 0: no alternative).  Returns the generation
 * found. */
static uint32_t check_plain(cairn *db, const struct expect *e, uint32_t idx,
                            uint32_t gen, int alt, uint64_t seed) {
  char key[KEY_CAP], want[VALUE_CAP];
  size_t klen = plain_key(key, e->round, e->thread, idx);
  cairn_value v = {0};
  int rc = cairn_get(db, plain_ns(idx), key, klen, &v);
  cr_assert(rc == 0 || rc == CAIRN_ENOTFOUND, "get %s: %s", key,
            cairn_strerror(rc));
  uint32_t cand[2] = {gen, alt < 0 ? gen : (uint32_t)alt}, found = UINT32_MAX;
  for (int i = 0; i < 2 && found == UINT32_MAX; i++) {
    if (cand[i] == 0 ? rc == CAIRN_ENOTFOUND
                     : rc == 0 && same(&v, want, plain_value(want, e->round,
                                                             e->thread, idx,
                                                             cand[i])))
      found = cand[i];
  }
  cr_assert(found != UINT32_MAX,
            "seed %" PRIu64 ": %s/%s is %s; expected generation %" PRIu32
            "%s (0: absent)", seed, plain_ns(idx) ? NS_SESS : "default", key,
            rc ? "absent" : "another value", gen,
            alt >= 0 ? " or the in-flight one" : "");
  cairn_value_free(&v);
  return found;
}

/* The hot slot must hold value want (or alt); returns the one found. */
static uint64_t check_hot(cairn *db, const struct expect *e, uint32_t slot,
                          uint64_t want_v, uint64_t alt_v, uint64_t seed) {
  char key[KEY_CAP], want[VALUE_CAP];
  size_t klen = hot_key(key, e->round, e->thread, slot);
  cairn_value v = {0};
  int rc = cairn_get(db, NULL, key, klen, &v);
  cr_assert(rc == 0 || rc == CAIRN_ENOTFOUND, "get %s: %s", key,
            cairn_strerror(rc));
  uint64_t cand[2] = {want_v, alt_v}, found = UINT64_MAX;
  for (int i = 0; i < 2 && found == UINT64_MAX; i++)
    if (cand[i] == 0 ? rc == CAIRN_ENOTFOUND
                     : rc == 0 && same(&v, want, hot_value(want, cand[i])))
      found = cand[i];
  cr_assert(found != UINT64_MAX,
            "seed %" PRIu64 ": %s is %s; expected hot value %" PRIu64
            " or %" PRIu64, seed, key, rc ? "absent" : "another value",
            want_v, alt_v);
  cairn_value_free(&v);
  return found;
}

static int64_t check_ctr(cairn *db, const struct expect *e, int64_t want,
                         int64_t alt, uint64_t seed) {
  char key[KEY_CAP];
  size_t klen = ctr_key(key, e->round, e->thread);
  cairn_value v = {0};
  int rc = cairn_get(db, NULL, key, klen, &v);
  cr_assert(rc == 0 || rc == CAIRN_ENOTFOUND, "get %s: %s", key,
            cairn_strerror(rc));
  int64_t got = rc == 0 ? strtoll(v.data, NULL, 10) : 0;
  cairn_value_free(&v);
  cr_assert(got == want || got == alt,
            "seed %" PRIu64 ": %s is %" PRId64 ", expected %" PRId64
            " or %" PRId64, seed, key, got, want, alt);
  return got;
}

/* Check one thread's keys, and settle the in-flight operation: after
 * this, e->st is exact. */
static void check_expect(cairn *db, struct expect *e, uint64_t seed) {
  const struct op *o = e->has_inflight ? &e->inflight : NULL;
  uint32_t n = e->st.nplain;
  if (o && o->kind == OP_PUT) { /* the key the in-flight put creates */
    cr_assert_eq(o->idx, n);
    if (n == e->st.cap) e->st.gen = xrealloc(e->st.gen, ++e->st.cap);
    e->st.gen[n] = 0;
    e->st.seen = xrealloc(e->st.seen, e->st.cap);
    e->st.nplain = ++n;
  }
  for (uint32_t i = 0; i < n; i++) {
    int alt = -1;
    if (o && o->idx == i &&
        (o->kind == OP_PUT || o->kind == OP_REPUT || o->kind == OP_DEL))
      alt = (int)o->gen;
    e->st.gen[i] = (uint8_t)check_plain(db, e, i, e->st.gen[i], alt, seed);
  }
  for (uint32_t s = 0; s < HOT_SLOTS; s++) {
    uint64_t alt = o && o->kind == OP_HOT && o->idx == s ? o->hot
                                                         : e->st.hot[s];
    e->st.hot[s] = check_hot(db, e, s, e->st.hot[s], alt, seed);
  }
  int64_t alt = o && o->kind == OP_INCR ? o->ctr : e->st.ctr;
  e->st.ctr = check_ctr(db, e, e->st.ctr, alt, seed);
  e->has_inflight = 0;
}

/* A full scan visits each live key once, with its value. */
struct scan_ctx {
  struct dirstate *d;
  const char *ns;
  uint64_t visits;
  char bad[160];
};

static struct expect *find_expect(struct dirstate *d, uint32_t round,
                                  uint32_t t) {
  if (round < d->first_round || round - d->first_round >= d->nrounds ||
      t >= CK_THREADS)
    return NULL;
  return &d->e[(round - d->first_round) * CK_THREADS + t];
}

/* Is (key, val) a live key of the model, seen for the first time? */
static int scan_match(struct scan_ctx *c, const char *key, const void *val,
                      size_t vlen) {
  uint32_t round, t, i;
  char kind, want[VALUE_CAP];
  int n = 0;
  if (sscanf(key, "r%" SCNu32 "/t%" SCNu32 "/%c%n", &round, &t, &kind, &n) != 3)
    return 0;
  struct expect *e = find_expect(c->d, round, t);
  if (!e) return 0;
  if (kind == 'c' && strcmp(key + n, "tr") == 0 && !c->ns) {
    char num[32];
    snprintf(num, sizeof num, "%" PRId64, e->st.ctr);
    return e->st.ctr && !e->st.ctr_seen++ && vlen == strlen(num) &&
           memcmp(val, num, vlen) == 0;
  }
  if (sscanf(key + n, "%" SCNu32, &i) != 1) return 0;
  if (kind == 'h' && i < HOT_SLOTS && !c->ns)
    return e->st.hot[i] && !e->st.hot_seen[i]++ &&
           vlen == hot_value(want, e->st.hot[i]) && memcmp(val, want, vlen) == 0;
  if (kind != 'p' || i >= e->st.nplain || e->st.gen[i] == 0 ||
      (plain_ns(i) != NULL) != (c->ns != NULL))
    return 0;
  return !e->st.seen[i]++ &&
         vlen == plain_value(want, round, t, i, e->st.gen[i]) &&
         memcmp(val, want, vlen) == 0;
}

static int scan_visit(void *arg, const void *key, size_t klen, const void *val,
                      size_t vlen, uint64_t version, int64_t expire_at_ms) {
  (void)version, (void)expire_at_ms;
  struct scan_ctx *c = arg;
  char k[KEY_CAP];
  c->visits++;
  if (c->bad[0]) return 0;
  snprintf(k, sizeof k, "%.*s", (int)(klen < KEY_CAP ? klen : KEY_CAP - 1),
           (const char *)key);
  if (klen >= KEY_CAP || !scan_match(c, k, val, vlen))
    snprintf(c->bad, sizeof c->bad, "%s/%s: not live, seen twice, or a wrong "
             "value", c->ns ? c->ns : "default", k);
  return 0;
}

static uint64_t scan_ns(cairn *db, struct dirstate *d, const char *ns,
                        uint64_t seed) {
  struct scan_ctx c = {.d = d, .ns = ns};
  uint64_t cursor = 0;
  unsigned calls = 0;
  do {
    int rc = cairn_scan(db, ns, NULL, 0, &cursor, 97, scan_visit, &c);
    cr_assert_eq(rc, 0, "scan: %s", cairn_strerror(rc));
    cr_assert_lt(++calls, SCAN_CALLS_MAX, "the scan does not end");
  } while (cursor != 0);
  cr_assert(!c.bad[0], "seed %" PRIu64 ": scan: %s", seed, c.bad);
  return c.visits;
}

static uint64_t live_keys(struct dirstate *d) {
  uint64_t n = 0;
  for (uint32_t k = 0; k < d->nrounds * CK_THREADS; k++) {
    struct tstate *s = &d->e[k].st;
    for (uint32_t i = 0; i < s->nplain; i++) n += s->gen[i] != 0;
    for (uint32_t i = 0; i < HOT_SLOTS; i++) n += s->hot[i] != 0;
    n += s->ctr != 0;
    memset(s->seen, 0, s->cap);
    memset(s->hot_seen, 0, sizeof s->hot_seen);
    s->ctr_seen = 0;
  }
  return n;
}

static void check_stats(const struct cairn_stats *st, const struct round *r) {
  cr_assert(st->durable_lsn <= st->written_lsn &&
                st->written_lsn <= st->last_lsn &&
                st->checkpoint_lsn <= st->durable_lsn && !st->readonly,
            "seed %" PRIu64 " round %" PRIu32 ": after recovery: last %" PRIu64
            " written %" PRIu64 " durable %" PRIu64 " checkpoint %" PRIu64
            " readonly %d", r->seed, r->round, st->last_lsn, st->written_lsn,
            st->durable_lsn, st->checkpoint_lsn, st->readonly);
}

static void check_round(const char *dir, struct dirstate *d, struct round *r) {
  cairn_options opt = ck_options();
  cairn *db = NULL;
  int rc = cairn_open(dir, &opt, &db);
  cr_assert_eq(rc, 0, "seed %" PRIu64 " round %" PRIu32 ": reopen: %s",
               r->seed, r->round, cairn_strerror(rc));
  cr_assert_eq(cairn_stats(db, &r->st), 0);
  check_stats(&r->st, r);
  for (uint32_t k = 0; k < d->nrounds * CK_THREADS; k++)
    check_expect(db, &d->e[k], r->seed);
  uint64_t live = live_keys(d);
  uint64_t visits = scan_ns(db, d, NULL, r->seed) +
                    scan_ns(db, d, NS_SESS, r->seed);
  cr_assert_eq(visits, live,
               "seed %" PRIu64 " round %" PRIu32 ": the scans visited %" PRIu64
               " keys, %" PRIu64 " are live", r->seed, r->round, visits, live);
  struct cairn_stats st;
  cr_assert_eq(cairn_stats(db, &st), 0);
  check_stats(&st, r);
  cairn_close(db);
}

/* ======================================================================
 * The test
 * ==================================================================== */

static unsigned env_unsigned(const char *name, unsigned dflt) {
  const char *s = getenv(name);
  return s && *s ? (unsigned)strtoul(s, NULL, 10) : dflt;
}

static uint64_t pick_seed(void) {
  const char *s = getenv("CAIRN_CRASH_SEED");
  if (s && *s) return strtoull(s, NULL, 0);
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return (uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 20) ^
         ((uint64_t)getpid() << 40);
}

/* Rounds cycle through: die in the mid-transaction window, die in the
 * committed window, and sleep in either while the parent kills at random
 * (sometimes within the open, whose replayed log is checkpointed first). */
static unsigned plan_round(uint32_t round, uint64_t *rng, struct hook_cfg *h) {
  memset(h, 0, sizeof *h);
  h->rng = splitmix(rng);
  switch (round % 4) {
  case 0:
  case 1:
    h->point = round % 4 == 0 ? SYS_HOOK_CKPT_MID_TXN : SYS_HOOK_CKPT_COMMITTED;
    h->kill = 1;
    h->kill_at = 1 + (unsigned)(splitmix(rng) % CK_KILL_AT_MAX);
    return CK_HOOK_WAIT_MS;
  default:
    h->point = round % 4 == 2 ? SYS_HOOK_CKPT_MID_TXN : SYS_HOOK_CKPT_COMMITTED;
    if (splitmix(rng) % 4 == 0) return (unsigned)(splitmix(rng) % 20);
    return 20 + (unsigned)(splitmix(rng) % (CK_KILL_MS_MAX - 20));
  }
}

static void run_round(const char *dir, struct dirstate *d, struct round *r,
                      uint64_t *rng) {
  unsigned kill_ms = plan_round(r->round, rng, &r->hook);
  for (uint32_t t = 0; t < CK_THREADS; t++)
    prog_init(&r->prog[t], r->seed, r->round, t);
  int fds[2];
  cr_assert_eq(pipe(fds), 0, "pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    child_main(dir, &r->hook, r->round, r->seed, fds[1]);
  }
  close(fds[1]);
  watch_child(pid, fds[0], kill_ms, r);
  if (r->hook_died)
    cr_assert_eq(r->hook_died, r->hook.point, "the hook died elsewhere");
  record_round(d, r);
  check_round(dir, d, r);
  for (uint32_t t = 0; t < CK_THREADS; t++) prog_free(&r->prog[t]);
}

static void dir_free(struct dirstate *d) {
  for (uint32_t k = 0; k < d->nrounds * CK_THREADS; k++)
    tstate_free(&d->e[k].st);
  free(d->e);
  memset(d, 0, sizeof *d);
}

Test(ckpt_crash, acknowledged_writes_survive_a_kill_inside_a_checkpoint,
     .timeout = 300.0) {
  unsigned rounds = env_unsigned("CAIRN_CRASH_ROUNDS", CK_ROUNDS);
  uint64_t seed = pick_seed(), rng = seed;
  fprintf(stderr, "ckpt_crash: seed %" PRIu64 " (CAIRN_CRASH_SEED), %u rounds\n",
          seed, rounds);
  char dir[4096] = "";
  struct dirstate d = {0};
  uint64_t acked = 0, died[3] = {0, 0, 0}, replayed = 0, ckpt_max = 0;
  for (uint32_t round = 0; round < rounds; round++) {
    if (round % CK_FRESH_EVERY == 0) {
      if (*dir) tu_rmrf(dir);
      tu_tmpdir(dir, sizeof dir, "ckcrash");
      dir_free(&d);
      d.first_round = round;
    }
    static struct round r;
    memset(&r, 0, sizeof r);
    r.seed = seed;
    r.round = round;
    run_round(dir, &d, &r, &rng);
    acked += r.acked;
    if (r.hook_died == SYS_HOOK_CKPT_MID_TXN || r.hook_died == SYS_HOOK_CKPT_COMMITTED)
      died[r.hook_died]++;
    replayed += r.st.recovered_records;
    if (r.st.checkpoint_lsn > ckpt_max) ckpt_max = r.st.checkpoint_lsn;
  }
  dir_free(&d);
  tu_rmrf(dir);
  fprintf(stderr,
          "ckpt_crash: %" PRIu64 " acknowledged operations; died %" PRIu64
          " times mid-transaction, %" PRIu64 " times after the commit; %"
          PRIu64 " records replayed\n",
          acked, died[SYS_HOOK_CKPT_MID_TXN], died[SYS_HOOK_CKPT_COMMITTED],
          replayed);
  cr_assert_gt(acked, 0, "no write was ever acknowledged");
  cr_assert_gt(ckpt_max, 0, "no checkpoint ever committed");
  /* A quarter of the rounds aim at each window; at least half must die
   * there (the others may run out of time before their checkpoint). */
  unsigned want = (rounds / 4 + 1) / 2;
  cr_assert_geq(died[SYS_HOOK_CKPT_MID_TXN], want,
                "died mid-transaction %" PRIu64 " times", died[1]);
  cr_assert_geq(died[SYS_HOOK_CKPT_COMMITTED], want,
                "died after the commit %" PRIu64 " times", died[2]);
}

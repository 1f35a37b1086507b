/*
 * test_crash.c - kill a writing process at random moments, then check that
 * recovery keeps every acknowledged write and every batch whole.
 *
 * Each round forks a child that opens the database with FSYNC durability
 * and runs CRASH_THREADS writer threads.  After every call that returns
 * success, a thread sends a fixed-size acknowledgement to the parent over a
 * pipe (writes of at most PIPE_BUF bytes to a pipe are atomic, so threads
 * share it).  The parent SIGKILLs the child after a random delay, reopens
 * the database and compares it with what was acknowledged.
 *
 * Why the check can be exact: each thread runs a deterministic program (a
 * PRNG seeded by the round's seed and the thread number) over keys that only
 * it touches, and it waits for each call to return before it starts the
 * next.  So the parent replays the program: once a thread has acknowledged
 * operations 0..n-1, those must all be durable, operation n may or may not
 * be (it was in flight), and nothing after it was ever started.  Every key
 * thus has one exact expected state, or two when the thread's in-flight
 * operation touches it.  The one key that threads share is a counter, which
 * is checked against bounds instead.
 *
 * The database directory is reused for several rounds, so the log
 * accumulates torn tails and segments; every CRASH_FRESH_EVERY rounds a new
 * one starts.  Some rounds use CAIRN_OPEN_NO_URING, in the child or in the
 * reopen, so that logs written by one path are read after the other.
 *
 * Environment: CAIRN_CRASH_ROUNDS (default 20), CAIRN_CRASH_SEED.
 */
#include "config.h"

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
#include "../testutil.h"

#define CRASH_THREADS      4
#define CRASH_ROUNDS       20
#define CRASH_FRESH_EVERY  5
#define HOT_KEYS           3u
#define LIVE_MAX           (1u << 16) /* plain keys a thread may delete */
#define BIG_VALUE_BYTES    16384u
#define VALUE_CAP          (BIG_VALUE_BYTES + 256u)
#define KEY_CAP            96u
#define TTL_LONG_MS        (3600u * 1000u)
#define CHILD_ALARM_S      30u
#define SCAN_CALLS_MAX     100000u
#define NS_SESS            "sess"
#define COUNTER_KEY        "counter"

/* ======================================================================
 * Thread programs: shared by the child (which runs them) and the parent
 * (which replays them).
 * ==================================================================== */

enum op_kind { OP_PUT = 1, OP_HOT, OP_DEL, OP_INCR, OP_BATCH, OP_FAIL };

struct prog {
  uint64_t rng;
  uint32_t round, thread;
  uint64_t step;       /* index of the next operation */
  uint32_t next_plain; /* plain keys created so far */
  uint32_t next_batch;
  uint32_t nlive;      /* plain keys created and not deleted */
  uint32_t *live;
};

struct op {
  int kind;
  uint64_t step;
  uint32_t idx; /* plain key, hot slot or batch number */
  uint32_t n;   /* keys in a batch */
  uint64_t hot; /* the counter a hot overwrite writes */
};

/* The acknowledgement a thread sends after a call succeeded. */
struct ack {
  uint32_t kind;
  uint32_t thread;
  uint64_t step;
  uint64_t key;   /* idx of the op; for OP_FAIL the failing op's kind */
  int64_t value;  /* hot counter, incr result; for OP_FAIL the error */
  uint64_t batch; /* keys in the batch */
};
/* POSIX makes pipe writes of up to 512 bytes (the least PIPE_BUF) atomic.
 * (<limits.h> is not included: src/limits.h shadows it on our path.) */
_Static_assert(sizeof(struct ack) <= 512, "acks are written atomically");

static uint64_t splitmix(uint64_t *s) {
  uint64_t z = (*s += 0x9e3779b97f4a7c15ull);
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

static void prog_init(struct prog *p, uint64_t seed, uint32_t round,
                      uint32_t thread) {
  memset(p, 0, sizeof *p);
  p->rng = seed ^ ((uint64_t)round << 32) ^ ((uint64_t)thread * 0x51ed27u);
  p->round = round;
  p->thread = thread;
  p->live = malloc(LIVE_MAX * sizeof *p->live);
  if (!p->live) abort();
}

static void prog_free(struct prog *p) {
  free(p->live);
  p->live = NULL;
}

/* The next operation of the program.  Deletes pick a live plain key of the
 * same thread, so every call is expected to succeed. */
static void prog_next(struct prog *p, struct op *o) {
  memset(o, 0, sizeof *o);
  o->step = p->step++;
  unsigned r = (unsigned)(splitmix(&p->rng) % 100);
  if (r >= 65 && r < 80 && p->nlive == 0) r = 0;
  if (r < 40) {
    o->kind = OP_PUT;
    o->idx = p->next_plain++;
    if (p->nlive < LIVE_MAX) p->live[p->nlive++] = o->idx;
  } else if (r < 55) {
    o->kind = OP_HOT;
    o->idx = (uint32_t)(splitmix(&p->rng) % HOT_KEYS);
    o->hot = o->step + 1;
  } else if (r < 65) {
    o->kind = OP_INCR;
  } else if (r < 80) {
    o->kind = OP_DEL;
    uint32_t j = (uint32_t)(splitmix(&p->rng) % p->nlive);
    o->idx = p->live[j];
    p->live[j] = p->live[--p->nlive];
  } else {
    o->kind = OP_BATCH;
    o->idx = p->next_batch++;
    o->n = 2 + (uint32_t)(splitmix(&p->rng) % 4);
  }
}

/* ----------------------------------------------------------------------
 * Keys and values.  Every value names its key, so a value that landed
 * under the wrong key is caught too.
 * ------------------------------------------------------------------- */

static const char *plain_ns(uint32_t idx) { return idx % 2 ? NS_SESS : NULL; }

static void plain_key(char *buf, uint32_t round, uint32_t t, uint32_t idx) {
  snprintf(buf, KEY_CAP, "r%" PRIu32 "/t%" PRIu32 "/p%" PRIu32, round, t, idx);
}

/* "put:<key>:" then filler whose length and bytes follow from the key;
 * every 7th value is big, so that rounds roll over log segments. */
static size_t plain_value(char *buf, uint32_t round, uint32_t t, uint32_t idx) {
  char key[KEY_CAP];
  plain_key(key, round, t, idx);
  int n = snprintf(buf, VALUE_CAP, "put:%s:", key);
  uint64_t s = ((uint64_t)round << 40) ^ ((uint64_t)t << 32) ^ idx;
  size_t fill = idx % 7 == 6 ? BIG_VALUE_BYTES
                               : (size_t)(splitmix(&s) % 600);
  for (size_t i = 0; i < fill; i++)
    buf[n + i] = (char)('a' + splitmix(&s) % 26);
  buf[n + fill] = '\0';
  return (size_t)n + fill;
}

static void hot_key(char *buf, uint32_t round, uint32_t t, uint32_t slot) {
  snprintf(buf, KEY_CAP, "r%" PRIu32 "/t%" PRIu32 "/hot%" PRIu32, round, t,
           slot);
}

static size_t hot_value(char *buf, uint64_t counter) {
  return (size_t)snprintf(buf, VALUE_CAP, "hot:%" PRIu64, counter);
}

static void batch_key(char *buf, uint32_t round, uint32_t t, uint32_t b,
                      uint32_t i) {
  snprintf(buf, KEY_CAP, "r%" PRIu32 "/t%" PRIu32 "/b%" PRIu32 "/%" PRIu32,
           round, t, b, i);
}

/* "batch:round:thread:batch:i:n": the value alone names all its siblings. */
static size_t batch_value(char *buf, uint32_t round, uint32_t t, uint32_t b,
                          uint32_t i, uint32_t n) {
  return (size_t)snprintf(buf, VALUE_CAP,
                          "batch:%" PRIu32 ":%" PRIu32 ":%" PRIu32 ":%" PRIu32
                          ":%" PRIu32 ":",
                          round, t, b, i, n);
}

/* ======================================================================
 * The child
 * ==================================================================== */

struct child {
  cairn *db;
  int wfd;
  uint64_t seed;
  uint32_t round;
};

static void send_ack(int wfd, const struct ack *a) {
  /* Only the parent's death ends a write early; then nothing matters. */
  while (write(wfd, a, sizeof *a) < 0 && errno == EINTR) {
  }
}

__attribute__((noreturn)) static void child_fail(int wfd, uint32_t thread,
                                                 int kind, int rc) {
  struct ack a = {.kind = OP_FAIL, .thread = thread, .key = (uint64_t)kind,
                  .value = rc};
  send_ack(wfd, &a);
  _exit(3);
}

static int run_batch(cairn *db, uint32_t round, uint32_t t, const struct op *o) {
  cairn_batch *b;
  int rc = cairn_batch_new(db, &b);
  if (rc) return rc;
  char key[KEY_CAP], val[VALUE_CAP];
  for (uint32_t i = 0; i < o->n && rc == 0; i++) {
    batch_key(key, round, t, o->idx, i);
    size_t vlen = batch_value(val, round, t, o->idx, i, o->n);
    rc = cairn_batch_put(b, NS_SESS, key, strlen(key), val, vlen, NULL);
  }
  if (rc == 0) rc = cairn_batch_commit(b, NULL);
  cairn_batch_free(b);
  return rc;
}

static int run_op(cairn *db, uint32_t round, uint32_t t, const struct op *o,
                  int64_t *result) {
  char key[KEY_CAP], val[VALUE_CAP];
  size_t vlen;
  switch (o->kind) {
  case OP_PUT: {
    plain_key(key, round, t, o->idx);
    vlen = plain_value(val, round, t, o->idx);
    cairn_write w = {.ttl_ms = TTL_LONG_MS, .flags = CAIRN_W_TTL};
    return cairn_put(db, plain_ns(o->idx), key, strlen(key), val, vlen,
                     o->idx % 3 == 0 ? &w : NULL);
  }
  case OP_HOT:
    hot_key(key, round, t, o->idx);
    vlen = hot_value(val, o->hot);
    return cairn_put(db, NULL, key, strlen(key), val, vlen, NULL);
  case OP_DEL:
    plain_key(key, round, t, o->idx);
    return cairn_del(db, plain_ns(o->idx), key, strlen(key), NULL);
  case OP_INCR:
    return cairn_incr(db, NULL, COUNTER_KEY, strlen(COUNTER_KEY), 1, result,
                      NULL);
  case OP_BATCH:
    return run_batch(db, round, t, o);
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
  struct prog p;
  prog_init(&p, c->seed, c->round, wr->thread);
  for (;;) { /* ends with SIGKILL, or SIGALRM if the parent is gone */
    struct op o;
    prog_next(&p, &o);
    int64_t result = 0;
    int rc = run_op(c->db, c->round, wr->thread, &o, &result);
    if (rc) child_fail(c->wfd, wr->thread, o.kind, rc);
    struct ack a = {.kind = (uint32_t)o.kind, .thread = wr->thread,
                    .step = o.step, .key = o.idx, .batch = o.n,
                    .value = o.kind == OP_INCR ? result : (int64_t)o.hot};
    send_ack(c->wfd, &a);
  }
  return NULL;
}

/* Runs in the forked child: never returns, never touches Criterion. */
__attribute__((noreturn)) static void child_main(const char *dir,
                                                 unsigned flags, uint32_t round,
                                                 uint64_t seed, int wfd) {
  /* Die with the parent, or after a while in any case. */
  prctl(PR_SET_PDEATHSIG, SIGKILL);
  alarm(CHILD_ALARM_S);
  signal(SIGPIPE, SIG_IGN);
  cairn_options opt;
  cairn_options_init(&opt);
  opt.durability = CAIRN_DURABILITY_FSYNC;
  opt.segment_bytes = 1u << 20;
  opt.flags = flags;
  opt.log_level = CAIRN_LOG_WARN;
  static struct child c;
  c.wfd = wfd;
  c.seed = seed;
  c.round = round;
  int rc = cairn_open(dir, &opt, &c.db);
  if (rc) child_fail(wfd, UINT32_MAX, 0, rc);
  static struct writer wr[CRASH_THREADS];
  pthread_t tid[CRASH_THREADS];
  for (uint32_t t = 0; t < CRASH_THREADS; t++) {
    wr[t] = (struct writer){.c = &c, .thread = t};
    if (pthread_create(&tid[t], NULL, writer_main, &wr[t]))
      child_fail(wfd, UINT32_MAX, 0, -EAGAIN);
  }
  for (;;) pause();
}

/* ======================================================================
 * The parent's model: "ns\x1fkey" -> one or two possible values, where
 * NULL means absent.
 * ==================================================================== */

struct ment {
  char *key;
  char *val[2];
  uint8_t nalt; /* 1: exact; 2: val[1] if the in-flight op landed */
  uint8_t seen; /* visited by the scan */
};

struct model {
  struct ment *e;
  size_t cap, used;
};

static uint64_t hash_str(const char *s) {
  uint64_t h = 1469598103934665603ull;
  for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ull;
  return h;
}

static char *xstrdup(const char *s) {
  if (!s) return NULL;
  char *d = strdup(s);
  if (!d) abort();
  return d;
}

static struct ment *model_slot(struct model *m, const char *key) {
  size_t mask = m->cap - 1;
  for (size_t i = hash_str(key) & mask;; i = (i + 1) & mask)
    if (!m->e[i].key || strcmp(m->e[i].key, key) == 0) return &m->e[i];
}

static void model_grow(struct model *m) {
  struct model n = {.cap = m->cap ? m->cap * 2 : 1024};
  n.e = calloc(n.cap, sizeof *n.e);
  if (!n.e) abort();
  for (size_t i = 0; i < m->cap; i++)
    if (m->e[i].key) *model_slot(&n, m->e[i].key) = m->e[i];
  n.used = m->used;
  free(m->e);
  *m = n;
}

static struct ment *model_find(struct model *m, const char *key) {
  if (!m->cap) return NULL;
  struct ment *e = model_slot(m, key);
  return e->key ? e : NULL;
}

static struct ment *model_get(struct model *m, const char *key) {
  if (2 * (m->used + 1) > m->cap) model_grow(m);
  struct ment *e = model_slot(m, key);
  if (!e->key) {
    e->key = xstrdup(key);
    e->nalt = 1;
    m->used++;
  }
  return e;
}

static void model_free(struct model *m) {
  for (size_t i = 0; i < m->cap; i++) {
    free(m->e[i].key);
    free(m->e[i].val[0]);
    free(m->e[i].val[1]);
  }
  free(m->e);
  memset(m, 0, sizeof *m);
}

static void full_key(char *buf, const char *ns, const char *key) {
  snprintf(buf, KEY_CAP + 16, "%s\x1f%s", ns ? ns : "", key);
}

/* Record that key will hold val (NULL: absent): for certain, or, when
 * maybe, only if the in-flight operation landed. */
static void model_set(struct model *m, const char *ns, const char *key,
                      const char *val, int maybe) {
  char fk[KEY_CAP + 16];
  full_key(fk, ns, key);
  struct ment *e = model_get(m, fk);
  if (maybe) {
    e->val[1] = xstrdup(val);
    e->nalt = 2;
  } else {
    free(e->val[0]);
    e->val[0] = xstrdup(val);
  }
}

/* Keep only the keys found present, each with the value it was found
 * with, so that the next round starts from an exact state. */
static void model_compact(struct model *m) {
  struct model n = {0};
  for (size_t i = 0; i < m->cap; i++) {
    struct ment *e = &m->e[i];
    if (e->key && e->val[0]) {
      struct ment *d = model_get(&n, e->key);
      d->val[0] = e->val[0];
      e->val[0] = NULL;
    }
  }
  model_free(m);
  *m = n;
}

/* ======================================================================
 * The parent: one round
 * ==================================================================== */

struct round {
  uint64_t seed;
  uint32_t round;
  struct prog prog[CRASH_THREADS];
  uint64_t acked;        /* acknowledgements this round */
  uint64_t incr_acked;   /* incrs acknowledged */
  int64_t incr_max;      /* largest result acknowledged */
  int64_t counter_base;  /* the counter when the round began */
  struct op inflight[CRASH_THREADS];
  struct cairn_stats st; /* of the reopen */
  int failed;            /* 1: a call failed in the child; 2: a bad ack */
  struct ack fail;
};

/* Apply one operation of thread t to the model. */
static void apply_op(struct model *m, const struct round *r, uint32_t t,
                     const struct op *o, int maybe) {
  char key[KEY_CAP], val[VALUE_CAP];
  switch (o->kind) {
  case OP_PUT:
    plain_key(key, r->round, t, o->idx);
    plain_value(val, r->round, t, o->idx);
    model_set(m, plain_ns(o->idx), key, val, maybe);
    break;
  case OP_HOT:
    hot_key(key, r->round, t, o->idx);
    hot_value(val, o->hot);
    model_set(m, NULL, key, val, maybe);
    break;
  case OP_DEL:
    plain_key(key, r->round, t, o->idx);
    model_set(m, plain_ns(o->idx), key, NULL, maybe);
    break;
  case OP_BATCH:
    for (uint32_t i = 0; i < o->n; i++) {
      batch_key(key, r->round, t, o->idx, i);
      batch_value(val, r->round, t, o->idx, i, o->n);
      model_set(m, NS_SESS, key, val, maybe);
    }
    break;
  }
}

/* One acknowledgement: it must be the thread's next operation.  A problem
 * is only recorded here, and reported once the child is reaped, so that a
 * failing test leaves no child behind. */
static void take_ack(struct model *m, struct round *r, const struct ack *a) {
  if (r->failed) return;
  if (a->kind == OP_FAIL || a->thread >= CRASH_THREADS) {
    r->fail = *a;
    r->failed = 1;
    return;
  }
  struct op o;
  prog_next(&r->prog[a->thread], &o);
  if (o.step != a->step || (uint32_t)o.kind != a->kind || o.idx != a->key ||
      o.n != a->batch || (o.kind == OP_HOT && a->value != (int64_t)o.hot)) {
    r->fail = *a;
    r->failed = 2;
    return;
  }
  if (o.kind == OP_INCR) {
    r->incr_acked++;
    if (a->value > r->incr_max) r->incr_max = a->value;
  }
  apply_op(m, r, a->thread, &o, 0);
  r->acked++;
}

/* Read whole acks from fd; returns 0 at end of file. */
static int read_acks(int fd, struct model *m, struct round *r, char *buf,
                     size_t *have) {
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
    take_ack(m, r, &a);
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

/* Collect acks until kill_ms has passed, then SIGKILL the child, drain the
 * pipe and reap it. */
static void watch_child(pid_t pid, int fd, unsigned kill_ms, struct model *m,
                        struct round *r) {
  char buf[64 * sizeof(struct ack)];
  size_t have = 0;
  uint64_t deadline = mono_ms() + kill_ms;
  int open = 1;
  for (uint64_t now = mono_ms(); open && now < deadline; now = mono_ms()) {
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    int n = poll(&pfd, 1, (int)(deadline - now));
    if (n > 0) open = read_acks(fd, m, r, buf, &have);
  }
  kill(pid, SIGKILL);
  while (open) open = read_acks(fd, m, r, buf, &have);
  close(fd);
  int status;
  while (waitpid(pid, &status, 0) < 0)
    cr_assert_eq(errno, EINTR, "waitpid: %s", strerror(errno));
  cr_assert_eq(have, 0, "a torn acknowledgement");
  cr_assert(r->failed != 1,
            "seed %" PRIu64 " round %" PRIu32 ": child thread %" PRIu32
            " failed op kind %" PRIu64 ": %s",
            r->seed, r->round, r->fail.thread, r->fail.key,
            cairn_strerror((int)r->fail.value));
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

/* Each thread's next operation may have been in flight: the model gets it
 * as the second possibility. */
static void mark_inflight(struct model *m, struct round *r) {
  for (uint32_t t = 0; t < CRASH_THREADS; t++) {
    prog_next(&r->prog[t], &r->inflight[t]);
    apply_op(m, r, t, &r->inflight[t], 1);
  }
}

/* ======================================================================
 * The parent: checking the reopened database
 * ==================================================================== */

static void split_key(char *fk, const char **ns, const char **key) {
  char *sep = strchr(fk, '\x1f');
  *sep = '\0';
  *ns = *fk ? fk : NULL;
  *key = sep + 1;
}

static const char *show(const char *v) { return v ? v : "(absent)"; }

/* Each model key must hold one of its possible values; the one found
 * becomes the exact state. */
static void check_model_keys(cairn *db, struct model *m, const struct round *r) {
  for (size_t i = 0; i < m->cap; i++) {
    struct ment *e = &m->e[i];
    if (!e->key) continue;
    char fk[KEY_CAP + 16];
    const char *ns, *key;
    strcpy(fk, e->key);
    split_key(fk, &ns, &key);
    cairn_value v = {0};
    int rc = cairn_get(db, ns, key, strlen(key), &v);
    cr_assert(rc == 0 || rc == CAIRN_ENOTFOUND, "get %s: %s", key,
              cairn_strerror(rc));
    const char *got = rc == 0 ? v.data : NULL;
    int match = -1;
    for (int a = 0; a < e->nalt && match < 0; a++)
      if (got == e->val[a] ||
          (got && e->val[a] && strcmp(got, e->val[a]) == 0 &&
           v.len == strlen(e->val[a])))
        match = a;
    cr_assert(match >= 0,
              "seed %" PRIu64 " round %" PRIu32 ": key %s/%s holds %.60s; "
              "expected %.60s%s%.60s",
              r->seed, r->round, ns ? ns : "default", key, show(got),
              show(e->val[0]), e->nalt == 2 ? " or " : "",
              e->nalt == 2 ? show(e->val[1]) : "");
    if (match == 1) {
      free(e->val[0]);
      e->val[0] = e->val[1];
      e->val[1] = NULL;
    }
    free(e->val[1]);
    e->val[1] = NULL;
    e->nalt = 1;
    cairn_value_free(&v);
  }
}

/* An in-flight batch landed whole or not at all. */
static void check_inflight_batches(cairn *db, const struct round *r) {
  for (uint32_t t = 0; t < CRASH_THREADS; t++) {
    const struct op *o = &r->inflight[t];
    if (o->kind != OP_BATCH) continue;
    uint32_t found = 0;
    for (uint32_t i = 0; i < o->n; i++) {
      char key[KEY_CAP];
      batch_key(key, r->round, t, o->idx, i);
      cairn_value v = {0};
      if (cairn_get(db, NS_SESS, key, strlen(key), &v) == 0) found++;
      cairn_value_free(&v);
    }
    cr_assert(found == 0 || found == o->n,
              "seed %" PRIu64 " round %" PRIu32 ": batch t%" PRIu32 "/b%" PRIu32
              " has %" PRIu32 " of %" PRIu32 " keys",
              r->seed, r->round, t, o->idx, found, o->n);
  }
}

static void check_counter(cairn *db, struct round *r) {
  uint64_t inflight = 0;
  for (uint32_t t = 0; t < CRASH_THREADS; t++)
    inflight += r->inflight[t].kind == OP_INCR;
  cairn_value v = {0};
  int rc = cairn_get(db, NULL, COUNTER_KEY, strlen(COUNTER_KEY), &v);
  int64_t got = 0;
  if (rc == 0) got = strtoll(v.data, NULL, 10);
  else cr_assert_eq(rc, CAIRN_ENOTFOUND, "get counter: %s", cairn_strerror(rc));
  cairn_value_free(&v);
  int64_t lo = r->incr_max > r->counter_base ? r->incr_max : r->counter_base;
  int64_t hi = r->counter_base + (int64_t)(r->incr_acked + inflight);
  cr_assert(got >= lo && got <= hi,
            "seed %" PRIu64 " round %" PRIu32 ": counter %" PRId64
            " outside [%" PRId64 ", %" PRId64 "]",
            r->seed, r->round, got, lo, hi);
  if (lo > 0) cr_assert_eq(rc, 0, "the counter is missing");
  r->counter_base = got;
}

struct scanned {
  const char *ns;
  char **key;
  size_t n, cap;
};

static int scan_collect(void *arg, const void *key, size_t klen,
                        const void *val, size_t vlen, uint64_t version,
                        int64_t expire_at_ms) {
  (void)val, (void)vlen, (void)version, (void)expire_at_ms;
  struct scanned *s = arg;
  if (s->n == s->cap) {
    s->cap = s->cap ? s->cap * 2 : 256;
    s->key = realloc(s->key, s->cap * sizeof *s->key);
    if (!s->key) abort();
  }
  char *k = malloc(klen + 1);
  if (!k) abort();
  memcpy(k, key, klen);
  k[klen] = '\0';
  s->key[s->n++] = k;
  return 0;
}

/* The siblings of a batch key found by the scan are all there, holding
 * their batch's values. */
static void check_batch_siblings(cairn *db, const char *val,
                                 const struct round *r) {
  uint32_t rd, t, b, i, n;
  if (sscanf(val, "batch:%" SCNu32 ":%" SCNu32 ":%" SCNu32 ":%" SCNu32
                  ":%" SCNu32 ":",
             &rd, &t, &b, &i, &n) != 5)
    cr_assert_fail("seed %" PRIu64 ": bad batch value %.60s", r->seed, val);
  cr_assert(n >= 2 && n <= 5 && i < n, "bad batch value %.60s", val);
  for (uint32_t j = 0; j < n; j++) {
    char key[KEY_CAP], want[VALUE_CAP];
    batch_key(key, rd, t, b, j);
    batch_value(want, rd, t, b, j, n);
    cairn_value v = {0};
    int rc = cairn_get(db, NS_SESS, key, strlen(key), &v);
    cr_assert(rc == 0 && strcmp(v.data, want) == 0,
              "seed %" PRIu64 " round %" PRIu32 ": batch key %s is %s",
              r->seed, r->round, key, rc ? "missing" : "wrong");
    cairn_value_free(&v);
  }
}

/* A full scan of ns finds exactly the model's present keys of ns. */
static void check_scan(cairn *db, const char *ns, struct model *m,
                       const struct round *r, uint64_t *nfound) {
  struct scanned s = {.ns = ns};
  uint64_t cursor = 0;
  unsigned calls = 0;
  do {
    int rc = cairn_scan(db, ns, NULL, 0, &cursor, 97, scan_collect, &s);
    cr_assert_eq(rc, 0, "scan: %s", cairn_strerror(rc));
    cr_assert_lt(++calls, SCAN_CALLS_MAX, "the scan does not end");
  } while (cursor != 0);
  for (size_t i = 0; i < s.n; i++) {
    char fk[KEY_CAP + 16];
    if (!ns && strcmp(s.key[i], COUNTER_KEY) == 0) {
      free(s.key[i]);
      continue;
    }
    cr_assert_lt(strlen(s.key[i]), KEY_CAP, "odd key %.60s", s.key[i]);
    full_key(fk, ns, s.key[i]);
    struct ment *e = model_find(m, fk);
    cr_assert(e && e->val[0],
              "seed %" PRIu64 " round %" PRIu32 ": scan found %s/%s, which "
              "should not exist",
              r->seed, r->round, ns ? ns : "default", s.key[i]);
    cr_assert(!e->seen, "scan visited %s twice", s.key[i]);
    e->seen = 1;
    (*nfound)++;
    if (strncmp(e->val[0], "batch:", 6) == 0)
      check_batch_siblings(db, e->val[0], r);
    free(s.key[i]);
  }
  free(s.key);
}

static void check_round(const char *dir, unsigned flags, struct model *m,
                        struct round *r) {
  cairn_options opt;
  cairn_options_init(&opt);
  opt.flags = flags;
  opt.log_level = CAIRN_LOG_WARN;
  opt.segment_bytes = 1u << 20;
  cairn *db = NULL;
  int rc = cairn_open(dir, &opt, &db);
  cr_assert_eq(rc, 0,
               "seed %" PRIu64 " round %" PRIu32 ": reopen of %s after kill: %s",
               r->seed, r->round, dir, cairn_strerror(rc));
  cr_assert_eq(cairn_stats(db, &r->st), 0, "stats");
  cr_assert(r->st.last_lsn >= r->st.written_lsn &&
                r->st.written_lsn >= r->st.durable_lsn && !r->st.readonly,
            "after recovery: last %" PRIu64 " written %" PRIu64
            " durable %" PRIu64 " readonly %d",
            r->st.last_lsn, r->st.written_lsn, r->st.durable_lsn,
            r->st.readonly);
  check_model_keys(db, m, r);
  check_inflight_batches(db, r);
  check_counter(db, r);
  uint64_t present = 0, found = 0;
  for (size_t i = 0; i < m->cap; i++)
    present += m->e[i].key && m->e[i].val[0];
  check_scan(db, NULL, m, r, &found);
  check_scan(db, NS_SESS, m, r, &found);
  cr_assert_eq(found, present,
               "seed %" PRIu64 " round %" PRIu32 ": scans found %" PRIu64
               " keys, expected %" PRIu64,
               r->seed, r->round, found, present);
  cairn_close(db);
  model_compact(m);
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

/* When to kill: some rounds very early, while the child may still be
 * opening (or creating) the database, the rest 5 to 150 ms in. */
static unsigned kill_delay_ms(uint32_t round, uint64_t *rng) {
  if (round % 5 == 0 || round % 5 == 3)
    return (unsigned)(splitmix(rng) % 5);
  return 5 + (unsigned)(splitmix(rng) % 146);
}

static void run_round(const char *dir, struct model *m, struct round *r,
                      uint64_t *rng) {
  unsigned child_flags = r->round % 4 == 2 ? CAIRN_OPEN_NO_URING : 0;
  unsigned check_flags = r->round % 4 == 3 ? CAIRN_OPEN_NO_URING : 0;
  for (uint32_t t = 0; t < CRASH_THREADS; t++)
    prog_init(&r->prog[t], r->seed, r->round, t);
  int fds[2];
  cr_assert_eq(pipe(fds), 0, "pipe: %s", strerror(errno));
  fflush(NULL);
  pid_t pid = fork();
  cr_assert_geq(pid, 0, "fork: %s", strerror(errno));
  if (pid == 0) {
    close(fds[0]);
    child_main(dir, child_flags, r->round, r->seed, fds[1]);
  }
  close(fds[1]);
  watch_child(pid, fds[0], kill_delay_ms(r->round, rng), m, r);
  mark_inflight(m, r);
  check_round(dir, check_flags, m, r);
  for (uint32_t t = 0; t < CRASH_THREADS; t++) prog_free(&r->prog[t]);
}

Test(crash, acknowledged_writes_survive_sigkill, .disabled = false,
     .timeout = 300.0) {
  unsigned rounds = env_unsigned("CAIRN_CRASH_ROUNDS", CRASH_ROUNDS);
  uint64_t seed = pick_seed();
  uint64_t rng = seed;
  fprintf(stderr, "crash: seed %" PRIu64 " (CAIRN_CRASH_SEED), %u rounds\n",
          seed, rounds);
  char dir[4096] = "";
  struct model m = {0};
  uint64_t acked = 0, truncated = 0, segments = 0;
  int64_t counter = 0;
  for (uint32_t round = 0; round < rounds; round++) {
    if (round % CRASH_FRESH_EVERY == 0) {
      if (*dir) tu_rmrf(dir);
      tu_tmpdir(dir, sizeof dir, "crash");
      model_free(&m);
      counter = 0;
    }
    static struct round r;
    memset(&r, 0, sizeof r);
    r.seed = seed;
    r.round = round;
    r.counter_base = counter;
    run_round(dir, &m, &r, &rng);
    counter = r.counter_base;
    acked += r.acked;
    truncated += r.st.truncated_bytes;
    if (r.st.log_segments > segments) segments = r.st.log_segments;
  }
  model_free(&m);
  tu_rmrf(dir);
  fprintf(stderr,
          "crash: %" PRIu64 " acknowledged operations checked; %" PRIu64
          " torn bytes cut; up to %" PRIu64 " segments\n",
          acked, truncated, segments);
  /* Guards against a test that never reached the writes it means to check. */
  cr_assert_gt(acked, 0, "no write was ever acknowledged");
}

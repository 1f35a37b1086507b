/*
 * benchutil.c - see benchutil.h.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <lmdb.h>

#include "benchutil.h"

const char *bench_prog = "bench";
char bench_dir[4096];

/* ------------------------------------------------------------------------
 * Clocks, keys, random indices
 * --------------------------------------------------------------------- */

uint64_t bench_now_ns(void)
{
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

double bench_secs_since(uint64_t t0)
{
  return (double)(bench_now_ns() - t0) / 1e9;
}

void bench_sleep(double s)
{
  struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
  while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
    ;
}

uint64_t bench_mix64(uint64_t x)
{
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

void bench_key(uint64_t idx, char key[BENCH_KEY_BYTES])
{
  static const char hex[] = "0123456789abcdef";
  uint64_t m = bench_mix64(idx);
  for (unsigned i = 0; i < BENCH_KEY_BYTES; i++, m >>= 4)
    key[i] = hex[m & 0xf];
}

uint64_t bench_rand(uint64_t *s, uint64_t n)
{
  *s ^= *s >> 12;
  *s ^= *s << 25;
  *s ^= *s >> 27;
  return (uint64_t)(((unsigned __int128)(*s * 0x2545f4914f6cdd1dull) * n)
                    >> 64);
}

/* ------------------------------------------------------------------------
 * Files
 * --------------------------------------------------------------------- */

int bench_subdir(const char *name, char *out, size_t cap)
{
  int len = snprintf(out, cap, "%s/%s", bench_dir, name);
  if (len < 0 || (size_t)len >= cap)
    return -ENAMETOOLONG;
  if (mkdir(out, 0755) != 0 && errno != EEXIST)
    return -errno;
  return 0;
}

static int rm_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
  (void)st; (void)flag; (void)ftw;
  if (remove(path) != 0)
    fprintf(stderr, "%s: remove %s: %s\n", bench_prog, path, strerror(errno));
  return 0;
}

void bench_rmrf(const char *path)
{
  nftw(path, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

static uint64_t du_bytes;
static bool du_allocated;

static int du_entry(const char *path, const struct stat *st, int flag,
                    struct FTW *ftw)
{
  (void)path; (void)ftw;
  if (flag == FTW_F)
    du_bytes += du_allocated ? (uint64_t)st->st_blocks * 512u
                             : (uint64_t)st->st_size;
  return 0;
}

uint64_t bench_rss_anon(void)
{
  FILE *f = fopen("/proc/self/status", "r");
  if (!f)
    return 0;
  char line[256];
  unsigned long long kb = 0;
  while (fgets(line, sizeof line, f))
    if (sscanf(line, "RssAnon: %llu kB", &kb) == 1)
      break;
  fclose(f);
  return (uint64_t)kb * 1024;
}

uint64_t bench_dir_bytes(const char *path, bool allocated)
{
  du_bytes = 0;
  du_allocated = allocated;
  nftw(path, du_entry, 16, FTW_PHYS);
  return du_bytes;
}

/* ------------------------------------------------------------------------
 * Small things
 * --------------------------------------------------------------------- */

int bench_cmp_u64(const void *a, const void *b)
{
  uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
  return x < y ? -1 : x > y;
}

void bench_cairn_log(void *arg, int level, const char *msg)
{
  (void)arg;
  fprintf(stderr, "cairn[%d]: %s\n", level, msg);
}

int bench_lm_fail(const char *what, int rc)
{
  fprintf(stderr, "%s: %s: %s\n", bench_prog, what, mdb_strerror(rc));
  return -1;
}

int bench_sem_wait(sem_t *s)
{
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  ts.tv_sec += BENCH_DRAIN_TIMEOUT_S;
  while (sem_timedwait(s, &ts) != 0) {
    if (errno != EINTR)
      return -1;
  }
  return 0;
}

int bench_parse_u64(const char *s, uint64_t *out)
{
  char *end;
  errno = 0;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno != 0 || end == s || s[0] == '-')
    return -1;
  if (*end == 'k' || *end == 'K')
    v *= 1000, end++;
  else if (*end == 'm' || *end == 'M')
    v *= 1000000, end++;
  if (*end != '\0' || v == 0)
    return -1;
  *out = v;
  return 0;
}

int bench_parse_secs(const char *s, double *out)
{
  char *end;
  double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v > 0 && v < 3600))
    return -1;
  *out = v;
  return 0;
}

/* ------------------------------------------------------------------------
 * The summary
 * --------------------------------------------------------------------- */

struct row {
  char name[48];
  const char *unit;
  double cairn, peer;
  enum bench_goal kind;
  double goal;
  bool failed;
};

#define ROWS_MAX 24
static struct row rows[ROWS_MAX];
static unsigned rows_used;

void bench_row(const char *name, const char *unit, double cairn, double peer,
               enum bench_goal kind, double goal)
{
  if (rows_used == ROWS_MAX)
    return;
  struct row *r = &rows[rows_used++];
  *r = (struct row){ .unit = unit, .cairn = cairn, .peer = peer,
                     .kind = kind, .goal = goal };
  snprintf(r->name, sizeof r->name, "%s", name);
}

unsigned bench_rows(void)
{
  return rows_used;
}

void bench_rows_failed_from(unsigned first)
{
  for (unsigned i = first; i < rows_used; i++)
    rows[i].failed = true;
}

static void fmt_num(char *buf, size_t cap, double v)
{
  if (v < 0)
    snprintf(buf, cap, "-");
  else if (v >= 1e6)
    snprintf(buf, cap, "%.2fM", v / 1e6);
  else if (v >= 1e4)
    snprintf(buf, cap, "%.1fk", v / 1e3);
  else
    snprintf(buf, cap, "%.1f", v);
}

/* The goal as printed, and whether it was met ("-": not measured). */
static const char *judge(const struct row *r, char *goal, size_t cap)
{
  bool both = r->cairn >= 0 && r->peer > 0, mine = r->cairn >= 0;
  double q = both ? r->cairn / r->peer : 0;
  switch (r->kind) {
  case GOAL_RATIO_GE:
    snprintf(goal, cap, ">= %gx", r->goal);
    return !both ? "-" : q >= r->goal ? "yes" : "NO";
  case GOAL_RATIO_LE:
    snprintf(goal, cap, "<= %gx", r->goal);
    return !both ? "-" : q <= r->goal ? "yes" : "NO";
  case GOAL_CAIRN_GE:
  case GOAL_CAIRN_LE:
    memcpy(goal, r->kind == GOAL_CAIRN_GE ? ">= " : "<= ", 3);
    fmt_num(goal + 3, cap - 3, r->goal);
    if (!mine)
      return "-";
    return (r->kind == GOAL_CAIRN_GE ? r->cairn >= r->goal
                                     : r->cairn <= r->goal) ? "yes" : "NO";
  case GOAL_NONE:
    break;
  }
  return "-";
}

static void print_row(const struct row *r)
{
  char c[32], p[32], ratio[32] = "-", goal[32] = "-";
  fmt_num(c, sizeof c, r->cairn);
  fmt_num(p, sizeof p, r->peer);
  if (r->cairn >= 0 && r->peer > 0)
    snprintf(ratio, sizeof ratio, "%.2f", r->cairn / r->peer);
  const char *met = judge(r, goal, sizeof goal);
  if (r->failed)
    met = "FAILED";
  printf("%-30s %-6s %10s %10s %7s %9s %6s\n", r->name, r->unit, c, p,
         ratio, goal, met);
}

void bench_print_rows(void)
{
  printf("\n%-30s %-6s %10s %10s %7s %9s %6s\n", "figure", "unit", "cairn",
         "peer", "ratio", "goal", "met?");
  for (unsigned i = 0; i < rows_used; i++)
    print_row(&rows[i]);
}

/*
 * benchutil.h - what bench/cairn-bench.c and bench/ckpt-bench.c share:
 * clocks, the key generator (so both make the same keys), a fast
 * generator of random indices, the run's data directory, and the table
 * of result rows printed at the end.
 */
#ifndef CAIRN_BENCHUTIL_H
#define CAIRN_BENCHUTIL_H

#include <semaphore.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BENCH_KEY_BYTES 16u
#define BENCH_DRAIN_TIMEOUT_S 60 /* a completion later than this is lost */

/* The program's name, for messages; set by main. */
extern const char *bench_prog;
/* The run's own directory (made by main, removed at exit). */
extern char bench_dir[4096];

uint64_t bench_now_ns(void);                 /* CLOCK_MONOTONIC */
double bench_secs_since(uint64_t t0_ns);
void bench_sleep(double secs);

/* splitmix64's finaliser: a bijection, so distinct indices give distinct
 * keys, in an order unrelated to the index. */
uint64_t bench_mix64(uint64_t x);
/* Key idx: BENCH_KEY_BYTES hex digits of bench_mix64(idx). */
void bench_key(uint64_t idx, char key[BENCH_KEY_BYTES]);
/* A uniform index below n from the xorshift state *s (nonzero). */
uint64_t bench_rand(uint64_t *s, uint64_t n);

/* bench_dir/name, made if missing: 0 or -errno. */
int bench_subdir(const char *name, char *out, size_t cap);
void bench_rmrf(const char *path);
/* Bytes of the files under path: their sizes, or (allocated) the blocks
 * they take on disk. */
uint64_t bench_dir_bytes(const char *path, bool allocated);
/* This process's anonymous resident memory (RssAnon), bytes; 0 unknown. */
uint64_t bench_rss_anon(void);

int bench_cmp_u64(const void *a, const void *b);           /* for qsort */
void bench_cairn_log(void *arg, int level, const char *msg); /* log_fn */
int bench_lm_fail(const char *what, int rc);                /* -1 */
/* sem_wait for at most BENCH_DRAIN_TIMEOUT_S: 0, or -1 (timed out). */
int bench_sem_wait(sem_t *s);

/* "1000000", "10k", "2M": 0 and *out > 0, or -1. */
int bench_parse_u64(const char *s, uint64_t *out);
/* Seconds in (0, 3600): 0 or -1. */
int bench_parse_secs(const char *s, double *out);

/* How a row's goal is judged: on cairn / peer, or on cairn's figure. */
enum bench_goal {
  GOAL_NONE, GOAL_RATIO_GE, GOAL_RATIO_LE, GOAL_CAIRN_GE, GOAL_CAIRN_LE
};

/* A row of the summary; a figure < 0 was not measured. */
void bench_row(const char *name, const char *unit, double cairn, double peer,
               enum bench_goal kind, double goal);
unsigned bench_rows(void);                 /* rows added so far */
void bench_rows_failed_from(unsigned first); /* their figure failed */
void bench_print_rows(void);

#endif /* CAIRN_BENCHUTIL_H */

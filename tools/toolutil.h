/*
 * toolutil.h - helpers shared by the offline tools (cairn-wal, cairn-check,
 * cairn-dump, cairn-restore).  Header-only: every function is static
 * inline, so a tool that uses none of them pays nothing.
 *
 * Conventions the tools follow (LMDB's tools do the same):
 *   - getopt_long, with -h/--help (usage on stdout, exit 0) and
 *     -V/--version (tool_version, exit 0);
 *   - a usage error prints a one-line reason and the usage on stderr;
 *   - every error message is "PROG: message" on stderr (tool_err);
 *   - a progress bar is drawn on stderr only when stderr is a terminal.
 * Keep this file small and stable: other tools include it.
 */
#ifndef CAIRN_TOOLUTIL_H
#define CAIRN_TOOLUTIL_H

#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cairn.h"

/* "PROG: message\n" on stderr. */
static inline void tool_err(const char *prog, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static inline void tool_err(const char *prog, const char *fmt, ...) {
  va_list ap;
  fprintf(stderr, "%s: ", prog);
  va_start(ap, fmt);
  vfprintf(stderr, fmt, ap);
  va_end(ap);
  fputc('\n', stderr);
}

/* -V/--version output. */
static inline void tool_version(const char *prog) {
  printf("%s (cairn) %s\n", prog, CAIRN_VERSION_STRING);
}

/* Parse a whole decimal u64 (no sign, no trailing bytes).  0 or -1. */
static inline int tool_parse_u64(const char *s, uint64_t *out) {
  if (!s || !isdigit((unsigned char)*s)) return -1;
  errno = 0;
  char *end;
  unsigned long long v = strtoull(s, &end, 10);
  if (errno || *end) return -1;
  *out = v;
  return 0;
}

/* Print bytes so that any key reads safely on a terminal: printable ASCII
 * as is (a backslash doubled), anything else as \xNN; past max bytes the
 * rest is replaced by "...". */
static inline void tool_print_bytes(FILE *f, const void *p, size_t len,
                                    size_t max) {
  const unsigned char *b = p;
  size_t n = len < max ? len : max;
  for (size_t i = 0; i < n; i++) {
    if (b[i] == '\\') fputs("\\\\", f);
    else if (b[i] >= 0x20 && b[i] < 0x7f) fputc(b[i], f);
    else fprintf(f, "\\x%02x", b[i]);
  }
  if (len > max) fputs("...", f);
}

/* Print s as a JSON string, quotes included. */
static inline void tool_json_str(FILE *f, const char *s) {
  fputc('"', f);
  for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
    if (*p == '"' || *p == '\\') fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p >= 0x7f) fprintf(f, "\\u%04x", *p);
    else fputc(*p, f);
  }
  fputc('"', f);
}

/* The last component of a path (borrowed from it). */
static inline const char *tool_basename(const char *path) {
  const char *s = strrchr(path, '/');
  return s ? s + 1 : path;
}

/* ------------------------------------------------------------------------
 * Files of a directory: the log's segments, for listings and progress.
 * --------------------------------------------------------------------- */

#define TOOL_FILES_MAX 1000000u /* entries a listing takes */

struct tool_file {
  char name[256];
  uint64_t size;
};

static inline int tool_file_cmp(const void *a, const void *b) {
  return strcmp(((const struct tool_file *)a)->name,
                ((const struct tool_file *)b)->name);
}

/* The regular files of dir whose names end in suffix, sorted by name.
 * *out is malloc'd (free it).  A missing dir has none.  0 or -errno. */
static inline int tool_files(const char *dir, const char *suffix,
                             struct tool_file **out, size_t *n_out) {
  *out = NULL;
  *n_out = 0;
  DIR *d = opendir(dir);
  if (!d) return errno == ENOENT ? 0 : -errno;
  struct tool_file *v = NULL;
  size_t n = 0, cap = 0, sl = strlen(suffix);
  int rc = 0;
  struct dirent *e;
  while ((e = readdir(d)) != NULL && n < TOOL_FILES_MAX) {
    size_t l = strlen(e->d_name);
    if (l < sl || l >= sizeof v->name || strcmp(e->d_name + l - sl, suffix))
      continue;
    struct stat st;
    if (fstatat(dirfd(d), e->d_name, &st, 0) != 0 || !S_ISREG(st.st_mode))
      continue;
    if (n == cap) {
      size_t nc = cap ? 2 * cap : 16;
      struct tool_file *nv = realloc(v, nc * sizeof *v);
      if (!nv) { rc = -ENOMEM; break; }
      v = nv;
      cap = nc;
    }
    memcpy(v[n].name, e->d_name, l + 1);
    v[n++].size = (uint64_t)st.st_size;
  }
  closedir(d);
  if (rc) { free(v); return rc; }
  if (n) qsort(v, n, sizeof *v, tool_file_cmp);
  *out = v;
  *n_out = n;
  return 0;
}

/* ------------------------------------------------------------------------
 * Progress bar: on stderr, only when it is a terminal, at most 10 redraws
 * a second.
 * --------------------------------------------------------------------- */

struct tool_progress {
  int on;
  const char *label;
  uint64_t total;
  uint64_t last_ms;
};

static inline uint64_t tool_mono_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static inline void tool_progress_start(struct tool_progress *p,
                                       const char *label, uint64_t total,
                                       int enable) {
  p->on = enable && total > 0 && isatty(STDERR_FILENO);
  p->label = label;
  p->total = total;
  p->last_ms = 0;
}

static inline void tool_progress(struct tool_progress *p, uint64_t done) {
  if (!p->on) return;
  uint64_t now = tool_mono_ms();
  if (now - p->last_ms < 100 && done < p->total) return;
  p->last_ms = now;
  unsigned pct = (unsigned)(done >= p->total ? 100 : done * 100 / p->total);
  char bar[41];
  memset(bar, '#', pct * 40 / 100);
  memset(bar + pct * 40 / 100, '.', 40 - pct * 40 / 100);
  bar[40] = '\0';
  fprintf(stderr, "\r%s [%s] %3u%%", p->label, bar, pct);
  fflush(stderr);
}

/* Erase the bar, so that what follows starts on a clean line. */
static inline void tool_progress_end(struct tool_progress *p) {
  if (!p->on) return;
  fprintf(stderr, "\r%*s\r", 60, "");
  fflush(stderr);
  p->on = 0;
}

#endif /* CAIRN_TOOLUTIL_H */

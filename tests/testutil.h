/*
 * testutil.h - helpers shared by the tests.
 */
#ifndef CAIRN_TESTUTIL_H
#define CAIRN_TESTUTIL_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* A fresh temporary directory under $TMPDIR (or /tmp), into buf. */
static inline void tu_tmpdir(char *buf, size_t cap, const char *tag) {
  const char *base = getenv("TMPDIR");
  snprintf(buf, cap, "%s/cairn-%s-XXXXXX", base && *base ? base : "/tmp", tag);
  if (!mkdtemp(buf)) { perror("mkdtemp"); abort(); }
}

/* rm -rf dir. */
static inline void tu_rmrf(const char *dir) {
  char cmd[4200];
  snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
  if (system(cmd) != 0) fprintf(stderr, "could not remove %s\n", dir);
}

/* A cairn_options.log_fn that drops every message. */
static inline void tu_quiet(void *arg, int level, const char *msg) {
  (void)arg, (void)level, (void)msg;
}

#endif /* CAIRN_TESTUTIL_H */

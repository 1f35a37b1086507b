/*
 * meta.c - the data directory's meta file (meta.h).
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include "cairn.h"
#include "meta.h"
#include "sys.h"
#include "util.h"

#define META_BYTES_MAX (META_EPOCHS_MAX * 44u + 256u)

uint64_t meta_epoch(const struct meta *m) {
  return m->epochs[m->nepochs - 1].epoch;
}

int meta_init(struct meta *m) {
  uint8_t raw[META_ID_LEN / 2];
  if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw) return CAIRN_EIO;
  memset(m, 0, sizeof *m);
  for (size_t i = 0; i < sizeof raw; i++)
    snprintf(m->id + 2 * i, 3, "%02x", raw[i]);
  m->created_ms = now_ms();
  m->nepochs = 1;
  m->epochs[0] = (struct meta_epoch){1, 1};
  return 0;
}

void meta_epoch_add(struct meta *m, uint64_t epoch, uint64_t first_lsn) {
  if (m->nepochs == META_EPOCHS_MAX) {
    memmove(m->epochs, m->epochs + 1, (META_EPOCHS_MAX - 1) * sizeof *m->epochs);
    m->nepochs--;
  }
  m->epochs[m->nepochs++] = (struct meta_epoch){epoch, first_lsn};
}

int meta_epochs_format(const struct meta *m, char *buf, size_t n) {
  size_t len = 0;
  for (size_t i = 0; i < m->nepochs; i++) {
    int w = snprintf(buf + len, n - len, "%s%" PRIu64 ":%" PRIu64, i ? "," : "",
                     m->epochs[i].epoch, m->epochs[i].first_lsn);
    if (w < 0 || (size_t)w >= n - len) return -1;
    len += (size_t)w;
  }
  return (int)len;
}

int meta_epochs_parse(const char *s, struct meta *m) {
  struct meta_epoch ep[META_EPOCHS_MAX];
  size_t n = 0;
  const char *p = s;
  while (*p && *p != '\n' && n < META_EPOCHS_MAX) {
    char *end;
    errno = 0;
    uint64_t e = strtoull(p, &end, 10);
    if (errno || end == p || *end != ':') return CAIRN_EINVAL;
    p = end + 1;
    uint64_t l = strtoull(p, &end, 10);
    if (errno || end == p || e == 0 || l == 0) return CAIRN_EINVAL;
    if (n && (e <= ep[n - 1].epoch || l < ep[n - 1].first_lsn))
      return CAIRN_EINVAL;
    ep[n++] = (struct meta_epoch){e, l};
    p = end;
    if (*p == ',') p++;
    else break;
  }
  if (n == 0 || (*p && *p != '\n' && *p != ' ')) return CAIRN_EINVAL;
  memcpy(m->epochs, ep, n * sizeof *ep);
  m->nepochs = n;
  return 0;
}

uint64_t meta_agreed(const struct meta *ours, uint64_t our_last,
                     const struct meta *theirs, uint64_t their_last) {
  for (size_t i = theirs->nepochs; i-- > 0;) {
    const struct meta_epoch *e = &theirs->epochs[i];
    for (size_t j = 0; j < ours->nepochs; j++) {
      if (ours->epochs[j].epoch != e->epoch ||
          ours->epochs[j].first_lsn != e->first_lsn)
        continue;
      uint64_t end_ours = j + 1 < ours->nepochs
                              ? ours->epochs[j + 1].first_lsn - 1 : our_last;
      uint64_t end_theirs = i + 1 < theirs->nepochs
                                ? theirs->epochs[i + 1].first_lsn - 1
                                : their_last;
      return MIN(end_ours, end_theirs);
    }
  }
  return 0;
}

static int meta_parse(const char *buf, const char *path,
                      const struct logger *log, struct meta *m) {
  int format = 0;
  uint64_t epoch = 0;
  if (sscanf(buf, "cairn-meta %d\n", &format) == 1 && format != META_FORMAT) {
    log_error(log, "%s: format version %d, but this build reads %d", path,
              format, META_FORMAT);
    return CAIRN_EVERFMT;
  }
  const char *ep = strstr(buf, "\nepoch ");
  const char *id = strstr(buf, "\nid ");
  if (format != META_FORMAT || !ep || !id ||
      sscanf(ep, "\nepoch %" SCNu64, &epoch) != 1 || epoch == 0 ||
      sscanf(id, "\nid %32[0-9a-f]", m->id) != 1 ||
      strlen(m->id) != META_ID_LEN) {
    log_error(log, "%s: not a cairn meta file, or damaged", path);
    return CAIRN_ECORRUPT;
  }
  const char *cr = strstr(buf, "\ncreated ");
  if (cr) sscanf(cr, "\ncreated %" SCNd64, &m->created_ms);
  const char *hist = strstr(buf, "\nepochs ");
  m->nepochs = 1;
  m->epochs[0] = (struct meta_epoch){epoch, 1};
  if (hist && (meta_epochs_parse(hist + 8, m) != 0 || meta_epoch(m) != epoch)) {
    log_error(log, "%s: the epoch history is damaged", path);
    return CAIRN_ECORRUPT;
  }
  return 0;
}

int meta_read(const char *dir, const struct logger *log, struct meta *m) {
  char path[PATH_BYTES_MAX], buf[META_BYTES_MAX];
  snprintf(path, sizeof path, "%s/meta", dir);
  FILE *f = fopen(path, "re");
  if (!f) return errno == ENOENT ? CAIRN_ENOTFOUND : -errno;
  size_t n = fread(buf, 1, sizeof buf - 1, f);
  fclose(f);
  buf[n] = '\0';
  memset(m, 0, sizeof *m);
  return meta_parse(buf, path, log, m);
}

int meta_write(const char *dir, const struct meta *m) {
  char path[PATH_BYTES_MAX], tmp[PATH_BYTES_MAX + 8], buf[META_BYTES_MAX];
  char hist[META_BYTES_MAX - 128];
  if (meta_epochs_format(m, hist, sizeof hist) < 0) return CAIRN_EINVAL;
  int n = snprintf(buf, sizeof buf, "cairn-meta %d\nid %s\nepoch %" PRIu64
                   "\nepochs %s\ncreated %" PRId64 "\n", META_FORMAT, m->id,
                   meta_epoch(m), hist, m->created_ms);
  if (n < 0 || (size_t)n >= sizeof buf) return CAIRN_EINVAL;
  snprintf(path, sizeof path, "%s/meta", dir);
  snprintf(tmp, sizeof tmp, "%s.tmp", path);
  int fd = sys_ops.open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return errno == ENOSPC ? CAIRN_EFULL : -errno;
  int rc = sys_pwrite_all(fd, buf, (size_t)n, 0);
  if (rc == 0 && sys_ops.fsync(fd) != 0) rc = -errno;
  close(fd);
  if (rc == 0 && sys_ops.rename(tmp, path) != 0) rc = -errno;
  if (rc == 0) rc = sys_fsync_dir(dir);
  return rc == -ENOSPC ? CAIRN_EFULL : rc;
}

/*
 * sys.c - the fault-injection seam: the real system calls behind sys_ops.
 *
 * Every call the log makes that matters for durability goes through the
 * sys_ops table, so a test can swap one member for a function that fails
 * (EIO, ENOSPC, short writes) and put the real one back with sys_reset().
 */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <unistd.h>

#include "sys.h"

/* open(2) is variadic; the table needs a fixed signature. */
static int real_open(const char *path, int flags, mode_t mode) {
  return open(path, flags | O_CLOEXEC, mode);
}

static int real_uring_init(void) {
  return 0; /* io_uring allowed; io_uring_queue_init may still refuse */
}

static int real_uring_result(int op, int res) {
  (void)op;
  return res;
}

static const struct sys_ops real_ops = {
    .open = real_open,
    .pwrite = pwrite,
    .pwritev = pwritev,
    .fdatasync = fdatasync,
    .fsync = fsync,
    .fallocate = fallocate,
    .rename = rename,
    .unlink = unlink,
    .ftruncate = ftruncate,
    .uring_init = real_uring_init,
    .uring_result = real_uring_result,
};

struct sys_ops sys_ops = real_ops;

void sys_reset(void) { sys_ops = real_ops; }

int sys_fsync_dir(const char *dir) {
  int fd = sys_ops.open(dir, O_RDONLY | O_DIRECTORY, 0);
  if (fd < 0) return -errno;
  int rc = 0;
  if (sys_ops.fsync(fd) != 0) rc = -errno;
  close(fd);
  return rc;
}

int sys_pwrite_all(int fd, const void *buf, size_t n, off_t off) {
  const char *p = buf;
  /* Each pass writes at least one byte or fails, so n bounds the loop;
   * the cap on EINTR retries keeps a signal storm from spinning forever. */
  unsigned eintr = 0;
  while (n > 0) {
    ssize_t k = sys_ops.pwrite(fd, p, n, off);
    if (k < 0) {
      if (errno == EINTR && ++eintr < 1000) continue;
      return -errno;
    }
    if (k == 0) return -EIO; /* no progress: never loop on it */
    p += k;
    n -= (size_t)k;
    off += k;
  }
  return 0;
}

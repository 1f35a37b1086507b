/*
 * sys.h - the one seam through which every system call that matters for
 * durability passes, so that tests can make it fail.
 *
 * Production code calls sys_ops.X(...).  A test may replace any member,
 * and must restore it with sys_reset() before it ends.  Every member has
 * the contract of the system call it is named after (returning -1 and
 * setting errno), except uring_result, which sees each io_uring completion
 * of the log (op is SYS_OP_WRITE or SYS_OP_FDATASYNC, res the kernel's
 * result: bytes or -errno) and returns the result the log acts on.
 */
#ifndef CAIRN_SYS_H
#define CAIRN_SYS_H

#include <sys/types.h>
#include <sys/uio.h>

enum { SYS_OP_WRITE = 1, SYS_OP_FDATASYNC = 2 };

struct sys_ops {
  int (*open)(const char *path, int flags, mode_t mode);
  ssize_t (*pwrite)(int fd, const void *buf, size_t n, off_t off);
  ssize_t (*pwritev)(int fd, const struct iovec *iov, int cnt, off_t off);
  int (*fdatasync)(int fd);
  int (*fsync)(int fd);
  int (*fallocate)(int fd, int mode, off_t off, off_t len);
  int (*rename)(const char *from, const char *to);
  int (*unlink)(const char *path);
  int (*ftruncate)(int fd, off_t len);
  /* io_uring_queue_init's result: 0 or -errno.  Tests return -ENOSYS. */
  int (*uring_init)(void);
  int (*uring_result)(int op, int res);
  /* NULL in production.  Crash tests set it to stop or kill the process
   * at a named point (SYS_HOOK_*) to widen a window they aim at. */
  void (*test_hook)(int point);
};

enum {
  SYS_HOOK_CKPT_MID_TXN = 1,   /* checkpoint: half its keys written */
  SYS_HOOK_CKPT_COMMITTED = 2, /* checkpoint: committed, log not recycled */
  SYS_HOOK_EVICT = 3,          /* eviction: a visit of the hand begins */
  SYS_HOOK_EXPIRE_TICK = 4,    /* expiry: a tick's sweeps are done */
};

extern struct sys_ops sys_ops;

/* Put back the real system calls. */
void sys_reset(void);

/* fsync the directory dir, so that entries created or renamed in it are
 * durable.  Returns 0 or -errno. */
int sys_fsync_dir(const char *dir);

/* Write all n bytes at off, going on after short writes and EINTR.
 * Returns 0 or -errno. */
int sys_pwrite_all(int fd, const void *buf, size_t n, off_t off);

#endif /* CAIRN_SYS_H */

/*
 * test_meta.c - the meta file and the epoch history: where two logs stop
 * agreeing, which decides whether a follower continues, cuts its tail or
 * needs a full sync.
 */
#include "config.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "meta.h"
#include "testutil.h"

static const struct logger quiet = {0};

static struct meta hist(const char *text) {
  struct meta m;
  cr_assert_eq(meta_init(&m), 0);
  cr_assert_eq(meta_epochs_parse(text, &m), 0, "parse %s", text);
  return m;
}

Test(meta, history_text_round_trips) {
  struct meta m = hist("1:1,2:991,5:2040");
  char buf[128];
  cr_assert_gt(meta_epochs_format(&m, buf, sizeof buf), 0);
  cr_assert_str_eq(buf, "1:1,2:991,5:2040");
  cr_assert_eq(meta_epoch(&m), 5);
  cr_assert_eq(meta_epochs_format(&m, buf, 8), -1, "too small a buffer");
}

Test(meta, damaged_history_text_is_refused) {
  struct meta m;
  cr_assert_eq(meta_init(&m), 0);
  const char *bad[] = {"", "1", "1:", ":1", "2:5,1:9", "1:9,2:5", "1:1,1:5",
                       "0:1", "1:1;2:3", "x:1"};
  for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
    cr_assert_eq(meta_epochs_parse(bad[i], &m), CAIRN_EINVAL, "%s", bad[i]);
  cr_assert_eq(m.nepochs, 1, "a refused text leaves the history alone");
}

Test(meta, same_history_agrees_up_to_the_shorter_log) {
  struct meta a = hist("1:1,2:100");
  cr_assert_eq(meta_agreed(&a, 500, &a, 300), 300);
  cr_assert_eq(meta_agreed(&a, 200, &a, 300), 200);
}

Test(meta, an_old_leader_agrees_only_up_to_the_promotion) {
  /* The old leader wrote up to 1000 in epoch 1; its follower had 990 and
   * was promoted: epoch 2 from 991. */
  struct meta leader = hist("1:1,2:991"), old = hist("1:1");
  cr_assert_eq(meta_agreed(&leader, 1200, &old, 1000), 990);
  /* A follower that never got past the promotion point has nothing to cut. */
  cr_assert_eq(meta_agreed(&leader, 1200, &old, 980), 980);
}

Test(meta, epochs_are_matched_by_number_and_first_lsn) {
  /* Two nodes that each began an epoch 2 on their own. */
  struct meta a = hist("1:1,2:500"), b = hist("1:1,2:700");
  cr_assert_eq(meta_agreed(&a, 900, &b, 800), 499);
  cr_assert_eq(meta_agreed(&b, 800, &a, 900), 499);
}

Test(meta, histories_with_nothing_in_common_agree_on_nothing) {
  struct meta a = hist("3:50"), b = hist("1:1,2:10");
  cr_assert_eq(meta_agreed(&a, 100, &b, 80), 0);
}

Test(meta, the_file_round_trips_and_keeps_the_history) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "meta");
  struct meta m = hist("1:1,4:77"), r;
  cr_assert_eq(meta_read(dir, &quiet, &r), CAIRN_ENOTFOUND);
  cr_assert_eq(meta_write(dir, &m), 0);
  cr_assert_eq(meta_read(dir, &quiet, &r), 0);
  cr_assert_str_eq(r.id, m.id);
  cr_assert_eq(r.nepochs, 2);
  cr_assert_eq(r.epochs[1].epoch, 4);
  cr_assert_eq(r.epochs[1].first_lsn, 77);
  tu_rmrf(dir);
}

static void write_file(const char *dir, const char *text) {
  char path[512];
  snprintf(path, sizeof path, "%s/meta", dir);
  FILE *f = fopen(path, "w");
  cr_assert(f);
  fputs(text, f);
  fclose(f);
}

Test(meta, a_damaged_or_foreign_file_is_refused) {
  char dir[256];
  tu_tmpdir(dir, sizeof dir, "meta");
  struct meta r;
  write_file(dir, "not a meta file\n");
  cr_assert_eq(meta_read(dir, &quiet, &r), CAIRN_ECORRUPT);
  write_file(dir, "cairn-meta 9\nid 0123456789abcdef0123456789abcdef\n"
                  "epoch 1\n");
  cr_assert_eq(meta_read(dir, &quiet, &r), CAIRN_EVERFMT);
  /* The current epoch must be the history's last. */
  write_file(dir, "cairn-meta 1\nid 0123456789abcdef0123456789abcdef\n"
                  "epoch 3\nepochs 1:1,2:5\n");
  cr_assert_eq(meta_read(dir, &quiet, &r), CAIRN_ECORRUPT);
  /* A file from before the history was kept: its epoch from LSN 1. */
  write_file(dir, "cairn-meta 1\nid 0123456789abcdef0123456789abcdef\n"
                  "epoch 2\ncreated 5\n");
  cr_assert_eq(meta_read(dir, &quiet, &r), 0);
  cr_assert_eq(r.nepochs, 1);
  cr_assert_eq(meta_epoch(&r), 2);
  tu_rmrf(dir);
}

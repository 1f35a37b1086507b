/*
 * test_glob.c - Redis-compatible glob matching.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "glob.h"

static int m(const char *pat, const char *str) {
  return glob_match(pat, strlen(pat), str, strlen(str), 0);
}

static int mi(const char *pat, const char *str) {
  return glob_match(pat, strlen(pat), str, strlen(str), 1);
}

Test(glob, literal_matches_only_itself) {
  cr_expect(m("hello", "hello"));
  cr_expect(!m("hello", "hell"));
  cr_expect(!m("hell", "hello"));
  cr_expect(m("", ""));
  cr_expect(!m("", "a"));
}

Test(glob, star_matches_any_run_including_empty) {
  cr_expect(m("*", ""));
  cr_expect(m("*", "anything"));
  cr_expect(m("h*o", "ho"));
  cr_expect(m("h*o", "hello"));
  cr_expect(!m("h*o", "hellx"));
  cr_expect(m("a**b", "axxb"));
  cr_expect(m("user:*:session", "user:42:session"));
  cr_expect(!m("user:*:session", "user:42:sessions"));
  cr_expect(m("abc*", "abc"));
}

Test(glob, question_mark_matches_exactly_one_byte) {
  cr_expect(m("h?llo", "hello"));
  cr_expect(m("h?llo", "hallo"));
  cr_expect(!m("h?llo", "hllo"));
  cr_expect(!m("?", ""));
}

Test(glob, sets_ranges_and_negation) {
  cr_expect(m("h[ae]llo", "hello"));
  cr_expect(m("h[ae]llo", "hallo"));
  cr_expect(!m("h[ae]llo", "hillo"));
  cr_expect(m("h[^e]llo", "hallo"));
  cr_expect(!m("h[^e]llo", "hello"));
  cr_expect(m("h[a-b]llo", "hbllo"));
  cr_expect(!m("h[a-b]llo", "hcllo"));
  cr_expect(m("[z-a]", "q"), "a reversed range is accepted");
  cr_expect(m("[0-9][0-9]", "42"));
}

Test(glob, backslash_quotes_special_characters) {
  cr_expect(m("a\\*b", "a*b"));
  cr_expect(!m("a\\*b", "axb"));
  cr_expect(m("\\?", "?"));
  cr_expect(!m("\\?", "x"));
  cr_expect(m("[\\]]", "]"));
  cr_expect(m("[\\-]", "-"));
  cr_expect(m("a\\", "a\\"), "a trailing backslash is literal");
}

Test(glob, unterminated_set_runs_to_the_end) {
  cr_expect(m("[abc", "a"));
  cr_expect(!m("[abc", "d"));
  cr_expect(!m("[", "a"));
}

Test(glob, nocase_folds_letters) {
  cr_expect(mi("HeLLo*", "hello world"));
  cr_expect(mi("[A-C]x", "bX"));
  cr_expect(!m("HELLO", "hello"));
}

Test(glob, binary_subjects_with_nul_bytes) {
  const char subj[] = {'a', '\0', 'b'};
  cr_expect(glob_match("a?b", 3, subj, 3, 0));
  cr_expect(glob_match("a*", 2, subj, 3, 0));
  cr_expect(!glob_match("a", 1, subj, 3, 0));
}

Test(glob, pathological_patterns_finish_quickly) {
  /* 40 stars against a long subject that never matches: exponential
   * without the skip-longer bound, linear-ish with it. */
  char pat[200], subj[4001];
  size_t n = 0;
  for (int i = 0; i < 40; i++) {
    pat[n++] = 'a';
    pat[n++] = '*';
  }
  pat[n++] = 'b';
  memset(subj, 'a', 4000);
  subj[4000] = '\0';
  cr_expect(!glob_match(pat, n, subj, 4000, 0));
  subj[3999] = 'b';
  cr_expect(glob_match(pat, n, subj, 4000, 0));
}

Test(glob, nesting_beyond_the_bound_does_not_match) {
  static char pat[2 * (GLOB_NESTING_MAX + 10) + 1];
  static char subj[GLOB_NESTING_MAX + 10];
  size_t n = 0;
  for (int i = 0; i < GLOB_NESTING_MAX + 5; i++) {
    pat[n++] = '*';
    pat[n++] = 'a';
  }
  memset(subj, 'a', sizeof subj);
  cr_expect(!glob_match(pat, n, subj, sizeof subj, 0),
            "too deep a pattern fails rather than recursing without end");
}

Test(glob, literal_prefix_stops_at_the_first_special_character) {
  cr_expect_eq(glob_literal_prefix("user:*", 6), 5);
  cr_expect_eq(glob_literal_prefix("abc", 3), 3);
  cr_expect_eq(glob_literal_prefix("a?c", 3), 1);
  cr_expect_eq(glob_literal_prefix("[a]", 3), 0);
  cr_expect_eq(glob_literal_prefix("a\\*", 3), 1);
}

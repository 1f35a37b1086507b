/*
 * glob.c - Redis-compatible glob matching; see glob.h for the syntax.
 */
#include "glob.h"

#include <ctype.h>

static int fold(unsigned char ch, int nocase) {
  return nocase ? tolower(ch) : ch;
}

/* Match one "[...]" set against ch.  *pp points just past the '['; on
 * return it points at the closing ']' (or the last byte of an
 * unterminated set), and *plp counts the bytes left from there. */
static int match_set(const char **pp, size_t *plp, unsigned char ch,
                     int nocase) {
  const char *p = *pp;
  size_t pl = *plp;
  int negate = 0, match = 0;
  if (pl && *p == '^') {
    negate = 1;
    p++;
    pl--;
  }
  for (;;) {
    if (pl == 0) {
      /* Unterminated: step back so that the caller's advance ends the
       * pattern exactly. */
      p--;
      pl++;
      break;
    }
    if (*p == '\\' && pl >= 2) {
      p++;
      pl--;
      if (fold((unsigned char)*p, nocase) == fold(ch, nocase)) match = 1;
    } else if (*p == ']') {
      break;
    } else if (pl >= 3 && p[1] == '-') {
      int lo = fold((unsigned char)p[0], nocase);
      int hi = fold((unsigned char)p[2], nocase);
      int c = fold(ch, nocase);
      if (lo > hi) {
        int t = lo;
        lo = hi;
        hi = t;
      }
      if (c >= lo && c <= hi) match = 1;
      p += 2;
      pl -= 2;
    } else if (fold((unsigned char)*p, nocase) == fold(ch, nocase)) {
      match = 1;
    }
    p++;
    pl--;
  }
  *pp = p;
  *plp = pl;
  return negate ? !match : match;
}

/* *skip_longer: the tail after some star matched nowhere in the rest of
 * the subject, so no earlier star can make it match by consuming more:
 * every enclosing star loop gives up at once.  That keeps the work
 * polynomial. */
static int match_impl(const char *p, size_t pl, const char *s, size_t sl,
                      int nocase, int *skip_longer, int nesting) {
  if (nesting > GLOB_NESTING_MAX) return 0;
  while (pl && sl) {
    switch (*p) {
    case '*':
      while (pl >= 2 && p[1] == '*') {
        p++;
        pl--;
      }
      if (pl == 1) return 1;
      while (sl) {
        if (match_impl(p + 1, pl - 1, s, sl, nocase, skip_longer,
                       nesting + 1))
          return 1;
        if (*skip_longer) return 0;
        s++;
        sl--;
      }
      *skip_longer = 1;
      return 0;
    case '?':
      s++;
      sl--;
      break;
    case '[':
      p++;
      pl--;
      if (!match_set(&p, &pl, (unsigned char)*s, nocase)) return 0;
      s++;
      sl--;
      break;
    case '\\':
      if (pl >= 2) {
        p++;
        pl--;
      }
      /* fall through */
    default:
      if (fold((unsigned char)*p, nocase) != fold((unsigned char)*s, nocase))
        return 0;
      s++;
      sl--;
      break;
    }
    p++;
    pl--;
    if (sl == 0) {
      while (pl && *p == '*') {
        p++;
        pl--;
      }
      break;
    }
  }
  /* Unlike Redis, which never enters the loop for an empty subject,
   * trailing stars match an empty rest, so "*" matches "". */
  while (sl == 0 && pl && *p == '*') {
    p++;
    pl--;
  }
  return pl == 0 && sl == 0;
}

int glob_match(const char *pat, size_t plen, const char *str, size_t slen,
               int nocase) {
  int skip_longer = 0;
  return match_impl(pat, plen, str, slen, nocase, &skip_longer, 0);
}

size_t glob_literal_prefix(const char *pat, size_t plen) {
  size_t i = 0;
  while (i < plen && pat[i] != '*' && pat[i] != '?' && pat[i] != '[' &&
         pat[i] != '\\')
    i++;
  return i;
}

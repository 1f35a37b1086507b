/*
 * glob.h - Redis-compatible glob matching (KEYS, SCAN MATCH, PSUBSCRIBE,
 * PUBSUB CHANNELS).
 *
 * The syntax is Redis's stringmatchlen(): '*' any run of bytes, '?' one
 * byte, "[abc]" a set, "[^a]" its complement, "[a-z]" a range (ends in
 * either order), '\' quotes the next byte, also inside a set.  An
 * unterminated set runs to the end of the pattern.  Patterns and
 * subjects are binary: lengths, not NUL terminators.
 *
 * Work is bounded: stars nest at most GLOB_NESTING_MAX deep, and a failed
 * tail match is never retried from a later start, so a pattern of k stars
 * costs O(k * subject length) rather than exponential time.
 */
#ifndef CAIRN_GLOB_H
#define CAIRN_GLOB_H

#include <stddef.h>

#define GLOB_NESTING_MAX 1000

/* 1 if str[0..slen) matches pat[0..plen), else 0.  nocase folds ASCII
 * letters. */
int glob_match(const char *pat, size_t plen, const char *str, size_t slen,
               int nocase);

/* The length of pat's literal prefix: the bytes before its first special
 * character ('*', '?', '[' or '\').  Every subject that matches pat (with
 * nocase 0) starts with those bytes, so a scan can be narrowed to them. */
size_t glob_literal_prefix(const char *pat, size_t plen);

#endif /* CAIRN_GLOB_H */

/**
 * User ids (docs/PROTOCOL.md "Identifiers"): one canonical form, and look-alike detection.
 *
 * User ids are case-insensitive: `ALICE`, `Alice` and `alice` are one user, whose id is written in lower
 * case everywhere it is signed, stored, routed or hashed. The wire accepts only that form (wire.ts
 * `UserId`); the client API folds what a person typed (`canonicalUserId`), so `/dm Bob` reaches bob.
 *
 * Ids that differ yet look alike (`a1ice` and `alice`, `rnallory` and `mallory`, `b0b` and `bob`) are
 * told apart by a skeleton, as in Unicode TS #39 section 4: two ids whose skeletons are equal are
 * confusable. The id alphabet is 39 ASCII characters, so the table is the part of Unicode's
 * confusables.txt that maps within it (`1` and `I` to `l`; `m` to `rn`, `w` to `vv`, `d` to `cl`), plus
 * `0` to `o`, which that file maps to the capital O only (a lower-case-only alphabet has none), applied
 * after lower-casing (so `i`, the capital I's lower case, goes to `l` too).
 */
import * as v from 'valibot';
import { Name, UserId } from './protocol/wire.js';

/**
 * The canonical (lower-case) form of a user id typed in any case. Throws TypeError naming the rule for
 * anything that is not an id (1-64 of A-Z a-z 0-9 . _ -, starting with a letter or digit).
 */
export function canonicalUserId(input: unknown, what = 'user id'): string {
  if (typeof input !== 'string' || !v.is(Name, input))
    throw new TypeError(`${what} must be 1-64 of a-z 0-9 . _ - (starting with a letter or digit)`);
  return input.toLowerCase();
}

/** True for an id in its canonical form (what the wire accepts). */
export function isCanonicalUserId(input: unknown): input is string {
  return v.is(UserId, input);
}

/**
 * Each (lower-cased) character to the characters it can pass for: confusables.txt maps `1` and `I` to `l`,
 * `m` to `rn`, `w` to `vv` and `d` to `cl`; `0` to `o` is ours. Ids compare case-insensitively, so the
 * capital I is the lower-case i here, and `i` goes to `l` as well.
 */
const CONFUSABLE: Readonly<Record<string, string>> = {
  '0': 'o',
  '1': 'l',
  i: 'l',
  m: 'rn',
  w: 'vv',
  d: 'cl',
};

/**
 * The skeleton of an id: equal skeletons mean the ids can be mistaken for each other on screen.
 * Pure and total: any string maps to a string; the case of the input does not matter.
 */
export function userIdSkeleton(id: string): string {
  let out = '';
  for (const ch of id.toLowerCase()) out += CONFUSABLE[ch] ?? ch;
  return out;
}

/** True when two different ids look alike (the same id is not a look-alike of itself). */
export function looksAlike(a: string, b: string): boolean {
  return a !== b && userIdSkeleton(a) === userIdSkeleton(b);
}

/** The ids among `known` that `id` looks like, in the order given. */
export function lookalikesOf(id: string, known: Iterable<string>): string[] {
  const skeleton = userIdSkeleton(id);
  const out: string[] = [];
  for (const other of known) if (other !== id && userIdSkeleton(other) === skeleton) out.push(other);
  return out;
}

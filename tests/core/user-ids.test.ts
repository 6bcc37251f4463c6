/** User ids in one form, look-alike detection, relay addresses and fingerprints (pure functions). */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import {
  formatFingerprint,
  isNormalisedRelayUrl,
  normaliseRelayUrl,
  parseFingerprint,
  relayKeyFingerprint,
} from '../../src-main/core/protocol/login.js';
import { SigningKeyPair } from '../../src-main/core/crypto/primitives.js';
import {
  canonicalUserId,
  isCanonicalUserId,
  looksAlike,
  lookalikesOf,
  userIdSkeleton,
} from '../../src-main/core/user-ids.js';

const id = fc.stringMatching(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/);

describe('canonical user ids', () => {
  it('folds any case to lower case and refuses what is not an id', () => {
    expect(canonicalUserId('ALICE')).toBe('alice');
    expect(canonicalUserId('Bob.Smith_2')).toBe('bob.smith_2');
    for (const bad of ['', '-alice', 'al ice', 'ålice', 'a'.repeat(65), 7, undefined])
      expect(() => canonicalUserId(bad)).toThrow(TypeError);
    fc.assert(
      fc.property(id, (s) => {
        const c = canonicalUserId(s);
        expect(isCanonicalUserId(c)).toBe(true);
        expect(canonicalUserId(c)).toBe(c);
        expect(isCanonicalUserId(s)).toBe(s === c);
      }),
    );
  });
});

describe('look-alike ids', () => {
  it('finds the confusions people make between ids', () => {
    const pairs = [
      ['a1ice', 'alice'],
      ['rnallory', 'mallory'],
      ['b0b', 'bob'],
      ['aIice', 'alice'],
      ['vvalter', 'walter'],
      ['clave', 'dave'],
      ['ALICE', 'alice'],
      ['1ee', 'lee'],
      ['aiice', 'alice'],
    ];
    for (const [a, b] of pairs) expect(looksAlike(a!, b!), `${a} ~ ${b}`).toBe(true);
    for (const [a, b] of [
      ['alice', 'alice'],
      ['alice', 'alicia'],
      ['bob', 'rob'],
      ['dave', 'clara'],
      ['carol', 'car0ls'],
    ])
      expect(looksAlike(a!, b!), `${a} !~ ${b}`).toBe(false);
    expect(lookalikesOf('a1ice', ['bob', 'alice', 'aiice', 'alice2'])).toEqual(['alice', 'aiice']);
  });

  it('is an equivalence given by the skeleton, and case never matters', () => {
    fc.assert(
      fc.property(id, id, (a, b) => {
        expect(looksAlike(a, b)).toBe(looksAlike(b, a));
        expect(userIdSkeleton(a.toUpperCase())).toBe(userIdSkeleton(a.toLowerCase()));
        if (a !== b && userIdSkeleton(a) === userIdSkeleton(b)) expect(looksAlike(a, b)).toBe(true);
      }),
    );
  });
});

describe('relay addresses and fingerprints', () => {
  it('normalises addresses to one spelling and refuses others', () => {
    expect(normaliseRelayUrl('ws://Relay.Example:80')).toBe('ws://relay.example/');
    expect(normaliseRelayUrl('wss://relay.example:443/chat?x=1')).toBe('wss://relay.example/chat?x=1');
    expect(normaliseRelayUrl('ws://127.0.0.1:8787')).toBe('ws://127.0.0.1:8787/');
    expect(normaliseRelayUrl('ws://[0:0:0:0:0:0:0:1]:8787')).toBe('ws://[::1]:8787/');
    expect(isNormalisedRelayUrl('ws://127.0.0.1:8787')).toBe(false);
    expect(isNormalisedRelayUrl('ws://127.0.0.1:8787/')).toBe(true);
    for (const bad of [
      'http://relay.example',
      'ws://user:pw@relay.example',
      'ws://relay.example/#x',
      'relay',
    ])
      expect(() => normaliseRelayUrl(bad)).toThrow(TypeError);
  });

  it('fingerprints are 30 digits, stable per key, shown in groups of five', () => {
    const key = SigningKeyPair.generate().publicKey;
    const digits = relayKeyFingerprint(key);
    expect(digits).toMatch(/^\d{30}$/);
    expect(relayKeyFingerprint(key)).toBe(digits);
    expect(relayKeyFingerprint(SigningKeyPair.generate().publicKey)).not.toBe(digits);
    const shown = formatFingerprint(digits);
    expect(shown.split(' ')).toHaveLength(6);
    expect(parseFingerprint(shown)).toBe(digits);
    expect(parseFingerprint('12345')).toBeUndefined();
    expect(() => relayKeyFingerprint(new Uint8Array(33))).toThrow(TypeError);
  });
});

/**
 * Known-answer tests for src-main/core/crypto/primitives.ts.
 * Sources: Project Wycheproof (C2SP/wycheproof testvectors_v1, copied unmodified to ../shared/vectors; see
 * SOURCES.md there) and RFC 5869 Appendix A. Every case of every file is run and counted: `valid` must
 * pass with the published output, `invalid` must be rejected, and each family states and asserts its
 * policy for `acceptable`. Per-family totals are pinned so that no case can be skipped silently.
 */
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import {
  DhKeyPair,
  VerifyKey,
  aesGcmDecrypt,
  aesGcmEncrypt,
  ecdh,
  hkdfSha256,
  hmacSha256,
  importJwkPublicKey,
  importPublicKey,
  importSpkiPublicKey,
} from '../../src-main/core/crypto/primitives.js';
import { CryptoError, ErrorCode } from '../../src-main/core/errors.js';

/** The order of the P-256 group (FIPS 186-5 / SEC 2), to tell high-S signatures apart. */
const P256_N = 0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551n;

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const VECTORS_DIR = path.resolve(repoRoot, '..', 'shared', 'vectors');

// ---------------------------------------------------------------------------------------------
// Wycheproof JSON shapes (schemas/*.json in C2SP/wycheproof), reduced to the fields used here

type Result = 'valid' | 'invalid' | 'acceptable';

interface TestCase {
  tcId: number;
  comment: string;
  flags: string[];
  result: Result;
}

interface TestGroup<T extends TestCase> {
  type: string;
  tests: T[];
}

interface VectorFile<G extends TestGroup<TestCase>> {
  algorithm: string;
  numberOfTests: number;
  testGroups: G[];
}

interface AeadCase extends TestCase {
  key: string;
  iv: string;
  aad: string;
  msg: string;
  ct: string;
  tag: string;
}

interface AeadGroup extends TestGroup<AeadCase> {
  keySize: number;
  ivSize: number;
  tagSize: number;
}

interface Jwk {
  kty: string;
  crv: string;
  x?: string;
  y?: string;
  d?: string;
}

/** `public` is hex (SEC1 point or DER SPKI) or a JWK; `private` is hex or a JWK with `d`. */
interface EcdhCase<Pub, Priv> extends TestCase {
  public: Pub;
  private: Priv;
  shared: string;
}

interface HkdfCase extends TestCase {
  ikm: string;
  salt: string;
  info: string;
  size: number;
  okm: string;
}

interface MacCase extends TestCase {
  key: string;
  msg: string;
  tag: string;
}

interface MacGroup extends TestGroup<MacCase> {
  keySize: number;
  tagSize: number;
}

interface EcdsaCase extends TestCase {
  msg: string;
  sig: string;
}

interface EcdsaGroup extends TestGroup<EcdsaCase> {
  sha: string;
  publicKey: { curve: string; uncompressed: string };
}

type EcdhFile<Pub, Priv> = VectorFile<TestGroup<EcdhCase<Pub, Priv>>>;

// ---------------------------------------------------------------------------------------------
// Helpers

/** Reads a vector file; a missing file fails the test (never skips it). */
function load<F>(name: string): F {
  const file = path.join(VECTORS_DIR, name);
  if (!existsSync(file)) throw new Error(`test vectors missing: ${file} (expected ../shared/vectors)`);
  return JSON.parse(readFileSync(file, 'utf8')) as F;
}

/** Strict hex decoding (Buffer.from silently drops a bad tail). */
function hex(s: string): Uint8Array {
  if (!/^(?:[0-9a-f]{2})*$/i.test(s)) throw new Error(`bad hex in vector: ${s.slice(0, 40)}`);
  return new Uint8Array(Buffer.from(s, 'hex'));
}

const toHex = (b: Uint8Array): string => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('hex');

/** A Wycheproof private scalar (may carry a leading 00 or be shorter) as exactly 32 big-endian bytes. */
function scalar32(bytes: Uint8Array): Uint8Array {
  let b = bytes;
  while (b.length > 32 && b[0] === 0) b = b.subarray(1);
  if (b.length > 32) throw new Error(`private scalar longer than 32 bytes: ${toHex(bytes)}`);
  const out = new Uint8Array(32);
  out.set(b, 32 - b.length);
  return out;
}

const cases = <T extends TestCase>(groups: TestGroup<T>[]): T[] => groups.flatMap((g) => g.tests);

/** Rejection without an exception (verify() === false, MAC mismatch). */
const NOT_ACCEPTED = 'returned false';

/** Outcome of running one case: accepted (with the output to compare, if any) or rejected. */
type Outcome = { accepted: true; output?: string } | { accepted: false; error: unknown };

/** Runs `fn`; a throw is a rejection. A function may also reject by returning `false`. */
function attempt(fn: () => Uint8Array | boolean): Outcome {
  try {
    const r = fn();
    if (r === false) return { accepted: false, error: NOT_ACCEPTED };
    return r === true ? { accepted: true } : { accepted: true, output: toHex(r) };
  } catch (error) {
    return { accepted: false, error };
  }
}

const describeError = (e: unknown): string =>
  e instanceof Error
    ? `${e.constructor.name}${e instanceof CryptoError ? `(${e.code})` : ''}: ${e.message}`
    : String(e);

const isCryptoError =
  (code: ErrorCode) =>
  (e: unknown): boolean =>
    e instanceof CryptoError && e.code === code;

/** valid: valid cases passed; invalid: invalid cases rejected; acceptable*: by the family's policy. */
interface Counts {
  valid: number;
  invalid: number;
  acceptableAccepted: number;
  acceptableRejected: number;
  /** Valid cases whose shared secret is all zero: refused by our policy (the issue requires it). */
  zeroSecretRefused: number;
}

/** The pinned counts of a family; acceptable counts default to 0. */
type ExpectedCounts = Pick<Counts, 'valid' | 'invalid'> & Partial<Counts>;

/** Counts outcomes against the vectors' verdicts and collects every mismatch with its tcId. */
const ZERO_SECRET = '00'.repeat(32);

class Tally {
  readonly counts: Counts = {
    valid: 0,
    invalid: 0,
    acceptableAccepted: 0,
    acceptableRejected: 0,
    zeroSecretRefused: 0,
  };
  readonly failures: string[] = [];

  /**
   * @param isRejection whether an error is the rejection this family is supposed to produce
   * @param acceptAcceptable this family's policy for an `acceptable` case: true = must accept
   */
  constructor(
    private readonly isRejection: (e: unknown) => boolean,
    private readonly acceptAcceptable: (tc: TestCase) => boolean = () => {
      throw new Error('this family has no acceptable cases');
    },
  ) {}

  /** `expected`: the published output (hex) that a valid or accepted case must produce, if any. */
  record(tc: TestCase, outcome: Outcome, expected?: string): void {
    const fail = (why: string): void => {
      this.failures.push(`tcId ${tc.tcId} [${tc.result}] "${tc.comment}" {${tc.flags.join(',')}}: ${why}`);
    };
    if (tc.result === 'valid' && expected === ZERO_SECRET) {
      // Policy: an all-zero ECDH output is refused even though the point is valid (see DhKeyPair.agree).
      if (outcome.accepted) fail('all-zero shared secret accepted; policy is to refuse it');
      else if (!this.isRejection(outcome.error)) fail(`unexpected error: ${describeError(outcome.error)}`);
      else this.counts.zeroSecretRefused++;
      return;
    }
    const want = tc.result === 'valid' || (tc.result === 'acceptable' && this.acceptAcceptable(tc));
    if (outcome.accepted !== want) {
      fail(outcome.accepted ? 'accepted, should be rejected' : `rejected: ${describeError(outcome.error)}`);
    } else if (outcome.accepted) {
      if (expected !== undefined && outcome.output !== expected)
        fail(`output ${outcome.output} != ${expected}`);
      else if (tc.result === 'valid') this.counts.valid++;
      else this.counts.acceptableAccepted++;
    } else if (!this.isRejection(outcome.error)) {
      fail(`rejected with an unexpected error: ${describeError(outcome.error)}`);
    } else if (tc.result === 'invalid') this.counts.invalid++;
    else this.counts.acceptableRejected++;
  }

  /** Every case decided as required, exactly `total` cases decided, and the pinned per-verdict counts. */
  expectComplete(total: number, expected: ExpectedCounts): void {
    expect(this.failures, 'failing cases (tcId, verdict, comment, flags)').toEqual([]);
    const { valid, invalid, acceptableAccepted, acceptableRejected, zeroSecretRefused } = this.counts;
    expect(
      valid + invalid + acceptableAccepted + acceptableRejected + zeroSecretRefused,
      'cases decided',
    ).toBe(total);
    expect(this.counts).toEqual({
      acceptableAccepted: 0,
      acceptableRejected: 0,
      zeroSecretRefused: 0,
      ...expected,
    });
  }
}

// ---------------------------------------------------------------------------------------------

describe('known-answer vectors', () => {
  it('finds the vector directory', () => {
    expect(existsSync(path.join(VECTORS_DIR, 'SOURCES.md')), `no vectors at ${VECTORS_DIR}`).toBe(true);
  });

  // AES-GCM: only AES-256 with 96-bit nonces is in scope (the only parameters aesGcm* accept).
  // Valid cases must encrypt to ct||tag and decrypt back; invalid ones (ModifiedTag) must fail with
  // BAD_TAG. No acceptable cases.
  it('AES-256-GCM (Wycheproof aes_gcm_test.json, keySize 256, ivSize 96)', () => {
    const file = load<VectorFile<AeadGroup>>('aes_gcm_test.json');
    expect(file.numberOfTests).toBe(cases(file.testGroups).length);
    const groups = file.testGroups.filter((g) => g.keySize === 256 && g.ivSize === 96);
    const selected = cases(groups);
    expect(selected.length).toBe(66);
    expect(groups.every((g) => g.tagSize === 128)).toBe(true);

    const tally = new Tally(isCryptoError(ErrorCode.BAD_TAG));
    for (const tc of selected) {
      const [key, iv, aad, msg] = [hex(tc.key), hex(tc.iv), hex(tc.aad), hex(tc.msg)];
      const sealed = hex(tc.ct + tc.tag);
      // Output = encryption || decryption, so a valid case checks both directions in one comparison.
      const outcome = attempt(() => {
        const enc = aesGcmEncrypt(key, iv, msg, aad);
        const dec = aesGcmDecrypt(key, iv, sealed, aad);
        return new Uint8Array([...enc, ...dec]);
      });
      tally.record(tc, outcome, tc.ct + tc.tag + tc.msg);
    }
    tally.expectComplete(selected.length, { valid: 39, invalid: 27 });
  });

  // HKDF-SHA-256: valid cases must give the published OKM; invalid ones are all SizeTooLarge
  // (8161 > 255 * 32 bytes) and must throw RangeError. No acceptable cases.
  it('HKDF-SHA-256 (Wycheproof hkdf_sha256_test.json)', () => {
    const file = load<VectorFile<TestGroup<HkdfCase>>>('hkdf_sha256_test.json');
    const all = cases(file.testGroups);
    expect(all.length).toBe(file.numberOfTests);
    expect(all.length).toBe(86);
    expect(all.filter((tc) => tc.result === 'invalid').every((tc) => tc.flags.includes('SizeTooLarge'))).toBe(
      true,
    );

    const tally = new Tally((e) => e instanceof RangeError);
    for (const tc of all) {
      const outcome = attempt(() => hkdfSha256(hex(tc.ikm), hex(tc.salt), hex(tc.info), tc.size));
      tally.record(tc, outcome, tc.okm);
    }
    tally.expectComplete(file.numberOfTests, { valid: 83, invalid: 3 });
  });

  it('HKDF-SHA-256 (RFC 5869 Appendix A, test cases 1-3)', () => {
    const range = (from: number, to: number): Uint8Array =>
      Uint8Array.from({ length: to - from }, (_, i) => from + i);
    const rfc = [
      {
        name: 'A.1',
        ikm: new Uint8Array(22).fill(0x0b),
        salt: range(0x00, 0x0d),
        info: range(0xf0, 0xfa),
        okm: '3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865',
      },
      {
        name: 'A.2',
        ikm: range(0x00, 0x50),
        salt: range(0x60, 0xb0),
        info: range(0xb0, 0x100),
        okm:
          'b11e398dc80327a1c8e7f78c596a49344f012eda2d4efad8a050cc4c19afa97c59045a99cac7827271cb41c65e590e09' +
          'da3275600c2f09b8367793a9aca3db71cc30c58179ec3e87c14c01d5c1f3434f1d87',
      },
      {
        name: 'A.3',
        ikm: new Uint8Array(22).fill(0x0b),
        salt: new Uint8Array(0),
        info: new Uint8Array(0),
        okm: '8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8',
      },
    ];
    for (const t of rfc) {
      expect(toHex(hkdfSha256(t.ikm, t.salt, t.info, t.okm.length / 2)), `RFC 5869 ${t.name}`).toBe(t.okm);
    }
  });

  // HMAC-SHA-256: the tag is the first tagSize/8 bytes of the full MAC (full and 128-bit groups).
  // Valid: the prefix equals the tag; invalid (modified tags): it does not. The MAC over the message
  // split into two parts must equal the one-part MAC. No acceptable cases.
  it('HMAC-SHA-256 (Wycheproof hmac_sha256_test.json, full and truncated tags)', () => {
    const file = load<VectorFile<MacGroup>>('hmac_sha256_test.json');
    expect(cases(file.testGroups).length).toBe(file.numberOfTests);
    expect(file.numberOfTests).toBe(174);

    const tally = new Tally((e) => e === NOT_ACCEPTED);
    for (const g of file.testGroups) {
      for (const tc of g.tests) {
        const [key, msg, tag] = [hex(tc.key), hex(tc.msg), hex(tc.tag)];
        const outcome = attempt(() => {
          const full = hmacSha256(key, msg);
          const half = msg.length >> 1;
          const split = hmacSha256(key, msg.subarray(0, half), msg.subarray(half));
          if (toHex(split) !== toHex(full)) throw new Error('multi-part MAC differs from one-part MAC');
          return toHex(full.subarray(0, g.tagSize / 8)) === toHex(tag);
        });
        tally.record(tc, outcome);
      }
    }
    tally.expectComplete(file.numberOfTests, { valid: 66, invalid: 108 });
  });

  // ECDH, public key as a raw SEC1 point. Acceptable: tcId 2 only {CompressedPublic, CompressedPoint}.
  // Two runs of the same file:
  //  - the wire path, DhKeyPair.agree(importPublicKey(point)) with the default allowCompressed=false:
  //    compressed points are REJECTED (our wire policy), so tcId 2 counts as acceptable-rejected;
  //  - the one-shot ecdh(), which imports with allowCompressed=true: tcId 2 must be ACCEPTED with the
  //    published shared secret, and the invalid compressed/twist points must still be rejected.
  // Any INVALID_KEY CryptoError, from the private key, the import or the agreement, is a rejection.
  describe('ECDH P-256 (Wycheproof ecdh_secp256r1_ecpoint_test.json)', () => {
    type Agree = (priv: Uint8Array, pub: Uint8Array) => Uint8Array;
    const run = (agree: Agree, acceptCompressed: boolean, expected: ExpectedCounts): void => {
      const file = load<EcdhFile<string, string>>('ecdh_secp256r1_ecpoint_test.json');
      const all = cases(file.testGroups);
      expect(all.length).toBe(file.numberOfTests);
      expect(all.length).toBe(355);
      expect(
        all.filter((tc) => tc.result === 'acceptable').every((tc) => tc.flags.includes('CompressedPublic')),
      ).toBe(true);
      const tally = new Tally(isCryptoError(ErrorCode.INVALID_KEY), () => acceptCompressed);
      for (const tc of all) {
        const outcome = attempt(() => agree(scalar32(hex(tc.private)), hex(tc.public)));
        tally.record(tc, outcome, tc.shared);
      }
      tally.expectComplete(file.numberOfTests, expected);
    };

    it('wire path: importPublicKey (compressed rejected) + DhKeyPair.agree', () => {
      run((priv, pub) => DhKeyPair.fromPrivateKey(priv).agree(importPublicKey(pub)), false, {
        valid: 329,
        zeroSecretRefused: 1,
        invalid: 24,
        acceptableRejected: 1,
      });
    });

    it('one-shot ecdh() (compressed accepted)', () => {
      run(ecdh, true, { valid: 329, zeroSecretRefused: 1, invalid: 24, acceptableAccepted: 1 });
    });
  });

  // ECDH, public key as DER SubjectPublicKeyInfo (importSpkiPublicKey). Acceptable flags and our policy:
  //  - CompressedPublic/CompressedPoint (tcId 2): ACCEPTED. A DER SPKI is not our wire format; the
  //    compressed point is decompressed, validated and returned in canonical 65-byte form.
  //  - UnnamedCurve with WrongOrder / ModifiedGenerator / ModifiedCofactor / NoCofactor /
  //    ModifiedCurveParameter (all also UnusedParam): REJECTED. Only the named-curve OID is accepted.
  //  - InvalidAsn (BER length forms, indefinite lengths, garbage, wrong OIDs, ...): REJECTED. Only the
  //    canonical DER encoding is accepted.
  it('ECDH P-256 with DER SPKI keys (Wycheproof ecdh_secp256r1_test.json)', () => {
    const file = load<EcdhFile<string, string>>('ecdh_secp256r1_test.json');
    const all = cases(file.testGroups);
    expect(all.length).toBe(file.numberOfTests);
    expect(all.length).toBe(612);
    const acceptCompressedOnly = (tc: TestCase): boolean => {
      if (tc.flags.includes('CompressedPublic')) return true;
      if (tc.flags.includes('UnnamedCurve') || tc.flags.includes('InvalidAsn')) return false;
      throw new Error(`no policy for acceptable case ${tc.tcId} {${tc.flags.join(',')}}`);
    };
    const tally = new Tally(isCryptoError(ErrorCode.INVALID_KEY), acceptCompressedOnly);
    for (const tc of all) {
      const outcome = attempt(() =>
        DhKeyPair.fromPrivateKey(scalar32(hex(tc.private))).agree(importSpkiPublicKey(hex(tc.public))),
      );
      tally.record(tc, outcome, tc.shared);
    }
    tally.expectComplete(file.numberOfTests, {
      valid: 329,
      zeroSecretRefused: 1,
      invalid: 52,
      acceptableAccepted: 1,
      acceptableRejected: 229,
    });
  });

  // ECDH, keys as JWK (importJwkPublicKey; the private scalar is the JWK's `d`). No acceptable cases:
  // points off the curve and other curves (P-256K, P-384, P-521) must be rejected.
  it('ECDH P-256 with JWK keys (Wycheproof ecdh_secp256r1_webcrypto_test.json)', () => {
    const file = load<EcdhFile<Jwk, Jwk>>('ecdh_secp256r1_webcrypto_test.json');
    const all = cases(file.testGroups);
    expect(all.length).toBe(file.numberOfTests);
    expect(all.length).toBe(353);
    const tally = new Tally(isCryptoError(ErrorCode.INVALID_KEY));
    for (const tc of all) {
      const d = tc.private.d;
      if (d === undefined) throw new Error(`tcId ${tc.tcId}: private JWK without d`);
      const priv = scalar32(new Uint8Array(Buffer.from(d, 'base64url')));
      const outcome = attempt(() => DhKeyPair.fromPrivateKey(priv).agree(importJwkPublicKey(tc.public)));
      tally.record(tc, outcome, tc.shared);
    }
    tally.expectComplete(file.numberOfTests, { valid: 329, zeroSecretRefused: 1, invalid: 23 });
  });

  // ECDSA P-256/SHA-256 verification; verify() hashes the message itself. Valid signatures, including
  // high-S ones, must verify (we do not enforce low-S); invalid ones must return false, never throw.
  // Neither file has acceptable cases.
  describe('ECDSA P-256 SHA-256 verify', () => {
    const run = (name: string, encoding: 'p1363' | 'der', expected: ExpectedCounts): void => {
      const file = load<VectorFile<EcdsaGroup>>(name);
      expect(cases(file.testGroups).length).toBe(file.numberOfTests);
      const tally = new Tally((e) => e === NOT_ACCEPTED);
      for (const g of file.testGroups) {
        expect([g.publicKey.curve, g.sha]).toEqual(['secp256r1', 'SHA-256']);
        const key = new VerifyKey(hex(g.publicKey.uncompressed));
        for (const tc of g.tests) {
          const outcome = attempt(() => key.verify(hex(tc.msg), hex(tc.sig), encoding));
          tally.record(tc, outcome);
        }
      }
      tally.expectComplete(file.numberOfTests, expected);
    };

    it('P1363 r||s signatures (Wycheproof ecdsa_secp256r1_sha256_p1363_test.json)', () => {
      run('ecdsa_secp256r1_sha256_p1363_test.json', 'p1363', { valid: 173, invalid: 89 });
    });

    it('accepts valid high-S signatures (no low-S policy)', () => {
      const file = load<VectorFile<EcdsaGroup>>('ecdsa_secp256r1_sha256_p1363_test.json');
      let highS = 0;
      for (const g of file.testGroups) {
        const key = new VerifyKey(hex(g.publicKey.uncompressed));
        for (const tc of g.tests) {
          if (tc.result !== 'valid' || BigInt(`0x${tc.sig.slice(64)}`) <= P256_N / 2n) continue;
          highS++;
          expect(key.verify(hex(tc.msg), hex(tc.sig)), `tcId ${tc.tcId} "${tc.comment}"`).toBe(true);
        }
      }
      expect(highS, 'valid signatures with s > n/2').toBe(70);
    });

    it('DER signatures (Wycheproof ecdsa_secp256r1_sha256_test.json)', () => {
      run('ecdsa_secp256r1_sha256_test.json', 'der', { valid: 174, invalid: 310 });
    });
  });
});

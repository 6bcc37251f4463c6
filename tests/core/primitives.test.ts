/** Regression and edge tests for the primitives module beyond the public vectors. */
import { describe, expect, it } from 'vitest';
import { DhKeyPair, SigningKeyPair, importPublicKey } from '../../src-main/core/crypto/primitives.js';
import { Identity, safetyNumber } from '../../src-main/core/crypto/identity.js';
import { CryptoError, ErrorCode, StorageError } from '../../src-main/core/errors.js';

describe('private keys', () => {
  it('serialise to exactly 32 bytes even when the scalar has leading zero bytes, and restore', () => {
    // About 1 key in 256 has a leading zero byte; OpenSSL returns it one byte short.
    let dh: DhKeyPair | undefined;
    for (let i = 0; i < 20_000 && !dh; i++) {
      const k = DhKeyPair.generate();
      if (k.privateKeyBytes()[0] === 0) dh = k;
    }
    expect(dh, 'found a scalar with a leading zero byte').toBeDefined();
    const bytes = dh!.privateKeyBytes();
    expect(bytes.length).toBe(32);
    expect([...DhKeyPair.fromPrivateKey(bytes).publicKey]).toEqual([...dh!.publicKey]);

    let signing: SigningKeyPair | undefined;
    for (let i = 0; i < 20_000 && !signing; i++) {
      const k = SigningKeyPair.generate();
      if (k.privateKeyBytes()[0] === 0) signing = k;
    }
    expect(signing).toBeDefined();
    const restored = SigningKeyPair.fromPrivateKey(signing!.privateKeyBytes());
    const msg = new Uint8Array([1, 2, 3]);
    expect(signing!.verifyKey().verify(msg, restored.sign(msg))).toBe(true);
  });

  it('identities survive 500 serialise/restore round trips', () => {
    for (let i = 0; i < 500; i++) {
      const id = Identity.generate();
      const back = Identity.deserialize(id.serialize());
      expect([...back.publicIdentity.signingKey]).toEqual([...id.publicIdentity.signingKey]);
    }
  });

  it('corrupt identity bytes are a StorageError, not a crash', () => {
    const bytes = Identity.generate().serialize();
    bytes[40]! ^= 1; // the DH key no longer matches the certificate
    expect(() => Identity.deserialize(bytes)).toThrow(StorageError);
    expect(() => Identity.deserialize(new Uint8Array(3))).toThrow(StorageError);
  });
});

describe('public keys and shared secrets', () => {
  it('refuses points off the curve, compressed points on the wire, and the point at infinity', () => {
    const pub = DhKeyPair.generate().publicKey;
    const off = pub.slice();
    off[64]! ^= 1;
    for (const bad of [off, pub.subarray(0, 33), new Uint8Array([0]), new Uint8Array(65)]) {
      let caught: unknown;
      try {
        importPublicKey(bad);
      } catch (e) {
        caught = e;
      }
      expect(caught).toBeInstanceOf(CryptoError);
      expect((caught as CryptoError).code).toBe(ErrorCode.INVALID_KEY);
    }
    expect(() => DhKeyPair.generate().agree(off)).toThrow(CryptoError);
  });
});

describe('safety numbers', () => {
  it('are 60 digits, equal on both sides, and change when either key changes', () => {
    const a = Identity.generate().publicIdentity;
    const b = Identity.generate().publicIdentity;
    const ab = safetyNumber('alice', a, 'bob', b);
    expect(ab).toMatch(/^\d{60}$/);
    expect(safetyNumber('bob', b, 'alice', a)).toBe(ab);
    expect(safetyNumber('alice', a, 'bob', Identity.generate().publicIdentity)).not.toBe(ab);
    expect(safetyNumber('alice', a, 'mallory', b)).not.toBe(ab);
  });
});

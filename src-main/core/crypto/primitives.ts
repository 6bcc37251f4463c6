/**
 * Every cryptographic primitive the messenger uses, in one place, so the choice is visible:
 * - AES-256-GCM from @noble/ciphers (the design's choice; 96-bit nonces, 128-bit tags).
 * - P-256 ECDH/ECDSA, HKDF-SHA-256, HMAC-SHA-256 and randomness from node:crypto (OpenSSL in Node,
 *   BoringSSL in Electron): 20-30x faster than a pure-JS P-256 here (see the measurements).
 * No other module imports node:crypto or @noble/ciphers.
 */
import {
  ECDH,
  createECDH,
  createHmac,
  createPrivateKey,
  createPublicKey,
  hkdfSync,
  randomBytes as nodeRandomBytes,
  sign as nodeSign,
  verify as nodeVerify,
  createHash,
  type KeyObject,
  type JsonWebKey,
} from 'node:crypto';
import { gcm } from '@noble/ciphers/aes.js';
import { CryptoError, ErrorCode } from '../errors.js';

export const AES_KEY_BYTES = 32;
export const GCM_NONCE_BYTES = 12;
export const GCM_TAG_BYTES = 16;
/** Uncompressed SEC1 point: 0x04 || X || Y. The only public-key encoding on the wire. */
export const P256_PUBLIC_BYTES = 65;
export const P256_PRIVATE_BYTES = 32;
/** ECDSA signatures on the wire are IEEE P1363 r || s. */
export const P256_SIGNATURE_BYTES = 64;
export const HASH_BYTES = 32;

const CURVE = 'prime256v1';

function checkBytes(name: string, v: unknown, len?: number): asserts v is Uint8Array {
  if (!(v instanceof Uint8Array)) throw new TypeError(`${name} must be a Uint8Array`);
  if (len !== undefined && v.length !== len)
    throw new RangeError(`${name} must be ${len} bytes, got ${v.length}`);
}

const asBuffer = (b: Uint8Array): Buffer => Buffer.from(b.buffer, b.byteOffset, b.byteLength);

/** Cryptographically secure random bytes. */
export function randomBytes(n: number): Uint8Array {
  return new Uint8Array(nodeRandomBytes(n));
}

/** Overwrites a temporary secret buffer. */
export function wipe(...bufs: Uint8Array[]): void {
  for (const b of bufs) b.fill(0);
}

// ---------------------------------------------------------------------------------------------
// AES-256-GCM (NIST SP 800-38D)

/** Encrypts with AES-256-GCM; returns ciphertext || 16-byte tag. `aad` binds the header. */
export function aesGcmEncrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  plaintext: Uint8Array,
  aad: Uint8Array,
): Uint8Array {
  checkBytes('key', key, AES_KEY_BYTES);
  checkBytes('nonce', nonce, GCM_NONCE_BYTES);
  checkBytes('plaintext', plaintext);
  checkBytes('aad', aad);
  return gcm(key, nonce, aad).encrypt(plaintext);
}

/** Decrypts AES-256-GCM; any failure is one opaque BAD_TAG CryptoError. */
export function aesGcmDecrypt(
  key: Uint8Array,
  nonce: Uint8Array,
  sealed: Uint8Array,
  aad: Uint8Array,
): Uint8Array {
  checkBytes('key', key, AES_KEY_BYTES);
  checkBytes('nonce', nonce, GCM_NONCE_BYTES);
  checkBytes('ciphertext', sealed);
  checkBytes('aad', aad);
  if (sealed.length < GCM_TAG_BYTES) throw new CryptoError(ErrorCode.BAD_TAG, 'ciphertext too short');
  try {
    return gcm(key, nonce, aad).decrypt(sealed);
  } catch {
    throw new CryptoError(ErrorCode.BAD_TAG, 'authentication failed');
  }
}

// ---------------------------------------------------------------------------------------------
// HMAC-SHA-256 (RFC 2104), HKDF-SHA-256 (RFC 5869), SHA-256

/** A Uint8Array over a Buffer's bytes, without copying them (Buffer's slice() would alias, not copy). */
const asBytes = (b: Buffer): Uint8Array => new Uint8Array(b.buffer, b.byteOffset, b.byteLength);

/** HMAC-SHA-256 over the concatenation of `parts`. */
export function hmacSha256(key: Uint8Array, ...parts: Uint8Array[]): Uint8Array {
  const h = createHmac('sha256', key);
  for (const p of parts) h.update(p);
  return asBytes(h.digest());
}

/** HKDF-SHA-256 extract-and-expand. Refuses lengths above 255 * 32 (RFC 5869 section 2.3). */
export function hkdfSha256(ikm: Uint8Array, salt: Uint8Array, info: Uint8Array, length: number): Uint8Array {
  checkBytes('ikm', ikm);
  checkBytes('salt', salt);
  checkBytes('info', info);
  if (!Number.isInteger(length) || length < 1 || length > 255 * HASH_BYTES) {
    throw new RangeError(`HKDF output length must be 1..${255 * HASH_BYTES}`);
  }
  return new Uint8Array(hkdfSync('sha256', ikm, salt, info, length));
}

/** SHA-256 digest. */
export function sha256(...parts: Uint8Array[]): Uint8Array {
  const h = createHash('sha256');
  for (const p of parts) h.update(p);
  return new Uint8Array(h.digest());
}

// ---------------------------------------------------------------------------------------------
// P-256 public keys: validated on import (on the curve, the right curve, a valid encoding)

function invalidKey(why: string): CryptoError {
  return new CryptoError(ErrorCode.INVALID_KEY, `invalid P-256 public key: ${why}`);
}

/**
 * Validates a SEC1 P-256 point and returns its canonical uncompressed 65-byte form.
 * Only uncompressed points are accepted unless `allowCompressed` (used for interop tests only).
 */
export function importPublicKey(point: Uint8Array, allowCompressed = false): Uint8Array {
  checkBytes('public key', point);
  const okLen = point.length === P256_PUBLIC_BYTES && point[0] === 0x04;
  const okCompressed = allowCompressed && point.length === 33 && (point[0] === 0x02 || point[0] === 0x03);
  if (!okLen && !okCompressed) throw invalidKey('not an uncompressed SEC1 point');
  try {
    // OpenSSL's EC_POINT_oct2point rejects points not on the curve and the point at infinity.
    return new Uint8Array(
      ECDH.convertKey(asBuffer(point), CURVE, undefined, undefined, 'uncompressed') as Buffer,
    );
  } catch {
    throw invalidKey('not on the curve');
  }
}

/**
 * Checks only the encoding of an uncompressed point (65 bytes, 0x04 prefix). For keys used at once in
 * DhKeyPair.agree, which validates the point itself (OpenSSL refuses points off the curve), this
 * avoids decoding the point twice on the hot path.
 */
export function checkPointShape(point: Uint8Array): Uint8Array {
  checkBytes('public key', point);
  if (point.length !== P256_PUBLIC_BYTES || point[0] !== 0x04)
    throw invalidKey('not an uncompressed SEC1 point');
  return point;
}

function fromKeyObject(key: KeyObject): Uint8Array {
  if (key.asymmetricKeyType !== 'ec' || key.asymmetricKeyDetails?.namedCurve !== CURVE) {
    throw invalidKey('not a named P-256 key');
  }
  const jwk = key.export({ format: 'jwk' });
  if (jwk.crv !== 'P-256' || typeof jwk.x !== 'string' || typeof jwk.y !== 'string')
    throw invalidKey('bad JWK');
  const x = Buffer.from(jwk.x, 'base64url');
  const y = Buffer.from(jwk.y, 'base64url');
  if (x.length !== 32 || y.length !== 32) throw invalidKey('bad coordinate length');
  return importPublicKey(new Uint8Array(Buffer.concat([Buffer.from([4]), x, y])));
}

/** Validates a DER SubjectPublicKeyInfo P-256 key (named curve only) and returns the raw point. */
export function importSpkiPublicKey(der: Uint8Array): Uint8Array {
  checkBytes('spki', der);
  let key: KeyObject;
  let canonical: Buffer;
  try {
    key = createPublicKey({ key: asBuffer(der), format: 'der', type: 'spki' });
    canonical = key.export({ format: 'der', type: 'spki' });
  } catch {
    throw invalidKey('malformed SubjectPublicKeyInfo');
  }
  // OpenSSL maps explicit curve parameters that merely resemble P-256 (missing or wrong cofactor) to the
  // named curve, and accepts BER length forms. A named-curve key in DER re-encodes to the same bytes
  // (RFC 5480 section 2.1.1: namedCurve only); anything else does not (Wycheproof ecdh tcId 359, 361).
  if (!canonical.equals(asBuffer(der))) throw invalidKey('not a DER named-curve SubjectPublicKeyInfo');
  return fromKeyObject(key);
}

/** Validates a JWK P-256 public key and returns the raw point. */
export function importJwkPublicKey(jwk: unknown): Uint8Array {
  if (typeof jwk !== 'object' || jwk === null) throw invalidKey('JWK must be an object');
  const j = jwk as JsonWebKey;
  if (j.kty !== 'EC' || j.crv !== 'P-256') throw invalidKey('JWK is not an EC P-256 key');
  let key: KeyObject;
  try {
    key = createPublicKey({ key: { kty: 'EC', crv: 'P-256', x: j.x, y: j.y }, format: 'jwk' });
  } catch {
    throw invalidKey('malformed JWK');
  }
  return fromKeyObject(key);
}

function jwkOf(pub: Uint8Array, priv?: Uint8Array): JsonWebKey {
  const b64 = (b: Uint8Array): string => asBuffer(b).toString('base64url');
  const jwk: JsonWebKey = {
    kty: 'EC',
    crv: 'P-256',
    x: b64(pub.subarray(1, 33)),
    y: b64(pub.subarray(33, 65)),
  };
  if (priv) jwk.d = b64(priv);
  return jwk;
}

// ---------------------------------------------------------------------------------------------
// P-256 ECDH (SEC 1 section 3.3.1; the shared secret is the 32-byte x-coordinate)

/**
 * The private scalar as exactly 32 bytes. OpenSSL returns the minimal big-endian encoding, which is
 * shorter for about 1 key in 256 (leading zero bytes); fixed-width fields need it left-padded.
 */
function scalarBytes(raw: Buffer): Uint8Array {
  const out = new Uint8Array(P256_PRIVATE_BYTES);
  out.set(raw, P256_PRIVATE_BYTES - raw.length);
  return out;
}

/** A P-256 key-agreement key pair. Private key bytes serialise for the keychain. */
export class DhKeyPair {
  private readonly ecdh;
  readonly publicKey: Uint8Array;

  private constructor(ecdh: ReturnType<typeof createECDH>) {
    this.ecdh = ecdh;
    this.publicKey = new Uint8Array(ecdh.getPublicKey(null, 'uncompressed'));
  }

  /** A fresh random key pair. */
  static generate(): DhKeyPair {
    const ecdh = createECDH(CURVE);
    ecdh.generateKeys();
    return new DhKeyPair(ecdh);
  }

  /** Restores a key pair from its 32-byte private scalar; refuses 0 and values >= n. */
  static fromPrivateKey(priv: Uint8Array): DhKeyPair {
    checkBytes('private key', priv, P256_PRIVATE_BYTES);
    const ecdh = createECDH(CURVE);
    try {
      ecdh.setPrivateKey(asBuffer(priv));
    } catch {
      throw new CryptoError(ErrorCode.INVALID_KEY, 'invalid P-256 private key');
    }
    return new DhKeyPair(ecdh);
  }

  /** The 32-byte private scalar (for serialisation only). */
  privateKeyBytes(): Uint8Array {
    return scalarBytes(this.ecdh.getPrivateKey());
  }

  /**
   * ECDH with a peer's public key; refuses invalid points and an all-zero secret. On P-256 an all-zero
   * x-coordinate comes from a valid point (Wycheproof lists it as valid), but no honest peer key hits it
   * (probability 2^-256), so we refuse it as the design requires: a zero secret is never keying material.
   */
  agree(peerPublic: Uint8Array): Uint8Array {
    checkBytes('peer public key', peerPublic);
    let secret: Uint8Array;
    try {
      secret = new Uint8Array(this.ecdh.computeSecret(asBuffer(peerPublic)));
    } catch {
      throw invalidKey('peer key rejected');
    }
    if (secret.every((b) => b === 0)) throw new CryptoError(ErrorCode.INVALID_KEY, 'all-zero shared secret');
    return secret;
  }
}

/** One-shot ECDH from a raw private scalar (used by the vector tests). */
export function ecdh(priv: Uint8Array, peerPublic: Uint8Array): Uint8Array {
  return DhKeyPair.fromPrivateKey(priv).agree(importPublicKey(peerPublic, true));
}

// ---------------------------------------------------------------------------------------------
// ECDSA P-256 with SHA-256 (FIPS 186-5); signatures are P1363 r || s on the wire

/** A public verification key: validated once, with its OpenSSL handle cached for fast verifies. */
export class VerifyKey {
  readonly publicKey: Uint8Array;
  private handle: KeyObject | undefined;

  constructor(publicKey: Uint8Array) {
    this.publicKey = importPublicKey(publicKey);
  }

  private key(): KeyObject {
    this.handle ??= createPublicKey({ key: jwkOf(this.publicKey), format: 'jwk' });
    return this.handle;
  }

  /** True only for a valid signature; malformed signatures are simply invalid. */
  verify(message: Uint8Array, signature: Uint8Array, encoding: 'p1363' | 'der' = 'p1363'): boolean {
    checkBytes('message', message);
    checkBytes('signature', signature);
    if (encoding === 'p1363' && signature.length !== P256_SIGNATURE_BYTES) return false;
    try {
      return nodeVerify(
        'sha256',
        message,
        { key: this.key(), dsaEncoding: encoding === 'p1363' ? 'ieee-p1363' : 'der' },
        signature,
      );
    } catch {
      return false;
    }
  }

  /** Verifies or throws BAD_SIGNATURE. */
  assert(message: Uint8Array, signature: Uint8Array, what: string): void {
    if (!this.verify(message, signature))
      throw new CryptoError(ErrorCode.BAD_SIGNATURE, `${what}: bad signature`);
  }
}

/** A P-256 ECDSA signing key pair. */
export class SigningKeyPair {
  readonly publicKey: Uint8Array;
  private readonly priv: Uint8Array;
  private handle: KeyObject | undefined;
  private verifier: VerifyKey | undefined;

  private constructor(priv: Uint8Array, pub: Uint8Array) {
    this.priv = priv;
    this.publicKey = pub;
  }

  /** A fresh random key pair. */
  static generate(): SigningKeyPair {
    const ecdh = createECDH(CURVE);
    ecdh.generateKeys();
    return new SigningKeyPair(scalarBytes(ecdh.getPrivateKey()), new Uint8Array(ecdh.getPublicKey()));
  }

  /** Restores from the 32-byte private scalar. */
  static fromPrivateKey(priv: Uint8Array): SigningKeyPair {
    const dh = DhKeyPair.fromPrivateKey(priv);
    return new SigningKeyPair(new Uint8Array(priv), dh.publicKey);
  }

  privateKeyBytes(): Uint8Array {
    return new Uint8Array(this.priv);
  }

  /** Signs `message` (SHA-256, random nonce from OpenSSL), P1363 encoding. */
  sign(message: Uint8Array): Uint8Array {
    this.handle ??= createPrivateKey({ key: jwkOf(this.publicKey, this.priv), format: 'jwk' });
    return asBytes(nodeSign('sha256', message, { key: this.handle, dsaEncoding: 'ieee-p1363' }));
  }

  verifyKey(): VerifyKey {
    this.verifier ??= new VerifyKey(this.publicKey);
    return this.verifier;
  }
}

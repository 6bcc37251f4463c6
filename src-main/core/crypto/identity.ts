/**
 * Long-term identity and prekeys (the publishing side of X3DH).
 *
 * An identity is a P-256 ECDSA signing key plus a P-256 key-agreement key certified by it
 * (the certificate binds the DH key to the signing key so a relay cannot pair someone's signing key
 * with its own DH key). Private keys only leave as bytes for the caller's keychain.
 */
import { Reader, Writer, concatBytes, equalBytes, toHex } from '../encoding.js';
import { CryptoError, ErrorCode, StorageError } from '../errors.js';
import { Label, PROTOCOL_VERSION } from './constants.js';
import {
  DhKeyPair,
  P256_PUBLIC_BYTES,
  P256_SIGNATURE_BYTES,
  SigningKeyPair,
  VerifyKey,
  importPublicKey,
  sha256,
} from './primitives.js';

/** The public half of an identity, as published and as pinned by contacts. */
export interface PublicIdentity {
  /** ECDSA verification key (65-byte SEC1). The relay binds the user id to this key. */
  readonly signingKey: Uint8Array;
  /** Key-agreement key (65-byte SEC1) used in X3DH. */
  readonly dhKey: Uint8Array;
  /** ECDSA signature by signingKey over Label.IDENTITY_DH || dhKey. */
  readonly dhKeySignature: Uint8Array;
}

const PUBLIC_IDENTITY_BYTES = P256_PUBLIC_BYTES * 2 + P256_SIGNATURE_BYTES;

/** Encodes a public identity as signingKey || dhKey || dhKeySignature (194 bytes). */
export function encodePublicIdentity(id: PublicIdentity): Uint8Array {
  return concatBytes(id.signingKey, id.dhKey, id.dhKeySignature);
}

const verifiedIdentities = new Map<string, PublicIdentity>();

/**
 * Decodes and verifies a public identity: both keys on the curve, the DH key certified by the signing key.
 * Verified identities are memoised (bounded) because the same contacts recur.
 */
export function decodePublicIdentity(bytes: Uint8Array): PublicIdentity {
  if (bytes.length !== PUBLIC_IDENTITY_BYTES)
    throw new CryptoError(ErrorCode.INVALID_KEY, 'bad identity length');
  const hex = toHex(bytes);
  const hit = verifiedIdentities.get(hex);
  if (hit) return hit;
  const signingKey = importPublicKey(bytes.subarray(0, 65));
  const dhKey = importPublicKey(bytes.subarray(65, 130));
  const dhKeySignature = bytes.slice(130);
  verifyKeyFor(signingKey).assert(
    concatBytes(Label.IDENTITY_DH, dhKey),
    dhKeySignature,
    'identity certificate',
  );
  const id = { signingKey, dhKey, dhKeySignature };
  if (verifiedIdentities.size >= 1024) verifiedIdentities.clear();
  verifiedIdentities.set(hex, id);
  return id;
}

const verifyKeys = new Map<string, VerifyKey>();
/** A cached verification key for a public key (keeps OpenSSL handles warm for recurring signers). */
export function verifyKeyFor(publicKey: Uint8Array): VerifyKey {
  const hex = toHex(publicKey);
  let k = verifyKeys.get(hex);
  if (!k) {
    k = new VerifyKey(publicKey);
    // Bounded: each cached OpenSSL key costs a few KiB of native memory.
    if (verifyKeys.size >= 256) verifyKeys.clear();
    verifyKeys.set(hex, k);
  }
  return k;
}

/** A user's long-term identity key pairs. */
export class Identity {
  private constructor(
    readonly signing: SigningKeyPair,
    readonly dh: DhKeyPair,
    readonly publicIdentity: PublicIdentity,
  ) {}

  /** A fresh identity. */
  static generate(): Identity {
    const signing = SigningKeyPair.generate();
    const dh = DhKeyPair.generate();
    const sig = signing.sign(concatBytes(Label.IDENTITY_DH, dh.publicKey));
    return new Identity(signing, dh, {
      signingKey: signing.publicKey,
      dhKey: dh.publicKey,
      dhKeySignature: sig,
    });
  }

  /** Private key material as versioned bytes, for the OS keychain. */
  serialize(): Uint8Array {
    return new Writer(160)
      .u8(PROTOCOL_VERSION)
      .fixed(this.signing.privateKeyBytes())
      .fixed(this.dh.privateKeyBytes())
      .fixed(this.publicIdentity.dhKeySignature)
      .finish();
  }

  /** Restores an identity from `serialize()` output, checking that the parts belong together. */
  static deserialize(bytes: Uint8Array): Identity {
    try {
      const r = new Reader(bytes);
      if (r.u8() !== PROTOCOL_VERSION) throw new Error('version');
      const signing = SigningKeyPair.fromPrivateKey(r.fixed(32));
      const dh = DhKeyPair.fromPrivateKey(r.fixed(32));
      const sig = r.fixed(P256_SIGNATURE_BYTES).slice();
      r.end();
      const pub = { signingKey: signing.publicKey, dhKey: dh.publicKey, dhKeySignature: sig };
      decodePublicIdentity(encodePublicIdentity(pub));
      return new Identity(signing, dh, pub);
    } catch {
      throw new StorageError(ErrorCode.BAD_STATE, 'identity bytes are corrupt or of another version');
    }
  }
}

/** True when two identities have the same keys (certificates may differ in encoding, see safetyNumber). */
export function sameIdentityKeys(a: PublicIdentity, b: PublicIdentity): boolean {
  return equalBytes(a.signingKey, b.signingKey) && equalBytes(a.dhKey, b.dhKey);
}

/**
 * A safety number for two users (as Signal shows): 60 digits, the same on both sides, derived from
 * both user ids and both identities. Users compare it out of band to rule out a relay in the middle.
 */
export function safetyNumber(aId: string, a: PublicIdentity, bId: string, b: PublicIdentity): string {
  const half = (id: string, p: PublicIdentity): string => {
    // The keys only, not the certificate: an ECDSA signature can be re-encoded (s -> n - s) by anyone.
    const digest = sha256(
      Label.SAFETY_NUMBER,
      new Writer().str(id).fixed(p.signingKey).fixed(p.dhKey).finish(),
    );
    let out = '';
    // 30 digits from 6 chunks of 5 bytes, each reduced mod 100000 (Signal's displayable fingerprint).
    for (let i = 0; i < 6; i++) {
      let v = 0;
      for (let j = 0; j < 5; j++) v = v * 256 + digest[i * 5 + j]!;
      out += String(v % 100000).padStart(5, '0');
    }
    return out;
  };
  const x = half(aId, a);
  const y = half(bId, b);
  return x < y ? x + y : y + x;
}

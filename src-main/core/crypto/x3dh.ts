/**
 * X3DH-style asynchronous session setup on P-256 (Signal's X3DH spec, sections 2-3, with P-256 ECDH
 * in place of X25519 and ECDSA in place of XEdDSA).
 *
 *   DH1 = DH(IK_A, SPK_B)  DH2 = DH(EK_A, IK_B)  DH3 = DH(EK_A, SPK_B)  [DH4 = DH(EK_A, OPK_B)]
 *   SK  = HKDF(salt = 0^32, IKM = 0xFF^32 || DH1 || DH2 || DH3 [|| DH4], info = Label.X3DH || AD, 32)
 *   AD  = str(A) || identity(A) || str(B) || identity(B) || u32 spkId || u32 opkId
 */
import { Reader, Writer, concatBytes } from '../encoding.js';
import { CryptoError, ErrorCode, StorageError } from '../errors.js';
import { Label, PROTOCOL_VERSION } from './constants.js';
import {
  type PublicIdentity,
  type Identity,
  decodePublicIdentity,
  encodePublicIdentity,
  verifyKeyFor,
} from './identity.js';
import {
  DhKeyPair,
  P256_SIGNATURE_BYTES,
  checkPointShape,
  hkdfSha256,
  importPublicKey,
  wipe,
} from './primitives.js';

export interface SignedPreKeyPublic {
  readonly id: number;
  readonly publicKey: Uint8Array;
  readonly signature: Uint8Array;
}

export interface OneTimePreKeyPublic {
  readonly id: number;
  readonly publicKey: Uint8Array;
}

/** What the relay hands out for a user: identity, signed prekey and at most one one-time prekey. */
export interface PreKeyBundle {
  readonly userId: string;
  readonly identity: PublicIdentity;
  readonly signedPreKey: SignedPreKeyPublic;
  readonly oneTimePreKey?: OneTimePreKeyPublic | undefined;
}

/** The id 0 means "no one-time prekey"; real ids start at 1. */
export const NO_PREKEY = 0;

const signedPreKeyMessage = (identity: PublicIdentity, id: number, pub: Uint8Array): Uint8Array =>
  new Writer(160).fixed(Label.SIGNED_PREKEY).fixed(identity.dhKey).u32(id).fixed(pub).finish();

/** Encodes a bundle: str userId, identity(194), u32 spkId, spk(65), sig(64), u32 opkId, [opk(65)]. */
export function encodePreKeyBundle(b: PreKeyBundle): Uint8Array {
  const w = new Writer(512)
    .str(b.userId)
    .fixed(encodePublicIdentity(b.identity))
    .u32(b.signedPreKey.id)
    .fixed(b.signedPreKey.publicKey)
    .fixed(b.signedPreKey.signature)
    .u32(b.oneTimePreKey?.id ?? NO_PREKEY);
  if (b.oneTimePreKey) w.fixed(b.oneTimePreKey.publicKey);
  return w.finish();
}

/** Decodes a bundle and verifies every key and signature in it; throws INVALID_KEY / BAD_SIGNATURE. */
export function decodePreKeyBundle(bytes: Uint8Array): PreKeyBundle {
  const r = new Reader(bytes);
  const userId = r.str();
  const identity = decodePublicIdentity(r.fixed(194));
  const spkId = r.u32();
  const spk = importPublicKey(r.fixed(65));
  const sig = r.fixed(P256_SIGNATURE_BYTES).slice();
  const opkId = r.u32();
  const opk = opkId === NO_PREKEY ? undefined : { id: opkId, publicKey: importPublicKey(r.fixed(65)) };
  r.end();
  verifyKeyFor(identity.signingKey).assert(signedPreKeyMessage(identity, spkId, spk), sig, 'signed prekey');
  return {
    userId,
    identity,
    signedPreKey: { id: spkId, publicKey: spk, signature: sig },
    oneTimePreKey: opk,
  };
}

interface SignedPreKey {
  readonly id: number;
  readonly keyPair: DhKeyPair;
  readonly signature: Uint8Array;
  readonly createdAt: number;
}

/** How many signed prekeys are kept (current + previous ones for in-flight session starts). */
const SIGNED_PREKEYS_KEPT = 3;

/** The local user's private prekeys. Mutated in place; the caller persists `serialize()`. */
export class PreKeys {
  private readonly signed = new Map<number, SignedPreKey>();
  private readonly oneTime = new Map<number, DhKeyPair>();
  private nextId = 1;
  private currentSignedId = 0;

  /** Prekeys with one fresh signed prekey. */
  static create(identity: Identity, now: number): PreKeys {
    const p = new PreKeys();
    p.rotateSignedPreKey(identity, now);
    return p;
  }

  private allocateId(): number {
    const id = this.nextId;
    this.nextId = id >= 0xfffffffe ? 1 : id + 1;
    return id;
  }

  /** Makes a new signed prekey current; keeps the last few so in-flight session starts still work. */
  rotateSignedPreKey(identity: Identity, now: number): SignedPreKeyPublic {
    const id = this.allocateId();
    const keyPair = DhKeyPair.generate();
    const signature = identity.signing.sign(
      signedPreKeyMessage(identity.publicIdentity, id, keyPair.publicKey),
    );
    this.signed.set(id, { id, keyPair, signature, createdAt: now });
    this.currentSignedId = id;
    while (this.signed.size > SIGNED_PREKEYS_KEPT) this.signed.delete(this.signed.keys().next().value!);
    return this.currentSignedPreKey();
  }

  /** The signed prekey to publish now. */
  currentSignedPreKey(): SignedPreKeyPublic {
    const s = this.signed.get(this.currentSignedId)!;
    return { id: s.id, publicKey: s.keyPair.publicKey, signature: s.signature };
  }

  /** When the current signed prekey was made (for rotation by age). */
  currentSignedPreKeyCreatedAt(): number {
    return this.signed.get(this.currentSignedId)!.createdAt;
  }

  /** Makes `count` new one-time prekeys and returns their public halves to upload. */
  generateOneTimePreKeys(count: number): OneTimePreKeyPublic[] {
    const out: OneTimePreKeyPublic[] = [];
    for (let i = 0; i < count; i++) {
      const id = this.allocateId();
      const kp = DhKeyPair.generate();
      this.oneTime.set(id, kp);
      out.push({ id, publicKey: kp.publicKey });
    }
    return out;
  }

  /**
   * Erases the `n` oldest private one-time prekeys: a session start that names one of them fails with
   * UNKNOWN_PREKEY. (The relay hands out the oldest first, so these are the ones given out longest ago.)
   */
  retireOldestOneTime(n: number): void {
    for (const id of [...this.oneTime.keys()].slice(0, Math.max(0, n))) this.oneTime.delete(id);
  }

  get oneTimeCount(): number {
    return this.oneTime.size;
  }

  /** The signed prekey pair with this id, or UNKNOWN_PREKEY. */
  signedKeyPair(id: number): DhKeyPair {
    const s = this.signed.get(id);
    if (!s) throw new CryptoError(ErrorCode.UNKNOWN_PREKEY, `unknown signed prekey ${id}`);
    return s.keyPair;
  }

  /** The one-time prekey pair with this id, or UNKNOWN_PREKEY (already used or never issued). */
  oneTimeKeyPair(id: number): DhKeyPair {
    const k = this.oneTime.get(id);
    if (!k) throw new CryptoError(ErrorCode.UNKNOWN_PREKEY, `unknown or used one-time prekey ${id}`);
    return k;
  }

  /** Erases a one-time prekey once a session built on it has decrypted a message. */
  consumeOneTimePreKey(id: number): void {
    this.oneTime.delete(id);
  }

  /** Versioned bytes of all private prekeys. */
  serialize(): Uint8Array {
    const w = new Writer(4096).u8(PROTOCOL_VERSION).u32(this.nextId).u32(this.currentSignedId);
    w.u32(this.signed.size);
    for (const s of this.signed.values()) {
      w.u32(s.id).fixed(s.keyPair.privateKeyBytes()).fixed(s.signature).u64(s.createdAt);
    }
    w.u32(this.oneTime.size);
    for (const [id, kp] of this.oneTime) w.u32(id).fixed(kp.privateKeyBytes());
    return w.finish();
  }

  /** Restores `serialize()` output. */
  static deserialize(bytes: Uint8Array): PreKeys {
    try {
      const r = new Reader(bytes);
      if (r.u8() !== PROTOCOL_VERSION) throw new Error('version');
      const p = new PreKeys();
      p.nextId = r.u32();
      p.currentSignedId = r.u32();
      for (let n = r.u32(); n > 0; n--) {
        const id = r.u32();
        const keyPair = DhKeyPair.fromPrivateKey(r.fixed(32));
        const signature = r.fixed(64).slice();
        p.signed.set(id, { id, keyPair, signature, createdAt: r.u64() });
      }
      for (let n = r.u32(); n > 0; n--) {
        const id = r.u32();
        p.oneTime.set(id, DhKeyPair.fromPrivateKey(r.fixed(32)));
      }
      r.end();
      if (!p.signed.has(p.currentSignedId)) throw new Error('no current signed prekey');
      return p;
    } catch {
      throw new StorageError(ErrorCode.BAD_STATE, 'prekey state is corrupt or of another version');
    }
  }
}

/** The X3DH associated data: both ids and identities, and which prekeys were used. */
function x3dhInfo(
  initiatorId: string,
  initiator: PublicIdentity,
  responderId: string,
  responder: PublicIdentity,
  spkId: number,
  opkId: number,
): Uint8Array {
  return new Writer(512)
    .fixed(Label.X3DH)
    .str(initiatorId)
    .fixed(encodePublicIdentity(initiator))
    .str(responderId)
    .fixed(encodePublicIdentity(responder))
    .u32(spkId)
    .u32(opkId)
    .finish();
}

function deriveSharedSecret(dhs: Uint8Array[], info: Uint8Array): Uint8Array {
  const ikm = concatBytes(new Uint8Array(32).fill(0xff), ...dhs);
  const sk = hkdfSha256(ikm, new Uint8Array(32), info, 32);
  wipe(ikm);
  return sk;
}

/** Result of starting a session as the initiator. */
export interface X3DHInitiation {
  readonly sharedSecret: Uint8Array;
  readonly baseKey: Uint8Array;
  /** EK: it doubles as the initiator's first ratchet key pair (see RatchetSession.initiate). */
  readonly ephemeral: DhKeyPair;
  /** DH3 = DH(EK, SPK_B), the first ratchet step's DH output (caller wipes it). */
  readonly dh3: Uint8Array;
  readonly signedPreKeyId: number;
  readonly oneTimePreKeyId: number;
  /** The responder's signed prekey: the initiator's first ratchet peer key. */
  readonly responderRatchetKey: Uint8Array;
}

/** Initiator side: the bundle must come from decodePreKeyBundle (already verified). */
export function x3dhInitiate(identity: Identity, selfId: string, bundle: PreKeyBundle): X3DHInitiation {
  const ek = DhKeyPair.generate();
  const spk = bundle.signedPreKey.publicKey;
  const dhs = [identity.dh.agree(spk), ek.agree(bundle.identity.dhKey), ek.agree(spk)];
  if (bundle.oneTimePreKey) dhs.push(ek.agree(bundle.oneTimePreKey.publicKey));
  const opkId = bundle.oneTimePreKey?.id ?? NO_PREKEY;
  const info = x3dhInfo(
    selfId,
    identity.publicIdentity,
    bundle.userId,
    bundle.identity,
    bundle.signedPreKey.id,
    opkId,
  );
  const sharedSecret = deriveSharedSecret(dhs, info);
  const dh3 = dhs[2]!;
  wipe(dhs[0]!, dhs[1]!, ...dhs.slice(3));
  return {
    sharedSecret,
    ephemeral: ek,
    dh3,
    baseKey: ek.publicKey,
    signedPreKeyId: bundle.signedPreKey.id,
    oneTimePreKeyId: opkId,
    responderRatchetKey: spk,
  };
}

/** Responder side: recomputes SK from the initiator's PREKEY header. Does not consume the prekey. */
export function x3dhRespond(
  identity: Identity,
  prekeys: PreKeys,
  selfId: string,
  initiatorId: string,
  initiator: PublicIdentity,
  signedPreKeyId: number,
  oneTimePreKeyId: number,
  baseKey: Uint8Array,
): { sharedSecret: Uint8Array; signedPreKey: DhKeyPair; dh3: Uint8Array } {
  const spk = prekeys.signedKeyPair(signedPreKeyId);
  // agree() validates the point (OpenSSL refuses points off the curve); no separate import needed.
  const ek = checkPointShape(baseKey);
  const dhs = [spk.agree(initiator.dhKey), identity.dh.agree(ek), spk.agree(ek)];
  if (oneTimePreKeyId !== NO_PREKEY) dhs.push(prekeys.oneTimeKeyPair(oneTimePreKeyId).agree(ek));
  const info = x3dhInfo(
    initiatorId,
    initiator,
    selfId,
    identity.publicIdentity,
    signedPreKeyId,
    oneTimePreKeyId,
  );
  const sharedSecret = deriveSharedSecret(dhs, info);
  const dh3 = dhs[2]!;
  wipe(dhs[0]!, dhs[1]!, ...dhs.slice(3));
  return { sharedSecret, signedPreKey: spk, dh3 };
}

/**
 * Group messages under sender keys (the seeds' design, as libsignal's SenderKey): per (sender, group)
 * a key id, a chain key and a counter. Each message takes a one-time message key from the HMAC hash
 * ratchet, is encrypted once with AES-256-GCM under that key for all members, and is signed with the
 * sender key's own ECDSA P-256 key so that no member can forge another member's messages.
 *
 * Distribution messages (SKDM) travel inside pairwise sessions; this module only encodes them.
 */
import { Reader, Writer, toHex } from '../encoding.js';
import { CryptoError, ErrorCode, ProtocolError, StorageError, UsageError } from '../errors.js';
import {
  CHAIN_MESSAGE_KEY,
  CHAIN_NEXT_KEY,
  DEFAULT_TRANSITION_WINDOW_MS,
  GROUP_MESSAGE_VERSION,
  Label,
  MAX_FORWARD_JUMP,
  MAX_PLAINTEXT_BYTES,
  MAX_SKIPPED_KEYS,
  MessageType,
  PROTOCOL_VERSION,
} from './constants.js';
import { verifyKeyFor } from './identity.js';
import { peekMessageType } from './ratchet.js';
import {
  GCM_TAG_BYTES,
  P256_SIGNATURE_BYTES,
  SigningKeyPair,
  type VerifyKey,
  aesGcmDecrypt,
  aesGcmEncrypt,
  hmacSha256,
  importPublicKey,
  randomBytes,
  wipe,
} from './primitives.js';
import { WorkCost, WorkMeter, tagCheckCost } from './work.js';

// Wire format of a group message (docs/PROTOCOL.md "Group messages"):
//   u8 version = 2 | u8 type = GROUP | str groupId | str senderId | u32 keyId | u32 counter |
//   u32 length | ciphertext || tag | signature(64) over Label.GROUP_SIGNATURE || everything before it
// The signature, checked before anything is decrypted, is what authenticates the header; the message
// key is bound to (sender, key id, counter) by the chain it comes from.

/**
 * Each message key encrypts exactly one message, so one fixed nonce never repeats under a key (as with
 * version 1's derived nonce, a sender that reused a counter would break this; counters only advance).
 */
const GROUP_NONCE = new Uint8Array(12);
const NO_AAD = new Uint8Array(0);

/** A parsed (not yet verified) group message. */
export interface GroupMessage {
  readonly groupId: string;
  readonly senderId: string;
  readonly keyId: number;
  readonly counter: number;
  readonly ciphertext: Uint8Array;
  readonly signed: Uint8Array;
  readonly signature: Uint8Array;
}

/** Parses a group message; a direct message here is WRONG_TYPE. */
export function parseGroupMessage(bytes: Uint8Array): GroupMessage {
  const type = peekMessageType(bytes);
  if (type !== MessageType.GROUP)
    throw new ProtocolError(ErrorCode.WRONG_TYPE, 'direct message on the group path');
  const r = new Reader(bytes);
  r.u8();
  r.u8();
  const groupId = r.str();
  const senderId = r.str();
  const keyId = r.u32();
  const counter = r.u32();
  const ciphertext = r.bytes(MAX_PLAINTEXT_BYTES + GCM_TAG_BYTES);
  if (ciphertext.length < GCM_TAG_BYTES) throw new ProtocolError(ErrorCode.MALFORMED, 'ciphertext too short');
  const signed = bytes.subarray(0, r.offset);
  const signature = r.fixed(P256_SIGNATURE_BYTES);
  r.end();
  return { groupId, senderId, keyId, counter, ciphertext, signed, signature };
}

function signatureInput(signed: Uint8Array): Uint8Array {
  const out = new Uint8Array(Label.GROUP_SIGNATURE.length + signed.length);
  out.set(Label.GROUP_SIGNATURE);
  out.set(signed, Label.GROUP_SIGNATURE.length);
  return out;
}

/** Opens a group message with its one-time message key; BAD_TAG (nothing changed) if it fails. */
function openGroup(mk: Uint8Array, m: GroupMessage): Uint8Array {
  return aesGcmDecrypt(mk, GROUP_NONCE, m.ciphertext, NO_AAD);
}

/** One sender key: id, chain key at `counter`, signing key (private for our own, public for others'). */
class SenderKeyState {
  readonly skipped = new Map<number, Uint8Array>();

  constructor(
    readonly keyId: number,
    public chainKey: Uint8Array,
    public counter: number,
    readonly signingPublic: Uint8Array,
    readonly signing: SigningKeyPair | undefined,
    readonly createdAt: number,
  ) {}

  private verifyKey: VerifyKey | undefined;

  /** The sender key's verification key, kept with the state so each message verifies without lookups. */
  get verifier(): VerifyKey {
    this.verifyKey ??= verifyKeyFor(this.signingPublic);
    return this.verifyKey;
  }

  erase(): void {
    this.chainKey.fill(0);
    for (const k of this.skipped.values()) k.fill(0);
    this.skipped.clear();
  }

  write(w: Writer): void {
    w.u32(this.keyId).fixed(this.chainKey).u32(this.counter).fixed(this.signingPublic).u64(this.createdAt);
    w.u8(this.signing ? 1 : 0);
    if (this.signing) w.fixed(this.signing.privateKeyBytes());
    w.u32(this.skipped.size);
    for (const [i, k] of this.skipped) w.u32(i).fixed(k);
  }

  static read(r: Reader): SenderKeyState {
    const keyId = r.u32();
    const chainKey = r.fixed(32).slice();
    const counter = r.u32();
    const pub = importPublicKey(r.fixed(65));
    const createdAt = r.u64();
    const signing = r.u8() ? SigningKeyPair.fromPrivateKey(r.fixed(32)) : undefined;
    const s = new SenderKeyState(keyId, chainKey, counter, pub, signing, createdAt);
    for (let n = r.u32(); n > 0; n--) s.skipped.set(r.u32(), r.fixed(32).slice());
    return s;
  }
}

/** A distribution message: what a member needs to read one sender's messages from `counter` on. */
export interface SenderKeyDistribution {
  readonly groupId: string;
  readonly senderId: string;
  readonly keyId: number;
  readonly counter: number;
  readonly chainKey: Uint8Array;
  readonly signingKey: Uint8Array;
}

/** Encodes an SKDM: u8 version | str groupId | str senderId | u32 keyId | u32 counter | chainKey | signingKey. */
export function encodeSenderKeyDistribution(d: SenderKeyDistribution): Uint8Array {
  return new Writer(192)
    .u8(PROTOCOL_VERSION)
    .str(d.groupId)
    .str(d.senderId)
    .u32(d.keyId)
    .u32(d.counter)
    .fixed(d.chainKey)
    .fixed(d.signingKey)
    .finish();
}

/** Decodes and validates an SKDM. */
export function decodeSenderKeyDistribution(bytes: Uint8Array): SenderKeyDistribution {
  const r = new Reader(bytes);
  const v = r.u8();
  if (v !== PROTOCOL_VERSION) throw new ProtocolError(ErrorCode.BAD_VERSION, `unsupported version ${v}`);
  const d = {
    groupId: r.str(),
    senderId: r.str(),
    keyId: r.u32(),
    counter: r.u32(),
    chainKey: r.fixed(32).slice(),
    signingKey: importPublicKey(r.fixed(65)),
  };
  r.end();
  return d;
}

/** When our own sender key must be replaced besides membership changes (both optional). */
export interface RotationPolicy {
  readonly maxMessages?: number | undefined;
  readonly maxAgeMs?: number | undefined;
}

interface PeerKeys {
  current: SenderKeyState;
  previous?: SenderKeyState | undefined;
  previousExpiresAt?: number | undefined;
}

/** Key ids of a sender's replaced keys remembered so that a re-sent old SKDM cannot reinstall one. */
const RETIRED_KEY_IDS_KEPT = 32;

/** Result of decrypting a group message. */
export interface GroupDecryptResult {
  readonly senderId: string;
  readonly keyId: number;
  readonly counter: number;
  readonly plaintext: Uint8Array;
}

/**
 * One member's view of one group: its own sender key and every other member's.
 * Time is passed in (`now`, ms) because the core does no I/O.
 */
export class GroupSession {
  private own: SenderKeyState | undefined;
  private rotationNeeded = true;
  private readonly peers = new Map<string, PeerKeys>();
  /** Per sender, the key ids that were replaced, expired or removed (newest last, bounded). */
  private readonly retired = new Map<string, number[]>();
  /** The constant start of our headers (see headerPrefix). */
  private prefix: Uint8Array | undefined;

  constructor(
    readonly groupId: string,
    readonly selfId: string,
    readonly transitionWindowMs: number = DEFAULT_TRANSITION_WINDOW_MS,
  ) {
    if (!(transitionWindowMs >= 0)) throw new RangeError('transitionWindowMs must be >= 0');
  }

  /** Marks that membership changed: the next send must use a fresh sender key. */
  membershipChanged(): void {
    this.rotationNeeded = true;
  }

  /** True when our sender key must be rotated before the next send. */
  needsRotation(now: number, policy: RotationPolicy = {}): boolean {
    const own = this.own;
    if (this.rotationNeeded || !own) return true;
    if (policy.maxMessages !== undefined && own.counter >= policy.maxMessages) return true;
    if (policy.maxAgeMs !== undefined && now - own.createdAt >= policy.maxAgeMs) return true;
    return false;
  }

  /** Makes a fresh own sender key (new key id, chain key and signing key); returns its SKDM. */
  rotate(now: number): Uint8Array {
    this.own?.erase();
    let keyId = 0;
    while (keyId === 0 || keyId === this.own?.keyId) keyId = new DataView(randomBytes(4).buffer).getUint32(0);
    const signing = SigningKeyPair.generate();
    this.own = new SenderKeyState(keyId, randomBytes(32), 0, signing.publicKey, signing, now);
    this.rotationNeeded = false;
    return this.ownDistribution()!;
  }

  /** The SKDM of our current key at its current counter (for a member who needs it again). */
  ownDistribution(): Uint8Array | undefined {
    const o = this.own;
    if (!o) return undefined;
    return encodeSenderKeyDistribution({
      groupId: this.groupId,
      senderId: this.selfId,
      keyId: o.keyId,
      counter: o.counter,
      chainKey: o.chainKey,
      signingKey: o.signingPublic,
    });
  }

  /** Our current key id, if any. */
  get ownKeyId(): number | undefined {
    return this.own?.keyId;
  }

  /** Encrypts and signs one message for every member holding our current key. */
  encrypt(plaintext: Uint8Array): Uint8Array {
    if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext must be a Uint8Array');
    if (plaintext.length > MAX_PLAINTEXT_BYTES)
      throw new ProtocolError(ErrorCode.TOO_LARGE, 'message too large');
    const own = this.own;
    if (!own || this.rotationNeeded) throw new UsageError('sender key must be rotated before sending');
    if (own.counter >= 0xffffffff) throw new UsageError('sender key exhausted; rotate');
    // One buffer holds the signature input and, after its label, the message: nothing is copied twice.
    //   label | header (version, type, groupId, senderId, keyId, counter) | u32 length | sealed | signature
    const prefix = this.headerPrefix();
    const labelBytes = Label.GROUP_SIGNATURE.length;
    const headerEnd = labelBytes + prefix.length + 8;
    const sealedBytes = plaintext.length + GCM_TAG_BYTES;
    const signedEnd = headerEnd + 4 + sealedBytes;
    const buf = new Uint8Array(signedEnd + P256_SIGNATURE_BYTES);
    const view = new DataView(buf.buffer);
    buf.set(Label.GROUP_SIGNATURE);
    buf.set(prefix, labelBytes);
    view.setUint32(headerEnd - 8, own.keyId);
    view.setUint32(headerEnd - 4, own.counter);
    view.setUint32(headerEnd, sealedBytes);
    const mk = hmacSha256(own.chainKey, CHAIN_MESSAGE_KEY);
    buf.set(aesGcmEncrypt(mk, GROUP_NONCE, plaintext, NO_AAD), headerEnd + 4);
    mk.fill(0);
    buf.set(own.signing!.sign(buf.subarray(0, signedEnd)), signedEnd);
    own.chainKey = hmacSha256(own.chainKey, CHAIN_NEXT_KEY);
    own.counter += 1;
    return buf.subarray(labelBytes);
  }

  /** u8 version | u8 GROUP | str groupId | str selfId: the start of every header we send, made once. */
  private headerPrefix(): Uint8Array {
    this.prefix ??= new Writer(160)
      .u8(GROUP_MESSAGE_VERSION)
      .u8(MessageType.GROUP)
      .str(this.groupId)
      .str(this.selfId)
      .finish();
    return this.prefix;
  }

  /**
   * Installs a sender key received (inside a pairwise session) from `from`. A new key id makes the
   * current one "previous" for the transition window; a known or retired key id never rewinds a chain.
   */
  processDistribution(from: string, skdm: Uint8Array, now: number): SenderKeyDistribution {
    const d = decodeSenderKeyDistribution(skdm);
    if (d.groupId !== this.groupId)
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'sender key is for another group');
    if (d.senderId !== from)
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'sender key names another sender');
    if (from === this.selfId) throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'sender key from oneself');
    this.expire(now);
    const entry = this.peers.get(from);
    const state = new SenderKeyState(d.keyId, d.chainKey, d.counter, d.signingKey, undefined, now);
    if (this.retired.get(from)?.includes(d.keyId)) {
      // A key already replaced: reinstalling it would rewind its chain (old messages would decrypt again).
    } else if (!entry) {
      this.peers.set(from, { current: state });
    } else if (entry.current.keyId === d.keyId || entry.previous?.keyId === d.keyId) {
      // Already known: keep the state we have (it may be further along; never rewind).
    } else {
      if (entry.previous) this.retire(from, entry.previous);
      entry.previous = entry.current;
      entry.previousExpiresAt = now + this.transitionWindowMs;
      entry.current = state;
    }
    return d;
  }

  /** Erases every key of a member who left: nothing from them decrypts any more. */
  removeSender(userId: string): void {
    const e = this.peers.get(userId);
    if (!e) return;
    this.retire(userId, e.current);
    if (e.previous) this.retire(userId, e.previous);
    this.peers.delete(userId);
  }

  /** Erases a sender key and remembers its id as retired. */
  private retire(senderId: string, state: SenderKeyState): void {
    state.erase();
    const ids = this.retired.get(senderId) ?? [];
    ids.push(state.keyId);
    if (ids.length > RETIRED_KEY_IDS_KEPT) ids.shift();
    this.retired.set(senderId, ids);
  }

  /** True if we hold a sender key from `userId`. */
  hasSenderKey(userId: string): boolean {
    return this.peers.has(userId);
  }

  /** Erases previous key ids whose transition window has ended. */
  expire(now: number): void {
    for (const [id, e] of this.peers) {
      if (e.previous && e.previousExpiresAt !== undefined && now >= e.previousExpiresAt) {
        this.retire(id, e.previous);
        e.previous = undefined;
        e.previousExpiresAt = undefined;
      }
    }
  }

  /**
   * Verifies and decrypts a group message; typed error and no state change on any failure. The
   * counter is checked against the chain before the signature, and the work is taken from `meter`
   * before any of it is done (docs/PROTOCOL.md "Bounded work").
   */
  decrypt(bytes: Uint8Array, now: number, meter: WorkMeter = new WorkMeter()): GroupDecryptResult {
    const m = parseGroupMessage(bytes);
    if (m.groupId !== this.groupId)
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'message is for another group');
    this.expire(now);
    const entry = this.peers.get(m.senderId);
    if (!entry) throw new CryptoError(ErrorCode.UNKNOWN_KEY_ID, `no sender key from ${m.senderId}`);
    const state =
      entry.current.keyId === m.keyId
        ? entry.current
        : entry.previous?.keyId === m.keyId
          ? entry.previous
          : undefined;
    if (!state) throw new CryptoError(ErrorCode.UNKNOWN_KEY_ID, `unknown or expired key id ${m.keyId}`);
    const stored = m.counter < state.counter ? state.skipped.get(m.counter) : undefined;
    if (m.counter < state.counter && !stored)
      throw new CryptoError(ErrorCode.REPLAY, 'message already received or expired');
    const jump = stored ? 0 : m.counter - state.counter;
    if (jump > MAX_FORWARD_JUMP) throw new CryptoError(ErrorCode.TOO_FAR_AHEAD, 'too many skipped messages');
    meter.take(
      WorkCost.VERIFY +
        (stored ? 0 : (jump + 1) * WorkCost.CHAIN_STEP) +
        tagCheckCost(0, m.ciphertext.length), // no associated data; the price's two HMACs are spare
    );
    state.verifier.assert(signatureInput(m.signed), m.signature, 'group message');

    if (stored) {
      const plaintext = openGroup(stored, m);
      stored.fill(0);
      state.skipped.delete(m.counter);
      return { senderId: m.senderId, keyId: m.keyId, counter: m.counter, plaintext };
    }
    // Chain keys up to the counter; the skipped message keys only once the message proved authentic.
    const keys = [state.chainKey];
    for (let i = 0; i < jump; i++) keys.push(hmacSha256(keys[i]!, CHAIN_NEXT_KEY));
    const last = keys[jump]!;
    try {
      const mk = hmacSha256(last, CHAIN_MESSAGE_KEY);
      let plaintext: Uint8Array;
      try {
        plaintext = openGroup(mk, m);
      } finally {
        mk.fill(0);
      }
      meter.charge(jump * WorkCost.CHAIN_STEP);
      for (let i = 0; i < jump; i++)
        state.skipped.set(state.counter + i, hmacSha256(keys[i]!, CHAIN_MESSAGE_KEY));
      for (const [k, mkOld] of state.skipped) {
        if (state.skipped.size <= MAX_SKIPPED_KEYS) break;
        mkOld.fill(0);
        state.skipped.delete(k);
      }
      state.chainKey = hmacSha256(last, CHAIN_NEXT_KEY);
      state.counter = m.counter + 1;
      return { senderId: m.senderId, keyId: m.keyId, counter: m.counter, plaintext };
    } finally {
      wipe(...keys.slice(1));
    }
  }

  /** Versioned bytes of this group's key state. */
  serialize(): Uint8Array {
    const w = new Writer(1024)
      .u8(PROTOCOL_VERSION)
      .str(this.groupId)
      .str(this.selfId)
      .u64(this.transitionWindowMs);
    w.u8(this.rotationNeeded ? 1 : 0).u8(this.own ? 1 : 0);
    this.own?.write(w);
    w.u32(this.peers.size);
    for (const [id, e] of this.peers) {
      w.str(id);
      e.current.write(w);
      w.u8(e.previous ? 1 : 0);
      if (e.previous) {
        e.previous.write(w);
        w.u64(e.previousExpiresAt ?? 0);
      }
    }
    w.u32(this.retired.size);
    for (const [id, ids] of this.retired) {
      w.str(id).u8(ids.length);
      for (const keyId of ids) w.u32(keyId);
    }
    return w.finish();
  }

  /** Restores `serialize()` output. */
  static deserialize(bytes: Uint8Array): GroupSession {
    try {
      const r = new Reader(bytes);
      if (r.u8() !== PROTOCOL_VERSION) throw new Error('version');
      const g = new GroupSession(r.str(), r.str(), r.u64());
      g.rotationNeeded = r.u8() === 1;
      if (r.u8()) g.own = SenderKeyState.read(r);
      for (let n = r.u32(); n > 0; n--) {
        const id = r.str();
        const current = SenderKeyState.read(r);
        const e: PeerKeys = { current };
        if (r.u8()) {
          e.previous = SenderKeyState.read(r);
          e.previousExpiresAt = r.u64();
        }
        g.peers.set(id, e);
      }
      for (let n = r.u32(); n > 0; n--) {
        const id = r.str();
        const ids: number[] = [];
        for (let k = r.u8(); k > 0; k--) ids.push(r.u32());
        g.retired.set(id, ids);
      }
      r.end();
      return g;
    } catch {
      throw new StorageError(ErrorCode.BAD_STATE, 'group state is corrupt or of another version');
    }
  }

  /** Debug-free description for logs (no key material). */
  describe(): string {
    return `group ${this.groupId}: own key ${this.own ? toHex(new Uint8Array(new Uint32Array([this.own.keyId]).buffer)) : 'none'}, ${this.peers.size} senders`;
  }
}

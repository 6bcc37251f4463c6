/**
 * Pairwise sessions: X3DH setup followed by the Double Ratchet (Signal's Double Ratchet spec,
 * revision 4), on P-256 with HKDF-SHA-256 as the root KDF, HMAC-SHA-256 as the chain KDF and
 * AES-256-GCM per-message keys.
 *
 * Every decryption is computed on the side and committed only after the AEAD tag verifies, so a
 * forged, replayed or corrupted message changes nothing.
 */
import { Reader, Writer, equalBytes, toHex } from '../encoding.js';
import { CryptoError, ErrorCode, ProtocolError, StorageError, UsageError } from '../errors.js';
import {
  CHAIN_MESSAGE_KEY,
  CHAIN_NEXT_KEY,
  Label,
  MAX_ARCHIVED_SESSIONS,
  MAX_FORWARD_JUMP,
  MAX_PLAINTEXT_BYTES,
  MAX_SEEN_BASE_KEYS,
  MAX_SKIPPED_KEYS,
  MessageType,
  GROUP_MESSAGE_VERSION,
  PROTOCOL_VERSION,
} from './constants.js';
import {
  type Identity,
  type PublicIdentity,
  decodePublicIdentity,
  encodePublicIdentity,
} from './identity.js';
import { type PreKeyBundle, type PreKeys, NO_PREKEY, x3dhInitiate, x3dhRespond } from './x3dh.js';
import {
  DhKeyPair,
  GCM_TAG_BYTES,
  aesGcmDecrypt,
  aesGcmEncrypt,
  checkPointShape,
  hkdfSha256,
  hmacSha256,
  importPublicKey,
  wipe,
} from './primitives.js';
import { messageKeys } from './message-keys.js';
import { WorkCost, WorkMeter, tagCheckCost } from './work.js';

// ---------------------------------------------------------------------------------------------
// Wire format of direct messages (docs/PROTOCOL.md "Direct messages")
//
//   u8 version | u8 type (PREKEY or DIRECT) | str senderId | str recipientId
//   [PREKEY only: identity(194) | u32 signedPreKeyId | u32 oneTimePreKeyId | baseKey(65)]
//   ratchetKey(65) | u32 previousCounter | u32 counter
//   ciphertext || tag (the rest)
//
// The header (everything before the ciphertext) is the AEAD's associated data and part of the
// message-key HKDF info.

/** The X3DH parameters carried by PREKEY messages. */
export interface PreKeyHeader {
  readonly identity: PublicIdentity;
  readonly signedPreKeyId: number;
  readonly oneTimePreKeyId: number;
  readonly baseKey: Uint8Array;
}

/** A parsed (not yet authenticated) direct message. */
export interface DirectMessage {
  readonly type: typeof MessageType.PREKEY | typeof MessageType.DIRECT;
  readonly senderId: string;
  readonly recipientId: string;
  readonly preKey?: PreKeyHeader | undefined;
  readonly ratchetKey: Uint8Array;
  readonly previousCounter: number;
  readonly counter: number;
  readonly header: Uint8Array;
  readonly ciphertext: Uint8Array;
}

/** Reads the version and type bytes of any encrypted message; BAD_VERSION / MALFORMED otherwise. */
export function peekMessageType(bytes: Uint8Array): MessageType {
  if (!(bytes instanceof Uint8Array) || bytes.length < 2)
    throw new ProtocolError(ErrorCode.MALFORMED, 'message too short');
  const t = bytes[1];
  if (t !== MessageType.PREKEY && t !== MessageType.DIRECT && t !== MessageType.GROUP) {
    throw new ProtocolError(ErrorCode.MALFORMED, `unknown message type ${t}`);
  }
  const version = t === MessageType.GROUP ? GROUP_MESSAGE_VERSION : PROTOCOL_VERSION;
  if (bytes[0] !== version) throw new ProtocolError(ErrorCode.BAD_VERSION, `unsupported version ${bytes[0]}`);
  return t;
}

/** Parses a direct message; a group message here is WRONG_TYPE. Keys are validated on the curve later. */
export function parseDirectMessage(bytes: Uint8Array): DirectMessage {
  const type = peekMessageType(bytes);
  if (type === MessageType.GROUP)
    throw new ProtocolError(ErrorCode.WRONG_TYPE, 'group message on the direct path');
  const r = new Reader(bytes);
  r.u8();
  r.u8();
  const senderId = r.str();
  const recipientId = r.str();
  let preKey: PreKeyHeader | undefined;
  if (type === MessageType.PREKEY) {
    const identity = decodePublicIdentity(r.fixed(194));
    preKey = { identity, signedPreKeyId: r.u32(), oneTimePreKeyId: r.u32(), baseKey: r.fixed(65).slice() };
  }
  const ratchetKey = r.fixed(65).slice();
  const previousCounter = r.u32();
  const counter = r.u32();
  const header = bytes.slice(0, r.offset);
  const ciphertext = r.rest();
  if (ciphertext.length < GCM_TAG_BYTES) throw new ProtocolError(ErrorCode.MALFORMED, 'ciphertext too short');
  if (ciphertext.length > MAX_PLAINTEXT_BYTES + GCM_TAG_BYTES) {
    throw new ProtocolError(ErrorCode.TOO_LARGE, 'message too large');
  }
  return { type, senderId, recipientId, preKey, ratchetKey, previousCounter, counter, header, ciphertext };
}

function sealWith(mk: Uint8Array, header: Uint8Array, plaintext: Uint8Array): Uint8Array {
  const { key, nonce } = messageKeys(mk, Label.DIRECT_KEYS, header);
  const sealed = aesGcmEncrypt(key, nonce, plaintext, header);
  wipe(key);
  return sealed;
}

function openWith(mk: Uint8Array, msg: DirectMessage): Uint8Array {
  const { key, nonce } = messageKeys(mk, Label.DIRECT_KEYS, msg.header);
  try {
    return aesGcmDecrypt(key, nonce, msg.ciphertext, msg.header);
  } finally {
    wipe(key);
  }
}

/** KDF_RK: (rootKey', chainKey) = HKDF(dh, salt = rootKey, Label.ROOT || str(from) || str(to), 64). */
function kdfRoot(rootKey: Uint8Array, dhOut: Uint8Array, from: string, to: string): [Uint8Array, Uint8Array] {
  const info = new Writer(64).fixed(Label.ROOT).str(from).str(to).finish();
  const okm = hkdfSha256(dhOut, rootKey, info, 64);
  dhOut.fill(0);
  return [okm.slice(0, 32), okm.slice(32, 64)];
}

interface Chain {
  key: Uint8Array;
  index: number;
}

/**
 * Walks `chain` forward to `target` deriving only chain keys (one HMAC per step): the work done before
 * a message is authenticated. Returns the chain keys at indices chain.index .. target (the skipped
 * message keys are derived from them only once the message has proved authentic).
 */
function walk(chain: Chain, target: number): Uint8Array[] {
  const keys = [chain.key];
  let key = chain.key;
  for (let i = chain.index; i < target; i++) {
    key = hmacSha256(key, CHAIN_NEXT_KEY);
    keys.push(key);
  }
  return keys;
}

/** The message keys of the chain keys `keys[0..n)` (indices from..from+n-1), as skipped-key entries. */
function setAside(keys: Uint8Array[], n: number, from: number, ratchetHex: string): [string, Uint8Array][] {
  const out: [string, Uint8Array][] = [];
  for (let i = 0; i < n; i++)
    out.push([`${ratchetHex}:${from + i}`, hmacSha256(keys[i]!, CHAIN_MESSAGE_KEY)]);
  return out;
}

const PREVIOUS_RATCHET_KEYS_KEPT = 8;

/** One Double Ratchet session with one peer. */
export class RatchetSession {
  private rootKey: Uint8Array;
  private sendingKeyPair: DhKeyPair;
  /** Undefined until the next send performs the DH ratchet step (done lazily, see encrypt). */
  private sending: Chain | undefined;
  private receivingKey: Uint8Array | undefined;
  private receiving: Chain | undefined;
  private previousCounter = 0;
  private readonly skipped = new Map<string, Uint8Array>();
  /** Ratchet keys of earlier receiving chains: a message on one of them is a replay, not a DH step. */
  private previousReceivingKeys: string[] = [];
  /** The initiator sends PREKEY messages until the peer's first reply proves the session exists. */
  private pendingPreKey: PreKeyHeader | undefined;

  private constructor(
    readonly selfId: string,
    readonly peerId: string,
    readonly peerIdentity: PublicIdentity,
    /** The X3DH base key, which names this session on both sides. */
    readonly baseKey: Uint8Array,
    rootKey: Uint8Array,
    sendingKeyPair: DhKeyPair,
  ) {
    this.rootKey = rootKey;
    this.sendingKeyPair = sendingKeyPair;
  }

  /** Starts a session with the owner of a verified bundle (X3DH initiator). */
  static initiate(identity: Identity, selfId: string, bundle: PreKeyBundle): RatchetSession {
    if (bundle.userId === selfId) throw new UsageError('cannot open a session with oneself');
    const x = x3dhInitiate(identity, selfId, bundle);
    // The X3DH ephemeral key EK doubles as our first ratchet key: its DH with the responder's signed
    // prekey (their first ratchet key) is DH3, already computed. Saves a key pair and a DH per side;
    // EK is replaced at our next DH ratchet step like any ratchet key (docs/PROTOCOL.md).
    const s = new RatchetSession(
      selfId,
      bundle.userId,
      bundle.identity,
      x.baseKey,
      x.sharedSecret,
      x.ephemeral,
    );
    s.receivingKey = x.responderRatchetKey;
    const [rk, ck] = kdfRoot(x.sharedSecret, x.dh3, selfId, bundle.userId);
    s.rootKey = rk;
    s.sending = { key: ck, index: 0 };
    s.pendingPreKey = {
      identity: identity.publicIdentity,
      signedPreKeyId: x.signedPreKeyId,
      oneTimePreKeyId: x.oneTimePreKeyId,
      baseKey: x.baseKey,
    };
    return s;
  }

  /** Builds the responder's session from a PREKEY message (not yet decrypted; nothing consumed). */
  static respond(identity: Identity, prekeys: PreKeys, selfId: string, msg: DirectMessage): RatchetSession {
    const pk = msg.preKey;
    if (!pk) throw new ProtocolError(ErrorCode.WRONG_TYPE, 'not a PREKEY message');
    if (msg.recipientId !== selfId)
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'message is for another user');
    const { sharedSecret, signedPreKey, dh3 } = x3dhRespond(
      identity,
      prekeys,
      selfId,
      msg.senderId,
      pk.identity,
      pk.signedPreKeyId,
      pk.oneTimePreKeyId,
      pk.baseKey,
    );
    const s = new RatchetSession(selfId, msg.senderId, pk.identity, pk.baseKey, sharedSecret, signedPreKey);
    // The initiator's first ratchet key is its base key EK (see initiate): its first receiving chain
    // comes from DH3 = DH(SPK, EK) without another DH. Sending waits for our own first DH step.
    const [rk, ck] = kdfRoot(sharedSecret, dh3, msg.senderId, selfId);
    s.rootKey = rk;
    s.receivingKey = pk.baseKey.slice();
    s.receiving = { key: ck, index: 0 };
    return s;
  }

  /** True while this side still announces the X3DH parameters (no reply received yet). */
  get isPending(): boolean {
    return this.pendingPreKey !== undefined;
  }

  /** Encrypts one message; each call uses a fresh one-time message key. */
  encrypt(plaintext: Uint8Array): Uint8Array {
    if (!(plaintext instanceof Uint8Array)) throw new TypeError('plaintext must be a Uint8Array');
    if (plaintext.length > MAX_PLAINTEXT_BYTES)
      throw new ProtocolError(ErrorCode.TOO_LARGE, 'message too large');
    if (!this.sending) {
      // Lazy DH ratchet step (Double Ratchet section 3.5, second half): new key pair on first send.
      if (!this.receivingKey) throw new UsageError('session cannot send yet');
      const kp = DhKeyPair.generate();
      const [rk, ck] = kdfRoot(this.rootKey, kp.agree(this.receivingKey), this.selfId, this.peerId);
      this.sendingKeyPair = kp;
      this.rootKey = rk;
      this.sending = { key: ck, index: 0 };
    }
    const chain = this.sending;
    const pk = this.pendingPreKey;
    const w = new Writer(256 + plaintext.length + GCM_TAG_BYTES)
      .u8(PROTOCOL_VERSION)
      .u8(pk ? MessageType.PREKEY : MessageType.DIRECT)
      .str(this.selfId)
      .str(this.peerId);
    if (pk)
      w.fixed(encodePublicIdentity(pk.identity))
        .u32(pk.signedPreKeyId)
        .u32(pk.oneTimePreKeyId)
        .fixed(pk.baseKey);
    w.fixed(this.sendingKeyPair.publicKey).u32(this.previousCounter).u32(chain.index);
    const header = w.finish();
    const mk = hmacSha256(chain.key, CHAIN_MESSAGE_KEY);
    const sealed = sealWith(mk, header, plaintext);
    mk.fill(0);
    if (chain.index >= 0xffffffff) throw new UsageError('sending chain exhausted');
    this.sending = { key: hmacSha256(chain.key, CHAIN_NEXT_KEY), index: chain.index + 1 };
    const out = new Uint8Array(header.length + sealed.length);
    out.set(header);
    out.set(sealed, header.length);
    return out;
  }

  /** True when this session holds the skipped message key of exactly this (ratchet key, counter). */
  hasSkippedKey(ratchetHex: string, counter: number): boolean {
    return this.skipped.has(`${ratchetHex}:${counter}`);
  }

  /**
   * True when this session receives on `ratchetKey`, or did on one of its last receiving chains. Ratchet
   * keys are fresh for every DH step, so a message on such a key can only be for this session.
   */
  knowsRatchetKey(ratchetKey: Uint8Array, ratchetHex: string): boolean {
    return (
      (this.receivingKey !== undefined && equalBytes(ratchetKey, this.receivingKey)) ||
      this.previousReceivingKeys.includes(ratchetHex)
    );
  }

  /**
   * True while the peer owes this session a new ratchet key: we have a sending chain whose key the
   * peer has not answered yet. The peer replaces its ratchet key only after receiving a new one of
   * ours, so at any other time an unknown ratchet key cannot be genuine and is refused without a DH.
   */
  get awaitsRatchetKey(): boolean {
    return this.sending !== undefined;
  }

  /**
   * The unauthenticated work of a DH ratchet step for `msg` (a ratchet key this session does not
   * know), or TOO_FAR_AHEAD when the message would make us set aside more than MAX_FORWARD_JUMP keys.
   */
  ratchetStepCost(msg: DirectMessage): number {
    const oldSkip = this.previousChainRest(msg);
    if (msg.counter > MAX_FORWARD_JUMP || oldSkip + msg.counter > MAX_FORWARD_JUMP) {
      throw new CryptoError(ErrorCode.TOO_FAR_AHEAD, 'too many skipped messages');
    }
    return (
      WorkCost.DH +
      WorkCost.ROOT_KDF +
      (msg.counter + 1) * WorkCost.CHAIN_STEP +
      tagCheckCost(msg.header.length, msg.ciphertext.length)
    );
  }

  /** How many keys of the current receiving chain a DH step for `msg` sets aside (up to its PN). */
  private previousChainRest(msg: DirectMessage): number {
    const chain = this.receiving;
    return chain && msg.previousCounter > chain.index ? msg.previousCounter - chain.index : 0;
  }

  /**
   * Decrypts a parsed message of this session; throws a typed error and changes nothing on failure.
   * Work before the tag check is taken from `meter` first (docs/PROTOCOL.md "Bounded work").
   */
  decrypt(msg: DirectMessage, meter: WorkMeter = new WorkMeter()): Uint8Array {
    if (msg.senderId !== this.peerId || msg.recipientId !== this.selfId) {
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'message is not for this session');
    }
    const ratchetHex = toHex(msg.ratchetKey);
    const tagCost = tagCheckCost(msg.header.length, msg.ciphertext.length);
    const skippedId = `${ratchetHex}:${msg.counter}`;
    const stored = this.skipped.get(skippedId);
    if (stored) {
      meter.take(tagCost);
      const pt = openWith(stored, msg);
      stored.fill(0); // one-time key: erase once used
      this.skipped.delete(skippedId);
      this.pendingPreKey = undefined;
      return pt;
    }

    if (this.receivingKey && equalBytes(msg.ratchetKey, this.receivingKey)) {
      const chain = this.receiving;
      if (!chain) throw new CryptoError(ErrorCode.BAD_TAG, 'no receiving chain for this key');
      if (msg.counter < chain.index)
        throw new CryptoError(ErrorCode.REPLAY, 'message already received or expired');
      const jump = msg.counter - chain.index;
      if (jump > MAX_FORWARD_JUMP)
        throw new CryptoError(ErrorCode.TOO_FAR_AHEAD, 'too many skipped messages');
      meter.take((jump + 1) * WorkCost.CHAIN_STEP + tagCost);
      const keys = walk(chain, msg.counter);
      try {
        const pt = openWith(hmacSha256(keys[jump]!, CHAIN_MESSAGE_KEY), msg);
        // Authentic: set aside the skipped keys and commit.
        meter.charge(jump * WorkCost.CHAIN_STEP);
        const newSkipped = setAside(keys, jump, chain.index, ratchetHex);
        this.receiving = { key: hmacSha256(keys[jump]!, CHAIN_NEXT_KEY), index: msg.counter + 1 };
        this.storeSkipped(newSkipped);
        this.pendingPreKey = undefined;
        return pt;
      } finally {
        wipe(...keys.slice(1));
      }
    }

    // A new ratchet key from the peer: DH ratchet step (section 3.5, first half).
    if (this.previousReceivingKeys.includes(ratchetHex)) {
      throw new CryptoError(ErrorCode.REPLAY, 'message already received or expired');
    }
    if (!this.awaitsRatchetKey) {
      throw new CryptoError(ErrorCode.BAD_TAG, 'this session expects no new ratchet key');
    }
    meter.take(this.ratchetStepCost(msg));
    // agree() validates the point on the curve; only the encoding is checked here.
    const peerKey = checkPointShape(msg.ratchetKey);
    const [rk, ck] = kdfRoot(this.rootKey, this.sendingKeyPair.agree(peerKey), this.peerId, this.selfId);
    const keys = walk({ key: ck, index: 0 }, msg.counter);
    let pt: Uint8Array;
    try {
      pt = openWith(hmacSha256(keys[msg.counter]!, CHAIN_MESSAGE_KEY), msg);
    } catch (e) {
      wipe(rk, ...keys);
      throw e;
    }
    // Authentic: set aside the rest of the old chain (up to PN) and the skipped keys of the new one.
    const oldSkip = this.previousChainRest(msg);
    meter.charge((2 * oldSkip + msg.counter) * WorkCost.CHAIN_STEP);
    const newSkipped: [string, Uint8Array][] = [];
    if (oldSkip > 0) {
      const old = walk(this.receiving!, msg.previousCounter);
      newSkipped.push(...setAside(old, oldSkip, this.receiving!.index, toHex(this.receivingKey!)));
      wipe(...old.slice(1));
    }
    newSkipped.push(...setAside(keys, msg.counter, 0, ratchetHex));
    const next = { key: hmacSha256(keys[msg.counter]!, CHAIN_NEXT_KEY), index: msg.counter + 1 };
    wipe(...keys);
    // Commit.
    if (this.receivingKey) {
      this.previousReceivingKeys.push(toHex(this.receivingKey));
      if (this.previousReceivingKeys.length > PREVIOUS_RATCHET_KEYS_KEPT) this.previousReceivingKeys.shift();
    }
    this.rootKey = rk;
    this.receivingKey = peerKey;
    this.receiving = next;
    this.previousCounter = this.sending?.index ?? this.previousCounter;
    this.sending = undefined;
    this.storeSkipped(newSkipped);
    this.pendingPreKey = undefined;
    return pt;
  }

  private storeSkipped(keys: [string, Uint8Array][]): void {
    // Keep only the newest MAX_SKIPPED_KEYS (libsignal's bound); the oldest are erased first.
    const start = Math.max(0, keys.length - MAX_SKIPPED_KEYS);
    for (let i = start; i < keys.length; i++) this.skipped.set(keys[i]![0], keys[i]![1]);
    for (const id of this.skipped.keys()) {
      if (this.skipped.size <= MAX_SKIPPED_KEYS) break;
      this.skipped.get(id)!.fill(0);
      this.skipped.delete(id);
    }
  }

  /** Number of stored skipped message keys (bounded by MAX_SKIPPED_KEYS). */
  get skippedKeyCount(): number {
    return this.skipped.size;
  }

  /** Versioned bytes of the whole session state. */
  serialize(w: Writer = new Writer(1024)): Uint8Array {
    w.u8(PROTOCOL_VERSION).str(this.selfId).str(this.peerId).fixed(encodePublicIdentity(this.peerIdentity));
    w.fixed(this.baseKey).fixed(this.rootKey).fixed(this.sendingKeyPair.privateKeyBytes());
    w.u8(this.sending ? 1 : 0);
    if (this.sending) w.fixed(this.sending.key).u32(this.sending.index);
    w.u8(this.receivingKey ? 1 : 0);
    if (this.receivingKey) w.fixed(this.receivingKey);
    w.u8(this.receiving ? 1 : 0);
    if (this.receiving) w.fixed(this.receiving.key).u32(this.receiving.index);
    w.u32(this.previousCounter);
    w.u32(this.skipped.size);
    for (const [id, mk] of this.skipped) w.str(id).fixed(mk);
    w.u8(this.previousReceivingKeys.length);
    for (const k of this.previousReceivingKeys) w.str(k);
    const pk = this.pendingPreKey;
    w.u8(pk ? 1 : 0);
    if (pk)
      w.fixed(encodePublicIdentity(pk.identity))
        .u32(pk.signedPreKeyId)
        .u32(pk.oneTimePreKeyId)
        .fixed(pk.baseKey);
    return w.finish();
  }

  /** Reads one session from `r` (inverse of serialize). */
  static read(r: Reader): RatchetSession {
    if (r.u8() !== PROTOCOL_VERSION) throw new Error('version');
    const selfId = r.str();
    const peerId = r.str();
    const peerIdentity = decodePublicIdentity(r.fixed(194));
    const baseKey = r.fixed(65).slice();
    const rootKey = r.fixed(32).slice();
    const kp = DhKeyPair.fromPrivateKey(r.fixed(32));
    const s = new RatchetSession(selfId, peerId, peerIdentity, baseKey, rootKey, kp);
    if (r.u8()) s.sending = { key: r.fixed(32).slice(), index: r.u32() };
    if (r.u8()) s.receivingKey = importPublicKey(r.fixed(65));
    if (r.u8()) s.receiving = { key: r.fixed(32).slice(), index: r.u32() };
    s.previousCounter = r.u32();
    for (let n = r.u32(); n > 0; n--) s.skipped.set(r.str(), r.fixed(32).slice());
    for (let n = r.u8(); n > 0; n--) s.previousReceivingKeys.push(r.str());
    if (r.u8()) {
      s.pendingPreKey = {
        identity: decodePublicIdentity(r.fixed(194)),
        signedPreKeyId: r.u32(),
        oneTimePreKeyId: r.u32(),
        baseKey: r.fixed(65).slice(),
      };
    }
    return s;
  }
}

/** Result of decrypting a direct message through a SessionRecord. */
export interface DirectDecryptResult {
  readonly plaintext: Uint8Array;
  /** The sender's identity as carried by the session (callers compare it with the pinned one). */
  readonly peerIdentity: PublicIdentity;
  /** Set when this message started a new session: the one-time prekey the caller must now erase. */
  readonly consumedOneTimePreKeyId?: number | undefined;
  readonly newSession: boolean;
}

/**
 * All sessions with one peer: the current one plus a few previous ones (simultaneous initiation and
 * in-flight messages), and the X3DH base keys already seen so a replayed session start is refused.
 */
export class SessionRecord {
  private sessions: RatchetSession[] = [];
  private seenBaseKeys: string[] = [];

  constructor(
    readonly selfId: string,
    readonly peerId: string,
  ) {}

  get hasSession(): boolean {
    return this.sessions.length > 0;
  }

  /** The identity of the peer in the current session, if any. */
  get peerIdentity(): PublicIdentity | undefined {
    return this.sessions[0]?.peerIdentity;
  }

  private promote(s: RatchetSession): void {
    if (this.sessions[0] === s) return;
    this.sessions = [s, ...this.sessions.filter((x) => x !== s)].slice(0, 1 + MAX_ARCHIVED_SESSIONS);
  }

  private remember(baseKey: Uint8Array): void {
    const hex = toHex(baseKey);
    if (this.seenBaseKeys.includes(hex)) return;
    this.seenBaseKeys.push(hex);
    if (this.seenBaseKeys.length > MAX_SEEN_BASE_KEYS) this.seenBaseKeys.shift();
  }

  /** Starts a new session from a verified bundle and makes it current. */
  initiate(identity: Identity, bundle: PreKeyBundle): void {
    if (bundle.userId !== this.peerId) throw new UsageError('bundle is for another user');
    const s = RatchetSession.initiate(identity, this.selfId, bundle);
    this.remember(s.baseKey);
    this.promote(s);
  }

  /**
   * Makes the most recent session whose peer identity passes `accept` current (the one `encrypt` uses);
   * false if no session passes. The client uses it so that it only ever encrypts under the pinned key.
   */
  selectSession(accept: (peer: PublicIdentity) => boolean): boolean {
    const s = this.sessions.find((x) => accept(x.peerIdentity));
    if (!s) return false;
    this.promote(s);
    return true;
  }

  /** Erases every session whose peer identity fails `keep` (a rejected or replaced key); returns how many. */
  dropSessions(keep: (peer: PublicIdentity) => boolean): number {
    const before = this.sessions.length;
    this.sessions = this.sessions.filter((s) => keep(s.peerIdentity));
    return before - this.sessions.length;
  }

  /** Encrypts with the current session; UNKNOWN_SESSION if there is none. */
  encrypt(plaintext: Uint8Array): Uint8Array {
    const s = this.sessions[0];
    if (!s) throw new CryptoError(ErrorCode.UNKNOWN_SESSION, `no session with ${this.peerId}`);
    return s.encrypt(plaintext);
  }

  /**
   * Decrypts a direct message from this peer, creating the responder session for a new PREKEY message.
   * Only the sessions that can hold the message are tried, within `meter` (docs/PROTOCOL.md "Bounded
   * work"): the one holding its skipped key or knowing its ratchet key; otherwise, for a new ratchet
   * key, the sessions awaiting one, current first, while the frame's allowance lasts.
   * With `accept`, only sessions whose peer identity passes it are used or created: a PREKEY message
   * under another identity is IDENTITY_CHANGED before anything is computed, and a DIRECT message is
   * tried on the accepted sessions only.
   */
  decrypt(
    identity: Identity,
    prekeys: PreKeys,
    bytes: Uint8Array,
    meter: WorkMeter = new WorkMeter(),
    accept: (peer: PublicIdentity) => boolean = () => true,
  ): DirectDecryptResult {
    // A PREKEY message carries the initiator's identity, whose certificate is verified while parsing.
    if (peekMessageType(bytes) === MessageType.PREKEY) meter.take(WorkCost.VERIFY);
    const msg = parseDirectMessage(bytes);
    if (msg.senderId !== this.peerId || msg.recipientId !== this.selfId) {
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'message is not between these users');
    }
    if (msg.preKey) {
      if (!accept(msg.preKey.identity))
        throw new CryptoError(ErrorCode.IDENTITY_CHANGED, 'message under an identity that is not accepted');
      const existing = this.sessions.find((s) => equalBytes(s.baseKey, msg.preKey!.baseKey));
      if (existing) return this.decryptWith(existing, msg, meter);
      if (this.seenBaseKeys.includes(toHex(msg.preKey.baseKey))) {
        throw new CryptoError(ErrorCode.REPLAY, 'session start already used');
      }
      meter.take(WorkCost.X3DH);
      const s = RatchetSession.respond(identity, prekeys, this.selfId, msg);
      const plaintext = s.decrypt(msg, meter);
      this.remember(s.baseKey);
      this.promote(s);
      const opk = msg.preKey.oneTimePreKeyId;
      if (opk !== NO_PREKEY) prekeys.consumeOneTimePreKey(opk);
      return {
        plaintext,
        peerIdentity: s.peerIdentity,
        consumedOneTimePreKeyId: opk === NO_PREKEY ? undefined : opk,
        newSession: true,
      };
    }
    const usable = this.sessions.filter((s) => accept(s.peerIdentity));
    if (usable.length === 0)
      throw new CryptoError(ErrorCode.UNKNOWN_SESSION, `no session with ${this.peerId}`);
    const hex = toHex(msg.ratchetKey);
    const owner =
      usable.find((s) => s.hasSkippedKey(hex, msg.counter)) ??
      usable.find((s) => s.knowsRatchetKey(msg.ratchetKey, hex));
    if (owner) return this.decryptWith(owner, msg, meter);
    // A ratchet key no session knows: a DH step, tried on each session that awaits one.
    let first: unknown;
    for (const s of usable) {
      if (!s.awaitsRatchetKey) continue;
      let cost: number;
      try {
        cost = s.ratchetStepCost(msg);
      } catch (e) {
        first ??= e;
        continue;
      }
      // Once something was tried, a session beyond the frame's allowance is skipped; on the first
      // attempt the meter itself refuses (E2EE_RATE_LIMITED).
      if (first !== undefined && !meter.fits(cost)) break;
      try {
        return this.decryptWith(s, msg, meter);
      } catch (e) {
        first ??= e;
      }
    }
    throw first ?? new CryptoError(ErrorCode.BAD_TAG, 'no session with this peer expects a new ratchet key');
  }

  private decryptWith(s: RatchetSession, msg: DirectMessage, meter: WorkMeter): DirectDecryptResult {
    const plaintext = s.decrypt(msg, meter);
    this.promote(s);
    return { plaintext, peerIdentity: s.peerIdentity, newSession: false };
  }

  /** Versioned bytes of every session with this peer. */
  serialize(): Uint8Array {
    const w = new Writer(4096).u8(PROTOCOL_VERSION).str(this.selfId).str(this.peerId);
    w.u8(this.sessions.length);
    for (const s of this.sessions) w.bytes(s.serialize());
    w.u32(this.seenBaseKeys.length);
    for (const k of this.seenBaseKeys) w.str(k);
    return w.finish();
  }

  /** Restores `serialize()` output; StorageError if corrupt. */
  static deserialize(bytes: Uint8Array): SessionRecord {
    try {
      const r = new Reader(bytes);
      if (r.u8() !== PROTOCOL_VERSION) throw new Error('version');
      const rec = new SessionRecord(r.str(), r.str());
      for (let n = r.u8(); n > 0; n--) {
        const inner = new Reader(r.bytes());
        const s = RatchetSession.read(inner);
        inner.end();
        rec.sessions.push(s);
      }
      for (let n = r.u32(); n > 0; n--) rec.seenBaseKeys.push(r.str());
      r.end();
      return rec;
    } catch (e) {
      if (e instanceof StorageError) throw e;
      throw new StorageError(ErrorCode.BAD_STATE, 'session state is corrupt or of another version');
    }
  }
}

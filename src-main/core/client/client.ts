/**
 * E2EEClient: the seeds' client API (TsgcWSPClient_E2EE) over the relay wire protocol.
 *
 * It owns every secret: identity (KeyStore), prekeys, pairwise sessions, group sender keys and the
 * dedup/outbox state (StateStore). The relay only ever sees ciphertext. All state changes happen
 * under one lock, in the order frames arrive, and are written in atomic batches before the relay is
 * told that a message was received; a crash therefore never loses or double-shows a message.
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import WebSocket from 'ws';
import {
  Identity,
  decodePublicIdentity,
  encodePublicIdentity,
  safetyNumber,
  sameIdentityKeys,
} from '../crypto/identity.js';
import { PreKeys, decodePreKeyBundle, encodePreKeyBundle } from '../crypto/x3dh.js';
import { SessionRecord } from '../crypto/ratchet.js';
import { GroupSession, type RotationPolicy } from '../crypto/sender-keys.js';
import { randomBytes } from '../crypto/primitives.js';
import { MAX_PLAINTEXT_BYTES } from '../crypto/constants.js';
import { Reader, Writer, utf8Decode, utf8Encode } from '../encoding.js';
import { CryptoError, E2EEError, ErrorCode, ProtocolError, RelayError, UsageError } from '../errors.js';
import {
  type ClientFrame,
  MAX_FRAME_BYTES,
  MAX_PREKEYS_STORED,
  MessageId,
  Name,
  RelayFrame,
  type RelayEvent,
  WIRE_VERSION,
  authSignatureInput,
  b64,
  parseFrameByType,
  unb64,
} from '../protocol/wire.js';
import { ContentType, decodeContent, encodeContent } from './content.js';
import { type KeyStore, MemoryKeyStore, MemoryStateStore, type StateStore } from './stores.js';
import * as v from 'valibot';

/** Options of `new E2EEClient(...)`; defaults are listed beside each. */
export interface E2EEClientOptions {
  /** ws:// or wss:// URL of the relay. */
  url: string;
  userId: string;
  /** Private identity keys (default: in memory). */
  keyStore?: KeyStore | undefined;
  /** Sessions, prekeys, groups (default: in memory). */
  stateStore?: StateStore | undefined;
  /** Send 'delivered' receipts for received direct / group messages (seeds' Ack options; default off). */
  ack?: { rcvDirectMessage?: boolean | undefined; rcvGroupMessage?: boolean | undefined } | undefined;
  /** Reconnect automatically after an unexpected disconnect (default true). */
  reconnect?: boolean | undefined;
  /** Backoff bounds for reconnects (default 250 ms .. 15 s). */
  reconnectDelayMs?: { min: number; max: number } | undefined;
  /** Sender-key rotation besides membership changes (default: none). */
  rotation?: RotationPolicy | undefined;
  /** How long a previous group key id stays valid after rotation (default 60 s). */
  transitionWindowMs?: number | undefined;
  /** Refuse to send to a contact whose identity key changed until approveIdentity() (default false). */
  requireApprovalOnIdentityChange?: boolean | undefined;
  /** Clock in ms (tests). */
  now?: (() => number) | undefined;
  /** Request timeout (default 15 s). */
  requestTimeoutMs?: number | undefined;
}

/** Options of a send. */
export interface SendOptions {
  /** The message id (default: a random UUID); must be fresh, 8-64 of A-Z a-z 0-9 _ -. */
  id?: string | undefined;
}

/** Event payloads, as the seeds name them. */
export interface E2EEClientEvents {
  connect: [];
  disconnect: [{ code: number; reason: string }];
  error: [Error];
  e2eeError: [{ code: string; message: string; from?: string | undefined; group?: string | undefined }];
  message: [{ id: string; from: string; text: string }];
  binaryMessage: [{ id: string; from: string; data: Uint8Array }];
  groupMessage: [{ id: string; group: string; from: string; text: string }];
  groupBinaryMessage: [{ id: string; group: string; from: string; data: Uint8Array }];
  ack: [{ id: string; from: string; to: string; group?: string | undefined; state: 'sent' | 'delivered' }];
  userCreated: [{ userId: string }];
  userDeleted: [{ userId: string }];
  groupCreated: [{ group: string }];
  groupDeleted: [{ group: string }];
  groupJoin: [{ group: string; members: string[] }];
  groupLeave: [{ group: string }];
  groupMemberJoin: [{ group: string; userId: string }];
  groupMemberLeave: [{ group: string; userId: string }];
  /** A contact's identity key differs from the one pinned on first use. */
  identityChanged: [{ userId: string }];
  /** Sender key rotated for a group (a new key id is in use for our next message). */
  keysRotated: [{ group: string }];
}

interface GroupState {
  session: GroupSession;
  members: Set<string>;
  creator: string;
  /** Members our current sender key could not be sent to yet (no session possible): retried before each send. */
  needsKey: Set<string>;
}

interface Pending {
  resolve: (frame: Record<string, unknown>) => void;
  reject: (e: Error) => void;
  timer: NodeJS.Timeout;
}

interface OutboxEntry {
  frame: Extract<ClientFrame, { t: 'send' } | { t: 'groupSend' }>;
  /** Internal messages (sender-key distribution) resolve nobody and emit no ack. */
  internal: boolean;
  /** Queue position: after a restart the outbox is re-sent in this order (keys are random ids). */
  order: number;
}

/** Relay refusals that a retry cannot fix: the message is dropped and its sender told. */
const PERMANENT_SEND_ERRORS = new Set([
  'UNKNOWN_USER',
  'UNKNOWN_GROUP',
  'NOT_A_MEMBER',
  'BAD_FRAME',
  'FORBIDDEN',
]);
/** Relay refusals of the handshake after which reconnecting cannot help. */
const FATAL_HANDSHAKE_ERRORS = new Set(['AUTH_FAILED', 'UNSUPPORTED_VERSION']);
const RETRY_SEND_MS = 1000;
const EARLY_CHECK_MS = 5000;

/** Largest user message: the core's plaintext limit less room for the content header. */
export const MAX_MESSAGE_BYTES = MAX_PLAINTEXT_BYTES - 256;
const ONE_TIME_PREKEY_TARGET = 100;
const ONE_TIME_PREKEY_LOW = 20;
const SIGNED_PREKEY_MAX_AGE_MS = 7 * 24 * 3600 * 1000;
const SEEN_IDS_KEPT = 20_000;
/** Group messages that arrive before their sender's key are held this long for the key to come. */
const EARLY_GROUP_MESSAGE_MS = 30_000;
const EARLY_GROUP_MESSAGES_KEPT = 200;

type DeliverFrame = Extract<RelayFrame, { t: 'deliver' }>;

/** An end-to-end encrypted messaging client (direct and group) over a relay. */
export class E2EEClient extends EventEmitter<E2EEClientEvents> {
  readonly userId: string;
  private readonly opts: E2EEClientOptions;
  private readonly keyStore: KeyStore;
  private readonly stateStore: StateStore;
  private readonly now: () => number;

  private ws: WebSocket | undefined;
  private closedByUser = false;
  private authenticated = false;
  private reconnectTimer: NodeJS.Timeout | undefined;
  private attempts = 0;
  private connectWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  private nextRid = 1;
  private readonly pending = new Map<number, Pending>();
  /** Message ids waiting for the relay's 'sent' ack. */
  private readonly awaitingSent = new Map<
    string,
    { resolve: (id: string) => void; reject: (e: Error) => void }
  >();
  private readonly outbox = new Map<string, OutboxEntry>();

  // Protocol state, loaded by init() and guarded by `lock`.
  private identity: Identity | undefined;
  private prekeys: PreKeys | undefined;
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly groups = new Map<string, GroupState>();
  private readonly pinned = new Map<string, Uint8Array>();
  /** Contacts whose identity changed and is not approved yet, with the new identity (194 bytes). */
  private readonly changedIdentity = new Map<string, Uint8Array>();
  private readonly seen = new Map<string, number>();
  /** Group messages that arrived before their sender key; not acknowledged to the relay until handled. */
  private readonly early: { frame: DeliverFrame; at: number }[] = [];
  private earlyTimer: NodeJS.Timeout | undefined;
  private outboxOrder = 0;
  /** Ids we sent, with their recipient or group, so a receipt is only accepted for a real message. */
  private readonly sentTo = new Map<string, string>();
  private lastRelayError: string | undefined;
  private publishing = false;
  private lock: Promise<unknown> = Promise.resolve();
  private initialized: Promise<void> | undefined;

  constructor(options: E2EEClientOptions) {
    super();
    if (!options || typeof options.url !== 'string' || !/^wss?:\/\//.test(options.url)) {
      throw new TypeError('url must be a ws:// or wss:// URL');
    }
    if (!v.is(Name, options.userId)) throw new TypeError('userId must be 1-64 of A-Z a-z 0-9 . _ -');
    this.opts = options;
    this.userId = options.userId;
    this.keyStore = options.keyStore ?? new MemoryKeyStore();
    this.stateStore = options.stateStore ?? new MemoryStateStore();
    this.now = options.now ?? Date.now;
  }

  // -------------------------------------------------------------------------------------------
  // Public API

  /** Connects and authenticates; resolves once the relay has accepted us. */
  async connect(): Promise<void> {
    this.closedByUser = false;
    await this.init();
    if (this.authenticated) return;
    const done = new Promise<void>((resolve, reject) => this.connectWaiters.push({ resolve, reject }));
    if (!this.ws) this.open();
    return done;
  }

  /** Closes the connection; no reconnect. Pending sends stay in the outbox for the next connect. */
  async close(): Promise<void> {
    this.closedByUser = true;
    clearTimeout(this.reconnectTimer);
    this.reconnectTimer = undefined;
    clearInterval(this.earlyTimer);
    this.earlyTimer = undefined;
    const ws = this.ws;
    if (ws && ws.readyState !== WebSocket.CLOSED) {
      await new Promise<void>((resolve) => {
        ws.once('close', () => resolve());
        ws.close(1000, 'bye');
      });
    }
    await this.lock.catch(() => undefined);
  }

  /** True while authenticated with the relay. */
  get connected(): boolean {
    return this.authenticated;
  }

  /**
   * Sends an encrypted direct message; resolves with its id once the relay has durably accepted it.
   * `options.id` lets the caller choose the message id (a fresh random one, e.g. a UUID) so it can
   * record the message before sending and match its acks, even after a restart resends it from the outbox.
   */
  async sendDirectMessage(to: string, data: string | Uint8Array, options?: SendOptions): Promise<string> {
    this.checkName(to, 'recipient');
    if (to === this.userId) throw new UsageError('cannot send a direct message to yourself');
    const { type, bytes } = this.toContent(data);
    const id = this.messageId(options);
    const sent = this.expectSent(id);
    await this.exclusive(async () => {
      const record = await this.ensureSession(to);
      const body = record.encrypt(encodeContent({ type, id, data: bytes }));
      await this.queueOutgoing({ t: 'send', rid: 0, to, id, body: b64(body) }, false, [
        this.sessionChange(record),
      ]);
    }).catch((e: unknown) => {
      this.awaitingSent.delete(id);
      throw e;
    });
    return sent;
  }

  /** Sends an encrypted, signed group message; rotates and distributes our sender key first if needed. */
  async sendGroupMessage(group: string, data: string | Uint8Array, options?: SendOptions): Promise<string> {
    this.checkName(group, 'group');
    const { type, bytes } = this.toContent(data);
    const id = this.messageId(options);
    const sent = this.expectSent(id);
    await this.exclusive(async () => {
      const g = this.groups.get(group);
      if (!g || !g.members.has(this.userId)) {
        throw new ProtocolError(ErrorCode.NOT_A_MEMBER, `you are not a member of ${group}`);
      }
      await this.rotateIfNeeded(group, g);
      const body = g.session.encrypt(encodeContent({ type, id, data: bytes }));
      await this.queueOutgoing({ t: 'groupSend', rid: 0, group, id, body: b64(body) }, false, [
        this.groupChange(group, g),
      ]);
    }).catch((e: unknown) => {
      this.awaitingSent.delete(id);
      throw e;
    });
    return sent;
  }

  /** Creates a group with us as creator and first member. */
  async createGroup(group: string): Promise<void> {
    this.checkName(group, 'group');
    await this.request({ t: 'createGroup', rid: 0, group });
  }

  /** Joins a group; resolves with its members (a member re-joining changes nothing). */
  async joinGroup(group: string): Promise<{ group: string; members: string[] }> {
    this.checkName(group, 'group');
    const r = await this.request({ t: 'joinGroup', rid: 0, group });
    return { group, members: Array.isArray(r.members) ? (r.members as string[]) : [] };
  }

  /** Leaves a group. */
  async leaveGroup(group: string): Promise<void> {
    this.checkName(group, 'group');
    await this.request({ t: 'leaveGroup', rid: 0, group });
  }

  /** Deletes a group (creator only). */
  async deleteGroup(group: string): Promise<void> {
    this.checkName(group, 'group');
    await this.request({ t: 'deleteGroup', rid: 0, group });
  }

  /** The members of a group as the relay knows them. */
  async groupMembers(group: string): Promise<string[]> {
    this.checkName(group, 'group');
    const r = await this.request({ t: 'members', rid: 0, group });
    return Array.isArray(r.members) ? (r.members as string[]) : [];
  }

  /** Groups we are a member of, with members, from local state. */
  listGroups(): { group: string; creator: string; members: string[] }[] {
    return [...this.groups].map(([group, g]) => ({
      group,
      creator: g.creator,
      members: [...g.members].sort(),
    }));
  }

  /** Our public identity (for safety numbers and display). */
  async publicIdentity(): Promise<Uint8Array> {
    await this.init();
    return encodePublicIdentity(this.identity!.publicIdentity);
  }

  /** The pinned identity of a contact, if we have seen one. */
  contactIdentity(userId: string): Uint8Array | undefined {
    return this.pinned.get(userId);
  }

  /** True if the contact's identity changed since it was pinned and has not been approved. */
  identityChangePending(userId: string): boolean {
    return this.changedIdentity.has(userId);
  }

  /** The safety number with a contact (60 digits), or undefined before any session. */
  safetyNumber(userId: string): string | undefined {
    const theirs = this.pinned.get(userId);
    if (!theirs || !this.identity) return undefined;
    return safetyNumber(this.userId, this.identity.publicIdentity, userId, decodePublicIdentity(theirs));
  }

  /**
   * While a contact's identity change is pending, the safety number with their new key (the one
   * approveIdentity() would accept): what the user compares before accepting. Undefined otherwise.
   */
  async pendingSafetyNumber(userId: string): Promise<string | undefined> {
    await this.init();
    const pending = this.changedIdentity.get(userId);
    if (!pending) return undefined;
    return safetyNumber(this.userId, this.identity!.publicIdentity, userId, decodePublicIdentity(pending));
  }

  /**
   * Deletes our account on the relay (its binding of our user id to our identity, our prekeys and
   * queued messages) and closes the connection. Local state stays; the user id can then be registered
   * again, with a new identity, which contacts see as an identity change.
   */
  async deleteAccount(): Promise<void> {
    await this.request({ t: 'deleteAccount', rid: 0 });
    await this.close();
  }

  /** Accepts a contact's new identity key after a change (the user confirmed it). */
  async approveIdentity(userId: string): Promise<void> {
    await this.exclusive(async () => {
      // The new identity as it was seen (from a bundle or a message), even if no session exists yet.
      const bytes = this.changedIdentity.get(userId);
      if (!bytes) return;
      this.pinned.set(userId, bytes);
      this.changedIdentity.delete(userId);
      await this.stateStore.write(
        new Map<string, Uint8Array | null>([
          [`contact/${userId}`, bytes],
          [`changed/${userId}`, null],
        ]),
      );
    });
  }

  // -------------------------------------------------------------------------------------------
  // State

  private init(): Promise<void> {
    this.initialized ??= this.exclusive(async () => {
      const stored = await this.keyStore.get('identity');
      if (stored) {
        this.identity = Identity.deserialize(stored);
      } else {
        this.identity = Identity.generate();
        await this.keyStore.set('identity', this.identity.serialize());
      }
      const pk = await this.stateStore.get('prekeys');
      this.prekeys = pk ? PreKeys.deserialize(pk) : PreKeys.create(this.identity, this.now());
      if (!pk) await this.stateStore.write(new Map([['prekeys', this.prekeys.serialize()]]));
      for (const key of await this.stateStore.keys('group/')) {
        const bytes = await this.stateStore.get(key);
        if (bytes) this.groups.set(key.slice(6), decodeGroupState(bytes));
      }
      for (const key of await this.stateStore.keys('contact/')) {
        const bytes = await this.stateStore.get(key);
        if (bytes) this.pinned.set(key.slice(8), bytes);
      }
      for (const key of await this.stateStore.keys('changed/')) {
        const bytes = await this.stateStore.get(key);
        if (bytes?.length === 194) this.changedIdentity.set(key.slice(8), bytes);
      }
      // Stored under random ids: restore the dedup list oldest first and the outbox in queue order.
      const seen: [string, number][] = [];
      for (const key of await this.stateStore.keys('seen/')) {
        const b = await this.stateStore.get(key);
        seen.push([key.slice(5), b ? new Reader(b).u64() : 0]);
      }
      for (const [k, at] of seen.sort((a, b) => a[1] - b[1])) this.seen.set(k, at);
      const entries: OutboxEntry[] = [];
      for (const key of await this.stateStore.keys('outbox/')) {
        const b = await this.stateStore.get(key);
        if (b) entries.push(JSON.parse(utf8Decode(b)) as OutboxEntry);
      }
      for (const e of entries.sort((a, b) => a.order - b.order)) {
        this.outbox.set(e.frame.id, e);
        this.outboxOrder = Math.max(this.outboxOrder, e.order);
        this.sentTo.set(e.frame.id, e.frame.t === 'send' ? e.frame.to : e.frame.group);
      }
    });
    return this.initialized;
  }

  /** Runs `fn` after every earlier state operation (one writer at a time, in arrival order). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  private async loadSession(peer: string): Promise<SessionRecord> {
    let r = this.sessions.get(peer);
    if (!r) {
      const bytes = await this.stateStore.get(`session/${peer}`);
      r = bytes ? SessionRecord.deserialize(bytes) : new SessionRecord(this.userId, peer);
      this.sessions.set(peer, r);
    }
    return r;
  }

  private sessionChange(r: SessionRecord): [string, Uint8Array] {
    return [`session/${r.peerId}`, r.serialize()];
  }

  private groupChange(group: string, g: GroupState): [string, Uint8Array] {
    return [`group/${group}`, encodeGroupState(g)];
  }

  /** Pins a contact's identity on first use; flags a change. Returns state changes to write. */
  private pin(userId: string, identityBytes: Uint8Array): [string, Uint8Array | null][] {
    const known = this.pinned.get(userId);
    if (!known) {
      this.pinned.set(userId, identityBytes);
      return [[`contact/${userId}`, identityBytes]];
    }
    if (sameIdentityKeys(decodePublicIdentity(known), decodePublicIdentity(identityBytes))) return [];
    if (!this.changedIdentity.has(userId)) queueMicrotask(() => this.emit('identityChanged', { userId }));
    this.changedIdentity.set(userId, identityBytes);
    if (!this.opts.requireApprovalOnIdentityChange) {
      // Without an approval step the new key is pinned at once; the event still warns the user.
      this.pinned.set(userId, identityBytes);
      this.changedIdentity.delete(userId);
      return [[`contact/${userId}`, identityBytes]];
    }
    return [[`changed/${userId}`, identityBytes]];
  }

  /** A session with `peer`, fetching their prekey bundle from the relay if we have none. */
  private async ensureSession(peer: string): Promise<SessionRecord> {
    const record = await this.loadSession(peer);
    if (this.changedIdentity.has(peer) && this.opts.requireApprovalOnIdentityChange) {
      throw new CryptoError(
        ErrorCode.IDENTITY_CHANGED,
        `${peer}'s security key changed; confirm it before sending`,
      );
    }
    if (record.hasSession) return record;
    const r = await this.request({ t: 'getBundle', rid: 0, userId: peer });
    if (typeof r.bundle !== 'string') throw new ProtocolError(ErrorCode.MALFORMED, 'relay sent no bundle');
    const bundle = decodePreKeyBundle(unb64(r.bundle));
    if (bundle.userId !== peer)
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'bundle is for another user');
    const changes = this.pin(peer, encodePublicIdentity(bundle.identity));
    if (this.changedIdentity.has(peer) && this.opts.requireApprovalOnIdentityChange) {
      await this.stateStore.write(new Map(changes));
      throw new CryptoError(
        ErrorCode.IDENTITY_CHANGED,
        `${peer}'s security key changed; confirm it before sending`,
      );
    }
    record.initiate(this.identity!, bundle);
    await this.stateStore.write(new Map([...changes, this.sessionChange(record)]));
    return record;
  }

  /**
   * Before a group send: a fresh sender key after any membership change, distributed over pairwise
   * sessions to every current member; members it could not reach yet (no session possible, e.g. a
   * key change awaiting confirmation) are remembered and retried before each later send.
   */
  private async rotateIfNeeded(group: string, g: GroupState): Promise<void> {
    if (g.session.needsRotation(this.now(), this.opts.rotation)) {
      g.session.rotate(this.now());
      g.needsKey = new Set([...g.members].filter((m) => m !== this.userId));
      await this.stateStore.write(new Map([this.groupChange(group, g)]));
      this.emit('keysRotated', { group });
    }
    if (g.needsKey.size === 0) return;
    // The SKDM at the current counter: a member who gets it late still reads every later message.
    const skdm = g.session.ownDistribution()!;
    let firstError: unknown;
    for (const member of [...g.needsKey].sort()) {
      try {
        const record = await this.ensureSession(member);
        const id = randomUUID();
        const body = record.encrypt(encodeContent({ type: ContentType.SENDER_KEY, id, group, data: skdm }));
        g.needsKey.delete(member);
        await this.queueOutgoing({ t: 'send', rid: 0, to: member, id, body: b64(body) }, true, [
          this.sessionChange(record),
          this.groupChange(group, g),
        ]);
      } catch (e) {
        firstError ??= e;
        this.e2eeError(e, member, group);
      }
    }
    if (firstError !== undefined && g.needsKey.size === g.members.size - 1 && g.members.size > 1) {
      // Nobody could get the key: sending would reach no one.
      throw firstError;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Sending

  private messageId(options: SendOptions | undefined): string {
    const id = options?.id ?? randomUUID();
    if (!v.is(MessageId, id)) throw new TypeError('id must be 8-64 of A-Z a-z 0-9 _ -');
    if (this.outbox.has(id) || this.awaitingSent.has(id))
      throw new UsageError(`message ${id} is already being sent`);
    return id;
  }

  private checkName(value: unknown, what: string): void {
    if (!v.is(Name, value))
      throw new TypeError(`${what} must be 1-64 of A-Z a-z 0-9 . _ - (starting alphanumeric)`);
  }

  private toContent(data: string | Uint8Array): { type: ContentType; bytes: Uint8Array } {
    let out: { type: ContentType; bytes: Uint8Array };
    if (typeof data === 'string') out = { type: ContentType.TEXT, bytes: utf8Encode(data) };
    else if (data instanceof Uint8Array) out = { type: ContentType.BINARY, bytes: data };
    else throw new TypeError('data must be a string or a Uint8Array');
    if (out.bytes.length > MAX_MESSAGE_BYTES) {
      throw new ProtocolError(ErrorCode.TOO_LARGE, `message is larger than ${MAX_MESSAGE_BYTES} bytes`);
    }
    return out;
  }

  private expectSent(id: string): Promise<string> {
    return new Promise<string>((resolve, reject) => this.awaitingSent.set(id, { resolve, reject }));
  }

  /** Persists the frame in the outbox together with the state it depends on, then transmits it. */
  private async queueOutgoing(
    frame: OutboxEntry['frame'],
    internal: boolean,
    changes: [string, Uint8Array | null][],
  ): Promise<void> {
    const entry: OutboxEntry = { frame, internal, order: ++this.outboxOrder };
    this.outbox.set(frame.id, entry);
    if (!internal) this.rememberSent(frame.id, frame.t === 'send' ? frame.to : frame.group);
    await this.stateStore.write(
      new Map([...changes, [`outbox/${frame.id}`, utf8Encode(JSON.stringify(entry))]]),
    );
    this.transmit(entry);
  }

  private transmit(entry: OutboxEntry): void {
    if (!this.authenticated) return; // resent from the outbox after the next authentication
    entry.frame.rid = this.nextRid++;
    this.sendFrame(entry.frame);
  }

  private sendFrame(frame: ClientFrame): void {
    const ws = this.ws;
    if (!ws || ws.readyState !== WebSocket.OPEN) return;
    ws.send(JSON.stringify(frame));
  }

  private request(frame: Extract<ClientFrame, { rid: number }>): Promise<Record<string, unknown>> {
    if (!this.authenticated) {
      return Promise.reject(new E2EEError(ErrorCode.NOT_CONNECTED, 'not connected to the relay'));
    }
    const rid = this.nextRid++;
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(rid);
        reject(new E2EEError(ErrorCode.NOT_CONNECTED, 'the relay did not answer in time'));
      }, this.opts.requestTimeoutMs ?? 15_000);
      this.pending.set(rid, { resolve, reject, timer });
      this.sendFrame({ ...frame, rid } as ClientFrame);
    });
  }

  // -------------------------------------------------------------------------------------------
  // Connection

  private open(): void {
    const ws = new WebSocket(this.opts.url, { perMessageDeflate: false, maxPayload: MAX_FRAME_BYTES });
    this.ws = ws;
    ws.on('open', () => ws.send(JSON.stringify({ t: 'hello', v: WIRE_VERSION, userId: this.userId })));
    ws.on('message', (data, isBinary) => {
      if (isBinary) return;
      this.onFrame(data.toString());
    });
    ws.on('error', (e) => {
      if (this.listenerCount('error') > 0) this.emit('error', e);
    });
    ws.on('close', (code, reason) => this.onClose(ws, code, reason.toString()));
  }

  private onClose(ws: WebSocket, code: number, reason: string): void {
    if (this.ws !== ws) return;
    this.ws = undefined;
    const wasAuthenticated = this.authenticated;
    this.authenticated = false;
    for (const [rid, p] of this.pending) {
      clearTimeout(p.timer);
      p.reject(new E2EEError(ErrorCode.NOT_CONNECTED, 'connection to the relay closed'));
      this.pending.delete(rid);
    }
    if (wasAuthenticated) this.emit('disconnect', { code, reason });
    // Only a refused identity or version is final; a timeout, rate limit or restart is retried.
    const refusal = this.lastRelayError;
    this.lastRelayError = undefined;
    const fatal = !wasAuthenticated && refusal !== undefined && FATAL_HANDSHAKE_ERRORS.has(refusal);
    // Another connection of this user replaced us: reconnecting would push it off in turn.
    const replaced = code === 1000 && reason === 'replaced';
    if (replaced) this.closedByUser = true;
    if (fatal || this.closedByUser) {
      const waiters = this.connectWaiters.splice(0);
      const err = new RelayError(refusal ?? 'AUTH_FAILED', reason || 'the relay refused the connection');
      for (const w of waiters)
        w.reject(this.closedByUser ? new E2EEError(ErrorCode.NOT_CONNECTED, 'closed') : err);
      if (fatal && !this.closedByUser && this.listenerCount('error') > 0) this.emit('error', err);
      return;
    }
    if (this.opts.reconnect === false) {
      for (const w of this.connectWaiters.splice(0)) {
        w.reject(new E2EEError(ErrorCode.NOT_CONNECTED, 'could not connect to the relay'));
      }
      return;
    }
    const { min, max } = this.opts.reconnectDelayMs ?? { min: 250, max: 15_000 };
    const base = Math.min(max, min * 2 ** Math.min(this.attempts++, 16));
    const jitter = new DataView(randomBytes(4).buffer).getUint32(0) / 2 ** 32;
    this.reconnectTimer = setTimeout(
      () => {
        this.reconnectTimer = undefined;
        if (!this.closedByUser) this.open();
      },
      base * (0.5 + jitter / 2),
    );
  }

  private onFrame(data: string): void {
    const parsed = parseFrameByType(RelayFrame, data);
    if (!parsed.ok) {
      this.emit('e2eeError', { code: ErrorCode.MALFORMED, message: `bad frame from relay: ${parsed.error}` });
      return;
    }
    const f = parsed.value;
    switch (f.t) {
      case 'challenge':
        void this.exclusive(async () => this.authenticate(unb64(f.nonce)));
        return;
      case 'ready':
        void this.exclusive(async () => this.onReady(f)).catch((e: Error) => this.fail(e));
        return;
      case 'ok': {
        const p = this.pending.get(f.rid);
        if (!p) return;
        this.pending.delete(f.rid);
        clearTimeout(p.timer);
        p.resolve(f as Record<string, unknown>);
        return;
      }
      case 'error': {
        if (!this.authenticated) this.lastRelayError = f.code;
        if (f.rid === undefined) {
          if (this.listenerCount('error') > 0) this.emit('error', new RelayError(f.code, f.message));
          return;
        }
        const p = this.pending.get(f.rid);
        if (p) {
          this.pending.delete(f.rid);
          clearTimeout(p.timer);
          p.reject(new RelayError(f.code, f.message));
          return;
        }
        // An error for a transmitted message: drop it only if retrying cannot help.
        for (const [id, entry] of this.outbox) {
          if (entry.frame.rid !== f.rid) continue;
          if (PERMANENT_SEND_ERRORS.has(f.code)) this.dropOutgoing(id, new RelayError(f.code, f.message));
          else setTimeout(() => this.outbox.get(id) === entry && this.transmit(entry), RETRY_SEND_MS).unref();
        }
        return;
      }
      case 'ack':
        this.onSent(f.id, f.to, f.group);
        return;
      case 'preKeysLow':
        if (this.publishing) return; // a burst of bundle fetches: one top-up is enough
        void this.exclusive(async () => this.publishPreKeys(f.count)).catch((e: Error) => this.fail(e));
        return;
      case 'event':
        this.emitEvent(f.event);
        return;
      case 'deliver':
        void this.exclusive(async () => this.onDeliver(f)).catch((e: Error) => this.fail(e));
        return;
    }
  }

  private fail(e: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }

  private authenticate(nonce: Uint8Array): void {
    const id = this.identity!;
    const signature = id.signing.sign(authSignatureInput(this.userId, nonce));
    this.sendFrame({
      t: 'auth',
      identity: b64(encodePublicIdentity(id.publicIdentity)),
      signature: b64(signature),
    });
  }

  private async onReady(f: Extract<RelayFrame, { t: 'ready' }>): Promise<void> {
    this.authenticated = true;
    this.attempts = 0;
    // Membership snapshot: anything that changed while we were away forces a key rotation.
    const changes = new Map<string, Uint8Array | null>();
    const current = new Set(f.groups.map((g) => g.group));
    for (const info of f.groups) {
      const g = this.groups.get(info.group) ?? {
        session: new GroupSession(info.group, this.userId, this.opts.transitionWindowMs),
        members: new Set<string>(),
        creator: info.creator,
        needsKey: new Set<string>(),
      };
      g.creator = info.creator;
      const next = new Set(info.members);
      const same = g.members.size === next.size && [...next].every((m) => g.members.has(m));
      if (!same) {
        for (const m of g.members) if (!next.has(m)) g.session.removeSender(m);
        g.members = next;
        g.session.membershipChanged();
      }
      this.groups.set(info.group, g);
      changes.set(`group/${info.group}`, encodeGroupState(g));
    }
    for (const group of [...this.groups.keys()]) {
      if (!current.has(group)) {
        this.groups.delete(group);
        changes.set(`group/${group}`, null);
      }
    }
    await this.stateStore.write(changes);
    await this.publishPreKeys(f.oneTimePreKeyCount);
    for (const entry of this.outbox.values()) this.transmit(entry);
    clearInterval(this.earlyTimer);
    this.earlyTimer = setInterval(() => {
      void this.exclusive(async () => this.expireEarly()).catch((e: Error) => this.fail(e));
    }, EARLY_CHECK_MS);
    this.earlyTimer.unref();
    this.emit('connect');
    for (const w of this.connectWaiters.splice(0)) w.resolve();
  }

  private async publishPreKeys(count: number): Promise<void> {
    this.publishing = true;
    try {
      await this.publishPreKeysNow(count);
    } finally {
      this.publishing = false;
    }
  }

  private async publishPreKeysNow(count: number): Promise<void> {
    const id = this.identity!;
    const pk = this.prekeys!;
    if (this.now() - pk.currentSignedPreKeyCreatedAt() > SIGNED_PREKEY_MAX_AGE_MS)
      pk.rotateSignedPreKey(id, this.now());
    // Never hold more private one-time prekeys than the relay can store for us (wire MAX_PREKEYS_STORED).
    const room = Math.max(0, MAX_PREKEYS_STORED - pk.oneTimeCount);
    const wanted = count < ONE_TIME_PREKEY_LOW ? ONE_TIME_PREKEY_TARGET - count : 0;
    const fresh = pk.generateOneTimePreKeys(Math.min(wanted, room));
    await this.stateStore.write(new Map([['prekeys', pk.serialize()]]));
    const bundle = b64(
      encodePreKeyBundle({
        userId: this.userId,
        identity: id.publicIdentity,
        signedPreKey: pk.currentSignedPreKey(),
      }),
    );
    for (let i = 0; i === 0 || i < fresh.length; i += 100) {
      const batch = fresh.slice(i, i + 100).map((k) => ({ id: k.id, key: b64(k.publicKey) }));
      await this.request({ t: 'publishPreKeys', rid: 0, bundle, oneTimePreKeys: batch });
    }
  }

  private onSent(id: string, to: string | undefined, group: string | undefined): void {
    const entry = this.outbox.get(id);
    if (!entry) return;
    this.outbox.delete(id);
    void this.stateStore.write(new Map([[`outbox/${id}`, null]])).catch((e: Error) => this.fail(e));
    const waiter = this.awaitingSent.get(id);
    this.awaitingSent.delete(id);
    if (entry.internal) return;
    this.emit('ack', { id, from: this.userId, to: to ?? group ?? '', group, state: 'sent' });
    waiter?.resolve(id);
  }

  private dropOutgoing(id: string, e: Error): void {
    this.outbox.delete(id);
    void this.stateStore.write(new Map([[`outbox/${id}`, null]])).catch((err: Error) => this.fail(err));
    const waiter = this.awaitingSent.get(id);
    this.awaitingSent.delete(id);
    waiter?.reject(e);
  }

  // -------------------------------------------------------------------------------------------
  // Receiving

  private emitEvent(e: RelayEvent): void {
    switch (e.type) {
      case 'userDeleted':
        // Whoever registers this id next has another identity: drop our session so the next send
        // fetches a fresh bundle, where the key change is detected (and, by policy, must be approved).
        void this.exclusive(async () => {
          if (!this.sessions.has(e.userId) && !(await this.stateStore.get(`session/${e.userId}`))) return;
          this.sessions.delete(e.userId);
          await this.stateStore.write(new Map([[`session/${e.userId}`, null]]));
        }).catch((err: Error) => this.fail(err));
        this.emit(e.type, { userId: e.userId });
        return;
      case 'userCreated':
        this.emit(e.type, { userId: e.userId });
        return;
      default:
        // Group events only count when durable (delivered in order with messages); see onDeliver.
        return;
    }
  }

  private received(seq: number): void {
    this.sendFrame({ t: 'received', seq });
  }

  private e2eeError(e: unknown, from?: string, group?: string): void {
    const code = e instanceof E2EEError ? e.code : ErrorCode.MALFORMED;
    const message = e instanceof Error ? e.message : String(e);
    this.emit('e2eeError', { code, message, from, group });
  }

  private async onDeliver(f: DeliverFrame): Promise<void> {
    try {
      if (f.kind === 'event' && f.event) await this.onGroupEvent(f.event);
      else if (f.kind === 'receipt' && f.from && f.id) {
        // Only for a message we sent to that user (or to a group they are in).
        const target = this.sentTo.get(f.id);
        const ok = f.group
          ? target === f.group && this.groups.get(f.group)?.members.has(f.from) === true
          : target === f.from;
        if (ok)
          this.emit('ack', { id: f.id, from: this.userId, to: f.from, group: f.group, state: 'delivered' });
      } else if (f.kind === 'direct') await this.onDirect(f);
      else if (f.kind === 'group' && !(await this.onGroup(f))) return; // held: acknowledged when handled
    } catch (e) {
      if (!(e instanceof E2EEError)) throw e;
      this.e2eeError(e, f.from, f.group);
    }
    this.received(f.seq);
  }

  private seenKey(from: string, id: string): string {
    return `${from}/${id}`;
  }

  private markSeen(from: string, id: string, changes: Map<string, Uint8Array | null>): void {
    const key = this.seenKey(from, id);
    const at = this.now();
    this.seen.set(key, at);
    changes.set(`seen/${key}`, new Writer(8).u64(at).finish());
    if (this.seen.size > SEEN_IDS_KEPT) {
      const oldest = this.seen.keys().next().value!;
      this.seen.delete(oldest);
      changes.set(`seen/${oldest}`, null);
    }
  }

  private async onDirect(f: DeliverFrame): Promise<void> {
    const from = f.from;
    const id = f.id;
    if (!from || !id || !f.body) throw new ProtocolError(ErrorCode.MALFORMED, 'incomplete direct message');
    if (this.seen.has(this.seenKey(from, id))) return; // redelivery of something already handled
    const record = await this.loadSession(from);
    const result = record.decrypt(this.identity!, this.prekeys!, unb64(f.body));
    const changes = new Map<string, Uint8Array | null>([this.sessionChange(record)]);
    if (result.consumedOneTimePreKeyId !== undefined) changes.set('prekeys', this.prekeys!.serialize());
    for (const [k, val] of this.pin(from, encodePublicIdentity(result.peerIdentity))) changes.set(k, val);
    this.markSeen(from, id, changes);
    let content;
    try {
      content = decodeContent(result.plaintext);
      if (content.id !== id)
        throw new ProtocolError(ErrorCode.MALFORMED, 'message id does not match its envelope');
    } catch (e) {
      await this.stateStore.write(changes);
      throw e;
    }
    if (content.type === ContentType.SENDER_KEY) {
      const group = content.group ?? '';
      const g = this.groups.get(group);
      if (!g || !g.members.has(from)) {
        await this.stateStore.write(changes);
        throw new ProtocolError(
          ErrorCode.NOT_A_MEMBER,
          `${from} sent a key for ${group} but is not a member`,
        );
      }
      g.session.processDistribution(from, content.data, this.now());
      changes.set(`group/${group}`, encodeGroupState(g));
      await this.stateStore.write(changes);
      await this.retryEarly(group, from);
      return;
    }
    await this.stateStore.write(changes);
    if (content.type === ContentType.TEXT) this.emit('message', { id, from, text: utf8Decode(content.data) });
    else this.emit('binaryMessage', { id, from, data: content.data });
    if (this.opts.ack?.rcvDirectMessage) this.sendFrame({ t: 'receipt', to: from, id });
  }

  private async onGroup(f: DeliverFrame, retry = false): Promise<boolean> {
    const { from, id, group } = f;
    if (!from || !id || !group || !f.body)
      throw new ProtocolError(ErrorCode.MALFORMED, 'incomplete group message');
    if (this.seen.has(this.seenKey(from, id))) return true;
    const g = this.groups.get(group);
    if (!g || !g.members.has(this.userId))
      throw new ProtocolError(ErrorCode.NOT_A_MEMBER, `not a member of ${group}`);
    if (!g.members.has(from))
      throw new ProtocolError(ErrorCode.NOT_A_MEMBER, `${from} is not a member of ${group}`);
    let result;
    try {
      result = g.session.decrypt(unb64(f.body), this.now());
    } catch (e) {
      // The sender's key may still be on its way (it travels on a pairwise session): hold briefly.
      if (!retry && e instanceof CryptoError && e.code === ErrorCode.UNKNOWN_KEY_ID) {
        this.early.push({ frame: f, at: this.now() });
        if (this.early.length > EARLY_GROUP_MESSAGES_KEPT) this.dropEarly(this.early.shift()!.frame);
        return false;
      }
      throw e;
    }
    if (result.senderId !== from)
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'sender does not match envelope');
    const changes = new Map<string, Uint8Array | null>([[`group/${group}`, encodeGroupState(g)]]);
    this.markSeen(from, id, changes);
    await this.stateStore.write(changes);
    const content = decodeContent(result.plaintext);
    if (content.id !== id || content.type === ContentType.SENDER_KEY) {
      throw new ProtocolError(ErrorCode.MALFORMED, 'group message content does not match its envelope');
    }
    if (content.type === ContentType.TEXT) {
      this.emit('groupMessage', { id, group, from, text: utf8Decode(content.data) });
    } else {
      this.emit('groupBinaryMessage', { id, group, from, data: content.data });
    }
    if (this.opts.ack?.rcvGroupMessage) this.sendFrame({ t: 'receipt', to: from, id, group });
    return true;
  }

  /** Retries held group messages once a sender's key arrives; reports the ones that expired. */
  private async retryEarly(group: string, from: string): Promise<void> {
    const now = this.now();
    const keep: typeof this.early = [];
    for (const item of this.early.splice(0)) {
      if (item.frame.group === group && item.frame.from === from) {
        try {
          await this.onGroup(item.frame, true);
        } catch (e) {
          if (!(e instanceof E2EEError)) throw e;
          this.e2eeError(e, from, group);
        }
        this.received(item.frame.seq);
      } else if (now - item.at > EARLY_GROUP_MESSAGE_MS) {
        this.dropEarly(item.frame);
      } else keep.push(item);
    }
    this.early.push(...keep);
  }

  /** Reports and acknowledges held group messages whose sender key never came. */
  private expireEarly(): void {
    const now = this.now();
    const keep = this.early.filter((item) => now - item.at <= EARLY_GROUP_MESSAGE_MS);
    for (const item of this.early) if (!keep.includes(item)) this.dropEarly(item.frame);
    this.early.splice(0, this.early.length, ...keep);
  }

  private dropEarly(frame: DeliverFrame): void {
    this.e2eeError(
      new CryptoError(ErrorCode.UNKNOWN_KEY_ID, 'no sender key arrived for this message'),
      frame.from,
      frame.group,
    );
    this.received(frame.seq);
  }

  private rememberSent(id: string, to: string): void {
    this.sentTo.set(id, to);
    if (this.sentTo.size > SEEN_IDS_KEPT) this.sentTo.delete(this.sentTo.keys().next().value!);
  }

  private async onGroupEvent(e: RelayEvent): Promise<void> {
    const changes = new Map<string, Uint8Array | null>();
    switch (e.type) {
      case 'groupCreated': {
        const g = this.newGroup(e.group, this.userId, [this.userId]);
        changes.set(`group/${e.group}`, encodeGroupState(g));
        await this.stateStore.write(changes);
        this.emit('groupCreated', { group: e.group });
        return;
      }
      case 'groupJoin': {
        const existing = this.groups.get(e.group);
        const g = existing ?? this.newGroup(e.group, '', e.members);
        g.members = new Set(e.members);
        g.session.membershipChanged();
        this.groups.set(e.group, g);
        changes.set(`group/${e.group}`, encodeGroupState(g));
        await this.stateStore.write(changes);
        this.emit('groupJoin', { group: e.group, members: [...e.members] });
        return;
      }
      case 'groupMemberJoin':
      case 'groupMemberLeave': {
        const g = this.groups.get(e.group);
        if (g) {
          if (e.type === 'groupMemberJoin') g.members.add(e.userId);
          else {
            g.members.delete(e.userId);
            g.needsKey.delete(e.userId);
            g.session.removeSender(e.userId);
          }
          g.session.membershipChanged();
          changes.set(`group/${e.group}`, encodeGroupState(g));
          await this.stateStore.write(changes);
        }
        this.emit(e.type, { group: e.group, userId: e.userId });
        return;
      }
      case 'groupLeave':
      case 'groupDeleted': {
        this.groups.delete(e.group);
        changes.set(`group/${e.group}`, null);
        await this.stateStore.write(changes);
        this.emit(e.type, { group: e.group });
        return;
      }
      case 'userCreated':
      case 'userDeleted':
        this.emit(e.type, { userId: e.userId });
        return;
    }
  }

  private newGroup(group: string, creator: string, members: string[]): GroupState {
    const g: GroupState = {
      session: new GroupSession(group, this.userId, this.opts.transitionWindowMs),
      members: new Set(members),
      creator,
      needsKey: new Set<string>(),
    };
    this.groups.set(group, g);
    return g;
  }
}

function encodeGroupState(g: GroupState): Uint8Array {
  const w = new Writer(1024).u8(1).bytes(g.session.serialize()).str(g.creator).u32(g.members.size);
  for (const m of g.members) w.str(m);
  w.u32(g.needsKey.size);
  for (const m of g.needsKey) w.str(m);
  return w.finish();
}

function decodeGroupState(bytes: Uint8Array): GroupState {
  const r = new Reader(bytes);
  if (r.u8() !== 1) throw new ProtocolError(ErrorCode.BAD_STATE, 'unknown group state version');
  const session = GroupSession.deserialize(r.bytes());
  const creator = r.str();
  const members = new Set<string>();
  for (let n = r.u32(); n > 0; n--) members.add(r.str());
  const needsKey = new Set<string>();
  for (let n = r.u32(); n > 0; n--) needsKey.add(r.str());
  r.end();
  return { session, members, creator, needsKey };
}

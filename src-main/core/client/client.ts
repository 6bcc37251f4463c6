/**
 * E2EEClient: the seeds' client API (TsgcWSPClient_E2EE) over the relay wire protocol.
 *
 * It owns every secret: identity (KeyStore), prekeys, pairwise sessions, group sender keys and the
 * dedup/outbox state (StateStore). The relay only ever sees ciphertext. All state changes happen
 * under one lock, in the order frames arrive, and are written in atomic batches before the relay is
 * told that a message was received; a crash therefore never loses or double-shows a message.
 *
 * This file holds the public API, state loading, the lock and the sender-key distribution that ties
 * sessions to groups. Beside it: the relay connection (connection.ts), our keys and pairwise sessions
 * (sessions.ts), identity pinning (trust.ts), group state (groups.ts), the outbox (outbox.ts) and
 * receiving (inbox.ts).
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { decodePublicIdentity, encodePublicIdentity, safetyNumber } from '../crypto/identity.js';
import type { RotationPolicy } from '../crypto/sender-keys.js';
import { MAX_PLAINTEXT_BYTES } from '../crypto/constants.js';
import { utf8Encode } from '../encoding.js';
import { ErrorCode, ProtocolError, UsageError } from '../errors.js';
import { Name, type RelayEvent, type RelayFrame, authSignatureInput, b64, unb64 } from '../protocol/wire.js';
import { RelayConnection, type RelayPush } from './connection.js';
import { ContentType, encodeContent } from './content.js';
import { type GroupState, Groups } from './groups.js';
import { Inbox, e2eeErrorEvent } from './inbox.js';
import { Outbox } from './outbox.js';
import { Sessions } from './sessions.js';
import { type KeyStore, MemoryKeyStore, MemoryStateStore, type StateStore } from './stores.js';
import { ContactTrust } from './trust.js';
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
  /**
   * The connection (or an attempt to open it) ended and the next attempt starts in `delayMs`;
   * `attempt` counts the attempts since the last successful connection.
   */
  reconnecting: [{ attempt: number; delayMs: number }];
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
  groupJoin: [{ group: string; creator: string; members: string[] }];
  groupLeave: [{ group: string }];
  groupMemberJoin: [{ group: string; userId: string }];
  groupMemberLeave: [{ group: string; userId: string }];
  /** A contact's identity key differs from the one pinned on first use. */
  identityChanged: [{ userId: string }];
  /** Sender key rotated for a group (a new key id is in use for our next message). */
  keysRotated: [{ group: string }];
}

/** How often held group messages are checked for expiry. */
const EARLY_CHECK_MS = 5000;
/** Delivered frames are handled for at most this long before the event loop gets a turn. */
const DELIVER_SLICE_MS = 10;

/** Largest user message: the core's plaintext limit less room for the content header. */
export const MAX_MESSAGE_BYTES = MAX_PLAINTEXT_BYTES - 256;

/** An end-to-end encrypted messaging client (direct and group) over a relay. */
export class E2EEClient extends EventEmitter<E2EEClientEvents> {
  readonly userId: string;
  private readonly keyStore: KeyStore;
  private readonly stateStore: StateStore;
  private readonly now: () => number;
  private readonly relay: RelayConnection;

  // Protocol state, loaded by init() and guarded by `lock`.
  private readonly sessions: Sessions;
  private readonly trust: ContactTrust;
  private readonly groups: Groups;
  private readonly outbox: Outbox;
  private readonly inbox: Inbox;
  private earlyTimer: NodeJS.Timeout | undefined;
  /** When the handling of delivered frames last took the event loop back (performance.now()). */
  private sliceStart = 0;
  private lock: Promise<unknown> = Promise.resolve();
  private initialized: Promise<void> | undefined;

  constructor(options: E2EEClientOptions) {
    super();
    if (!options || typeof options.url !== 'string' || !/^wss?:\/\//.test(options.url)) {
      throw new TypeError('url must be a ws:// or wss:// URL');
    }
    if (!v.is(Name, options.userId)) throw new TypeError('userId must be 1-64 of A-Z a-z 0-9 . _ -');
    this.userId = options.userId;
    this.keyStore = options.keyStore ?? new MemoryKeyStore();
    this.stateStore = options.stateStore ?? new MemoryStateStore();
    this.now = options.now ?? Date.now;
    this.relay = new RelayConnection(this.userId, options, {
      frame: (f) => this.onFrame(f),
      refused: (rid, code, message) => this.outbox.refused(rid, code, message),
      malformed: (problem) =>
        this.emit('e2eeError', { code: ErrorCode.MALFORMED, message: `bad frame from relay: ${problem}` }),
      disconnect: (code, reason) => this.emit('disconnect', { code, reason }),
      error: (e) => this.fail(e),
      retry: (attempt, delayMs) => this.emit('reconnecting', { attempt, delayMs }),
    });
    this.trust = new ContactTrust(options, (userId) => this.emit('identityChanged', { userId }));
    this.sessions = new Sessions(
      this.userId,
      this.stateStore,
      this.trust,
      (frame) => this.relay.request(frame),
      this.now,
    );
    this.groups = new Groups(this.userId, options, this.now);
    this.outbox = new Outbox(
      this.stateStore,
      (frame) => this.relay.transmit(frame),
      (e) => this.fail(e),
    );
    this.inbox = new Inbox({
      userId: this.userId,
      opts: options,
      now: this.now,
      store: this.stateStore,
      sessions: this.sessions,
      groups: this.groups,
      trust: this.trust,
      outbox: this.outbox,
      events: this,
      send: (frame) => this.relay.send(frame),
    });
  }

  // -------------------------------------------------------------------------------------------
  // Public API

  /** Connects and authenticates; resolves once the relay has accepted us. */
  async connect(): Promise<void> {
    this.relay.resume();
    await this.init();
    if (this.relay.isAuthenticated) return;
    return this.relay.waitForReady();
  }

  /** Closes the connection; no reconnect. Pending sends stay in the outbox for the next connect. */
  async close(): Promise<void> {
    clearInterval(this.earlyTimer);
    this.earlyTimer = undefined;
    await this.relay.close();
    await this.lock.catch(() => undefined);
  }

  /** True while authenticated with the relay. */
  get connected(): boolean {
    return this.relay.isAuthenticated;
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
    const id = this.outbox.newId(options?.id);
    const sent = this.outbox.expectSent(id);
    await this.exclusive(async () => {
      const record = await this.sessions.ensure(to);
      const body = record.encrypt(encodeContent({ type, id, data: bytes }));
      await this.outbox.queue({ t: 'send', rid: 0, to, id, body: b64(body) }, false, [
        this.sessions.entry(record),
      ]);
    }).catch((e: unknown) => {
      this.outbox.abandon(id);
      throw e;
    });
    return sent;
  }

  /** Sends an encrypted, signed group message; rotates and distributes our sender key first if needed. */
  async sendGroupMessage(group: string, data: string | Uint8Array, options?: SendOptions): Promise<string> {
    this.checkName(group, 'group');
    const { type, bytes } = this.toContent(data);
    const id = this.outbox.newId(options?.id);
    const sent = this.outbox.expectSent(id);
    await this.exclusive(async () => {
      const g = this.groups.get(group);
      if (!g || !g.members.has(this.userId)) {
        throw new ProtocolError(ErrorCode.NOT_A_MEMBER, `you are not a member of ${group}`);
      }
      await this.rotateIfNeeded(group, g);
      const body = g.session.encrypt(encodeContent({ type, id, data: bytes }));
      await this.outbox.queue({ t: 'groupSend', rid: 0, group, id, body: b64(body) }, false, [
        this.groups.entry(group, g),
      ]);
    }).catch((e: unknown) => {
      this.outbox.abandon(id);
      throw e;
    });
    return sent;
  }

  /** Creates a group with us as creator and first member. */
  async createGroup(group: string): Promise<void> {
    this.checkName(group, 'group');
    await this.relay.request({ t: 'createGroup', rid: 0, group });
  }

  /**
   * Joins a group; resolves with its creator and members (a member re-joining changes nothing). The
   * creator is '' only from a relay that does not send it and before its join event arrived.
   */
  async joinGroup(group: string): Promise<{ group: string; creator: string; members: string[] }> {
    this.checkName(group, 'group');
    const r = await this.relay.request({ t: 'joinGroup', rid: 0, group });
    const creator = v.is(Name, r.creator) ? r.creator : (this.groups.get(group)?.creator ?? '');
    return { group, creator, members: Array.isArray(r.members) ? (r.members as string[]) : [] };
  }

  /** Leaves a group. */
  async leaveGroup(group: string): Promise<void> {
    this.checkName(group, 'group');
    await this.relay.request({ t: 'leaveGroup', rid: 0, group });
  }

  /** Deletes a group (creator only). */
  async deleteGroup(group: string): Promise<void> {
    this.checkName(group, 'group');
    await this.relay.request({ t: 'deleteGroup', rid: 0, group });
  }

  /** The members of a group as the relay knows them. */
  async groupMembers(group: string): Promise<string[]> {
    this.checkName(group, 'group');
    const r = await this.relay.request({ t: 'members', rid: 0, group });
    return Array.isArray(r.members) ? (r.members as string[]) : [];
  }

  /** Groups we are a member of, with members, from local state. */
  listGroups(): { group: string; creator: string; members: string[] }[] {
    return this.groups.list();
  }

  /** Our public identity (for safety numbers and display). */
  async publicIdentity(): Promise<Uint8Array> {
    await this.init();
    return encodePublicIdentity(this.sessions.identity!.publicIdentity);
  }

  /** The pinned identity of a contact, if we have seen one. */
  contactIdentity(userId: string): Uint8Array | undefined {
    return this.trust.pinnedIdentity(userId);
  }

  /** True if the contact's identity changed since it was pinned and has not been approved. */
  identityChangePending(userId: string): boolean {
    return this.trust.pendingIdentity(userId) !== undefined;
  }

  /** The safety number with a contact (60 digits), or undefined before any session. */
  safetyNumber(userId: string): string | undefined {
    const theirs = this.trust.pinnedIdentity(userId);
    const identity = this.sessions.identity;
    if (!theirs || !identity) return undefined;
    return safetyNumber(this.userId, identity.publicIdentity, userId, decodePublicIdentity(theirs));
  }

  /**
   * While a contact's identity change is pending, the safety number with their new key (the one
   * approveIdentity() would accept): what the user compares before accepting. Undefined otherwise.
   */
  async pendingSafetyNumber(userId: string): Promise<string | undefined> {
    await this.init();
    const pending = this.trust.pendingIdentity(userId);
    if (!pending) return undefined;
    return safetyNumber(
      this.userId,
      this.sessions.identity!.publicIdentity,
      userId,
      decodePublicIdentity(pending),
    );
  }

  /**
   * Deletes our account on the relay (its binding of our user id to our identity, our prekeys and
   * queued messages) and closes the connection. Local state stays; the user id can then be registered
   * again, with a new identity, which contacts see as an identity change.
   */
  async deleteAccount(): Promise<void> {
    await this.relay.request({ t: 'deleteAccount', rid: 0 });
    await this.close();
  }

  /** Accepts a contact's new identity key after a change (the user confirmed it). */
  async approveIdentity(userId: string): Promise<void> {
    await this.exclusive(async () => {
      const changes = this.trust.approve(userId);
      if (changes.length > 0) await this.stateStore.write(new Map(changes));
    });
  }

  // -------------------------------------------------------------------------------------------
  // State

  private init(): Promise<void> {
    this.initialized ??= this.exclusive(async () => {
      await this.sessions.loadKeys(this.keyStore);
      await this.groups.load(this.stateStore);
      await this.trust.load(this.stateStore);
      await this.inbox.load();
      await this.outbox.load();
    });
    return this.initialized;
  }

  /** Runs `fn` after every earlier state operation (one writer at a time, in arrival order). */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.lock.then(fn, fn);
    this.lock = run.catch(() => undefined);
    return run;
  }

  /**
   * Before a group send: a fresh sender key after any membership change, distributed over pairwise
   * sessions to every current member; members it could not reach yet (no session possible, e.g. a
   * key change awaiting confirmation) are remembered and retried before each later send.
   */
  private async rotateIfNeeded(group: string, g: GroupState): Promise<void> {
    if (this.groups.rotateIfDue(g)) {
      await this.stateStore.write(new Map([this.groups.entry(group, g)]));
      this.emit('keysRotated', { group });
    }
    if (g.needsKey.size === 0) return;
    // The SKDM at the current counter: a member who gets it late still reads every later message.
    const skdm = g.session.ownDistribution()!;
    let firstError: unknown;
    for (const member of [...g.needsKey].sort()) {
      try {
        const record = await this.sessions.ensure(member);
        const id = randomUUID();
        const body = record.encrypt(encodeContent({ type: ContentType.SENDER_KEY, id, group, data: skdm }));
        g.needsKey.delete(member);
        await this.outbox.queue({ t: 'send', rid: 0, to: member, id, body: b64(body) }, true, [
          this.sessions.entry(record),
          this.groups.entry(group, g),
        ]);
      } catch (e) {
        firstError ??= e;
        this.emit('e2eeError', e2eeErrorEvent(e, member, group));
      }
    }
    if (firstError !== undefined && g.needsKey.size === g.members.size - 1 && g.members.size > 1) {
      // Nobody could get the key: sending would reach no one.
      throw firstError;
    }
  }

  // -------------------------------------------------------------------------------------------
  // Sending

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

  private onSent(id: string, to: string | undefined, group: string | undefined): void {
    const taken = this.outbox.take(id);
    if (!taken || taken.entry.internal) return;
    this.emit('ack', { id, from: this.userId, to: to ?? group ?? '', group, state: 'sent' });
    taken.waiter?.resolve(id);
  }

  // -------------------------------------------------------------------------------------------
  // Connection

  private onFrame(f: RelayPush): void {
    switch (f.t) {
      case 'challenge':
        void this.exclusive(async () => this.authenticate(unb64(f.nonce)));
        return;
      case 'ready':
        void this.exclusive(async () => this.onReady(f)).catch((e: Error) => this.fail(e));
        return;
      case 'ack':
        this.onSent(f.id, f.to, f.group);
        return;
      case 'preKeysLow':
        if (this.sessions.isPublishing) return; // a burst of bundle fetches: one top-up is enough
        void this.exclusive(async () => this.sessions.publishPreKeys(f.count)).catch((e: Error) =>
          this.fail(e),
        );
        return;
      case 'event':
        this.emitEvent(f.event);
        return;
      case 'deliver':
        void this.exclusive(async () => {
          // A burst of delivered frames (a flood, forged or not) hands the event loop back every
          // DELIVER_SLICE_MS, so the process stays responsive (docs/PROTOCOL.md "Bounded work").
          if (performance.now() - this.sliceStart >= DELIVER_SLICE_MS) {
            await new Promise<void>((resolve) => setImmediate(resolve));
            this.sliceStart = performance.now();
          }
          return this.inbox.deliver(f);
        }).catch((e: Error) => this.fail(e));
        return;
    }
  }

  private fail(e: Error): void {
    if (this.listenerCount('error') > 0) this.emit('error', e);
  }

  private authenticate(nonce: Uint8Array): void {
    const id = this.sessions.identity!;
    const signature = id.signing.sign(authSignatureInput(this.userId, nonce));
    this.relay.send({
      t: 'auth',
      identity: b64(encodePublicIdentity(id.publicIdentity)),
      signature: b64(signature),
    });
  }

  private async onReady(f: Extract<RelayFrame, { t: 'ready' }>): Promise<void> {
    this.relay.markAuthenticated();
    // Membership snapshot: anything that changed while we were away forces a key rotation.
    await this.stateStore.write(this.groups.sync(f.groups));
    await this.sessions.publishPreKeys(f.oneTimePreKeyCount);
    this.outbox.flush();
    clearInterval(this.earlyTimer);
    this.earlyTimer = setInterval(() => {
      void this.exclusive(async () => this.inbox.expireEarly()).catch((e: Error) => this.fail(e));
    }, EARLY_CHECK_MS);
    this.earlyTimer.unref();
    this.emit('connect');
    this.relay.notifyReady();
  }

  /** Live user events; durable group events arrive in 'deliver' frames (inbox.ts). */
  private emitEvent(e: RelayEvent): void {
    switch (e.type) {
      case 'userDeleted':
        // Whoever registers this id next has another identity: drop our session so the next send
        // fetches a fresh bundle, where the key change is detected (and, by policy, must be approved).
        void this.exclusive(async () => this.sessions.forget(e.userId)).catch((err: Error) => this.fail(err));
        this.emit(e.type, { userId: e.userId });
        return;
      case 'userCreated':
        this.emit(e.type, { userId: e.userId });
        return;
      default:
        // Group events only count when durable (delivered in order with messages); see Inbox.deliver.
        return;
    }
  }
}

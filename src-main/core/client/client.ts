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
 * (sessions.ts), identity pinning and key-change decisions (trust.ts), messages held while one is
 * pending (held.ts), group state (groups.ts), the outbox (outbox.ts) and receiving (inbox.ts).
 */
import { EventEmitter } from 'node:events';
import { randomUUID } from 'node:crypto';
import { decodePublicIdentity, encodePublicIdentity, safetyNumber } from '../crypto/identity.js';
import type { RotationPolicy } from '../crypto/sender-keys.js';
import { MAX_PLAINTEXT_BYTES } from '../crypto/constants.js';
import { utf8Encode } from '../encoding.js';
import { CryptoError, ErrorCode, ProtocolError, UsageError } from '../errors.js';
import { Name, type RelayEvent, type RelayFrame, authSignatureInput, b64, unb64 } from '../protocol/wire.js';
import { RelayConnection, type RelayPush } from './connection.js';
import { ContentType, encodeContent } from './content.js';
import { type GroupState, Groups } from './groups.js';
import { HeldMessages } from './held.js';
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
  /**
   * Wait for the user's decision when a contact's identity key changes (default true): sending to them
   * is refused and what comes under the new key is held until approveIdentity() or rejectIdentity().
   * With false, a new key is pinned at once (the 'identityChanged' event still reports it).
   */
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
  /**
   * A contact's identity key differs from the pinned one: a new pending key (every new one is reported,
   * also a second one while one is pending), or, without approval, the key pinned now. `safetyNumber`
   * is the 60-digit number with that key: the one approveIdentity() must be given.
   */
  identityChanged: [{ userId: string; safetyNumber: string }];
  /** How many messages from a contact are held while their key change is pending (0 once decided). */
  messagesHeld: [{ userId: string; count: number }];
  /** Sender key rotated for a group (a new key id is in use for our next message). */
  keysRotated: [{ group: string }];
}

/** The 60 digits of a safety number as a person may type them (spaces between groups); TypeError otherwise. */
function normalizeSafetyNumber(value: unknown): string {
  if (typeof value !== 'string') throw new TypeError('safetyNumber must be a string of 60 digits');
  const digits = value.replace(/\s+/g, '');
  if (!/^\d{60}$/.test(digits)) throw new TypeError('safetyNumber must be 60 digits (spaces allowed)');
  return digits;
}

/** How often held group messages are checked for expiry. */
const EARLY_CHECK_MS = 5000;

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
  private readonly held = new HeldMessages();
  private readonly groups: Groups;
  private readonly outbox: Outbox;
  private readonly inbox: Inbox;
  private earlyTimer: NodeJS.Timeout | undefined;
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
    this.trust = new ContactTrust(options, (userId, identity) =>
      this.emit('identityChanged', { userId, safetyNumber: this.safetyNumberWith(userId, identity) }),
    );
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
      held: this.held,
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
    if (!theirs || !this.sessions.identity) return undefined;
    return this.safetyNumberWith(userId, theirs);
  }

  /** How many messages from a contact are held until the user decides on their key change. */
  heldMessageCount(userId: string): number {
    return this.held.count(userId);
  }

  /**
   * While a contact's identity change is pending, the safety number with their new key (the one
   * approveIdentity() would accept): what the user compares before accepting. Undefined otherwise.
   */
  async pendingSafetyNumber(userId: string): Promise<string | undefined> {
    await this.init();
    const pending = this.trust.pendingIdentity(userId);
    return pending && this.safetyNumberWith(userId, pending);
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

  /**
   * Accepts a contact's pending identity key: `safetyNumber` is the number the user compared (60 digits;
   * spaces are ignored). If it is not the pending key's (another key arrived since it was shown: a new
   * 'identityChanged' told of it), SAFETY_NUMBER_MISMATCH and nothing changes. Otherwise the key is
   * pinned, sessions under any other key are erased, sending resumes, and the held messages that came
   * under this key are processed as if they arrived now (those under a key replaced since are dropped).
   */
  async approveIdentity(
    userId: string,
    safetyNumber: string,
  ): Promise<{ released: number; dropped: number }> {
    this.checkName(userId, 'userId');
    const digits = normalizeSafetyNumber(safetyNumber);
    await this.init();
    return this.exclusive(async () => {
      const pending = this.pendingOrThrow(userId);
      if (this.safetyNumberWith(userId, pending) !== digits) {
        throw new CryptoError(
          ErrorCode.SAFETY_NUMBER_MISMATCH,
          `that is not the safety number of ${userId}'s pending key: the key changed since; compare the new number`,
        );
      }
      const changes = new Map(this.trust.approve(userId));
      changes.set(...(await this.sessions.keepOnly(userId, pending)));
      await this.stateStore.write(changes);
      return this.inbox.release(userId);
    });
  }

  /**
   * Rejects a contact's pending identity key: the pinned key stays, sessions under any other key are
   * erased, the held messages are dropped (returns how many), and later messages under the rejected key
   * are refused (IDENTITY_REJECTED) without a new warning. Sending resumes on the pinned key.
   */
  async rejectIdentity(userId: string): Promise<number> {
    this.checkName(userId, 'userId');
    await this.init();
    return this.exclusive(async () => {
      this.pendingOrThrow(userId);
      const changes = new Map(this.trust.reject(userId));
      changes.set(...(await this.sessions.keepOnly(userId, this.trust.pinnedIdentity(userId)!)));
      await this.stateStore.write(changes);
      return this.inbox.dropHeld(userId);
    });
  }

  private pendingOrThrow(userId: string): Uint8Array {
    const pending = this.trust.pendingIdentity(userId);
    if (!pending) throw new UsageError(`no key change of ${userId} is waiting for a decision`);
    return pending;
  }

  /** The safety number with `userId` holding `identity` (194 bytes). */
  private safetyNumberWith(userId: string, identity: Uint8Array): string {
    return safetyNumber(
      this.userId,
      this.sessions.identity!.publicIdentity,
      userId,
      decodePublicIdentity(identity),
    );
  }

  // -------------------------------------------------------------------------------------------
  // State

  private init(): Promise<void> {
    this.initialized ??= this.exclusive(async () => {
      await this.sessions.loadKeys(this.keyStore);
      await this.groups.load(this.stateStore);
      await this.trust.load(this.stateStore);
      await this.held.load(this.stateStore);
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
        void this.exclusive(async () => this.inbox.deliver(f)).catch((e: Error) => this.fail(e));
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
    // Held messages of a contact whose key change was decided before a crash let us handle them.
    for (const userId of this.held.contacts()) {
      if (!this.trust.pendingIdentity(userId)) await this.inbox.release(userId);
    }
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

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
import {
  type PublicIdentity,
  decodePublicIdentity,
  encodePublicIdentity,
  safetyNumber,
  sameIdentityKeys,
} from '../crypto/identity.js';
import { EntryAuthor, type Role, groupSafetyNumber, isMemberWith, members } from '../crypto/membership.js';
import type { RotationPolicy } from '../crypto/sender-keys.js';
import { MAX_PLAINTEXT_BYTES } from '../crypto/constants.js';
import { VerifyKey, importPublicKey } from '../crypto/primitives.js';
import { equalBytes, utf8Encode } from '../encoding.js';
import {
  CryptoError,
  E2EEError,
  ErrorCode,
  ProtocolError,
  RelayKeyChangedError,
  UsageError,
} from '../errors.js';
import {
  RELAY_NONCE_BYTES,
  challengeSignatureInput,
  deleteAccountSignatureInput,
  loginSignatureInput,
  normaliseRelayUrl,
  relayKeyFingerprint,
} from '../protocol/login.js';
import {
  MAX_IDENTITIES_PER_FRAME,
  Name,
  type RelayEvent,
  type RelayFrame,
  IdentitiesAnswer,
  UserId,
  b64,
  unb64,
} from '../protocol/wire.js';
import { canonicalUserId } from '../user-ids.js';
import { RelayConnection, type RelayPush, type RelayTlsOptions, checkTlsOptions } from './connection.js';
import { ContentType, encodeContent } from './content.js';
import {
  GroupChanges,
  type PolicyName,
  announce,
  outOfSyncSentence,
  parseInviteLink,
  policyName,
} from './group-changes.js';
import { type Applied, type Changes, type GroupState, Groups } from './groups.js';
import { HeldMessages } from './held.js';
import { Inbox, e2eeErrorEvent } from './inbox.js';
import { Outbox } from './outbox.js';
import { Sessions } from './sessions.js';
import {
  type KeyStore,
  MemoryKeyStore,
  MemoryStateStore,
  type RelayKeyStore,
  type StateStore,
  stateRelayKeyStore,
} from './stores.js';
import { ContactTrust } from './trust.js';
import * as v from 'valibot';

/** Options of `new E2EEClient(...)`; defaults are listed beside each. */
export interface E2EEClientOptions {
  /** ws:// or wss:// URL of the relay (normalised: login.ts normaliseRelayUrl). */
  url: string;
  /** Our user id, in any case: it is used in lower case (docs/PROTOCOL.md "Identifiers"). */
  userId: string;
  /** Private identity keys (default: in memory). */
  keyStore?: KeyStore | undefined;
  /** Sessions, prekeys, groups (default: in memory). */
  stateStore?: StateStore | undefined;
  /** The relay keys pinned per relay address on first use (default: kept in `stateStore`). */
  relayKeys?: RelayKeyStore | undefined;
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
  /** TLS for a wss:// relay (default: the system's certificate authorities). */
  tls?: RelayTlsOptions | undefined;
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
  /**
   * 'sent': the relay stored the message; for a group message, `skipped` names members whose mailbox on
   * the relay was full (they will not get it). 'delivered': the recipient's client says it has it.
   */
  ack: [
    {
      id: string;
      from: string;
      to: string;
      group?: string | undefined;
      state: 'sent' | 'delivered';
      skipped?: string[] | undefined;
    },
  ];
  userCreated: [{ userId: string }];
  userDeleted: [{ userId: string }];
  /**
   * Group membership, from the group's signed log (docs/PROTOCOL.md "Group membership"): whether we
   * made the change, it arrived live, or we found it when reading the log.
   */
  groupCreated: [{ group: string }];
  groupDeleted: [{ group: string; by?: string | undefined }];
  /** We became a full member. */
  groupJoin: [{ group: string; creator: string; members: string[] }];
  /** We left (or declined, or withdrew a request), or an admin removed us (`removedBy`). */
  groupLeave: [{ group: string; removedBy?: string | undefined; standing?: Standing | undefined }];
  groupMemberJoin: [{ group: string; userId: string; by?: string | undefined }];
  groupMemberLeave: [
    { group: string; userId: string; removedBy?: string | undefined; standing?: Standing | undefined },
  ];
  /** An admin invited us: accept or decline. */
  groupInvitation: [{ group: string; by: string }];
  groupMemberInvited: [{ group: string; userId: string; by: string }];
  /** Someone asked to join through the invite link; an admin approves (or removes) them. */
  groupJoinRequest: [{ group: string; userId: string }];
  groupRoleChanged: [{ group: string; userId: string; role: Role; by: string }];
  groupPolicyChanged: [
    { group: string; policy: PolicyName; approval: boolean; linkChanged: boolean; by: string },
  ];
  /**
   * Our log of a group and another member's (or the relay's) differ, or the relay withholds entries:
   * sending to the group stops until it is resolved (docs/PROTOCOL.md "Group membership", forks).
   */
  groupOutOfSync: [{ group: string; kind: GroupProblemKind; userId?: string | undefined; epoch: number }];
  /** A problem of groupOutOfSync cleared (a later view agrees with our log): sending resumes. */
  groupInSync: [{ group: string }];
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

type Standing = 'member' | 'invited' | 'requested';
type GroupProblemKind = 'fork' | 'withheld' | 'relay-behind' | 'missing';

/** A group as this device has verified it. */
export interface GroupDetails {
  readonly group: string;
  readonly creator: string;
  readonly epoch: number;
  readonly policy: PolicyName;
  /** With the 'link' policy: an admin approves each person who uses the link. */
  readonly approval: boolean;
  /** Everyone on the roster, with who gave them their current standing or role (`by`). */
  readonly roster: readonly { userId: string; role: Role; standing: Standing; by: string }[];
  /** 60 digits derived from the verified log head: members with the same number have the same log. */
  readonly safetyNumber: string;
  /** Set while our log cannot be trusted to match the others' (sending is refused meanwhile). */
  readonly outOfSync: {
    kind: GroupProblemKind;
    userId?: string | undefined;
    epoch: number;
    message: string;
  } | null;
  /** The invite link, when we made the current one. */
  readonly link: string | null;
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
/** Delivered frames are handled for at most this long before the event loop gets a turn. */
const DELIVER_SLICE_MS = 10;

/** Largest user message: the core's plaintext limit less room for the content header. */
export const MAX_MESSAGE_BYTES = MAX_PLAINTEXT_BYTES - 256;

/** An end-to-end encrypted messaging client (direct and group) over a relay. */
export class E2EEClient extends EventEmitter<E2EEClientEvents> {
  /** Our user id, canonical (lower case). */
  readonly userId: string;
  /** The relay's address, normalised: what its key is pinned under and what the login signs. */
  readonly relayUrl: string;
  private readonly keyStore: KeyStore;
  private readonly stateStore: StateStore;
  private readonly relayKeys: RelayKeyStore;
  /** The key the relay proved on the current connection (what a deletion proof names). */
  private relayKeyNow: Uint8Array | undefined;
  private readonly now: () => number;
  private readonly relay: RelayConnection;

  // Protocol state, loaded by init() and guarded by `lock`.
  private readonly sessions: Sessions;
  private readonly trust: ContactTrust;
  private readonly held = new HeldMessages();
  private readonly groups: Groups;
  private readonly changes: GroupChanges;
  private readonly outbox: Outbox;
  private readonly inbox: Inbox;
  private earlyTimer: NodeJS.Timeout | undefined;
  /** When the handling of delivered frames last took the event loop back (performance.now()). */
  private sliceStart = 0;
  private lock: Promise<unknown> = Promise.resolve();
  /** A state operation failed: memory may be ahead of the store, read it again first (exclusive). */
  private stale = false;
  private initialized: Promise<void> | undefined;

  constructor(options: E2EEClientOptions) {
    super();
    if (!options || typeof options.url !== 'string') throw new TypeError('url must be a ws:// or wss:// URL');
    try {
      this.relayUrl = normaliseRelayUrl(options.url);
    } catch (e) {
      throw new TypeError(`url must be a ws:// or wss:// URL: ${(e as Error).message}`, { cause: e });
    }
    this.userId = canonicalUserId(options.userId, 'userId');
    checkTlsOptions(options.tls);
    this.keyStore = options.keyStore ?? new MemoryKeyStore();
    this.stateStore = options.stateStore ?? new MemoryStateStore();
    this.relayKeys = options.relayKeys ?? stateRelayKeyStore(this.stateStore);
    this.now = options.now ?? Date.now;
    this.relay = new RelayConnection(
      this.userId,
      { ...options, url: this.relayUrl },
      {
        frame: (f) => this.onFrame(f),
        refused: (rid, code, message) => this.outbox.refused(rid, code, message),
        malformed: (problem) =>
          this.emit('e2eeError', { code: ErrorCode.MALFORMED, message: `bad frame from relay: ${problem}` }),
        disconnect: (code, reason) => this.emit('disconnect', { code, reason }),
        error: (e) => this.fail(e),
        retry: (attempt, delayMs) => this.emit('reconnecting', { attempt, delayMs }),
      },
    );
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
    this.groups = new Groups(
      this.userId,
      options,
      this.now,
      (group, from) => this.fetchLog(group, from),
      (userId, identity) => this.checkCreator(userId, identity),
    );
    this.changes = new GroupChanges({
      userId: this.userId,
      groups: this.groups,
      author: () => new EntryAuthor(this.userId, this.sessions.identity!, this.now),
      request: (frame) => this.relay.request(frame),
      exclusive: (fn) => this.exclusive(fn),
      write: (changes) => this.stateStore.write(changes),
      events: this,
      identityFor: (userId) => this.identityFor(userId),
      relayUrl: options.url,
    });
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
  async sendDirectMessage(
    recipient: string,
    data: string | Uint8Array,
    options?: SendOptions,
  ): Promise<string> {
    const to = canonicalUserId(recipient, 'recipient');
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
      const g = this.requireSendable(group);
      await this.rotateIfNeeded(group, g);
      const view = { epoch: g.log.epoch, head: g.log.heads[g.log.epoch]! };
      const groupType = type === ContentType.TEXT ? ContentType.GROUP_TEXT : ContentType.GROUP_BINARY;
      const body = g.session.encrypt(encodeContent({ type: groupType, id, view, data: bytes }));
      await this.outbox.queue({ t: 'groupSend', rid: 0, group, id, body: b64(body) }, false, [
        this.groups.entry(group, g),
      ]);
    }).catch((e: unknown) => {
      this.outbox.abandon(id);
      throw e;
    });
    return sent;
  }

  /**
   * Creates a group with us as its first admin. Invite-only unless `policy` is 'open': then anyone who
   * knows the name may join (the seeds' behaviour), which must be chosen explicitly.
   */
  async createGroup(group: string, options?: { policy?: 'invite-only' | 'open' | undefined }): Promise<void> {
    this.checkName(group, 'group');
    await this.init();
    const policy = options?.policy ?? 'invite-only';
    if (policy !== 'invite-only' && policy !== 'open')
      throw new TypeError("policy must be 'invite-only' or 'open'");
    await this.changes.create(group, policy);
  }

  /**
   * Joins an open group by its name; resolves with its creator and members. An invite-only group needs
   * an admin's invitation (acceptGroupInvitation), a link group its link (joinGroupWithLink): both
   * refuse with NOT_ALLOWED and a sentence. A member joining again changes nothing.
   */
  async joinGroup(group: string): Promise<{ group: string; creator: string; members: string[] }> {
    this.checkName(group, 'group');
    await this.init();
    const mine = this.groups.get(group);
    if (mine?.log.roster.get(this.userId)?.standing !== 'member') await this.changes.join(group);
    const log = this.groups.get(group)!.log;
    return { group, creator: log.creator, members: members(log) };
  }

  /** Joins with an invite link: returns 'member', or 'requested' when an admin must approve. */
  async joinGroupWithLink(link: string): Promise<{ group: string; standing: 'member' | 'requested' }> {
    const { group, key } = parseInviteLink(link);
    this.checkName(group, 'group');
    await this.init();
    return { group, standing: await this.changes.join(group, key) };
  }

  /** Invites a user to a group we are an admin of; they accept or decline. */
  async inviteToGroup(group: string, userId: string): Promise<void> {
    this.checkName(group, 'group');
    const member = canonicalUserId(userId, 'user id');
    await this.changes.invite(group, member);
  }

  /** Accepts an invitation: we become a full member. */
  async acceptGroupInvitation(group: string): Promise<void> {
    this.checkName(group, 'group');
    await this.changes.accept(group);
  }

  /** Declines an invitation. */
  async declineGroupInvitation(group: string): Promise<void> {
    this.checkName(group, 'group');
    await this.changes.leave(group);
  }

  /** Leaves a group (an admin who is the last one makes someone else admin first). */
  async leaveGroup(group: string): Promise<void> {
    this.checkName(group, 'group');
    await this.changes.leave(group);
  }

  /** Removes someone from a group we are an admin of (a member, an invitee, a join request). */
  async removeFromGroup(group: string, userId: string): Promise<void> {
    this.checkName(group, 'group');
    const member = canonicalUserId(userId, 'user id');
    await this.changes.remove(group, member);
  }

  /** Makes a member an admin, or an admin a member (admins only; a group keeps one admin). */
  async setGroupRole(group: string, userId: string, role: Role): Promise<void> {
    this.checkName(group, 'group');
    const member = canonicalUserId(userId, 'user id');
    if (role !== 'admin' && role !== 'member') throw new TypeError("role must be 'admin' or 'member'");
    await this.changes.setRole(group, member, role);
  }

  /**
   * Sets who may join a group we are an admin of. 'link' makes a new invite link (an earlier one stops
   * working) and resolves with it; `approval` makes each person who uses it wait for an admin.
   */
  async setGroupJoinPolicy(
    group: string,
    policy: PolicyName,
    options?: { approval?: boolean | undefined },
  ): Promise<string | undefined> {
    this.checkName(group, 'group');
    if (policy !== 'invite-only' && policy !== 'open' && policy !== 'link')
      throw new TypeError("policy must be 'invite-only', 'open' or 'link'");
    return this.changes.setPolicy(group, policy, options?.approval ?? false);
  }

  /** Approves someone who asked to join through the invite link. */
  async approveJoinRequest(group: string, userId: string): Promise<void> {
    this.checkName(group, 'group');
    const member = canonicalUserId(userId, 'user id');
    await this.changes.approve(group, member);
  }

  /** Deletes a group for everyone (admins only). */
  async deleteGroup(group: string): Promise<void> {
    this.checkName(group, 'group');
    await this.changes.delete(group);
  }

  /** The full members of a group, from our verified log (sorted). */
  async groupMembers(group: string): Promise<string[]> {
    this.checkName(group, 'group');
    await this.init();
    const g = this.groups.get(group);
    if (!g) throw new ProtocolError(ErrorCode.NOT_A_MEMBER, `you are not on the roster of ${group}`);
    return members(g.log);
  }

  /** A group as we verified it: roster with roles and standings, policy, safety number, sync state. */
  groupDetails(group: string): GroupDetails | undefined {
    const g = this.groups.get(group);
    if (!g) return undefined;
    const log = g.log;
    return {
      group,
      creator: log.creator,
      epoch: log.epoch,
      policy: policyName(log.policy),
      approval: log.approval,
      roster: [...log.roster]
        .map(([userId, m]) => ({ userId, role: m.role, standing: m.standing, by: m.by }))
        .sort((a, b) => a.userId.localeCompare(b.userId)),
      safetyNumber: groupSafetyNumber(log),
      outOfSync: g.problem ? { ...g.problem, message: outOfSyncSentence(group, g.problem) } : null,
      link: this.changes.link(group) ?? null,
    };
  }

  /** Groups we are on the roster of (members, invited or asking), with full members, from local state. */
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
   * again, with a new identity, which contacts see as an identity change. Proven afresh: the relay
   * hands out a nonce and we sign it with its key and our id (docs/PROTOCOL.md "deleteAccount").
   */
  async deleteAccount(): Promise<void> {
    const challenge = await this.relay.request({ t: 'deleteAccountChallenge', rid: 0 });
    const nonce = typeof challenge.nonce === 'string' ? unb64(challenge.nonce) : new Uint8Array(0);
    const relayKey = this.relayKeyNow;
    if (nonce.length !== RELAY_NONCE_BYTES || !relayKey)
      throw new ProtocolError(ErrorCode.MALFORMED, 'the relay sent no usable deletion challenge');
    const signature = this.sessions.identity!.signing.sign(
      deleteAccountSignatureInput(relayKey, this.userId, nonce),
    );
    await this.relay.request({ t: 'deleteAccount', rid: 0, signature: b64(signature) });
    await this.close();
  }

  /** The relay key pinned for our relay's address, if we have logged in there (or accepted one). */
  async pinnedRelayKey(): Promise<Uint8Array | undefined> {
    return this.relayKeys.get(this.relayUrl);
  }

  /**
   * Pins `publicKey` for our relay's address after the user compared its fingerprint with the relay's
   * operator (typically `RelayKeyChangedError.presentedKey`); the next connect() logs in with it.
   */
  async acceptRelayKey(publicKey: Uint8Array): Promise<void> {
    if (!(publicKey instanceof Uint8Array)) throw new TypeError('publicKey must be a Uint8Array');
    const key = importPublicKey(publicKey); // CryptoError E2EE_INVALID_KEY unless a valid P-256 point
    await this.exclusive(async () => this.relayKeys.set(this.relayUrl, key));
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
    userId = canonicalUserId(userId, 'userId');
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
    userId = canonicalUserId(userId, 'userId');
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
      await this.loadState();
      await this.outbox.load();
    }).catch((e: unknown) => {
      this.initialized = undefined; // e.g. the store could not be read: the next call tries again
      throw e;
    });
    return this.initialized;
  }

  /** Reads the protocol state from the store, replacing what is in memory. */
  private async loadState(): Promise<void> {
    await this.sessions.loadKeys(this.keyStore);
    await this.groups.load(this.stateStore);
    await this.trust.load(this.stateStore);
    await this.held.load(this.stateStore);
    await this.inbox.load();
  }

  /**
   * Runs `fn` after every earlier state operation (one writer at a time, in arrival order). An
   * operation that failed other than with one of our own errors (a write the store refused: a full
   * disk, a read-only or damaged database) may have left the state in memory ahead of the stored
   * state; it is read back from the store before the next operation, so memory never runs ahead of
   * the disk (a message whose state was not stored decrypts again when the relay brings it again).
   */
  private exclusive<T>(fn: () => Promise<T>): Promise<T> {
    const step = async (): Promise<T> => {
      if (this.stale) {
        await this.loadState();
        this.stale = false;
      }
      return fn();
    };
    const run = this.lock.then(step, step);
    this.lock = run.catch((e: unknown) => {
      if (!(e instanceof E2EEError)) this.stale = true;
    });
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
    const view = { epoch: g.log.epoch, head: g.log.heads[g.log.epoch]! };
    let firstError: unknown;
    for (const member of [...g.needsKey].sort()) {
      try {
        const record = await this.sessions.ensure(member);
        // Only to the identity the signed roster names: a relay handing out another key for a member
        // does not get our sender key.
        if (!record.peerIdentity || !isMemberWith(g.log, member, record.peerIdentity))
          throw new CryptoError(
            ErrorCode.IDENTITY_CHANGED,
            `${member}'s key differs from the one in ${group}'s member list`,
          );
        const id = randomUUID();
        const body = record.encrypt(
          encodeContent({ type: ContentType.SENDER_KEY, id, group, view, data: skdm }),
        );
        g.needsKey.delete(member);
        try {
          await this.outbox.queue({ t: 'send', rid: 0, to: member, id, body: b64(body) }, true, [
            this.sessions.entry(record),
            this.groups.entry(group, g),
          ]);
        } catch (e) {
          g.needsKey.add(member);
          throw e;
        }
      } catch (e) {
        // A write the store refused (a full disk) is not this member's problem: the send fails, and
        // the state is read back before the next operation, with the member still owed the key.
        if (!(e instanceof E2EEError)) throw e;
        firstError ??= e;
        this.emit('e2eeError', e2eeErrorEvent(e, member, group));
      }
    }
    const others = members(g.log).length - 1;
    if (firstError !== undefined && g.needsKey.size === others && others > 0) {
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

  private onSent(id: string, to: string | undefined, group: string | undefined, skipped?: string[]): void {
    const taken = this.outbox.take(id);
    if (!taken || taken.entry.internal) return;
    this.emit('ack', {
      id,
      from: this.userId,
      to: to ?? group ?? '',
      group,
      state: 'sent',
      ...(skipped && skipped.length > 0 ? { skipped } : {}),
    });
    taken.waiter?.resolve(id);
  }

  // -------------------------------------------------------------------------------------------
  // Connection

  private onFrame(f: RelayPush): void {
    switch (f.t) {
      case 'challenge':
        void this.exclusive(async () => this.authenticate(f)).catch((e: Error) => this.relay.refuse(e));
        return;
      case 'ready':
        void this.exclusive(async () => this.onReady(f)).catch((e: Error) => {
          // `ready` could not be handled (a refused write: a full disk): nothing more is handled on
          // this connection, connect() rejects with why, and the next connection starts over.
          this.inbox.stall();
          this.relay.failReady(e);
          this.fail(e);
        });
        return;
      case 'ack':
        this.onSent(f.id, f.to, f.group, f.skipped);
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

  /**
   * Answers a challenge (docs/PROTOCOL.md "Authentication"): the relay must prove the key it presents,
   * which must be the key pinned for this address (pinned now on the first login); only then is the login
   * signed, over that key, this address, our id and the nonce. Throws (and the caller refuses the
   * connection, finally) when the relay fails either check: nothing is signed or sent then.
   */
  private async authenticate(f: Extract<RelayFrame, { t: 'challenge' }>): Promise<void> {
    const nonce = unb64(f.nonce);
    const relayKey = unb64(f.relayKey);
    if (nonce.length !== RELAY_NONCE_BYTES)
      throw new ProtocolError(ErrorCode.MALFORMED, `the relay's challenge is not ${RELAY_NONCE_BYTES} bytes`);
    let verifier: VerifyKey;
    try {
      verifier = new VerifyKey(relayKey);
    } catch {
      throw new CryptoError(ErrorCode.INVALID_KEY, "the relay's key is not a valid P-256 public key");
    }
    if (!verifier.verify(challengeSignatureInput(relayKey, this.userId, nonce), unb64(f.signature)))
      throw new CryptoError(
        ErrorCode.BAD_SIGNATURE,
        'the relay did not prove that it holds the key it presented',
      );
    const pinned = await this.relayKeys.get(this.relayUrl);
    if (!pinned)
      await this.relayKeys.set(this.relayUrl, relayKey); // trust on first use
    else if (!equalBytes(pinned, relayKey))
      throw new RelayKeyChangedError(
        this.relayUrl,
        pinned,
        relayKeyFingerprint(pinned),
        relayKey,
        relayKeyFingerprint(relayKey),
      );
    this.relayKeyNow = relayKey;
    const id = this.sessions.identity!;
    const signature = id.signing.sign(loginSignatureInput(relayKey, this.relayUrl, this.userId, nonce));
    this.relay.send({
      t: 'auth',
      identity: b64(encodePublicIdentity(id.publicIdentity)),
      signature: b64(signature),
      relayUrl: this.relayUrl,
    });
  }

  private async onReady(f: Extract<RelayFrame, { t: 'ready' }>): Promise<void> {
    this.relay.markAuthenticated();
    this.inbox.resume(); // what an earlier connection left unacknowledged comes again now
    await this.syncGroups(f.groups);
    await this.checkContacts();
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

  /**
   * At `ready`: the relay lists the head of every group we are on. We read what we lack, and a head
   * that disagrees with ours (or a group of ours it no longer lists) becomes a problem we show. Every
   * change found becomes the same event as a live one.
   */
  private async syncGroups(heads: Extract<RelayFrame, { t: 'ready' }>['groups']): Promise<void> {
    const listed = new Set(heads.map((h) => h.group));
    const work: [string, () => Promise<Applied>][] = heads.map((h) => [
      h.group,
      () => this.groups.syncHead(h.group, h.epoch, unb64(h.head)),
    ]);
    for (const [group] of this.groups.all())
      if (!listed.has(group)) work.push([group, () => this.groups.catchUp(group)]);
    for (const [group, run] of work) {
      try {
        const applied = await run();
        await this.stateStore.write(applied.changes);
        announce(this, this.userId, group, applied, this.groups.get(group)?.log);
      } catch (e) {
        // A refused write is the store's problem, not the group's: it fails `ready` (the state is
        // read back, and the next connection syncs and announces again), rather than leave a change
        // applied in memory, unstored and untold.
        if (!(e instanceof E2EEError)) throw e;
        this.emit('e2eeError', e2eeErrorEvent(e, undefined, group));
      }
    }
  }

  /**
   * At `ready`: asks the relay which identity each contact has now, in pages, to catch up on accounts
   * deleted or registered again while we were offline (those events are live only). A contact who is
   * gone loses our session, as on `userDeleted`; a contact under another key is a key change, told and
   * decided as if a bundle had shown it. The relay can say nothing here it could not already show with
   * a bundle or a `userDeleted`, so a lie costs it nothing new; it lets our next message go to the void
   * no longer.
   */
  private async checkContacts(): Promise<void> {
    const contacts = this.trust.contacts().filter((id) => v.is(UserId, id));
    for (let i = 0; i < contacts.length; i += MAX_IDENTITIES_PER_FRAME) {
      const page = contacts.slice(i, i + MAX_IDENTITIES_PER_FRAME);
      let answer: unknown;
      try {
        answer = (await this.relay.request({ t: 'identities', rid: 0, userIds: page })).identities;
      } catch {
        return; // the connection went, or the relay refused: the next `ready` asks again
      }
      const parsed = v.safeParse(IdentitiesAnswer, answer);
      if (!parsed.success) {
        this.emit(
          'e2eeError',
          e2eeErrorEvent(
            new ProtocolError(ErrorCode.MALFORMED, 'the relay sent a malformed identities answer'),
          ),
        );
        return;
      }
      const now = new Map(parsed.output.map((x) => [x.userId, x.identity]));
      for (const userId of page) {
        const identity = now.get(userId);
        try {
          if (identity === undefined) {
            await this.sessions.forget(userId);
            continue;
          }
          // As if seen in a message: a key the user rejected stays rejected (no warning at every start).
          const { changes } = this.trust.pin(userId, unb64(identity), 'message');
          if (changes.length > 0) await this.stateStore.write(new Map(changes));
        } catch (e) {
          if (!(e instanceof E2EEError)) throw e; // a refused write: as in syncGroups
          this.emit('e2eeError', e2eeErrorEvent(e, userId));
        }
      }
    }
  }

  /** A page of a group's log from the relay. */
  private async fetchLog(group: string, from: number): Promise<{ epoch: number; entries: Uint8Array[] }> {
    const r = await this.relay.request({ t: 'groupLog', rid: 0, group, from });
    const entries = Array.isArray(r.entries) ? (r.entries as unknown[]) : [];
    if (typeof r.epoch !== 'number' || !entries.every((e) => typeof e === 'string'))
      throw new ProtocolError(ErrorCode.MALFORMED, 'the relay sent a malformed group log page');
    return { epoch: r.epoch, entries: (entries as string[]).map(unb64) };
  }

  /**
   * A group's creator, from its genesis: pinned on first use like any contact; a creator whose pinned
   * identity differs (or whose key change is pending) makes the group unverifiable: refused.
   */
  private checkCreator(userId: string, identity: PublicIdentity): Changes {
    const pinned = this.trust.pinnedIdentity(userId);
    if (!pinned) return new Map(this.trust.pin(userId, encodePublicIdentity(identity), 'message').changes);
    if (!sameIdentityKeys(decodePublicIdentity(pinned), identity) || this.trust.pendingIdentity(userId))
      throw new CryptoError(
        ErrorCode.IDENTITY_CHANGED,
        `the group was created by ${userId} under another key than the one you know for ${userId}`,
      );
    return new Map();
  }

  /** The identity we have pinned for a contact: fetched (and pinned) from their bundle on first contact. */
  private async identityFor(userId: string): Promise<Uint8Array> {
    await this.init();
    return this.exclusive(async () => {
      if (!this.trust.pinnedIdentity(userId)) await this.sessions.ensure(userId);
      this.trust.checkSendable(userId);
      return this.trust.pinnedIdentity(userId)!;
    });
  }

  /** The group we may send to now: we are a full member and our log is trusted to match the others'. */
  private requireSendable(group: string): GroupState {
    const g = this.groups.get(group);
    if (!g || g.log.roster.get(this.userId)?.standing !== 'member')
      throw new ProtocolError(ErrorCode.NOT_A_MEMBER, `you are not a member of ${group}`);
    if (g.problem) throw new ProtocolError(ErrorCode.GROUP_OUT_OF_SYNC, outOfSyncSentence(group, g.problem));
    return g;
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

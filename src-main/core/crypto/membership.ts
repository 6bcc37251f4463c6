/**
 * Signed, hash-chained group membership (docs/PROTOCOL.md, "Group membership").
 *
 * A group is its log: a genesis entry by the creator, then entries that invite, accept, join, leave,
 * remove, change a role, change the join policy, approve a join request or delete the group. Each entry
 * names the epoch it creates (its index in the log) and the hash of the entry before it, and is signed by
 * its author's identity signing key. Every member, and the relay, replays the log with `applyEntry`,
 * which checks, in this order: the format, the group and the epoch, the chain (previous hash), the
 * signature, then the author's right to make the change. So the relay stores and forwards the log but
 * cannot forge, reorder or merge entries, nor add anyone: a member exists only through entries signed
 * by an admin or (as the policy allows) by the member, from a genesis whose creator the reader pinned.
 *
 * Entry format (every field as in "Encoding"):
 *
 *   u8 version = 1 | u8 type | str groupId | u32 epoch | 32 prevHash | str author | u64 time | body
 *   | 64 signature
 *
 *   signature = ECDSA-Sign(author's identity signing key, "E2EE-v1/group-entry" || all before it)
 *   hash      = SHA-256("E2EE-v1/group-entry-hash" || all before the signature)
 *
 * The hash leaves the signature out: ECDSA signatures can be re-encoded by anyone (s -> n - s), and a
 * re-encoded copy must not look like another entry. The genesis has epoch 0 and an all-zero prevHash.
 */
import * as v from 'valibot';
import { Reader, Writer, concatBytes, equalBytes } from '../encoding.js';
import { Name } from '../protocol/wire.js';
import { isCanonicalUserId } from '../user-ids.js';
import { CryptoError, ErrorCode, ProtocolError, StorageError } from '../errors.js';
import { Label } from './constants.js';
import {
  type Identity,
  type PublicIdentity,
  decodePublicIdentity,
  encodePublicIdentity,
  sameIdentityKeys,
  verifyKeyFor,
} from './identity.js';
import {
  P256_PUBLIC_BYTES,
  P256_SIGNATURE_BYTES,
  type SigningKeyPair,
  VerifyKey,
  importPublicKey,
  randomBytes,
  sha256,
} from './primitives.js';

export const ENTRY_VERSION = 1;

/** Entry types (the second byte of an entry). */
export const EntryType = {
  GENESIS: 1,
  INVITE: 2,
  ACCEPT: 3,
  LEAVE: 4,
  REMOVE: 5,
  ROLE: 6,
  POLICY: 7,
  JOIN: 8,
  APPROVE: 9,
  DELETE: 10,
} as const;
export type EntryType = (typeof EntryType)[keyof typeof EntryType];

/** Who may join without an admin's invitation. */
export const JoinPolicy = {
  /** Only people an admin invites (the default). */
  INVITE_ONLY: 0,
  /** Anyone who knows the group's name (the seeds' behaviour; must be chosen explicitly). */
  OPEN: 1,
  /** Anyone holding the invite link's private key; with `approval`, an admin approves each request. */
  LINK: 2,
} as const;
export type JoinPolicy = (typeof JoinPolicy)[keyof typeof JoinPolicy];

export type Role = 'admin' | 'member';
/** A roster entry's standing: a full member, invited by an admin, or asking to join through a link. */
export type Standing = 'member' | 'invited' | 'requested';

const HASH_BYTES = 32;
const IDENTITY_BYTES = 194;
const GENESIS_NONCE_BYTES = 16;
/** Longest group or user id in an entry (the wire's Name is at most 64 ASCII characters). */
const MAX_ID_BYTES = 64;
/** How many people (in any standing) a roster may hold when no smaller limit is given. */
export const MAX_ROSTER = 10_000;

/** The parts every entry has, and its type-specific body. */
export interface EntryBase {
  readonly groupId: string;
  readonly epoch: number;
  readonly prevHash: Uint8Array;
  readonly author: string;
  readonly time: number;
}

export type EntryBody =
  | { type: typeof EntryType.GENESIS; creator: PublicIdentity; policy: JoinPolicy; nonce: Uint8Array }
  | { type: typeof EntryType.INVITE; userId: string; identity: PublicIdentity }
  | { type: typeof EntryType.ACCEPT }
  | { type: typeof EntryType.LEAVE }
  | { type: typeof EntryType.REMOVE; userId: string }
  | { type: typeof EntryType.ROLE; userId: string; role: Role }
  | {
      type: typeof EntryType.POLICY;
      policy: JoinPolicy;
      /** With LINK: an admin must approve each join request. */
      approval: boolean;
      /** With LINK: the public key whose private half is the invite link's secret. */
      linkKey: Uint8Array | undefined;
    }
  | {
      type: typeof EntryType.JOIN;
      identity: PublicIdentity;
      via: 'open' | 'link';
      /** With `via: 'link'`: the invite link key's signature (see JOIN in docs/PROTOCOL.md). */
      linkSignature: Uint8Array | undefined;
    }
  | { type: typeof EntryType.APPROVE; userId: string }
  | { type: typeof EntryType.DELETE };

/** A decoded entry: its fields, the exact bytes, its hash and what its signature covers. */
export type Entry = EntryBase &
  EntryBody & {
    readonly bytes: Uint8Array;
    readonly hash: Uint8Array;
    /** Everything before the signature. */
    readonly signed: Uint8Array;
    readonly signature: Uint8Array;
  };

/** One person on the roster. */
export interface RosterEntry {
  readonly identity: PublicIdentity;
  readonly role: Role;
  readonly standing: Standing;
  /** The epoch of the entry that gave them their current standing, and its author. */
  readonly since: number;
  readonly by: string;
}

/** A verified group: the state its log leads to. */
export interface GroupLog {
  readonly groupId: string;
  readonly creator: string;
  /** The creator's identity in the genesis. */
  readonly creatorIdentity: PublicIdentity;
  /** Epoch of the last entry (0 after the genesis). */
  readonly epoch: number;
  /** Hash of every entry so far, by epoch (heads[epoch] is the current head). */
  readonly heads: readonly Uint8Array[];
  readonly policy: JoinPolicy;
  readonly approval: boolean;
  readonly linkKey: Uint8Array | undefined;
  readonly roster: ReadonlyMap<string, RosterEntry>;
  /** A DELETE entry ended the group: nothing may follow. */
  readonly deleted: boolean;
}

/** What applying one entry changed, for events and timeline lines. */
export type RosterChange =
  | { kind: 'created'; by: string }
  | { kind: 'invited'; userId: string; by: string }
  | { kind: 'joined'; userId: string; via: 'invitation' | 'open' | 'link' | 'approval'; by: string }
  | { kind: 'requested'; userId: string }
  | { kind: 'left'; userId: string; standing: Standing }
  | { kind: 'removed'; userId: string; standing: Standing; by: string }
  | { kind: 'role'; userId: string; role: Role; by: string }
  | { kind: 'policy'; policy: JoinPolicy; approval: boolean; linkChanged: boolean; by: string }
  | { kind: 'deleted'; by: string };

const badEntry = (message: string): ProtocolError => new ProtocolError(ErrorCode.BAD_ENTRY, message);
const forbidden = (message: string): ProtocolError => new ProtocolError(ErrorCode.NOT_ALLOWED, message);

// ---------------------------------------------------------------------------------------------
// Encoding

function checkId(what: string, id: string): void {
  if (typeof id !== 'string' || id.length === 0 || new TextEncoder().encode(id).length > MAX_ID_BYTES)
    throw new TypeError(`${what} must be 1-${MAX_ID_BYTES} bytes`);
}

/** The bytes an entry's author signs (everything before the signature). */
function encodeSigned(base: EntryBase, body: EntryBody): Uint8Array {
  const w = new Writer(512)
    .u8(ENTRY_VERSION)
    .u8(body.type)
    .str(base.groupId)
    .u32(base.epoch)
    .fixed(base.prevHash)
    .str(base.author)
    .u64(base.time);
  switch (body.type) {
    case EntryType.GENESIS:
      w.fixed(encodePublicIdentity(body.creator)).u8(body.policy).fixed(body.nonce);
      break;
    case EntryType.INVITE:
      w.str(body.userId).fixed(encodePublicIdentity(body.identity));
      break;
    case EntryType.REMOVE:
    case EntryType.APPROVE:
      w.str(body.userId);
      break;
    case EntryType.ROLE:
      w.str(body.userId).u8(body.role === 'admin' ? 1 : 0);
      break;
    case EntryType.POLICY:
      w.u8(body.policy)
        .u8(body.approval ? 1 : 0)
        .u8(body.linkKey ? 1 : 0);
      if (body.linkKey) w.fixed(body.linkKey);
      break;
    case EntryType.JOIN:
      w.fixed(encodePublicIdentity(body.identity)).u8(body.via === 'link' ? 1 : 0);
      break;
    case EntryType.ACCEPT:
    case EntryType.LEAVE:
    case EntryType.DELETE:
      break;
  }
  return w.finish();
}

/** The input of a JOIN entry's link signature: the label, then the entry up to its `via` byte. */
function linkSignatureInput(signedWithoutLinkSig: Uint8Array): Uint8Array {
  return concatBytes(Label.GROUP_LINK_JOIN, signedWithoutLinkSig);
}

/** An entry's hash: SHA-256 over the label and its signed bytes (not the signature). */
export function entryHash(signed: Uint8Array): Uint8Array {
  return sha256(Label.GROUP_ENTRY_HASH, signed);
}

/** Decodes an entry's bytes; BAD_ENTRY (or the identity's own errors) for anything malformed. */
export function decodeEntry(bytes: Uint8Array): Entry {
  if (!(bytes instanceof Uint8Array)) throw new TypeError('entry must be a Uint8Array');
  let r: Reader;
  let body: EntryBody;
  let base: EntryBase;
  try {
    r = new Reader(bytes);
    const version = r.u8();
    if (version !== ENTRY_VERSION) throw badEntry(`unknown entry version ${version}`);
    const type = r.u8();
    const groupId = r.str(MAX_ID_BYTES);
    const epoch = r.u32();
    const prevHash = r.fixed(HASH_BYTES).slice();
    const author = r.str(MAX_ID_BYTES);
    const time = r.u64();
    base = { groupId, epoch, prevHash, author, time };
    // The ids the wire accepts: a group Name, canonical (lower-case) user ids, so that one person has one
    // spelling in every signed log (docs/PROTOCOL.md "Identifiers").
    if (!v.is(Name, groupId)) throw badEntry('the group id is not a group name');
    if (!isCanonicalUserId(author)) throw badEntry('the author is not a lower-case user id');
    const identity = (): PublicIdentity => decodePublicIdentity(r.fixed(IDENTITY_BYTES).slice());
    const userId = (): string => {
      const id = r.str(MAX_ID_BYTES);
      if (!isCanonicalUserId(id)) throw badEntry('a user id in the entry is not a lower-case user id');
      return id;
    };
    switch (type) {
      case EntryType.GENESIS: {
        const creator = identity();
        const policy = r.u8();
        if (policy !== JoinPolicy.INVITE_ONLY && policy !== JoinPolicy.OPEN)
          throw badEntry('a group starts invite-only or open');
        body = { type, creator, policy, nonce: r.fixed(GENESIS_NONCE_BYTES).slice() };
        break;
      }
      case EntryType.INVITE:
        body = { type, userId: userId(), identity: identity() };
        break;
      case EntryType.REMOVE:
      case EntryType.APPROVE:
        body = { type, userId: userId() };
        break;
      case EntryType.ROLE: {
        const target = userId();
        const role = r.u8();
        if (role > 1) throw badEntry(`unknown role ${role}`);
        body = { type, userId: target, role: role === 1 ? 'admin' : 'member' };
        break;
      }
      case EntryType.POLICY: {
        const policy = r.u8();
        if (policy > 2) throw badEntry(`unknown join policy ${policy}`);
        const approval = r.u8();
        const hasKey = r.u8();
        if (approval > 1 || hasKey > 1) throw badEntry('bad policy flags');
        const linkKey = hasKey ? importPublicKey(r.fixed(P256_PUBLIC_BYTES).slice()) : undefined;
        if ((policy === JoinPolicy.LINK) !== (linkKey !== undefined))
          throw badEntry('a link key comes with the link policy, and only with it');
        if (approval && policy !== JoinPolicy.LINK) throw badEntry('approval applies to the link policy');
        body = { type, policy: policy as JoinPolicy, approval: approval === 1, linkKey };
        break;
      }
      case EntryType.JOIN: {
        const joiner = identity();
        const via = r.u8();
        if (via > 1) throw badEntry(`unknown join path ${via}`);
        body = {
          type,
          identity: joiner,
          via: via === 1 ? 'link' : 'open',
          linkSignature: undefined,
        };
        // The link signature is part of what the joiner signs.
        if (via === 1) body.linkSignature = r.fixed(P256_SIGNATURE_BYTES).slice();
        break;
      }
      case EntryType.ACCEPT:
      case EntryType.LEAVE:
      case EntryType.DELETE:
        body = { type };
        break;
      default:
        throw badEntry(`unknown entry type ${type}`);
    }
    const signedEnd = r.offset;
    const signature = r.fixed(P256_SIGNATURE_BYTES).slice();
    r.end();
    const signed = bytes.slice(0, signedEnd);
    return { ...base, ...body, bytes: bytes.slice(), signed, signature, hash: entryHash(signed) } as Entry;
  } catch (e) {
    // A bad identity inside keeps its own code (INVALID_KEY, BAD_SIGNATURE); any other defect is BAD_ENTRY.
    if (e instanceof CryptoError || (e instanceof ProtocolError && e.code === ErrorCode.BAD_ENTRY)) throw e;
    throw badEntry(`malformed entry: ${(e as Error).message}`);
  }
}

/** A new entry, signed by `author` (the JOIN link signature is added by `signJoin`). */
function signEntry(
  base: EntryBase,
  body: EntryBody,
  signing: SigningKeyPair,
  linkKey?: SigningKeyPair,
): Uint8Array {
  checkId('groupId', base.groupId);
  checkId('author', base.author);
  let signed = encodeSigned(base, body);
  if (body.type === EntryType.JOIN && body.via === 'link') {
    if (!linkKey) throw new TypeError('joining by link needs the link key');
    signed = concatBytes(signed, linkKey.sign(linkSignatureInput(signed)));
  }
  return concatBytes(signed, signing.sign(concatBytes(Label.GROUP_ENTRY, signed)));
}

// ---------------------------------------------------------------------------------------------
// Replaying a log

/** Options of `applyEntry`. */
export interface ApplyOptions {
  /** Most people the roster may hold (any standing); default MAX_ROSTER. */
  maxRoster?: number | undefined;
}

const admins = (roster: ReadonlyMap<string, RosterEntry>): number =>
  [...roster.values()].filter((m) => m.standing === 'member' && m.role === 'admin').length;
const fullMembers = (roster: ReadonlyMap<string, RosterEntry>): number =>
  [...roster.values()].filter((m) => m.standing === 'member').length;

/** Starts a group from its genesis entry (epoch 0); `entry` must be a GENESIS. */
export function startLog(entry: Entry): { log: GroupLog; change: RosterChange } {
  if (entry.type !== EntryType.GENESIS) throw badEntry('a log starts with its genesis entry');
  if (entry.epoch !== 0 || !entry.prevHash.every((b) => b === 0))
    throw badEntry('the genesis has epoch 0 and no previous entry');
  verifyKeyFor(entry.creator.signingKey).assert(
    concatBytes(Label.GROUP_ENTRY, entry.signed),
    entry.signature,
    'group genesis',
  );
  const roster = new Map<string, RosterEntry>([
    [
      entry.author,
      { identity: entry.creator, role: 'admin', standing: 'member', since: 0, by: entry.author },
    ],
  ]);
  return {
    log: {
      groupId: entry.groupId,
      creator: entry.author,
      creatorIdentity: entry.creator,
      epoch: 0,
      heads: [entry.hash],
      policy: entry.policy,
      approval: false,
      linkKey: undefined,
      roster,
      deleted: false,
    },
    change: { kind: 'created', by: entry.author },
  };
}

/**
 * Applies the next entry to a verified log: format, group, epoch, chain, signature, then permission.
 * Returns the new log (the old one is not changed) and what changed. Throws BAD_ENTRY for an entry that
 * does not belong here (wrong group, epoch or previous hash: a relay's reordering, merging or replay),
 * BAD_SIGNATURE for a forgery and NOT_ALLOWED for a change its author may not make.
 */
export function applyEntry(
  log: GroupLog,
  entry: Entry,
  options: ApplyOptions = {},
): { log: GroupLog; change: RosterChange } {
  if (log.deleted) throw badEntry(`${log.groupId} was deleted: no entry may follow`);
  if (entry.groupId !== log.groupId) throw badEntry(`an entry of ${entry.groupId}, not ${log.groupId}`);
  if (entry.type === EntryType.GENESIS) throw badEntry('a second genesis');
  if (entry.epoch !== log.epoch + 1)
    throw badEntry(`entry for epoch ${entry.epoch}, expected ${log.epoch + 1}`);
  if (!equalBytes(entry.prevHash, log.heads[log.epoch]!))
    throw badEntry(`entry ${entry.epoch} does not follow this log's entry ${log.epoch}`);

  const author = log.roster.get(entry.author);
  // The signing key: the joiner's own identity for a JOIN, the author's roster identity otherwise.
  const signer = entry.type === EntryType.JOIN ? entry.identity : author?.identity;
  if (!signer) throw forbidden(`${entry.author} is not on the roster of ${log.groupId}`);
  verifyKeyFor(signer.signingKey).assert(
    concatBytes(Label.GROUP_ENTRY, entry.signed),
    entry.signature,
    `group entry ${entry.epoch}`,
  );

  const roster = new Map(log.roster);
  const isAdmin = author?.standing === 'member' && author.role === 'admin';
  const needAdmin = (what: string): void => {
    if (!isAdmin) throw forbidden(`${entry.author} is not an admin of ${log.groupId} and cannot ${what}`);
  };
  const target = (userId: string): RosterEntry => {
    const t = roster.get(userId);
    if (!t) throw forbidden(`${userId} is not on the roster of ${log.groupId}`);
    return t;
  };
  const maxRoster = options.maxRoster ?? MAX_ROSTER;
  const room = (): void => {
    if (roster.size >= maxRoster) throw forbidden(`${log.groupId} is full (${maxRoster} people)`);
  };
  // Once the last full member has left, nobody can lead the group again (no admin is left to appoint
  // one): a JOIN or ACCEPT would make members without an admin. The group has ended.
  const ended = (): void => {
    if (fullMembers(roster) === 0)
      throw forbidden(`nobody is left in ${log.groupId}: the group has ended; create a new one`);
  };
  let next: Partial<Pick<GroupLog, 'policy' | 'approval' | 'linkKey' | 'deleted'>> = {};
  let change: RosterChange;
  const epoch = entry.epoch;

  switch (entry.type) {
    case EntryType.INVITE: {
      needAdmin('invite');
      if (roster.has(entry.userId)) throw forbidden(`${entry.userId} is already on the roster`);
      room();
      roster.set(entry.userId, {
        identity: entry.identity,
        role: 'member',
        standing: 'invited',
        since: epoch,
        by: entry.author,
      });
      change = { kind: 'invited', userId: entry.userId, by: entry.author };
      break;
    }
    case EntryType.ACCEPT: {
      if (author?.standing !== 'invited') throw forbidden(`${entry.author} has no invitation to accept`);
      ended();
      roster.set(entry.author, { ...author, standing: 'member', since: epoch, by: entry.author });
      change = { kind: 'joined', userId: entry.author, via: 'invitation', by: entry.author };
      break;
    }
    case EntryType.LEAVE: {
      const leaver = target(entry.author);
      roster.delete(entry.author);
      if (
        leaver.standing === 'member' &&
        leaver.role === 'admin' &&
        admins(roster) === 0 &&
        fullMembers(roster) > 0
      )
        throw forbidden(
          'the last admin cannot leave while members remain: make another member an admin first',
        );
      change = { kind: 'left', userId: entry.author, standing: leaver.standing };
      break;
    }
    case EntryType.REMOVE: {
      needAdmin('remove people');
      if (entry.userId === entry.author) throw forbidden('to remove yourself, leave');
      const removed = target(entry.userId);
      roster.delete(entry.userId);
      change = { kind: 'removed', userId: entry.userId, standing: removed.standing, by: entry.author };
      break;
    }
    case EntryType.ROLE: {
      needAdmin('change roles');
      const member = target(entry.userId);
      if (member.standing !== 'member') throw forbidden(`${entry.userId} is not a member yet`);
      if (member.role === entry.role)
        throw forbidden(`${entry.userId} is already ${entry.role === 'admin' ? 'an admin' : 'a member'}`);
      roster.set(entry.userId, { ...member, role: entry.role, since: epoch, by: entry.author });
      if (admins(roster) === 0) throw forbidden('a group keeps at least one admin');
      change = { kind: 'role', userId: entry.userId, role: entry.role, by: entry.author };
      break;
    }
    case EntryType.POLICY: {
      needAdmin('change who may join');
      const linkChanged =
        entry.linkKey === undefined
          ? log.linkKey !== undefined
          : log.linkKey === undefined || !equalBytes(entry.linkKey, log.linkKey);
      next = { policy: entry.policy, approval: entry.approval, linkKey: entry.linkKey };
      change = {
        kind: 'policy',
        policy: entry.policy,
        approval: entry.approval,
        linkChanged,
        by: entry.author,
      };
      break;
    }
    case EntryType.JOIN: {
      if (author) throw forbidden(`${entry.author} is already on the roster`);
      ended();
      let standing: Standing;
      if (entry.via === 'open') {
        if (log.policy !== JoinPolicy.OPEN)
          throw forbidden(`${log.groupId} is not open: ask an admin for an invitation`);
        standing = 'member';
      } else {
        if (log.policy !== JoinPolicy.LINK || !log.linkKey)
          throw forbidden(`${log.groupId} has no invite link (it was revoked or never made)`);
        const unsigned = entry.signed.subarray(0, entry.signed.length - P256_SIGNATURE_BYTES);
        new VerifyKey(log.linkKey).assert(linkSignatureInput(unsigned), entry.linkSignature!, 'invite link');
        standing = log.approval ? 'requested' : 'member';
      }
      room();
      roster.set(entry.author, {
        identity: entry.identity,
        role: 'member',
        standing,
        since: epoch,
        by: entry.author,
      });
      change =
        standing === 'member'
          ? { kind: 'joined', userId: entry.author, via: entry.via, by: entry.author }
          : { kind: 'requested', userId: entry.author };
      break;
    }
    case EntryType.APPROVE: {
      needAdmin('approve join requests');
      const requester = target(entry.userId);
      if (requester.standing !== 'requested') throw forbidden(`${entry.userId} has not asked to join`);
      roster.set(entry.userId, { ...requester, standing: 'member', since: epoch, by: entry.author });
      change = { kind: 'joined', userId: entry.userId, via: 'approval', by: entry.author };
      break;
    }
    case EntryType.DELETE: {
      needAdmin('delete the group');
      next = { deleted: true };
      change = { kind: 'deleted', by: entry.author };
      break;
    }
  }
  return {
    log: { ...log, ...next, epoch, heads: [...log.heads, entry.hash], roster },
    change: change!,
  };
}

/** Replays a whole log from its genesis; the first bad entry throws. */
export function replayLog(entries: readonly Uint8Array[], options?: ApplyOptions): GroupLog {
  if (entries.length === 0) throw badEntry('an empty log');
  let { log } = startLog(decodeEntry(entries[0]!));
  for (const bytes of entries.slice(1)) log = applyEntry(log, decodeEntry(bytes), options).log;
  return log;
}

// ---------------------------------------------------------------------------------------------
// Making entries

/** Makes entries for one user (`me`, with their identity) in one group. */
export class EntryAuthor {
  constructor(
    readonly me: string,
    private readonly identity: Identity,
    private readonly now: () => number,
  ) {}

  /** The genesis of a new group, with a fresh random nonce (two groups of one name never share a hash). */
  genesis(groupId: string, policy: JoinPolicy = JoinPolicy.INVITE_ONLY): Uint8Array {
    if (policy === JoinPolicy.LINK) throw new TypeError('a group starts invite-only or open');
    return this.sign(
      { groupId, epoch: 0, prevHash: new Uint8Array(HASH_BYTES), author: this.me, time: this.now() },
      {
        type: EntryType.GENESIS,
        creator: this.identity.publicIdentity,
        policy,
        nonce: randomBytes(GENESIS_NONCE_BYTES),
      },
    );
  }

  /** The next entry after `log`'s head. */
  next(
    log: GroupLog,
    body: Exclude<EntryBody, { type: typeof EntryType.GENESIS }>,
    linkKey?: SigningKeyPair,
  ): Uint8Array {
    return this.sign(
      {
        groupId: log.groupId,
        epoch: log.epoch + 1,
        prevHash: log.heads[log.epoch]!,
        author: this.me,
        time: this.now(),
      },
      body,
      linkKey,
    );
  }

  /** A JOIN of this user: open, or with the invite link's key. */
  join(log: GroupLog, linkKey?: SigningKeyPair): Uint8Array {
    return this.next(
      log,
      {
        type: EntryType.JOIN,
        identity: this.identity.publicIdentity,
        via: linkKey ? 'link' : 'open',
        linkSignature: undefined,
      },
      linkKey,
    );
  }

  private sign(base: EntryBase, body: EntryBody, linkKey?: SigningKeyPair): Uint8Array {
    return signEntry(base, body, this.identity.signing, linkKey);
  }
}

// ---------------------------------------------------------------------------------------------
// Views and comparisons

/** True when `log` says `userId` is a full member with exactly `identity`'s keys. */
export function isMemberWith(log: GroupLog, userId: string, identity: PublicIdentity): boolean {
  const m = log.roster.get(userId);
  return m?.standing === 'member' && sameIdentityKeys(m.identity, identity);
}

/** Full members in sorted order. */
export function members(log: GroupLog): string[] {
  return [...log.roster]
    .filter(([, m]) => m.standing === 'member')
    .map(([id]) => id)
    .sort();
}

/**
 * How another member's view (their epoch and head, carried signed inside their messages) relates to
 * ours: the same; behind ours (our log has their head at their epoch: they have not seen the latest);
 * ahead (we lack entries: fetch them, or the relay withholds them); or a fork (at an epoch we both
 * have, the heads differ: the relay showed us different logs).
 */
export function compareView(
  log: GroupLog,
  epoch: number,
  head: Uint8Array,
): 'same' | 'behind' | 'ahead' | 'fork' {
  if (epoch > log.epoch) return 'ahead';
  const ours = log.heads[epoch];
  if (!ours || !equalBytes(ours, head)) return 'fork';
  return epoch === log.epoch ? 'same' : 'behind';
}

/**
 * True when `entry` proves that someone showed us a different log: an entry of this group for an epoch
 * we have, following our entry before it, differing from ours there, and signed by its author under the
 * identity our roster holds for them. Anything less proves nothing (the relay can make up any bytes), so
 * it must not put the group out of sync, nor name the author as the one who forked it.
 */
export function provesFork(log: GroupLog, entry: Entry): boolean {
  if (entry.groupId !== log.groupId || entry.epoch > log.epoch) return false;
  const before = entry.epoch === 0 ? new Uint8Array(HASH_BYTES) : log.heads[entry.epoch - 1]!;
  if (!equalBytes(entry.prevHash, before) || equalBytes(entry.hash, log.heads[entry.epoch]!)) return false;
  const signer = log.roster.get(entry.author)?.identity;
  if (!signer) return false;
  const key = entry.type === EntryType.JOIN ? entry.identity : signer;
  if (!equalBytes(key.signingKey, signer.signingKey)) return false;
  return verifyKeyFor(signer.signingKey).verify(
    concatBytes(Label.GROUP_ENTRY, entry.signed),
    entry.signature,
  );
}

/**
 * The group safety number: 60 digits derived from the group id and the verified head. Members whose
 * numbers match hold the same log, so the same roster and history; it changes with every entry.
 */
export function groupSafetyNumber(log: GroupLog): string {
  let out = '';
  for (const part of [1, 2]) {
    const digest = sha256(
      Label.GROUP_SAFETY_NUMBER,
      new Writer().u8(part).str(log.groupId).u32(log.epoch).fixed(log.heads[log.epoch]!).finish(),
    );
    for (let i = 0; i < 6; i++) {
      let v = 0;
      for (let j = 0; j < 5; j++) v = v * 256 + digest[i * 5 + j]!;
      out += String(v % 100000).padStart(5, '0');
    }
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// State (the verified result, without the entries)

/**
 * Serialises a verified log's state:
 *   u8 1 | str groupId | str creator | identity creatorIdentity | u32 epoch | (epoch+1) × 32 heads
 *   | u8 policy | u8 approval | u8 hasLinkKey [| 65 linkKey] | u8 deleted | u32 n
 *   | n × (str userId | identity | u8 role | u8 standing | u32 since | str by)
 */
export function encodeGroupLog(log: GroupLog): Uint8Array {
  const w = new Writer(512 + log.heads.length * HASH_BYTES + log.roster.size * 220)
    .u8(1)
    .str(log.groupId)
    .str(log.creator)
    .fixed(encodePublicIdentity(log.creatorIdentity))
    .u32(log.epoch);
  for (const h of log.heads) w.fixed(h);
  w.u8(log.policy)
    .u8(log.approval ? 1 : 0)
    .u8(log.linkKey ? 1 : 0);
  if (log.linkKey) w.fixed(log.linkKey);
  w.u8(log.deleted ? 1 : 0).u32(log.roster.size);
  const standings: Standing[] = ['member', 'invited', 'requested'];
  for (const [id, m] of log.roster)
    w.str(id)
      .fixed(encodePublicIdentity(m.identity))
      .u8(m.role === 'admin' ? 1 : 0)
      .u8(standings.indexOf(m.standing))
      .u32(m.since)
      .str(m.by);
  return w.finish();
}

/** Restores `encodeGroupLog` output; BAD_STATE for anything else. */
export function decodeGroupLog(bytes: Uint8Array): GroupLog {
  try {
    const r = new Reader(bytes);
    if (r.u8() !== 1) throw new Error('version');
    const groupId = r.str();
    const creator = r.str();
    const creatorIdentity = decodePublicIdentity(r.fixed(IDENTITY_BYTES).slice());
    const epoch = r.u32();
    const heads: Uint8Array[] = [];
    for (let i = 0; i <= epoch; i++) heads.push(r.fixed(HASH_BYTES).slice());
    const policy = r.u8() as JoinPolicy;
    const approval = r.u8() === 1;
    const linkKey = r.u8() === 1 ? r.fixed(P256_PUBLIC_BYTES).slice() : undefined;
    const deleted = r.u8() === 1;
    const roster = new Map<string, RosterEntry>();
    const standings: Standing[] = ['member', 'invited', 'requested'];
    for (let n = r.u32(); n > 0; n--) {
      const id = r.str();
      const identity = decodePublicIdentity(r.fixed(IDENTITY_BYTES).slice());
      const role: Role = r.u8() === 1 ? 'admin' : 'member';
      const standing = standings[r.u8()];
      if (!standing) throw new Error('standing');
      roster.set(id, { identity, role, standing, since: r.u32(), by: r.str() });
    }
    r.end();
    return { groupId, creator, creatorIdentity, epoch, heads, policy, approval, linkKey, roster, deleted };
  } catch {
    throw new StorageError(ErrorCode.BAD_STATE, 'group log state is corrupt or of another version');
  }
}

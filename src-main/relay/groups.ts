/**
 * Groups on the relay. A group is its signed, hash-chained membership log (core/crypto/membership.ts);
 * the relay checks every entry exactly as every member will (format, chain, signature, the author's
 * right) and also that the identities an entry names are the ones registered here, but it can neither
 * make nor change an entry: it stores and forwards them. From the verified state it knows who may read
 * the log, who gets a group's messages (its full members) and whom to tell about a new entry.
 *
 * The verified state of each group is kept in memory and, with every entry, written through the store's
 * batch; each new entry goes out as a durable `groupEntry` event to everyone on the roster before or
 * after it, in the same batch, ordered with the messages around it.
 */
import { decodePublicIdentity, sameIdentityKeys, type PublicIdentity } from '../core/crypto/identity.js';
import { P256_PUBLIC_BYTES } from '../core/crypto/primitives.js';
import { equalBytes } from '../core/encoding.js';
import {
  EntryType,
  JoinPolicy,
  type Entry,
  type GroupLog,
  applyEntry,
  decodeEntry,
  decodeGroupLog,
  encodeGroupLog,
  startLog,
} from '../core/crypto/membership.js';
import { E2EEError, ErrorCode } from '../core/errors.js';
import { MAX_LOG_PAGE, RelayErrorCode, b64, type RelayEvent } from '../core/protocol/wire.js';
import { RelayError } from './context.js';
import type { Router } from './router.js';
import type { RelayStore } from './relay-store.js';

/** A group as `ready` lists it: its head only. */
export interface GroupHead {
  group: string;
  epoch: number;
  head: string;
}

/** What the groups need to know about registered users. */
export interface Registry {
  /** The registered identity of a user, if any. */
  identityOf(userId: string): Uint8Array | undefined;
}

const unknownGroup = (group: string): RelayError =>
  new RelayError(RelayErrorCode.UNKNOWN_GROUP, `There is no group named "${group}".`);
const notAMember = (group: string): RelayError =>
  new RelayError(RelayErrorCode.NOT_A_MEMBER, `You are not a member of "${group}".`);
const badEntry = (message: string): RelayError => new RelayError(RelayErrorCode.BAD_ENTRY, message);

/** Group logs and what follows from them; each operation throws RelayError when refused. */
export class Groups {
  private readonly byId = new Map<string, GroupLog>();
  /** Groups by everyone on their roster (any standing). */
  private readonly byUser = new Map<string, Set<string>>();
  /** Full members a group's messages go to, computed when its roster changes. */
  private readonly routes = new Map<string, readonly string[]>();

  constructor(
    private readonly store: RelayStore,
    private readonly router: Router,
    private readonly registry: Registry,
    private readonly now: () => number,
    private readonly limits: { readonly groupMembers: number; readonly groupsPerUser: number },
    /** Whether one more item of `bytes` fits `recipient`'s mailbox quota (limits.ts mailboxHasRoom). */
    private readonly hasRoom: (recipient: string, bytes: number) => boolean,
  ) {
    for (const { group, state } of store.loadGroupStates()) this.track(group, decodeGroupLog(state));
  }

  /** How many groups there are. */
  get count(): number {
    return this.byId.size;
  }

  /** The groups `userId` is on the roster of (as the identity registered now), as heads. */
  headsOf(userId: string): GroupHead[] {
    return [...(this.byUser.get(userId) ?? [])]
      .map((group) => this.byId.get(group)!)
      .filter((log) => this.onRoster(log, userId))
      .map((log) => ({ group: log.groupId, epoch: log.epoch, head: b64(log.heads[log.epoch]!) }));
  }

  /** The full members a group message of `userId` goes to (refused unless `userId` is one). */
  membersFor(group: string, userId: string): readonly string[] {
    if (!this.routes.get(group)?.includes(userId)) {
      this.get(group);
      throw notAMember(group);
    }
    return this.routes.get(group)!;
  }

  /**
   * A page of a group's log from epoch `from`: for people on its roster, and for anyone when the group
   * lets people join by themselves (open or link: the joiner needs the log to make its entry).
   */
  readLog(
    group: string,
    userId: string,
    from: number,
    limit = MAX_LOG_PAGE,
  ): { epoch: number; entries: string[] } {
    const log = this.get(group);
    if (log.policy === JoinPolicy.INVITE_ONLY && !this.onRoster(log, userId)) throw notAMember(group);
    const count = Math.max(0, Math.min(limit, MAX_LOG_PAGE, log.epoch - from + 1));
    const entries = count > 0 ? this.store.groupEntries(group, from, count).map(b64) : [];
    return { epoch: log.epoch, entries };
  }

  /** Appends `bytes` (an entry `userId` made) to its group's log; returns the new head. */
  append(userId: string, group: string, bytes: Uint8Array): GroupHead {
    let entry: Entry;
    try {
      entry = decodeEntry(bytes);
    } catch (e) {
      throw badEntry(`The group entry does not decode: ${(e as Error).message}.`);
    }
    if (entry.groupId !== group) throw badEntry(`The entry is for "${entry.groupId}", not "${group}".`);
    if (entry.author !== userId) throw badEntry('An entry is appended by its author.');

    const before = this.byId.get(group);
    let after: GroupLog;
    try {
      if (entry.type === EntryType.GENESIS) {
        if (before)
          throw new RelayError(RelayErrorCode.GROUP_EXISTS, `A group named "${group}" already exists.`);
        this.checkRegistered(userId, entry.creator);
        this.checkRoom(userId, 'own');
        after = startLog(entry).log;
      } else {
        if (!before) throw unknownGroup(group);
        // A stranger learns nothing of an invite-only group but that it exists (not even its epoch,
        // the count of its changes): refused as its log is (readLog).
        if (before.policy === JoinPolicy.INVITE_ONLY && !this.onRoster(before, userId))
          throw notAMember(group);
        if (entry.epoch !== before.epoch + 1)
          throw new RelayError(
            RelayErrorCode.STALE_ENTRY,
            `The entry is for epoch ${entry.epoch}; "${group}" is at epoch ${before.epoch}. Read the log and try again.`,
          );
        if (entry.type === EntryType.INVITE) {
          this.checkRegistered(entry.userId, entry.identity);
          this.checkRoom(entry.userId, 'invited');
        }
        if (entry.type === EntryType.JOIN) {
          this.checkRegistered(userId, entry.identity);
          this.checkRoom(userId, 'own');
        }
        if (entry.type === EntryType.ACCEPT) this.checkRoom(userId, 'own');
        after = applyEntry(before, entry, { maxRoster: this.limits.groupMembers }).log;
      }
    } catch (e) {
      if (e instanceof RelayError) throw e;
      throw this.refusal(e, group, before);
    }

    // Those it concerns get the entry; everyone else on the roster a notice of the new head, which
    // replaces the older one they have not read yet.
    const told = concerned(entry, before, after);
    const event: RelayEvent = { type: 'groupEntry', group, epoch: entry.epoch, entry: b64(bytes) };
    const text = JSON.stringify(event);
    const ts = this.now();
    // Within each mailbox's quota: someone invited and removed over and over must not have their
    // mailbox filled. One who misses an entry this way reads it from the log (ready lists the group,
    // or no longer lists it and they read it; docs/PROTOCOL.md "Client behaviour").
    for (const user of told)
      if (this.hasRoom(user, text.length)) this.router.route(user, { kind: 'event', event: text }, ts);
    if (!after.deleted) {
      const notice: RelayEvent = {
        type: 'groupHead',
        group,
        epoch: after.epoch,
        head: b64(after.heads[after.epoch]!),
      };
      const noticeText = JSON.stringify(notice);
      for (const user of new Set([...(before?.roster.keys() ?? []), ...after.roster.keys()]))
        if (!told.has(user)) this.router.routeHead(user, group, noticeText, ts);
    }

    if (after.deleted) {
      this.untrack(group);
      this.store.deleteGroupLog(group);
    } else {
      this.track(group, after);
      this.store.appendGroupEntry(group, entry.epoch, bytes, encodeGroupLog(after));
    }
    // The change is in memory at once (the next entry builds on it); if its batch fails to commit, the
    // group goes back to what the database holds, so memory is never ahead of the disk.
    this.store.afterCommit((err) => {
      if (err !== undefined) this.reload(group);
    });
    return { group, epoch: after.epoch, head: b64(after.heads[after.epoch]!) };
  }

  /** A registered user's identity changed hands (account deleted, id registered again): recompute routes. */
  refreshUser(userId: string): void {
    for (const group of this.byUser.get(userId) ?? []) this.route(group, this.byId.get(group)!);
  }

  /** A sentence for an entry the core refused. */
  private refusal(e: unknown, group: string, before: GroupLog | undefined): RelayError {
    const message = e instanceof Error ? e.message : String(e);
    if (e instanceof E2EEError) {
      if (e.code === ErrorCode.NOT_ALLOWED) {
        const full = before && before.roster.size >= this.limits.groupMembers;
        return new RelayError(
          full ? RelayErrorCode.GROUP_FULL : RelayErrorCode.FORBIDDEN,
          full
            ? `"${group}" has reached this relay's limit of ${this.limits.groupMembers} people.`
            : `Not allowed: ${message}.`,
        );
      }
      if (e.code === ErrorCode.BAD_ENTRY && before && /does not follow/.test(message))
        return new RelayError(
          RelayErrorCode.STALE_ENTRY,
          `The entry does not follow "${group}"'s head at epoch ${before.epoch}. Read the log and try again.`,
        );
    }
    return badEntry(`The group entry was refused: ${message}.`);
  }

  /** Someone joining a group's roster must have room for one more group (limits.groupsPerUser). */
  /**
   * limits.groupsPerUser. For a user's own entry (create, join, accept) only the groups they chose count:
   * invitations they have not accepted do not, or anyone could fill a stranger's quota with invitations
   * and lock them out of every group. An invitation counts every roster the invitee is on, so what
   * others can put on someone is bounded too (to the limit, besides the limit of their own).
   */
  private checkRoom(userId: string, by: 'own' | 'invited'): void {
    const groups = this.byUser.get(userId) ?? new Set<string>();
    let count = groups.size;
    if (by === 'own')
      for (const group of groups)
        if (this.byId.get(group)?.roster.get(userId)?.standing === 'invited') count--;
    if (count >= this.limits.groupsPerUser)
      throw new RelayError(
        RelayErrorCode.QUOTA,
        `${userId} is already in ${this.limits.groupsPerUser} groups, this relay's limit per person.`,
      );
  }

  /** An identity named in an entry must be the one the user registered here. */
  private checkRegistered(userId: string, identity: PublicIdentity): void {
    const registered = this.registry.identityOf(userId);
    if (!registered) throw new RelayError(RelayErrorCode.UNKNOWN_USER, `There is no user "${userId}".`);
    if (!sameIdentityKeys(decodePublicIdentity(registered), identity))
      throw badEntry(`The entry names another identity for "${userId}" than the one registered here.`);
  }

  /** Takes a group's state from the database again (after a failed commit). */
  private reload(group: string): void {
    let state: Uint8Array | undefined;
    try {
      state = this.store.groupState(group);
    } catch {
      return; // the database cannot be read either: memory stays as it is (the relay logs the fault)
    }
    if (state === undefined) this.untrack(group);
    else this.track(group, decodeGroupLog(state));
  }

  private get(group: string): GroupLog {
    const log = this.byId.get(group);
    if (!log) throw unknownGroup(group);
    return log;
  }

  private track(group: string, log: GroupLog): void {
    const previous = this.byId.get(group);
    for (const user of previous?.roster.keys() ?? [])
      if (!log.roster.has(user)) this.byUser.get(user)?.delete(group);
    for (const user of log.roster.keys()) {
      let set = this.byUser.get(user);
      if (!set) this.byUser.set(user, (set = new Set()));
      set.add(group);
    }
    this.byId.set(group, log);
    this.route(group, log);
  }

  private untrack(group: string): void {
    for (const user of this.byId.get(group)?.roster.keys() ?? []) this.byUser.get(user)?.delete(group);
    this.byId.delete(group);
    this.routes.delete(group);
  }

  /** On the roster as the identity registered now (an id registered again by someone else is not). */
  private onRoster(log: GroupLog, userId: string): boolean {
    const m = log.roster.get(userId);
    const registered = m && this.registry.identityOf(userId);
    return registered !== undefined && sameKeysAs(registered, m!.identity);
  }

  /** Full members whose registered identity is still the one on the roster. */
  private route(group: string, log: GroupLog): void {
    const to: string[] = [];
    for (const [user, m] of log.roster) {
      if (m.standing !== 'member') continue;
      const registered = this.registry.identityOf(user);
      if (registered && sameKeysAs(registered, m.identity)) to.push(user);
    }
    this.routes.set(group, to);
  }
}

/**
 * True when a registered identity (194 bytes: signing key, DH key, certificate) has `identity`'s keys.
 * Compares the key bytes only: decoding would check the certificate again, an ECDSA verification per
 * member whenever a roster changes, and the relay verified it when the user registered.
 */
function sameKeysAs(registered: Uint8Array, identity: PublicIdentity): boolean {
  return (
    equalBytes(registered.subarray(0, P256_PUBLIC_BYTES), identity.signingKey) &&
    equalBytes(registered.subarray(P256_PUBLIC_BYTES, 2 * P256_PUBLIC_BYTES), identity.dhKey)
  );
}

/**
 * Who gets an entry itself (a durable `groupEntry` delivery). A removal and a deletion go to everyone on
 * the roster, so that nobody goes on sending to someone removed. Any other change goes to its author, the
 * person it is about, and the admins (who invite and approve); the other members get a head notice, of
 * which at most one per group waits for them, and read the entries with groupLog (docs/PROTOCOL.md,
 * Groups). So a thousand joins leave at most one notice per member queued, not a thousand.
 */
function concerned(entry: Entry, before: GroupLog | undefined, after: GroupLog): Set<string> {
  if (entry.type === EntryType.REMOVE || entry.type === EntryType.DELETE)
    return new Set([...(before?.roster.keys() ?? []), ...after.roster.keys()]);
  const told = new Set([entry.author]);
  if ('userId' in entry) told.add(entry.userId);
  for (const [user, m] of after.roster) if (m.standing === 'member' && m.role === 'admin') told.add(user);
  return told;
}

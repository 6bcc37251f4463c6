/**
 * Changing a group's membership from this device: each change is an entry we sign (membership.ts),
 * appended at the relay on top of the head we verified. When someone else's entry landed first the
 * relay answers STALE_ENTRY: we read the log up to its head, check the change still makes sense on
 * the new roster, and sign it again. Once the relay has it, we apply it to our verified log ourselves
 * (the copy the relay delivers later is then a duplicate) and announce what changed.
 *
 * Also here: the invite link (a secret key an admin makes; whoever holds it may join, or ask to) and
 * the events every roster change becomes, whether we made it, it arrived live, or we found it at `ready`.
 */
import type { EventEmitter } from 'node:events';
import { decodePublicIdentity } from '../crypto/identity.js';
import {
  type EntryAuthor,
  type EntryBody,
  EntryType,
  type GroupLog,
  JoinPolicy,
  type Role,
  type RosterChange,
  applyEntry,
  compareView,
  decodeEntry,
  members,
} from '../crypto/membership.js';
import { SigningKeyPair } from '../crypto/primitives.js';
import { equalBytes } from '../encoding.js';
import { ErrorCode, ProtocolError, RelayError, UsageError } from '../errors.js';
import { b64 } from '../protocol/wire.js';
import type { E2EEClientEvents } from './client.js';
import type { Applied, Changes, GroupProblem, Groups } from './groups.js';
import type { RelayRequest } from './sessions.js';

/** How often a change is signed again after losing the race to another entry. */
const MAX_ATTEMPTS = 5;

/** The policy names of the API. */
export type PolicyName = 'invite-only' | 'open' | 'link';
export const policyName = (p: JoinPolicy): PolicyName =>
  p === JoinPolicy.OPEN ? 'open' : p === JoinPolicy.LINK ? 'link' : 'invite-only';

/** What the membership changes need from their client. */
export interface GroupChangeContext {
  readonly userId: string;
  readonly groups: Groups;
  readonly author: () => EntryAuthor;
  readonly request: RelayRequest;
  /** Runs `fn` under the client's lock (after every earlier state change). */
  readonly exclusive: <T>(fn: () => Promise<T>) => Promise<T>;
  readonly write: (changes: Changes) => Promise<void>;
  readonly events: EventEmitter<E2EEClientEvents>;
  /** The identity we have pinned for a contact (fetching their bundle on first contact). */
  readonly identityFor: (userId: string) => Promise<Uint8Array>;
  /** The relay URL, for invite links. */
  readonly relayUrl: string;
}

/** An invite link: `sealed://join?relay=<url>&group=<name>#<base64url of the link's private key>`. */
export function formatInviteLink(relayUrl: string, group: string, key: Uint8Array): string {
  const secret = Buffer.from(key).toString('base64url');
  return `sealed://join?relay=${encodeURIComponent(relayUrl)}&group=${encodeURIComponent(group)}#${secret}`;
}

/** Parses an invite link; TypeError for anything else. */
export function parseInviteLink(link: string): { relay: string; group: string; key: Uint8Array } {
  let url: URL;
  try {
    url = new URL(link);
  } catch {
    throw new TypeError('not an invite link');
  }
  const relay = url.searchParams.get('relay');
  const group = url.searchParams.get('group');
  const key = Buffer.from(url.hash.slice(1), 'base64url');
  if (url.protocol !== 'sealed:' || url.host !== 'join' || !relay || !group || key.length !== 32)
    throw new TypeError('not an invite link');
  return { relay, group, key: new Uint8Array(key) };
}

/** Turns what processing entries did into the client's events, in order. */
export function announce(
  events: EventEmitter<E2EEClientEvents>,
  me: string,
  group: string,
  applied: Applied,
  log: GroupLog | undefined,
): void {
  for (const c of applied.roster) announceChange(events, me, group, c, log);
  if (applied.problem) announceProblem(events, group, applied.problem);
  else if (applied.cleared) events.emit('groupInSync', { group });
}

function announceChange(
  events: EventEmitter<E2EEClientEvents>,
  me: string,
  group: string,
  c: RosterChange,
  log: GroupLog | undefined,
): void {
  switch (c.kind) {
    case 'created':
      events.emit('groupCreated', { group });
      return;
    case 'invited':
      if (c.userId === me) events.emit('groupInvitation', { group, by: c.by });
      else events.emit('groupMemberInvited', { group, userId: c.userId, by: c.by });
      return;
    case 'joined':
      if (c.userId === me)
        events.emit('groupJoin', { group, creator: log?.creator ?? '', members: log ? members(log) : [me] });
      else events.emit('groupMemberJoin', { group, userId: c.userId, by: c.by });
      return;
    case 'requested':
      events.emit('groupJoinRequest', { group, userId: c.userId });
      return;
    case 'left':
    case 'removed': {
      const by = c.kind === 'removed' ? c.by : undefined;
      if (c.userId === me) events.emit('groupLeave', { group, removedBy: by, standing: c.standing });
      else events.emit('groupMemberLeave', { group, userId: c.userId, removedBy: by, standing: c.standing });
      return;
    }
    case 'role':
      events.emit('groupRoleChanged', { group, userId: c.userId, role: c.role, by: c.by });
      return;
    case 'policy':
      events.emit('groupPolicyChanged', {
        group,
        policy: policyName(c.policy),
        approval: c.approval,
        linkChanged: c.linkChanged,
        by: c.by,
      });
      return;
    case 'deleted':
      events.emit('groupDeleted', { group, by: c.by });
      return;
  }
}

function announceProblem(events: EventEmitter<E2EEClientEvents>, group: string, p: GroupProblem): void {
  events.emit('groupOutOfSync', { group, kind: p.kind, userId: p.userId, epoch: p.epoch });
}

/** Membership changes this device makes (each method refuses with a sentence when it cannot). */
export class GroupChanges {
  constructor(private readonly c: GroupChangeContext) {}

  /** Starts a group with us as its first admin: invite-only unless `policy` says 'open'. */
  async create(group: string, policy: 'invite-only' | 'open'): Promise<void> {
    const genesis = this.c
      .author()
      .genesis(group, policy === 'open' ? JoinPolicy.OPEN : JoinPolicy.INVITE_ONLY);
    await this.append(group, genesis);
    await this.c.exclusive(async () => {
      const applied = this.c.groups.create(group, genesis);
      await this.c.write(applied.changes);
      announce(this.c.events, this.c.userId, group, applied, this.c.groups.get(group)?.log);
    });
  }

  /** Invites a user (we must be an admin); their identity as we pinned it goes into the signed entry. */
  async invite(group: string, userId: string): Promise<void> {
    if (userId === this.c.userId) throw new UsageError('you are already on the roster');
    const identity = await this.c.identityFor(userId);
    await this.change(group, (log) => {
      if (log.roster.has(userId)) throw refused(`${userId} is already on the roster of ${group}`);
      return { type: EntryType.INVITE, userId, identity: decodePublicIdentity(identity) };
    });
  }

  /** Accepts an invitation: we become a full member. */
  accept(group: string): Promise<void> {
    return this.change(group, (log) => {
      if (log.roster.get(this.c.userId)?.standing !== 'invited')
        throw refused(`you have no invitation to ${group}`);
      return { type: EntryType.ACCEPT };
    });
  }

  /** Leaves a group, or declines an invitation, or withdraws a join request. */
  leave(group: string): Promise<void> {
    return this.change(group, () => ({ type: EntryType.LEAVE }));
  }

  /** Removes someone (a member, an invitee, or a join request we decline). */
  remove(group: string, userId: string): Promise<void> {
    return this.change(group, (log) => {
      if (!log.roster.has(userId)) throw refused(`${userId} is not on the roster of ${group}`);
      return { type: EntryType.REMOVE, userId };
    });
  }

  /** Makes a member an admin, or an admin a member. */
  setRole(group: string, userId: string, role: Role): Promise<void> {
    return this.change(group, () => ({ type: EntryType.ROLE, userId, role }));
  }

  /** Approves a join request made through the invite link. */
  approve(group: string, userId: string): Promise<void> {
    return this.change(group, () => ({ type: EntryType.APPROVE, userId }));
  }

  /** Deletes the group for everyone (admins only). */
  delete(group: string): Promise<void> {
    return this.change(group, () => ({ type: EntryType.DELETE }));
  }

  /**
   * Sets who may join. 'link' makes a new invite link (any earlier one stops working) and returns it;
   * with `approval`, an admin approves each person who uses it.
   */
  async setPolicy(group: string, policy: PolicyName, approval = false): Promise<string | undefined> {
    const key = policy === 'link' ? SigningKeyPair.generate() : undefined;
    await this.change(group, () => ({
      type: EntryType.POLICY,
      policy:
        policy === 'open' ? JoinPolicy.OPEN : policy === 'link' ? JoinPolicy.LINK : JoinPolicy.INVITE_ONLY,
      approval: policy === 'link' && approval,
      linkKey: key?.publicKey,
    }));
    if (!key) return undefined;
    await this.c.exclusive(async () => this.c.write(this.c.groups.setLink(group, key.privateKeyBytes())));
    return formatInviteLink(this.c.relayUrl, group, key.privateKeyBytes());
  }

  /** The current invite link, if we made it. */
  link(group: string): string | undefined {
    const g = this.c.groups.get(group);
    return g?.link && formatInviteLink(this.c.relayUrl, group, g.link);
  }

  /**
   * Joins a group we are not on: an open one by name, or with an invite link (its key signs our entry).
   * Returns our standing afterwards: 'member', or 'requested' when an admin must approve.
   */
  async join(group: string, linkKey?: Uint8Array): Promise<'member' | 'requested'> {
    const key = linkKey && SigningKeyPair.fromPrivateKey(linkKey);
    for (let attempt = 1; ; attempt++) {
      if (this.c.groups.get(group)?.log.roster.has(this.c.userId))
        throw refused(`you are already on the roster of ${group}`);
      const { log, changes } = await this.c.groups.readWhole(group).catch((e: unknown) => {
        // The relay lets only the roster read an invite-only group's log.
        if (e instanceof RelayError && e.relayCode === 'NOT_A_MEMBER')
          throw refused(`${group} is invite-only: ask an admin to invite you`);
        throw relayRefusal(e, group);
      });
      if (log.deleted) throw refused(`${group} was deleted`);
      if (key && (log.policy !== JoinPolicy.LINK || !log.linkKey || !equalBytes(log.linkKey, key.publicKey)))
        throw refused(`this invite link to ${group} no longer works: an admin replaced or revoked it`);
      if (!key && log.policy !== JoinPolicy.OPEN)
        throw refused(
          log.policy === JoinPolicy.LINK
            ? `${group} is joined with its invite link: ask an admin for it`
            : `${group} is invite-only: ask an admin to invite you`,
        );
      const bytes = this.c.author().join(log, key);
      applyEntry(log, decodeEntry(bytes)); // a revoked link or a closed group fails here
      try {
        await this.append(group, bytes);
      } catch (e) {
        if (isStale(e) && attempt < MAX_ATTEMPTS) continue;
        throw e;
      }
      return this.c.exclusive(async () => {
        const entry = decodeEntry(bytes);
        // The relay's copy of our entry may have come first (and been applied, and announced).
        const known = this.c.groups.get(group);
        if (known && compareView(known.log, entry.epoch, entry.hash) !== 'fork') {
          await this.c.write(changes);
          return known.log.roster.get(this.c.userId)?.standing === 'requested' ? 'requested' : 'member';
        }
        const mine = applyEntry(log, entry);
        await this.c.write(new Map([...changes, ...this.c.groups.adopt(group, mine.log)]));
        announce(
          this.c.events,
          this.c.userId,
          group,
          { changes: new Map(), roster: [mine.change] },
          mine.log,
        );
        return mine.log.roster.get(this.c.userId)!.standing === 'member' ? 'member' : 'requested';
      });
    }
  }

  /** Makes an entry from our verified log (re-made on the newer log after STALE_ENTRY), appends it, applies it. */
  private async change(
    group: string,
    body: (log: GroupLog) => Exclude<EntryBody, { type: typeof EntryType.GENESIS }>,
  ): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      const g = this.c.groups.get(group);
      if (!g) throw new ProtocolError(ErrorCode.NOT_A_MEMBER, `you are not on the roster of ${group}`);
      if (g.problem?.kind === 'fork' || g.problem?.kind === 'missing')
        throw new ProtocolError(ErrorCode.GROUP_OUT_OF_SYNC, outOfSyncSentence(group, g.problem));
      const bytes = this.c.author().next(g.log, body(g.log));
      // Checked as every member will check it before the relay sees it: a change we may not make
      // fails here, with the core's sentence, told to us as "you".
      try {
        applyEntry(g.log, decodeEntry(bytes));
      } catch (e) {
        throw e instanceof ProtocolError && e.code === ErrorCode.NOT_ALLOWED
          ? new ProtocolError(e.code, toSecondPerson(e.message, this.c.userId))
          : e;
      }
      try {
        await this.append(group, bytes);
      } catch (e) {
        if (isStale(e) && attempt < MAX_ATTEMPTS) {
          await this.c.exclusive(async () => {
            const applied = await this.c.groups.catchUp(group);
            await this.c.write(applied.changes);
            announce(this.c.events, this.c.userId, group, applied, this.c.groups.get(group)?.log);
          });
          continue;
        }
        throw e;
      }
      const epoch = decodeEntry(bytes).epoch;
      await this.c.exclusive(async () => {
        const applied = await this.c.groups.receive(group, epoch, bytes);
        await this.c.write(applied.changes);
        announce(this.c.events, this.c.userId, group, applied, this.c.groups.get(group)?.log);
      });
      return;
    }
  }

  private async append(group: string, bytes: Uint8Array): Promise<void> {
    try {
      await this.c.request({ t: 'groupAppend', rid: 0, group, entry: b64(bytes) });
    } catch (e) {
      throw relayRefusal(e, group);
    }
  }
}

function refused(message: string): ProtocolError {
  return new ProtocolError(ErrorCode.NOT_ALLOWED, message);
}

function isStale(e: unknown): boolean {
  return e instanceof RelayError && e.relayCode === 'STALE_ENTRY';
}

/** Relay refusals of a membership change, as typed errors (STALE_ENTRY stays a RelayError for the retry). */
function relayRefusal(e: unknown, group: string): unknown {
  if (!(e instanceof RelayError)) return e;
  switch (e.relayCode) {
    case 'FORBIDDEN':
      return refused(`the relay refused the change to ${group}: ${e.message}`);
    case 'NOT_A_MEMBER':
      return new ProtocolError(ErrorCode.NOT_A_MEMBER, `you are not on the roster of ${group}`);
    default:
      return e;
  }
}

/** The sentence for a group whose log we cannot trust to match the others'. */
export function outOfSyncSentence(group: string, p: GroupProblem): string {
  switch (p.kind) {
    case 'fork':
      return `${p.userId ?? 'Another member'} sees a different member list of ${group} than you: the relay may be showing you different histories. Compare the group's safety number.`;
    case 'withheld':
      return `${p.userId ?? 'Another member'} is at a later change of ${group}'s member list that the relay does not give you.`;
    case 'relay-behind':
      return `The relay's member list of ${group} is older than yours: it lost changes, or is hiding them.`;
    case 'missing':
      return `The relay no longer knows ${group}, and no one deleted it.`;
  }
}

/** The core's refusal of our own entry ("alice is not an admin of …"), said to alice ("you are not …"). */
export function toSecondPerson(message: string, self: string): string {
  if (message.startsWith(`${self} is `)) return `you are ${message.slice(self.length + 4)}`;
  if (message.startsWith(`${self} has `)) return `you have ${message.slice(self.length + 5)}`;
  return message;
}

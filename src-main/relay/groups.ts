/**
 * Groups: membership lives in memory (the authority for routing, loaded from SQLite at start) and is
 * written through the store's batch, in the same transaction as the durable events that announce each
 * change; so no member misses a change while offline or across a restart.
 */
import { RelayErrorCode, type RelayEvent } from '../core/protocol/wire.js';
import { RelayError } from './context.js';
import type { Router } from './router.js';
import type { Store } from './store.js';

/** A group as listed in `ready`. */
export interface GroupInfo {
  group: string;
  creator: string;
  members: string[];
}

interface Group {
  readonly creator: string;
  /** In join order. */
  readonly members: Set<string>;
}

/** Group state and its operations; each operation throws RelayError when refused. */
export class Groups {
  private readonly byId = new Map<string, Group>();
  private readonly byUser = new Map<string, Set<string>>();

  constructor(
    private readonly store: Store,
    private readonly router: Router,
    private readonly now: () => number,
  ) {
    for (const g of store.loadGroups()) {
      this.byId.set(g.group, { creator: g.creator, members: new Set(g.members) });
      for (const m of g.members) this.indexMember(g.group, m);
    }
  }

  /** Every group `userId` belongs to. */
  of(userId: string): GroupInfo[] {
    return [...(this.byUser.get(userId) ?? [])].map((group) => {
      const g = this.byId.get(group)!;
      return { group, creator: g.creator, members: [...g.members] };
    });
  }

  /** The members of a group `userId` belongs to (live view: do not mutate). */
  membersFor(group: string, userId: string): ReadonlySet<string> {
    const g = this.get(group);
    if (!g.members.has(userId)) throw notAMember(group);
    return g.members;
  }

  create(group: string, creator: string): string[] {
    if (this.byId.has(group))
      throw new RelayError(RelayErrorCode.GROUP_EXISTS, `A group named "${group}" already exists.`);
    this.byId.set(group, { creator, members: new Set([creator]) });
    this.indexMember(group, creator);
    this.store.insertGroup(group, creator, this.now());
    this.event(creator, { type: 'groupCreated', group });
    return [creator];
  }

  /** Adds `userId`; a member joining again changes nothing and announces nothing. */
  join(group: string, userId: string): { creator: string; members: string[] } {
    const g = this.get(group);
    const creator = g.creator;
    if (g.members.has(userId)) return { creator, members: [...g.members] };
    g.members.add(userId);
    this.indexMember(group, userId);
    this.store.addMember(group, userId);
    const members = [...g.members];
    this.event(userId, { type: 'groupJoin', group, creator, members });
    for (const m of g.members) if (m !== userId) this.event(m, { type: 'groupMemberJoin', group, userId });
    return { creator, members };
  }

  leave(group: string, userId: string): void {
    const g = this.get(group);
    if (!g.members.has(userId)) throw notAMember(group);
    this.removeMember(group, g, userId);
    this.event(userId, { type: 'groupLeave', group });
  }

  /** Deletes a group; only its creator may. */
  delete(group: string, userId: string): void {
    const g = this.get(group);
    if (g.creator !== userId)
      throw new RelayError(RelayErrorCode.FORBIDDEN, `Only the creator of "${group}" can delete it.`);
    for (const m of g.members) {
      this.event(m, { type: 'groupDeleted', group });
      this.byUser.get(m)?.delete(group);
    }
    this.byId.delete(group);
    this.store.deleteGroup(group);
  }

  /**
   * Removes a deleted account: the groups it created are deleted (otherwise whoever registers the
   * freed id later could delete them), and it leaves the others, telling the remaining members.
   */
  removeUser(userId: string): void {
    for (const [group, g] of [...this.byId]) if (g.creator === userId) this.delete(group, userId);
    for (const group of [...(this.byUser.get(userId) ?? [])]) {
      this.removeMember(group, this.byId.get(group)!, userId);
    }
    this.byUser.delete(userId);
  }

  private removeMember(group: string, g: Group, userId: string): void {
    g.members.delete(userId);
    this.byUser.get(userId)?.delete(group);
    this.store.removeMember(group, userId);
    for (const m of g.members) this.event(m, { type: 'groupMemberLeave', group, userId });
  }

  private get(group: string): Group {
    const g = this.byId.get(group);
    if (!g) throw new RelayError(RelayErrorCode.UNKNOWN_GROUP, `There is no group named "${group}".`);
    return g;
  }

  private indexMember(group: string, userId: string): void {
    let set = this.byUser.get(userId);
    if (!set) this.byUser.set(userId, (set = new Set()));
    set.add(group);
  }

  /** Group events are durable deliveries, ordered with the messages around them. */
  private event(recipient: string, event: RelayEvent): void {
    this.router.route(recipient, { kind: 'event', event: JSON.stringify(event) }, this.now());
  }
}

function notAMember(group: string): RelayError {
  return new RelayError(RelayErrorCode.NOT_A_MEMBER, `You are not a member of "${group}".`);
}

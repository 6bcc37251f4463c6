/**
 * The groups we are in, as this device knows them: per group our GroupSession (our sender key and the
 * members'), the members and creator as the relay last told us, and the members our current sender key
 * has not reached yet. Every change returns the state-store writes it needs; the client writes them
 * in its atomic batches. A group is stored under `group/<name>`:
 *
 *   u8 version=1 | bytes session | str creator | u32 n | n × str member | u32 m | m × str needsKey
 */
import { GroupSession, type RotationPolicy } from '../crypto/sender-keys.js';
import { Reader, Writer } from '../encoding.js';
import { ErrorCode, ProtocolError } from '../errors.js';
import type { RelayEvent } from '../protocol/wire.js';
import type { StateStore } from './stores.js';

/** One group's state on this device. */
export interface GroupState {
  session: GroupSession;
  members: Set<string>;
  creator: string;
  /** Members our current sender key could not be sent to yet (no session possible): retried before each send. */
  needsKey: Set<string>;
}

/** A group event the relay delivers durably, in order with messages. */
export type GroupEvent = Exclude<RelayEvent, { type: 'userCreated' } | { type: 'userDeleted' }>;

/** The client options that shape group keys; read when needed, as the client always did. */
export interface GroupOptions {
  rotation?: RotationPolicy | undefined;
  transitionWindowMs?: number | undefined;
}

type Changes = Map<string, Uint8Array | null>;

const PREFIX = 'group/';

/** Our groups by name, loaded from and written back to the state store by the client. */
export class Groups {
  private readonly groups = new Map<string, GroupState>();

  constructor(
    private readonly userId: string,
    private readonly opts: GroupOptions,
    private readonly now: () => number,
  ) {}

  /** Loads every stored group. */
  async load(store: StateStore): Promise<void> {
    for (const key of await store.keys(PREFIX)) {
      const bytes = await store.get(key);
      if (bytes) this.groups.set(key.slice(PREFIX.length), decodeGroupState(bytes));
    }
  }

  /** The state of a group we are in, if any. */
  get(group: string): GroupState | undefined {
    return this.groups.get(group);
  }

  /** Our groups with creator and sorted members. */
  list(): { group: string; creator: string; members: string[] }[] {
    return [...this.groups].map(([group, g]) => ({
      group,
      creator: g.creator,
      members: [...g.members].sort(),
    }));
  }

  /** The state-store entry of a group's current state. */
  entry(group: string, g: GroupState): [string, Uint8Array] {
    return [`${PREFIX}${group}`, encodeGroupState(g)];
  }

  /**
   * Applies the relay's membership snapshot (sent with 'ready'): anything that changed while we were
   * away forces a key rotation, and groups we are no longer in are forgotten.
   */
  sync(snapshot: readonly { group: string; creator: string; members: string[] }[]): Changes {
    const changes: Changes = new Map();
    const current = new Set(snapshot.map((g) => g.group));
    for (const info of snapshot) {
      const g = this.groups.get(info.group) ?? this.fresh(info.group, info.creator, []);
      g.creator = info.creator;
      const next = new Set(info.members);
      const same = g.members.size === next.size && [...next].every((m) => g.members.has(m));
      if (!same) {
        for (const m of g.members) if (!next.has(m)) g.session.removeSender(m);
        g.members = next;
        g.session.membershipChanged();
      }
      this.groups.set(info.group, g);
      changes.set(...this.entry(info.group, g));
    }
    for (const group of [...this.groups.keys()]) {
      if (!current.has(group)) {
        this.groups.delete(group);
        changes.set(`${PREFIX}${group}`, null);
      }
    }
    return changes;
  }

  /** Applies a durable group event; a membership change forces a key rotation before our next send. */
  apply(e: GroupEvent): Changes {
    const changes: Changes = new Map();
    switch (e.type) {
      case 'groupCreated': {
        const g = this.fresh(e.group, this.userId, [this.userId]);
        this.groups.set(e.group, g);
        changes.set(...this.entry(e.group, g));
        break;
      }
      case 'groupJoin': {
        const g = this.groups.get(e.group) ?? this.fresh(e.group, e.creator ?? '', e.members);
        // An event queued by an older relay has no creator: keep what the last `ready` said.
        if (e.creator !== undefined) g.creator = e.creator;
        g.members = new Set(e.members);
        g.session.membershipChanged();
        this.groups.set(e.group, g);
        changes.set(...this.entry(e.group, g));
        break;
      }
      case 'groupMemberJoin':
      case 'groupMemberLeave': {
        const g = this.groups.get(e.group);
        if (!g) break;
        if (e.type === 'groupMemberJoin') g.members.add(e.userId);
        else {
          g.members.delete(e.userId);
          g.needsKey.delete(e.userId);
          g.session.removeSender(e.userId);
        }
        g.session.membershipChanged();
        changes.set(...this.entry(e.group, g));
        break;
      }
      case 'groupLeave':
      case 'groupDeleted':
        this.groups.delete(e.group);
        changes.set(`${PREFIX}${e.group}`, null);
        break;
    }
    return changes;
  }

  /**
   * Before a group send: a fresh sender key after any membership change (or as the rotation policy
   * asks), which every other member then needs. True if the key was rotated.
   */
  rotateIfDue(g: GroupState): boolean {
    if (!g.session.needsRotation(this.now(), this.opts.rotation)) return false;
    g.session.rotate(this.now());
    g.needsKey = new Set([...g.members].filter((m) => m !== this.userId));
    return true;
  }

  private fresh(group: string, creator: string, members: string[]): GroupState {
    return {
      session: new GroupSession(group, this.userId, this.opts.transitionWindowMs),
      members: new Set(members),
      creator,
      needsKey: new Set<string>(),
    };
  }
}

/** Encodes a group's state (format in the module comment). */
function encodeGroupState(g: GroupState): Uint8Array {
  const w = new Writer(1024).u8(1).bytes(g.session.serialize()).str(g.creator).u32(g.members.size);
  for (const m of g.members) w.str(m);
  w.u32(g.needsKey.size);
  for (const m of g.needsKey) w.str(m);
  return w.finish();
}

/** Decodes a group's state; BAD_STATE for an unknown version. */
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

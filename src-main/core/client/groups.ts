/**
 * The groups we are on the roster of, as this device has verified them: per group its membership log
 * (core/crypto/membership.ts: every entry checked, from a genesis whose creator we pinned), our
 * GroupSession (our sender key and the members'), the members our current sender key has not reached
 * yet, and whether our log and the others' may differ (a fork, or entries the relay withholds).
 *
 * Logs are read from the relay in pages and replayed here; the relay cannot add, drop or change a member
 * without it showing: entries are signed and chained, and every group message carries, under its
 * signature, its sender's epoch and head (client.ts, inbox.ts), compared with ours.
 *
 * Stored under `group/<name>` (small, written with every message: the session) and `grouplog/<name>`
 * (the verified roster, written when it changes):
 *
 *   group/<name>:    u8 version=2 | bytes session | u32 m | m × str needsKey | u8 problem
 *                    [| str withUser | u32 epoch] | u8 hasLink [| 32 link private key]
 *   grouplog/<name>: encodeGroupLog (membership.ts)
 */
import {
  type GroupLog,
  type RosterChange,
  applyEntry,
  compareView,
  decodeEntry,
  provesFork,
  decodeGroupLog,
  encodeGroupLog,
  members,
  startLog,
} from '../crypto/membership.js';
import type { PublicIdentity } from '../crypto/identity.js';
import { GroupSession, type RotationPolicy } from '../crypto/sender-keys.js';
import { Reader, Writer } from '../encoding.js';
import { CryptoError, E2EEError, ErrorCode, ProtocolError, StorageError } from '../errors.js';
import type { StateStore } from './stores.js';

/** Why our view of a group cannot be trusted to match the other members'. */
export interface GroupProblem {
  /**
   * 'fork': a member's messages name a head our log does not have at that epoch (the relay showed us
   * different logs); 'withheld': a member is at a later epoch whose entries the relay does not give us;
   * 'relay-behind': the relay's log is shorter than ours (it lost entries, or lies); 'missing': the
   * relay no longer knows the group although we saw no deletion.
   */
  readonly kind: 'fork' | 'withheld' | 'relay-behind' | 'missing';
  /** The member whose view differs, when one showed it. */
  readonly userId?: string | undefined;
  /** The epoch they (or the relay) are at. */
  readonly epoch: number;
}

/** One group's state on this device. */
export interface GroupState {
  log: GroupLog;
  session: GroupSession;
  /** Full members our current sender key could not be sent to yet: retried before each send. */
  needsKey: Set<string>;
  problem: GroupProblem | undefined;
  /** The private key of the invite link we made, while it is the group's current link. */
  link: Uint8Array | undefined;
}

/** The client options that shape group keys; read when needed, as the client always did. */
export interface GroupOptions {
  rotation?: RotationPolicy | undefined;
  transitionWindowMs?: number | undefined;
}

/** Reads a page of a group's log from the relay: the relay's epoch and the entries from `from`. */
export type FetchLog = (group: string, from: number) => Promise<{ epoch: number; entries: Uint8Array[] }>;

/** Checks the creator of a group we learn about: pins them on first use, refuses another identity. */
export type CheckCreator = (userId: string, identity: PublicIdentity) => Changes;

export type Changes = Map<string, Uint8Array | null>;

/** What processing entries did: state writes, and the roster changes to announce, in order. */
export interface Applied {
  readonly changes: Changes;
  readonly roster: RosterChange[];
  /** A problem found on the way (also stored in the group's state), when it is new. */
  readonly problem?: GroupProblem | undefined;
  /** A problem cleared on the way. */
  readonly cleared?: boolean | undefined;
}

const PREFIX = 'group/';
const LOG_PREFIX = 'grouplog/';
/** Most log entries read for one group in one go (pages of MAX_LOG_PAGE). */
const MAX_CATCH_UP = 100_000;

/** Our groups by name, loaded from and written back to the state store by the client. */
export class Groups {
  private readonly groups = new Map<string, GroupState>();

  constructor(
    private readonly userId: string,
    private readonly opts: GroupOptions,
    private readonly now: () => number,
    private readonly fetchLog: FetchLog,
    private readonly checkCreator: CheckCreator,
  ) {}

  /** Loads every stored group. */
  async load(store: StateStore): Promise<void> {
    this.groups.clear();
    for (const key of await store.keys(PREFIX)) {
      const name = key.slice(PREFIX.length);
      const bytes = await store.get(key);
      const logBytes = await store.get(`${LOG_PREFIX}${name}`);
      // A group stored before signed membership has no log: it is forgotten (its relay dropped it too).
      if (!bytes || !logBytes || bytes[0] !== 2) continue;
      this.groups.set(name, decodeGroupState(bytes, decodeGroupLog(logBytes)));
    }
  }

  /** The state of a group we are on the roster of, if any. */
  get(group: string): GroupState | undefined {
    return this.groups.get(group);
  }

  /** Every group we are on the roster of. */
  all(): [string, GroupState][] {
    return [...this.groups];
  }

  /** Our groups with creator and sorted full members (where we are a member or invited). */
  list(): { group: string; creator: string; members: string[] }[] {
    return [...this.groups].map(([group, g]) => ({ group, creator: g.log.creator, members: members(g.log) }));
  }

  /** The state-store entry of a group's session state (written with every group message). */
  entry(group: string, g: GroupState): [string, Uint8Array] {
    return [`${PREFIX}${group}`, encodeGroupState(g)];
  }

  /** Both entries of a group (after its roster changed). */
  entries(group: string, g: GroupState): [string, Uint8Array][] {
    return [this.entry(group, g), [`${LOG_PREFIX}${group}`, encodeGroupLog(g.log)]];
  }

  /** A full member, per our verified log? */
  isMember(group: string, userId: string): boolean {
    return this.groups.get(group)?.log.roster.get(userId)?.standing === 'member';
  }

  /**
   * Takes in one entry the relay delivered (epoch `epoch` of `group`): applies it if it is the next one,
   * reads the missing ones first if it is further ahead, reads the whole log for a group we did not know
   * (an invitation), and treats an entry at an epoch we have as a duplicate, or a fork if it differs.
   */
  async receive(group: string, epoch: number, bytes: Uint8Array): Promise<Applied> {
    const g = this.groups.get(group);
    if (!g) return this.discover(group);
    if (epoch <= g.log.epoch) {
      const entry = decodeEntry(bytes);
      if (compareView(g.log, epoch, entry.hash) !== 'fork') return { changes: new Map(), roster: [] };
      if (entry.epoch !== epoch || !provesFork(g.log, entry))
        throw new ProtocolError(
          ErrorCode.BAD_ENTRY,
          `an entry for epoch ${epoch} of ${group} that its author did not sign there: ignored`,
        );
      return this.markProblem(group, g, { kind: 'fork', userId: entry.author, epoch });
    }
    if (epoch === g.log.epoch + 1) return this.apply(group, g, [bytes]);
    return this.catchUp(group);
  }

  /** Reads and applies every entry after ours; a relay shorter than us, or that fails, is a problem. */
  async catchUp(group: string): Promise<Applied> {
    const g = this.groups.get(group);
    if (!g) return this.discover(group);
    const fetched: Uint8Array[] = [];
    let relayEpoch = g.log.epoch;
    try {
      for (let from = g.log.epoch + 1; fetched.length < MAX_CATCH_UP;) {
        const page = await this.fetchLog(group, from);
        relayEpoch = page.epoch;
        fetched.push(...page.entries);
        from += page.entries.length;
        if (page.entries.length === 0 || from > page.epoch) break;
      }
    } catch (e) {
      if (
        e instanceof E2EEError &&
        e.code === ErrorCode.RELAY &&
        (e as { relayCode?: string }).relayCode === 'UNKNOWN_GROUP'
      )
        return this.markProblem(group, g, { kind: 'missing', epoch: g.log.epoch });
      throw e;
    }
    if (relayEpoch < g.log.epoch)
      return this.markProblem(group, g, { kind: 'relay-behind', epoch: relayEpoch });
    return this.apply(group, g, fetched);
  }

  /**
   * Compares the head the relay lists for a group (at `ready`) with ours: reads what we lack, notices a
   * fork at our epoch or a relay behind us; an unknown group is read whole.
   */
  async syncHead(group: string, epoch: number, head: Uint8Array): Promise<Applied> {
    const g = this.groups.get(group);
    if (!g) return this.discover(group);
    if (epoch < g.log.epoch) return this.markProblem(group, g, { kind: 'relay-behind', epoch });
    if (epoch === g.log.epoch) {
      if (compareView(g.log, epoch, head) === 'fork')
        return this.markProblem(group, g, { kind: 'fork', epoch });
      return this.clearProblem(group, g, epoch);
    }
    return this.catchUp(group);
  }

  /**
   * Another member's view, carried signed in their message: the same or behind is fine; ahead makes us
   * read the log (a relay that then withholds it is a problem); a different head at an epoch we have is
   * a fork. A later message that agrees clears a 'withheld' problem.
   */
  async checkView(group: string, from: string, epoch: number, head: Uint8Array): Promise<Applied> {
    let g = this.groups.get(group)!;
    let applied: Applied = { changes: new Map(), roster: [] };
    if (compareView(g.log, epoch, head) === 'ahead') {
      try {
        applied = await this.catchUp(group);
      } catch (e) {
        // The relay did not answer, or answered nonsense: we stay behind, and say so.
        if (!(e instanceof E2EEError)) throw e;
      }
      g = this.groups.get(group) ?? g;
    }
    const view = compareView(g.log, epoch, head);
    if (view === 'ahead')
      return merge(applied, await this.markProblem(group, g, { kind: 'withheld', userId: from, epoch }));
    if (view === 'fork')
      return merge(applied, await this.markProblem(group, g, { kind: 'fork', userId: from, epoch }));
    return merge(applied, this.clearProblem(group, g, epoch));
  }

  /** A group we start: its verified genesis (our own entry; already known if the relay's copy came first). */
  create(group: string, genesis: Uint8Array): Applied {
    const entry = decodeEntry(genesis);
    const known = this.groups.get(group);
    if (known && compareView(known.log, 0, entry.hash) !== 'fork') return { changes: new Map(), roster: [] };
    const { log, change } = startLog(entry);
    const g = this.fresh(log);
    this.groups.set(group, g);
    return { changes: new Map(this.entries(group, g)), roster: [change] };
  }

  /** Reads a whole log (of a group we are not on, to join it), verified; undefined if it is not ours to read. */
  async readWhole(group: string, checkCreator = true): Promise<{ log: GroupLog; changes: Changes }> {
    // Each page is verified as it comes, so the work is spread over the event loop page by page: a
    // relay can list a made-up group with a long (validly self-signed) log, and verifying it all in one
    // go would hold the main process for seconds.
    let log: GroupLog | undefined;
    let changes: Changes = new Map();
    for (let from = 0, read = 0; read < MAX_CATCH_UP;) {
      const page = await this.fetchLog(group, from);
      for (const bytes of page.entries) {
        if (log === undefined) {
          log = startLog(decodeEntry(bytes)).log;
          if (log.groupId !== group)
            throw new ProtocolError(ErrorCode.BAD_ENTRY, `the log is for ${log.groupId}`);
          if (checkCreator) changes = this.checkCreator(log.creator, log.creatorIdentity);
        } else log = applyEntry(log, decodeEntry(bytes)).log;
      }
      read += page.entries.length;
      from += page.entries.length;
      if (page.entries.length === 0 || from > page.epoch) break;
    }
    if (log === undefined) throw new ProtocolError(ErrorCode.BAD_ENTRY, `the relay sent no log for ${group}`);
    return { log, changes };
  }

  /** Adopts a log we have just verified and joined (or were invited to), with our own entry applied. */
  adopt(group: string, log: GroupLog): Changes {
    const g = this.fresh(log);
    this.groups.set(group, g);
    return new Map(this.entries(group, g));
  }

  /** Remembers the invite link we made (its private key), or forgets it. */
  setLink(group: string, link: Uint8Array | undefined): Changes {
    const g = this.groups.get(group);
    if (!g) return new Map();
    g.link = link;
    return new Map([this.entry(group, g)]);
  }

  /**
   * Before a group send: a fresh sender key after any membership change (or as the rotation policy
   * asks), which every other full member then needs. True if the key was rotated.
   */
  rotateIfDue(g: GroupState): boolean {
    if (!g.session.needsRotation(this.now(), this.opts.rotation)) return false;
    g.session.rotate(this.now());
    g.needsKey = new Set(members(g.log).filter((m) => m !== this.userId));
    return true;
  }

  /** Reads the whole log of a group the relay says we are on (an invitation, or a group we lost). */
  private async discover(group: string): Promise<Applied> {
    let read: { log: GroupLog };
    try {
      // The creator is checked (and pinned) only for a group we turn out to be on: the relay can list
      // made-up groups, and their made-up creators must not become our contacts.
      read = await this.readWhole(group, false);
    } catch (e) {
      // Not ours to read (invite-only and we are not on it), or not a valid log: nothing changes.
      if (e instanceof E2EEError && e.code === ErrorCode.RELAY) return { changes: new Map(), roster: [] };
      throw e;
    }
    const me = read.log.roster.get(this.userId);
    if (!me || read.log.deleted) return { changes: new Map(), roster: [] };
    const pinned = this.checkCreator(read.log.creator, read.log.creatorIdentity);
    const changes = new Map([...pinned, ...this.adopt(group, read.log)]);
    const roster: RosterChange[] =
      me.standing === 'invited'
        ? [{ kind: 'invited', userId: this.userId, by: inviterOf(read.log, this.userId) }]
        : me.standing === 'requested'
          ? [{ kind: 'requested', userId: this.userId }]
          : read.log.creator === this.userId && read.log.epoch === 0
            ? [{ kind: 'created', by: this.userId }]
            : [{ kind: 'joined', userId: this.userId, via: 'invitation', by: this.userId }];
    return { changes, roster };
  }

  /** Applies verified entries in order; the first invalid one stops there (what came before stays). */
  private apply(group: string, g: GroupState, entries: readonly Uint8Array[]): Applied {
    const roster: RosterChange[] = [];
    let log = g.log;
    let failure: unknown;
    for (const bytes of entries) {
      try {
        const r = applyEntry(log, decodeEntry(bytes));
        log = r.log;
        roster.push(r.change);
      } catch (e) {
        failure = e;
        break;
      }
    }
    const changes: Changes = new Map();
    if (roster.length > 0) this.rosterChanged(g, log, roster);
    const stillOn = log.roster.has(this.userId) && !log.deleted;
    if (!stillOn) {
      this.groups.delete(group);
      changes.set(`${PREFIX}${group}`, null);
      changes.set(`${LOG_PREFIX}${group}`, null);
    } else if (roster.length > 0) for (const [k, v] of this.entries(group, g)) changes.set(k, v);
    if (failure !== undefined) {
      // The relay sent an entry that does not verify: it is not applied, and we cannot know what the
      // others' log holds after it: out of step until a member's view agrees with ours again.
      if (!(failure instanceof E2EEError)) throw failure;
      if (!stillOn) return { changes, roster };
      g.problem = { kind: 'withheld', epoch: log.epoch + 1 };
      changes.set(...this.entry(group, g));
      return { changes, roster, problem: g.problem };
    }
    return { changes, roster };
  }

  /** Keys follow the roster: leavers' sender keys go, a new sender key is due before our next send. */
  private rosterChanged(g: GroupState, log: GroupLog, changes: readonly RosterChange[]): void {
    const before = new Set(members(g.log));
    g.log = log;
    const after = new Set(members(log));
    for (const m of before) {
      if (after.has(m)) continue;
      g.session.removeSender(m);
      g.needsKey.delete(m);
    }
    const membersChanged = before.size !== after.size || [...after].some((m) => !before.has(m));
    if (membersChanged) g.session.membershipChanged();
    // A revoked or replaced link key: our copy of the secret no longer opens the group.
    if (changes.some((c) => c.kind === 'policy') && g.link) g.link = undefined;
  }

  private async markProblem(group: string, g: GroupState, problem: GroupProblem): Promise<Applied> {
    const p = g.problem;
    // The same problem seen again (every message of the member who disagrees) is not news.
    if (p && p.kind === problem.kind && p.userId === problem.userId && p.epoch === problem.epoch)
      return { changes: new Map(), roster: [] };
    g.problem = problem;
    return { changes: new Map([this.entry(group, g)]), roster: [], problem };
  }

  /** A view that agrees with ours at `epoch` clears a 'withheld' or 'relay-behind' problem it covers. */
  private clearProblem(group: string, g: GroupState, epoch: number): Applied {
    const p = g.problem;
    if (!p || p.kind === 'fork' || p.kind === 'missing' || epoch < p.epoch)
      return { changes: new Map(), roster: [] };
    g.problem = undefined;
    return { changes: new Map([this.entry(group, g)]), roster: [], cleared: true };
  }

  private fresh(log: GroupLog): GroupState {
    return {
      log,
      session: new GroupSession(log.groupId, this.userId, this.opts.transitionWindowMs),
      needsKey: new Set(),
      problem: undefined,
      link: undefined,
    };
  }
}

function merge(a: Applied, b: Applied): Applied {
  return {
    changes: new Map([...a.changes, ...b.changes]),
    roster: [...a.roster, ...b.roster],
    problem: b.problem ?? a.problem,
    cleared: b.cleared ?? a.cleared,
  };
}

/** Who put us on the roster (the admin who invited us), for the invitation's wording. */
function inviterOf(log: GroupLog, userId: string): string {
  return log.roster.get(userId)?.by ?? log.creator;
}

const PROBLEMS: GroupProblem['kind'][] = ['fork', 'withheld', 'relay-behind', 'missing'];

/** Encodes a group's session part (format in the module comment). */
function encodeGroupState(g: GroupState): Uint8Array {
  const w = new Writer(1024).u8(2).bytes(g.session.serialize()).u32(g.needsKey.size);
  for (const m of g.needsKey) w.str(m);
  if (g.problem)
    w.u8(PROBLEMS.indexOf(g.problem.kind) + 1)
      .str(g.problem.userId ?? '')
      .u32(g.problem.epoch);
  else w.u8(0);
  w.u8(g.link ? 1 : 0);
  if (g.link) w.fixed(g.link);
  return w.finish();
}

/** Decodes a group's session part; BAD_STATE for anything else. */
function decodeGroupState(bytes: Uint8Array, log: GroupLog): GroupState {
  try {
    const r = new Reader(bytes);
    if (r.u8() !== 2) throw new Error('version');
    const session = GroupSession.deserialize(r.bytes());
    const needsKey = new Set<string>();
    for (let n = r.u32(); n > 0; n--) needsKey.add(r.str());
    const kind = r.u8();
    let problem: GroupProblem | undefined;
    if (kind > 0) {
      const userId = r.str();
      problem = { kind: PROBLEMS[kind - 1]!, userId: userId || undefined, epoch: r.u32() };
    }
    const link = r.u8() === 1 ? r.fixed(32).slice() : undefined;
    r.end();
    return { log, session, needsKey, problem, link };
  } catch (e) {
    if (e instanceof CryptoError) throw e;
    throw new StorageError(ErrorCode.BAD_STATE, 'group state is corrupt or of another version');
  }
}

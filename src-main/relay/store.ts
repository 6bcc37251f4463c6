/**
 * The relay's SQLite store: users, prekeys, groups and the delivery queue.
 *
 * Every write goes through one ordered batch that is committed as a single transaction once per event
 * loop turn (group commit, setImmediate): one fsync covers everything that arrived in that turn, and
 * replies that promise durability (`ack state:'sent'`, `ok`) are released only by `afterCommit`, so a
 * crash never loses what the relay acknowledged as stored (items forwarded live to an online recipient
 * are held in memory until its `received`: see docs/PROTOCOL.md, delivery guarantees). Reads first commit the pending batch, so
 * they always see every earlier write.
 */
import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import type { RelayEvent } from '../core/protocol/wire.js';
import { SCHEMA, prepare } from './schema.js';

export type DeliverKind = 'direct' | 'group' | 'receipt' | 'event';

/** One routed item for one recipient; becomes a `deliver` frame. */
export interface QueueItem {
  readonly seq: number;
  readonly recipient: string;
  readonly kind: DeliverKind;
  readonly from?: string | undefined;
  readonly id?: string | undefined;
  readonly group?: string | undefined;
  /** Ciphertext exactly as the sender's base64 (the relay never decodes it). */
  readonly body?: string | undefined;
  readonly event?: RelayEvent | undefined;
  readonly ts: number;
}

/** A stored one-time prekey. */
export interface StoredPreKey {
  readonly id: number;
  readonly key: Uint8Array;
}

/**
 * Seqs handed out but not yet (or never) stored, e.g. for live deliveries, must not repeat after a
 * restart: the store reserves them in blocks and persists the reservation before using a block.
 */
const SEQ_BLOCK = 100_000;

type Op = () => void;
type Done = (err?: unknown) => void;

/** The relay database with its group-commit write batch. */
export class Store {
  private pending: Op[] = [];
  private done: Done[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private seqNext: number;
  private seqReserved: number;
  private closed = false;
  private readonly st: ReturnType<typeof prepare>;
  private readonly runBatch: (ops: Op[]) => void;

  private constructor(
    private readonly db: Database.Database,
    private readonly onError: (err: unknown) => void,
  ) {
    this.st = prepare(db);
    this.runBatch = db.transaction((ops: Op[]) => {
      for (const op of ops) op();
    });
    const stored = db
      .prepare<[], { m: number | null }>(
        `SELECT max(coalesce((SELECT max(seq) FROM queue), 0),
                    coalesce((SELECT seq FROM sqlite_sequence WHERE name = 'queue'), 0)) AS m`,
      )
      .get();
    const reserved = this.st.getMeta.get('seqReserved')?.value ?? 0;
    this.seqNext = Math.max(stored?.m ?? 0, reserved) + 1;
    this.seqReserved = this.seqNext - 1;
  }

  /**
   * Opens (creating if needed) `<dataDir>/relay.sqlite`, or an in-memory database without a dataDir.
   * WAL with synchronous=FULL makes each commit durable; the exclusive lock keeps a second relay off
   * the same files.
   */
  static open(dataDir: string | undefined, onError: (err: unknown) => void): Store {
    let file = ':memory:';
    if (dataDir !== undefined) {
      mkdirSync(dataDir, { recursive: true });
      file = join(dataDir, 'relay.sqlite');
    }
    // No busy wait: with the exclusive lock only another relay can hold the database, and it won't let go.
    const db = new Database(file, { timeout: 0 });
    try {
      if (dataDir !== undefined) {
        db.pragma('locking_mode = EXCLUSIVE');
        db.pragma('journal_mode = WAL');
      }
      db.pragma('synchronous = FULL');
      db.exec(SCHEMA);
      return new Store(db, onError);
    } catch (err) {
      db.close();
      if ((err as { code?: unknown }).code === 'SQLITE_BUSY')
        throw new Error(`The data directory ${dataDir} is in use by another relay.`, { cause: err });
      throw err;
    }
  }

  /** The next delivery seq: one increasing numbering for queued and live items, never reused. */
  nextSeq(): number {
    const seq = this.seqNext++;
    if (seq > this.seqReserved) {
      this.seqReserved = seq + SEQ_BLOCK - 1;
      // Outside the batch on purpose: the reservation must be durable before any seq of it leaves.
      this.st.setMeta.run('seqReserved', this.seqReserved);
    }
    return seq;
  }

  // -- writes (batched) ------------------------------------------------------------------------

  /** Queues an item durably (at the next commit), keeping its seq. */
  enqueue(item: QueueItem): void {
    this.write(() =>
      this.st.insertQueue.run(
        item.seq,
        item.recipient,
        item.kind,
        item.from ?? null,
        item.group ?? null,
        item.id ?? null,
        item.body ?? null,
        item.event ? JSON.stringify(item.event) : null,
        item.ts,
      ),
    );
  }

  /** Deletes a queued item, only if it belongs to `recipient` (a client acknowledges its own items only). */
  dequeue(recipient: string, seq: number): void {
    this.write(() => this.st.deleteQueued.run(seq, recipient));
  }

  insertUser(id: string, identity: Uint8Array, now: number): void {
    this.write(() => this.st.insertUser.run(id, identity, now));
  }

  /** Removes a user with their bundle, prekeys, queue and memberships. */
  deleteUser(id: string): void {
    this.write(() => {
      this.st.deleteUser.run(id);
      this.st.deleteUserQueue.run(id);
      this.st.deleteUserBundle.run(id);
      this.st.deleteUserPreKeys.run(id);
      this.st.removeUserMemberships.run(id);
    });
  }

  putPreKeys(userId: string, bundle: Uint8Array, oneTime: readonly StoredPreKey[]): void {
    this.write(() => {
      this.st.putBundle.run(userId, bundle);
      for (const k of oneTime) this.st.putPreKey.run(userId, k.id, k.key);
    });
  }

  deletePreKey(userId: string, keyId: number): void {
    this.write(() => this.st.deletePreKey.run(userId, keyId));
  }

  insertGroup(group: string, creator: string, now: number): void {
    this.write(() => {
      this.st.insertGroup.run(group, creator, now);
      this.st.addMember.run(group, creator);
    });
  }

  deleteGroup(group: string): void {
    this.write(() => {
      this.st.deleteGroup.run(group);
      this.st.deleteGroupMembers.run(group);
    });
  }

  addMember(group: string, userId: string): void {
    this.write(() => this.st.addMember.run(group, userId));
  }

  removeMember(group: string, userId: string): void {
    this.write(() => this.st.removeMember.run(group, userId));
  }

  /** Runs `done` after the batch holding every write so far has committed (with the error if it failed). */
  afterCommit(done: Done): void {
    this.assertOpen();
    this.done.push(done);
    this.schedule();
  }

  /** Commits the pending batch now. */
  flush(): void {
    if (this.scheduled) clearImmediate(this.scheduled);
    this.scheduled = undefined;
    const ops = this.pending;
    const done = this.done;
    if (ops.length === 0 && done.length === 0) return;
    this.pending = [];
    this.done = [];
    let failure: unknown;
    if (ops.length > 0) {
      try {
        this.runBatch(ops);
      } catch (err) {
        failure = err;
        this.onError(err);
      }
    }
    for (const d of done) {
      try {
        d(failure);
      } catch (err) {
        this.onError(err);
      }
    }
  }

  private write(op: Op): void {
    this.assertOpen();
    this.pending.push(op);
    this.schedule();
  }

  private schedule(): void {
    this.scheduled ??= setImmediate(() => this.flush());
  }

  private assertOpen(): void {
    if (this.closed) throw new Error('the relay store is closed');
  }

  // -- reads (after committing what is pending) ---------------------------------------------------

  /** Items queued for `recipient` with seq > `after`, in seq order. */
  page(recipient: string, after: number, limit: number): QueueItem[] {
    this.flush();
    return this.st.page.all(recipient, after, limit).map((r) => ({
      seq: r.seq,
      recipient: r.recipient,
      kind: r.kind,
      from: r.sender ?? undefined,
      id: r.msg_id ?? undefined,
      group: r.grp ?? undefined,
      body: r.body ?? undefined,
      event: r.event === null ? undefined : (JSON.parse(r.event) as RelayEvent),
      ts: r.ts,
    }));
  }

  identityOf(userId: string): Uint8Array | undefined {
    this.flush();
    return this.st.identity.get(userId)?.identity;
  }

  userIds(): string[] {
    this.flush();
    return this.st.userIds.all().map((r) => r.id);
  }

  bundleOf(userId: string): Uint8Array | undefined {
    this.flush();
    return this.st.bundle.get(userId)?.bundle;
  }

  hasPreKey(userId: string, keyId: number): boolean {
    this.flush();
    return this.st.hasPreKey.get(userId, keyId) !== undefined;
  }

  preKeyCount(userId: string): number {
    this.flush();
    return this.st.preKeyCount.get(userId)?.n ?? 0;
  }

  /** The oldest one-time prekey of a user (the caller deletes it with `deletePreKey`). */
  firstPreKey(userId: string): StoredPreKey | undefined {
    this.flush();
    const row = this.st.firstPreKey.get(userId);
    return row && { id: row.key_id, key: row.key };
  }

  /** Every group with its creator and members in join order. */
  loadGroups(): { group: string; creator: string; members: string[] }[] {
    this.flush();
    const groups = new Map<string, { group: string; creator: string; members: string[] }>();
    for (const g of this.st.groups.all()) groups.set(g.id, { group: g.id, creator: g.creator, members: [] });
    for (const m of this.st.members.all()) groups.get(m.group_id)?.members.push(m.user_id);
    return [...groups.values()];
  }

  /** Commits what is pending and closes the database; a second call does nothing. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    this.db.close();
  }
}

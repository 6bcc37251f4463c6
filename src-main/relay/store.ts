/**
 * The relay's SQLite store (`<dataDir>/relay.sqlite`): users, prekeys, groups and the delivery seq
 * reservation. Deliveries themselves live in the delivery queue (queue/), written off the event loop.
 *
 * Every write goes through one ordered batch that is committed as a single transaction once per event
 * loop turn (group commit, setImmediate). Replies that promise durability (`ok`, `ack`) are released
 * only by `afterCommit`, once the batch holding their writes is on disk. Reads first commit the
 * pending batch, so they always see every earlier write.
 *
 * Durability without blocking: the database runs in WAL mode with synchronous=NORMAL, so a commit
 * only writes the WAL (into the page cache); the store then fsyncs the WAL file itself, on libuv's
 * thread pool, and releases the replies of every batch committed before that fsync started. One fsync
 * covers all the batches committed while the previous one ran (pipelined group commit), and the event
 * loop never waits for the disk. This is what synchronous=FULL guarantees (a commit is durable once the
 * WAL frames holding it are synced; checkpoints sync the WAL first), minus the stall: issue 13 made
 * every routed item durable before 'sent', and that stall alone cost a third of the routing throughput.
 */
import Database from 'better-sqlite3';
import { closeSync, fsync, fsyncSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { QUEUE_SCHEMA } from './queue/sqlite-protocol.js';
import { RELAY_KEY_FILE } from './relay-key.js';
import type { RelayStore, StoredPreKey } from './relay-store.js';
import { SCHEMA, prepare } from './schema.js';
import {
  StorageStartError,
  checkDataDir,
  checkDatabaseFiles,
  databaseStartError,
  integrityStartError,
} from './storage.js';

/**
 * A seq can reach a live recipient before its item commits; if the relay then crashes, that seq must
 * not be given to another item after the restart: the store reserves seqs in blocks and persists the
 * reservation before using a block.
 */
const SEQ_BLOCK = 100_000;

type Op = () => void;
type Done = (err?: unknown) => void;

/** A reply waiting for its batch: released in registration order once `commit` is durable. */
interface Waiting {
  readonly done: Done;
  /** The number of the commit holding its writes. */
  readonly commit: number;
  /** Set when that commit failed: released with it, still in order. */
  readonly error?: unknown;
}

/** The relay database with its group-commit write batch: the SQLite RelayStore. */
export class Store implements RelayStore {
  private pending: Op[] = [];
  private done: Done[] = [];
  private scheduled: NodeJS.Immediate | undefined;
  private seqNext: number;
  private seqReserved: number;
  private closed = false;
  private readonly st: ReturnType<typeof prepare>;
  private readonly runBatch: (ops: Op[]) => void;
  /** Commits so far (successful or not), the last one that wrote, and how far the WAL is synced. */
  private commits = 0;
  private lastWrite = 0;
  private synced = 0;
  /** Replies of committed batches, oldest first, waiting for their commit to become durable. */
  private readonly waiting: Waiting[] = [];
  private syncing = false;
  private walFd: number | undefined;
  /** Groups of a relay before signed membership, dropped when this database was opened (to log). */
  droppedLegacyGroups = 0;

  private constructor(
    private readonly db: Database.Database,
    private readonly onError: (err: unknown) => void,
    /** The WAL file to fsync after commits; undefined for an in-memory database (nothing to sync). */
    private readonly walFile: string | undefined,
  ) {
    this.st = prepare(db);
    this.runBatch = db.transaction((ops: Op[]) => {
      for (const op of ops) op();
    });
    const reserved = this.st.getMeta.get('seqReserved')?.value ?? 0;
    this.seqNext = reserved + 1;
    this.seqReserved = reserved;
  }

  /**
   * Opens (creating if needed) `<dataDir>/relay.sqlite`, or an in-memory database without a dataDir.
   * WAL with synchronous=NORMAL plus our own fsync of the WAL before any reply (module comment) makes
   * each acknowledged commit durable; the exclusive lock keeps a second relay off the same files.
   */
  static open(dataDir: string | undefined, onError: (err: unknown) => void): Store {
    let file = ':memory:';
    if (dataDir !== undefined) {
      checkDataDir(dataDir); // a read-only or full directory is named now, not at the first message
      file = join(dataDir, 'relay.sqlite');
      checkDatabaseFiles(file, join(dataDir, RELAY_KEY_FILE)); // where SQLite would silently start afresh
    }
    let db: Database.Database;
    try {
      // No busy wait: with the exclusive lock only another relay can hold the database, and it won't let go.
      db = new Database(file, { timeout: 0 });
    } catch (err) {
      throw databaseStartError(file, err);
    }
    try {
      if (dataDir !== undefined) {
        db.pragma('locking_mode = EXCLUSIVE');
        db.pragma('journal_mode = WAL');
        db.pragma('synchronous = NORMAL');
        checkIntegrity(db, file);
      }
      db.exec(SCHEMA);
      const dropped = dropUnsignedGroups(db);
      if (dataDir !== undefined) moveQueueOut(db, join(dataDir, QUEUE_FILE));
      const store = new Store(db, onError, dataDir === undefined ? undefined : `${file}-wal`);
      store.droppedLegacyGroups = dropped;
      return store;
    } catch (err) {
      db.close();
      if ((err as { code?: unknown }).code === 'SQLITE_BUSY')
        throw new Error(`The data directory ${dataDir} is in use by another relay.`, { cause: err });
      if (err instanceof StorageStartError || dataDir === undefined) throw err;
      if (typeof (err as { code?: unknown }).code === 'string') throw databaseStartError(file, err);
      throw err;
    }
  }

  /**
   * A probe write while storage is unavailable (storage.ts): a row of 64 KiB written, removed and
   * synced; throws while the database still cannot take it.
   */
  probe(): void {
    this.assertOpen();
    this.flush();
    this.db.exec('CREATE TABLE IF NOT EXISTS storage_probe (x BLOB)');
    this.db.exec('INSERT INTO storage_probe VALUES (zeroblob(65536))');
    this.db.exec('DELETE FROM storage_probe');
    this.syncNow();
  }

  /** Seqs continue above `maxSeq` (the delivery queue's highest, read when it opened). */
  seqsAbove(maxSeq: number): void {
    if (maxSeq >= this.seqNext) this.seqNext = maxSeq + 1;
  }

  /** The next delivery seq: one increasing numbering for every routed item, never reused. */
  nextSeq(): number {
    const seq = this.seqNext++;
    if (seq > this.seqReserved) {
      const reserved = seq + SEQ_BLOCK - 1;
      // Outside the batch on purpose: the reservation must be durable before any seq of it leaves
      // (once per block, so waiting for the disk here costs nothing). If it fails (a full disk), the
      // seq is not used and the next call tries again.
      this.st.setMeta.run('seqReserved', reserved);
      this.syncNow();
      this.seqReserved = reserved;
    }
    return seq;
  }

  // -- writes (batched) ------------------------------------------------------------------------

  insertUser(id: string, identity: Uint8Array, now: number): void {
    this.write(() => this.st.insertUser.run(id, identity, now));
  }

  /**
   * Removes a user with their bundle and prekeys (their deliveries: DeliveryQueue). Group rosters are
   * signed logs and keep them: their registered identity is gone, so nothing is routed to them.
   */
  deleteUser(id: string): void {
    this.write(() => {
      this.st.deleteUser.run(id);
      this.st.deleteUserBundle.run(id);
      this.st.deleteUserPreKeys.run(id);
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

  /** Adds a verified entry to a group's log with the state it leads to. */
  appendGroupEntry(group: string, epoch: number, entry: Uint8Array, state: Uint8Array): void {
    this.write(() => {
      this.st.insertGroupEntry.run(group, epoch, entry);
      this.st.putGroupState.run(group, state);
    });
  }

  /** Forgets a deleted group: its log and state. */
  deleteGroupLog(group: string): void {
    this.write(() => {
      this.st.deleteGroupLog.run(group);
      this.st.deleteGroupState.run(group);
    });
  }

  /**
   * Brings a database from before canonical user ids (issue 8) to lower-case ids, through the batch
   * (call `flush` after it). Ids that differ only in case are one user now: the one registered first
   * keeps the binding, under the lower-case spelling; the others are removed like a deleted account
   * (prekeys, bundle). Such a database is older than signed group membership, so its groups were
   * dropped when it was opened (dropUnsignedGroups) and no group names them. A renamed user's bundle and
   * one-time prekeys are dropped too, since the bundle names the old spelling: the owner publishes new
   * ones at its next login. The caller applies the same to the delivery queue. Returns what changed, for the log.
   */
  canonicaliseUserIds(): { renamed: [from: string, to: string][]; removed: string[] } {
    this.flush();
    const first = new Map<string, string>(); // lower-case id -> the earliest registered spelling
    const renamed: [string, string][] = [];
    const removed: string[] = [];
    for (const { id } of this.st.usersByAge.all()) {
      const canonical = id.toLowerCase();
      if (!first.has(canonical)) first.set(canonical, id);
      else removed.push(id);
    }
    for (const [canonical, id] of first) if (id !== canonical) renamed.push([id, canonical]);
    if (renamed.length === 0 && removed.length === 0) return { renamed, removed };
    this.write(() => {
      for (const id of removed) {
        this.st.deleteUser.run(id);
        this.st.deleteUserBundle.run(id);
        this.st.deleteUserPreKeys.run(id);
      }
      for (const [from, to] of renamed) {
        this.st.renameUser.run(to, from);
        this.st.deleteUserBundle.run(from);
        this.st.deleteUserPreKeys.run(from);
      }
    });
    return { renamed, removed };
  }

  /** Runs `done` after the batch holding every write so far has committed (with the error if it failed). */
  afterCommit(done: Done): void {
    this.assertOpen();
    this.done.push(done);
    this.schedule();
  }

  /** Commits the pending batch now; its replies are released once it is durable. */
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
    const commit = ++this.commits;
    if (ops.length > 0 && failure === undefined) this.lastWrite = commit;
    for (const d of done)
      this.waiting.push(failure === undefined ? { done: d, commit } : { done: d, commit, error: failure });
    this.advance();
  }

  /**
   * Releases what is durable and, if a commit that wrote is not synced yet, fsyncs the WAL in the
   * background (unless a sync is running: the next one starts when it ends, covering everything since).
   */
  private advance(syncError?: unknown): void {
    if (this.walFile === undefined) this.synced = this.commits; // in memory: nothing to sync
    // Commits after the last write only wait for the ones before them.
    this.release(this.lastWrite <= this.synced ? this.commits : this.synced, syncError);
    if (this.lastWrite <= this.synced || this.syncing || this.closed) return;
    const upTo = this.commits;
    let fd: number;
    try {
      fd = this.wal();
    } catch (err) {
      this.onError(err);
      this.synced = upTo; // nothing will ever sync it: fail the replies instead of holding them
      this.advance(err);
      return;
    }
    this.syncing = true;
    fsync(fd, (err) => {
      this.syncing = false;
      if (this.closed) {
        closeSync(fd); // close() left the descriptor to us
        return;
      }
      if (err) this.onError(err);
      this.synced = upTo;
      this.advance(err ?? undefined);
    });
  }

  /** Fsyncs the WAL now, on this thread (rare: seq reservations, close). */
  private syncNow(): void {
    if (this.walFile === undefined) return;
    fsyncSync(this.wal());
  }

  /** The WAL's file descriptor (SQLite keeps the same file while the database is open). */
  private wal(): number {
    this.walFd ??= openSync(this.walFile!, 'r+');
    return this.walFd;
  }

  /** Releases, in order, every waiting reply whose commit is at most `upTo` (durable, or failed). */
  private release(upTo: number, syncError?: unknown): void {
    while (this.waiting.length > 0 && this.waiting[0]!.commit <= upTo) {
      const w = this.waiting.shift()!;
      try {
        w.done(w.error ?? syncError);
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

  /** The verified state of every group (encodeGroupLog bytes). */
  loadGroupStates(): { group: string; state: Uint8Array }[] {
    this.flush();
    return this.st.groupStates.all().map((r) => ({ group: r.group_id, state: r.state }));
  }

  /** One group's stored state (undefined: no such group on disk). */
  groupState(group: string): Uint8Array | undefined {
    this.flush();
    return this.st.groupState.get(group)?.state;
  }

  /** Up to `limit` entries of a group's log from epoch `from`, in order. */
  groupEntries(group: string, from: number, limit: number): Uint8Array[] {
    this.flush();
    return this.st.groupEntries.all(group, from, limit).map((r) => r.entry);
  }

  /** Commits what is pending, makes it durable, releases every reply and closes the database; idempotent. */
  close(): void {
    if (this.closed) return;
    this.flush();
    this.closed = true;
    let syncError: unknown;
    try {
      if (this.lastWrite > this.synced) this.syncNow();
    } catch (err) {
      syncError = err;
      this.onError(err);
    }
    this.release(this.commits, syncError);
    // A background fsync still running closes the descriptor when it ends.
    if (this.walFd !== undefined && !this.syncing) closeSync(this.walFd);
    this.walFd = undefined;
    this.db.close();
  }
}

/**
 * `PRAGMA quick_check` at open: a damaged database refuses to start (StorageStartError) instead of
 * failing later, or being replaced. It reads every page once (O(size)), at start only.
 */
export function checkIntegrity(db: Database.Database, file: string): void {
  const rows = db.pragma('quick_check') as { quick_check: string }[];
  const problems = rows.map((r) => r.quick_check).filter((r) => r !== 'ok');
  if (problems.length > 0) throw integrityStartError(file, problems);
}

/** The delivery queue's file beside relay.sqlite. */
export const QUEUE_FILE = 'queue.sqlite';

/**
 * Relays before the queue had its own database kept deliveries in relay.sqlite's `queue` table: moves
 * them to the queue's database (once; a crash half-way repeats the copy, which skips rows already there).
 */
function moveQueueOut(db: Database.Database, queueFile: string): void {
  const old = db.prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'queue'").get();
  if (!old) return;
  const target = new Database(queueFile, { timeout: 0 });
  try {
    target.pragma('journal_mode = WAL');
    target.pragma('synchronous = FULL');
    target.exec(QUEUE_SCHEMA);
    const insert = target.prepare(
      `INSERT OR IGNORE INTO queue (seq, recipient, kind, sender, grp, msg_id, body, event, ts)
       VALUES (@seq, @recipient, @kind, @sender, @grp, @msg_id, @body, @event, @ts)`,
    );
    const rows = db.prepare('SELECT * FROM queue ORDER BY seq').all();
    target.transaction(() => {
      for (const row of rows) insert.run(row);
    })();
  } finally {
    target.close();
  }
  db.exec("DROP TABLE queue; DELETE FROM sqlite_sequence WHERE name = 'queue'");
}

/**
 * Relays before signed membership (wire version 1) kept groups as a member list the relay alone vouched
 * for. Such a group cannot be turned into a signed log (only its members can sign), so it is dropped at
 * the first start of this version; its members create it again (docs/PROTOCOL.md, Group membership).
 */
function dropUnsignedGroups(db: Database.Database): number {
  const legacy = db
    .prepare("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'chat_groups'")
    .get();
  if (!legacy) return 0;
  const { n } = db.prepare<[], { n: number }>('SELECT count(*) AS n FROM chat_groups').get()!;
  db.exec('DROP TABLE chat_groups; DROP TABLE IF EXISTS group_members');
  return n;
}

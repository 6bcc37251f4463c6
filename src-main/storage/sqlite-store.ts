/**
 * A StateStore (and KeyStore) in one SQLite file through better-sqlite3. Writes are single
 * transactions in WAL mode with synchronous=FULL, so a crash never leaves half a batch behind.
 *
 * Values are stored as given; the desktop app wraps this store with encryption at rest
 * (see src-main/services), the command-line chat keeps the file private (mode 0600).
 *
 * With `exclusive`, the store holds SQLite's exclusive lock from opening to close(): two processes
 * driving one identity would each advance the ratchets from their own copy and lose messages as
 * replays (issue 7). The lock is the operating system's file lock, so it ends with the process
 * however that ends; there is no stale lock file to clean up.
 */
import Database from 'better-sqlite3';
import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { KeyStore, StateStore } from '../core/client/stores.js';
import { ErrorCode, StorageError } from '../core/errors.js';

/** Options of a store that owns its file. */
export interface SqliteStoreOptions {
  /** Hold an exclusive lock on the file until close(); a second holder fails with StoreLockedError (default false). */
  exclusive?: boolean | undefined;
}

/** Another process holds the exclusive lock on the store's file. */
export class StoreLockedError extends StorageError {
  constructor(readonly file: string) {
    super(ErrorCode.BAD_STATE, `${file} is in use by another process`);
  }
}

/**
 * Key-value state in SQLite; `namespace` separates several users in one file. Given a file it owns
 * its database; given an open database (the app's local store) it shares it and `close()` leaves it open.
 */
export class SqliteStore implements StateStore {
  private readonly db: Database.Database;
  private readonly owned: boolean;
  private readonly getStmt: Database.Statement<[string], { value: Buffer }>;
  private readonly putStmt: Database.Statement<[string, Buffer]>;
  private readonly delStmt: Database.Statement<[string]>;
  private readonly keysStmt: Database.Statement<[string, string], { key: string }>;
  private readonly writeTx: (changes: ReadonlyMap<string, Uint8Array | null>) => void;

  constructor(
    file: string | Database.Database,
    private readonly namespace = '',
    options: SqliteStoreOptions = {},
  ) {
    this.owned = typeof file === 'string';
    if (typeof file !== 'string') {
      this.db = file;
    } else {
      if (file !== ':memory:') {
        mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
      }
      // Locked: fail at once rather than wait out better-sqlite3's default 5 s busy timeout.
      this.db = new Database(file, options.exclusive ? { timeout: 0 } : {});
      if (options.exclusive) this.lock(file);
      if (file !== ':memory:') chmodSync(file, 0o600);
      this.db.pragma('journal_mode = WAL');
      this.db.pragma('synchronous = FULL');
    }
    this.db.exec('CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL) WITHOUT ROWID');
    this.getStmt = this.db.prepare('SELECT value FROM kv WHERE key = ?');
    this.putStmt = this.db.prepare('INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)');
    this.delStmt = this.db.prepare('DELETE FROM kv WHERE key = ?');
    this.keysStmt = this.db.prepare('SELECT key FROM kv WHERE key >= ? AND key < ? ORDER BY key');
    this.writeTx = this.db.transaction((changes: ReadonlyMap<string, Uint8Array | null>) => {
      for (const [k, v] of changes) {
        if (v === null) this.delStmt.run(this.namespace + k);
        else this.putStmt.run(this.namespace + k, Buffer.from(v.buffer, v.byteOffset, v.byteLength));
      }
    });
  }

  async get(key: string): Promise<Uint8Array | undefined> {
    const row = this.getStmt.get(this.namespace + key);
    return row ? new Uint8Array(row.value) : undefined;
  }

  async keys(prefix: string): Promise<string[]> {
    return this.keysSync(prefix);
  }

  /** Keys starting with `prefix`, sorted. */
  keysSync(prefix: string): string[] {
    const from = this.namespace + prefix;
    // Every key with this prefix sorts below prefix + U+FFFF.
    return this.keysStmt.all(from, `${from}\uffff`).map((r) => r.key.slice(this.namespace.length));
  }

  async write(changes: ReadonlyMap<string, Uint8Array | null>): Promise<void> {
    this.writeTx(changes);
  }

  /** KeyStore view: key material under the `key/` prefix. */
  asKeyStore(): KeyStore {
    return {
      get: (name) => this.get(`key/${name}`),
      set: async (name, value) => this.writeTx(new Map([[`key/${name}`, value]])),
      delete: async (name) => this.writeTx(new Map([[`key/${name}`, null]])),
    };
  }

  /**
   * Checks that the file can be written (after a write failed: a full disk, a read-only folder): a row
   * of `bytes` written and deleted again, each committed. Throws SQLite's error when it cannot.
   */
  probeWrite(bytes = 64 * 1024): void {
    const key = `${this.namespace}probe/`;
    this.putStmt.run(key, Buffer.alloc(bytes));
    this.delStmt.run(key);
  }

  close(): void {
    if (this.owned) this.db.close();
  }

  /**
   * Takes the exclusive lock and keeps it: in EXCLUSIVE locking mode SQLite releases no lock after a
   * transaction (https://sqlite.org/pragma.html#pragma_locking_mode), and with WAL it then keeps the
   * WAL index in process memory instead of a shared -shm file.
   */
  private lock(file: string): void {
    try {
      this.db.pragma('locking_mode = EXCLUSIVE');
      this.db.exec('BEGIN EXCLUSIVE; COMMIT');
    } catch (e) {
      this.db.close();
      if ((e as { code?: unknown }).code === 'SQLITE_BUSY') throw new StoreLockedError(file);
      throw e;
    }
  }
}

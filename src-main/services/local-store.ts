/**
 * The profile's local SQLite database: history, conversations, contacts, settings, meta, and the
 * E2EEClient's protocol state, in one file (WAL, synchronous=FULL, one transaction per logical write,
 * so a crash never loses what was written before it).
 *
 * Encryption at rest: every message/event text and every protocol-state value is sealed with
 * AES-256-GCM under the profile's databaseKey (kept in the keychain), with a random 96-bit nonce and
 * the table and row key as associated data, so sealed values cannot be swapped between rows. Ids,
 * timestamps, statuses, flags, settings and meta (user id, relay URL) stay plain: the app needs some
 * of them before it is unlocked, and they are metadata the relay sees anyway.
 */
import Database from 'better-sqlite3';
import { chmodSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import * as v from 'valibot';
import type { StateStore } from '../core/client/stores.js';
import { aesGcmDecrypt, aesGcmEncrypt, randomBytes, wipe } from '../core/crypto/primitives.js';
import { utf8Decode, utf8Encode } from '../core/encoding.js';
import { userIdSkeleton } from '../core/user-ids.js';
import { SqliteStore } from '../storage/sqlite-store.js';
import type {
  Contact,
  ConversationId,
  ConversationSummary,
  HistoryItem,
  HistoryPage,
  MessageStatus,
  Settings,
} from '../shared/messenger-api.js';
import { ServiceCode, ServiceError } from './errors.js';

/** History page size when the caller gives none, and the most one page may hold. */
export const DEFAULT_PAGE = 50;
export const MAX_PAGE = 200;

/** Settings of a new profile. */
export const DEFAULT_SETTINGS: Settings = Object.freeze({
  notifications: 'sender',
  theme: 'system',
  relayPort: 8787,
});

/** Plain values kept beside the encrypted data. */
export type MetaKey = 'userId' | 'keyStorage' | 'relayUrl' | 'autoConnect' | 'keyCheck' | 'hostingPort';

const SEAL_VERSION = 1;
const NONCE_BYTES = 12;
const STATUS_RANK: Record<MessageStatus, number> = { sending: 0, failed: 1, sent: 2, delivered: 3 };

const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS contacts (
  user_id TEXT PRIMARY KEY,
  verified INTEGER NOT NULL DEFAULT 0,
  key_changed INTEGER NOT NULL DEFAULT 0
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS conversations (
  id TEXT PRIMARY KEY,
  unread INTEGER NOT NULL DEFAULT 0,
  last_at INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS items (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  conversation TEXT NOT NULL,
  id TEXT NOT NULL,
  kind TEXT NOT NULL,
  sender TEXT NOT NULL,
  body BLOB NOT NULL,
  at INTEGER NOT NULL,
  direction TEXT NOT NULL,
  status TEXT,
  UNIQUE (conversation, id)
);
CREATE INDEX IF NOT EXISTS items_by_time ON items (conversation, at, seq);
`;

interface ItemRow {
  seq: number;
  conversation: string;
  id: string;
  kind: HistoryItem['kind'];
  sender: string;
  body: Buffer;
  at: number;
  direction: HistoryItem['direction'];
  status: MessageStatus | null;
}

const SettingsPatch = v.partial(
  v.object({
    notifications: v.picklist(['none', 'sender', 'sender-and-text']),
    theme: v.picklist(['system', 'light', 'dark']),
    relayPort: v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(65535)),
  }),
);

/** AES-256-GCM sealing of one value: version byte, nonce, ciphertext and tag; AD = table and row key. */
class Sealer {
  private readonly key: Uint8Array;
  constructor(key: Uint8Array) {
    this.key = key.slice(); // our own copy: the vault may wipe its one on lock
  }
  seal(table: string, rowKey: string, plain: Uint8Array): Buffer {
    const nonce = randomBytes(NONCE_BYTES);
    const ct = aesGcmEncrypt(this.key, nonce, plain, ad(table, rowKey));
    return Buffer.concat([Buffer.of(SEAL_VERSION), nonce, ct]);
  }
  open(table: string, rowKey: string, sealed: Uint8Array): Uint8Array {
    if (sealed[0] !== SEAL_VERSION)
      throw new ServiceError(ServiceCode.INTERNAL, 'A stored value is damaged.');
    const nonce = sealed.subarray(1, 1 + NONCE_BYTES);
    return aesGcmDecrypt(this.key, nonce, sealed.subarray(1 + NONCE_BYTES), ad(table, rowKey));
  }
  wipe(): void {
    wipe(this.key);
  }
}

const ad = (table: string, rowKey: string): Uint8Array => utf8Encode(`sealed-db/1\0${table}\0${rowKey}`);

/** The local database of one profile; open it, then `unlock` it with the databaseKey. */
export class LocalStore {
  private readonly db: Database.Database;
  private sealer: Sealer | undefined;
  private state: StateStore | undefined;

  private constructor(db: Database.Database) {
    this.db = db;
  }

  /**
   * Opens (creating if needed) the database file; only meta and settings are readable until unlock.
   * A file that is not a database, or fails SQLite's quick integrity check (truncated, overwritten),
   * throws an error with code SQLITE_CORRUPT or SQLITE_NOTADB (storage-fault.ts): never a fresh start.
   */
  static open(file: string): LocalStore {
    mkdirSync(path.dirname(file), { recursive: true, mode: 0o700 });
    const db = new Database(file);
    try {
      chmodSync(file, 0o600);
      db.pragma('journal_mode = WAL');
      db.pragma('synchronous = FULL');
      const check = db.pragma('quick_check', { simple: true });
      if (check !== 'ok')
        throw Object.assign(new Error(`quick_check: ${String(check)}`), { code: 'SQLITE_CORRUPT' });
      db.exec(SCHEMA);
      addContactColumns(db);
    } catch (e) {
      db.close();
      throw e;
    }
    return new LocalStore(db);
  }

  /** The database file. */
  get file(): string {
    return this.db.name;
  }

  /**
   * Checks that the database can be written again (after a storage fault): a write of `bytes` (a few
   * messages' worth, so that a disk with a handful of free pages still counts as full), then its
   * deletion, each committed. Throws the database's error when it cannot.
   */
  probeWrite(bytes = 64 * 1024): void {
    this.db.prepare("INSERT OR REPLACE INTO meta (key, value) VALUES ('probe', ?)").run('x'.repeat(bytes));
    this.db.prepare("DELETE FROM meta WHERE key = 'probe'").run();
  }

  /** Sets the databaseKey; DATABASE_KEY_MISMATCH if it is not the key this database was sealed with. */
  unlock(databaseKey: Uint8Array): void {
    const sealer = new Sealer(databaseKey);
    const check = this.getMeta('keyCheck');
    if (check === undefined) {
      this.setMeta('keyCheck', sealer.seal('meta', 'keyCheck', utf8Encode('sealed')).toString('base64'));
    } else {
      try {
        sealer.open('meta', 'keyCheck', Buffer.from(check, 'base64'));
      } catch {
        sealer.wipe();
        throw new ServiceError(
          ServiceCode.DATABASE_KEY_MISMATCH,
          'Your keys do not match this profile’s messages. Sealed cannot open them.',
        );
      }
    }
    this.sealer = sealer;
  }

  /** True once `unlock` succeeded. */
  get unlocked(): boolean {
    return this.sealer !== undefined;
  }

  private get seal(): Sealer {
    if (!this.sealer) throw new ServiceError(ServiceCode.LOCKED, 'Your profile is locked.');
    return this.sealer;
  }

  /** Closes the database and forgets the key. */
  close(): void {
    this.sealer?.wipe();
    this.sealer = undefined;
    if (this.db.open) this.db.close();
  }

  // -------------------------------------------------------------------------------------------
  // Meta and settings (plain)

  /** A plain meta value. */
  getMeta(key: MetaKey): string | undefined {
    const row = this.db.prepare('SELECT value FROM meta WHERE key = ?').get(key) as
      { value: string } | undefined;
    return row?.value;
  }

  /** Sets (or with null deletes) a plain meta value. */
  setMeta(key: MetaKey, value: string | null): void {
    if (value === null) this.db.prepare('DELETE FROM meta WHERE key = ?').run(key);
    else this.db.prepare('INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)').run(key, value);
  }

  /** Current settings: stored values over the defaults (anything unreadable falls back to the default). */
  getSettings(): Settings {
    const rows = this.db.prepare('SELECT key, value FROM settings').all() as { key: string; value: string }[];
    const stored: Record<string, unknown> = {};
    for (const r of rows) {
      try {
        stored[r.key] = JSON.parse(r.value);
      } catch {
        // keep the default
      }
    }
    const out: Record<string, unknown> = { ...DEFAULT_SETTINGS };
    for (const [k, value] of Object.entries(stored)) {
      const one = v.safeParse(SettingsPatch, { [k]: value });
      if (one.success && k in DEFAULT_SETTINGS) out[k] = value;
    }
    return out as unknown as Settings;
  }

  /** Applies a settings patch in one transaction and returns the result. */
  updateSettings(patch: Partial<Settings>): Settings {
    const parsed = v.parse(SettingsPatch, patch);
    const put = this.db.prepare('INSERT OR REPLACE INTO settings (key, value) VALUES (?, ?)');
    this.db.transaction(() => {
      for (const [k, value] of Object.entries(parsed))
        if (value !== undefined) put.run(k, JSON.stringify(value));
    })();
    return this.getSettings();
  }

  // -------------------------------------------------------------------------------------------
  // Contacts

  /** One contact, if known. */
  getContact(userId: string): Contact | undefined {
    const r = this.db.prepare(`${CONTACT_COLUMNS} WHERE user_id = ?`).get(userId) as ContactRow | undefined;
    return r && this.toContact(r);
  }

  /** Every contact, by user id. */
  listContacts(): Contact[] {
    const rows = this.db.prepare(`${CONTACT_COLUMNS} ORDER BY user_id`).all() as ContactRow[];
    return rows.map((r) => this.toContact(r));
  }

  /**
   * A contact as the renderer sees it; `looksLike` names the contacts added before it (or, for contacts
   * from before the order was kept, at the same time) whose ids look like its id (core/user-ids.ts).
   */
  private toContact(r: ContactRow): Contact {
    const contact = { userId: r.user_id, verified: r.verified === 1, keyChanged: r.key_changed === 1 };
    const earlier = this.db
      .prepare(
        'SELECT user_id FROM contacts WHERE skeleton = ? AND user_id != ? AND added <= ? ORDER BY added, user_id',
      )
      .all(r.skeleton, r.user_id, r.added) as { user_id: string }[];
    return earlier.length > 0 ? { ...contact, looksLike: earlier.map((e) => e.user_id) } : contact;
  }

  /** Creates the contact if new (after every contact so far) and applies `patch`; returns it. */
  upsertContact(userId: string, patch: { verified?: boolean; keyChanged?: boolean } = {}): Contact {
    this.db.transaction(() => {
      this.db
        .prepare(
          'INSERT OR IGNORE INTO contacts (user_id, added, skeleton) VALUES (?, (SELECT coalesce(max(added), 0) + 1 FROM contacts), ?)',
        )
        .run(userId, userIdSkeleton(userId));
      if (patch.verified !== undefined)
        this.db
          .prepare('UPDATE contacts SET verified = ? WHERE user_id = ?')
          .run(patch.verified ? 1 : 0, userId);
      if (patch.keyChanged !== undefined)
        this.db
          .prepare('UPDATE contacts SET key_changed = ? WHERE user_id = ?')
          .run(patch.keyChanged ? 1 : 0, userId);
    })();
    return this.getContact(userId)!;
  }

  // -------------------------------------------------------------------------------------------
  // Conversations

  /** Creates the conversation if it does not exist; returns its summary. */
  ensureConversation(id: ConversationId, at: number): ConversationSummary {
    this.db.prepare('INSERT OR IGNORE INTO conversations (id, unread, last_at) VALUES (?, 0, ?)').run(id, at);
    return this.conversation(id)!;
  }

  /** A conversation's summary, or undefined. */
  conversation(id: ConversationId): ConversationSummary | undefined {
    const row = this.db.prepare('SELECT id, unread FROM conversations WHERE id = ?').get(id) as
      { id: ConversationId; unread: number } | undefined;
    return row && this.summary(row.id, row.unread);
  }

  /** Every conversation, most recent activity first. */
  listConversations(): ConversationSummary[] {
    const rows = this.db.prepare('SELECT id, unread FROM conversations ORDER BY last_at DESC, id').all() as {
      id: ConversationId;
      unread: number;
    }[];
    return rows.map((r) => this.summary(r.id, r.unread));
  }

  /** Sets a conversation's unread count to zero; returns its summary. */
  markRead(id: ConversationId): ConversationSummary | undefined {
    this.db.prepare('UPDATE conversations SET unread = 0 WHERE id = ?').run(id);
    return this.conversation(id);
  }

  private summary(id: ConversationId, unread: number): ConversationSummary {
    const direct = id.startsWith('dm:');
    const title = id.slice(direct ? 3 : 6);
    // The preview is the last message: event lines (joined, left, keys rotated...) are not one.
    const lastRow = this.db
      .prepare(
        "SELECT * FROM items WHERE conversation = ? AND kind = 'message' ORDER BY at DESC, seq DESC LIMIT 1",
      )
      .get(id) as ItemRow | undefined;
    const last = lastRow && this.toItem(lastRow);
    return {
      id,
      kind: direct ? 'direct' : 'group',
      title,
      unread,
      last: last ? { from: last.from, text: last.text, at: last.at } : null,
      keyChanged: direct ? (this.getContact(title)?.keyChanged ?? false) : false,
    };
  }

  // -------------------------------------------------------------------------------------------
  // History

  /**
   * Adds items in one transaction (each conversation created as needed, incoming messages counted
   * unread); returns the ones that were new (an id already in its conversation is a redelivery).
   */
  addItems(items: readonly HistoryItem[]): HistoryItem[] {
    const seal = this.seal;
    const insert = this.db.prepare(
      `INSERT OR IGNORE INTO items (conversation, id, kind, sender, body, at, direction, status)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const touch = this.db.prepare(
      `INSERT INTO conversations (id, unread, last_at) VALUES (?, ?, ?)
       ON CONFLICT (id) DO UPDATE SET unread = unread + excluded.unread, last_at = max(last_at, excluded.last_at)`,
    );
    const added: HistoryItem[] = [];
    this.db.transaction(() => {
      for (const it of items) {
        const body = seal.seal('items', `${it.conversationId}\0${it.id}`, utf8Encode(it.text));
        const outgoing = it.kind === 'message' && it.direction === 'out';
        const status = outgoing ? (it.status ?? 'sending') : null;
        const r = insert.run(it.conversationId, it.id, it.kind, it.from, body, it.at, it.direction, status);
        if (r.changes === 0) continue;
        const unread = it.direction === 'in' && it.kind === 'message' ? 1 : 0;
        touch.run(it.conversationId, unread, it.at);
        added.push(status ? { ...it, status } : it);
      }
    })();
    return added;
  }

  /** Moves an outgoing item's status forward (never back: 'sent' after 'delivered' changes nothing). */
  setItemStatus(conversationId: ConversationId, id: string, status: MessageStatus): boolean {
    return this.db.transaction(() => {
      const row = this.db
        .prepare("SELECT status FROM items WHERE conversation = ? AND id = ? AND direction = 'out'")
        .get(conversationId, id) as { status: MessageStatus } | undefined;
      if (!row || STATUS_RANK[status] <= STATUS_RANK[row.status]) return false;
      this.db
        .prepare('UPDATE items SET status = ? WHERE conversation = ? AND id = ?')
        .run(status, conversationId, id);
      return true;
    })();
  }

  /** One item, if it exists. */
  getItem(conversationId: ConversationId, id: string): HistoryItem | undefined {
    const row = this.db
      .prepare('SELECT * FROM items WHERE conversation = ? AND id = ?')
      .get(conversationId, id) as ItemRow | undefined;
    return row && this.toItem(row);
  }

  /** A page of history, newest last, ending before the `before` cursor (an opaque string from nextBefore). */
  getHistory(conversationId: ConversationId, before?: string, limit = DEFAULT_PAGE): HistoryPage {
    const n = Math.max(1, Math.min(MAX_PAGE, Math.floor(limit)));
    // Row-value comparison on the (conversation, at, seq) index: each page is an index range scan.
    const rows = (
      before === undefined
        ? this.db
            .prepare('SELECT * FROM items WHERE conversation = ? ORDER BY at DESC, seq DESC LIMIT ?')
            .all(conversationId, n + 1)
        : this.db
            .prepare(
              'SELECT * FROM items WHERE conversation = ? AND (at, seq) < (?, ?) ORDER BY at DESC, seq DESC LIMIT ?',
            )
            .all(conversationId, ...decodeCursor(before), n + 1)
    ) as ItemRow[];
    const more = rows.length > n;
    const page = rows.slice(0, n).reverse();
    const oldest = page[0];
    return {
      items: page.map((r) => this.toItem(r)),
      nextBefore: more && oldest ? encodeCursor(oldest.at, oldest.seq) : null,
    };
  }

  private toItem(r: ItemRow): HistoryItem {
    const text = utf8Decode(this.seal.open('items', `${r.conversation}\0${r.id}`, r.body));
    const base = {
      id: r.id,
      conversationId: r.conversation as ConversationId,
      kind: r.kind,
      from: r.sender,
      text,
      at: r.at,
      direction: r.direction,
    };
    return r.direction === 'out' && r.status ? { ...base, status: r.status } : base;
  }

  // -------------------------------------------------------------------------------------------
  // Protocol state

  /** The E2EEClient's StateStore in this database, every value sealed (AD = "kv" and its key). */
  stateStore(): StateStore {
    if (this.state) return this.state;
    const inner = new SqliteStore(this.db);
    const seal = (): Sealer => this.seal;
    this.state = {
      get: async (key) => {
        const sealed = await inner.get(key);
        return sealed && seal().open('kv', key, sealed);
      },
      keys: (prefix) => inner.keys(prefix),
      write: async (changes) => {
        const sealed = new Map<string, Uint8Array | null>();
        for (const [k, value] of changes) sealed.set(k, value === null ? null : seal().seal('kv', k, value));
        await inner.write(sealed); // one transaction for the whole batch
      },
    };
    return this.state;
  }
}

interface ContactRow {
  user_id: string;
  verified: number;
  key_changed: number;
  added: number;
  skeleton: string;
}

const CONTACT_COLUMNS = 'SELECT user_id, verified, key_changed, added, skeleton FROM contacts';

/**
 * Contacts keep the order they were added in and their ids' look-alike skeletons (issue 8). Databases
 * from before get the columns here, their contacts all at order 0 (so look-alikes among them warn both ways).
 */
function addContactColumns(db: Database.Database): void {
  const columns = new Set(
    (db.prepare('PRAGMA table_info(contacts)').all() as { name: string }[]).map((c) => c.name),
  );
  db.transaction(() => {
    if (!columns.has('added')) db.exec('ALTER TABLE contacts ADD COLUMN added INTEGER NOT NULL DEFAULT 0');
    if (!columns.has('skeleton')) {
      db.exec("ALTER TABLE contacts ADD COLUMN skeleton TEXT NOT NULL DEFAULT ''");
      const set = db.prepare('UPDATE contacts SET skeleton = ? WHERE user_id = ?');
      for (const { user_id } of db.prepare('SELECT user_id FROM contacts').all() as { user_id: string }[])
        set.run(userIdSkeleton(user_id), user_id);
    }
    db.exec('CREATE INDEX IF NOT EXISTS contacts_by_skeleton ON contacts (skeleton)');
  })();
}

/** Cursors are opaque to the renderer: base64url of "at.seq" of the oldest item already shown. */
function encodeCursor(at: number, seq: number): string {
  return Buffer.from(`${at}.${seq}`).toString('base64url');
}

function decodeCursor(cursor: string): [number, number] {
  const m = /^(\d{1,16})\.(\d{1,16})$/.exec(Buffer.from(cursor, 'base64url').toString('latin1'));
  if (!m) throw new ServiceError(ServiceCode.INVALID_ARGUMENT, 'The history position is not valid.');
  return [Number(m[1]), Number(m[2])];
}

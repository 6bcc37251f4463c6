/** The relay's SQLite schema and the statements the store runs (prepared once, at open). */
import type Database from 'better-sqlite3';

/** Tables of `<dataDir>/relay.sqlite`: users, prekeys, groups (deliveries live in queue/). */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, identity BLOB NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (user_id TEXT PRIMARY KEY, bundle BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS prekeys (
  user_id TEXT NOT NULL, key_id INTEGER NOT NULL, key BLOB NOT NULL, PRIMARY KEY (user_id, key_id));
CREATE TABLE IF NOT EXISTS group_logs (
  group_id TEXT NOT NULL, epoch INTEGER NOT NULL, entry BLOB NOT NULL, PRIMARY KEY (group_id, epoch))
  WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS group_states (group_id TEXT PRIMARY KEY, state BLOB NOT NULL);
`;

/** Every statement the store runs, prepared once. */
export function prepare(db: Database.Database) {
  return {
    setMeta: db.prepare<[string, number]>(
      'INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT (key) DO UPDATE SET value = excluded.value',
    ),
    getMeta: db.prepare<[string], { value: number }>('SELECT value FROM meta WHERE key = ?'),
    insertUser: db.prepare<[string, Uint8Array, number]>(
      'INSERT INTO users (id, identity, created) VALUES (?, ?, ?)',
    ),
    identity: db.prepare<[string], { identity: Buffer }>('SELECT identity FROM users WHERE id = ?'),
    userIds: db.prepare<[], { id: string }>('SELECT id FROM users'),
    deleteUser: db.prepare<[string]>('DELETE FROM users WHERE id = ?'),
    deleteUserBundle: db.prepare<[string]>('DELETE FROM bundles WHERE user_id = ?'),
    deleteUserPreKeys: db.prepare<[string]>('DELETE FROM prekeys WHERE user_id = ?'),
    putBundle: db.prepare<[string, Uint8Array]>(
      'INSERT INTO bundles (user_id, bundle) VALUES (?, ?) ON CONFLICT (user_id) DO UPDATE SET bundle = excluded.bundle',
    ),
    bundle: db.prepare<[string], { bundle: Buffer }>('SELECT bundle FROM bundles WHERE user_id = ?'),
    putPreKey: db.prepare<[string, number, Uint8Array]>(
      'INSERT OR REPLACE INTO prekeys (user_id, key_id, key) VALUES (?, ?, ?)',
    ),
    hasPreKey: db.prepare<[string, number], { one: number }>(
      'SELECT 1 AS one FROM prekeys WHERE user_id = ? AND key_id = ?',
    ),
    preKeyCount: db.prepare<[string], { n: number }>('SELECT count(*) AS n FROM prekeys WHERE user_id = ?'),
    firstPreKey: db.prepare<[string], { key_id: number; key: Buffer }>(
      'SELECT key_id, key FROM prekeys WHERE user_id = ? ORDER BY rowid LIMIT 1',
    ),
    deletePreKey: db.prepare<[string, number]>('DELETE FROM prekeys WHERE user_id = ? AND key_id = ?'),
    groupStates: db.prepare<[], { group_id: string; state: Buffer }>(
      'SELECT group_id, state FROM group_states',
    ),
    groupState: db.prepare<[string], { state: Buffer }>('SELECT state FROM group_states WHERE group_id = ?'),
    putGroupState: db.prepare<[string, Uint8Array]>(
      'INSERT INTO group_states (group_id, state) VALUES (?, ?) ON CONFLICT (group_id) DO UPDATE SET state = excluded.state',
    ),
    insertGroupEntry: db.prepare<[string, number, Uint8Array]>(
      'INSERT INTO group_logs (group_id, epoch, entry) VALUES (?, ?, ?)',
    ),
    groupEntries: db.prepare<[string, number, number], { entry: Buffer }>(
      'SELECT entry FROM group_logs WHERE group_id = ? AND epoch >= ? ORDER BY epoch LIMIT ?',
    ),
    deleteGroupState: db.prepare<[string]>('DELETE FROM group_states WHERE group_id = ?'),
    deleteGroupLog: db.prepare<[string]>('DELETE FROM group_logs WHERE group_id = ?'),
    // User ids to lower case (issue 8), once per relay database that still holds other spellings.
    usersByAge: db.prepare<[], { id: string; created: number }>(
      'SELECT id, created FROM users ORDER BY created, rowid',
    ),
    renameUser: db.prepare<[string, string]>('UPDATE users SET id = ? WHERE id = ?'),
  };
}

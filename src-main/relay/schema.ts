/** The relay's SQLite schema and the statements the store runs (prepared once, at open). */
import type Database from 'better-sqlite3';

/** Tables of `<dataDir>/relay.sqlite`: users, prekeys, groups (deliveries live in queue/). */
export const SCHEMA = `
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS users (id TEXT PRIMARY KEY, identity BLOB NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS bundles (user_id TEXT PRIMARY KEY, bundle BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS prekeys (
  user_id TEXT NOT NULL, key_id INTEGER NOT NULL, key BLOB NOT NULL, PRIMARY KEY (user_id, key_id));
CREATE TABLE IF NOT EXISTS chat_groups (id TEXT PRIMARY KEY, creator TEXT NOT NULL, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS group_members (
  group_id TEXT NOT NULL, user_id TEXT NOT NULL, PRIMARY KEY (group_id, user_id));
CREATE INDEX IF NOT EXISTS group_members_by_user ON group_members (user_id);
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
    groups: db.prepare<[], { id: string; creator: string }>('SELECT id, creator FROM chat_groups'),
    members: db.prepare<[], { group_id: string; user_id: string }>(
      'SELECT group_id, user_id FROM group_members ORDER BY rowid',
    ),
    insertGroup: db.prepare<[string, string, number]>(
      'INSERT INTO chat_groups (id, creator, created) VALUES (?, ?, ?)',
    ),
    deleteGroup: db.prepare<[string]>('DELETE FROM chat_groups WHERE id = ?'),
    deleteGroupMembers: db.prepare<[string]>('DELETE FROM group_members WHERE group_id = ?'),
    addMember: db.prepare<[string, string]>(
      'INSERT OR IGNORE INTO group_members (group_id, user_id) VALUES (?, ?)',
    ),
    removeMember: db.prepare<[string, string]>(
      'DELETE FROM group_members WHERE group_id = ? AND user_id = ?',
    ),
    removeUserMemberships: db.prepare<[string]>('DELETE FROM group_members WHERE user_id = ?'),
    // User ids to lower case (issue 8), once per relay database that still holds other spellings.
    usersByAge: db.prepare<[], { id: string; created: number }>(
      'SELECT id, created FROM users ORDER BY created, rowid',
    ),
    renameUser: db.prepare<[string, string]>('UPDATE users SET id = ? WHERE id = ?'),
    renameMember: db.prepare<[string, string]>('UPDATE group_members SET user_id = ? WHERE user_id = ?'),
    renameCreator: db.prepare<[string, string]>('UPDATE chat_groups SET creator = ? WHERE creator = ?'),
    groupsCreatedBy: db.prepare<[string], { id: string }>('SELECT id FROM chat_groups WHERE creator = ?'),
  };
}

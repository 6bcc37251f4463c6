/**
 * LocalStore: paged history over 10,000 messages, encryption at rest (a marker never appears in the
 * raw database or WAL files), sealed values bound to their rows, and status transitions.
 */
import { afterEach, describe, expect, it } from 'vitest';
import Database from 'better-sqlite3';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ConversationId, HistoryItem } from '../../src-main/shared/messenger-api.js';
import { LocalStore } from '../../src-main/services/local-store.js';
import { tempDir } from './helpers.js';

const cleanups: (() => void)[] = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function open(): { store: LocalStore; file: string; dir: string; key: Uint8Array } {
  const t = tempDir('sealed-store-');
  const file = path.join(t.dir, 'sealed.db');
  const store = LocalStore.open(file);
  const key = new Uint8Array(randomBytes(32));
  store.unlock(key);
  cleanups.push(() => {
    store.close();
    t.cleanup();
  });
  return { store, file, dir: t.dir, key };
}

const msg = (conversationId: ConversationId, n: number, at: number, text = `message ${n}`): HistoryItem => ({
  id: `m${n}`,
  conversationId,
  kind: 'message',
  from: n % 2 ? 'bob' : 'alice',
  text,
  at,
  direction: n % 2 ? 'in' : 'out',
  ...(n % 2 ? {} : { status: 'sent' as const }),
});

/** Every file of the directory, raw, as one latin1 string (the db, its WAL and shared memory). */
function rawFiles(dir: string): string {
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((d) => d.isFile())
    .map((d) => readFileSync(path.join(d.parentPath, d.name)).toString('latin1'))
    .join('\n');
}

describe('LocalStore history', () => {
  it('pages through 10,000 messages, newest last, with an index range scan per page', () => {
    const { store, file } = open();
    const items: HistoryItem[] = [];
    // Groups of equal timestamps check that ties keep insertion order; another conversation interleaves.
    for (let n = 0; n < 10_000; n++) items.push(msg('dm:bob', n, 1_700_000_000_000 + Math.floor(n / 3)));
    for (let n = 0; n < 500; n++) items.push(msg('dm:carol', 20_000 + n, 1_700_000_000_000 + n * 7));
    expect(store.addItems(items)).toHaveLength(10_500);
    expect(store.addItems(items.slice(0, 10))).toHaveLength(0); // redelivery adds nothing

    const first = store.getHistory('dm:bob');
    expect(first.items).toHaveLength(50);
    expect(first.items.at(-1)!.id).toBe('m9999');
    expect(first.items[0]!.id).toBe('m9950');

    const seen: string[] = [];
    let before: string | undefined;
    let pages = 0;
    do {
      const page = store.getHistory('dm:bob', before, 200);
      seen.unshift(...page.items.map((i) => i.id));
      before = page.nextBefore ?? undefined;
      pages++;
    } while (before);
    expect(pages).toBe(50);
    expect(seen).toEqual(Array.from({ length: 10_000 }, (_, n) => `m${n}`));
    // As fast deep in history as at the end: both page queries are a range scan of the conversation's
    // index in its order (no table scan, no sort), so a page costs its rows, not the history's size.
    // (Speed itself is for benchmarks; what makes it is checked here.)
    const plans = (sql: string, ...args: unknown[]): string[] => {
      const db = new Database(file, { readonly: true });
      try {
        return (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all(...args) as { detail: string }[]).map(
          (r) => r.detail,
        );
      } finally {
        db.close();
      }
    };
    for (const plan of [
      plans('SELECT * FROM items WHERE conversation = ? ORDER BY at DESC, seq DESC LIMIT ?', 'dm:bob', 200),
      plans(
        'SELECT * FROM items WHERE conversation = ? AND (at, seq) < (?, ?) ORDER BY at DESC, seq DESC LIMIT ?',
        'dm:bob',
        1_700_000_001_000,
        5_000,
        200,
      ),
    ]) {
      expect(plan.join('; ')).toMatch(/^SEARCH items USING (COVERING )?INDEX \w+ \(conversation=\?/);
      expect(plan.join('; ')).not.toMatch(/TEMP B-TREE|SCAN items/);
    }

    expect(store.getHistory('dm:bob', undefined, 10_000).items).toHaveLength(200); // capped
    expect(store.getHistory('dm:carol').items.every((i) => i.conversationId === 'dm:carol')).toBe(true);
    expect(() => store.getHistory('dm:bob', 'bm90IGEgY3Vyc29y')).toThrow(
      'The history position is not valid.',
    );

    const summary = store.conversation('dm:bob')!;
    expect(summary.unread).toBe(5000); // incoming messages only
    expect(summary.last).toEqual({ from: 'bob', text: 'message 9999', at: 1_700_000_000_000 + 3333 });
    expect(store.listConversations().map((c) => c.id)).toEqual(['dm:carol', 'dm:bob']); // most recent first
    expect(store.markRead('dm:bob')!.unread).toBe(0);
  });

  it('moves statuses forward only', () => {
    const { store } = open();
    store.addItems([{ ...msg('dm:bob', 0, 1), status: 'sending' }]);
    expect(store.setItemStatus('dm:bob', 'm0', 'delivered')).toBe(true);
    expect(store.setItemStatus('dm:bob', 'm0', 'sent')).toBe(false);
    expect(store.setItemStatus('dm:bob', 'm0', 'failed')).toBe(false);
    expect(store.getItem('dm:bob', 'm0')!.status).toBe('delivered');
  });

  it('previews the last message of a conversation, never an event line', () => {
    const { store } = open();
    const event = (n: number, at: number, from: string, text: string): HistoryItem => ({
      id: `e${n}`,
      conversationId: 'group:team',
      kind: 'event',
      from,
      text,
      at,
      direction: from === 'alice' ? 'out' : 'in',
    });
    store.addItems([event(1, 1000, 'alice', 'You created the group.')]);
    expect(store.conversation('group:team')!.last).toBeNull();
    store.addItems([
      msg('group:team', 1, 1001, 'hello team'),
      event(2, 1002, 'carol', 'carol left the group.'),
    ]);
    expect(store.conversation('group:team')!.last).toEqual({ from: 'bob', text: 'hello team', at: 1001 });
    expect(store.listConversations()[0]!.last).toEqual({ from: 'bob', text: 'hello team', at: 1001 });
  });
});

describe('LocalStore encryption at rest', () => {
  it('never writes message text or protocol state in the clear', async () => {
    const { store, dir } = open();
    const marker = `MARKER-${randomBytes(8).toString('hex')}`;
    store.addItems([msg('dm:bob', 1, 1000, `the ${marker} text`), msg('group:team', 2, 1001, marker)]);
    const state = store.stateStore();
    await state.write(new Map([['session/bob', new TextEncoder().encode(`state ${marker}`)]]));
    expect(new TextDecoder().decode(await state.get('session/bob'))).toBe(`state ${marker}`);
    expect(await state.keys('session/')).toEqual(['session/bob']);
    expect(store.getHistory('dm:bob').items[0]!.text).toBe(`the ${marker} text`);

    const raw = rawFiles(dir); // WAL not checkpointed yet: the text would be there if it were plain
    expect(raw.length).toBeGreaterThan(0);
    expect(raw).not.toContain(marker);
    expect(raw).not.toContain(Buffer.from(marker, 'utf16le').toString('latin1'));
    store.close();
    expect(rawFiles(dir)).not.toContain(marker); // after the checkpoint at close too
  });

  it('refuses another key, and values moved to another row', () => {
    const { store, file, key } = open();
    store.addItems([msg('dm:bob', 1, 1000, 'first'), msg('dm:bob', 3, 1001, 'second')]);
    store.close();

    const other = LocalStore.open(file);
    expect(() => other.unlock(new Uint8Array(randomBytes(32)))).toThrow(
      expect.objectContaining({ code: 'DATABASE_KEY_MISMATCH' }),
    );
    other.close();

    // Someone with the file swaps two sealed texts: they no longer open (AD = table + row key).
    const db = new Database(file);
    const rows = db.prepare("SELECT id, body FROM items WHERE conversation = 'dm:bob' ORDER BY id").all() as {
      id: string;
      body: Buffer;
    }[];
    db.prepare('UPDATE items SET body = ? WHERE id = ?').run(rows[1]!.body, rows[0]!.id);
    db.close();
    const reopened = LocalStore.open(file);
    cleanups.push(() => reopened.close());
    reopened.unlock(key);
    expect(() => reopened.getHistory('dm:bob')).toThrow(expect.objectContaining({ code: 'E2EE_BAD_TAG' }));
  });
});

describe('LocalStore contacts', () => {
  it('marks a contact whose id looks like an earlier contact, also in a database from before the check', () => {
    const { store } = open();
    store.upsertContact('bob');
    store.upsertContact('carol');
    expect(store.upsertContact('b0b')).toEqual({
      userId: 'b0b',
      verified: false,
      keyChanged: false,
      looksLike: ['bob'],
    });
    expect(store.getContact('bob')).toEqual({ userId: 'bob', verified: false, keyChanged: false });
    expect(store.upsertContact('rnallory').looksLike).toBeUndefined();
    expect(store.upsertContact('mallory').looksLike).toEqual(['rnallory']);

    // A database whose contacts table predates the check: look-alikes there warn both ways.
    const t = tempDir('sealed-store-');
    cleanups.push(t.cleanup);
    const file = path.join(t.dir, 'sealed.db');
    const db = new Database(file);
    db.exec(
      'CREATE TABLE contacts (user_id TEXT PRIMARY KEY, verified INTEGER NOT NULL DEFAULT 0, key_changed INTEGER NOT NULL DEFAULT 0) WITHOUT ROWID',
    );
    for (const id of ['a1ice', 'alice', 'dave'])
      db.prepare('INSERT INTO contacts (user_id) VALUES (?)').run(id);
    db.close();
    const old = LocalStore.open(file);
    cleanups.push(() => old.close());
    expect(old.listContacts().map((c) => [c.userId, c.looksLike ?? []])).toEqual([
      ['a1ice', ['alice']],
      ['alice', ['a1ice']],
      ['dave', []],
    ]);
    expect(old.upsertContact('c1ave').looksLike).toEqual(['dave']);
  });
});

/**
 * A contact's key change in `npm run chat` (issue 8): the chat warns with the new key's safety number,
 * holds what the new key sends and says how many, refuses an /accept-key with another number, shows the
 * held messages after an /accept-key with the number shown, and /reject-key keeps the old key. The contacts
 * are library clients that delete their account and register again under a new key.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { E2EEClient } from '../../src-main/core/index.js';
import { CliFixture } from './helpers.js';
import type { TtySession } from './tty.js';

const fx = new CliFixture();
let url: string;
let alice: TtySession;
const clients: E2EEClient[] = [];

beforeAll(async () => {
  url = (await fx.relay()).url;
  alice = await fx.connected(url, 'alice');
});
afterAll(async () => {
  for (const c of clients) await c.close();
  await fx.cleanup();
});

async function client(userId: string): Promise<E2EEClient> {
  const c = new E2EEClient({ url, userId });
  c.on('error', () => undefined);
  clients.push(c);
  await c.connect();
  return c;
}

/** `userId` talks to alice, deletes the account, registers again under a new key and writes `text`. */
async function reinstalls(userId: string, text: string): Promise<{ client: E2EEClient; number: string }> {
  const old = await client(userId);
  const a = alice.mark;
  await old.sendDirectMessage('alice', `hi from the old ${userId}`);
  await alice.waitFor(`< ${userId}: hi from the old ${userId}`, { from: a });
  await old.deleteAccount();
  await alice.waitFor(`* ${userId} deleted their account.`, { from: a });
  const fresh = await client(userId);
  await fresh.sendDirectMessage('alice', text);
  // The new installation pinned alice's key when it wrote: the number it would show her.
  return { client: fresh, number: fresh.safetyNumber('alice')! };
}

/** The number as the chat shows it: three rows of four groups of five, indented. */
const grouped = (digits: string): string =>
  (digits.match(/\d{5}/g) ?? []).reduce(
    (rows, g, i) => (i % 4 === 0 ? `${rows}${i ? '\n' : ''}  ${g}` : `${rows} ${g}`),
    '',
  );

describe('npm run chat: a contact’s new key', () => {
  it('warns with the new number, holds, refuses another number, and shows the held message on /accept-key', async () => {
    const a = alice.mark;
    const { client: dave, number: expected } = await reinstalls('dave', 'hello from the new dave');
    await alice.waitFor("! dave's security key changed. Until you decide, nothing goes to dave", { from: a });
    await alice.waitFor(
      '* 1 message from dave under the new key is held until you /accept-key or /reject-key it.',
      {
        from: a,
      },
    );
    expect(alice.since(a)).not.toContain('< dave: hello from the new dave');
    const shown = /dave's security key changed[^\n]*\n((?: {2}\d{5} \d{5} \d{5} \d{5}\n){3})/.exec(
      alice.since(a),
    )![1]!;
    const digits = shown.replace(/\s/g, '');
    expect(digits).toMatch(/^\d{60}$/);
    expect(digits).toBe(expected);
    expect(shown.trimEnd()).toBe(grouped(digits));

    const b = alice.mark;
    alice.type('/dm dave are you there?');
    await alice.waitFor(
      "! Not sent: dave's security key changed and waits for your decision (/safety dave, then /accept-key or /reject-key).",
      { from: b },
    );
    alice.type('/accept-key dave 12345');
    await alice.waitFor('! A safety number is the 60 digits /safety dave shows', { from: b });
    alice.type(`/accept-key dave ${'1'.repeat(60)}`);
    await alice.waitFor("! That is not the safety number of dave's new key: the key changed again since.", {
      from: b,
    });
    alice.type('/safety dave');
    await alice.waitFor('1 message from dave under the new key is held until you decide.', { from: b });

    const c = alice.mark;
    alice.type(`/accept-key dave ${shown.trim().replace(/\s+/g, ' ')}`);
    await alice.waitFor('< dave: hello from the new dave', { from: c });
    await alice.waitFor(
      "* You accepted dave's new security key; you can write to dave again. The message it held is shown above.",
      { from: c },
    );
    const got = new Promise<string>((resolve) => dave.once('message', (m) => resolve(m.text)));
    alice.type('/dm dave welcome back');
    expect(await got).toBe('welcome back');
  });

  it('/reject-key keeps the old key and deletes what the new one sent, unread', async () => {
    const a = alice.mark;
    await reinstalls('erin', 'FORGED: I am erin now');
    await alice.waitFor('* 1 message from erin under the new key is held', { from: a });
    alice.type('/reject-key erin');
    await alice.waitFor(
      "* You rejected erin's new security key: your messages stay with the key you had. The message sent under it was deleted unread.",
      { from: a },
    );
    alice.type('/reject-key erin');
    await alice.waitFor('! No new security key of erin is waiting for your decision.', { from: a });
    expect(alice.since(a)).not.toContain('FORGED');
  });
});

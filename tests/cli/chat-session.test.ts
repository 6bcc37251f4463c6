/**
 * Two people chatting with `npm run chat` in real terminals through a real relay (issue 7): what
 * each of them sees when they paste a long line, send an empty one, follow receipts, compare safety
 * numbers, use groups and quit.
 */
import { spawn } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliFixture } from './helpers.js';
import { ROOT, type TtySession } from './tty.js';

const fx = new CliFixture();
let url: string;
let alice: TtySession;
let bob: TtySession;

beforeAll(async () => {
  url = (await fx.relay()).url;
  [alice, bob] = await Promise.all([fx.connected(url, 'alice'), fx.connected(url, 'bob')]);
});
afterAll(() => fx.cleanup());

/** The number alice's chat gave the message it shows as `> #N to WHERE: PREVIEW`. */
async function sentNumber(
  session: TtySession,
  from: number,
  where: string,
  preview: string,
): Promise<string> {
  const line = await session.waitFor(new RegExp(`> #(\\d+) ${where}: ${preview}\n`), { from });
  return /#(\d+)/.exec(line)![1]!;
}

describe('npm run chat between two terminals', () => {
  it('a pasted line of more than 10,000 bytes arrives whole, its spaces and tabs kept', async () => {
    // Runs of spaces, a tab and multi-byte characters, as pasted text has them.
    const chunk = 'été  is\there   — ';
    const text = `${chunk.repeat(500)}the end`;
    expect(Buffer.byteLength(text)).toBeGreaterThan(10_000);
    const a = alice.mark;
    const b = bob.mark;
    alice.type(`/dm bob ${text}`);
    await bob.waitFor(`< alice: ${text}\n`, { from: b });
    const n = await sentNumber(alice, a, 'to bob', 'été  is here   — été  is here   — été…');
    await alice.waitFor(`* #${n} delivered to bob: été  is here   — été  is here   — été…`, { from: a });
  });

  it('an empty message is refused with the usage, and nothing is sent', async () => {
    const a = alice.mark;
    const b = bob.mark;
    alice.type('/dm bob    ');
    await alice.waitFor('! The message is empty. Usage: /dm USER TEXT', { from: a });
    alice.type('/dm bob after the empty one');
    await bob.waitFor('< alice: after the empty one', { from: b });
    expect(bob.since(b)).not.toMatch(/< alice:\s*\n/);
  });

  it('each receipt names the message by the number shown when it was sent, and its first words', async () => {
    const a = alice.mark;
    alice.type('/dm bob first of two');
    alice.type('/dm bob second of two');
    const first = await sentNumber(alice, a, 'to bob', 'first of two');
    const second = await sentNumber(alice, a, 'to bob', 'second of two');
    expect(Number(second)).toBe(Number(first) + 1);
    await alice.waitFor(`* #${first} delivered to bob: first of two`, { from: a });
    await alice.waitFor(`* #${second} delivered to bob: second of two`, { from: a });
    // Sent before delivered, even when the recipient's receipt overtakes the relay's acceptance.
    const seen = alice.since(a);
    for (const n of [first, second]) {
      expect(seen.indexOf(`> #${n} to bob`)).toBeLessThan(seen.indexOf(`* #${n} delivered to bob`));
    }
  });

  it('a message arriving while someone types goes above the prompt and keeps what they typed', async () => {
    const b = bob.mark;
    bob.write('/dm alice half-typed draft');
    await bob.waitFor('half-typed draft', { from: b });
    alice.type('/dm bob interrupting');
    await bob.waitFor(/< alice: interrupting\n[^]*bob> \/dm alice half-typed draft/, { from: b });
    const a = alice.mark;
    bob.write(' finished\r');
    await alice.waitFor('< bob: half-typed draft finished', { from: a });
  });

  it('/safety: usage, yourself, no contact yet, and the same 12 groups of 5 digits on both sides', async () => {
    const a = alice.mark;
    alice.type('/safety');
    await alice.waitFor('! Usage: /safety USER', { from: a });
    alice.type('/safety alice');
    await alice.waitFor('! That is you: a safety number is shared with a contact', { from: a });
    alice.type('/safety carol');
    await alice.waitFor('! You have no contact carol yet, so there is no safety number', { from: a });
    expect(alice.since(a)).not.toContain('no session yet');

    const number =
      /Safety number with \w+; compare it with the one \w+ sees, in person or on a call:\n((?: {2}\d{5} \d{5} \d{5} \d{5}\n){3})/;
    alice.type('/safety bob');
    const b = bob.mark;
    bob.type('/safety alice');
    const mine = number.exec(await alice.waitFor(number, { from: a }))![1]!;
    const theirs = number.exec(await bob.waitFor(number, { from: b }))![1]!;
    expect(mine.replace(/\s/g, '')).toMatch(/^\d{60}$/);
    expect(mine).toBe(theirs);
  });

  it('an open group: /create G open, /join G by name, messages, /groups, /members, /delete', async () => {
    let a = alice.mark;
    alice.type('/groups');
    await alice.waitFor(
      '* You are in no group yet: /create G starts one; /join G joins an open one, /join LINK one with its invite link.',
      { from: a },
    );
    alice.type('/create team open');
    await alice.waitFor(
      '* Created group team, you its admin. It is open: anyone who knows its name can join with /join team.',
      { from: a },
    );
    alice.type('/join team');
    await alice.waitFor('* You are already a member of team (alice).', { from: a });

    let b = bob.mark;
    bob.type('/join team');
    await bob.waitFor('* You are now a member of team; members: alice, bob.', { from: b });
    await alice.waitFor('* bob joined team.', { from: a });
    bob.type('/join team');
    await bob.waitFor('* You are already a member of team (alice, bob).', { from: b });
    expect(bob.since(b).match(/You are now a member of team/g)).toHaveLength(1);
    expect(alice.since(a).match(/bob joined team/g)).toHaveLength(1);

    a = alice.mark;
    alice.type('/send team hello  team');
    await bob.waitFor('< alice in team: hello  team', { from: b });
    const n = await sentNumber(alice, a, 'to team', 'hello  team');
    await alice.waitFor(`* #${n} delivered to bob in team: hello  team`, { from: a });
    alice.type('/groups');
    await alice.waitFor('* Your groups:\n  team (created by alice; you are an admin): alice, bob', {
      from: a,
    });
    alice.type('/members team');
    await alice.waitFor('* team: 2 members\n  alice (you)  admin\n  bob          member', { from: a });
    bob.type('/groups');
    await bob.waitFor('* Your groups:\n  team (created by alice; you are a member): alice, bob', { from: b });

    b = bob.mark;
    alice.type('/delete team');
    await alice.waitFor('* You deleted group team.', { from: a });
    await bob.waitFor('* alice deleted group team.', { from: b });
    // Once each, whether the command or the relay's copy of the entry came first.
    expect(alice.since(a).match(/deleted group team/g)).toHaveLength(1);
    expect(bob.since(b).match(/deleted group team/g)).toHaveLength(1);
    bob.type('/send team anyone there');
    await bob.waitFor('! You are not a member of team.', { from: b });
  });

  it('every line is in one of the four styles: * info, ! error, < received, > sent', () => {
    for (const session of [alice, bob]) {
      const lines = session.lines.filter((l) => !/^> (sealed-messenger@|node --import)/.test(l));
      const strays = lines.filter((l) => !/^(\* |! |< |> | {2}|(\([^)]*\) )?(alice|bob)>( |$))/.test(l));
      expect(strays).toEqual([]);
    }
  });

  it('from a pipe (a bot): commands run once connected, the last is sent before exit, escapes are shown not obeyed', async () => {
    const b = bob.mark;
    const bot = spawn('npm', ['run', 'chat', '--', '--relay', url, '--user', 'bot', '--state', fx.stateDir], {
      cwd: ROOT,
      stdio: ['pipe', 'pipe', 'inherit'],
    });
    let out = '';
    bot.stdout.setEncoding('utf8').on('data', (chunk: string) => (out += chunk));
    // The third carries a terminal escape (clear the screen) and a right-to-left override.
    bot.stdin.end('/dm bob beep  from a bot\n/dm bob second beep\n/dm bob \x1b[2J\u202egotcha\n');
    const code = await new Promise((resolve) => bot.once('exit', resolve));
    expect(code).toBe(0);
    expect(out).toContain('> #1 to bob: beep  from a bot\n');
    expect(out).toContain('> #2 to bob: second beep\n');
    await bob.waitFor('< bot: beep  from a bot\n', { from: b });
    await bob.waitFor('< bot: second beep\n', { from: b });
    // Shown, not obeyed: the terminal receives no escape from someone else's message.
    await bob.waitFor('< bot: \\u001b[2J\\u202egotcha\n', { from: b });
    expect(bob.rawSince(b)).not.toContain('\x1b[2J');
    expect(bob.rawSince(b)).not.toContain('\u202e');
  });

  it('/quit leaves at once and quietly: no "reconnecting", exit code 0', async () => {
    const a = alice.mark;
    alice.type('/quit');
    expect(await alice.exited).toBe(0);
    expect(alice.since(a)).not.toMatch(/reconnect|Lost the connection/i);
  });
});

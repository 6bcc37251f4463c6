/**
 * Groups with signed membership (issue 8) through `npm run chat` in real terminals and a real relay:
 * what admins, members, invitees and strangers see when a group is made invite-only, people are
 * invited, accept, talk, are removed, ask to join with a link and are let in, change roles, compare
 * the group's safety number, decline, leave and delete. One line per membership change, on every
 * screen it concerns; refusals are the client's sentence.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CliFixture } from './helpers.js';
import type { TtySession } from './tty.js';

const fx = new CliFixture();
let url: string;
let alice: TtySession;
let bob: TtySession;
let carol: TtySession;
let dave: TtySession;

beforeAll(async () => {
  url = (await fx.relay()).url;
  [alice, bob, carol, dave] = await Promise.all([
    fx.connected(url, 'alice'),
    fx.connected(url, 'bob'),
    fx.connected(url, 'carol'),
    fx.connected(url, 'dave'),
  ]);
});
afterAll(() => fx.cleanup());

/** Where each chat's screen is now: `waitFor(..., { from })` then looks only at what follows. */
const marks = (): Record<'a' | 'b' | 'c' | 'd', number> => ({
  a: alice.mark,
  b: bob.mark,
  c: carol.mark,
  d: dave.mark,
});

/** The 12 groups of 5 digits a safety number is shown as, four groups a row. */
const SAFETY_DIGITS = /((?: {2}\d{5} \d{5} \d{5} \d{5}\n){3})/;

describe('npm run chat: groups with signed membership', () => {
  it('an invite-only group: a stranger who /joins it by name is refused with a sentence, and nobody sees them', async () => {
    const m = marks();
    alice.type('/create team');
    await alice.waitFor(
      '* Created group team, you its admin. It is invite-only: /invite team USER invites someone, /link team makes an invite link.',
      { from: m.a },
    );
    dave.type('/join team');
    await dave.waitFor('! team is invite-only: ask an admin to invite you.', { from: m.d });
    dave.type('/groups');
    await dave.waitFor('* You are in no group yet', { from: m.d });
    alice.type('/members team');
    await alice.waitFor('* team: 1 member\n  alice (you)  admin\n', { from: m.a });
    expect(alice.since(m.a)).not.toContain('dave');
  });

  it('invite → accept → message → remove: the removed member gets no later message and cannot send', async () => {
    let m = marks();
    alice.type('/invite team bob');
    await alice.waitFor('* You invited bob to team; they join once they accept.', { from: m.a });
    await bob.waitFor('* alice invited you to team: /accept team joins it, /decline team declines.', {
      from: m.b,
    });
    bob.type('/groups');
    await bob.waitFor(
      '* Your groups:\n  team (created by alice; you are invited: /accept team or /decline team): alice',
      { from: m.b },
    );
    // An invitation is not membership yet.
    bob.type('/send team too early');
    await bob.waitFor('! You are not a member of team.', { from: m.b });
    alice.type('/members team');
    await alice.waitFor(
      '* team: 1 member, 1 invited\n  alice (you)  admin\n  bob          invited, has not accepted yet',
      {
        from: m.a,
      },
    );

    m = marks();
    bob.type('/accept team');
    await bob.waitFor('* You are now a member of team; members: alice, bob.', { from: m.b });
    await alice.waitFor('* bob joined team.', { from: m.a });

    alice.type('/invite team carol');
    await carol.waitFor('* alice invited you to team', { from: m.c });
    await bob.waitFor('* alice invited carol to team.', { from: m.b });
    carol.type('/accept team');
    await carol.waitFor('* You are now a member of team; members: alice, bob, carol.', { from: m.c });
    await bob.waitFor('* carol joined team.', { from: m.b });
    await alice.waitFor('* carol joined team.', { from: m.a });

    m = marks();
    alice.type('/send team hello  team');
    await bob.waitFor('< alice in team: hello  team', { from: m.b });
    await carol.waitFor('< alice in team: hello  team', { from: m.c });
    bob.type('/send team hi from bob');
    await alice.waitFor('< bob in team: hi from bob', { from: m.a });
    await carol.waitFor('< bob in team: hi from bob', { from: m.c });

    m = marks();
    alice.type('/remove team bob');
    await alice.waitFor('* You removed bob from team.', { from: m.a });
    await bob.waitFor('* alice removed you from team: you no longer get its messages.', { from: m.b });
    await carol.waitFor('* alice removed bob from team.', { from: m.c });

    m = marks();
    alice.type('/send team now without bob');
    await carol.waitFor('< alice in team: now without bob', { from: m.c });
    await alice.waitFor(/\* #\d+ delivered to carol in team: now without bob/, { from: m.a });
    bob.type('/send team let me back in');
    await bob.waitFor('! You are not a member of team.', { from: m.b });
    bob.type('/members team');
    await bob.waitFor('! You are not in team: neither a member, nor invited, nor asking to join.', {
      from: m.b,
    });
    // Carol has had it for a while: had the relay sent it to bob, his chat would have shown it.
    await new Promise((resolve) => setTimeout(resolve, 500));
    expect(bob.since(m.b)).not.toContain('now without bob');
    expect(carol.since(m.c)).not.toContain('let me back in');
  });

  it('a link that needs approval: the link is printed, the request shows for admins, approval lets them in', async () => {
    let m = marks();
    alice.type('/link team approval');
    await alice.waitFor(
      '* You made a new invite link to team: whoever has the link can ask to join, and an admin lets each in; any earlier link no longer works.',
      { from: m.a },
    );
    const shown = await alice.waitFor(
      /\* The invite link to team; share it only with people you want in team:\n {2}(sealed:\/\/join\?\S+)\n/,
      { from: m.a },
    );
    const link = /sealed:\/\/join\?\S+/.exec(shown)![0];
    expect(link).toContain(`relay=${encodeURIComponent(url)}`);
    await carol.waitFor(
      '* alice made a new invite link to team: whoever has the link can ask to join, and an admin lets each in; any earlier link no longer works.',
      { from: m.c },
    );
    expect(carol.since(m.c)).not.toContain('sealed://');

    m = marks();
    dave.type(`/join ${link}`);
    await dave.waitFor('* You asked to join team with its invite link; an admin of team must let you in.', {
      from: m.d,
    });
    const asked = m.d;
    await alice.waitFor(
      '* dave asks to join team with its invite link: /approve team dave lets them in, /remove team dave turns them away.',
      { from: m.a },
    );
    await carol.waitFor('* dave asks to join team with its invite link; an admin decides.', { from: m.c });
    dave.type('/send team hello?');
    await dave.waitFor('! You are not a member of team.', { from: m.d });
    dave.type(`/join ${link}`);
    await dave.waitFor('* You already asked to join team; an admin of team must let you in.', { from: m.d });
    alice.type('/members team');
    await alice.waitFor(
      '* team: 2 members, 1 asking to join\n  alice (you)  admin\n  carol        member\n  dave         asks to join (/approve team dave)',
      { from: m.a },
    );

    m = marks();
    alice.type('/approve team dave');
    await alice.waitFor('* You let dave into team.', { from: m.a });
    await carol.waitFor('* dave joined team, let in by alice.', { from: m.c });
    await dave.waitFor('* You are now a member of team; members: alice, carol, dave.', { from: m.d });
    // Said once: the relay's copy of dave's own entry is not a second request.
    expect(dave.since(asked).match(/You asked to join team/g)).toHaveLength(1);
    alice.type('/send team welcome, dave');
    await dave.waitFor('< alice in team: welcome, dave', { from: m.d });
    dave.type('/send team thanks');
    await alice.waitFor('< dave in team: thanks', { from: m.a });
    await carol.waitFor('< dave in team: thanks', { from: m.c });
  });

  it('a link for another relay, and a garbled one, are refused before anything is sent', async () => {
    const m = marks();
    bob.type(
      '/join sealed://join?relay=ws%3A%2F%2Fexample.org%3A8787&group=team#AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    );
    await bob.waitFor(
      `! That invite link is for the relay ws://example.org:8787, and this chat is connected to ${url}: start a chat with --relay ws://example.org:8787 to use it.`,
      { from: m.b },
    );
    bob.type('/join sealed://join?group=team');
    await bob.waitFor('! That is not a whole invite link: copy all of it, from sealed:// to the end.', {
      from: m.b,
    });
    bob.type('/join https://example.org/team');
    await bob.waitFor('! "https://example.org/team" is neither a group name', { from: m.b });
  });

  it('roles: admins promote and demote, everyone sees it; refusals say why', async () => {
    let m = marks();
    alice.type('/promote team carol');
    await alice.waitFor('* You made carol an admin of team.', { from: m.a });
    await carol.waitFor('* alice made you an admin of team.', { from: m.c });
    await dave.waitFor('* alice made carol an admin of team.', { from: m.d });

    m = marks();
    carol.type('/demote team alice');
    await carol.waitFor('* You made alice a member of team, no longer an admin.', { from: m.c });
    await alice.waitFor('* carol made you a member of team, no longer an admin.', { from: m.a });
    await dave.waitFor('* carol made alice a member of team, no longer an admin.', { from: m.d });

    m = marks();
    alice.type('/remove team dave');
    await alice.waitFor(/! You are not an admin of team and cannot remove people\./, { from: m.a });
    carol.type('/leave team');
    await carol.waitFor(
      /! The last admin cannot leave while members remain: make another member an admin first\./,
      {
        from: m.c,
      },
    );
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(dave.since(m.d)).not.toMatch(/removed|left/);
  });

  it('/group: the policy in words, and the same safety number, 12 groups of 5 digits, for every member', async () => {
    const m = marks();
    const heading = (you: string): string =>
      `* team is joined with its invite link: whoever has the link can ask to join, and an admin lets each in. Created by alice; 3 members; ${you}.\n`;
    alice.type('/group team');
    carol.type('/group team');
    dave.type('/group team');
    await alice.waitFor(heading('you are a member'), { from: m.a });
    await carol.waitFor(heading('you are an admin'), { from: m.c });
    await dave.waitFor(heading('you are a member'), { from: m.d });
    const number = new RegExp(
      `Safety number of team \\(it changes with every membership change\\); members who see the same number have the same member list:\\n${SAFETY_DIGITS.source}`,
    );
    const digits = await Promise.all(
      [alice, carol, dave].map(async (s, i) => {
        const shown = await s.waitFor(number, { from: [m.a, m.c, m.d][i] });
        return number.exec(shown)![1]!;
      }),
    );
    expect(digits[0]!.replace(/\s/g, '')).toMatch(/^\d{60}$/);
    expect(digits[1]).toBe(digits[0]);
    expect(digits[2]).toBe(digits[0]);
    // Only the admin who made the link can show it again.
    expect(alice.since(m.a)).toContain('Your invite link to team:\n  sealed://join?');
    expect(dave.since(m.d)).not.toContain('sealed://');
  });

  it('/policy, /decline, /leave and /delete: each change is one line on every screen it concerns', async () => {
    let m = marks();
    carol.type('/policy team invite-only');
    await carol.waitFor(
      '* You made team invite-only: only people an admin invites can join. Its invite link no longer works.',
      { from: m.c },
    );
    await alice.waitFor(
      '* carol made team invite-only: only people an admin invites can join. Its invite link no longer works.',
      { from: m.a },
    );
    carol.type('/policy team invite-only');
    await carol.waitFor('* team is already invite-only: only people an admin invites can join.', {
      from: m.c,
    });

    m = marks();
    carol.type('/invite team bob');
    await bob.waitFor('* carol invited you to team: /accept team joins it, /decline team declines.', {
      from: m.b,
    });
    await alice.waitFor('* carol invited bob to team.', { from: m.a });
    bob.type('/decline team');
    await bob.waitFor('* You declined the invitation to team.', { from: m.b });
    await carol.waitFor('* bob declined the invitation to team.', { from: m.c });
    await alice.waitFor('* bob declined the invitation to team.', { from: m.a });

    m = marks();
    dave.type('/leave team');
    await dave.waitFor('* You left team.', { from: m.d });
    await alice.waitFor('* dave left team.', { from: m.a });
    await carol.waitFor('* dave left team.', { from: m.c });
    dave.type('/groups');
    await dave.waitFor('* You are in no group yet', { from: m.d });

    m = marks();
    carol.type('/delete team');
    await carol.waitFor('* You deleted group team.', { from: m.c });
    await alice.waitFor('* carol deleted group team.', { from: m.a });
    expect(carol.since(m.c).match(/deleted group team/g)).toHaveLength(1);
    alice.type('/groups');
    await alice.waitFor('* You are in no group yet', { from: m.a });
    expect(dave.since(m.d)).not.toContain('deleted');
  });

  it('usage: a wrong choice word and missing arguments are refused with the usage', async () => {
    const m = marks();
    alice.type('/create club public');
    await alice.waitFor('! "public" is not "open", or nothing here. Usage: /create G [open]', { from: m.a });
    alice.type('/policy club');
    await alice.waitFor('! Usage: /policy G invite-only|open', { from: m.a });
    alice.type('/invite club');
    await alice.waitFor('! Usage: /invite G USER', { from: m.a });
    alice.type('/help');
    await alice.waitFor(/\* Commands:\n[^]*\/link G \[approval\] +print a new invite link to G/, {
      from: m.a,
    });
  });
});

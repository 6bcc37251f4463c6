/**
 * A relay that loses or hides part of a group's membership log (issue 8, fork detection): the chats
 * notice it when they reconnect and say so in a warning, refuse to send to the group meanwhile, and
 * /group and /groups keep showing it. The relay is a real one, restarted on its own port: once from
 * an older copy of its data folder (a backup restored, or a relay hiding the latest changes), once
 * with its databases lost but its key kept (the group gone without anyone deleting it).
 */
import { cpSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { CliFixture } from './helpers.js';

let fx: CliFixture;
afterEach(() => fx.cleanup());

describe('npm run chat: a relay whose group log differs from the members', () => {
  it('a relay restored from an older copy: every member is warned, and sending to the group stops', async () => {
    fx = new CliFixture();
    const data = path.join(fx.dir, 'relay-data');
    const backup = path.join(fx.dir, 'relay-backup');
    mkdirSync(data);
    let relay = await fx.relay({ dataDir: data });
    const { port, url } = relay;
    const [alice, bob] = await Promise.all([fx.connected(url, 'alice'), fx.connected(url, 'bob')]);

    alice.type('/create club');
    await alice.waitFor('* Created group club, you its admin.');
    alice.type('/invite club bob');
    await bob.waitFor('* alice invited you to club');
    bob.type('/accept club');
    await alice.waitFor('* bob joined club.');
    await bob.waitFor('* You are now a member of club; members: alice, bob.');

    // The relay's data as it is now, copied while it is stopped; then one more change.
    await relay.close();
    cpSync(data, backup, { recursive: true });
    relay = await fx.relay({ port, dataDir: data });
    await alice.waitFor(`* Reconnected to ${url}.`);
    await bob.waitFor(`* Reconnected to ${url}.`);
    let a = alice.mark;
    let b = bob.mark;
    alice.type('/promote club bob');
    await alice.waitFor('* You made bob an admin of club.', { from: a });
    await bob.waitFor('* alice made you an admin of club.', { from: b });

    // The older copy comes back: it does not have the promotion.
    a = alice.mark;
    b = bob.mark;
    await relay.close();
    rmSync(data, { recursive: true, force: true });
    cpSync(backup, data, { recursive: true });
    await fx.relay({ port, dataDir: data });
    const warning =
      "! The relay's member list of club is older than yours: it lost changes, or is hiding them. Until this is resolved you cannot send to club.";
    await alice.waitFor(warning, { from: a });
    await bob.waitFor(warning, { from: b });
    // The warning comes while the chat reads the group heads, before it says it is connected again.
    await alice.waitFor(`* Reconnected to ${url}.`, { from: a });

    alice.type('/send club is anyone there');
    await alice.waitFor(
      "! The relay's member list of club is older than yours: it lost changes, or is hiding them.",
      {
        from: a,
      },
    );
    alice.type('/group club');
    await alice.waitFor(
      /\* club is invite-only: [^\n]*\n {2}Safety number of club[^]*! The relay's member list/,
      {
        from: a,
      },
    );
    alice.type('/groups');
    await alice.waitFor(
      '* Your groups:\n  club (created by alice; you are an admin; out of sync, see /group club): alice, bob',
      {
        from: a,
      },
    );
    // Nothing was sent: bob got no message, and the promotion is not undone on either screen.
    await new Promise((resolve) => setTimeout(resolve, 300));
    expect(bob.since(b)).not.toContain('is anyone there');
    expect(alice.since(a)).not.toMatch(/made bob a member|no longer an admin/);
  });

  it('a relay that forgets the group: its members are told that nobody deleted it, and cannot send to it', async () => {
    fx = new CliFixture();
    const data = path.join(fx.dir, 'relay-data');
    mkdirSync(data);
    const relay = await fx.relay({ dataDir: data });
    const { port, url } = relay;
    const [alice, bob] = await Promise.all([fx.connected(url, 'alice'), fx.connected(url, 'bob')]);
    alice.type('/create lounge open');
    await alice.waitFor('* Created group lounge, you its admin. It is open');
    bob.type('/join lounge');
    await alice.waitFor('* bob joined lounge.');
    // bob's chat has the relay's answer too (else the relay may stop before bob knows he joined).
    await bob.waitFor('* You are now a member of lounge');

    const a = alice.mark;
    const b = bob.mark;
    await relay.close();
    // Its databases are lost, its key is kept (a relay with a new key is refused before anything else).
    for (const file of readdirSync(data)) if (file !== 'relay.key') rmSync(path.join(data, file));
    await fx.relay({ port, dataDir: data });
    const warning =
      '! The relay no longer knows lounge, and no one deleted it. Until this is resolved you cannot send to lounge.';
    await alice.waitFor(warning, { from: a });
    await bob.waitFor(warning, { from: b });
    await bob.waitFor(`* Reconnected to ${url}.`, { from: b });
    bob.type('/send lounge hello?');
    await bob.waitFor('! The relay no longer knows lounge, and no one deleted it.', { from: b });
    expect(alice.since(a)).not.toContain('deleted group lounge');
  });
});

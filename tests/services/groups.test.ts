/**
 * Groups as the desktop app sees them (issue 8), with MessengerServices and a real relay on 127.0.0.1:
 * invitations, open groups, invite links with and without approval, admin changes, the group safety
 * number, a removed member who reads nothing later, and a relay that rolls a member list back. Every
 * roster change must be a line in the group's conversation, and every refusal a sentence that changes
 * nothing.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cpSync, rmSync } from 'node:fs';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import type { GroupInfo, HistoryItem, MessengerEvent } from '../../src-main/shared/messenger-api.js';
import type { MessengerService } from '../../src-main/services/messenger-service.js';
import { Events, startService, tempDir, testKeychain, until } from './helpers.js';

let relay: Relay;
const keychain = testKeychain();
const dirs: (() => void)[] = [];
const services: MessengerService[] = [];
const clipboard: string[] = [];
const notified: { userId: string; title: string; body: string }[] = [];

interface User {
  readonly service: MessengerService;
  readonly events: Events;
}

async function user(userId: string, relayUrl = relay.url): Promise<User> {
  const t = tempDir();
  dirs.push(t.cleanup);
  const service = await startService({
    dataDir: t.dir,
    secrets: keychain.secrets(),
    writeClipboard: (text) => clipboard.push(text),
    notify: (n) => notified.push({ userId, ...n }),
  });
  services.push(service);
  const events = new Events(service);
  await service.createProfile({ userId });
  await service.connect({ relayUrl });
  return { service, events };
}

/** The texts of a conversation's lines (messages and events), oldest first. */
async function lines(u: User, group: string): Promise<string[]> {
  const page = await u.service.getHistory({ conversationId: `group:${group}`, limit: 200 });
  return page.items.map((i: HistoryItem) => i.text);
}

/** The latest 'group' event for a group (or its removal). */
function lastGroupEvent(u: User, group: string): MessengerEvent | undefined {
  return u.events.all.findLast(
    (e) => (e.type === 'group' && e.info.group === group) || (e.type === 'groupRemoved' && e.group === group),
  );
}

const roster = (info: GroupInfo): string[] => info.roster.map((m) => `${m.userId}:${m.role}:${m.standing}`);

beforeAll(async () => {
  relay = await startRelay({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  for (const s of services) await s.close();
  await relay.close();
  for (const c of dirs) c();
  await keychain.cleanup();
});

describe('groups in the desktop services', () => {
  it('invites, accepts and declines, changes roles, removes; the removed member reads nothing later', async () => {
    const amy = await user('amy');
    const ben = await user('ben');
    const cat = await user('cat');

    await amy.service.createGroup({ group: 'crew' });
    await amy.service.inviteToGroup({ group: 'crew', userId: 'ben' });
    await amy.events.item('group:crew', 'You invited ben.');

    // ben sees the invitation as a conversation with its line, and a group where he is invited.
    await ben.events.item('group:crew', 'amy invited you to the group. Accept to read and write here.');
    expect(notified.filter((n) => n.userId === 'ben')).toEqual([
      { userId: 'ben', title: 'Sealed', body: 'amy invited you to the group crew' },
    ]);
    await until(() => lastGroupEvent(ben, 'crew'));
    expect(lastGroupEvent(ben, 'crew')).toMatchObject({
      type: 'group',
      info: { me: { userId: 'ben', standing: 'invited' }, creator: 'amy', members: ['amy'] },
    });
    expect((await ben.service.listConversations()).map((c) => c.id)).toContain('group:crew');
    expect((await ben.service.listGroups()).map((g) => [g.group, g.me.standing])).toEqual([
      ['crew', 'invited'],
    ]);
    // Invited is not a member: nothing can be sent yet.
    await expect(ben.service.sendGroup({ group: 'crew', text: 'early' })).rejects.toMatchObject({
      code: 'NOT_A_MEMBER',
    });
    const accepted = await ben.service.acceptGroupInvitation({ group: 'crew' });
    expect(accepted.me).toEqual({ userId: 'ben', role: 'member', standing: 'member' });
    await amy.events.item('group:crew', 'ben joined the group.');

    // cat declines first, then accepts a second invitation.
    await amy.service.inviteToGroup({ group: 'crew', userId: 'cat' });
    await cat.events.item('group:crew', /^amy invited you/);
    await cat.service.declineGroupInvitation({ group: 'crew' });
    await amy.events.item('group:crew', 'cat declined the invitation.');
    await ben.events.item('group:crew', 'cat declined the invitation.');
    await cat.events.item('group:crew', 'You declined the invitation.');
    await until(() => lastGroupEvent(cat, 'crew')?.type === 'groupRemoved');
    await expect(cat.service.acceptGroupInvitation({ group: 'crew' })).rejects.toMatchObject({
      code: 'NOT_A_MEMBER',
    });
    await amy.service.inviteToGroup({ group: 'crew', userId: 'cat' });
    await until(() => cat.events.all.filter((e) => e.type === 'group').length >= 2);
    await cat.service.acceptGroupInvitation({ group: 'crew' });
    await amy.events.wait(
      (e) => e.type === 'group' && e.info.group === 'crew' && e.info.members.length === 3,
    );
    expect(roster(await amy.service.getGroup({ group: 'crew' }))).toEqual([
      'amy:admin:member',
      'ben:member:member',
      'cat:member:member',
    ]);

    // Refusals of a member who is not an admin: a sentence each, and nothing changes.
    const before = await lines(amy, 'crew');
    const refusals: [Promise<unknown>, string][] = [
      [
        ben.service.inviteToGroup({ group: 'crew', userId: 'dan' }),
        'Only an admin of crew can invite people.',
      ],
      [
        ben.service.removeFromGroup({ group: 'crew', userId: 'cat' }),
        'Only an admin of crew can remove people.',
      ],
      [
        ben.service.setGroupRole({ group: 'crew', userId: 'ben', role: 'admin' }),
        'Only an admin of crew can change who is an admin.',
      ],
      [
        ben.service.setGroupPolicy({ group: 'crew', policy: 'open' }),
        'Only an admin of crew can change who may join.',
      ],
      [ben.service.deleteGroup({ group: 'crew' }), 'Only an admin of crew can delete it.'],
      // The only admin can neither step down nor leave while others remain.
      [
        amy.service.setGroupRole({ group: 'crew', userId: 'amy', role: 'member' }),
        'crew needs at least one admin: make another member an admin first.',
      ],
      [
        amy.service.leaveGroup({ group: 'crew' }),
        'You are the last admin of crew. Make another member an admin before you leave.',
      ],
    ];
    for (const [call, message] of refusals)
      await expect(call).rejects.toMatchObject({ code: 'NOT_ALLOWED', message });
    await expect(amy.service.inviteToGroup({ group: 'crew', userId: 'ben' })).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'ben is already a member of crew.',
    });
    await expect(amy.service.inviteToGroup({ group: 'crew', userId: 'nobody' })).rejects.toMatchObject({
      code: 'UNKNOWN_USER',
      message: 'There is no user nobody on this relay.',
    });
    expect(await lines(amy, 'crew')).toEqual(before);
    // Members who are not admins learn of changes from a head notice, a moment later.
    await until(async () => (await ben.service.getGroup({ group: 'crew' })).members.length === 3);
    expect(roster(await ben.service.getGroup({ group: 'crew' }))).toEqual([
      'amy:admin:member',
      'ben:member:member',
      'cat:member:member',
    ]);

    // Everyone compares the same group safety number, with a QR code.
    const numbers = await Promise.all(
      [amy, ben, cat].map((u) => u.service.getGroupSafetyNumber({ group: 'crew' })),
    );
    expect(numbers[0]!.digits).toMatch(/^\d{60}$/);
    expect(new Set(numbers.map((n) => n.digits)).size).toBe(1);
    expect(numbers[0]!.qrSvg).toContain('<svg');
    expect((await amy.service.getGroup({ group: 'crew' })).safetyNumber).toBe(numbers[0]!.digits);

    // Roles: every member sees the change as a line.
    await amy.service.setGroupRole({ group: 'crew', userId: 'ben', role: 'admin' });
    await amy.events.item('group:crew', 'You made ben an admin.');
    await ben.events.item('group:crew', 'amy made you an admin.');
    await cat.events.item('group:crew', 'amy made ben an admin.');
    await ben.service.setGroupRole({ group: 'crew', userId: 'amy', role: 'member' });
    await amy.events.item('group:crew', 'ben took the admin role from you.');
    await cat.events.item('group:crew', 'ben took the admin role from amy.');

    // A message before the removal reaches cat.
    await amy.service.sendGroup({ group: 'crew', text: 'before the removal' });
    await cat.events.item('group:crew', 'before the removal');

    await ben.service.removeFromGroup({ group: 'crew', userId: 'cat' });
    await ben.events.item('group:crew', 'You removed cat.');
    await amy.events.item('group:crew', 'ben removed cat.');
    await cat.events.item(
      'group:crew',
      'ben removed you from the group. You no longer receive its messages.',
    );
    await until(() => lastGroupEvent(cat, 'crew')?.type === 'groupRemoved');
    await expect(cat.service.getGroup({ group: 'crew' })).rejects.toMatchObject({ code: 'NOT_A_MEMBER' });
    await expect(cat.service.sendGroup({ group: 'crew', text: 'still here?' })).rejects.toMatchObject({
      code: 'NOT_A_MEMBER',
      message: 'You are not a member of the group crew.',
    });

    // The number changed with the roster, the same for those who stay.
    const after = await amy.service.getGroupSafetyNumber({ group: 'crew' });
    expect(after.digits).not.toBe(numbers[0]!.digits);
    expect((await ben.service.getGroupSafetyNumber({ group: 'crew' })).digits).toBe(after.digits);

    // What amy writes now reaches ben (his receipt marks it delivered), and never cat: no line, no
    // message, not even one that failed to decrypt.
    const catEventsBefore = cat.events.all.length;
    const secret = await amy.service.sendGroup({ group: 'crew', text: 'after the removal' });
    await ben.events.item('group:crew', 'after the removal');
    await amy.events.wait((e) => e.type === 'itemStatus' && e.id === secret.id && e.status === 'delivered');
    await amy.service.sendGroup({ group: 'crew', text: 'one more after' });
    await ben.events.item('group:crew', 'one more after');
    await new Promise((r) => setTimeout(r, 300));
    const catLater = cat.events.all.slice(catEventsBefore);
    expect(catLater.filter((e) => e.type === 'item' || e.type === 'error')).toEqual([]);
    const catLines = await lines(cat, 'crew');
    expect(catLines).toContain('before the removal');
    expect(catLines).not.toContain('after the removal');
    expect(catLines).not.toContain('one more after');
    expect(catLines.at(-1)).toBe('ben removed you from the group. You no longer receive its messages.');

    // Every change is a line on the admin's side, in order.
    expect((await lines(amy, 'crew')).filter((l) => !/^Keys rotated|removal|after$/.test(l))).toEqual([
      'You created the group. Only people an admin invites can join.',
      'You invited ben.',
      'ben joined the group.',
      'You invited cat.',
      'cat declined the invitation.',
      'You invited cat.',
      'cat joined the group.',
      'You made ben an admin.',
      'ben took the admin role from you.',
      'ben removed cat.',
    ]);
  });

  it('opens a group by name or invite link, with or without approval, and revokes the link', async () => {
    const dan = await user('dan');
    const eve = await user('eve');
    const fay = await user('fay');
    const gus = await user('gus');
    const hal = await user('hal');

    const open = await dan.service.createGroup({ group: 'open-house', policy: 'open' });
    expect(open.policy).toBe('open');
    await dan.events.item(
      'group:open-house',
      'You created the group. Anyone who knows its name can join and read later messages.',
    );
    const joined = await eve.service.joinGroup({ group: 'open-house' });
    expect(joined.me.standing).toBe('member');
    await dan.events.item('group:open-house', 'eve joined the group.');

    // A link without approval: whoever has it is a member at once.
    const linked = await dan.service.setGroupPolicy({ group: 'open-house', policy: 'link' });
    expect(linked).toMatchObject({ policy: 'link', approval: false });
    const link = linked.link!;
    expect(link).toMatch(/^sealed:\/\/join\?relay=.+&group=open-house#[A-Za-z0-9_-]{43}$/);
    await dan.events.item(
      'group:open-house',
      'You made a new invite link: anyone with the link can now join.',
    );
    await eve.events.item(
      'group:open-house',
      'dan made a new invite link: anyone with the link can now join.',
    );
    // eve, not an admin, never sees the link (only the device that made it does).
    await until(async () => (await eve.service.getGroup({ group: 'open-house' })).policy === 'link');
    expect((await eve.service.getGroup({ group: 'open-house' })).link).toBeNull();
    await expect(fay.service.joinGroup({ group: 'open-house' })).rejects.toMatchObject({
      code: 'NOT_ALLOWED',
      message: 'You can only join open-house with an invitation or its invite link. Ask one of its admins.',
    });
    expect((await fay.service.joinGroupWithLink({ link })).me.standing).toBe('member');
    await dan.events.item('group:open-house', 'fay joined the group.');
    await fay.events.item('group:open-house', 'You joined the group.');

    // Copying: the admin's link goes to the clipboard; nobody else can copy one.
    await dan.service.copyGroupLink({ group: 'open-house' });
    expect(clipboard.at(-1)).toBe(link);
    await expect(eve.service.copyGroupLink({ group: 'open-house' })).rejects.toMatchObject({
      code: 'NOT_ALLOWED',
      message: 'Only an admin of open-house can share the invite link.',
    });

    // A new link with approval: the old one stops working; the new one makes a request.
    const approving = await dan.service.setGroupPolicy({
      group: 'open-house',
      policy: 'link',
      approval: true,
    });
    expect(approving.link).not.toBe(link);
    await dan.events.item(
      'group:open-house',
      'You made a new invite link: anyone with the link can now ask to join (an admin approves each request).',
    );
    await expect(gus.service.joinGroupWithLink({ link })).rejects.toMatchObject({
      code: 'NOT_ALLOWED',
      message:
        'This invite link to open-house does not work any more: an admin replaced or revoked it. Ask for a new one.',
    });
    const asked = await gus.service.joinGroupWithLink({ link: approving.link! });
    expect(asked.me.standing).toBe('requested');
    await gus.events.item(
      'group:open-house',
      'You asked to join with the invite link. An admin of the group has to approve your request.',
    );
    await dan.events.item('group:open-house', 'gus asked to join with the invite link.');
    await expect(gus.service.sendGroup({ group: 'open-house', text: 'let me in' })).rejects.toMatchObject({
      code: 'NOT_A_MEMBER',
    });
    await expect(
      eve.service.approveJoinRequest({ group: 'open-house', userId: 'gus' }),
    ).rejects.toMatchObject({
      code: 'NOT_ALLOWED',
    });
    const approved = await dan.service.approveJoinRequest({ group: 'open-house', userId: 'gus' });
    expect(approved.members).toEqual(['dan', 'eve', 'fay', 'gus']);
    await dan.events.item('group:open-house', 'gus joined the group (you approved the request).');
    await eve.events.item('group:open-house', 'gus joined the group (dan approved the request).');
    await gus.events.item('group:open-house', 'You joined the group.');
    await gus.service.sendGroup({ group: 'open-house', text: 'thanks for letting me in' });
    await dan.events.item('group:open-house', 'thanks for letting me in');

    // A request declined.
    await hal.service.joinGroupWithLink({ link: approving.link! });
    await dan.events.item('group:open-house', 'hal asked to join with the invite link.');
    await dan.service.removeFromGroup({ group: 'open-house', userId: 'hal' });
    await dan.events.item('group:open-house', "You declined hal's request to join.");
    await hal.events.item('group:open-house', 'dan declined your request to join.');
    // ...and one withdrawn by the one who asked.
    await hal.service.joinGroupWithLink({ link: approving.link! });
    await until(async () =>
      (await dan.service.getGroup({ group: 'open-house' })).roster.some((m) => m.userId === 'hal'),
    );
    await hal.service.leaveGroup({ group: 'open-house' });
    await hal.events.item('group:open-house', 'You withdrew your request to join.');
    await dan.events.item('group:open-house', 'hal withdrew the request to join.');

    // Back to invite-only: the link is gone and no longer works.
    const closed = await dan.service.setGroupPolicy({ group: 'open-house', policy: 'invite-only' });
    expect(closed).toMatchObject({ policy: 'invite-only', approval: false, link: null });
    await dan.events.item(
      'group:open-house',
      'You changed who can join. Only people an admin invites can join. The invite link no longer works.',
    );
    await expect(hal.service.joinGroupWithLink({ link: approving.link! })).rejects.toMatchObject({
      code: 'NOT_ALLOWED',
    });
    await expect(dan.service.copyGroupLink({ group: 'open-house' })).rejects.toMatchObject({
      code: 'NOT_FOUND',
    });

    // Malformed input changes nothing.
    for (const bad of [
      'sealed://join?group=open-house',
      'https://example.org/join',
      'sealed://join?relay=x&group=bad%20name#AAAA',
    ]) {
      await expect(hal.service.joinGroupWithLink({ link: bad })).rejects.toMatchObject({
        code: 'INVALID_ARGUMENT',
      });
    }
    await expect(
      dan.service.setGroupPolicy({ group: 'open-house', policy: 'open', approval: true }),
    ).rejects.toMatchObject({
      code: 'INVALID_ARGUMENT',
      message: 'Approving each request applies to the invite link only.',
    });
    expect((await hal.service.listGroups()).map((g) => g.group)).toEqual([]);
  });

  it('says when the relay rolls a member list back, and refuses to send until it agrees again', async () => {
    const data = tempDir('sealed-relay-');
    const snapshot = tempDir('sealed-relay-snapshot-');
    dirs.push(data.cleanup, snapshot.cleanup);
    let own = await startRelay({ host: '127.0.0.1', port: 0, dataDir: data.dir });
    const port = Number(new URL(own.url).port);
    const ida = await user('ida', own.url);
    const jon = await user('jon', own.url);
    await user('kim', own.url);
    await ida.service.createGroup({ group: 'vault' });
    await ida.service.inviteToGroup({ group: 'vault', userId: 'jon' });
    await jon.events.item('group:vault', /invited you/);
    await jon.service.acceptGroupInvitation({ group: 'vault' });
    await ida.events.item('group:vault', 'jon joined the group.');

    // The relay's data as it is now...
    const connects = (): number =>
      ida.events.all.filter((e) => e.type === 'connection' && e.state === 'connected').length;
    const before = connects();
    await own.close();
    rmSync(snapshot.dir, { recursive: true, force: true });
    cpSync(data.dir, snapshot.dir, { recursive: true });
    own = await startRelay({ host: '127.0.0.1', port, dataDir: data.dir });
    await until(() => connects() > before, 15_000);
    await ida.service.inviteToGroup({ group: 'vault', userId: 'kim' });
    await ida.events.item('group:vault', 'You invited kim.');
    await jon.events.item('group:vault', 'ida invited kim.');

    // ...comes back: the relay "forgets" the invitation it relayed.
    await own.close();
    const honest = tempDir('sealed-relay-honest-');
    dirs.push(honest.cleanup);
    cpSync(data.dir, honest.dir, { recursive: true });
    rmSync(data.dir, { recursive: true, force: true });
    cpSync(snapshot.dir, data.dir, { recursive: true });
    own = await startRelay({ host: '127.0.0.1', port, dataDir: data.dir });
    try {
      const warning =
        "The relay's member list of vault is older than yours: it lost changes, or is hiding them.";
      await ida.events.item(
        'group:vault',
        `Member lists differ. ${warning} Sending to the group is paused.`,
        15_000,
      );
      await jon.events.item(
        'group:vault',
        `Member lists differ. ${warning} Sending to the group is paused.`,
        15_000,
      );
      const info = await ida.service.getGroup({ group: 'vault' });
      expect(info.outOfSync).toBe(warning);
      // The member list itself stays as verified: kim is still invited on ida's side.
      expect(roster(info)).toEqual(['ida:admin:member', 'jon:member:member', 'kim:member:invited']);
      await expect(ida.service.sendGroup({ group: 'vault', text: 'is this safe?' })).rejects.toMatchObject({
        code: 'GROUP_OUT_OF_SYNC',
        message: warning,
      });
      const sent = (await lines(ida, 'vault')).filter((l) => l === 'is this safe?');
      expect(sent).toEqual([]);

      // The relay with the whole log returns: the lists agree again, and sending works.
      await own.close();
      rmSync(data.dir, { recursive: true, force: true });
      cpSync(honest.dir, data.dir, { recursive: true });
      own = await startRelay({ host: '127.0.0.1', port, dataDir: data.dir });
      const again = "Your member list agrees with the other members' again. Sending is possible again.";
      await ida.events.item('group:vault', again, 15_000);
      await until(async () => (await ida.service.getGroup({ group: 'vault' })).outOfSync === null);
      await ida.service.sendGroup({ group: 'vault', text: 'safe again' });
      await jon.events.item('group:vault', 'safe again');
    } finally {
      await own.close();
    }
  });
});

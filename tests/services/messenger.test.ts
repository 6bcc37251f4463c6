/**
 * Two MessengerServices (alice, bob) and a real relay on 127.0.0.1: direct and group chat as the
 * renderer sees it (history items, statuses, events), restart, and a contact's key change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { randomBytes } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { E2EEClient } from '../../src-main/core/client/client.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import type { MessengerEvent } from '../../src-main/shared/messenger-api.js';
import type { MessengerService } from '../../src-main/services/messenger-service.js';
import type { Notification } from '../../src-main/services/client-bridge.js';
import { Impostor } from '../e2e/impostor.js';
import { startProxy } from '../e2e/proxy.js';
import { Events, startService, tempDir, testKeychain, until } from './helpers.js';

let relay: Relay;
const keychain = testKeychain();
const dirs: (() => void)[] = [];
const services: MessengerService[] = [];

async function user(
  userId: string,
  extra: { notify?: (n: Notification) => void; dataDir?: string; sendWaitMs?: number } = {},
): Promise<{ service: MessengerService; events: Events; dataDir: string }> {
  let dataDir = extra.dataDir;
  if (!dataDir) {
    const t = tempDir();
    dirs.push(t.cleanup);
    dataDir = t.dir;
  }
  const service = await startService({
    dataDir,
    secrets: keychain.secrets(),
    notify: extra.notify,
    sendWaitMs: extra.sendWaitMs,
  });
  services.push(service);
  const events = new Events(service);
  if (!(await service.getStatus()).profile) await service.createProfile({ userId });
  return { service, events, dataDir };
}

beforeAll(async () => {
  relay = await startRelay({ host: '127.0.0.1', port: 0 });
});

afterAll(async () => {
  for (const s of services) await s.close();
  await relay.close();
  for (const c of dirs) c();
  await keychain.cleanup();
});

const isConnected = (e: MessengerEvent): boolean => e.type === 'connection' && e.state === 'connected';

describe('MessengerService with a relay', () => {
  it('chats directly: statuses, events, unread, notifications, and history survives a restart', async () => {
    const notes: Notification[] = [];
    const alice = await user('alice', { notify: (n) => notes.push(n) });
    const bob = await user('bob');
    await alice.service.connect({ relayUrl: relay.url });
    await bob.service.connect({ relayUrl: relay.url });
    await alice.events.wait(isConnected);
    expect((await alice.service.getStatus()).connection).toBe('connected');
    expect((await alice.service.getStatus()).profile?.relayUrl).toBe(relay.url);

    // The item exists ('sending') before the relay accepted it, then moves to sent and delivered.
    const sent = await alice.service.sendDirect({ to: 'bob', text: 'hello bob' });
    expect(sent).toMatchObject({ conversationId: 'dm:bob', direction: 'out', text: 'hello bob' });
    const firstItem = alice.events.all.find((e) => e.type === 'item');
    expect(firstItem).toMatchObject({ type: 'item', item: { id: sent.id, status: 'sending' } });
    await alice.events.wait((e) => e.type === 'itemStatus' && e.id === sent.id && e.status === 'delivered');

    const got = await bob.events.item('dm:alice', 'hello bob');
    expect(got.item).toMatchObject({ from: 'alice', direction: 'in', kind: 'message' });
    const bobConv = (await bob.service.listConversations()).find((c) => c.id === 'dm:alice')!;
    expect(bobConv).toMatchObject({ kind: 'direct', title: 'alice', unread: 1, keyChanged: false });
    expect(bobConv.last).toMatchObject({ from: 'alice', text: 'hello bob' });
    await bob.service.markRead({ conversationId: 'dm:alice' });
    expect((await bob.service.listConversations())[0]!.unread).toBe(0);

    // Notification wording follows the privacy setting.
    await bob.service.sendDirect({ to: 'alice', text: 'secret words' });
    await alice.events.item('dm:bob', 'secret words');
    expect(notes).toEqual([{ title: 'Sealed', body: 'New message from bob' }]);
    await alice.service.updateSettings({ notifications: 'sender-and-text' });
    await bob.service.sendDirect({ to: 'alice', text: 'more words' });
    await alice.events.item('dm:bob', 'more words');
    expect(notes.at(-1)).toEqual({ title: 'bob', body: 'more words' });
    await alice.service.updateSettings({ notifications: 'none' });
    await bob.service.sendDirect({ to: 'alice', text: 'quiet words' });
    await alice.events.item('dm:bob', 'quiet words');
    expect(notes).toHaveLength(2);

    // Safety numbers agree on both sides and come with a QR code.
    const sa = await alice.service.getSafetyNumber({ userId: 'bob' });
    const sb = await bob.service.getSafetyNumber({ userId: 'alice' });
    expect(sa.digits).toMatch(/^\d{60}$/);
    expect(sa.digits).toBe(sb.digits);
    expect(sa.qrSvg).toContain('<svg');
    await alice.service.setVerified({ userId: 'bob', verified: true });
    expect(await alice.service.listContacts()).toEqual([
      { userId: 'bob', verified: true, keyChanged: false },
    ]);

    // Restart alice on the same data directory and keychain entry: history, contacts, relay remembered.
    const before = await alice.service.getHistory({ conversationId: 'dm:bob' });
    await alice.service.close();
    const again = await user('alice', { dataDir: alice.dataDir });
    const status = await again.service.getStatus();
    expect(status).toMatchObject({
      locked: false,
      profile: { userId: 'alice', keyStorage: 'keychain', relayUrl: relay.url },
    });
    const after = await again.service.getHistory({ conversationId: 'dm:bob' });
    expect(after.items.map((i) => [i.id, i.text, i.status])).toEqual(
      before.items.map((i) => [i.id, i.text, i.status]),
    );
    expect(after.items.find((i) => i.id === sent.id)?.status).toBe('delivered');
    expect(await again.service.listContacts()).toEqual([
      { userId: 'bob', verified: true, keyChanged: false },
    ]);
    // It reconnected by itself, and the same sessions still work.
    await again.events.wait(isConnected);
    await again.service.sendDirect({ to: 'bob', text: 'back again' });
    await bob.events.item('dm:alice', 'back again');
  });

  it('chats in a group with membership and key events', async () => {
    const carol = await user('carol');
    const dave = await user('dave');
    await carol.service.connect({ relayUrl: relay.url });
    await dave.service.connect({ relayUrl: relay.url });

    const info = await carol.service.createGroup({ group: 'team' });
    expect(info).toMatchObject({
      group: 'team',
      creator: 'carol',
      members: ['carol'],
      policy: 'invite-only',
      me: { userId: 'carol', role: 'admin', standing: 'member' },
    });
    await carol.events.item('group:team', 'You created the group. Only people an admin invites can join.');
    // Invite-only: knowing the name is not enough.
    await expect(dave.service.joinGroup({ group: 'team' })).rejects.toMatchObject({
      code: 'NOT_ALLOWED',
      message: 'You can only join team with an invitation or its invite link. Ask one of its admins.',
    });
    await carol.service.inviteToGroup({ group: 'team', userId: 'dave' });
    await carol.events.item('group:team', 'You invited dave.');
    await dave.events.item('group:team', 'carol invited you to the group. Accept to read and write here.');
    const joined = await dave.service.acceptGroupInvitation({ group: 'team' });
    expect(joined).toMatchObject({ group: 'team', creator: 'carol', members: ['carol', 'dave'] });
    await dave.events.item('group:team', 'You joined the group.');
    expect(await dave.service.getGroup({ group: 'team' })).toEqual(joined);
    await carol.events.item('group:team', 'dave joined the group.');

    const m = await carol.service.sendGroup({ group: 'team', text: 'hi team' });
    await carol.events.item('group:team', /^Keys rotated/);
    await dave.events.item('group:team', 'hi team');
    await carol.events.wait((e) => e.type === 'itemStatus' && e.id === m.id && e.status === 'delivered');
    await dave.service.sendGroup({ group: 'team', text: 'hi carol' });
    await carol.events.item('group:team', 'hi carol');
    expect(await carol.service.getGroup({ group: 'team' })).toMatchObject({
      group: 'team',
      creator: 'carol',
      members: ['carol', 'dave'],
    });

    await dave.service.leaveGroup({ group: 'team' });
    await carol.events.item('group:team', 'dave left the group.');
    await dave.events.item('group:team', 'You left the group.');
    await expect(dave.service.sendGroup({ group: 'team', text: 'x' })).rejects.toMatchObject({
      code: 'NOT_A_MEMBER',
      message: 'You are not a member of the group team.',
    });
    await carol.service.deleteGroup({ group: 'team' });
    await carol.events.item('group:team', 'You deleted the group.');
    // The conversation and its history stay after the group is gone.
    const page = await carol.service.getHistory({ conversationId: 'group:team' });
    expect(page.items.map((i) => i.text)).toContain('hi carol');
    // Only outgoing messages carry a status; events (also the user's own) never do.
    const events = page.items.filter((i) => i.kind === 'event');
    expect(events.map((i) => i.text)).toContain(
      'You created the group. Only people an admin invites can join.',
    );
    expect(events.every((i) => i.status === undefined)).toBe(true);
  });

  it('delivers events to every subscriber until it unsubscribes; a throwing listener harms nobody', async () => {
    const ivy = await user('ivy');
    const a: MessengerEvent[] = [];
    const b: MessengerEvent[] = [];
    const offThrowing = ivy.service.subscribe(() => {
      throw new Error('listener bug');
    });
    const offA = ivy.service.subscribe((e) => a.push(e));
    ivy.service.subscribe((e) => b.push(e));
    await ivy.service.updateSettings({ theme: 'light' });
    offA();
    offThrowing();
    await ivy.service.updateSettings({ theme: 'dark' });
    const themes = (list: MessengerEvent[]): string[] =>
      list.flatMap((e) => (e.type === 'settings' ? [e.settings.theme] : []));
    expect(themes(a)).toEqual(['light']);
    expect(themes(b)).toEqual(['light', 'dark']);
    expect(await ivy.service.getSettings()).toEqual({
      notifications: 'sender',
      theme: 'dark',
      relayPort: 8787,
    });
  });

  it('keeps no message text on disk, in the database, its WAL or the key file', async () => {
    const gina = await user('gina');
    const hank = await user('hank');
    await gina.service.connect({ relayUrl: relay.url });
    await hank.service.connect({ relayUrl: relay.url });
    const marker = `MARKER-${randomBytes(8).toString('hex')}`;
    await gina.service.sendDirect({ to: 'hank', text: `direct ${marker}` });
    await hank.events.item('dm:gina', `direct ${marker}`);
    await hank.service.sendDirect({ to: 'gina', text: `reply ${marker}` });
    await gina.events.item('dm:hank', `reply ${marker}`);
    await gina.service.createGroup({ group: 'secret-club' });
    await gina.service.inviteToGroup({ group: 'secret-club', userId: 'hank' });
    await hank.events.item('group:secret-club', /invited you/);
    await hank.service.acceptGroupInvitation({ group: 'secret-club' });
    await gina.events.item('group:secret-club', 'hank joined the group.');
    await gina.service.sendGroup({ group: 'secret-club', text: `group ${marker}` });
    await hank.events.item('group:secret-club', `group ${marker}`);

    const raw = (dir: string): string =>
      readdirSync(dir, { recursive: true, withFileTypes: true })
        .filter((d) => d.isFile())
        .map((d) => readFileSync(path.join(d.parentPath, d.name)).toString('latin1'))
        .join('\n');
    for (const u of [gina, hank]) {
      expect(readdirSync(path.join(u.dataDir, 'profiles', u === gina ? 'gina' : 'hank'))).toContain(
        'sealed.db-wal',
      );
      const bytes = raw(u.dataDir);
      expect(bytes).toContain(u === gina ? 'gina' : 'hank'); // ids are plain, as documented
      expect(bytes).not.toContain(marker);
    }
    // The history is all there, decrypted, for the app.
    const page = await hank.service.getHistory({ conversationId: 'dm:gina' });
    expect(page.items.map((i) => i.text)).toEqual([`direct ${marker}`, `reply ${marker}`]);
  });

  it('reconnects after the relay restarts and sends what was written offline, even across an app restart', async () => {
    const t = tempDir('sealed-relay-');
    dirs.push(t.cleanup);
    let own = await startRelay({ host: '127.0.0.1', port: 0, dataDir: t.dir });
    const url = own.url;
    const kim = await user('kim', { sendWaitMs: 100 });
    const lee = await user('lee');
    await kim.service.connect({ relayUrl: url });
    await lee.service.connect({ relayUrl: url });
    await kim.service.sendDirect({ to: 'lee', text: 'before' });
    await lee.events.item('dm:kim', 'before');

    await own.close();
    await kim.events.wait((e) => e.type === 'connection' && e.state === 'reconnecting');
    const offline = await kim.service.sendDirect({ to: 'lee', text: 'written offline' });
    expect(offline.status).toBe('sending');

    // kim quits and starts again while the relay is still down: the message waits in the outbox.
    await kim.service.close();
    const kim2 = await user('kim', { dataDir: kim.dataDir });
    expect((await kim2.service.getStatus()).connection).toBe('connecting');
    const waiting = await kim2.service.getHistory({ conversationId: 'dm:lee' });
    expect(waiting.items.at(-1)).toMatchObject({ id: offline.id, status: 'sending' });

    own = await startRelay({ host: '127.0.0.1', port: Number(new URL(url).port), dataDir: t.dir });
    try {
      await kim2.events.wait(isConnected);
      await lee.events.item('dm:kim', 'written offline');
      await kim2.events.wait(
        (e) => e.type === 'itemStatus' && e.id === offline.id && e.status === 'delivered',
      );

      await lee.service.disconnect();
      expect((await lee.service.getStatus()).connection).toBe('offline');
    } finally {
      await own.close();
    }
  });

  it('stops sending to a contact whose key changed and holds what the new key sends until the user accepts it', async () => {
    const erin = await user('erin');
    await erin.service.connect({ relayUrl: relay.url });
    // frank's first installation: a plain client that talks to erin, then deletes its account.
    const frank1 = new E2EEClient({ url: relay.url, userId: 'frank' });
    frank1.on('error', () => undefined);
    await frank1.connect();
    await frank1.sendDirectMessage('erin', 'hi from the old phone');
    await erin.events.item('dm:frank', 'hi from the old phone');
    const oldNumber = (await erin.service.getSafetyNumber({ userId: 'frank' })).digits;
    await erin.service.setVerified({ userId: 'frank', verified: true });
    await frank1.deleteAccount();

    // frank re-registers the same user id with a new identity and writes again.
    const frank2 = new E2EEClient({ url: relay.url, userId: 'frank' });
    frank2.on('error', () => undefined);
    const received: string[] = [];
    frank2.on('message', (m) => received.push(m.text));
    await frank2.connect();
    await frank2.sendDirectMessage('erin', 'new phone, same frank');

    const notice = "frank's security key changed. Compare safety numbers before you continue.";
    await erin.events.item('dm:frank', notice);
    // What the new key sent is held, not shown: the contact says how many, with the new key's number.
    const held = await erin.events.wait(
      (e) => e.type === 'contact' && e.contact.userId === 'frank' && e.contact.pendingKey?.held === 1,
    );
    const newNumber = frank2.safetyNumber('erin')!;
    expect(held).toEqual({
      type: 'contact',
      contact: {
        userId: 'frank',
        verified: false,
        keyChanged: true,
        pendingKey: { safetyNumber: newNumber, held: 1 },
      },
    });
    const expected = ['hi from the old phone', notice];
    const live = erin.events.all.flatMap((e) =>
      e.type === 'item' && e.item.conversationId === 'dm:frank' ? [e.item.text] : [],
    );
    expect(live).toEqual(expected);
    const stored = await erin.service.getHistory({ conversationId: 'dm:frank' });
    expect(stored.items.map((i) => i.text)).toEqual(expected);
    const conv = (await erin.service.listConversations()).find((c) => c.id === 'dm:frank');
    expect(conv?.keyChanged).toBe(true);
    expect(await erin.service.listContacts()).toContainEqual(held.type === 'contact' && held.contact);

    await expect(erin.service.sendDirect({ to: 'frank', text: 'is it you?' })).rejects.toMatchObject({
      code: 'KEY_CHANGED',
      message: "frank's security key changed. Compare safety numbers and accept the new key before you send.",
    });
    await expect(erin.service.setVerified({ userId: 'frank', verified: true })).rejects.toMatchObject({
      code: 'KEY_CHANGED',
    });
    // The number shown is the one for the new key: it matches what frank's new installation shows.
    const pending = await erin.service.getSafetyNumber({ userId: 'frank' });
    expect(pending.keyChanged).toBe(true);
    expect(pending.digits).not.toBe(oldNumber);
    expect(pending.digits).toBe(newNumber);

    // Accepting with another number (the old one) is refused and changes nothing.
    await expect(
      erin.service.acceptKeyChange({ userId: 'frank', safetyNumber: oldNumber }),
    ).rejects.toMatchObject({
      code: 'KEY_CHANGED_AGAIN',
      message:
        "frank's security key changed again since that safety number was shown. Compare the new number before you accept.",
    });
    expect((await erin.service.listContacts()).find((c) => c.userId === 'frank')?.pendingKey).toEqual({
      safetyNumber: newNumber,
      held: 1,
    });

    // Accepting with the number shown (as grouped on screen): the held message appears, then the line.
    await erin.service.acceptKeyChange({
      userId: 'frank',
      safetyNumber: newNumber.replace(/(\d{5})/g, '$1 ').trim(),
    });
    expect(await erin.service.listContacts()).toContainEqual({
      userId: 'frank',
      verified: false,
      keyChanged: false,
    });
    const after = await erin.service.getHistory({ conversationId: 'dm:frank' });
    expect(after.items.map((i) => i.text)).toEqual([
      ...expected,
      'new phone, same frank',
      "You accepted frank's new security key. The 1 message it held until now is shown above.",
    ]);
    await erin.service.sendDirect({ to: 'frank', text: 'welcome back' });
    await until(() => received.includes('welcome back'));
    await expect(erin.service.rejectKeyChange({ userId: 'frank' })).rejects.toMatchObject({
      code: 'NO_KEY_CHANGE',
    });
    await frank2.close();
  });

  it('a relay speaking as a contact under its own key: warned in the chat and every shared group, then rejected', async () => {
    // The relay's view is the attacker's: a proxy in front of the real relay injects frames as "hal".
    const proxy = await startProxy(relay.url);
    try {
      const uma = await user('uma');
      await uma.service.connect({ relayUrl: proxy.url });
      const hal = new E2EEClient({ url: relay.url, userId: 'hal' });
      hal.on('error', () => undefined);
      await hal.connect();
      await uma.service.createGroup({ group: 'hikers', policy: 'open' });
      await hal.joinGroup('hikers');
      await uma.events.item('group:hikers', 'hal joined the group.');
      await hal.sendDirectMessage('uma', 'hi uma');
      await uma.events.item('dm:hal', 'hi uma');
      const oldNumber = (await uma.service.getSafetyNumber({ userId: 'hal' })).digits;

      const mallory = new Impostor('hal', proxy);
      mallory.inject('uma', mallory.text('uma', 'I am hal, send me the map'));
      const warning = "hal's security key changed. Compare safety numbers before you continue.";
      await uma.events.item('dm:hal', warning);
      await uma.events.item(
        'group:hikers',
        "hal's security key changed. Until you accept or reject it in your conversation with hal, what hal sends under the new key is held.",
      );
      await uma.events.wait(
        (e) => e.type === 'contact' && e.contact.userId === 'hal' && e.contact.pendingKey?.held === 1,
      );

      await uma.service.rejectKeyChange({ userId: 'hal' });
      expect(await uma.service.listContacts()).toContainEqual({
        userId: 'hal',
        verified: false,
        keyChanged: false,
      });
      expect((await uma.service.getSafetyNumber({ userId: 'hal' })).digits).toBe(oldNumber);
      const history = await uma.service.getHistory({ conversationId: 'dm:hal' });
      expect(history.items.map((i) => i.text)).toEqual([
        'hi uma',
        warning,
        "You rejected hal's new security key: your messages stay with the key you had. The 1 message sent under the new key was deleted unread.",
      ]);
      const group = await uma.service.getHistory({ conversationId: 'group:hikers' });
      expect(group.items.map((i) => i.text).slice(-1)).toEqual(["You rejected hal's new security key."]);
      await expect(
        uma.service.acceptKeyChange({ userId: 'hal', safetyNumber: oldNumber }),
      ).rejects.toMatchObject({ code: 'NO_KEY_CHANGE' });
      // Sending resumes, to the real hal.
      const got = new Promise<string>((resolve) => hal.once('message', (m) => resolve(m.text)));
      await uma.service.sendDirect({ to: 'hal', text: 'the map is in the car' });
      expect(await got).toBe('the map is in the car');
      await hal.close();
    } finally {
      await proxy.close();
    }
  });
});

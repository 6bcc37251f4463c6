/**
 * The IPC boundary as a hostile renderer sees it: untrusted senders, unknown methods and malformed
 * arguments are refused with a stable code and a plain sentence, and the service does not change.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import type { CallResult } from '../../src-main/shared/messenger-api.js';
import { createIpcDispatcher, isAppUrl, type IpcDispatcher } from '../../src-main/services/ipc.js';
import type { MessengerService } from '../../src-main/services/messenger-service.js';
import { Events, startService, tempDir, testKeychain } from './helpers.js';

const APP_ROOT = path.resolve('/opt/Sealed/resources/app/out/renderer');
const APP_URL = pathToFileURL(path.join(APP_ROOT, 'index.html')).href;

let relay: Relay;
let service: MessengerService;
let events: Events;
let dispatch: IpcDispatcher;
const keychain = testKeychain();
const tmp = tempDir();
const internalErrors: unknown[] = [];

const call = (method: unknown, args?: unknown): Promise<CallResult> => dispatch(APP_URL, method, args);

/** A refusal: the code, and a message that is one plain sentence without internals. */
function expectRefused(r: CallResult, code: string): string {
  expect(r.ok).toBe(false);
  if (r.ok) return '';
  expect(r.error.code).toBe(code);
  expect(r.error.message).toMatch(/^[A-Z].*[.]$/);
  expect(r.error.message).not.toMatch(/\n|\bat \w+ \(|Error:|valibot|undefined|\[object/);
  return r.error.message;
}

beforeAll(async () => {
  relay = await startRelay({ host: '127.0.0.1', port: 0 });
  service = await startService({ dataDir: tmp.dir, secrets: keychain.secrets() });
  events = new Events(service);
  dispatch = createIpcDispatcher(service, {
    isTrustedSender: (url) => isAppUrl(url, APP_ROOT),
    onInternalError: (_m, e) => internalErrors.push(e),
  });
});

afterAll(async () => {
  await service.close();
  await relay.close();
  tmp.cleanup();
  await keychain.cleanup();
});

describe('IPC dispatcher', () => {
  it('refuses untrusted senders, unknown methods and bad arguments, and nothing changes', async () => {
    const statusBefore = await service.getStatus();

    for (const url of [
      'https://evil.example/index.html',
      'file:///etc/passwd',
      pathToFileURL(path.join(APP_ROOT, 'other.html')).href,
      pathToFileURL(path.join(APP_ROOT, 'sub', 'index.html')).href,
      `file://attacker${APP_ROOT}/index.html`,
      'about:blank',
      '',
      'not a url',
    ]) {
      expect(
        expectRefused(await dispatch(url, 'createProfile', { userId: 'mallory' }), 'UNTRUSTED_SENDER'),
      ).toBe('This page is not allowed to use Sealed.');
    }
    expectRefused(await dispatch(undefined as unknown as string, 'getStatus', undefined), 'UNTRUSTED_SENDER');

    for (const method of [
      'eval',
      'onEvent',
      'subscribe',
      'start',
      'close',
      'emit',
      'constructor',
      '__proto__',
      'toString',
      'GETSTATUS',
      42,
      null,
      undefined,
      {},
      ['getStatus'],
    ]) {
      expectRefused(await call(method, undefined), 'UNKNOWN_METHOD');
    }

    const long = (n: number): string => 'x'.repeat(n);
    const bad: [string, unknown][] = [
      ['getStatus', { extra: 1 }],
      ['getStatus', 'x'],
      ['createProfile', undefined],
      ['createProfile', null],
      ['createProfile', 'alice'],
      ['createProfile', ['alice']],
      ['createProfile', {}],
      ['createProfile', { userId: '' }],
      ['createProfile', { userId: '-alice' }],
      ['createProfile', { userId: 'al ice' }],
      ['createProfile', { userId: 'alice/../..' }],
      ['createProfile', { userId: long(65) }],
      ['createProfile', { userId: 5 }],
      ['createProfile', { userId: 'alice', passphrase: 'short' }],
      ['createProfile', { userId: 'alice', passphrase: long(1025) }],
      ['createProfile', { userId: 'alice', isAdmin: true }],
      ['createProfile', JSON.parse('{"userId":"alice","__proto__":{"polluted":1}}')],
      ['unlock', { passphrase: 'short' }],
      ['unlock', { passphrase: 12345678 }],
      ['reopenProfile', { force: true }],
      ['discardProfile', undefined],
      ['discardProfile', {}],
      ['discardProfile', { userId: '../alice' }],
      ['discardProfile', { userId: 'alice', everything: true }],
      ['connect', { relayUrl: 'http://127.0.0.1:8787' }],
      ['connect', { relayUrl: 'javascript:alert(1)' }],
      ['connect', { relayUrl: 'ws://' }],
      ['connect', { relayUrl: 'ws://user:pw@relay.example' }],
      ['connect', { relayUrl: `ws://relay.example/${long(3000)}` }],
      ['connect', { url: 'ws://relay.example' }],
      ['hostRelay', { port: 80 }],
      ['hostRelay', { port: 0 }],
      ['hostRelay', { port: 70000 }],
      ['hostRelay', { port: 8787.5 }],
      ['hostRelay', { port: '8787' }],
      ['getSafetyNumber', { userId: '../etc' }],
      ['setVerified', { userId: 'bob', verified: 'yes' }],
      ['setVerified', { userId: 'bob' }],
      ['acceptKeyChange', {}],
      ['acceptKeyChange', { userId: 'bob' }],
      ['acceptKeyChange', { userId: 'bob', safetyNumber: '12345' }],
      ['acceptKeyChange', { userId: 'bob', safetyNumber: `${'1'.repeat(59)}x` }],
      ['acceptKeyChange', { userId: 'bob', safetyNumber: 1 }],
      ['acceptKeyChange', { userId: 'bob', safetyNumber: ' '.repeat(150) + '1'.repeat(60) }],
      ['rejectKeyChange', {}],
      ['rejectKeyChange', { userId: 'bob', safetyNumber: '1'.repeat(60) }],
      ['getHistory', { conversationId: 'bob' }],
      ['getHistory', { conversationId: 'x:bob' }],
      ['getHistory', { conversationId: 'dm:' }],
      ['getHistory', { conversationId: 'dm:bob', limit: 0 }],
      ['getHistory', { conversationId: 'dm:bob', limit: 201 }],
      ['getHistory', { conversationId: 'dm:bob', limit: 1.5 }],
      ['getHistory', { conversationId: 'dm:bob', before: '!!' }],
      ['getHistory', { conversationId: 'dm:bob', before: long(65) }],
      ['markRead', { conversationId: 'group:' }],
      ['openDirect', { userId: null }],
      ['sendDirect', { to: 'bob', text: '' }],
      ['sendDirect', { to: 'bob', text: long(60_001) }],
      ['sendDirect', { to: 'bob', text: 5 }],
      ['sendDirect', { to: 'bob' }],
      ['sendDirect', { to: 'bob', text: 'hi', id: 'chosen' }],
      ['sendGroup', { group: 'bad group', text: 'hi' }],
      ['createGroup', { group: long(65) }],
      ['joinGroup', {}],
      ['leaveGroup', { group: '' }],
      ['deleteGroup', { group: 7 }],
      ['getGroup', undefined],
      ['createGroup', { group: 'g', policy: 'link' }],
      ['createGroup', { group: 'g', policy: 'public' }],
      ['joinGroupWithLink', {}],
      ['joinGroupWithLink', { link: 5 }],
      ['joinGroupWithLink', { link: 'https://evil.example/join?group=g' }],
      ['joinGroupWithLink', { link: `sealed://join?relay=x&group=g#${long(3000)}` }],
      ['joinGroupWithLink', { link: 'sealed://join?group=g', group: 'g' }],
      ['inviteToGroup', { group: 'g' }],
      ['inviteToGroup', { group: 'g', userId: '../x' }],
      ['acceptGroupInvitation', { group: 'g', userId: 'bob' }],
      ['declineGroupInvitation', {}],
      ['approveJoinRequest', { group: 'g', userId: '' }],
      ['removeFromGroup', { group: 'g', userId: 7 }],
      ['setGroupRole', { group: 'g', userId: 'bob' }],
      ['setGroupRole', { group: 'g', userId: 'bob', role: 'owner' }],
      ['setGroupPolicy', { group: 'g' }],
      ['setGroupPolicy', { group: 'g', policy: 'everyone' }],
      ['setGroupPolicy', { group: 'g', policy: 'link', approval: 'yes' }],
      ['copyGroupLink', { group: 'g', text: 'anything' }],
      ['listGroups', { group: 'g' }],
      ['getGroupSafetyNumber', {}],
      ['updateSettings', { theme: 'blue' }],
      ['updateSettings', { notifications: 'all' }],
      ['updateSettings', { relayPort: 22 }],
      ['updateSettings', { fontSize: 14 }],
    ];
    for (const [method, args] of bad) {
      const r = await call(method, args);
      try {
        expectRefused(r, 'INVALID_ARGUMENT');
      } catch (e) {
        throw new Error(`${method}(${JSON.stringify(args)?.slice(0, 80)}): ${String(e)}`, { cause: e });
      }
    }
    expect(
      expectRefused(await call('sendDirect', { to: 'bob', text: long(60_001) }), 'INVALID_ARGUMENT'),
    ).toBe('The message is longer than 60,000 characters.');
    expect(expectRefused(await call('createProfile', { userId: 'alice', x: 1 }), 'INVALID_ARGUMENT')).toBe(
      'The request has an unexpected field "x".',
    );
    expect(
      expectRefused(
        await call('setGroupRole', { group: 'g', userId: 'bob', role: 'owner' }),
        'INVALID_ARGUMENT',
      ),
    ).toBe('The role must be admin or member.');
    expect(
      expectRefused(await call('joinGroupWithLink', { link: 'https://evil.example/' }), 'INVALID_ARGUMENT'),
    ).toBe('This is not a Sealed invite link. It starts with sealed://join.');
    expect(expectRefused(await call('createGroup', { group: 'g', policy: 'link' }), 'INVALID_ARGUMENT')).toBe(
      'A new group is invite-only or open (an invite link is made once it exists).',
    );

    // Nothing happened: no profile, no events, same status.
    expect(await service.getStatus()).toEqual(statusBefore);
    expect(statusBefore.profile).toBeNull();
    expect(events.all).toEqual([]);
    expect(internalErrors).toEqual([]);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
  });

  it('passes valid calls through and turns service failures into plain sentences', async () => {
    expectRefused(await call('getHistory', { conversationId: 'dm:bob' }), 'NO_PROFILE');
    const created = await call('createProfile', { userId: 'ipc-user' });
    expect(created).toEqual({
      ok: true,
      value: { userId: 'ipc-user', relayUrl: null, keyStorage: 'keychain' },
    });
    expectRefused(await call('createProfile', { userId: 'other' }), 'PROFILE_EXISTS');
    // A profile that opened is never deleted through the renderer.
    expect(expectRefused(await call('discardProfile', { userId: 'ipc-user' }), 'PROFILE_IN_USE')).toBe(
      'Only a profile whose keys are lost can be deleted this way.',
    );
    expect(await call('reopenProfile')).toMatchObject({ ok: true, value: { userId: 'ipc-user' } });
    expectRefused(await call('sendDirect', { to: 'bob', text: 'hi' }), 'NOT_CONNECTED');
    expect(await call('connect', { relayUrl: relay.url })).toEqual({ ok: true, value: undefined });
    expect(expectRefused(await call('sendDirect', { to: 'nobody', text: 'hi' }), 'UNKNOWN_USER')).toBe(
      'There is no user nobody on this relay.',
    );
    expectRefused(await call('sendDirect', { to: 'ipc-user', text: 'hi' }), 'INVALID_ARGUMENT');
    expectRefused(await call('joinGroup', { group: 'nope' }), 'UNKNOWN_GROUP');
    expect(await call('listGroups')).toEqual({ ok: true, value: [] });
    expect(expectRefused(await call('getGroup', { group: 'nope' }), 'NOT_A_MEMBER')).toBe(
      'You are not a member of the group nope.',
    );
    expectRefused(await call('inviteToGroup', { group: 'nope', userId: 'bob' }), 'NOT_A_MEMBER');
    expectRefused(await call('copyGroupLink', { group: 'nope' }), 'NOT_A_MEMBER');
    expect(await call('createGroup', { group: 'ipc-group' })).toMatchObject({
      ok: true,
      value: { group: 'ipc-group', policy: 'invite-only', me: { role: 'admin', standing: 'member' } },
    });
    expect(
      expectRefused(await call('createGroup', { group: 'ipc-group', policy: 'open' }), 'GROUP_EXISTS'),
    ).toBe('You are already in a group named ipc-group.');
    expect(
      expectRefused(
        await call('joinGroupWithLink', { link: 'sealed://join?relay=ws%3A%2F%2Fx&group=ipc-group#abc' }),
        'INVALID_ARGUMENT',
      ),
    ).toBe('This is not a Sealed invite link. It starts with sealed://join.');
    expect(await call('copyGroupLink', { group: 'ipc-group' })).toMatchObject({ ok: false });
    // The failed message stays in its conversation, marked failed.
    const failed = await call('getHistory', { conversationId: 'dm:nobody' });
    expect(failed).toMatchObject({
      ok: true,
      value: { items: [{ text: 'hi', status: 'failed' }], nextBefore: null },
    });
    expectRefused(await call('getHistory', { conversationId: 'dm:stranger' }), 'NOT_FOUND');
    expectRefused(await call('getSafetyNumber', { userId: 'nobody' }), 'NO_SAFETY_NUMBER');
    const settings = await call('updateSettings', { theme: 'dark' });
    expect(settings).toEqual({
      ok: true,
      value: { notifications: 'sender', theme: 'dark', relayPort: 8787 },
    });
    expect(await call('getStatus')).toMatchObject({ ok: true, value: { connection: 'connected' } });
    expect(await call('getStatus', {})).toMatchObject({ ok: true });
  });

  it('never shows an unexpected error to the renderer', async () => {
    const seen: unknown[] = [];
    const broken = new Proxy({} as MessengerService, {
      get: () => async () => {
        throw new Error('ENOENT: /home/alice/.config/Sealed/secret-path at Object.<anonymous>');
      },
    });
    const d = createIpcDispatcher(broken, {
      isTrustedSender: () => true,
      onInternalError: (_m, e) => seen.push(e),
    });
    const valid: [string, unknown][] = [
      ['getStatus', undefined],
      ['listContacts', {}],
      ['sendDirect', { to: 'bob', text: 'hi' }],
    ];
    for (const [method, args] of valid) {
      expect(await d(APP_URL, method, args)).toEqual({
        ok: false,
        error: { code: 'INTERNAL', message: 'Something went wrong. Please try again.' },
      });
    }
    expect(seen).toHaveLength(3);
  });
});

describe('isAppUrl', () => {
  it('accepts only the bundled page or the app scheme', () => {
    expect(isAppUrl(APP_URL, APP_ROOT)).toBe(true);
    expect(isAppUrl(`${APP_URL}#/chat`, APP_ROOT)).toBe(true);
    expect(isAppUrl(`${APP_URL}?x=1`, APP_ROOT)).toBe(true);
    expect(isAppUrl(pathToFileURL(path.join(APP_ROOT, '..', 'index.html')).href, APP_ROOT)).toBe(false);
    expect(isAppUrl('file://host/opt/Sealed/resources/app/out/renderer/index.html', APP_ROOT)).toBe(false);
    expect(isAppUrl('http://localhost:5173/', APP_ROOT)).toBe(false);
    expect(isAppUrl('app://sealed/index.html', 'app://sealed/')).toBe(true);
    expect(isAppUrl('app://sealed/', 'app://sealed/')).toBe(true);
    expect(isAppUrl('app://other/index.html', 'app://sealed/')).toBe(false);
    expect(isAppUrl('https://sealed/index.html', 'app://sealed/')).toBe(false);
    expect(isAppUrl('app://user:pw@sealed/index.html', 'app://sealed/')).toBe(false);
    expect(isAppUrl('garbage', 'app://sealed/')).toBe(false);
  });
});

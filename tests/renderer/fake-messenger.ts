/**
 * An in-page fake of `window.messenger` for renderer development checks (screenshots, keyboard and
 * paging checks in tests/renderer/screens.ts). Never part of the app bundle: the check script bundles
 * it with esbuild and injects it with Playwright's `addInitScript`, before the app loads.
 *
 * It keeps a small world in memory (a profile, contacts, conversations including one of 10,000
 * messages) chosen by a scenario name, answers calls after a short delay, and lets the check script
 * emit events and read the calls made (`globalThis.__fake`).
 */
import type {
  AppStatus,
  Contact,
  ConversationId,
  ConversationSummary,
  DiscoveredRelay,
  GroupInfo,
  GroupMember,
  GroupPolicy,
  GroupSafetyNumber,
  HistoryItem,
  MessageStatus,
  MessengerApi,
  MessengerEvent,
  Settings,
} from '../../src-main/shared/messenger-api.js';

export type Scenario =
  | 'first-run'
  | 'first-run-no-keychain'
  | 'locked'
  | 'relay-setup'
  | 'relay-setup-no-multicast'
  | 'main'
  | 'main-key-changed'
  /** book-club's member list differs from another member's (the relay showed them different logs). */
  | 'main-group-out-of-sync'
  /** The relay's key changed since the first connection: the warning, offline. */
  | 'main-relay-key-changed'
  /** A new contact b0b whose id looks like the contact bob's. */
  | 'main-lookalike'
  /** The profile's keys are gone from the keychain. */
  | 'keys-missing'
  /** The keychain does not answer at start; "Try again" succeeds (as after unlocking it). */
  | 'keychain-locked'
  /** The first getStatus fails (the main process did not answer); the next one works. */
  | 'start-fails'
  /** The disk is full: the storage banner, sending paused; "Try again" fails once, then works. */
  | 'main-storage-full'
  /** The profile's database is damaged at start: the screen with try again, the folder, reset. */
  | 'database-damaged';

/** What the service says while the disk is full (storage-fault.ts). */
export const DISK_FULL =
  'Your disk is full. Sealed cannot save new messages, so they stay on the relay until you free some space.';
const DAMAGED_DB =
  'Your profile’s database is damaged: Sealed cannot read it. Your messages on the relay wait there until the profile opens again.';

/** What the service says when a firewall blocks mDNS on this computer. */
export const NO_MULTICAST =
  'Sealed cannot look for relays on your network: a firewall on this computer blocks multicast (EPERM). Connect by address instead.';

export interface FakeControl {
  readonly api: MessengerApi;
  /** Every call made, in order: method name and arguments. */
  readonly calls: { method: string; args: unknown }[];
  emit(event: MessengerEvent): void;
  /** What copyGroupLink put on the "clipboard". */
  readonly clipboard: string[];
  /** Adds an incoming message to a conversation and emits it (and the updated summary). */
  receive(conversationId: ConversationId, from: string, text: string): HistoryItem;
  /**
   * Another new key of `userId` arrives while one is pending. With `quietly`, the app is not told (as if
   * the user clicked "Accept" just before the warning reached the window): the next accept is refused.
   */
  changeKeyAgain(userId: string, quietly?: boolean): Promise<void>;
}

/** The relay key fingerprints the scenarios show (30 digits). */
const RELAY_FINGERPRINT = '482910573628194057362819405736';
const NEW_RELAY_FINGERPRINT = '119384756102938475610293847561';

const DAY = 86_400_000;
const MINUTE = 60_000;
const LATENCY_MS = 25;

class UsageError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

const SAMPLE_TEXT = [
  'Did you get the notes from Thursday?',
  'Yes, reading them now.',
  'The section on key rotation is clearer than I expected.',
  'Shall we meet at the library at ten?',
  'Sounds good. I will bring the printouts.',
  'Running five minutes late, sorry!',
  'No rush.',
  'Here is the summary:\n- chapter 3 done\n- chapter 4 half way\n- questions for Monday',
  'Nice work 👍',
  'Can you check the second figure? The axis labels look swapped.',
];

function item(
  conversationId: ConversationId,
  index: number,
  at: number,
  me: string,
  other: string,
  text: string,
  direction: 'in' | 'out',
  status?: MessageStatus,
): HistoryItem {
  return {
    id: `${conversationId}#${index}`,
    conversationId,
    kind: 'message',
    from: direction === 'out' ? me : other,
    text,
    at,
    direction,
    ...(direction === 'out' ? { status: status ?? 'delivered' } : {}),
  };
}

/** A generated conversation: `count` messages, five minutes apart, ending `endAgo` ms ago. */
function generated(
  id: ConversationId,
  me: string,
  other: string,
  count: number,
  endAgo: number,
  now: number,
): HistoryItem[] {
  const items: HistoryItem[] = [];
  for (let i = 0; i < count; i++) {
    const at = now - endAgo - (count - 1 - i) * 5 * MINUTE;
    const direction = i % 3 === 1 ? 'out' : 'in';
    const text = `${SAMPLE_TEXT[i % SAMPLE_TEXT.length] ?? ''} (#${i + 1})`;
    items.push(item(id, i, at, me, other, text, direction));
  }
  return items;
}

/** Builds the fake for a scenario. */
export function createFake(scenario: Scenario): FakeControl {
  const me = 'alice';
  const now = Date.now();
  const listeners = new Set<(event: MessengerEvent) => void>();
  const calls: { method: string; args: unknown }[] = [];
  let seq = 0;

  const keyChangedBob = scenario === 'main-key-changed';
  const relayKeyChanged = scenario === 'main-relay-key-changed';
  const lookalike = scenario === 'main-lookalike';
  const hasProfile =
    scenario !== 'first-run' && scenario !== 'first-run-no-keychain' && scenario !== 'database-damaged';
  const setup = scenario === 'relay-setup' || scenario === 'relay-setup-no-multicast';
  const noMulticast = scenario === 'relay-setup-no-multicast';
  let status: AppStatus = {
    profile: hasProfile
      ? {
          userId: me,
          relayUrl: setup ? null : 'ws://192.168.1.20:8787',
          keyStorage: scenario === 'locked' ? 'passphrase-file' : 'keychain',
        }
      : null,
    keychainAvailable: scenario !== 'first-run-no-keychain',
    locked: scenario === 'locked',
    connection: [
      'main',
      'main-key-changed',
      'main-group-out-of-sync',
      'main-lookalike',
      'start-fails',
    ].includes(scenario)
      ? 'connected'
      : 'offline',
    hostedRelay: null,
    relayFingerprint: RELAY_FINGERPRINT,
    relayKeyChange: relayKeyChanged
      ? {
          relayUrl: 'ws://192.168.1.20:8787',
          pinnedFingerprint: RELAY_FINGERPRINT,
          presentedFingerprint: NEW_RELAY_FINGERPRINT,
        }
      : null,
    discoveryProblem: noMulticast ? NO_MULTICAST : null,
    profileProblem:
      scenario === 'keys-missing'
        ? {
            kind: 'keys-missing',
            message: 'Your keys are missing from the keychain. Sealed cannot open this profile without them.',
          }
        : scenario === 'keychain-locked'
          ? {
              kind: 'keychain-unavailable',
              message: 'The system keychain did not respond. Unlock it and try again.',
            }
          : scenario === 'database-damaged'
            ? {
                kind: 'database-damaged',
                message: DAMAGED_DB,
                profileName: 'alice',
                path: '/home/alice/.config/Sealed/profiles/alice/sealed.db',
              }
            : null,
    storageProblem:
      scenario === 'main-storage-full'
        ? {
            reason: 'full',
            message: DISK_FULL,
            path: '/home/alice/.config/Sealed/profiles/alice/sealed.db',
          }
        : null,
  };
  let settings: Settings = { notifications: 'sender', theme: 'system', relayPort: 8787 };
  const relays: DiscoveredRelay[] = noMulticast
    ? []
    : [
        {
          name: 'bob on bob-laptop',
          url: 'ws://192.168.1.23:8787',
          urls: ['ws://192.168.1.23:8787', 'ws://[fd12:3456:789a:1::23]:8787'],
          host: 'bob-laptop.local.',
          interface: 'wlan0',
          subnet: '192.168.1.0/24',
        },
        {
          name: 'carol on studio-pc',
          url: 'ws://10.0.0.41:8787',
          urls: ['ws://10.0.0.41:8787'],
          host: 'studio-pc.local.',
          interface: 'eth0',
          subnet: '10.0.0.0/24',
        },
      ];

  /** Per contact with a pending key change: which new key (its number's seed) and how many messages it held. */
  const pendingKeys = new Map<string, { generation: number; held: number }>(
    keyChangedBob ? [['bob', { generation: 1, held: 2 }]] : [],
  );
  const pendingNumber = (userId: string): Promise<string> =>
    sampleSafetyNumber(`${me}:${userId}:new${pendingKeys.get(userId)?.generation ?? 0}`);
  /** A contact as the service reports it: with its pending key while a change waits. */
  async function contactView(contact: Contact): Promise<Contact> {
    const pending = pendingKeys.get(contact.userId);
    if (!pending) return contact;
    return {
      ...contact,
      keyChanged: true,
      pendingKey: { safetyNumber: await pendingNumber(contact.userId), held: pending.held },
    };
  }

  const contacts = new Map<string, Contact>([
    ['bob', { userId: 'bob', verified: !keyChangedBob, keyChanged: keyChangedBob }],
    ['carol', { userId: 'carol', verified: false, keyChanged: false }],
    ['dave', { userId: 'dave', verified: false, keyChanged: false }],
    ['erin', { userId: 'erin', verified: true, keyChanged: false }],
  ]);
  if (lookalike)
    contacts.set('b0b', { userId: 'b0b', verified: false, keyChanged: false, looksLike: ['bob'] });

  /**
   * The relay's groups as the fake knows them. alice is an admin of book-club (with a join request
   * and an invitation pending, and an invite link she made), invited to hiking, and not on open-mic
   * (open: she can join it by name) nor climbing (its link below makes a request).
   */
  const groups = new Map<string, FakeGroup>([
    [
      'book-club',
      {
        creator: me,
        epoch: 9,
        roster: [
          { userId: me, role: 'admin', standing: 'member' },
          { userId: 'bob', role: 'admin', standing: 'member' },
          { userId: 'carol', role: 'member', standing: 'member' },
          { userId: 'erin', role: 'member', standing: 'member' },
          { userId: 'dave', role: 'member', standing: 'invited' },
          { userId: 'frank', role: 'member', standing: 'requested' },
        ],
        policy: 'link',
        approval: true,
        link: BOOK_CLUB_LINK,
        outOfSync:
          scenario === 'main-group-out-of-sync'
            ? "bob sees a different member list of book-club than you: the relay may be showing you different histories. Compare the group's safety number."
            : null,
      },
    ],
    [
      'hiking',
      {
        creator: 'bob',
        epoch: 3,
        roster: [
          { userId: 'bob', role: 'admin', standing: 'member' },
          { userId: 'erin', role: 'member', standing: 'member' },
          { userId: me, role: 'member', standing: 'invited' },
        ],
        policy: 'invite-only',
        approval: false,
        link: null,
        outOfSync: null,
      },
    ],
    [
      'open-mic',
      {
        creator: 'carol',
        epoch: 4,
        roster: [{ userId: 'carol', role: 'admin', standing: 'member' }],
        policy: 'open',
        approval: false,
        link: null,
        outOfSync: null,
      },
    ],
    [
      'climbing',
      {
        creator: 'erin',
        epoch: 6,
        roster: [{ userId: 'erin', role: 'admin', standing: 'member' }],
        policy: 'link',
        approval: true,
        link: null,
        outOfSync: null,
      },
    ],
  ]);
  const onRoster = (name: string): FakeGroup | undefined => {
    const g = groups.get(name);
    return g?.roster.some((m) => m.userId === me) ? g : undefined;
  };
  const info = (name: string, g: FakeGroup): GroupInfo => {
    const members = g.roster.filter((m) => m.standing === 'member').map((m) => m.userId);
    return {
      group: name,
      creator: g.creator,
      members: [...members].sort(),
      roster: [...g.roster].sort((a, b) => a.userId.localeCompare(b.userId)),
      me: g.roster.find((m) => m.userId === me) ?? { userId: me, role: 'member', standing: 'member' },
      policy: g.policy,
      approval: g.approval,
      link: g.link,
      safetyNumber: digitsFor(`${name}#${g.epoch}`),
      outOfSync: g.outOfSync,
    };
  };

  const histories = new Map<ConversationId, HistoryItem[]>();
  const bob: HistoryItem[] = [
    item('dm:bob', 0, now - 2 * DAY - 40 * MINUTE, me, 'bob', 'Hey Bob, are you coming on Saturday?', 'out'),
    item('dm:bob', 1, now - 2 * DAY - 31 * MINUTE, me, 'bob', 'Yes! What should I bring?', 'in'),
    item('dm:bob', 2, now - 2 * DAY - 30 * MINUTE, me, 'bob', 'Maybe some snacks? We have drinks.', 'out'),
    item('dm:bob', 3, now - 26 * MINUTE, me, 'bob', 'Got a new laptop, reinstalled everything 🙂', 'in'),
    item('dm:bob', 4, now - 24 * MINUTE, me, 'bob', 'Nice. Which one did you get?', 'out', 'delivered'),
    item('dm:bob', 5, now - 23 * MINUTE, me, 'bob', 'The light one with the good keyboard.', 'in'),
    item('dm:bob', 6, now - 3 * MINUTE, me, 'bob', 'Send me a photo of the keyboard later?', 'out', 'sent'),
    item('dm:bob', 7, now - 1 * MINUTE, me, 'bob', 'Also: see you at ten tomorrow', 'out', 'sending'),
  ];
  if (keyChangedBob) {
    // Last: what bob sent under the new key since is held, not in the history.
    bob.push({
      id: 'dm:bob#kc',
      conversationId: 'dm:bob',
      kind: 'event',
      from: 'bob',
      text: "bob's security key changed",
      at: now - 30_000,
      direction: 'in',
    });
  }
  histories.set('dm:bob', bob);
  if (lookalike)
    histories.set('dm:b0b', [
      item(
        'dm:b0b',
        0,
        now - 4 * MINUTE,
        me,
        'b0b',
        'Hi Alice, it is Bob. I lost my laptop, this is my new account.',
        'in',
      ),
      item(
        'dm:b0b',
        1,
        now - 3 * MINUTE,
        me,
        'b0b',
        'Could you send me the notes from Thursday again?',
        'in',
      ),
    ]);

  const club: HistoryItem[] = [
    {
      id: 'g#e0',
      conversationId: 'group:book-club',
      kind: 'event',
      from: me,
      text: 'alice created the group',
      at: now - 3 * DAY,
      direction: 'out',
    },
    {
      id: 'g#e1',
      conversationId: 'group:book-club',
      kind: 'event',
      from: 'bob',
      text: 'bob joined',
      at: now - 3 * DAY + 5 * MINUTE,
      direction: 'in',
    },
    {
      id: 'g#e2',
      conversationId: 'group:book-club',
      kind: 'event',
      from: 'carol',
      text: 'carol joined',
      at: now - 3 * DAY + 9 * MINUTE,
      direction: 'in',
    },
    item(
      'group:book-club',
      3,
      now - 3 * DAY + 12 * MINUTE,
      me,
      'bob',
      'Hi all! First book: "The Left Hand of Darkness"?',
      'in',
    ),
    item('group:book-club', 4, now - 3 * DAY + 13 * MINUTE, me, 'carol', 'Love it. Count me in.', 'in'),
    item('group:book-club', 5, now - 3 * DAY + 14 * MINUTE, me, 'carol', 'Two chapters a week?', 'in'),
    item('group:book-club', 6, now - 3 * DAY + 20 * MINUTE, me, 'bob', 'Agreed', 'out'),
    {
      id: 'g#e7',
      conversationId: 'group:book-club',
      kind: 'event',
      from: 'dave',
      text: 'dave left',
      at: now - DAY,
      direction: 'in',
    },
    {
      id: 'g#e8',
      conversationId: 'group:book-club',
      kind: 'event',
      from: me,
      text: 'Group keys rotated',
      at: now - DAY + 1000,
      direction: 'in',
    },
    {
      id: 'g#e9',
      conversationId: 'group:book-club',
      kind: 'event',
      from: 'erin',
      text: 'erin joined',
      at: now - 50 * MINUTE,
      direction: 'in',
    },
    item('group:book-club', 10, now - 48 * MINUTE, me, 'erin', 'Hello! Thanks for having me.', 'in'),
    item('group:book-club', 11, now - 47 * MINUTE, me, 'carol', 'Welcome Erin!', 'in'),
    item(
      'group:book-club',
      12,
      now - 12 * MINUTE,
      me,
      'bob',
      'Welcome 🙂 we are on chapter 5.',
      'out',
      'delivered',
    ),
    item('group:book-club', 13, now - 6 * MINUTE, me, 'erin', 'Catching up tonight.', 'in'),
  ];
  if (keyChangedBob) {
    club.push({
      id: 'g#kc',
      conversationId: 'group:book-club',
      kind: 'event',
      from: 'bob',
      text: "bob's security key changed. Until you accept or reject it in your conversation with bob, what bob sends under the new key is held.",
      at: now - 30_000,
      direction: 'in',
    });
  }
  histories.set('group:book-club', club);
  histories.set('group:hiking', [
    {
      id: 'h#e0',
      conversationId: 'group:hiking',
      kind: 'event',
      from: 'bob',
      text: 'bob invited you to the group. Accept to read and write here.',
      at: now - 4 * 60 * MINUTE,
      direction: 'in',
    },
  ]);
  histories.set('dm:dave', generated('dm:dave', me, 'dave', 10_000, 4 * 60 * MINUTE, now));
  histories.set('dm:carol', generated('dm:carol', me, 'carol', 24, 2 * 60 * MINUTE, now));
  histories.set('dm:erin', [
    item('dm:erin', 0, now - 5 * DAY, me, 'erin', 'Is this the right Alice?', 'in'),
    item('dm:erin', 1, now - 5 * DAY + MINUTE, me, 'erin', 'From the conference, I mean', 'in'),
    item('dm:erin', 2, now - 5 * DAY + 2 * MINUTE, me, 'erin', 'Yes, hi Erin!', 'out', 'failed'),
  ]);

  const unread = new Map<ConversationId, number>([
    ['group:book-club', 2],
    ['dm:carol', 3],
  ]);

  function summary(id: ConversationId): ConversationSummary {
    const items = histories.get(id) ?? [];
    const last = [...items].reverse().find((i) => i.kind === 'message');
    const direct = id.startsWith('dm:');
    const name = direct ? id.slice(3) : id.slice(6);
    return {
      id,
      kind: direct ? 'direct' : 'group',
      title: name,
      unread: unread.get(id) ?? 0,
      last: last ? { from: last.from, text: last.text, at: last.at } : null,
      keyChanged: direct ? (contacts.get(name)?.keyChanged ?? false) : false,
    };
  }

  const emit = (event: MessengerEvent): void => {
    for (const listener of listeners) listener(event);
  };

  /** An event line added to a conversation and emitted. */
  function eventLine(conversationId: ConversationId, from: string, text: string): void {
    const line: HistoryItem = {
      id: `ev-${++seq}`,
      conversationId,
      kind: 'event',
      from,
      text,
      at: Date.now(),
      direction: from === me ? 'out' : 'in',
    };
    histories.set(conversationId, [...(histories.get(conversationId) ?? []), line]);
    emit({ type: 'item', item: line });
  }

  /** The user decided on `userId`'s key change: the contact and its conversation say so. */
  function decided(userId: string, line: string): void {
    pendingKeys.delete(userId);
    const contact = { userId, verified: false, keyChanged: false };
    contacts.set(userId, contact);
    emit({ type: 'contact', contact });
    eventLine(`dm:${userId}`, me, line);
    emit({ type: 'conversation', summary: summary(`dm:${userId}`) });
  }

  const reply = <T>(value: T, ms = LATENCY_MS): Promise<T> =>
    new Promise((resolve) => setTimeout(() => resolve(value), ms));
  const fail = (code: string, message: string): Promise<never> =>
    new Promise((_, reject) => setTimeout(() => reject(new UsageError(code, message)), LATENCY_MS));

  function record(method: string, args: unknown): void {
    calls.push({ method, args });
  }

  function send(id: ConversationId, text: string): Promise<HistoryItem> {
    const list = histories.get(id) ?? [];
    const out: HistoryItem = {
      id: `sent-${++seq}`,
      conversationId: id,
      kind: 'message',
      from: me,
      text,
      at: Date.now(),
      direction: 'out',
      status: 'sending',
    };
    histories.set(id, [...list, out]);
    const failing = text.includes('[fail]');
    setTimeout(() => {
      emit({ type: 'itemStatus', conversationId: id, id: out.id, status: failing ? 'failed' : 'sent' });
      emit({ type: 'conversation', summary: summary(id) });
    }, 250);
    if (!failing) {
      setTimeout(
        () => emit({ type: 'itemStatus', conversationId: id, id: out.id, status: 'delivered' }),
        700,
      );
    }
    return reply(out);
  }

  const clipboard: string[] = [];
  let linkSeq = 0;

  /** A roster change: a new epoch (so a new safety number), reported as the service does. */
  function change(name: string, g: FakeGroup, next: (roster: GroupMember[]) => GroupMember[]): void {
    g.roster = next(g.roster);
    g.epoch++;
    const shown = onRoster(name);
    emit(shown ? { type: 'group', info: info(name, shown) } : { type: 'groupRemoved', group: name });
  }

  /** A timeline line in a group's conversation (created if needed), emitted with its summary. */
  function line(name: string, from: string, text: string): void {
    const id: ConversationId = `group:${name}`;
    const event: HistoryItem = {
      id: `line-${++seq}`,
      conversationId: id,
      kind: 'event',
      from,
      text,
      at: Date.now(),
      direction: from === me ? 'out' : 'in',
    };
    histories.set(id, [...(histories.get(id) ?? []), event]);
    emit({ type: 'item', item: event });
    emit({ type: 'conversation', summary: summary(id) });
  }

  const api: MessengerApi = {
    getStatus() {
      record('getStatus', undefined);
      if (scenario === 'start-fails' && calls.filter((c) => c.method === 'getStatus').length === 1)
        return fail('INTERNAL', 'Sealed could not read its data. Please try again.');
      return reply(status);
    },
    createProfile(args) {
      record('createProfile', args);
      if (args.userId === 'taken') return fail('USER_TAKEN', 'That user id is already taken on this relay.');
      status = {
        ...status,
        profile: {
          userId: args.userId,
          relayUrl: null,
          keyStorage: args.passphrase ? 'passphrase-file' : 'keychain',
        },
      };
      emit({ type: 'status', status });
      return reply(status.profile!, 200);
    },
    unlock(args) {
      record('unlock', { passphrase: '…' });
      if (args.passphrase !== 'correct horse')
        return fail('BAD_PASSPHRASE', 'That passphrase is not correct.');
      status = { ...status, locked: false };
      return reply(status.profile!);
    },
    reopenProfile() {
      record('reopenProfile', undefined);
      const problem = status.profileProblem;
      if (problem?.kind === 'keys-missing') return fail('KEYS_MISSING', problem.message);
      if (problem?.kind === 'database-damaged') return fail('DATABASE_DAMAGED', problem.message);
      status = { ...status, profileProblem: null, connection: 'connected' };
      emit({ type: 'status', status });
      return reply(status.profile!);
    },
    discardProfile(args) {
      record('discardProfile', args);
      if (args.userId !== (status.profile?.userId ?? status.profileProblem?.profileName))
        return fail('INVALID_ARGUMENT', 'That is not the user id of the profile on this computer.');
      status = { ...status, profile: null, profileProblem: null, connection: 'offline' };
      emit({ type: 'status', status });
      return reply(undefined, 150);
    },
    retryStorage() {
      record('retryStorage', undefined);
      if (!status.storageProblem) return reply(undefined);
      // The first try: the disk is still full.
      if (calls.filter((c) => c.method === 'retryStorage').length === 1)
        return fail('STORAGE_PROBLEM', status.storageProblem.message);
      status = { ...status, storageProblem: null };
      emit({ type: 'status', status });
      return reply(undefined, 150);
    },
    openProfileFolder() {
      record('openProfileFolder', undefined);
      return reply(undefined);
    },
    acceptRelayKey(args) {
      record('acceptRelayKey', args);
      const change = status.relayKeyChange;
      if (!change || change.relayUrl !== args.relayUrl)
        return fail('NOT_FOUND', `There is no new relay key to accept for ${args.relayUrl}.`);
      if (change.presentedFingerprint !== args.fingerprint)
        return fail('RELAY_KEY_CHANGED', 'The relay now presents another key than the one you compared.');
      status = {
        ...status,
        relayKeyChange: null,
        relayFingerprint: args.fingerprint,
        connection: 'connected',
      };
      emit({ type: 'status', status });
      emit({ type: 'connection', state: 'connected' });
      return reply(undefined, 150);
    },
    connect(args) {
      record('connect', args);
      status = {
        ...status,
        connection: 'connecting',
        profile: status.profile && { ...status.profile, relayUrl: args.relayUrl },
      };
      emit({ type: 'connection', state: 'connecting' });
      setTimeout(() => {
        status = { ...status, connection: 'connected' };
        emit({ type: 'connection', state: 'connected' });
      }, 150);
      return reply(undefined);
    },
    disconnect() {
      record('disconnect', undefined);
      status = { ...status, connection: 'offline' };
      emit({ type: 'connection', state: 'offline' });
      return reply(undefined);
    },
    hostRelay(args) {
      record('hostRelay', args);
      const port = args.port ?? settings.relayPort;
      // Addresses others can reach; the host itself connects over loopback, as the service does.
      const hostedRelay = {
        port,
        urls: [`ws://192.168.1.20:${port}`, `ws://10.0.0.7:${port}`, `ws://[fd12:3456:789a:1::20]:${port}`],
        localUrl: `ws://127.0.0.1:${port}`,
        fingerprint: RELAY_FINGERPRINT,
      };
      status = {
        ...status,
        hostedRelay,
        connection: 'connected',
        profile: status.profile && { ...status.profile, relayUrl: `ws://127.0.0.1:${port}` },
      };
      emit({ type: 'status', status });
      emit({ type: 'connection', state: 'connected' });
      return reply(hostedRelay, 120);
    },
    stopHostingRelay() {
      record('stopHostingRelay', undefined);
      status = { ...status, hostedRelay: null };
      return reply(undefined);
    },
    listDiscoveredRelays: () => (record('listDiscoveredRelays', undefined), reply(relays)),
    listContacts() {
      record('listContacts', undefined);
      return Promise.all([...contacts.values()].map(contactView)).then((list) => reply(list));
    },
    getSafetyNumber(args) {
      record('getSafetyNumber', args);
      const contact = contacts.get(args.userId);
      const number = pendingKeys.has(args.userId)
        ? pendingNumber(args.userId)
        : sampleSafetyNumber(`${me}:${args.userId}:old`);
      return number.then((digits) =>
        reply({
          userId: args.userId,
          digits,
          qrSvg: fakeQr(args.userId),
          verified: contact?.verified ?? false,
          keyChanged: contact?.keyChanged ?? false,
        }),
      );
    },
    setVerified(args) {
      record('setVerified', args);
      const contact = {
        ...(contacts.get(args.userId) ?? { userId: args.userId, keyChanged: false }),
        verified: args.verified,
      };
      contacts.set(args.userId, contact);
      emit({ type: 'contact', contact });
      return reply(undefined);
    },
    async acceptKeyChange(args) {
      record('acceptKeyChange', args);
      const pending = pendingKeys.get(args.userId);
      if (!pending)
        return fail('NO_KEY_CHANGE', `No new security key of ${args.userId} is waiting for your decision.`);
      if (args.safetyNumber.replace(/\s+/g, '') !== (await pendingNumber(args.userId))) {
        emit({ type: 'contact', contact: await contactView(contacts.get(args.userId)!) });
        return fail(
          'KEY_CHANGED_AGAIN',
          `${args.userId}'s security key changed again since that safety number was shown. Compare the new number before you accept.`,
        );
      }
      decided(
        args.userId,
        pending.held > 0
          ? `You accepted ${args.userId}'s new security key. The ${pending.held} messages it held until now are shown above.`
          : `You accepted ${args.userId}'s new security key.`,
      );
      return reply(undefined);
    },
    rejectKeyChange(args) {
      record('rejectKeyChange', args);
      const pending = pendingKeys.get(args.userId);
      if (!pending)
        return fail('NO_KEY_CHANGE', `No new security key of ${args.userId} is waiting for your decision.`);
      decided(
        args.userId,
        `You rejected ${args.userId}'s new security key: your messages stay with the key you had. The ${pending.held} messages sent under the new key were deleted unread.`,
      );
      return reply(undefined);
    },
    listConversations: () => (
      record('listConversations', undefined),
      reply([...histories.keys()].map(summary))
    ),
    getHistory(args) {
      record('getHistory', args);
      const items = histories.get(args.conversationId) ?? [];
      const limit = args.limit ?? 50;
      const end = args.before === undefined ? items.length : items.findIndex((i) => i.id === args.before);
      if (end < 0) return fail('BAD_CURSOR', 'That page of history does not exist.');
      const start = Math.max(0, end - limit);
      const page = items.slice(start, end);
      return reply({ items: page, nextBefore: start > 0 ? (page[0]?.id ?? null) : null }, 60);
    },
    markRead(args) {
      record('markRead', args);
      unread.delete(args.conversationId);
      emit({ type: 'conversation', summary: summary(args.conversationId) });
      return reply(undefined);
    },
    openDirect(args) {
      record('openDirect', args);
      if (args.userId === 'nobody')
        return fail('UNKNOWN_USER', 'Nobody called nobody is registered on this relay.');
      const id: ConversationId = `dm:${args.userId}`;
      if (!histories.has(id)) histories.set(id, []);
      return reply(summary(id));
    },
    sendDirect: (args) => (record('sendDirect', args), send(`dm:${args.to}`, args.text)),
    sendGroup: (args) => (record('sendGroup', args), send(`group:${args.group}`, args.text)),
    createGroup(args) {
      record('createGroup', args);
      if (onRoster(args.group))
        return fail('GROUP_EXISTS', `You are already in a group named ${args.group}.`);
      if (groups.has(args.group)) return fail('GROUP_EXISTS', `A group named ${args.group} already exists.`);
      const g: FakeGroup = {
        creator: me,
        epoch: 0,
        roster: [{ userId: me, role: 'admin', standing: 'member' }],
        policy: args.policy ?? 'invite-only',
        approval: false,
        link: null,
        outOfSync: null,
      };
      groups.set(args.group, g);
      histories.set(`group:${args.group}`, []);
      line(args.group, me, `You created the group. ${POLICY_LINES[g.policy]}`);
      return reply(info(args.group, g));
    },
    joinGroup(args) {
      record('joinGroup', args);
      const g = groups.get(args.group);
      if (!g) return fail('UNKNOWN_GROUP', `There is no group ${args.group} on this relay.`);
      if (onRoster(args.group)) return reply(info(args.group, g));
      if (g.policy !== 'open')
        return fail(
          'NOT_ALLOWED',
          `You can only join ${args.group} with an invitation or its invite link. Ask one of its admins.`,
        );
      change(args.group, g, (r) => [...r, { userId: me, role: 'member', standing: 'member' }]);
      line(args.group, me, 'You joined the group.');
      return reply(info(args.group, g));
    },
    joinGroupWithLink(args) {
      record('joinGroupWithLink', args);
      const group = /[?&]group=([^&#]+)/.exec(args.link)?.[1];
      const g = group ? groups.get(decodeURIComponent(group)) : undefined;
      if (!group || !g || args.link !== (g.link ?? linkFor(decodeURIComponent(group))))
        return fail(
          'NOT_ALLOWED',
          'This invite link does not work any more: an admin replaced or revoked it.',
        );
      const name = decodeURIComponent(group);
      change(name, g, (r) => [
        ...r,
        { userId: me, role: 'member', standing: g.approval ? 'requested' : 'member' },
      ]);
      line(
        name,
        me,
        g.approval
          ? 'You asked to join with the invite link. An admin of the group has to approve your request.'
          : 'You joined the group.',
      );
      return reply(info(name, g));
    },
    inviteToGroup(args) {
      record('inviteToGroup', args);
      const g = onRoster(args.group);
      if (!g) return fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
      if (args.userId === 'nobody') return fail('UNKNOWN_USER', 'There is no user nobody on this relay.');
      if (g.roster.some((m) => m.userId === args.userId))
        return fail('INVALID_ARGUMENT', `${args.userId} is already in ${args.group}.`);
      change(args.group, g, (r) => [...r, { userId: args.userId, role: 'member', standing: 'invited' }]);
      line(args.group, me, `You invited ${args.userId}.`);
      return reply(info(args.group, g));
    },
    acceptGroupInvitation(args) {
      record('acceptGroupInvitation', args);
      const g = onRoster(args.group);
      if (!g) return fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
      change(args.group, g, (r) =>
        r.map((m) => (m.userId === me ? { ...m, standing: 'member' as const } : m)),
      );
      line(args.group, me, 'You joined the group.');
      return reply(info(args.group, g));
    },
    declineGroupInvitation(args) {
      record('declineGroupInvitation', args);
      const g = onRoster(args.group);
      if (!g) return fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
      change(args.group, g, (r) => r.filter((m) => m.userId !== me));
      line(args.group, me, 'You declined the invitation.');
      return reply(undefined);
    },
    approveJoinRequest(args) {
      record('approveJoinRequest', args);
      const g = onRoster(args.group);
      if (!g) return fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
      change(args.group, g, (r) =>
        r.map((m) => (m.userId === args.userId ? { ...m, standing: 'member' as const } : m)),
      );
      line(args.group, args.userId, `${args.userId} joined the group (you approved the request).`);
      return reply(info(args.group, g));
    },
    removeFromGroup(args) {
      record('removeFromGroup', args);
      const g = onRoster(args.group);
      if (!g) return fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
      const was = g.roster.find((m) => m.userId === args.userId);
      change(args.group, g, (r) => r.filter((m) => m.userId !== args.userId));
      line(
        args.group,
        me,
        was?.standing === 'requested'
          ? `You declined ${args.userId}'s request to join.`
          : was?.standing === 'invited'
            ? `You withdrew ${args.userId}'s invitation.`
            : `You removed ${args.userId}.`,
      );
      return reply(info(args.group, g));
    },
    setGroupRole(args) {
      record('setGroupRole', args);
      const g = onRoster(args.group);
      if (!g) return fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
      change(args.group, g, (r) => r.map((m) => (m.userId === args.userId ? { ...m, role: args.role } : m)));
      line(
        args.group,
        me,
        args.role === 'admin'
          ? `You made ${args.userId} an admin.`
          : `You took the admin role from ${args.userId}.`,
      );
      return reply(info(args.group, g));
    },
    setGroupPolicy(args) {
      record('setGroupPolicy', args);
      const g = onRoster(args.group);
      if (!g) return fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
      const hadLink = g.policy === 'link';
      g.policy = args.policy;
      g.approval = args.policy === 'link' && (args.approval ?? false);
      g.link = args.policy === 'link' ? linkFor(args.group, ++linkSeq) : null;
      change(args.group, g, (r) => r);
      line(
        args.group,
        me,
        args.policy === 'link'
          ? `You made a new invite link: anyone with the link can now ${g.approval ? 'ask to join (an admin approves each request)' : 'join'}.`
          : `You changed who can join. ${POLICY_LINES[args.policy]}${hadLink ? ' The invite link no longer works.' : ''}`,
      );
      return reply(info(args.group, g));
    },
    copyGroupLink(args) {
      record('copyGroupLink', args);
      const g = onRoster(args.group);
      if (!g?.link) return fail('NOT_FOUND', `This computer has no invite link to ${args.group}.`);
      clipboard.push(g.link);
      return reply(undefined);
    },
    leaveGroup(args) {
      record('leaveGroup', args);
      const g = onRoster(args.group);
      if (!g) return fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
      const requested = g.roster.some((m) => m.userId === me && m.standing === 'requested');
      change(args.group, g, (r) => r.filter((m) => m.userId !== me));
      line(args.group, me, requested ? 'You withdrew your request to join.' : 'You left the group.');
      return reply(undefined);
    },
    deleteGroup(args) {
      record('deleteGroup', args);
      if (!onRoster(args.group))
        return fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
      groups.delete(args.group);
      emit({ type: 'groupRemoved', group: args.group });
      line(args.group, me, 'You deleted the group.');
      return reply(undefined);
    },
    getGroup(args) {
      record('getGroup', args);
      const g = onRoster(args.group);
      return g
        ? reply(info(args.group, g))
        : fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
    },
    listGroups() {
      record('listGroups', undefined);
      return reply([...groups].filter(([name]) => onRoster(name)).map(([name, g]) => info(name, g)));
    },
    getGroupSafetyNumber(args) {
      record('getGroupSafetyNumber', args);
      const g = onRoster(args.group);
      if (!g) return fail('NOT_A_MEMBER', `You are not a member of the group ${args.group}.`);
      const shown = info(args.group, g);
      const number: GroupSafetyNumber = {
        group: args.group,
        digits: shown.safetyNumber,
        qrSvg: fakeQr(`${args.group}#${g.epoch}`),
      };
      return reply(number);
    },
    getSettings: () => (record('getSettings', undefined), reply(settings)),
    updateSettings(args) {
      record('updateSettings', args);
      settings = { ...settings, ...args };
      emit({ type: 'settings', settings });
      return reply(settings);
    },
    onEvent(listener) {
      listeners.add(listener);
      return () => listeners.delete(listener);
    },
  };

  return {
    api,
    calls,
    emit,
    clipboard,
    receive(conversationId, from, text) {
      const list = histories.get(conversationId) ?? [];
      const incoming: HistoryItem = {
        id: `in-${++seq}`,
        conversationId,
        kind: 'message',
        from,
        text,
        at: Date.now(),
        direction: 'in',
      };
      histories.set(conversationId, [...list, incoming]);
      unread.set(conversationId, (unread.get(conversationId) ?? 0) + 1);
      emit({ type: 'item', item: incoming });
      emit({ type: 'conversation', summary: summary(conversationId) });
      return incoming;
    },
    async changeKeyAgain(userId, quietly = false) {
      const pending = pendingKeys.get(userId) ?? { generation: 0, held: 0 };
      pendingKeys.set(userId, { generation: pending.generation + 1, held: pending.held + 1 });
      if (quietly) return;
      const contact = { ...contacts.get(userId)!, keyChanged: true, verified: false };
      contacts.set(userId, contact);
      emit({ type: 'contact', contact: await contactView(contact) });
      eventLine(
        `dm:${userId}`,
        userId,
        `${userId}'s security key changed again: the safety number is new. Compare it before you decide.`,
      );
    },
  };
}

interface FakeGroup {
  creator: string;
  /** Counts roster changes: the safety number follows it. */
  epoch: number;
  roster: GroupMember[];
  policy: GroupPolicy;
  approval: boolean;
  link: string | null;
  outOfSync: string | null;
}

const POLICY_LINES: Record<GroupPolicy, string> = {
  'invite-only': 'Only people an admin invites can join.',
  open: 'Anyone who knows its name can join and read later messages.',
  link: 'Anyone with the invite link can join.',
};

/** The invite link of a group (a new secret for every `seq`), as the service formats one. */
function linkFor(group: string, seq = 0): string {
  let secret = '';
  let h = 2166136261;
  for (const ch of `${group}/${seq}`) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_';
  for (let i = 0; i < 43; i++) {
    h ^= h << 13;
    h ^= h >>> 17;
    h ^= h << 5;
    h >>>= 0;
    secret += alphabet[h % 64];
  }
  return `sealed://join?relay=ws%3A%2F%2F192.168.1.20%3A8787&group=${encodeURIComponent(group)}#${secret}`;
}

const BOOK_CLUB_LINK = linkFor('book-club');
/** The invite link of climbing (erin's group): it makes a join request, as its approval is on. */
export const CLIMBING_LINK = linkFor('climbing');

/** 60 digits for a group safety number (12 chunks of 5 from a seeded xorshift, no visible pattern). */
function digitsFor(seed: string): string {
  let h = 2166136261;
  for (const ch of seed) h = Math.imul(h ^ ch.charCodeAt(0), 16777619) >>> 0;
  let out = '';
  for (let i = 0; i < 12; i++) {
    h ^= h << 13;
    h ^= h >>> 17;
    h ^= h << 5;
    h >>>= 0;
    out += String(h % 100_000).padStart(5, '0');
  }
  return out;
}

/**
 * 60 digits as a real safety number looks: 12 groups of 5, each a 40-bit chunk of a hash taken modulo
 * 100,000 (the app's own comes from both identity keys; here SHA-512 of a seed stands in for them).
 */
async function sampleSafetyNumber(seed: string): Promise<string> {
  const hash = new Uint8Array(await crypto.subtle.digest('SHA-512', new TextEncoder().encode(seed)));
  let digits = '';
  for (let group = 0; group < 12; group++) {
    let chunk = 0;
    for (const byte of hash.subarray(group * 5, group * 5 + 5)) chunk = chunk * 256 + byte;
    digits += String(chunk % 100_000).padStart(5, '0');
  }
  return digits;
}

/** A QR-looking SVG (not a real code): a deterministic grid of squares with the three finder marks. */
function fakeQr(seed: string): string {
  const n = 29;
  let rects = '';
  let h = 0;
  for (const ch of seed) h = (h * 31 + ch.charCodeAt(0)) >>> 0;
  const finder = (x: number, y: number): boolean =>
    (x < 7 && y < 7) || (x >= n - 7 && y < 7) || (x < 7 && y >= n - 7);
  for (let y = 0; y < n; y++) {
    for (let x = 0; x < n; x++) {
      let on: boolean;
      if (finder(x, y)) {
        const fx = x >= n - 7 ? x - (n - 7) : x;
        const fy = y >= n - 7 ? y - (n - 7) : y;
        const ring = Math.max(Math.abs(fx - 3), Math.abs(fy - 3));
        on = ring !== 2;
      } else {
        h = (Math.imul(h, 1103515245) + 12345) >>> 0;
        on = (h >>> 16) % 2 === 0;
      }
      if (on) rects += `<rect x="${x}" y="${y}" width="1" height="1"/>`;
    }
  }
  return `<svg xmlns="http://www.w3.org/2000/svg" viewBox="-2 -2 ${n + 4} ${n + 4}" shape-rendering="crispEdges"><rect x="-2" y="-2" width="${n + 4}" height="${n + 4}" fill="#fff"/><g fill="#000">${rects}</g></svg>`;
}

/** Installs the fake as `window.messenger` for the scenario in `globalThis.__SEALED_SCENARIO__`. */
export function install(): void {
  const g = globalThis as unknown as {
    __SEALED_SCENARIO__?: Scenario;
    messenger?: MessengerApi;
    __fake?: FakeControl;
  };
  const fake = createFake(g.__SEALED_SCENARIO__ ?? 'main');
  g.messenger = fake.api;
  g.__fake = fake;
}

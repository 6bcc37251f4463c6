/**
 * The unread count the shell shows in the window title, the tray and the badge (`src-main/shell/unread.ts`).
 */
import { describe, expect, it } from 'vitest';

import type { AppStatus, ConversationId, ConversationSummary } from '../../src-main/shared/messenger-api.js';
import { trayTooltip, UnreadCounter, windowTitle } from '../../src-main/shell/unread.js';

function summary(id: ConversationId, unread: number): ConversationSummary {
  return {
    id,
    kind: id.startsWith('dm:') ? 'direct' : 'group',
    title: id,
    unread,
    last: null,
    keyChanged: false,
  };
}

const unlocked: AppStatus = {
  profile: { userId: 'alice', relayUrl: null, keyStorage: 'keychain' },
  keychainAvailable: true,
  locked: false,
  connection: 'connected',
  hostedRelay: null,
  profileProblem: null,
};

describe('unread counter', () => {
  it('sums the unread counts of all conversations', () => {
    const counter = new UnreadCounter();
    expect(counter.reset([summary('dm:bob', 2), summary('group:g', 3)])).toBe(true);
    expect(counter.total).toBe(5);
  });

  it('follows conversation updates and removals, reporting only real changes', () => {
    const counter = new UnreadCounter();
    counter.reset([summary('dm:bob', 2)]);
    expect(counter.apply({ type: 'conversation', summary: summary('group:g', 1) })).toBe(true);
    expect(counter.total).toBe(3);
    expect(counter.apply({ type: 'conversation', summary: summary('group:g', 1) })).toBe(false);
    expect(counter.apply({ type: 'conversation', summary: summary('dm:bob', 0) })).toBe(true);
    expect(counter.total).toBe(1);
    expect(counter.apply({ type: 'conversationRemoved', id: 'group:g' })).toBe(true);
    expect(counter.total).toBe(0);
    expect(counter.apply({ type: 'connection', state: 'offline' })).toBe(false);
  });

  it('drops to zero when the profile is locked or gone', () => {
    const counter = new UnreadCounter();
    counter.reset([summary('dm:bob', 4)]);
    expect(counter.apply({ type: 'status', status: unlocked })).toBe(false);
    expect(counter.total).toBe(4);
    expect(counter.apply({ type: 'status', status: { ...unlocked, locked: true } })).toBe(true);
    expect(counter.total).toBe(0);
    counter.reset([summary('dm:bob', 4)]);
    counter.apply({ type: 'status', status: { ...unlocked, profile: null } });
    expect(counter.total).toBe(0);
  });

  it('counts a malformed unread value as zero', () => {
    const counter = new UnreadCounter();
    counter.reset([
      summary('dm:a', -1),
      summary('dm:b', Number.NaN),
      summary('dm:c', 1.5),
      summary('dm:d', 2),
    ]);
    expect(counter.total).toBe(2);
  });
});

describe('what the desktop shows', () => {
  it('puts the count in the window title', () => {
    expect(windowTitle(0)).toBe('Sealed');
    expect(windowTitle(3)).toBe('Sealed (3)');
  });

  it('says it in the tray tooltip', () => {
    expect(trayTooltip(0)).toBe('Sealed');
    expect(trayTooltip(1)).toBe('Sealed: 1 unread message');
    expect(trayTooltip(12)).toBe('Sealed: 12 unread messages');
  });
});

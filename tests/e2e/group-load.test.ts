/**
 * A 100-member group of real E2EE clients on one relay: every member joins, several members send,
 * and every other member decrypts every message exactly once (sender keys distributed over 99
 * pairwise sessions per sender).
 */
import { afterEach, describe, expect, it } from 'vitest';
import { startRelay } from '../../src-main/relay/index.js';
import { connectClient } from './helpers.js';

const cleanup: (() => Promise<void>)[] = [];
afterEach(async () => {
  for (const f of cleanup.splice(0).reverse()) await f();
});

describe('group load', () => {
  it('100 members: 5 senders, every message decrypted by the 99 others exactly once', async () => {
    const relay = await startRelay({ port: 0 });
    cleanup.push(() => relay.close());
    const members = [];
    for (let i = 0; i < 100; i++) {
      const m = await connectClient(relay.url, `member${String(i).padStart(3, '0')}`);
      cleanup.push(() => m.client.close());
      members.push(m);
    }
    await members[0]!.client.createGroup('big', { policy: 'open' });
    for (const m of members.slice(1)) await m.client.joinGroup('big');
    // everyone has seen the last join before anyone sends
    for (const m of members.slice(0, -1)) {
      await m.rec.wait('groupMemberJoin', (e) => e.userId === 'member099', 30_000);
    }
    const senders = [members[0]!, members[17]!, members[42]!, members[73]!, members[99]!];
    const sent = await Promise.all(
      senders.map((s, i) => s.client.sendGroupMessage('big', `hello from ${i}`)),
    );
    for (const m of members) {
      const mine = senders.includes(m) ? 1 : 0;
      const got = await m.rec.waitCount('groupMessage', senders.length - mine, () => true, 60_000);
      expect(new Set(got.map((g) => g.id)).size).toBe(got.length);
      expect(got.map((g) => g.id).sort()).toEqual(sent.filter((_, i) => senders[i] !== m).sort());
      expect(m.rec.all('e2eeError')).toEqual([]);
    }
  });
});

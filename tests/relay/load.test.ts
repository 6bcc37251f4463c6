/**
 * Load: 1,000 authenticated connections on one relay, and a 100-member group where everyone talks.
 * The relay runs in its own process, as in production, so it does not share a thread with 1,000 clients.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Identity } from '../../src-main/core/crypto/identity.js';
import { JoinPolicy, members as members_ } from '../../src-main/core/crypto/membership.js';
import { RawClient, TestGroup, body, msgId } from './raw-client.js';
import { spawnRelay, type ChildRelay } from './spawn.js';

const CLIENTS = 1000;
const MEMBERS = 100;

let relay: ChildRelay;
beforeAll(async () => {
  relay = await spawnRelay({ port: 0 });
});
afterAll(async () => {
  relay.child.kill('SIGTERM');
  expect(await relay.exited).toBe('0'); // closed gracefully
});

describe('load', () => {
  it(`${CLIENTS} clients connect; a ${MEMBERS}-member group delivers every message to every other member`, async () => {
    const t0 = performance.now();
    const received = new Map<string, Set<string>>(); // member -> ids of group messages received
    const identities = new Map<string, Identity>();
    const clients: RawClient[] = [];
    for (let i = 0; i < CLIENTS; i += 50) {
      const batch = await Promise.all(
        Array.from({ length: Math.min(50, CLIENTS - i) }, (_, j) => {
          const userId = `user${i + j}`;
          const got = new Set<string>();
          received.set(userId, got);
          const identity = Identity.generate();
          identities.set(userId, identity);
          return RawClient.connect(relay.url, userId, identity, {
            // Keep only replies; count group messages; drop the flood of userCreated events.
            keep: (f) => f.t === 'ok' || f.t === 'error' || f.t === 'ack',
            onFrame: (f) => {
              if (f.t === 'deliver' && f.kind === 'group') got.add(f.id!);
            },
          });
        }),
      );
      clients.push(...batch);
    }
    const connected = performance.now();
    expect(clients.every((c) => c.ready?.registered)).toBe(true);

    const members = clients.slice(0, MEMBERS);
    const person = (c: RawClient) => ({ id: c.userId, identity: identities.get(c.userId)! });
    // An open group: each member signs its own JOIN on the head it has (one after the other).
    const { group, genesis } = TestGroup.create('big', person(members[0]!), JoinPolicy.OPEN);
    expect(await group.append(members[0]!, genesis)).toMatchObject({ t: 'ok' });
    for (const m of members.slice(1))
      expect(await group.append(m, group.join(person(m)))).toMatchObject({ t: 'ok' });
    expect(members_(group.log)).toContain(`user${MEMBERS - 1}`);

    const ids = members.map(() => msgId());
    const acks = await Promise.all(
      members.map((m, i) => m.request({ t: 'groupSend', group: 'big', id: ids[i], body: body(`from ${i}`) })),
    );
    expect(acks.every((a) => a.t === 'ack')).toBe(true);

    const deadline = Date.now() + 30_000;
    const complete = (): boolean => members.every((m) => received.get(m.userId)!.size === MEMBERS - 1);
    while (!complete() && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    for (const [i, m] of members.entries()) {
      const got = received.get(m.userId)!;
      expect(got.size, m.userId).toBe(MEMBERS - 1);
      expect(got.has(ids[i]!)).toBe(false); // not echoed to the sender
    }
    // Non-members got no group message.
    expect(clients.slice(MEMBERS).every((c) => received.get(c.userId)!.size === 0)).toBe(true);
    expect(clients.every((c) => c.violations.length === 0)).toBe(true);
    console.log(
      `load: ${CLIENTS} connected in ${((connected - t0) / 1000).toFixed(1)} s; ` +
        `group round in ${((performance.now() - connected) / 1000).toFixed(1)} s`,
    );
    await Promise.all(clients.map((c) => c.close()));
  });
});

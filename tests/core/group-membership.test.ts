/**
 * A 50-member group under random joins, leaves and sends, with the client behaviour modelled as the
 * design asks: on every membership change each member calls membershipChanged(); before its next send a
 * member rotates and sends its SKDM to the current members over real pairwise sessions (X3DH + Double
 * Ratchet, created on first contact); a leaver's key is removed by everyone who stays. The relay is
 * malicious: it hands every group message to every user, members or not.
 */
import fc from 'fast-check';
import { beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../src-main/core/errors.js';
import { SessionRecord } from '../../src-main/core/crypto/ratchet.js';
import { GroupSession } from '../../src-main/core/crypto/sender-keys.js';
import { encodePublicIdentity } from '../../src-main/core/crypto/identity.js';
import { type User, expectE2EE, fetchBundle, identityBytes, makeUser, text } from './fixtures.js';

const INITIAL_MEMBERS = 50;
const USERS = 60;

interface Client {
  readonly user: User;
  /** Pairwise sessions by peer id, used in both directions; kept across runs like a real client's. */
  readonly records: Map<string, SessionRecord>;
  group: GroupSession;
}

interface Sent {
  readonly wire: Uint8Array;
  readonly plaintext: Uint8Array;
  readonly senderId: string;
  /** Who was a member (other than the sender) when it was sent. */
  readonly members: ReadonlySet<string>;
}

type Step = { kind: 'join' | 'leave' | 'send'; pick: number; dt: number };

const step: fc.Arbitrary<Step> = fc.record({
  kind: fc.constantFrom<Step['kind']>('join', 'leave', 'send', 'send'),
  pick: fc.nat(),
  dt: fc.integer({ min: 0, max: 40_000 }),
});

describe('a 50-member group with random joins and leaves', () => {
  let clients: Client[];
  const byId = new Map<string, Client>();

  beforeAll(() => {
    clients = Array.from({ length: USERS }, (_, i) => {
      const user = makeUser(`u${String(i).padStart(2, '0')}`, 4);
      return { user, records: new Map(), group: new GroupSession('', user.id) };
    });
    for (const c of clients) byId.set(c.user.id, c);
  });

  const recordWith = (c: Client, peerId: string): SessionRecord => {
    let r = c.records.get(peerId);
    if (!r) c.records.set(peerId, (r = new SessionRecord(c.user.id, peerId)));
    return r;
  };

  /** Sends `payload` from one client to another over their pairwise session; returns what arrived. */
  function pairwise(from: Client, to: Client, payload: Uint8Array): Uint8Array {
    const out = recordWith(from, to.user.id);
    if (!out.hasSession) out.initiate(from.user.identity, fetchBundle(to.user));
    const wire = out.encrypt(payload);
    const res = recordWith(to, from.user.id).decrypt(to.user.identity, to.user.prekeys, wire);
    expect(encodePublicIdentity(res.peerIdentity)).toEqual(identityBytes(from.user));
    return res.plaintext;
  }

  it('every message decrypts for exactly the members of its moment, never for anyone else', () => {
    let run = 0;
    fc.assert(
      fc.property(fc.array(step, { minLength: 25, maxLength: 30, size: 'max' }), (steps) => {
        const groupId = `group-${run++}`;
        for (const c of clients) c.group = new GroupSession(groupId, c.user.id);
        const members = new Set(clients.slice(0, INITIAL_MEMBERS).map((c) => c.user.id));
        const sent: Sent[] = [];
        const lastSendState = new Map<string, Uint8Array>();
        let now = 1_000;
        const everMember = new Set(members);

        for (const s of steps) {
          now += s.dt;
          if (s.kind === 'join') {
            // Half of the joins bring back a former member (when there is one), the others a newcomer.
            const former = clients.filter((c) => everMember.has(c.user.id) && !members.has(c.user.id));
            const newcomers = clients.filter((c) => !everMember.has(c.user.id));
            const pool = s.pick % 2 === 0 && former.length > 0 ? former : newcomers;
            if (pool.length === 0) continue;
            const joiner = pool[(s.pick >> 1) % pool.length]!;
            members.add(joiner.user.id);
            everMember.add(joiner.user.id);
            for (const id of members) byId.get(id)!.group.membershipChanged();
          } else if (s.kind === 'leave') {
            if (members.size <= 2) continue;
            const ids = [...members];
            const leaver = byId.get(ids[s.pick % ids.length]!)!;
            // A malicious leaver ignores the membership change: from its state as of its last send, it
            // makes one more message under the key the others hold. Before they remove it, it is valid.
            const snapshot = lastSendState.get(leaver.user.id);
            const parting = snapshot && GroupSession.deserialize(snapshot).encrypt(text('parting'));
            members.delete(leaver.user.id);
            const stayers = [...members];
            const lastReader = sent.findLast((m) => m.senderId === leaver.user.id)?.members;
            const holder = stayers.find((id) => lastReader?.has(id));
            if (parting && holder) {
              const probe = GroupSession.deserialize(byId.get(holder)!.group.serialize());
              expect(probe.decrypt(parting, now).plaintext).toEqual(text('parting'));
            }
            for (const id of stayers) {
              const g = byId.get(id)!.group;
              g.removeSender(leaver.user.id);
              g.membershipChanged();
            }
            if (parting) {
              for (const id of stayers) {
                expectE2EE(() => byId.get(id)!.group.decrypt(parting, now), ErrorCode.UNKNOWN_KEY_ID);
              }
            }
            // Everyone erased that key: if the leaver comes back, it has no key the others hold until it
            // sends again (a parting message made from it then is refused by all, as checked above).
            lastSendState.delete(leaver.user.id);
          } else {
            const ids = [...members];
            const sender = byId.get(ids[s.pick % ids.length]!)!;
            if (sender.group.needsRotation(now)) {
              const skdm = sender.group.rotate(now);
              for (const id of members) {
                if (id === sender.user.id) continue;
                const to = byId.get(id)!;
                to.group.processDistribution(sender.user.id, pairwise(sender, to, skdm), now);
              }
            }
            const plaintext = text(`${groupId}/${sent.length} from ${sender.user.id}`);
            const wire = sender.group.encrypt(plaintext);
            lastSendState.set(sender.user.id, sender.group.serialize());
            const others = new Set([...members].filter((id) => id !== sender.user.id));
            sent.push({ wire, plaintext, senderId: sender.user.id, members: others });
            // The relay gives the message to every user.
            for (const c of clients) {
              if (c === sender) continue;
              if (others.has(c.user.id)) {
                const r = c.group.decrypt(wire, now);
                expect(r.senderId).toBe(sender.user.id);
                expect(r.keyId).toBe(sender.group.ownKeyId);
                expect(r.plaintext).toEqual(plaintext);
              } else {
                expectE2EE(() => c.group.decrypt(wire, now), ErrorCode.UNKNOWN_KEY_ID);
              }
            }
            // Delivered twice: a replay.
            const [first] = others;
            if (first) expectE2EE(() => byId.get(first)!.group.decrypt(wire, now), ErrorCode.REPLAY);
          }
        }

        // At the end, when users hold every key they were given: nobody reads a message sent while they
        // were not a member (removed, rejoined or never in), and every member who read one reads it once.
        for (const m of sent) {
          for (const c of clients) {
            if (c.user.id === m.senderId) continue;
            expectE2EE(
              () => c.group.decrypt(m.wire, now),
              m.members.has(c.user.id)
                ? [ErrorCode.REPLAY, ErrorCode.UNKNOWN_KEY_ID]
                : ErrorCode.UNKNOWN_KEY_ID,
            );
          }
        }
      }),
      // A run costs seconds: report the failing run (seed and path replay it) instead of shrinking it.
      { numRuns: 4, endOnFailure: true },
    );
  });
});

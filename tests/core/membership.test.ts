/**
 * Signed, hash-chained group membership (src-main/core/crypto/membership.ts), tried as a relay and a
 * hostile member would: every change needs its author's signature and right, every entry its place in
 * the chain; tampering, forging, reordering, replaying, merging two logs and re-encoding signatures are
 * refused with a typed error and leave the verified log as it was.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { Identity } from '../../src-main/core/crypto/identity.js';
import {
  EntryAuthor,
  EntryType,
  JoinPolicy,
  type GroupLog,
  applyEntry,
  compareView,
  decodeEntry,
  decodeGroupLog,
  encodeGroupLog,
  groupSafetyNumber,
  members,
  replayLog,
  startLog,
} from '../../src-main/core/crypto/membership.js';
import { SigningKeyPair } from '../../src-main/core/crypto/primitives.js';
import { ErrorCode } from '../../src-main/core/errors.js';
import { expectE2EE } from './fixtures.js';

const P256_N = BigInt('0xffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551');

interface Person {
  readonly id: string;
  readonly identity: Identity;
  readonly author: EntryAuthor;
}

let clock = 1_700_000_000_000;
const person = (id: string): Person => {
  const identity = Identity.generate();
  return { id, identity, author: new EntryAuthor(id, identity, () => clock++) };
};
const [alice, bob, carol, dave, mallory] = ['alice', 'bob', 'carol', 'dave', 'mallory'].map(person) as [
  Person,
  Person,
  Person,
  Person,
  Person,
];

/** A log, the entries that made it, and helpers to extend both. */
class Chain {
  entries: Uint8Array[] = [];
  log!: GroupLog;

  constructor(creator: Person, group = 'g', policy: JoinPolicy = JoinPolicy.INVITE_ONLY) {
    this.push(creator.author.genesis(group, policy));
  }

  push(bytes: Uint8Array): void {
    const entry = decodeEntry(bytes);
    this.log = this.entries.length === 0 ? startLog(entry).log : applyEntry(this.log, entry).log;
    this.entries.push(bytes);
  }

  invite(by: Person, who: Person): this {
    this.push(
      by.author.next(this.log, {
        type: EntryType.INVITE,
        userId: who.id,
        identity: who.identity.publicIdentity,
      }),
    );
    return this;
  }

  accept(who: Person): this {
    this.push(who.author.next(this.log, { type: EntryType.ACCEPT }));
    return this;
  }
}

describe('group membership log', () => {
  it('an admin invites, the invitee accepts; roles, leaving and removal change the roster', () => {
    const c = new Chain(alice).invite(alice, bob);
    expect(c.log.roster.get('bob')).toMatchObject({ standing: 'invited', role: 'member' });
    expect(members(c.log)).toEqual(['alice']);
    c.accept(bob);
    expect(members(c.log)).toEqual(['alice', 'bob']);
    c.push(alice.author.next(c.log, { type: EntryType.ROLE, userId: 'bob', role: 'admin' }));
    c.invite(bob, carol).accept(carol);
    c.push(bob.author.next(c.log, { type: EntryType.REMOVE, userId: 'alice' }));
    c.push(carol.author.next(c.log, { type: EntryType.LEAVE }));
    expect(members(c.log)).toEqual(['bob']);
    expect(c.log.epoch).toBe(7);
    // Everyone replaying the same bytes reaches the same state.
    expect(encodeGroupLog(replayLog(c.entries))).toEqual(encodeGroupLog(c.log));
    expect(decodeGroupLog(encodeGroupLog(c.log))).toEqual(c.log);
  });

  it('refuses changes their author may not make (NOT_ALLOWED), leaving the log as it was', () => {
    const c = new Chain(alice).invite(alice, bob).accept(bob);
    const before = encodeGroupLog(c.log);
    const attempts: [string, () => Uint8Array][] = [
      [
        'a member invites',
        () =>
          bob.author.next(c.log, {
            type: EntryType.INVITE,
            userId: 'carol',
            identity: carol.identity.publicIdentity,
          }),
      ],
      ['a member removes', () => bob.author.next(c.log, { type: EntryType.REMOVE, userId: 'alice' })],
      [
        'a member promotes itself',
        () => bob.author.next(c.log, { type: EntryType.ROLE, userId: 'bob', role: 'admin' }),
      ],
      [
        'a member opens the group',
        () =>
          bob.author.next(c.log, {
            type: EntryType.POLICY,
            policy: JoinPolicy.OPEN,
            approval: false,
            linkKey: undefined,
          }),
      ],
      ['a member deletes', () => bob.author.next(c.log, { type: EntryType.DELETE })],
      ['an outsider joins an invite-only group', () => carol.author.join(c.log)],
      ['an outsider accepts without invitation', () => carol.author.next(c.log, { type: EntryType.ACCEPT })],
      ['the last admin leaves with members left', () => alice.author.next(c.log, { type: EntryType.LEAVE })],
      [
        'the last admin steps down',
        () => alice.author.next(c.log, { type: EntryType.ROLE, userId: 'alice', role: 'member' }),
      ],
      [
        'an admin removes itself',
        () => alice.author.next(c.log, { type: EntryType.REMOVE, userId: 'alice' }),
      ],
      [
        'approving someone who did not ask',
        () => alice.author.next(c.log, { type: EntryType.APPROVE, userId: 'bob' }),
      ],
      [
        'inviting a member again',
        () =>
          alice.author.next(c.log, {
            type: EntryType.INVITE,
            userId: 'bob',
            identity: bob.identity.publicIdentity,
          }),
      ],
    ];
    for (const [what, make] of attempts) {
      const entry = decodeEntry(make());
      try {
        applyEntry(c.log, entry);
        expect.fail(`${what}: accepted`);
      } catch (e) {
        expect((e as { code?: string }).code, what).toBe(ErrorCode.NOT_ALLOWED);
      }
      expect(encodeGroupLog(c.log)).toEqual(before);
    }
  });

  it('once the last member has left, nobody joins or accepts: the group has ended (never members without an admin)', () => {
    const c = new Chain(alice);
    c.push(
      alice.author.next(c.log, {
        type: EntryType.POLICY,
        policy: JoinPolicy.OPEN,
        approval: false,
        linkKey: undefined,
      }),
    );
    c.push(
      alice.author.next(c.log, {
        type: EntryType.INVITE,
        userId: 'carol',
        identity: carol.identity.publicIdentity,
      }),
    );
    c.push(alice.author.next(c.log, { type: EntryType.LEAVE }));
    expect(members(c.log)).toEqual([]);
    const before = encodeGroupLog(c.log);
    for (const late of [
      () => bob.author.join(c.log),
      () => alice.author.join(c.log),
      () => carol.author.next(c.log, { type: EntryType.ACCEPT }),
    ])
      expect(() => c.push(late())).toThrow(expect.objectContaining({ code: ErrorCode.NOT_ALLOWED }));
    expect(encodeGroupLog(c.log)).toEqual(before);
    // The invitee can still decline (leave the roster).
    c.push(carol.author.next(c.log, { type: EntryType.LEAVE }));
    expect(c.log.roster.size).toBe(0);
  });

  it('an outsider cannot pass off an entry as an admin’s (BAD_SIGNATURE)', () => {
    const c = new Chain(alice).invite(alice, bob).accept(bob);
    // mallory writes an entry naming alice as its author, signed with mallory's key
    const forged = new EntryAuthor('alice', mallory.identity, () => clock++).next(c.log, {
      type: EntryType.INVITE,
      userId: 'mallory',
      identity: mallory.identity.publicIdentity,
    });
    expectE2EE(() => applyEntry(c.log, decodeEntry(forged)), ErrorCode.BAD_SIGNATURE);
    // a removed member's entries stop counting
    c.push(alice.author.next(c.log, { type: EntryType.REMOVE, userId: 'bob' }));
    expectE2EE(
      () => applyEntry(c.log, decodeEntry(bob.author.next(c.log, { type: EntryType.LEAVE }))),
      ErrorCode.NOT_ALLOWED,
    );
  });

  it('refuses entries out of place: replayed, reordered, from another log, a second genesis, after deletion', () => {
    const c = new Chain(alice).invite(alice, bob);
    const other = new Chain(alice, 'g').invite(alice, carol); // same name, another genesis
    const third = bob.author.next(c.log, { type: EntryType.ACCEPT });
    expectE2EE(() => applyEntry(c.log, decodeEntry(c.entries[1]!)), ErrorCode.BAD_ENTRY); // replay
    expectE2EE(() => applyEntry(c.log, decodeEntry(other.entries[1]!)), ErrorCode.BAD_ENTRY); // merge
    expectE2EE(() => applyEntry(c.log, decodeEntry(c.entries[0]!)), ErrorCode.BAD_ENTRY); // genesis again
    const skip = new Chain(alice);
    expectE2EE(() => applyEntry(skip.log, decodeEntry(third)), ErrorCode.BAD_ENTRY); // out of order
    const elsewhere = new Chain(alice, 'h');
    expectE2EE(() => applyEntry(elsewhere.log, decodeEntry(third)), ErrorCode.BAD_ENTRY); // another group
    c.push(third);
    c.push(alice.author.next(c.log, { type: EntryType.DELETE }));
    expect(c.log.deleted).toBe(true);
    expectE2EE(
      () => applyEntry(c.log, decodeEntry(alice.author.next(c.log, { type: EntryType.LEAVE }))),
      ErrorCode.BAD_ENTRY,
    );
  });

  it('refuses every tampered byte, truncation and trailing byte with a typed error', () => {
    const c = new Chain(alice).invite(alice, bob);
    const entry = bob.author.next(c.log, { type: EntryType.ACCEPT });
    const before = encodeGroupLog(c.log);
    const variants: Uint8Array[] = [entry.slice(0, -1), new Uint8Array([...entry, 0])];
    for (let i = 0; i < entry.length; i++) {
      const t = entry.slice();
      t[i]! ^= 0x01;
      variants.push(t);
    }
    for (const v of variants) {
      let code: string | undefined;
      try {
        applyEntry(c.log, decodeEntry(v));
      } catch (e) {
        code = (e as { code?: string }).code;
      }
      expect([
        ErrorCode.BAD_ENTRY,
        ErrorCode.BAD_SIGNATURE,
        ErrorCode.INVALID_KEY,
        ErrorCode.NOT_ALLOWED,
      ]).toContain(code);
    }
    expect(encodeGroupLog(c.log)).toEqual(before);
  });

  it('a re-encoded signature (r, n - s) is the same entry: same hash, no false fork', () => {
    const c = new Chain(alice).invite(alice, bob);
    const entry = bob.author.next(c.log, { type: EntryType.ACCEPT });
    const e = decodeEntry(entry);
    const s = BigInt(`0x${Buffer.from(e.signature.subarray(32)).toString('hex')}`);
    const flipped = Buffer.from((P256_N - s).toString(16).padStart(64, '0'), 'hex');
    const reencoded = new Uint8Array([...entry.subarray(0, entry.length - 32), ...flipped]);
    const r = decodeEntry(reencoded);
    expect(r.hash).toEqual(e.hash);
    expect(applyEntry(c.log, r).log.heads).toEqual(applyEntry(c.log, e).log.heads);
  });

  it('open groups and invite links: join directly, or ask and be approved; a revoked link stops working', () => {
    const open = new Chain(alice, 'o', JoinPolicy.OPEN);
    open.push(bob.author.join(open.log));
    expect(members(open.log)).toEqual(['alice', 'bob']);

    const c = new Chain(alice);
    const link = SigningKeyPair.generate();
    c.push(
      alice.author.next(c.log, {
        type: EntryType.POLICY,
        policy: JoinPolicy.LINK,
        approval: true,
        linkKey: link.publicKey,
      }),
    );
    // Without the link's key, or with another key, nobody gets in.
    expectE2EE(() => applyEntry(c.log, decodeEntry(carol.author.join(c.log))), ErrorCode.NOT_ALLOWED);
    expectE2EE(
      () => applyEntry(c.log, decodeEntry(carol.author.join(c.log, SigningKeyPair.generate()))),
      ErrorCode.BAD_SIGNATURE,
    );
    c.push(carol.author.join(c.log, link));
    expect(c.log.roster.get('carol')?.standing).toBe('requested');
    expect(members(c.log)).toEqual(['alice']);
    c.push(alice.author.next(c.log, { type: EntryType.APPROVE, userId: 'carol' }));
    expect(members(c.log)).toEqual(['alice', 'carol']);
    // A link signature is bound to its entry: dave cannot reuse carol's.
    const carolsJoin = decodeEntry(c.entries[2]!);
    expect(carolsJoin.type).toBe(EntryType.JOIN);
    // Without approval, the link lets people straight in; revoking it closes it.
    c.push(
      alice.author.next(c.log, {
        type: EntryType.POLICY,
        policy: JoinPolicy.LINK,
        approval: false,
        linkKey: link.publicKey,
      }),
    );
    c.push(dave.author.join(c.log, link));
    expect(members(c.log)).toEqual(['alice', 'carol', 'dave']);
    c.push(
      alice.author.next(c.log, {
        type: EntryType.POLICY,
        policy: JoinPolicy.INVITE_ONLY,
        approval: false,
        linkKey: undefined,
      }),
    );
    expectE2EE(() => applyEntry(c.log, decodeEntry(mallory.author.join(c.log, link))), ErrorCode.NOT_ALLOWED);
  });

  it('caps the roster', () => {
    const c = new Chain(alice).invite(alice, bob);
    const entry = decodeEntry(
      alice.author.next(c.log, {
        type: EntryType.INVITE,
        userId: 'carol',
        identity: carol.identity.publicIdentity,
      }),
    );
    expectE2EE(() => applyEntry(c.log, entry, { maxRoster: 2 }), ErrorCode.NOT_ALLOWED);
    expect(applyEntry(c.log, entry, { maxRoster: 3 }).log.roster.size).toBe(3);
  });

  it('compares another member’s view, and the group safety number follows the head', () => {
    const c = new Chain(alice).invite(alice, bob);
    const atOne = c.log;
    c.accept(bob);
    const fork = new Chain(alice);
    fork.entries = [c.entries[0]!];
    fork.log = startLog(decodeEntry(c.entries[0]!)).log;
    fork.invite(alice, carol); // another entry at epoch 1
    expect(compareView(c.log, c.log.epoch, c.log.heads[2]!)).toBe('same');
    expect(compareView(c.log, 1, atOne.heads[1]!)).toBe('behind');
    expect(compareView(atOne, 2, c.log.heads[2]!)).toBe('ahead');
    expect(compareView(c.log, 1, fork.log.heads[1]!)).toBe('fork');
    expect(groupSafetyNumber(c.log)).toMatch(/^\d{60}$/);
    expect(groupSafetyNumber(replayLog(c.entries))).toBe(groupSafetyNumber(c.log));
    expect(groupSafetyNumber(atOne)).not.toBe(groupSafetyNumber(c.log));
    expect(groupSafetyNumber(fork.log)).not.toBe(groupSafetyNumber(atOne));
  });

  it('random changes by admins, members and outsiders: every reader replays to the same roster, and only allowed changes land', () => {
    const people = [alice, bob, carol, dave, mallory];
    const op = fc.record({
      who: fc.nat({ max: people.length - 1 }),
      target: fc.nat({ max: people.length - 1 }),
      kind: fc.constantFrom(
        'invite',
        'accept',
        'leave',
        'remove',
        'promote',
        'demote',
        'open',
        'close',
        'join',
      ),
    });
    fc.assert(
      fc.property(fc.array(op, { maxLength: 40 }), (ops) => {
        const c = new Chain(alice);
        for (const o of ops) {
          const by = people[o.who]!;
          const to = people[o.target]!;
          const body = {
            invite: { type: EntryType.INVITE, userId: to.id, identity: to.identity.publicIdentity },
            accept: { type: EntryType.ACCEPT },
            leave: { type: EntryType.LEAVE },
            remove: { type: EntryType.REMOVE, userId: to.id },
            promote: { type: EntryType.ROLE, userId: to.id, role: 'admin' },
            demote: { type: EntryType.ROLE, userId: to.id, role: 'member' },
            open: { type: EntryType.POLICY, policy: JoinPolicy.OPEN, approval: false, linkKey: undefined },
            close: {
              type: EntryType.POLICY,
              policy: JoinPolicy.INVITE_ONLY,
              approval: false,
              linkKey: undefined,
            },
            join: undefined,
          }[o.kind] as Parameters<EntryAuthor['next']>[1] | undefined;
          const bytes = body ? by.author.next(c.log, body) : by.author.join(c.log);
          const authorBefore = c.log.roster.get(by.id);
          try {
            c.push(bytes);
          } catch (e) {
            expect([ErrorCode.NOT_ALLOWED]).toContain((e as { code?: string }).code);
            continue;
          }
          // What landed was allowed: admin-only changes came from an admin member.
          if (['invite', 'remove', 'promote', 'demote', 'open', 'close'].includes(o.kind))
            expect(authorBefore).toMatchObject({ standing: 'member', role: 'admin' });
          if (o.kind === 'join') expect(authorBefore).toBeUndefined();
          // Always at least one admin while there are members.
          if (members(c.log).length > 0)
            expect(
              [...c.log.roster.values()].some((m) => m.standing === 'member' && m.role === 'admin'),
            ).toBe(true);
        }
        expect(encodeGroupLog(replayLog(c.entries))).toEqual(encodeGroupLog(c.log));
      }),
      { numRuns: 60 },
    );
  });
});

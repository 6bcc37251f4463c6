/** Prekey publishing and bundle hand-out: each one-time prekey leaves the relay once. */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { Identity, encodePublicIdentity } from '../../src-main/core/crypto/identity.js';
import { PreKeys, decodePreKeyBundle, encodePreKeyBundle } from '../../src-main/core/crypto/x3dh.js';
import { MAX_PREKEYS_STORED, b64, unb64 } from '../../src-main/core/protocol/wire.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { RawClient } from './raw-client.js';

let relay: Relay;
beforeEach(async () => {
  relay = await startRelay({ port: 0 });
});
afterEach(async () => {
  await relay.close();
});

function publishFrame(userId: string, identity: Identity, prekeys: PreKeys, opks: number) {
  const bundle = encodePreKeyBundle({
    userId,
    identity: identity.publicIdentity,
    signedPreKey: prekeys.currentSignedPreKey(),
  });
  return {
    t: 'publishPreKeys',
    bundle: b64(bundle),
    oneTimePreKeys: prekeys.generateOneTimePreKeys(opks).map((k) => ({ id: k.id, key: b64(k.publicKey) })),
  };
}

describe('prekeys', () => {
  it('hands out each one-time prekey once, then bundles without one, and warns the owner', async () => {
    const id = Identity.generate();
    const alice = await RawClient.connect(relay.url, 'alice', id);
    const pk = PreKeys.create(id, Date.now());
    const published = publishFrame('alice', id, pk, 12);
    expect(await alice.request(published)).toEqual({ t: 'ok', rid: 1, oneTimePreKeyCount: 12 });

    const bob = await RawClient.connect(relay.url, 'bob');
    const seen = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const r = await bob.request({ t: 'getBundle', userId: 'alice' });
      expect(r.t).toBe('ok');
      const bundle = decodePreKeyBundle(unb64(r.bundle as string));
      expect(bundle.userId).toBe('alice');
      expect(bundle.signedPreKey.id).toBe(pk.currentSignedPreKey().id);
      const opk = bundle.oneTimePreKey!;
      expect(seen.has(opk.id)).toBe(false);
      seen.add(opk.id);
      // The key handed out is the one alice holds the private half of.
      expect(pk.oneTimeKeyPair(opk.id).publicKey).toEqual(opk.publicKey);
    }
    expect(seen.size).toBe(12);
    const none = await bob.request({ t: 'getBundle', userId: 'alice' });
    expect(decodePreKeyBundle(unb64(none.bundle as string)).oneTimePreKey).toBeUndefined();
    expect(await alice.next((f) => f.t === 'preKeysLow' && f.count === 0)).toBeTruthy();

    // Reconnecting reports the count left.
    await alice.close();
    const again = await RawClient.connect(relay.url, 'alice', id);
    expect(again.ready?.oneTimePreKeyCount).toBe(0);
  });

  it('refuses bundles of another user or identity, with a one-time prekey, or with bad keys', async () => {
    const id = Identity.generate();
    const alice = await RawClient.connect(relay.url, 'alice', id);
    const other = Identity.generate();
    const pk = PreKeys.create(id, Date.now());
    const otherPk = PreKeys.create(other, Date.now());

    const wrongUser = publishFrame('bob', id, pk, 1);
    expect(await alice.request(wrongUser)).toMatchObject({ t: 'error', code: 'INVALID_BUNDLE' });
    const wrongIdentity = publishFrame('alice', other, otherPk, 1);
    expect(await alice.request(wrongIdentity)).toMatchObject({ t: 'error', code: 'INVALID_BUNDLE' });

    const opk = pk.generateOneTimePreKeys(1)[0]!;
    const withOpk = encodePreKeyBundle({
      userId: 'alice',
      identity: id.publicIdentity,
      signedPreKey: pk.currentSignedPreKey(),
      oneTimePreKey: opk,
    });
    expect(
      await alice.request({ t: 'publishPreKeys', bundle: b64(withOpk), oneTimePreKeys: [] }),
    ).toMatchObject({ t: 'error', code: 'INVALID_BUNDLE' });

    const badSig = encodePreKeyBundle({
      userId: 'alice',
      identity: id.publicIdentity,
      signedPreKey: { ...pk.currentSignedPreKey(), signature: new Uint8Array(64) },
    });
    expect(
      await alice.request({ t: 'publishPreKeys', bundle: b64(badSig), oneTimePreKeys: [] }),
    ).toMatchObject({ t: 'error', code: 'INVALID_BUNDLE' });

    const good = publishFrame('alice', id, pk, 1);
    const offCurve = new Uint8Array(65).fill(7);
    offCurve[0] = 4;
    good.oneTimePreKeys[0]!.key = b64(offCurve);
    expect(await alice.request(good)).toMatchObject({ t: 'error', code: 'INVALID_BUNDLE' });

    expect(await alice.request({ t: 'getBundle', userId: 'alice' })).toMatchObject({
      t: 'error',
      code: 'UNKNOWN_USER',
    });
    expect(await alice.request({ t: 'getBundle', userId: 'nobody' })).toMatchObject({
      t: 'error',
      code: 'UNKNOWN_USER',
    });
  });

  it(`caps stored one-time prekeys at ${MAX_PREKEYS_STORED} (QUOTA)`, async () => {
    const id = Identity.generate();
    const alice = await RawClient.connect(relay.url, 'alice', id);
    const pk = PreKeys.create(id, Date.now());
    for (let i = 0; i < MAX_PREKEYS_STORED / 100; i++) {
      expect(await alice.request(publishFrame('alice', id, pk, 100))).toMatchObject({ t: 'ok' });
    }
    expect(await alice.request(publishFrame('alice', id, pk, 1))).toMatchObject({
      t: 'error',
      code: 'QUOTA',
    });
  });

  it('tells the identities registered now: unknown ids left out, each id once, at most 100 per request', async () => {
    const aliceId = Identity.generate();
    const alice = await RawClient.connect(relay.url, 'alice', aliceId);
    const bob = await RawClient.connect(relay.url, 'bob');
    expect(await bob.request({ t: 'identities', userIds: ['alice', 'nobody', 'alice'] })).toEqual({
      t: 'ok',
      rid: 1,
      identities: [{ userId: 'alice', identity: b64(encodePublicIdentity(aliceId.publicIdentity)) }],
    });
    // A deleted account is left out, like one never registered.
    expect((await alice.deleteAccount()).t).toBe('ok');
    expect(await bob.request({ t: 'identities', userIds: ['alice'] })).toEqual({
      t: 'ok',
      rid: 2,
      identities: [],
    });
    // Bad requests are refused and change nothing.
    const many = Array.from({ length: 101 }, (_, i) => `user${i}`);
    for (const userIds of [[], many, ['Not An Id!']])
      expect(await bob.request({ t: 'identities', userIds })).toMatchObject({
        t: 'error',
        code: 'BAD_FRAME',
      });
    expect((await bob.request({ t: 'identities', userIds: many.slice(0, 100) })).t).toBe('ok');
  });
});

/**
 * Crypto suite: our core (src-main/core/crypto) beside libsignal (@signalapp/libsignal-client, the
 * Rust implementation behind Signal Desktop), same scenarios, same process, interleaved rounds.
 *
 * Our core is synchronous and measured as it is called; libsignal's protocol functions are async (they
 * call back into the JS stores) and each call is awaited, which is how an application uses it.
 * libsignal's stores below are the cheapest reasonable ones: plain Maps holding the native objects
 * (no serialisation), the identity key pair cached (the base class re-derives the public key on every
 * call). Our side likewise keeps its state in memory and serialises nothing.
 */
import type * as Libsignal from '@signalapp/libsignal-client';
import type {
  CiphertextMessage,
  IdentityKeyPair,
  KyberPreKeyRecord,
  PreKeyBundle as LibPreKeyBundle,
  PreKeyRecord,
  ProtocolAddress,
  PublicKey,
  SenderKeyRecord,
  SessionRecord as LibSessionRecord,
  SignedPreKeyRecord,
} from '@signalapp/libsignal-client';
import { createRequire } from 'node:module';

import { Identity } from '../src-main/core/crypto/identity.js';
import { SessionRecord } from '../src-main/core/crypto/ratchet.js';
import { GroupSession } from '../src-main/core/crypto/sender-keys.js';
import { PreKeys, decodePreKeyBundle, encodePreKeyBundle } from '../src-main/core/crypto/x3dh.js';
import { type Op, type ResultRow, type Suite, type SuiteContext, measurePair, row } from './harness.js';

type Lib = typeof Libsignal;

/** Scenario names (also the row names in the output). */
export const Scenario = {
  GROUP: 'group encrypt+decrypt 100 B',
  ONE_WAY: '1:1 encrypt+decrypt one-way 100 B',
  PING_PONG: '1:1 ping-pong (DH ratchet every msg)',
  SETUP: '1:1 session setup + first message',
} as const;

/** Minimum ours/reference throughput ratio we aim for, per scenario. */
const TARGETS: Record<string, number> = {
  [Scenario.GROUP]: 1.3,
  [Scenario.ONE_WAY]: 2.0,
  [Scenario.PING_PONG]: 0.6,
  [Scenario.SETUP]: 1.0,
};

const MESSAGE_BYTES = 100;
// Service-id-like user ids (36 characters), as a relay would assign; our headers carry both ids.
const ALICE = '6a3e0c0e-8f61-4f0e-9d7b-4d5e2f1a0b01';
const BOB = 'c2d4f6a8-1b3d-4e5f-8a9b-0c1d2e3f4a02';
const GROUP_ID = '0f1e2d3c-4b5a-4697-8877-665544332211';

function message(): Uint8Array<ArrayBuffer> {
  const m = new Uint8Array(MESSAGE_BYTES);
  for (let i = 0; i < m.length; i++) m[i] = (i * 31 + 7) & 0xff;
  return m;
}

/** Full comparison once (during setup); the timed loops check only the length. */
function assertSame(got: Uint8Array, want: Uint8Array, what: string): void {
  if (got.length !== want.length || !got.every((b, i) => b === want[i]))
    throw new Error(`${what}: round trip mismatch`);
}

function assertLength(got: Uint8Array): void {
  if (got.length !== MESSAGE_BYTES) throw new Error('round trip returned a wrong length');
}

// ---------------------------------------------------------------------------------------------
// Our core

function oursGroup(): Op {
  const now = Date.now();
  const msg = message();
  const alice = new GroupSession(GROUP_ID, ALICE);
  const bob = new GroupSession(GROUP_ID, BOB);
  bob.processDistribution(ALICE, alice.rotate(now), now);
  assertSame(bob.decrypt(alice.encrypt(msg), now).plaintext, msg, 'ours group');
  const oursGroupOp = (): void => assertLength(bob.decrypt(alice.encrypt(msg), now).plaintext);
  return oursGroupOp;
}

interface OursUser {
  readonly id: string;
  readonly identity: Identity;
  readonly prekeys: PreKeys;
}

function oursUser(id: string): OursUser {
  const identity = Identity.generate();
  return { id, identity, prekeys: PreKeys.create(identity, Date.now()) };
}

/** The bytes the relay would hand out for `u`, with one fresh one-time prekey. */
function oursPublish(u: OursUser): Uint8Array {
  const [oneTimePreKey] = u.prekeys.generateOneTimePreKeys(1);
  return encodePreKeyBundle({
    userId: u.id,
    identity: u.identity.publicIdentity,
    signedPreKey: u.prekeys.currentSignedPreKey(),
    oneTimePreKey,
  });
}

/** An established session: alice's PREKEY message decrypted by bob, bob's reply decrypted by alice. */
function oursEstablished(): { send: (fromAlice: boolean) => void; msg: Uint8Array } {
  const msg = message();
  const alice = oursUser(ALICE);
  const bob = oursUser(BOB);
  const a = new SessionRecord(ALICE, BOB);
  const b = new SessionRecord(BOB, ALICE);
  a.initiate(alice.identity, decodePreKeyBundle(oursPublish(bob)));
  assertSame(b.decrypt(bob.identity, bob.prekeys, a.encrypt(msg)).plaintext, msg, 'ours prekey message');
  assertSame(a.decrypt(alice.identity, alice.prekeys, b.encrypt(msg)).plaintext, msg, 'ours reply');
  return {
    msg,
    send: (fromAlice) => {
      const pt = fromAlice
        ? b.decrypt(bob.identity, bob.prekeys, a.encrypt(msg)).plaintext
        : a.decrypt(alice.identity, alice.prekeys, b.encrypt(msg)).plaintext;
      assertLength(pt);
    },
  };
}

function oursOneWay(): Op {
  const s = oursEstablished();
  const oursOneWayOp = (): void => s.send(true);
  return oursOneWayOp;
}

function oursPingPong(): Op {
  const s = oursEstablished();
  let turn = 0;
  const oursPingPongOp = (): void => s.send((turn++ & 1) === 0);
  return oursPingPongOp;
}

/**
 * One setup: bob (whose identity and signed prekey already exist) publishes a bundle with a fresh
 * one-time prekey; alice decodes and verifies it, starts a session and encrypts; bob decrypts the
 * PREKEY message. Both sides use fresh session records, as with a new contact.
 */
function oursSetup(): Op {
  const msg = message();
  const alice = oursUser(ALICE);
  const bob = oursUser(BOB);
  const once = (): Uint8Array => {
    const bundle = decodePreKeyBundle(oursPublish(bob));
    const a = new SessionRecord(ALICE, BOB);
    a.initiate(alice.identity, bundle);
    const b = new SessionRecord(BOB, ALICE);
    return b.decrypt(bob.identity, bob.prekeys, a.encrypt(msg)).plaintext;
  };
  assertSame(once(), msg, 'ours setup');
  const oursSetupOp = (): void => assertLength(once());
  return oursSetupOp;
}

// ---------------------------------------------------------------------------------------------
// libsignal: in-memory stores and helpers

function libsignalKit(lib: Lib) {
  const key = (a: ProtocolAddress): string => a.toString();

  class Sessions extends lib.SessionStore {
    private readonly map = new Map<string, LibSessionRecord>();
    async saveSession(a: ProtocolAddress, record: LibSessionRecord): Promise<void> {
      this.map.set(key(a), record);
    }
    async getSession(a: ProtocolAddress): Promise<LibSessionRecord | null> {
      return this.map.get(key(a)) ?? null;
    }
    async getExistingSessions(addresses: ProtocolAddress[]): Promise<LibSessionRecord[]> {
      return addresses.map((a) => {
        const r = this.map.get(key(a));
        if (!r) throw new Error(`no session for ${key(a)}`);
        return r;
      });
    }
  }

  /** Trust on first use, as an application would do; the own key pair cached. */
  class Identities extends lib.IdentityKeyStore {
    private readonly known = new Map<string, PublicKey>();
    constructor(
      private readonly pair: IdentityKeyPair,
      private readonly registrationId: number,
    ) {
      super();
    }
    async getIdentityKey(): Promise<Libsignal.PrivateKey> {
      return this.pair.privateKey;
    }
    override async getIdentityKeyPair(): Promise<IdentityKeyPair> {
      return this.pair;
    }
    async getLocalRegistrationId(): Promise<number> {
      return this.registrationId;
    }
    async saveIdentity(a: ProtocolAddress, k: PublicKey): Promise<Libsignal.IdentityChange> {
      const old = this.known.get(key(a));
      this.known.set(key(a), k);
      return old && !old.equals(k) ? lib.IdentityChange.ReplacedExisting : lib.IdentityChange.NewOrUnchanged;
    }
    async isTrustedIdentity(a: ProtocolAddress, k: PublicKey): Promise<boolean> {
      const old = this.known.get(key(a));
      return !old || old.equals(k);
    }
    async getIdentity(a: ProtocolAddress): Promise<PublicKey | null> {
      return this.known.get(key(a)) ?? null;
    }
  }

  class PreKeysStore extends lib.PreKeyStore {
    readonly map = new Map<number, PreKeyRecord>();
    async savePreKey(id: number, record: PreKeyRecord): Promise<void> {
      this.map.set(id, record);
    }
    async getPreKey(id: number): Promise<PreKeyRecord> {
      const r = this.map.get(id);
      if (!r) throw new Error(`no prekey ${id}`);
      return r;
    }
    async removePreKey(id: number): Promise<void> {
      this.map.delete(id);
    }
  }

  class SignedPreKeys extends lib.SignedPreKeyStore {
    readonly map = new Map<number, SignedPreKeyRecord>();
    async saveSignedPreKey(id: number, record: SignedPreKeyRecord): Promise<void> {
      this.map.set(id, record);
    }
    async getSignedPreKey(id: number): Promise<SignedPreKeyRecord> {
      const r = this.map.get(id);
      if (!r) throw new Error(`no signed prekey ${id}`);
      return r;
    }
  }

  /** One-time Kyber prekeys: erased when used (a last-resort key would be kept instead). */
  class KyberPreKeys extends lib.KyberPreKeyStore {
    readonly map = new Map<number, KyberPreKeyRecord>();
    async saveKyberPreKey(id: number, record: KyberPreKeyRecord): Promise<void> {
      this.map.set(id, record);
    }
    async getKyberPreKey(id: number): Promise<KyberPreKeyRecord> {
      const r = this.map.get(id);
      if (!r) throw new Error(`no kyber prekey ${id}`);
      return r;
    }
    async markKyberPreKeyUsed(id: number): Promise<void> {
      this.map.delete(id);
    }
  }

  class SenderKeys extends lib.SenderKeyStore {
    private readonly map = new Map<string, SenderKeyRecord>();
    async saveSenderKey(a: ProtocolAddress, distributionId: string, record: SenderKeyRecord): Promise<void> {
      this.map.set(`${key(a)}/${distributionId}`, record);
    }
    async getSenderKey(a: ProtocolAddress, distributionId: string): Promise<SenderKeyRecord | null> {
      return this.map.get(`${key(a)}/${distributionId}`) ?? null;
    }
  }

  interface User {
    readonly address: ProtocolAddress;
    readonly identity: IdentityKeyPair;
    readonly registrationId: number;
    readonly identities: Identities;
    readonly preKeys: PreKeysStore;
    readonly signedPreKeys: SignedPreKeys;
    readonly kyberPreKeys: KyberPreKeys;
    readonly senderKeys: SenderKeys;
    readonly signedPreKey: {
      id: number;
      publicKey: Uint8Array<ArrayBuffer>;
      signature: Uint8Array<ArrayBuffer>;
    };
    nextPreKeyId: number;
  }

  const SIGNED_PREKEY_ID = 1;

  function user(name: string, registrationId: number): User {
    const identity = lib.IdentityKeyPair.generate();
    const spk = lib.PrivateKey.generate();
    const spkPublic = spk.getPublicKey();
    const signature = identity.privateKey.sign(spkPublic.serialize());
    const signedPreKeys = new SignedPreKeys();
    signedPreKeys.map.set(
      SIGNED_PREKEY_ID,
      lib.SignedPreKeyRecord.new(SIGNED_PREKEY_ID, Date.now(), spkPublic, spk, signature),
    );
    return {
      address: lib.ProtocolAddress.new(name, 1),
      identity,
      registrationId,
      identities: new Identities(identity, registrationId),
      preKeys: new PreKeysStore(),
      signedPreKeys,
      kyberPreKeys: new KyberPreKeys(),
      senderKeys: new SenderKeys(),
      signedPreKey: { id: SIGNED_PREKEY_ID, publicKey: spkPublic.serialize(), signature },
      nextPreKeyId: 1,
    };
  }

  /**
   * What the server hands out for `u` (as bytes): identity key, signed prekey, a fresh one-time EC
   * prekey, and a fresh one-time Kyber (ML-KEM-1024) prekey signed by the identity key. libsignal 0.103's
   * PreKeyBundle requires the Kyber prekey (PQXDH only; X3DH-only bundles are refused).
   */
  function publish(u: User) {
    const id = u.nextPreKeyId++;
    const opk = lib.PrivateKey.generate();
    const opkPublic = opk.getPublicKey();
    u.preKeys.map.set(id, lib.PreKeyRecord.new(id, opkPublic, opk));
    const kem = lib.KEMKeyPair.generate();
    const kemPublic = kem.getPublicKey().serialize();
    const kemSignature = u.identity.privateKey.sign(kemPublic);
    u.kyberPreKeys.map.set(id, lib.KyberPreKeyRecord.new(id, Date.now(), kem, kemSignature));
    return {
      registrationId: u.registrationId,
      identityKey: u.identity.publicKey.serialize(),
      signedPreKey: u.signedPreKey,
      preKey: { id, publicKey: opkPublic.serialize() },
      kyberPreKey: { id, publicKey: kemPublic, signature: kemSignature },
    };
  }

  /** The initiator's side of receiving a published bundle: deserialise the keys into a PreKeyBundle. */
  function bundleOf(p: ReturnType<typeof publish>): LibPreKeyBundle {
    return lib.PreKeyBundle.new(
      p.registrationId,
      1,
      p.preKey.id,
      lib.PublicKey.deserialize(p.preKey.publicKey),
      p.signedPreKey.id,
      lib.PublicKey.deserialize(p.signedPreKey.publicKey),
      p.signedPreKey.signature,
      lib.PublicKey.deserialize(p.identityKey),
      p.kyberPreKey.id,
      lib.KEMPublicKey.deserialize(p.kyberPreKey.publicKey),
      p.kyberPreKey.signature,
    );
  }

  const encrypt = (
    msg: Uint8Array<ArrayBuffer>,
    from: User,
    to: User,
    s: Sessions,
  ): Promise<CiphertextMessage> => lib.signalEncrypt(msg, to.address, from.address, s, from.identities);

  const decryptPreKey = (ct: CiphertextMessage, from: User, to: User, s: Sessions): Promise<Uint8Array> =>
    lib.signalDecryptPreKey(
      lib.PreKeySignalMessage.deserialize(ct.serialize()),
      from.address,
      to.address,
      s,
      to.identities,
      to.preKeys,
      to.signedPreKeys,
      to.kyberPreKeys,
    );

  const decrypt = (ct: CiphertextMessage, from: User, to: User, s: Sessions): Promise<Uint8Array> =>
    lib.signalDecrypt(
      lib.SignalMessage.deserialize(ct.serialize()),
      from.address,
      to.address,
      s,
      to.identities,
    );

  async function group(): Promise<Op> {
    const msg = message();
    const alice = user(ALICE, 1001);
    const bob = user(BOB, 1002);
    const distributionId = GROUP_ID;
    const skdm = await lib.SenderKeyDistributionMessage.create(
      alice.address,
      distributionId,
      alice.senderKeys,
    );
    await lib.processSenderKeyDistributionMessage(
      alice.address,
      lib.SenderKeyDistributionMessage.deserialize(skdm.serialize()),
      bob.senderKeys,
    );
    const once = async (): Promise<Uint8Array> => {
      const ct = await lib.groupEncrypt(alice.address, distributionId, alice.senderKeys, msg);
      return lib.groupDecrypt(alice.address, bob.senderKeys, ct.serialize());
    };
    assertSame(await once(), msg, 'libsignal group');
    return async () => {
      assertLength(await once());
    };
  }

  async function established(): Promise<(fromAlice: boolean) => Promise<void>> {
    const msg = message();
    const alice = user(ALICE, 1001);
    const bob = user(BOB, 1002);
    const as = new Sessions();
    const bs = new Sessions();
    await lib.processPreKeyBundle(bundleOf(publish(bob)), bob.address, alice.address, as, alice.identities);
    const first = await encrypt(msg, alice, bob, as);
    if (first.type() !== lib.CiphertextMessageType.PreKey) throw new Error('expected a PreKey message');
    assertSame(await decryptPreKey(first, alice, bob, bs), msg, 'libsignal prekey message');
    assertSame(await decrypt(await encrypt(msg, bob, alice, bs), bob, alice, as), msg, 'libsignal reply');
    const next = await encrypt(msg, alice, bob, as);
    if (next.type() !== lib.CiphertextMessageType.Whisper) throw new Error('expected a Whisper message');
    assertSame(await decrypt(next, alice, bob, bs), msg, 'libsignal established');
    return async (fromAlice) => {
      const pt = fromAlice
        ? await decrypt(await encrypt(msg, alice, bob, as), alice, bob, bs)
        : await decrypt(await encrypt(msg, bob, alice, bs), bob, alice, as);
      assertLength(pt);
    };
  }

  async function oneWay(): Promise<Op> {
    const send = await established();
    return () => send(true);
  }

  async function pingPong(): Promise<Op> {
    const send = await established();
    // `established` ended with alice -> bob, so bob speaks first and every message turns the ratchet.
    let turn = 1;
    return () => send((turn++ & 1) === 0);
  }

  async function setup(): Promise<Op> {
    const msg = message();
    const alice = user(ALICE, 1001);
    const bob = user(BOB, 1002);
    const once = async (): Promise<Uint8Array> => {
      const published = publish(bob);
      const as = new Sessions();
      const bs = new Sessions();
      await lib.processPreKeyBundle(bundleOf(published), bob.address, alice.address, as, alice.identities);
      const ct = await encrypt(msg, alice, bob, as);
      return decryptPreKey(ct, alice, bob, bs);
    };
    assertSame(await once(), msg, 'libsignal setup');
    if (bob.preKeys.map.size !== 0 || bob.kyberPreKeys.map.size !== 0)
      throw new Error('libsignal setup: one-time prekeys not consumed');
    return async () => {
      assertLength(await once());
    };
  }

  return { group, oneWay, pingPong, setup };
}

// ---------------------------------------------------------------------------------------------
// The suite

interface ScenarioDef {
  readonly name: string;
  readonly unit: string;
  readonly ours: () => Op;
  readonly reference: (kit: ReturnType<typeof libsignalKit>) => Promise<Op>;
  readonly note?: string;
}

const SCENARIOS: readonly ScenarioDef[] = [
  { name: Scenario.GROUP, unit: 'msgs/s', ours: oursGroup, reference: (k) => k.group() },
  { name: Scenario.ONE_WAY, unit: 'msgs/s', ours: oursOneWay, reference: (k) => k.oneWay() },
  { name: Scenario.PING_PONG, unit: 'msgs/s', ours: oursPingPong, reference: (k) => k.pingPong() },
  {
    name: Scenario.SETUP,
    unit: 'setups/s',
    ours: oursSetup,
    reference: (k) => k.setup(),
    note: 'libsignal runs PQXDH: its setup also makes, signs, encapsulates and decapsulates an ML-KEM-1024 prekey',
  },
];

/** libsignal's version as installed (for the report). */
export function libsignalVersion(): string | null {
  try {
    const require = createRequire(import.meta.url);
    return (require('@signalapp/libsignal-client/package.json') as { version: string }).version;
  } catch {
    return null;
  }
}

async function loadLibsignal(): Promise<{ lib: Lib } | { error: string }> {
  if (process.env.BENCH_NO_LIBSIGNAL) return { error: 'disabled by BENCH_NO_LIBSIGNAL' };
  try {
    const lib = await import('@signalapp/libsignal-client');
    lib.IdentityKeyPair.generate(); // forces the native module to be usable, not just present
    return { lib };
  } catch (e) {
    return { error: e instanceof Error ? e.message.split('\n')[0]! : String(e) };
  }
}

export const cryptoSuite: Suite = {
  name: 'crypto',
  reference: 'libsignal',
  scenarios: SCENARIOS.map((s) => s.name),
  async run(ctx: SuiteContext): Promise<ResultRow[]> {
    const loaded = await loadLibsignal();
    const kit = 'lib' in loaded ? libsignalKit(loaded.lib) : null;
    if ('error' in loaded) ctx.log(`libsignal cannot load here, measuring our core only: ${loaded.error}`);
    const rows: ResultRow[] = [];
    for (const s of SCENARIOS) {
      if (!ctx.selected(s.name)) continue;
      ctx.log(`crypto: ${s.name} ...`);
      const ours = s.ours();
      let reference: Op | null = null;
      let note = s.note;
      if (kit) {
        try {
          reference = await s.reference(kit);
        } catch (e) {
          note = `libsignal side failed: ${e instanceof Error ? e.message : String(e)}`;
          ctx.log(note);
        }
      } else {
        note = `libsignal unavailable: ${'error' in loaded ? loaded.error : ''}`;
      }
      const { a, b } = await measurePair(ours, reference, ctx.measure);
      rows.push(row(s.name, s.unit, TARGETS[s.name] ?? null, a, b, note));
    }
    return rows;
  },
};

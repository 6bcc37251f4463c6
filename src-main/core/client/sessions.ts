/**
 * Our own keys and our pairwise sessions. The identity lives in the KeyStore (`identity`); our
 * prekeys (`prekeys`) and one Double Ratchet session record per contact (`session/<peer>`) in the
 * StateStore. A session is started from the contact's prekey bundle fetched from the relay (X3DH),
 * pinning their identity on the way; our own prekeys are kept topped up on the relay so that others
 * can start one with us. Callers hold the client's lock.
 */
import {
  Identity,
  type PublicIdentity,
  decodePublicIdentity,
  encodePublicIdentity,
  sameIdentityKeys,
} from '../crypto/identity.js';
import { type DirectDecryptResult, SessionRecord, parseDirectMessage } from '../crypto/ratchet.js';
import type { WorkMeter } from '../crypto/work.js';
import { PreKeys, decodePreKeyBundle, encodePreKeyBundle } from '../crypto/x3dh.js';
import { ErrorCode, ProtocolError } from '../errors.js';
import { type ClientFrame, MAX_PREKEYS_STORED, b64, unb64 } from '../protocol/wire.js';
import type { KeyStore, StateStore } from './stores.js';
import type { ContactTrust } from './trust.js';

/** Sends a request to the relay and resolves with its answer. */
export type RelayRequest = (frame: Extract<ClientFrame, { rid: number }>) => Promise<Record<string, unknown>>;

/** State-store changes: a value is written, `null` deletes the key. */
type Changes = Map<string, Uint8Array | null>;

const ONE_TIME_PREKEY_TARGET = 100;
const ONE_TIME_PREKEY_LOW = 20;
/**
 * Private one-time prekeys kept for keys the relay has handed out but no session start has used yet;
 * beyond, the oldest are erased. Someone draining our stock with bundle requests then costs us no more
 * than this, and never stops us from uploading new ones.
 */
const HANDED_OUT_KEPT = 1000;
const SIGNED_PREKEY_MAX_AGE_MS = 7 * 24 * 3600 * 1000;

/** Our identity and prekeys, and the pairwise session records with our contacts. */
export class Sessions {
  private ownIdentity: Identity | undefined;
  private prekeys: PreKeys | undefined;
  private readonly records = new Map<string, SessionRecord>();
  private publishing = false;

  constructor(
    private readonly userId: string,
    private readonly store: StateStore,
    private readonly trust: ContactTrust,
    private readonly request: RelayRequest,
    private readonly now: () => number,
  ) {}

  /**
   * Loads our identity and prekeys, making and storing them on first use; again after a failed write,
   * it forgets the session records in memory so that each is read back as stored.
   */
  async loadKeys(keyStore: KeyStore): Promise<void> {
    const stored = await keyStore.get('identity');
    if (stored) {
      this.ownIdentity = Identity.deserialize(stored);
    } else {
      this.ownIdentity = Identity.generate();
      await keyStore.set('identity', this.ownIdentity.serialize());
    }
    this.records.clear(); // read again from the store as needed
    const pk = await this.store.get('prekeys');
    this.prekeys = pk ? PreKeys.deserialize(pk) : PreKeys.create(this.ownIdentity, this.now());
    if (!pk) await this.store.write(new Map([['prekeys', this.prekeys.serialize()]]));
  }

  /** Our identity; undefined until loadKeys() has run. */
  get identity(): Identity | undefined {
    return this.ownIdentity;
  }

  /** True while a prekey top-up is under way. */
  get isPublishing(): boolean {
    return this.publishing;
  }

  /** The session record with `peer` (possibly without a session yet). */
  async load(peer: string): Promise<SessionRecord> {
    let r = this.records.get(peer);
    if (!r) {
      const bytes = await this.store.get(`session/${peer}`);
      r = bytes ? SessionRecord.deserialize(bytes) : new SessionRecord(this.userId, peer);
      this.records.set(peer, r);
    }
    return r;
  }

  /** The state-store entry of a session record's current state. */
  entry(r: SessionRecord): [string, Uint8Array] {
    return [`session/${r.peerId}`, r.serialize()];
  }

  /**
   * A session with `peer` under their pinned identity, fetching their prekey bundle from the relay if
   * we have none: encryption only ever happens on a session whose key is the pinned one (issue 8).
   */
  async ensure(peer: string): Promise<SessionRecord> {
    const record = await this.load(peer);
    this.trust.checkSendable(peer);
    if (record.hasSession && this.trust.pinnedIdentity(peer)) {
      if (record.selectSession((id) => this.trust.isPinned(peer, id))) return record;
    }
    const r = await this.request({ t: 'getBundle', rid: 0, userId: peer });
    if (typeof r.bundle !== 'string') throw new ProtocolError(ErrorCode.MALFORMED, 'relay sent no bundle');
    const bundle = decodePreKeyBundle(unb64(r.bundle));
    if (bundle.userId !== peer)
      throw new ProtocolError(ErrorCode.WRONG_RECIPIENT, 'bundle is for another user');
    const { verdict, changes } = this.trust.pin(peer, encodePublicIdentity(bundle.identity), 'bundle');
    if (verdict !== 'trusted') {
      // A key change that must be approved is recorded (so it can be) before the send is refused.
      await this.store.write(new Map(changes));
      this.trust.checkSendable(peer);
    }
    record.initiate(this.ownIdentity!, bundle);
    await this.store.write(new Map([...changes, this.entry(record)]));
    return record;
  }

  /**
   * The identity a direct message claims to come from: a PREKEY message carries its sender's identity
   * in the clear (authenticated only once it decrypts); a DIRECT message claims none (undefined).
   */
  claimedIdentity(body: Uint8Array): PublicIdentity | undefined {
    return parseDirectMessage(body).preKey?.identity;
  }

  /**
   * Decrypts a direct message from `peer` within `meter` (its share of the sender's work budget), on
   * sessions whose peer identity passes `accept` only;
   * returns the result and the state changes to write with it.
   */
  async decrypt(
    peer: string,
    body: Uint8Array,
    meter?: WorkMeter,
    accept?: (id: PublicIdentity) => boolean,
  ): Promise<{ result: DirectDecryptResult; changes: Changes }> {
    const record = await this.load(peer);
    const result = record.decrypt(this.ownIdentity!, this.prekeys!, body, meter, accept);
    const changes: Changes = new Map([this.entry(record)]);
    if (result.consumedOneTimePreKeyId !== undefined) changes.set('prekeys', this.prekeys!.serialize());
    return { result, changes };
  }

  /** Erases the sessions with `peer` under any identity but `keep` (194 bytes); returns the state change. */
  async keepOnly(peer: string, keep: Uint8Array): Promise<[string, Uint8Array]> {
    const record = await this.load(peer);
    const wanted = decodePublicIdentity(keep);
    record.dropSessions((id) => sameIdentityKeys(id, wanted));
    return this.entry(record);
  }

  /**
   * Drops the session with a deleted user: whoever registers the id next has another identity, so
   * the next send fetches a fresh bundle, where the key change is detected.
   */
  async forget(peer: string): Promise<void> {
    if (!this.records.has(peer) && !(await this.store.get(`session/${peer}`))) return;
    this.records.delete(peer);
    await this.store.write(new Map([[`session/${peer}`, null]]));
  }

  /** Tops up our one-time prekeys on the relay (it holds `count`) and renews an old signed prekey. */
  async publishPreKeys(count: number): Promise<void> {
    this.publishing = true;
    try {
      await this.publishPreKeysNow(count);
    } finally {
      this.publishing = false;
    }
  }

  private async publishPreKeysNow(count: number): Promise<void> {
    const id = this.ownIdentity!;
    const pk = this.prekeys!;
    if (this.now() - pk.currentSignedPreKeyCreatedAt() > SIGNED_PREKEY_MAX_AGE_MS)
      pk.rotateSignedPreKey(id, this.now());
    // The relay holds `count` of ours; the others we hold were handed out (oldest first) and may still
    // be used by a session start on its way. Keep the newest of those, erase the rest.
    const handedOut = pk.oneTimeCount - count;
    if (handedOut > HANDED_OUT_KEPT) pk.retireOldestOneTime(handedOut - HANDED_OUT_KEPT);
    // Top up to the target whatever was handed out, within what the relay stores (MAX_PREKEYS_STORED):
    // a user whose stock was drained gets new one-time prekeys at the next connection.
    const room = Math.max(0, MAX_PREKEYS_STORED - count);
    const wanted = count < ONE_TIME_PREKEY_LOW ? ONE_TIME_PREKEY_TARGET - count : 0;
    const fresh = pk.generateOneTimePreKeys(Math.min(wanted, room));
    await this.store.write(new Map([['prekeys', pk.serialize()]]));
    const bundle = b64(
      encodePreKeyBundle({
        userId: this.userId,
        identity: id.publicIdentity,
        signedPreKey: pk.currentSignedPreKey(),
      }),
    );
    for (let i = 0; i === 0 || i < fresh.length; i += 100) {
      const batch = fresh.slice(i, i + 100).map((k) => ({ id: k.id, key: b64(k.publicKey) }));
      await this.request({ t: 'publishPreKeys', rid: 0, bundle, oneTimePreKeys: batch });
    }
  }
}

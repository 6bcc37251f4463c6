/**
 * An attacker who controls the relay's view (through tests/e2e/proxy.ts) and speaks "as" a user under an
 * identity key of its own: it starts an X3DH session with the victim from the bundle the victim itself
 * published through the relay, distributes a sender key of its own for a group, and injects the
 * resulting ciphertexts as `deliver` frames from that user. Everything it sends is a well-formed message
 * that decrypts under its own key: only the key (not the sender name) tells it from the real user.
 */
import { randomUUID } from 'node:crypto';
import { Identity, encodePublicIdentity, safetyNumber } from '../../src-main/core/crypto/identity.js';
import { SessionRecord } from '../../src-main/core/crypto/ratchet.js';
import { GroupSession } from '../../src-main/core/crypto/sender-keys.js';
import { type PreKeyBundle, decodePreKeyBundle } from '../../src-main/core/crypto/x3dh.js';
import { ContentType, type GroupView, encodeContent } from '../../src-main/core/client/content.js';
import { applyEntry, decodeEntry, startLog } from '../../src-main/core/crypto/membership.js';
import { utf8Encode } from '../../src-main/core/encoding.js';
import { decodePublicIdentity } from '../../src-main/core/index.js';
import { unb64 } from '../../src-main/core/protocol/wire.js';
import { RawClient } from '../relay/raw-client.js';
import type { Proxy } from './proxy.js';

/**
 * A group's current view (epoch and head) as its log on the relay shows it: what a malicious relay knows,
 * since it stores the log. Read here as a fresh user, which an open group's log allows.
 */
export async function relayView(url: string, group: string): Promise<GroupView> {
  const reader = await RawClient.connect(url, `reader-${randomUUID().slice(0, 8)}`);
  try {
    const page = await reader.request({ t: 'groupLog', group, from: 0 });
    const entries = (page.entries as string[]).map(unb64);
    let log = startLog(decodeEntry(entries[0]!)).log;
    for (const entry of entries.slice(1)) log = applyEntry(log, decodeEntry(entry)).log;
    return { epoch: log.epoch, head: log.heads[log.epoch]! };
  } finally {
    await reader.close();
  }
}

/** Seqs the attacker invents for injected frames (far above what the test's relay hands out). */
let nextSeq = 7_000_000;

/** A deliver frame as the relay would send it. */
export interface InjectedFrame {
  t: 'deliver';
  seq: number;
  kind: 'direct' | 'group';
  from: string;
  id: string;
  group?: string;
  body: string;
  ts: number;
}

/** Speaks as `as` under its own identity, through the relay the proxy stands for. */
export class Impostor {
  readonly identity = Identity.generate();
  private readonly sessions = new Map<string, SessionRecord>();
  private readonly groups = new Map<string, GroupSession>();

  constructor(
    readonly as: string,
    private readonly proxy: Proxy,
  ) {}

  /** The impostor's public identity (194 bytes), as a victim would pin it. */
  get publicIdentity(): Uint8Array {
    return encodePublicIdentity(this.identity.publicIdentity);
  }

  /** The safety number `victim` is shown for this key (what accepting it would pin). */
  safetyNumberWith(victim: string, victimIdentity: Uint8Array): string {
    return safetyNumber(victim, decodePublicIdentity(victimIdentity), this.as, this.identity.publicIdentity);
  }

  /** A direct text message to `victim`. */
  text(victim: string, text: string): InjectedFrame {
    const id = randomUUID();
    return this.direct(victim, id, encodeContent({ type: ContentType.TEXT, id, data: utf8Encode(text) }));
  }

  /** This impostor's sender key for `group`, carried to `victim` in its pairwise session. */
  senderKey(victim: string, group: string, view: GroupView): InjectedFrame {
    const g = this.group(group);
    const id = randomUUID();
    return this.direct(
      victim,
      id,
      encodeContent({ type: ContentType.SENDER_KEY, id, group, view, data: g.ownDistribution()! }),
    );
  }

  /** A group message signed and encrypted with this impostor's sender key, carrying the group's current view. */
  groupText(group: string, text: string, view: GroupView): InjectedFrame {
    const id = randomUUID();
    const body = this.group(group).encrypt(
      encodeContent({ type: ContentType.GROUP_TEXT, id, group, view, data: utf8Encode(text) }),
    );
    return {
      t: 'deliver',
      seq: nextSeq++,
      kind: 'group',
      from: this.as,
      id,
      group,
      body: b64(body),
      ts: Date.now(),
    };
  }

  /** Sends a frame to `victim`'s newest connection, as the relay. */
  inject(victim: string, frame: InjectedFrame): void {
    const conn = this.proxy.connections.findLast((c) => c.userId === victim);
    if (!conn) throw new Error(`${victim} is not connected through the proxy`);
    conn.toClient(JSON.stringify(frame));
  }

  private direct(victim: string, id: string, plaintext: Uint8Array): InjectedFrame {
    let record = this.sessions.get(victim);
    if (!record) {
      record = new SessionRecord(this.as, victim);
      record.initiate(this.identity, this.bundleOf(victim));
      this.sessions.set(victim, record);
    }
    const body = record.encrypt(plaintext);
    return {
      t: 'deliver',
      seq: nextSeq++,
      kind: 'direct',
      from: this.as,
      id,
      body: b64(body),
      ts: Date.now(),
    };
  }

  private group(group: string): GroupSession {
    let g = this.groups.get(group);
    if (!g) {
      g = new GroupSession(group, this.as);
      g.rotate(Date.now());
      this.groups.set(group, g);
    }
    return g;
  }

  /** The victim's bundle as the relay last saw it published (without a one-time prekey). */
  private bundleOf(victim: string): PreKeyBundle {
    for (const frame of [...this.proxy.clientFrames].reverse()) {
      const f = JSON.parse(frame) as { t?: string; bundle?: string };
      if (f.t !== 'publishPreKeys' || !f.bundle) continue;
      const bundle = decodePreKeyBundle(Buffer.from(f.bundle, 'base64'));
      if (bundle.userId === victim) return bundle;
    }
    throw new Error(`the relay has seen no bundle of ${victim}`);
  }
}

function b64(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64');
}

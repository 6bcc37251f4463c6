/**
 * The relay serves wss:// itself (issue 9, Operations): a client that trusts the relay's self-signed
 * certificate talks to another through it; the same client refuses a relay whose certificate it does
 * not trust, once, with an error that says so, instead of retrying in a loop; a renewed certificate is
 * taken without a restart; wrong certificate files stop the relay at start with a sentence naming them.
 */
import { X509Certificate } from 'node:crypto';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type PeerCertificate } from 'node:tls';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { E2EEClient } from '../../src-main/core/index.js';
import { E2EEError, ErrorCode } from '../../src-main/core/errors.js';
import { startRelay, type Relay } from '../../src-main/relay/index.js';
import { Recorder, connectClient } from '../e2e/helpers.js';
import { selfSigned, type TestCertificate } from './certificates.js';
import { get, relayHttpUrl, scrape } from './http-get.js';

let dir: string;
let trusted: TestCertificate;
let stranger: TestCertificate;
const relays: Relay[] = [];
const clients: E2EEClient[] = [];

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'sealed-tls-'));
  trusted = selfSigned(dir, 'trusted');
  stranger = selfSigned(dir, 'stranger'); // same names and addresses, another key: nobody trusts it
});
afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(relays.splice(0).map((r) => r.close()));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const start = async (cert: TestCertificate): Promise<Relay> => {
  const relay = await startRelay({ tlsCert: cert.certFile, tlsKey: cert.keyFile });
  relays.push(relay);
  return relay;
};

/** The fingerprint of the certificate the relay presents to a new connection. */
const presented = (relay: Relay): Promise<string> =>
  new Promise((resolve, reject) => {
    // Not verified on purpose: this only looks at what is presented.
    const socket = tlsConnect({ host: '127.0.0.1', port: relay.port, rejectUnauthorized: false }, () => {
      resolve((socket.getPeerCertificate() as PeerCertificate).fingerprint256);
      socket.end();
    });
    socket.on('error', reject);
  });
const fingerprint = (cert: TestCertificate): string => new X509Certificate(cert.certPem).fingerprint256;

describe('wss://', () => {
  it('a client trusting the self-signed certificate connects and messages another through it', async () => {
    const relay = await start(trusted);
    expect(relay.url).toBe(`wss://127.0.0.1:${relay.port}`);
    const alice = await connectClient(relay.url, 'alice', { tls: { ca: trusted.certPem } });
    const bob = await connectClient(relay.url, 'bob', { tls: { ca: trusted.certPem } });
    clients.push(alice.client, bob.client);
    await alice.client.sendDirectMessage('bob', 'over TLS');
    expect((await bob.rec.wait('message')).text).toBe('over TLS');

    // Health and metrics come over HTTPS on the same port.
    const health = await get(relayHttpUrl(relay.url, '/healthz'), { ca: trusted.certPem });
    expect(health.status).toBe(200);
    expect(
      (await scrape(relay.url, trusted.certPem)).get('sealed_relay_connections{state="authenticated"}'),
    ).toBe(2);
    // Plain ws:// to a TLS relay is not a WebSocket handshake the relay accepts.
    await expect(get(`http://127.0.0.1:${relay.port}/healthz`)).rejects.toThrow();
  });

  it('refuses a certificate the client does not trust: one attempt, a clear error, no retries', async () => {
    const relay = await start(stranger);
    const client = new E2EEClient({
      url: relay.url,
      userId: 'alice',
      tls: { ca: trusted.certPem },
      reconnectDelayMs: { min: 20, max: 200 },
    });
    clients.push(client);
    const rec = new Recorder(client);
    const refused = await client.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(refused).toBeInstanceOf(E2EEError);
    expect((refused as E2EEError).code).toBe(ErrorCode.UNTRUSTED_CERTIFICATE);
    expect((refused as E2EEError).message).toMatch(
      /^The relay's TLS certificate is not trusted \((SELF_SIGNED_CERT_IN_CHAIN|DEPTH_ZERO_SELF_SIGNED_CERT|UNABLE_TO_VERIFY_LEAF_SIGNATURE): .*option tls\.ca/,
    );
    // With reconnects every 20-200 ms, a retry loop would have made several attempts by now.
    await new Promise((r) => setTimeout(r, 1500));
    expect(rec.all('reconnecting')).toEqual([]);
    expect(client.connected).toBe(false);
    const seen = await scrape(relay.url, stranger.certPem);
    expect(seen.get('sealed_relay_tls_handshake_failures_total')).toBe(1);
    expect(seen.get('sealed_relay_connections_opened_total')).toBe(0);

    // Without tls.ca the system's authorities decide, and none of them signed it either.
    const plain = new E2EEClient({ url: relay.url, userId: 'bob', reconnectDelayMs: { min: 20, max: 200 } });
    clients.push(plain);
    await expect(plain.connect()).rejects.toMatchObject({ code: ErrorCode.UNTRUSTED_CERTIFICATE });
  });

  it('takes a renewed certificate on reloadTls() without dropping anyone; a broken pair keeps the old one', async () => {
    const certFile = join(dir, 'live.crt');
    const keyFile = join(dir, 'live.key');
    copyFileSync(trusted.certFile, certFile);
    copyFileSync(trusted.keyFile, keyFile);
    const relay = await startRelay({ tlsCert: certFile, tlsKey: keyFile });
    relays.push(relay);
    const alice = await connectClient(relay.url, 'alice', { tls: { ca: trusted.certPem } });
    clients.push(alice.client);
    expect(await presented(relay)).toBe(fingerprint(trusted));

    copyFileSync(stranger.certFile, certFile);
    copyFileSync(stranger.keyFile, keyFile);
    relay.reloadTls();
    expect(await presented(relay)).toBe(fingerprint(stranger));
    const bob = await connectClient(relay.url, 'bob', { tls: { ca: stranger.certPem } });
    clients.push(bob.client);
    await bob.client.sendDirectMessage('alice', 'after the renewal');
    expect((await alice.rec.wait('message')).text).toBe('after the renewal');
    expect(alice.rec.all('disconnect')).toEqual([]);

    copyFileSync(trusted.keyFile, keyFile); // the old key with the new certificate: not a pair
    expect(() => relay.reloadTls()).toThrow(/are not a usable pair/);
    expect(await presented(relay)).toBe(fingerprint(stranger));
  });

  it('names a missing or mismatched certificate file at start; the client checks its tls option', async () => {
    await expect(startRelay({ tlsCert: join(dir, 'missing.crt'), tlsKey: trusted.keyFile })).rejects.toThrow(
      `Cannot read the TLS certificate ${join(dir, 'missing.crt')}`,
    );
    await expect(startRelay({ tlsCert: trusted.certFile, tlsKey: stranger.keyFile })).rejects.toThrow(
      `The TLS certificate ${trusted.certFile} and key ${stranger.keyFile} are not a usable pair`,
    );
    await expect(startRelay({ tlsCert: trusted.certFile })).rejects.toThrow(
      'tlsCert needs tlsKey: TLS takes both a certificate and its key',
    );
    const plain = await startRelay();
    relays.push(plain);
    // The client has no switch that turns verification off; a wrong `ca` is refused when it is made.
    const url = 'wss://127.0.0.1:1';
    expect(() => new E2EEClient({ url, userId: 'a', tls: { rejectUnauthorized: false } as never })).toThrow(
      'unknown option "tls.rejectUnauthorized"',
    );
    expect(() => new E2EEClient({ url, userId: 'a', tls: { ca: 5 as never } })).toThrow(TypeError);
    expect(plain.url).toMatch(/^ws:\/\//);
    expect(() => plain.reloadTls()).toThrow(TypeError);
  });
});

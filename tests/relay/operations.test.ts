/**
 * What an operator sees of a running relay (issue 9, Operations): Prometheus metrics that add up with
 * what clients did, readable from this computer only unless opened; a health endpoint a load balancer
 * can follow through a shutdown; log records with fields, one per connection event. And what nobody
 * sees there: message content, keys, user or group ids.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Identity, encodePublicIdentity } from '../../src-main/core/crypto/identity.js';
import { b64 } from '../../src-main/core/protocol/wire.js';
import { isLoopback } from '../../src-main/relay/http.js';
import { startRelay, type LogRecord, type Relay, type RelayOptions } from '../../src-main/relay/index.js';
import { get, relayHttpUrl, scrape } from './http-get.js';
import { RawClient, TestGroup, body, msgId } from './raw-client.js';

const relays: Relay[] = [];
const dirs: string[] = [];
afterEach(async () => {
  await Promise.all(relays.splice(0).map((r) => r.close()));
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

const start = async (options: RelayOptions = {}): Promise<Relay> => {
  const relay = await startRelay(options);
  relays.push(relay);
  return relay;
};
const dataDir = (): string => {
  const d = mkdtempSync(join(tmpdir(), 'sealed-ops-'));
  dirs.push(d);
  return d;
};

/** Polls the metrics until `done` holds for them (durable acknowledgements arrive a commit later). */
async function scrapeUntil(
  relay: Relay,
  done: (m: Map<string, number>) => boolean,
  timeoutMs = 10_000,
): Promise<Map<string, number>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = await scrape(relay.url);
    if (done(m)) return m;
    if (Date.now() > deadline) throw new Error(`metrics never got there:\n${[...m].join('\n')}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe('GET /metrics', () => {
  it('adds up with what the clients did, and names no user, group, key or content', async () => {
    const relay = await start({ dataDir: dataDir() });
    const alice = Identity.generate();
    const a = await RawClient.connect(relay.url, 'alice', alice);
    const b = await RawClient.connect(relay.url, 'bob');
    await (await RawClient.connect(relay.url, 'carol')).close(); // registered, then offline

    const sent: string[] = [];
    const send = async (to: string, text: string): Promise<void> => {
      const b64Body = body(text);
      const id = msgId();
      sent.push(b64Body, id);
      expect(await a.request({ t: 'send', to, id, body: b64Body })).toMatchObject({ t: 'ack' });
    };
    for (let i = 0; i < 3; i++) await send('bob', `secret for bob ${i}`);
    await send('carol', 'secret for carol 0');
    await send('carol', 'secret for carol 1');
    await b.delivers(3); // bob acknowledges each (received)
    expect(await a.request({ t: 'send', to: 'nobody', id: msgId(), body: body('x') })).toMatchObject({
      code: 'UNKNOWN_USER',
    });
    a.send('not json');
    await a.next((f) => f.t === 'error' && f.code === 'BAD_FRAME');
    const { group, genesis } = TestGroup.create('the-secret-club', { id: 'alice', identity: alice });
    expect(await a.request({ t: 'groupAppend', group: group.name, entry: b64(genesis) })).toMatchObject({
      t: 'ok',
    });

    // Delivered: bob's three messages, and the group's first entry as an event to alice, its creator.
    const m = await scrapeUntil(relay, (x) => x.get('sealed_relay_delivery_seconds_count')! >= 4);
    expect(m.get('sealed_relay_delivery_seconds_count')).toBe(4);
    expect(m.get('sealed_relay_delivery_seconds_bucket{le="+Inf"}')).toBe(4);
    expect(m.get('sealed_relay_connections{state="authenticated"}')).toBe(2);
    expect(m.get('sealed_relay_connections{state="handshake"}')).toBe(0);
    expect(m.get('sealed_relay_connections_opened_total')).toBe(3);
    expect(m.get('sealed_relay_users')).toBe(3);
    expect(m.get('sealed_relay_groups')).toBe(1);
    expect(m.get('sealed_relay_routed_total{kind="direct"}')).toBe(5);
    expect(m.get('sealed_relay_routed_total{kind="event"}')).toBe(1);
    expect(m.get('sealed_relay_routed_total{kind="group"}')).toBe(0);
    // Carol's two messages wait for her, with their ciphertext as the relay stores it.
    expect(m.get('sealed_relay_queue_items')).toBe(2);
    expect(m.get('sealed_relay_queue_bytes')).toBe(
      body('secret for carol 0').length + body('secret for carol 1').length,
    );
    expect(m.get('sealed_relay_refusals_total{code="UNKNOWN_USER"}')).toBe(1);
    expect(m.get('sealed_relay_refusals_total{code="BAD_FRAME"}')).toBe(1);
    expect(m.get('sealed_relay_refusals_total{code="QUOTA"}')).toBe(0);
    expect(m.get('sealed_relay_request_seconds_count{type="send"}')).toBe(6);
    expect(m.get('sealed_relay_request_seconds_count{type="groupAppend"}')).toBe(1);
    expect(m.get('sealed_relay_request_seconds_count{type="getBundle"}')).toBe(0);
    // Every reply waited for an fsync, which takes time: the latencies are real measurements.
    expect(m.get('sealed_relay_request_seconds_sum{type="send"}')).toBeGreaterThan(0);
    expect(m.get('sealed_relay_connections_closed_by_relay_total{reason="slow consumer"}')).toBe(0);

    const text = (await get(relayHttpUrl(relay.url, '/metrics'))).body;
    for (const secret of ['alice', 'bob', 'carol', 'nobody', 'the-secret-club', ...sent])
      expect(text).not.toContain(secret);
    expect(text).not.toContain(b64(encodePublicIdentity(alice.publicIdentity)).slice(0, 40));
    await Promise.all([a.close(), b.close()]);
  });

  it('is served to this computer only by default: not through a proxy, not when off', async () => {
    const relay = await start();
    const url = relayHttpUrl(relay.url, '/metrics');
    const direct = await get(url);
    expect(direct.status).toBe(200);
    expect(direct.headers['content-type']).toBe('text/plain; version=0.0.4; charset=utf-8');
    // A reverse proxy on the same computer connects from loopback as well; its headers give it away.
    for (const header of ['X-Forwarded-For', 'Forwarded', 'X-Real-IP']) {
      const proxied = await get(url, { headers: { [header]: '203.0.113.7' } });
      expect(proxied.status, header).toBe(403);
      expect(proxied.body).toBe(
        'Metrics are not served through a proxy: scrape the relay itself on 127.0.0.1.\n',
      );
    }
    const open = await start({ metrics: 'open' });
    expect(
      (await get(relayHttpUrl(open.url, '/metrics'), { headers: { 'X-Forwarded-For': '1.2.3.4' } })).status,
    ).toBe(200);
    const off = await start({ metrics: false });
    expect(await get(relayHttpUrl(off.url, '/metrics'))).toMatchObject({
      status: 404,
      body: 'This relay does not serve metrics.\n',
    });
    expect((await get(relayHttpUrl(off.url, '/healthz'))).status).toBe(200);

    // Who counts as this computer (the peer address the relay's socket reports).
    for (const address of ['127.0.0.1', '127.8.9.10', '::1', '::ffff:127.0.0.1'])
      expect(isLoopback(address), address).toBe(true);
    for (const address of [
      '192.168.1.20',
      '10.0.0.1',
      'fd00::2',
      'fe80::1',
      '::ffff:192.168.1.20',
      '::',
      '',
      'x',
    ])
      expect(isLoopback(address), address).toBe(false);
    expect(isLoopback(undefined)).toBe(false);
  });

  it('adds the process metrics when asked, once per process however many relays ask', async () => {
    const one = await start({ processMetrics: true });
    const two = await start({ processMetrics: true });
    for (const relay of [one, two]) {
      const m = await scrape(relay.url);
      expect(m.get('process_cpu_seconds_total')).toBeGreaterThan(0);
      expect(m.has('nodejs_eventloop_lag_seconds')).toBe(true);
      expect(m.has('sealed_relay_users')).toBe(true);
    }
    expect((await scrape((await start()).url)).has('process_cpu_seconds_total')).toBe(false);
  });
});

describe('GET /healthz', () => {
  it('says ok while the relay serves and stopping once it shuts down; other requests get 426 or 405', async () => {
    const relay = await start();
    const url = relayHttpUrl(relay.url, '/healthz');
    const ok = await get(url);
    expect(ok.status).toBe(200);
    expect(ok.headers['content-type']).toBe('application/json');
    expect(JSON.parse(ok.body)).toEqual({ status: 'ok', checks: { storage: { status: 'ok' } } });
    expect(await get(url, { method: 'HEAD' })).toMatchObject({ status: 200, body: '' });
    expect(await get(url, { method: 'POST' })).toMatchObject({
      status: 405,
      headers: { allow: 'GET, HEAD' },
    });
    expect(await get(relayHttpUrl(relay.url, '/'))).toMatchObject({
      status: 426,
      body: 'This is a Sealed relay: connect with a WebSocket.\n',
    });

    // A client that never answers the close handshake holds the shutdown for its grace period (1 s).
    const stuck = await upgradedSocketThatNeverReads(relay.port);
    const closing = relay.close();
    const stopping = await get(url);
    expect(stopping.status).toBe(503);
    expect(JSON.parse(stopping.body)).toEqual({ status: 'stopping', checks: { storage: { status: 'ok' } } });
    await closing;
    stuck.destroy();
  });
});

describe('log', () => {
  it('one record per connection event, with fields, and no ids, keys or content', async () => {
    const records: LogRecord[] = [];
    const lines: string[] = [];
    const relay = await start({
      log: (line, record) => {
        lines.push(line);
        records.push(record);
      },
    });
    const alice = Identity.generate();
    const a = await RawClient.connect(relay.url, 'alice', alice);
    const b = await RawClient.connect(relay.url, 'bob');
    const secret = body('the launch code is 0000');
    expect(await a.request({ t: 'send', to: 'bob', id: msgId(), body: secret })).toMatchObject({ t: 'ack' });
    await b.delivers(1);
    const impostor = await RawClient.open(relay.url);
    expect(await impostor.handshake('alice', Identity.generate())).toMatchObject({ code: 'AUTH_FAILED' });
    await impostor.closed;
    await a.close();
    await b.close();
    await relay.close();

    expect(lines).toEqual(records.map((r) => r.msg));
    const events = records.map((r) => r.event);
    expect(events[0]).toBe('listening');
    expect(events.at(-1)).toBe('closed');
    expect(records[0]).toMatchObject({ level: 'info', url: relay.url, metrics: 'loopback' });
    expect(records.filter((r) => r.event === 'connect')).toEqual([
      { level: 'info', event: 'connect', msg: 'connect #1 from 127.0.0.1', conn: '#1', ip: '127.0.0.1' },
      { level: 'info', event: 'connect', msg: 'connect #2 from 127.0.0.1', conn: '#2', ip: '127.0.0.1' },
      { level: 'info', event: 'connect', msg: 'connect #3 from 127.0.0.1', conn: '#3', ip: '127.0.0.1' },
    ]);
    expect(records.filter((r) => r.event === 'registered')).toEqual([
      { level: 'info', event: 'registered', msg: 'registered #1', conn: '#1', users: 1 },
      { level: 'info', event: 'registered', msg: 'registered #2', conn: '#2', users: 2 },
    ]);
    expect(records.find((r) => r.event === 'authenticated' && r.conn === '#2')).toMatchObject({ online: 2 });
    expect(records.find((r) => r.event === 'auth_failed')).toEqual({
      level: 'warn',
      event: 'auth_failed',
      msg: '#3 authentication failed',
      conn: '#3',
    });
    expect(records.filter((r) => r.event === 'close').map((r) => [r.conn, r.code])).toEqual(
      expect.arrayContaining([
        ['#3', 1008],
        ['#1', 1005],
        ['#2', 1005],
      ]),
    );
    const everything = JSON.stringify(records);
    for (const secretText of ['alice', 'bob', secret, b64(encodePublicIdentity(alice.publicIdentity))])
      expect(everything).not.toContain(secretText);
  });

  it('a logger that throws does not break the relay', async () => {
    const relay = await start({
      log: () => {
        throw new Error('the log pipe is closed');
      },
    });
    const a = await RawClient.connect(relay.url, 'alice');
    const b = await RawClient.connect(relay.url, 'bob');
    expect(await a.request({ t: 'send', to: 'bob', id: msgId(), body: body('hi') })).toMatchObject({
      t: 'ack',
    });
    await b.delivers(1);
    await Promise.all([a.close(), b.close()]);
  });
});

describe('options', () => {
  it('refuses contradictory or mistyped TLS and metrics options at start', async () => {
    await expect(startRelay({ tlsKey: '/x.key' })).rejects.toThrow('tlsKey needs tlsCert');
    await expect(startRelay({ tlsCert: '', tlsKey: '/x.key' })).rejects.toThrow(
      'tlsCert must be the path of a PEM file',
    );
    await expect(startRelay({ metrics: 'yes' as never })).rejects.toThrow(
      `metrics must be 'loopback', 'open' or false, not "yes"`,
    );
    await expect(startRelay({ processMetrics: 1 as never })).rejects.toThrow(TypeError);
  });
});

/** A TCP connection that completes the WebSocket upgrade and then reads nothing more. */
function upgradedSocketThatNeverReads(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect(port, '127.0.0.1', () => {
      socket.write(
        [
          'GET / HTTP/1.1',
          `Host: 127.0.0.1:${port}`,
          'Upgrade: websocket',
          'Connection: Upgrade',
          `Sec-WebSocket-Key: ${Buffer.from('sixteen byte key').toString('base64')}`,
          'Sec-WebSocket-Version: 13',
          '',
          '',
        ].join('\r\n'),
      );
    });
    socket.once('data', (head) => {
      if (!head.toString().startsWith('HTTP/1.1 101')) reject(new Error(`not upgraded: ${head.toString()}`));
      socket.pause(); // the relay's close frame stays unread, so no close comes back
      resolve(socket);
    });
    socket.once('error', reject);
  });
}

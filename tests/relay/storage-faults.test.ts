/**
 * Storage faults (issue 11) on a real small file system: a tmpfs the test mounts, which needs root (CI
 * runs as root; elsewhere the suite is skipped with the reason printed, as tests/services/lan-netns
 * does for network namespaces). Damaged databases need no mount and always run.
 *
 * - a full disk is a state: senders are refused with STORAGE_UNAVAILABLE within a second, logins and
 *   registrations with 1013, /healthz fails its `storage` check and the metrics say so; once the disk
 *   has room again the relay recovers by itself and every acknowledged and every kept message arrives
 *   exactly once, in order;
 * - a read-only data directory, a truncated database and a garbage WAL stop the start with a sentence
 *   naming the file, and nothing is created over them.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { afterEach, describe, expect, it } from 'vitest';
import { E2EEClient } from '../../src-main/core/index.js';
import { Identity } from '../../src-main/core/crypto/identity.js';
import { StorageStartError, startRelay, type LogRecord, type Relay } from '../../src-main/relay/index.js';
import { SqliteDeliveryQueue } from '../../src-main/relay/queue/sqlite.js';
import { fillDisk } from '../fill-disk.js';
import { get, relayHttpUrl, scrape } from './http-get.js';
import { RawClient, body, msgId } from './raw-client.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const FAST = { framesPerSecond: 1e9, burst: 1e9 };
const quiet = (): void => {};

/** Why a tmpfs cannot be mounted here, or null when it can. */
function tmpfsRefusal(): string | null {
  if (process.getuid?.() !== 0) return 'mounting a tmpfs needs root (CI runs as root)';
  const dir = mkdtempSync(join(tmpdir(), 'tmpfs-probe-'));
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', 'size=1m', 'tmpfs', dir], { stdio: 'pipe' });
    execFileSync('umount', [dir], { stdio: 'pipe' });
    return null;
  } catch (e) {
    return `mount -t tmpfs failed: ${String((e as { stderr?: Buffer }).stderr ?? e).trim()}`;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const refusal = tmpfsRefusal();
if (refusal) console.log(`storage-faults: tmpfs tests skipped: ${refusal}`);

const mounts: string[] = [];
const dirs: string[] = [];
const relays: Relay[] = [];
const clients: E2EEClient[] = [];

afterEach(async () => {
  await Promise.all(clients.splice(0).map((c) => c.close()));
  await Promise.all(relays.splice(0).map((r) => r.close()));
  for (const m of mounts.splice(0)) execFileSync('umount', ['-l', m]);
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
});

function tempDir(prefix: string): string {
  const d = mkdtempSync(join(tmpdir(), prefix));
  dirs.push(d);
  return d;
}

/** A tmpfs of `size` (mount's syntax: 4m) on a fresh directory. */
function mountTmpfs(size: string): string {
  const dir = tempDir('relay-tmpfs-');
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'tmpfs', dir]);
  mounts.push(dir);
  return dir;
}

const remount = (dir: string, options: string): void => {
  execFileSync('mount', ['-o', `remount,${options}`, dir]);
};

async function start(dataDir: string, records: LogRecord[] = []): Promise<Relay> {
  const relay = await startRelay({
    dataDir,
    rateLimit: FAST,
    storageProbeIntervalMs: 100,
    log: (_line, record) => records.push(record),
  });
  relays.push(relay);
  return relay;
}

function client(relay: Relay, userId: string): E2EEClient {
  const c = new E2EEClient({ url: relay.url, userId, reconnectDelayMs: { min: 20, max: 200 } });
  c.on('error', () => {});
  clients.push(c);
  return c;
}

async function until(test: () => boolean | Promise<boolean>, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await test())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

describe.skipIf(refusal !== null).sequential('storage faults on a small tmpfs', () => {
  it('a full disk during offline delivery: refused within a second, kept, and delivered once in order after the disk grows', async () => {
    const mnt = mountTmpfs('4m');
    const records: LogRecord[] = [];
    const relay = await start(join(mnt, 'data'), records);
    const bob = client(relay, 'bob');
    await bob.connect();
    await bob.close();
    const alice = client(relay, 'alice');
    await alice.connect();
    const rita = await RawClient.connect(relay.url, 'rita');
    const sentLater: string[] = [];
    alice.on('ack', (a: { id: string }) => sentLater.push(a.id));
    const aliceClosed: { code: number; reason: string }[] = [];
    alice.on('disconnect', (d: { code: number; reason: string }) => aliceClosed.push(d));

    const text = (i: number): string => `${String(i).padStart(4, '0')} ${'x'.repeat(60_000)}`;
    const acked: string[] = [];
    const kept: string[] = [];
    for (let i = 0; i < 200 && kept.length < 3; i++) {
      const id = `msg-${String(i).padStart(4, '0')}`;
      const started = performance.now();
      try {
        await alice.sendDirectMessage('bob', text(i), { id });
        acked.push(id);
      } catch (e) {
        expect(e).toMatchObject({ relayCode: 'STORAGE_UNAVAILABLE' });
        expect((e as Error).message).toBe(
          'The relay is out of storage; your message is kept and will be retried.',
        );
        expect(performance.now() - started).toBeLessThan(1000);
        kept.push(id);
      }
    }
    expect(acked.length).toBeGreaterThan(10);
    expect(kept.length).toBe(3);

    // The state is visible outside: health and metrics.
    const health = await get(relayHttpUrl(relay.url, '/healthz'));
    expect(health.status).toBe(503);
    const report = JSON.parse(health.body) as { checks: Record<string, { status: string; reason?: string }> };
    expect(report.checks['storage']).toMatchObject({ status: 'failing' });
    expect(report.checks['storage']!.reason).toMatch(/disk is full/);
    const metrics = await scrape(relay.url);
    expect(metrics.get('sealed_relay_storage_available')).toBe(0);
    expect(metrics.get('sealed_relay_storage_failures_total')).toBeGreaterThanOrEqual(1);
    expect(metrics.get('sealed_relay_health{check="storage"}')).toBe(0);

    // Other writes are refused too (a bundle fetch takes a one-time prekey); reads still answer.
    expect(await rita.request({ t: 'getBundle', userId: 'bob' })).toMatchObject({
      t: 'error',
      code: 'STORAGE_UNAVAILABLE',
    });
    expect(await rita.request({ t: 'groupLog', group: 'nowhere', from: 0, limit: 10 })).toMatchObject({
      t: 'error',
      code: 'UNKNOWN_GROUP',
    });

    // A login meanwhile: refused with 1013 and the reason, not 1011 in a loop.
    const carol = await RawClient.open(relay.url);
    const answer = await carol.handshake('carol', Identity.generate());
    expect(answer).toMatchObject({
      t: 'error',
      code: 'STORAGE_UNAVAILABLE',
      message: 'The relay is out of storage (the disk is full); try again later.',
    });
    expect((await carol.closed).code).toBe(1013);
    expect(carol.closeInfo!.reason).toBe('storage unavailable');

    // Room again, without a restart: the relay recovers by itself and alice's kept messages go out.
    remount(mnt, 'size=64m');
    await until(async () => (await get(relayHttpUrl(relay.url, '/healthz'))).status === 200, 5000, 'health');
    await until(() => kept.every((id) => sentLater.includes(id)), 10_000, 'the kept messages to be sent');
    expect((await scrape(relay.url)).get('sealed_relay_storage_available')).toBe(1);

    const received: string[] = [];
    bob.on('message', (m: { id: string }) => received.push(m.id));
    await bob.connect();
    const all = [...acked, ...kept];
    await until(() => received.length >= all.length, 15_000, 'bob to receive everything');
    await new Promise((r) => setTimeout(r, 300)); // nothing more comes
    expect(received).toEqual(all);

    // Once storage was back, the relay closed alice's refused connection so that she sent again.
    expect(aliceClosed).toEqual([{ code: 1013, reason: 'storage available again' }]);
    // The state was logged once each way; no connection was closed with 1011.
    const events = records.map((r) => r.event);
    expect(events.filter((e) => e === 'storage_recovered')).toHaveLength(1);
    expect(records.filter((r) => r.event === 'storage_unavailable' && r.level === 'error')).toHaveLength(1);
    expect(records.filter((r) => r.event === 'close' && r.code === 1011)).toEqual([]);
  }, 60_000);

  it('a full disk during registration: 1013 with the reason, and registration works once there is room', async () => {
    const mnt = mountTmpfs('4m');
    const relay = await start(join(mnt, 'data'));
    await (await RawClient.connect(relay.url, 'alice')).close();
    const filler = fillDisk(mnt);

    const dave = Identity.generate();
    const first = await RawClient.open(relay.url);
    expect(await first.handshake('dave', dave)).toMatchObject({ t: 'error', code: 'STORAGE_UNAVAILABLE' });
    expect(await first.closed).toEqual({ code: 1013, reason: 'storage unavailable' });
    expect((await get(relayHttpUrl(relay.url, '/healthz'))).status).toBe(503);

    // An app registering meanwhile is told why, and keeps trying with its backoff.
    const erin = client(relay, 'erin');
    const refusals: Error[] = [];
    erin.on('error', (e: Error) => refusals.push(e));
    const erinReady = erin.connect();
    await until(() => refusals.length > 0, 5000, "erin's refusal");
    expect(refusals[0]).toMatchObject({ relayCode: 'STORAGE_UNAVAILABLE' });

    rmSync(filler);
    await until(async () => (await get(relayHttpUrl(relay.url, '/healthz'))).status === 200, 5000, 'health');
    const again = await RawClient.connect(relay.url, 'dave', dave);
    expect(again.ready).toMatchObject({ registered: true });
    await again.close();
    await erinReady; // registered by itself once there was room
    expect(erin.connected).toBe(true);
  }, 30_000);

  it('an account deletion that cannot be stored is refused and changes nothing: nobody is told, the account works once there is room', async () => {
    const mnt = mountTmpfs('4m');
    const relay = await start(join(mnt, 'data'));
    const bobIdentity = Identity.generate();
    const alice = await RawClient.connect(relay.url, 'alice');
    // Bob does not acknowledge what he gets: no write of his races the deletion's.
    const bob = await RawClient.connect(relay.url, 'bob', bobIdentity, { autoReceive: false });
    expect(await alice.request({ t: 'send', to: 'bob', id: msgId(), body: body('before') })).toMatchObject({
      t: 'ack',
    });
    await bob.next((f) => f.t === 'deliver');

    const filler = fillDisk(mnt);
    const refusedDeletion = await bob.deleteAccount();
    expect(refusedDeletion).toMatchObject({ t: 'error', code: 'STORAGE_UNAVAILABLE' });
    expect(await bob.closed).toEqual({ code: 1013, reason: 'storage unavailable' });
    rmSync(filler);
    await until(async () => (await get(relayHttpUrl(relay.url, '/healthz'))).status === 200, 5000, 'health');

    // Nobody heard of a deletion, and bob is who he was: same identity, reachable, his bundle served.
    expect(
      alice.pending().filter((f) => f.t === 'event' && JSON.stringify(f).includes('userDeleted')),
    ).toEqual([]);
    // Bob is who he was: the same identity logs in, his unacknowledged mail is still there, he is reachable.
    const again = await RawClient.connect(relay.url, 'bob', bobIdentity);
    expect(again.ready).toMatchObject({ registered: false });
    expect(await again.next((f) => f.t === 'deliver')).toMatchObject({ body: body('before') });
    expect(await alice.request({ t: 'send', to: 'bob', id: msgId(), body: body('after') })).toMatchObject({
      t: 'ack',
    });
    expect(await again.next((f) => f.t === 'deliver')).toMatchObject({ body: body('after') });
    await again.close();
    await alice.close();
  }, 30_000);

  it('a read-only data directory stops the start with a sentence naming it', async () => {
    const mnt = mountTmpfs('4m');
    const data = join(mnt, 'data');
    mkdirSync(data);
    remount(mnt, 'ro');
    const err = await startRelay({ dataDir: data, log: quiet }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StorageStartError);
    expect((err as Error).message).toContain(`The data directory ${data} is on a read-only file system`);
  });

  it('the relay command prints the sentence and exits non-zero, without a stack trace', async () => {
    const mnt = mountTmpfs('4m');
    const data = join(mnt, 'data');
    mkdirSync(data);
    remount(mnt, 'ro');
    const { code, stderr } = await runRelayCli(['--data', data, '--port', '0']);
    expect(code).toBe(1);
    expect(stderr).toContain(`! The data directory ${data} is on a read-only file system`);
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});

describe('damaged databases at start', () => {
  /** A relay's data directory with a registered user and queued messages, closed cleanly. */
  async function dataWithMail(): Promise<string> {
    const data = join(tempDir('relay-damaged-'), 'data');
    const relay = await startRelay({ dataDir: data, rateLimit: FAST, log: quiet });
    const bobId = Identity.generate();
    await (await RawClient.connect(relay.url, 'bob', bobId)).close();
    const alice = await RawClient.connect(relay.url, 'alice');
    for (let i = 0; i < 100; i++) {
      alice.fire({ t: 'send', to: 'bob', id: msgId(), body: body('y'.repeat(4000)) });
      expect((await alice.next((f) => f.t === 'ack' || f.t === 'error')).t).toBe('ack');
    }
    await alice.close();
    await relay.close();
    // Accounts enough to span many pages of relay.sqlite too.
    const db = new Database(join(data, 'relay.sqlite'));
    const insert = db.prepare('INSERT INTO users (id, identity, created) VALUES (?, ?, 0)');
    db.transaction(() => {
      for (let i = 0; i < 3000; i++) insert.run(`user-${i}`, randomBytes(200));
    })();
    db.close();
    return data;
  }

  const digest = (file: string): string => createHash('sha256').update(readFileSync(file)).digest('hex');

  async function refused(data: string): Promise<StorageStartError> {
    const err = await startRelay({ dataDir: data, log: quiet }).then(
      (r) => {
        relays.push(r);
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(StorageStartError);
    return err as StorageStartError;
  }

  for (const name of ['relay.sqlite', 'queue.sqlite']) {
    it(`a truncated ${name} refuses to start, names the file and the recovery, and stays as it was`, async () => {
      const data = await dataWithMail();
      const file = join(data, name);
      truncateSync(file, Math.floor(statSync(file).size / 2));
      const before = digest(file);
      const err = await refused(data);
      expect(err.message).toContain(`The database ${file} is damaged`);
      expect(err.message).toContain(`sqlite3 ${file} .recover > dump.sql`);
      expect(err.message).toMatch(/restore .* from a backup/);
      expect(digest(file)).toBe(before); // no fresh database over it
    });

    it(`${name} truncated to nothing refuses to start instead of starting afresh`, async () => {
      const data = await dataWithMail();
      const file = join(data, name);
      truncateSync(file, 0);
      const err = await refused(data);
      expect(err.message).toContain(`The database ${file} is empty (0 bytes)`);
      expect(err.message).toContain('Restore');
      expect(statSync(file).size).toBe(0);
    });

    it(`a garbage WAL beside ${name} refuses to start and stays as it was`, async () => {
      const data = await dataWithMail();
      const file = join(data, name);
      const wal = `${file}-wal`;
      writeFileSync(wal, randomBytes(8192));
      const before = digest(wal);
      const dbBefore = digest(file);
      const err = await refused(data);
      expect(err.message).toContain(`The write-ahead log ${wal} of the database ${file} is damaged`);
      expect(err.message).toContain('.recover');
      expect(digest(wal)).toBe(before);
      expect(digest(file)).toBe(dbBefore);
    });
  }

  it('garbage in place of relay.sqlite refuses to start', async () => {
    const data = await dataWithMail();
    const file = join(data, 'relay.sqlite');
    writeFileSync(file, randomBytes(64 * 1024));
    const before = digest(file);
    const err = await refused(data);
    expect(err.message).toContain(`The database ${file} is damaged (file is not a database)`);
    expect(digest(file)).toBe(before);
  });

  it('the relay command prints the damaged file and the recovery step, exit code 1', async () => {
    const data = await dataWithMail();
    const file = join(data, 'relay.sqlite');
    truncateSync(file, Math.floor(statSync(file).size / 2));
    const { code, stderr } = await runRelayCli(['--data', data, '--port', '0']);
    expect(code).toBe(1);
    expect(stderr).toContain(`! The database ${file} is damaged`);
    expect(stderr).toContain('.recover');
    expect(stderr).not.toMatch(/\n\s+at /);
  });
});

describe('the queue after a failed batch', () => {
  it('a failure that is not a storage fault fails its batch only; later batches commit', async () => {
    const queue = await SqliteDeliveryQueue.open(join(tempDir('relay-queue-'), 'queue.sqlite'), () => {});
    const durable = (): Promise<unknown> => new Promise((resolve) => queue.afterDurable(resolve));
    const item = (seq: number): Parameters<typeof queue.enqueue>[0] => ({
      seq,
      recipient: 'bob',
      kind: 'direct',
      from: 'alice',
      id: `id-${seq}`,
      body: 'Ym9keQ==',
      ts: 0,
    });
    queue.enqueue(item(1));
    expect(await durable()).toBeUndefined();
    queue.enqueue(item(1)); // the same seq again: a constraint error, not a full disk
    expect(await durable()).toMatchObject({ code: 'SQLITE_CONSTRAINT_PRIMARYKEY' });
    queue.enqueue(item(2));
    expect(await durable()).toBeUndefined();
    expect((await queue.page('bob', 0, 10)).map((i) => i.seq)).toEqual([1, 2]);
    await queue.close();
  });
});

/** `npm run relay`'s program, with `args`; resolves when it exits (it must, refusing to start). */
function runRelayCli(args: string[]): Promise<{ code: number | null; stderr: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'src-main/relay/cli.ts', ...args], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stderr = '';
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  child.stdout.resume();
  const timer = setTimeout(() => child.kill('SIGKILL'), 20_000);
  return new Promise((resolve) =>
    child.once('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stderr });
    }),
  );
}

/**
 * `npm run relay` in a terminal (issues 7 and 9): it logs JSON lines (the first says where it listens),
 * --help lists every option with its default, wrong options and a busy port are explained in a
 * sentence, Ctrl-C closes it; with --tls-cert and --tls-key it serves wss://, which a chat trusting the
 * certificate uses and a chat that does not refuses once, and SIGHUP reloads the certificate.
 */
import { mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { DEFAULT_OPTIONS } from '../../src-main/relay/options.js';
import { selfSigned } from '../relay/certificates.js';
import { scrape } from '../relay/http-get.js';
import { CliFixture } from './helpers.js';
import { npmRun, type TtySession } from './tty.js';

const fx = new CliFixture();
afterAll(() => fx.cleanup());

const USAGE =
  'usage: npm run relay -- [--host ADDR] [--port N] [--data DIR | --memory] [--tls-cert FILE --tls-key FILE] [--metrics WHO] [--log-level LEVEL]';

/** One line of the relay's log. */
interface LogLine {
  level: string;
  time: string;
  pid: number;
  event: string;
  msg: string;
  [field: string]: unknown;
}

/** The JSON lines the relay wrote so far (npm's own lines and stderr sentences left out). */
const logLines = (relay: TtySession): LogLine[] =>
  relay.lines.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l) as LogLine);

/** Waits for the relay's first log line with `event` and returns it. */
async function logged(relay: TtySession, event: string): Promise<LogLine> {
  await relay.waitFor(`"event":"${event}"`);
  return logLines(relay).find((l) => l.event === event)!;
}

describe('npm run relay', () => {
  it('logs JSON lines: where it listens, each connection without naming the user; closes on Ctrl-C', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sealed-relay-cli-'));
    try {
      const data = path.join(dir, 'data');
      const relay = npmRun('relay', ['--port', '0', '--data', data]);
      const listening = await logged(relay, 'listening');
      expect(listening).toEqual({
        level: 'info',
        time: expect.stringMatching(/^\d{4}-\d\d-\d\dT[\d:.]+Z$/),
        pid: expect.any(Number),
        event: 'listening',
        url: expect.stringMatching(/^ws:\/\/127\.0\.0\.1:\d+$/),
        dataDir: data,
        metrics: 'loopback',
        msg: `relay listening on ${listening.url as string} with data in ${data}`,
      });
      expect(logLines(relay).filter((l) => l.event === 'listening')).toHaveLength(1);
      const url = listening.url as string;
      // The key's fingerprint, for the operator to give to users (issue 8).
      expect((await logged(relay, 'relay_key')).msg).toMatch(/^relay key fingerprint (\d{5} ){5}\d{5}$/);

      await fx.connected(url, 'erin');
      const authenticated = await logged(relay, 'authenticated');
      expect(authenticated).toMatchObject({ level: 'info', conn: '#1', online: 1, msg: 'authenticated #1' });
      expect(readdirSync(data).length).toBeGreaterThan(0);
      // The process metrics are on, for this computer.
      const metrics = await scrape(url);
      expect(metrics.get('sealed_relay_users')).toBe(1);
      expect(metrics.get('process_cpu_seconds_total')).toBeGreaterThan(0);

      relay.write('\x03');
      await relay.waitFor('"msg":"SIGINT: closing"');
      await relay.waitFor('"msg":"relay closed"');
      // The relay closed cleanly (above); npm reports a script ended by Ctrl-C as 128 + SIGINT.
      expect(await relay.exited).toBe(130);
      expect(logLines(relay).map((l) => l.event)).toEqual(
        expect.arrayContaining(['listening', 'connect', 'registered', 'authenticated', 'signal', 'closed']),
      );
      expect(relay.screen).not.toContain('erin');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('--help lists every option with its default', async () => {
    const run = npmRun('relay', ['--help']);
    expect(await run.exited).toBe(0);
    const help = run.screen;
    expect(help).toContain(USAGE);
    expect(help).toMatch(/--host ADDR\s+interface to listen on; 0\.0\.0\.0 .*\(default: 127\.0\.0\.1\)/);
    expect(help).toMatch(/--port N\s+TCP port; 0 picks a free one \(default: 8787\)/);
    expect(help).toMatch(/--data DIR\s+folder of the relay database.*\(default: \.\/relay-data\)/);
    expect(help).toMatch(/--memory\s+keep everything in memory instead of --data/);
    expect(help).toMatch(
      /--tls-cert FILE\s+serve wss:\/\/ with this certificate chain .*\(default: none: plain ws:\/\/\)/,
    );
    expect(help).toMatch(/--tls-key FILE\s+the private key of --tls-cert \(PEM\) \(default: none\)/);
    expect(help).toMatch(
      /--metrics WHO\s+who may read Prometheus metrics at \/metrics: .*\(default: loopback\)/,
    );
    expect(help).toMatch(/--log-level LEVEL\s+least severe events logged .*\(default: info\)/);
    expect(help).toMatch(/--public-url URLS\s+the address\(es\) clients use/);
    // Every quota and the frame rate (issue 9), each with the relay's default.
    const flags: [string, number][] = [
      ['frames-per-second', DEFAULT_OPTIONS.rateLimit.framesPerSecond],
      ['frame-burst', DEFAULT_OPTIONS.rateLimit.burst],
      ['group-members', DEFAULT_OPTIONS.limits.groupMembers],
      ['groups-per-user', DEFAULT_OPTIONS.limits.groupsPerUser],
      ['mailbox-items', DEFAULT_OPTIONS.limits.queuedItemsPerRecipient],
      ['mailbox-bytes', DEFAULT_OPTIONS.limits.queuedBytesPerRecipient],
      ['group-fanout-bytes', DEFAULT_OPTIONS.limits.groupFanoutBytesPerMinute],
      ['connections-per-ip', DEFAULT_OPTIONS.limits.connectionsPerIpPerMinute],
      ['registrations-per-ip', DEFAULT_OPTIONS.limits.registrationsPerIpPerMinute],
      ['bundle-requests', DEFAULT_OPTIONS.limits.bundleRequestsPerMinute],
      ['prekeys-per-target', DEFAULT_OPTIONS.limits.oneTimePreKeysPerTargetPerMinute],
      ['prekeys-per-requester', DEFAULT_OPTIONS.limits.oneTimePreKeysPerRequesterPerMinute],
    ];
    // One flag per limit option: a new limit without a flag fails here.
    expect(flags).toHaveLength(Object.keys(DEFAULT_OPTIONS.limits).length - 1 + 2);
    // The timers and the slow-consumer bound, each with the relay's default.
    flags.push(
      ['heartbeat-ms', DEFAULT_OPTIONS.heartbeatIntervalMs],
      ['handshake-timeout-ms', DEFAULT_OPTIONS.handshakeTimeoutMs],
      ['storage-probe-ms', DEFAULT_OPTIONS.storageProbeIntervalMs],
      ['max-buffered-bytes', DEFAULT_OPTIONS.maxBufferedBytes],
    );
    // Every numeric option of startRelay has its flag: a new one without a flag fails here.
    const numeric = Object.entries(DEFAULT_OPTIONS).filter(([k, v]) => typeof v === 'number' && k !== 'port');
    expect(numeric.map(([k]) => k).sort()).toEqual(
      ['handshakeTimeoutMs', 'heartbeatIntervalMs', 'maxBufferedBytes', 'storageProbeIntervalMs'].sort(),
    );
    for (const [flag, value] of flags)
      expect(help).toMatch(new RegExp(`--${flag} N\\s+.*\\(default: ${value}\\)`));
    expect(help).toMatch(
      /--limit-loopback\s+apply --connections-per-ip and --registrations-per-ip to this computer too/,
    );
    expect(help).toMatch(/-h, --help\s+show this help/);
    // The README's option table names every flag --help lists (issue 9: both list every option).
    const readme = readFileSync(path.join(import.meta.dirname, '../../README.md'), 'utf8');
    const listed = [...help.matchAll(/^\s+(?:-\w, )?--([a-z-]+)/gm)].map((m) => m[1]);
    expect(listed.length).toBeGreaterThan(20);
    for (const flag of listed.filter((f) => f !== 'help')) expect(readme).toContain(`\`--${flag}`);
  });

  it('the timer flags reach the relay: --handshake-timeout-ms 300 closes a silent connection long before the default 10 s', async () => {
    const relay = npmRun('relay', ['--port', '0', '--memory', '--handshake-timeout-ms', '300']);
    try {
      const url = (await logged(relay, 'listening')).url as string;
      const ws = new WebSocket(url);
      const opened = Date.now();
      const [code, reason] = await new Promise<[number, string]>((resolve, reject) => {
        ws.once('close', (c, r) => resolve([c, r.toString()]));
        ws.once('error', reject);
      });
      expect([code, reason]).toEqual([1008, 'handshake timeout']);
      expect(Date.now() - opened).toBeLessThan(DEFAULT_OPTIONS.handshakeTimeoutMs / 2);
    } finally {
      relay.write('\x03');
      await relay.exited;
    }
  });

  it('the limit flags reach the relay: --connections-per-ip 1 --limit-loopback refuses a second connection', async () => {
    const relay = npmRun('relay', [
      '--port',
      '0',
      '--memory',
      '--connections-per-ip',
      '1',
      '--limit-loopback',
    ]);
    try {
      const url = (await logged(relay, 'listening')).url as string;
      const status = (): Promise<number> =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(url);
          ws.once('open', () => {
            ws.close();
            resolve(101);
          });
          ws.once('unexpected-response', (_req, res) => {
            ws.terminate();
            resolve(res.statusCode ?? 0);
          });
          ws.once('error', reject);
        });
      expect(await status()).toBe(101);
      expect(await status()).toBe(429);
    } finally {
      relay.write('\x03');
      await relay.exited;
    }
  });

  it('wrong options: one sentence, the usage, exit code 2; a busy port or a missing certificate: a sentence, exit code 1', async () => {
    const busy = await fx.relay();
    const missing = path.join(fx.dir, 'missing.pem');
    const cases = [
      { args: ['--port', '80a'], says: '! --port must be a number from 0 to 65535, not "80a".', code: 2 },
      { args: ['--port', '70000'], says: '! --port must be a number from 0 to 65535, not "70000".', code: 2 },
      { args: ['--memory', '--data', 'x'], says: '! --memory and --data cannot be used together.', code: 2 },
      { args: ['--tls'], says: '! Unknown option --tls.', code: 2 },
      { args: ['--tls-cert', 'x.pem'], says: '! --tls-cert needs --tls-key as well.', code: 2 },
      {
        args: ['--metrics', 'public'],
        says: '! --metrics must be loopback, open or off, not "public".',
        code: 2,
      },
      {
        args: ['--log-level', 'debug'],
        says: '! --log-level must be one of info, warn, error, silent, not "debug".',
        code: 2,
      },
      { args: ['--group-members', '1'], says: '! --group-members must be an integer in 2..10000.', code: 2 },
      {
        args: ['--heartbeat-ms', '5'],
        says: '! --heartbeat-ms must be an integer in 10..2147483647.',
        code: 2,
      },
      {
        args: ['--mailbox-items', 'lots'],
        says: '! --mailbox-items must be a number or "unlimited", not "lots".',
        code: 2,
      },
      {
        args: ['--port', String(busy.port), '--memory'],
        says: `! Port ${busy.port} on 127.0.0.1 is already in use (another relay?): stop it, or choose another --port.`,
        code: 1,
      },
      {
        args: ['--port', '0', '--memory', '--tls-cert', missing, '--tls-key', missing],
        says: `! The relay could not start: Cannot read the TLS certificate ${missing}: ENOENT`,
        code: 1,
      },
    ];
    const runs = cases.map(({ args }) => npmRun('relay', args));
    const codes = await Promise.all(runs.map((r) => r.exited));
    cases.forEach(({ args, says, code }, i) => {
      const screen = runs[i]!.screen;
      expect(screen, args.join(' ')).toContain(says);
      if (code === 2) expect(screen).toContain(USAGE);
      expect(screen).not.toMatch(/^\s+at /m);
      expect(codes[i], args.join(' ')).toBe(code);
    });
  });

  it('serves wss:// with --tls-cert and --tls-key: a chat that trusts it connects, one that does not is told once; SIGHUP reloads', async () => {
    const cert = selfSigned(fx.dir, 'cli-relay');
    const relay = npmRun('relay', [
      '--port',
      '0',
      '--memory',
      '--tls-cert',
      cert.certFile,
      '--tls-key',
      cert.keyFile,
    ]);
    const listening = await logged(relay, 'listening');
    const url = listening.url as string;
    expect(url).toMatch(/^wss:\/\/127\.0\.0\.1:\d+$/);
    const port = new URL(url).port;

    const trusting = fx.chat(url, 'erin', fx.stateDir, { NODE_EXTRA_CA_CERTS: cert.certFile });
    await trusting.waitFor(`* Connected to ${url} as erin.`);

    const wary = fx.chat(url, 'frank');
    const refusal = `! The TLS certificate of 127.0.0.1:${port} is not trusted (DEPTH_ZERO_SELF_SIGNED_CERT): check the address in --relay, and that the relay's certificate is valid for 127.0.0.1; a certificate of your own is trusted with NODE_EXTRA_CA_CERTS=<its PEM file>.`;
    expect(await wary.exited).toBe(1);
    expect(wary.screen.split(refusal)).toHaveLength(2); // said once
    expect(wary.screen).not.toMatch(/Still trying|attempt \d/);
    // One refused handshake on the relay's side: the chat did not retry.
    expect((await scrape(url, cert.certPem)).get('sealed_relay_tls_handshake_failures_total')).toBe(1);

    process.kill(listening.pid, 'SIGHUP');
    expect(await logged(relay, 'tls_reloaded')).toMatchObject({
      level: 'info',
      msg: `TLS certificate reloaded from ${cert.certFile}`,
    });
    expect(trusting.screen).not.toContain('Lost the connection');
    relay.write('\x03');
    expect(await relay.exited).toBe(130);
  });
});

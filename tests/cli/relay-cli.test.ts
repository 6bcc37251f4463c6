/**
 * `npm run relay` in a terminal (issue 7): one line says where it listens, --help lists every option
 * with its default, wrong options and a busy port are explained in a sentence, Ctrl-C closes it.
 */
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { CliFixture } from './helpers.js';
import { npmRun } from './tty.js';

const fx = new CliFixture();
afterAll(() => fx.cleanup());

const USAGE = 'usage: npm run relay -- [--host ADDR] [--port N] [--data DIR | --memory]';

describe('npm run relay', () => {
  it('says once where it listens, serves a chat, and closes on Ctrl-C', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'sealed-relay-cli-'));
    try {
      const data = path.join(dir, 'data');
      const relay = npmRun('relay', ['--port', '0', '--data', data]);
      const listening = await relay.waitFor(/relay listening on ws:\/\/127\.0\.0\.1:\d+ with data in \S+/);
      expect(listening).toContain(`with data in ${data}`);
      const url = /ws:\/\/\S+/.exec(listening)![0];
      // The key's fingerprint, for the operator to give to users (issue 8).
      await relay.waitFor(/relay key fingerprint (\d{5} ){5}\d{5}/);
      expect(relay.lines.filter((l) => /listening/i.test(l))).toHaveLength(1);
      expect(relay.lines.filter((l) => /listening/i.test(l))[0]).toMatch(
        /^\d{4}-\d\d-\d\dT[\d:.]+Z relay listening/,
      );

      await fx.connected(url, 'erin');
      await relay.waitFor(/authenticated #\d+ erin/);
      expect(readdirSync(data).length).toBeGreaterThan(0);

      relay.write('\x03');
      await relay.waitFor('SIGINT: closing');
      await relay.waitFor('relay closed');
      // The relay closed cleanly (above); npm reports a script ended by Ctrl-C as 128 + SIGINT.
      expect(await relay.exited).toBe(130);
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
    expect(help).toMatch(/--public-url URLS\s+the address\(es\) clients use/);
    expect(help).toMatch(/-h, --help\s+show this help/);
  });

  it('wrong options: one sentence, the usage, exit code 2; a busy port: a sentence, exit code 1', async () => {
    const busy = await fx.relay();
    const cases = [
      { args: ['--port', '80a'], says: '! --port must be a number from 0 to 65535, not "80a".', code: 2 },
      { args: ['--port', '70000'], says: '! --port must be a number from 0 to 65535, not "70000".', code: 2 },
      { args: ['--memory', '--data', 'x'], says: '! --memory and --data cannot be used together.', code: 2 },
      { args: ['--tls'], says: '! Unknown option --tls.', code: 2 },
      {
        args: ['--port', String(busy.port), '--memory'],
        says: `! Port ${busy.port} on 127.0.0.1 is already in use (another relay?): stop it, or choose another --port.`,
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
});

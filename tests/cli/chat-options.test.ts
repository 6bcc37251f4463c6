/**
 * `npm run chat` in a terminal with wrong options (issue 7): one sentence and the usage, exit code 2,
 * no stack trace, and nothing created: no state folder, no database, nothing outside the folder.
 */
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { COMMANDS, commandUsage } from '../../src-main/cli/commands.js';
import { npmRun } from './tty.js';

const dir = mkdtempSync(path.join(tmpdir(), 'sealed-chat-options-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const escape = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

const USAGE = 'usage: npm run chat -- --user NAME [--relay URL] [--state DIR]';

describe('npm run chat: bad options', () => {
  it('each says what is wrong in one sentence, shows the usage, exits with 2 and creates nothing', async () => {
    const state = path.join(dir, 'state');
    const cases: { args: string[]; says: string }[] = [
      { args: ['--user', '../etc'], says: '! --user "../etc" is not a valid user id: use 1-64 letters' },
      { args: ['--user', 'bob smith'], says: '! --user "bob smith" is not a valid user id' },
      { args: ['--user', '.hidden'], says: '! --user ".hidden" is not a valid user id' },
      { args: [], says: '! --user NAME is required.' },
      { args: ['--user'], says: '! --user needs a value (--user NAME).' },
      {
        args: ['--user', 'bob', '--relay', 'http://127.0.0.1:8787'],
        says: '! --relay must start with ws:// or wss://, not http://.',
      },
      {
        args: ['--user', 'bob', '--relay', '127.0.0.1:8787'],
        says: '! --relay "127.0.0.1:8787" is not a URL: write it like ws://',
      },
      { args: ['--user', 'bob', '--relay', 'ws//127.0.0.1'], says: '! --relay "ws//127.0.0.1" is not a URL' },
      { args: ['--user', 'bob', '--colour'], says: '! Unknown option --colour.' },
      { args: ['--user', 'bob', 'extra'], says: '! Unexpected argument "extra".' },
    ];
    const runs = cases.map(({ args }) => npmRun('chat', [...args, '--state', state]));
    const codes = await Promise.all(runs.map((r) => r.exited));
    cases.forEach(({ args, says }, i) => {
      const screen = runs[i]!.screen;
      expect(screen, args.join(' ')).toContain(says);
      expect(screen).toContain(USAGE);
      expect(screen).not.toMatch(/^\s+at /m); // no stack trace
      expect(screen).not.toMatch(/Error:/);
      expect(codes[i], args.join(' ')).toBe(2);
    });
    // Nothing was created: not the state folder, and nothing beside it (`--user ../etc` wrote there).
    expect(existsSync(state)).toBe(false);
    expect(readdirSync(dir)).toEqual([]);
  });

  it('--help lists every option with its default, and every command', async () => {
    const run = npmRun('chat', ['--help']);
    expect(await run.exited).toBe(0);
    const help = run.screen;
    expect(help).toContain(USAGE);
    expect(help).toMatch(/--user NAME\s+your user id: .*\(required\)/);
    expect(help).toMatch(
      /--relay URL\s+the relay to connect to, ws:\/\/ or wss:\/\/ \(default: ws:\/\/127\.0\.0\.1:8787\)/,
    );
    expect(help).toMatch(/--state DIR\s+folder of your identity and sessions.*\(default: ~\/\.sealed-chat\)/);
    expect(help).toMatch(/--accept-relay-key DIGITS\s+accept the relay's new key/);
    expect(help).toMatch(/-h, --help\s+show this help/);
    for (const command of COMMANDS) {
      const row = new RegExp(`^  ${escape(commandUsage(command))}\\s+${escape(command.help)}$`, 'm');
      expect(help).toMatch(row);
    }
  });
});

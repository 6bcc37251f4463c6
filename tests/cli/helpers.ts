/** A real relay on 127.0.0.1 (port 0) and `npm run chat` sessions in terminals, for the CLI tests. */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { type Relay, startRelay } from '../../src-main/relay/index.js';
import { npmRun, type TtySession } from './tty.js';

/** What a test sets up; `cleanup()` stops every chat and relay and removes the folders. */
export class CliFixture {
  readonly dir = mkdtempSync(path.join(tmpdir(), 'sealed-cli-'));
  private readonly sessions: TtySession[] = [];
  private readonly relays: Relay[] = [];

  /** Starts an in-memory relay (or one on `dataDir`) on 127.0.0.1, port 0 unless given. */
  async relay(
    options: { port?: number; dataDir?: string; storageProbeIntervalMs?: number } = {},
  ): Promise<Relay> {
    const relay = await startRelay({ host: '127.0.0.1', port: 0, ...options });
    this.relays.push(relay);
    return relay;
  }

  /**
   * `npm run chat -- --relay URL --user USER --state DIR` in a terminal (the fixture's folder by default),
   * with `env` added to the environment.
   */
  chat(url: string, user: string, state = this.stateDir, env?: NodeJS.ProcessEnv): TtySession {
    const session = npmRun('chat', ['--relay', url, '--user', user, '--state', state], env && { env });
    this.sessions.push(session);
    return session;
  }

  /** `npm run chat` with more options after the fixture's --relay, --user and --state. */
  chatWith(url: string, user: string, extra: string[]): TtySession {
    const session = npmRun('chat', ['--relay', url, '--user', user, '--state', this.stateDir, ...extra]);
    this.sessions.push(session);
    return session;
  }

  /** A chat that has connected and shows its prompt. */
  async connected(url: string, user: string): Promise<TtySession> {
    const session = this.chat(url, user);
    await session.waitFor(`* Connected to ${url} as ${user}.`);
    await session.waitFor(`${user}> `);
    return session;
  }

  get stateDir(): string {
    return path.join(this.dir, 'state');
  }

  async cleanup(): Promise<void> {
    await Promise.all(this.sessions.splice(0).map((s) => s.stop()));
    await Promise.all(this.relays.splice(0).map((r) => r.close()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}

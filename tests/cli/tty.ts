/**
 * Runs a command in a real pseudo-terminal, as a person would in a terminal window, through
 * util-linux `script` (no native module): the program sees a TTY on stdin and stdout, with a window
 * size, and what it prints comes back with the terminal's echo of what was typed. Tests assert on
 * that screen text: control sequences removed, every carriage return starting a new line.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { stripVTControlCharacters } from 'node:util';
import { fileURLToPath } from 'node:url';

/** The checkout's root (where `npm run` finds package.json). */
export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** Terminal output as text: control sequences removed, every carriage return a new line. */
const asText = (raw: string): string =>
  stripVTControlCharacters(raw).replace(/\r\n/g, '\n').replace(/\r/g, '\n');

/** Quotes one argument for sh. */
const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** A program running in a pseudo-terminal. */
export class TtySession {
  private raw = '';
  private readonly child: ChildProcess;
  /** Resolves with the program's exit code (`script -e` passes it on). */
  readonly exited: Promise<number>;
  private exitCode: number | undefined;
  private waiters: { check: () => void }[] = [];

  constructor(command: string[], options: { cols?: number; rows?: number; env?: NodeJS.ProcessEnv } = {}) {
    const { cols = 120, rows = 40 } = options;
    const line = `stty cols ${cols} rows ${rows}; exec ${command.map(shellQuote).join(' ')}`;
    this.child = spawn(
      'script',
      ['--quiet', '--return', '--flush', '--echo', 'never', '--command', line, '/dev/null'],
      {
        cwd: ROOT,
        env: { ...process.env, TERM: 'xterm-256color', ...options.env },
        stdio: ['pipe', 'pipe', 'pipe'],
      },
    );
    // Decoded as a stream: a character split across two reads stays one character.
    this.child.stdout!.setEncoding('utf8');
    this.child.stderr!.setEncoding('utf8');
    const collect = (chunk: string): void => {
      this.raw += chunk;
      for (const w of [...this.waiters]) w.check();
    };
    this.child.stdout!.on('data', collect);
    this.child.stderr!.on('data', collect);
    this.exited = new Promise((resolve) =>
      this.child.once('exit', (code, signal) => {
        this.exitCode = code ?? (signal ? 128 : -1);
        for (const w of [...this.waiters]) w.check();
        resolve(this.exitCode);
      }),
    );
  }

  /** Everything shown so far, as text: no control sequences, one line per row written. */
  get screen(): string {
    return asText(this.raw);
  }

  /** The screen's lines with text on them, trailing blanks removed. */
  get lines(): string[] {
    return this.screen
      .split('\n')
      .map((l) => l.trimEnd())
      .filter((l) => l !== '');
  }

  /** Types `text` and presses Enter. */
  type(text: string): void {
    this.write(`${text}\r`);
  }

  /** Sends raw keys (e.g. '\x04' for Ctrl-D, '\x03' for Ctrl-C). */
  write(keys: string): void {
    this.child.stdin!.write(keys);
  }

  /**
   * Resolves once the screen after `from` (a `mark`) matches `pattern` (a string is found literally);
   * rejects after `timeoutMs` or when the program exits first, showing the screen.
   */
  waitFor(pattern: string | RegExp, { from = 0, timeoutMs = 30_000 } = {}): Promise<string> {
    const test = (): string | undefined => {
      const text = asText(this.raw.slice(from));
      if (typeof pattern === 'string') return text.includes(pattern) ? pattern : undefined;
      return pattern.exec(text)?.[0];
    };
    return new Promise((resolve, reject) => {
      const what = String(pattern).length > 200 ? `${String(pattern).slice(0, 200)}…` : String(pattern);
      const timer = setTimeout(() => done(new Error(`timed out waiting for ${what}`)), timeoutMs);
      const done = (error?: Error, match?: string): void => {
        clearTimeout(timer);
        this.waiters = this.waiters.filter((w) => w !== waiter);
        if (error) reject(new Error(`${error.message}; the screen ended with:\n${this.screen.slice(-3000)}`));
        else resolve(match!);
      };
      const waiter = {
        check: () => {
          const m = test();
          if (m !== undefined) done(undefined, m);
          else if (this.exitCode !== undefined) done(new Error(`exited (${this.exitCode}) before ${what}`));
        },
      };
      this.waiters.push(waiter);
      waiter.check();
    });
  }

  /** Where the output is now: `waitFor({ from: mark })` looks only at what comes after. */
  get mark(): number {
    return this.raw.length;
  }

  /** The screen text after a `mark`. */
  since(mark: number): string {
    return asText(this.raw.slice(mark));
  }

  /** The bytes the terminal received after a `mark`, control sequences included. */
  rawSince(mark: number): string {
    return this.raw.slice(mark);
  }

  /** Ends the program if it still runs (SIGTERM, which `script` passes on) and waits for it. */
  async stop(): Promise<number> {
    if (this.exitCode === undefined) this.child.kill('SIGTERM');
    return this.exited;
  }
}

/** Starts `npm run <script> -- <args>` in a terminal, from the checkout's root. */
export function npmRun(
  script: string,
  args: string[],
  options?: ConstructorParameters<typeof TtySession>[1],
): TtySession {
  return new TtySession(['npm', 'run', script, '--', ...args], options);
}

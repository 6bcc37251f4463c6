/**
 * The chat's terminal: reads command lines and prints the four kinds of line in one style.
 *
 *   * info        a state change or a confirmation
 *   ! error       something failed or needs attention
 *   < bob: hi     a message received (`< bob in team: hi` in a group)
 *   > #1 to bob: hi   a message sent, with the number its receipts refer to
 *
 * On a TTY readline runs in terminal mode (raw input): the kernel's canonical line editor cuts a
 * pasted line at 4,095 bytes (N_TTY_BUF_SIZE), readline's does not (issue 7). Lines printed while
 * the user types go above the prompt, and the prompt shows the connection state. From a pipe
 * (a bot, a script) there is no prompt and lines are read as they come.
 */
import { clearScreenDown, createInterface, cursorTo, moveCursor, type Interface } from 'node:readline';

/** The kinds of line the chat prints, each with its mark. */
export const LineKind = { info: '*', error: '!', incoming: '<', outgoing: '>' } as const;
export type LineKind = keyof typeof LineKind;

/** What the terminal reports to the chat. */
export interface TerminalHandlers {
  /** A line the user entered, exactly as typed (no trimming). */
  line(text: string): void;
  /** End of input (Ctrl-D, or the end of a pipe). */
  end(): void;
  /** Ctrl-C. */
  interrupt(): void;
}

// C0 and C1 controls but tab and newline: text from others must not drive our terminal (ESC
// sequences can rewrite the screen, set the title, or fake lines from someone else); and the
// bidirectional overrides and isolates, which can make a line read in another order than it is.
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u202a-\u202e\u2066-\u2069]/g;

/** Shows control characters as `\u001b` instead of passing them to the terminal. */
export function neutralize(text: string): string {
  return text
    .replace(/\r\n/g, '\n')
    .replace(CONTROL, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Reads commands from `input` and prints chat lines to `output`. */
export class Terminal {
  /** True when both ends are a terminal: raw input, a prompt, lines printed above it. */
  readonly interactive: boolean;
  private readonly rl: Interface;
  private closed = false;
  private name: string;
  private status: string | undefined;

  constructor(
    private readonly input: NodeJS.ReadableStream & { isTTY?: boolean },
    private readonly output: NodeJS.WritableStream & { isTTY?: boolean },
    name: string,
    on: TerminalHandlers,
  ) {
    this.interactive = Boolean(input.isTTY && output.isTTY);
    this.name = name;
    this.rl = createInterface({
      input,
      output: this.interactive ? output : undefined,
      terminal: this.interactive,
      prompt: this.promptText(),
      historySize: 100,
    });
    this.rl.on('line', (text) => {
      // readline does not prompt again by itself; the handler's lines then go above the prompt.
      if (this.interactive) this.rl.prompt();
      on.line(text);
    });
    this.rl.on('close', () => {
      const byUser = !this.closed; // Ctrl-D or the end of a pipe, not close()
      this.closed = true;
      if (this.interactive) this.clearPrompt();
      if (byUser) on.end();
    });
    this.rl.on('SIGINT', () => on.interrupt());
  }

  /** Sets the connection state shown in the prompt, e.g. "connecting"; undefined when connected. */
  setStatus(status: string | undefined): void {
    if (status === this.status) return;
    this.status = status;
    this.rl.setPrompt(this.promptText());
    if (this.interactive && !this.closed) this.redraw();
  }

  /** Prints one line (continuation lines indented) of the given kind. */
  print(kind: LineKind, text: string): void {
    const body = neutralize(text).replace(/\n/g, '\n  ');
    this.write(`${LineKind[kind]} ${body}`);
  }

  /** Stops reading and removes the prompt; later lines are printed without one. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.rl.close();
  }

  private promptText(): string {
    return this.status ? `(${this.status}) ${this.name}> ` : `${this.name}> `;
  }

  /** Writes `text` above the prompt and what the user has typed so far, then redraws them. */
  private write(text: string): void {
    if (!this.interactive || this.closed) {
      this.output.write(`${text}\n`);
      return;
    }
    this.clearPrompt();
    this.output.write(`${text}\n`);
    this.redrawBelow();
  }

  /** Draws the prompt again (after a status change), keeping what the user typed. */
  private redraw(): void {
    this.clearPrompt();
    this.redrawBelow();
  }

  /** Erases the prompt and the input after it, leaving the cursor where the prompt started. */
  private clearPrompt(): void {
    moveCursor(this.output, 0, -this.rl.getCursorPos().rows);
    cursorTo(this.output, 0);
    clearScreenDown(this.output);
  }

  /**
   * Has readline draw the prompt and input from the cursor's row. Its redraw first moves up by the
   * rows it believes the cursor is below the prompt (`prevRows`, which a paste leaves behind the
   * real position), so that many blank rows go first: it lands back on this row.
   */
  private redrawBelow(): void {
    const believed = (this.rl as unknown as { prevRows?: unknown }).prevRows;
    this.output.write('\n'.repeat(typeof believed === 'number' ? believed : 0));
    this.rl.prompt(true);
  }
}

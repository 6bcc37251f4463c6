/**
 * Plain-sentence notices (toasts): every 'error' event and every rejected call the user did not see
 * inline ends up here. Each notice stays a while, longer when it is an error, and can be dismissed.
 */

export interface Notice {
  readonly id: number;
  readonly text: string;
  readonly tone: 'error' | 'info';
}

const ERROR_MS = 10_000;
const INFO_MS = 5_000;
const MAX_NOTICES = 4;

export class Notices {
  list = $state.raw<readonly Notice[]>([]);
  #nextId = 1;
  // eslint-disable-next-line svelte/prefer-svelte-reactivity -- timers, not state
  readonly #timers = new Map<number, ReturnType<typeof setTimeout>>();

  /** Shows a notice and returns its id; the same text shown again only restarts its timer. */
  show(text: string, tone: Notice['tone'] = 'error'): number {
    const same = this.list.find((notice) => notice.text === text);
    if (same) {
      this.#schedule(same);
      return same.id;
    }
    const notice: Notice = { id: this.#nextId++, text, tone };
    const kept = this.list.slice(-(MAX_NOTICES - 1));
    for (const dropped of this.list.slice(0, this.list.length - kept.length)) this.#clearTimer(dropped.id);
    this.list = [...kept, notice];
    this.#schedule(notice);
    return notice.id;
  }

  dismiss(id: number): void {
    this.#clearTimer(id);
    this.list = this.list.filter((notice) => notice.id !== id);
  }

  /** Holds a notice on screen while the pointer or focus is on it. */
  hold(id: number): void {
    this.#clearTimer(id);
  }

  /** Lets a held notice go again. */
  release(id: number): void {
    const notice = this.list.find((n) => n.id === id);
    if (notice) this.#schedule(notice);
  }

  /** Clears every timer (app teardown). */
  close(): void {
    for (const timer of this.#timers.values()) clearTimeout(timer);
    this.#timers.clear();
  }

  #schedule(notice: Notice): void {
    this.#clearTimer(notice.id);
    const ms = notice.tone === 'error' ? ERROR_MS : INFO_MS;
    this.#timers.set(
      notice.id,
      setTimeout(() => this.dismiss(notice.id), ms),
    );
  }

  #clearTimer(id: number): void {
    const timer = this.#timers.get(id);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(id);
  }
}

/**
 * Plain-sentence notices (toasts): every 'error' event and every rejected call the user did not see
 * inline ends up here. An error stays until the user dismisses it (or the app takes it back because
 * what it said is over, like a lost connection that is back): a time limit would take it away before
 * everyone has read it (WCAG 2.2.1). Information notices go after a while, never while hovered or
 * focused.
 */

export interface Notice {
  readonly id: number;
  readonly text: string;
  readonly tone: 'error' | 'info';
  /**
   * What the notice is about, when a view may already say the same thing (the relay panel shows the
   * connection error itself): such a view hides notices of its topics. At most one notice per topic.
   */
  readonly topic?: string | undefined;
}

export interface NoticeOptions {
  tone?: Notice['tone'];
  topic?: string;
}

const INFO_MS = 6_000;
/** Older notices beyond this many are dropped (the newest are what the user is dealing with). */
const MAX_NOTICES = 4;

export class Notices {
  list = $state.raw<readonly Notice[]>([]);
  #nextId = 1;
  // eslint-disable-next-line svelte/prefer-svelte-reactivity -- timers, not state
  readonly #timers = new Map<number, ReturnType<typeof setTimeout>>();

  /**
   * Shows a notice and returns its id. The same text shown again is not repeated (an information
   * notice's time starts again); a notice of a topic replaces the one of that topic already shown.
   */
  show(text: string, options: NoticeOptions = {}): number {
    const tone = options.tone ?? 'error';
    const same = this.list.find((notice) => notice.text === text && notice.topic === options.topic);
    if (same) {
      this.#schedule(same);
      return same.id;
    }
    const notice: Notice = { id: this.#nextId++, text, tone, topic: options.topic };
    const others = this.list.filter((n) => options.topic === undefined || n.topic !== options.topic);
    const kept = others.slice(-(MAX_NOTICES - 1));
    for (const dropped of this.list) if (!kept.includes(dropped)) this.#clearTimer(dropped.id);
    this.list = [...kept, notice];
    this.#schedule(notice);
    return notice.id;
  }

  dismiss(id: number): void {
    this.#clearTimer(id);
    this.list = this.list.filter((notice) => notice.id !== id);
  }

  /** Takes back the notice of a topic, if one is shown. */
  dismissTopic(topic: string): void {
    for (const notice of this.list) if (notice.topic === topic) this.dismiss(notice.id);
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

  /** Information notices go after INFO_MS; errors stay until dismissed. */
  #schedule(notice: Notice): void {
    this.#clearTimer(notice.id);
    if (notice.tone === 'error') return;
    this.#timers.set(
      notice.id,
      setTimeout(() => this.dismiss(notice.id), INFO_MS),
    );
  }

  #clearTimer(id: number): void {
    const timer = this.#timers.get(id);
    if (timer !== undefined) clearTimeout(timer);
    this.#timers.delete(id);
  }
}

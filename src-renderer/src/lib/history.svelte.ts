/**
 * One conversation's history as the message list sees it: pages fetched from the service with
 * `getHistory({ before })`, kept in memory newest last, and a window `[start, end)` of them that is
 * actually rendered. The window slides up (older pages, from memory or fetched) and down (newer items
 * already in memory) and is trimmed to `MAX_RENDERED` items, so a 10,000-message conversation never
 * puts more than a few hundred rows in the DOM. The list component keeps the scroll position steady
 * around each slide (it anchors on a visible row).
 */
import type {
  ConversationId,
  HistoryItem,
  HistoryPage,
  MessageStatus,
  MessengerApi,
} from '../../../src-main/shared/messenger-api';
import { errorMessage, withoutIds } from './format';

/** Items asked per `getHistory` call, and the step by which the window slides. */
export const PAGE_SIZE = 50;
/** Most rows rendered at once. */
export const MAX_RENDERED = 200;

const STATUS_RANK: Record<MessageStatus, number> = { sending: 0, failed: 1, sent: 2, delivered: 3 };

/** Keeps the later of two delivery states: an event can overtake the promise that created the item. */
function laterStatus(a: MessageStatus | undefined, b: MessageStatus | undefined): MessageStatus | undefined {
  if (!a) return b;
  if (!b) return a;
  return STATUS_RANK[b] >= STATUS_RANK[a] ? b : a;
}

export class ConversationHistory {
  readonly id: ConversationId;
  /** Every item loaded so far, oldest first. Replaced on each change, never mutated. */
  items = $state.raw<readonly HistoryItem[]>([]);
  /** First rendered index into `items`. */
  start = $state(0);
  /** One past the last rendered index into `items`. */
  end = $state(0);
  /** Cursor for the page before `items[0]`; null once the start of the conversation is loaded. */
  nextBefore = $state<string | null>(null);
  loaded = $state(false);
  loadingOlder = $state(false);
  /** A plain sentence when the first page could not be loaded. */
  error = $state<string | null>(null);

  /** The rendered items. */
  readonly visible = $derived(this.items.slice(this.start, this.end));
  /** Older items exist above the window (in memory or still on the service). */
  readonly hasOlder = $derived(this.start > 0 || this.nextBefore !== null);
  /** The window reaches the newest item. */
  readonly atLatest = $derived(this.end >= this.items.length);

  readonly #api: MessengerApi;
  /** Delivery states that arrived before their item (the send promise had not resolved yet). */
  // eslint-disable-next-line svelte/prefer-svelte-reactivity -- bookkeeping the UI never reads
  readonly #pendingStatus = new Map<string, MessageStatus>();
  #loadingPage: Promise<HistoryPage> | null = null;

  constructor(api: MessengerApi, id: ConversationId) {
    this.#api = api;
    this.id = id;
  }

  /** Loads the newest page and shows it. */
  async load(): Promise<void> {
    try {
      const page = await this.#api.getHistory({ conversationId: this.id, limit: PAGE_SIZE });
      // Items that arrived by event while the page was on its way are merged, not lost.
      const extra = withoutIds(this.items, page.items);
      this.items = [...page.items.map((item) => this.#withPendingStatus(item)), ...extra];
      this.nextBefore = page.nextBefore;
      this.error = null;
    } catch (error) {
      this.error = errorMessage(error);
    } finally {
      this.loaded = true;
      this.jumpToLatest();
    }
  }

  /**
   * Fetches the page before the oldest item in memory without changing what is shown (the list
   * measures its scroll anchor, then applies it with `insertOlder`). Null when there is none.
   */
  fetchOlder(): Promise<HistoryPage | null> {
    const before = this.nextBefore;
    if (before === null || !this.loaded) return Promise.resolve(null);
    this.#loadingPage ??= this.#api
      .getHistory({ conversationId: this.id, before, limit: PAGE_SIZE })
      .finally(() => {
        this.#loadingPage = null;
        this.loadingOlder = false;
      });
    this.loadingOlder = true;
    return this.#loadingPage;
  }

  /** Puts an older page in front of the items in memory; the window keeps showing the same items. */
  insertOlder(page: HistoryPage): void {
    const older = withoutIds(page.items, this.items);
    this.items = [...older, ...this.items];
    this.start += older.length;
    this.end += older.length;
    this.nextBefore = page.nextBefore;
  }

  /** Slides the window up by one page of items in memory and trims its bottom; false at the top. */
  slideUp(): boolean {
    if (this.start === 0) return false;
    this.start = Math.max(0, this.start - PAGE_SIZE);
    if (this.end - this.start > MAX_RENDERED) this.end = this.start + MAX_RENDERED;
    return true;
  }

  /** Slides the window down by one page (newer items are always in memory) and trims its top. */
  slideDown(): boolean {
    if (this.end >= this.items.length) return false;
    this.end = Math.min(this.items.length, this.end + PAGE_SIZE);
    this.start = Math.max(this.start, this.end - MAX_RENDERED);
    return true;
  }

  /** Shows the newest page. */
  jumpToLatest(): void {
    this.end = this.items.length;
    this.start = Math.max(0, this.end - PAGE_SIZE);
  }

  /** Trims the top of the window to `MAX_RENDERED` (call only while the view sits at the bottom). */
  trimTop(): void {
    if (this.end - this.start > MAX_RENDERED) this.start = this.end - MAX_RENDERED;
  }

  /** Adds a new item or updates one already there (the send result and its event are the same item). */
  add(item: HistoryItem): void {
    const index = this.#indexOf(item.id);
    if (index >= 0) {
      const current = this.items[index] as HistoryItem;
      const merged = { ...item, status: laterStatus(current.status, item.status) };
      this.items = this.items.with(index, merged);
      return;
    }
    const followsWindow = this.end >= this.items.length;
    const next = this.#withPendingStatus(item);
    // Newest last: an item older than the last one (a late delivery) is placed by time.
    let at = this.items.length;
    while (at > 0 && (this.items[at - 1] as HistoryItem).at > next.at) at--;
    this.items = this.items.toSpliced(at, 0, next);
    if (at < this.start) this.start++;
    if (followsWindow || at < this.end) this.end++;
    // Sending brings the view back to the newest messages.
    if (next.direction === 'out' && next.kind === 'message' && !followsWindow) this.jumpToLatest();
  }

  /** Applies a delivery state change. */
  setStatus(id: string, status: MessageStatus): void {
    const index = this.#indexOf(id);
    if (index < 0) {
      this.#pendingStatus.set(id, laterStatus(this.#pendingStatus.get(id), status) ?? status);
      return;
    }
    const current = this.items[index] as HistoryItem;
    const next = laterStatus(current.status, status);
    if (next === current.status) return;
    this.items = this.items.with(index, { ...current, status: next });
  }

  #withPendingStatus(item: HistoryItem): HistoryItem {
    const pending = this.#pendingStatus.get(item.id);
    if (!pending) return item;
    this.#pendingStatus.delete(item.id);
    return { ...item, status: laterStatus(item.status, pending) };
  }

  /** Index of an item by id, searching from the newest (status updates concern recent items). */
  #indexOf(id: string): number {
    for (let i = this.items.length - 1; i >= 0; i--) {
      if ((this.items[i] as HistoryItem).id === id) return i;
    }
    return -1;
  }
}

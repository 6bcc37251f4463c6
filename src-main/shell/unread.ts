/**
 * Unread count of the shell (window title, tray, badge), derived from the service's events.
 * Plain data, no `electron`: the shell adapters display what this computes, and Node tests check it.
 */
import type { ConversationId, ConversationSummary, MessengerEvent } from '../shared/messenger-api.js';

export const APP_NAME = 'Sealed';

/** Total unread messages over all conversations, kept current by `reset` and `apply`. */
export class UnreadCounter {
  readonly #byConversation = new Map<ConversationId, number>();
  #total = 0;

  get total(): number {
    return this.#total;
  }

  /** Replaces everything with a full list (e.g. `listConversations()`); returns whether the total changed. */
  reset(summaries: readonly ConversationSummary[]): boolean {
    this.#byConversation.clear();
    for (const summary of summaries) this.#byConversation.set(summary.id, countOf(summary.unread));
    return this.#recount();
  }

  /** Applies one service event; returns whether the total changed. */
  apply(event: MessengerEvent): boolean {
    switch (event.type) {
      case 'conversation':
        this.#byConversation.set(event.summary.id, countOf(event.summary.unread));
        return this.#recount();
      case 'conversationRemoved':
        this.#byConversation.delete(event.id);
        return this.#recount();
      case 'status':
        // No profile, or a locked one: nothing is readable, so nothing is unread.
        if (event.status.profile && !event.status.locked) return false;
        return this.reset([]);
      default:
        return false;
    }
  }

  #recount(): boolean {
    let total = 0;
    for (const count of this.#byConversation.values()) total += count;
    const changed = total !== this.#total;
    this.#total = total;
    return changed;
  }
}

/** A count as a non-negative integer (a malformed value counts as 0 rather than poisoning the sum). */
function countOf(value: number): number {
  return Number.isSafeInteger(value) && value > 0 ? value : 0;
}

/** Window title: "Sealed", or "Sealed (3)" with unread messages. */
export function windowTitle(unread: number): string {
  return unread > 0 ? `${APP_NAME} (${unread})` : APP_NAME;
}

/** Tray tooltip: the app name and, when there are any, how many messages are unread. */
export function trayTooltip(unread: number): string {
  if (unread <= 0) return APP_NAME;
  return `${APP_NAME}: ${unread} unread ${unread === 1 ? 'message' : 'messages'}`;
}

/** Focus helpers shared by dialogs and lists (keyboard use is part of every component's contract). */

const FOCUSABLE = [
  'a[href]',
  'button:not([disabled])',
  'input:not([disabled]):not([type="hidden"])',
  'select:not([disabled])',
  'textarea:not([disabled])',
  '[tabindex]:not([tabindex="-1"])',
].join(',');

/** The elements of a container reachable with Tab, in order. */
export function focusables(container: HTMLElement): HTMLElement[] {
  return [...container.querySelectorAll<HTMLElement>(FOCUSABLE)].filter(
    (el) => !el.closest('[inert]') && el.getClientRects().length > 0,
  );
}

/** Keeps Tab and Shift+Tab inside a container (a modal dialog's simple focus trap). */
export function trapTab(event: KeyboardEvent, container: HTMLElement): void {
  if (event.key !== 'Tab') return;
  const items = focusables(container);
  const first = items[0];
  const last = items.at(-1);
  if (!first || !last) {
    event.preventDefault();
    container.focus();
    return;
  }
  const active = document.activeElement;
  if (event.shiftKey && (active === first || active === container)) {
    event.preventDefault();
    last.focus();
  } else if (!event.shiftKey && active === last) {
    event.preventDefault();
    first.focus();
  }
}

/**
 * Gives focus back to the control that opened a dialog, once the page is no longer inert. When that
 * control is gone (the banner whose button opened it, a conversation that was deleted), focus goes to
 * the first present element marked `data-focus-fallback`, lowest value first (the composer is 1).
 */
export function restoreFocus(opener: HTMLElement | null): void {
  queueMicrotask(() => {
    if (opener?.isConnected && !opener.closest('[inert]')) {
      opener.focus();
      if (document.activeElement === opener) return;
    }
    const fallbacks = [...document.querySelectorAll<HTMLElement>('[data-focus-fallback]')].sort(
      (a, b) => Number(a.dataset.focusFallback) - Number(b.dataset.focusFallback),
    );
    for (const fallback of fallbacks) {
      fallback.focus();
      if (document.activeElement === fallback) return;
    }
  });
}

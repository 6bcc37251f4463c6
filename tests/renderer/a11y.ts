/**
 * Accessibility checks of the renderer screen checks (screens.ts), issue 10:
 * - `Auditor`: axe-core (the npm package, injected into the page the way @axe-core/playwright does,
 *   with Playwright's evaluate, which the page's CSP does not govern) on a screen state in the light
 *   and the dark theme, WCAG 2.1 A and AA rules; serious and critical violations fail, the others are
 *   counted for the record.
 * - `focusState` and `tabWalk`: where focus is and whether it is visible, for the keyboard walks.
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import type { Page } from 'playwright-core';

const AXE_SOURCE = readFileSync(createRequire(import.meta.url).resolve('axe-core/axe.min.js'), 'utf8');

/** The rule sets of WCAG 2.1 level A and AA. */
export const WCAG_21_AA = ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa'];

type Theme = 'light' | 'dark';

interface Violation {
  id: string;
  impact: string | null;
  help: string;
  nodes: { target: string; summary: string }[];
}

/** What one axe run found on one screen state in one theme. */
export interface AuditRecord {
  readonly state: string;
  readonly theme: Theme;
  /** Serious and critical violations: each fails the run. */
  readonly blocking: readonly Violation[];
  /** Moderate and minor ones, reported only. */
  readonly other: readonly Violation[];
  /** Rules that passed (at least one node checked and fine). */
  readonly passed: number;
}

/** Runs axe on screen states and keeps what it found. */
export class Auditor {
  readonly records: AuditRecord[] = [];

  /**
   * Audits the page as it is now in both themes (prefers-color-scheme emulated; a theme forced by the
   * app's own setting stays as it is), then restores the scheme it had.
   */
  async audit(page: Page, state: string): Promise<void> {
    const had = await page.evaluate<boolean>(`matchMedia('(prefers-color-scheme: dark)').matches`);
    for (const theme of ['light', 'dark'] as const) {
      await page.emulateMedia({ colorScheme: theme, reducedMotion: 'reduce' });
      await settle(page);
      this.records.push(await this.#run(page, state, theme));
    }
    await page.emulateMedia({ colorScheme: had ? 'dark' : 'light', reducedMotion: 'reduce' });
    await settle(page);
  }

  async #run(page: Page, state: string, theme: Theme): Promise<AuditRecord> {
    if (!(await page.evaluate<boolean>(`typeof globalThis.axe === 'object'`)))
      await page.evaluate(AXE_SOURCE);
    const found = await page.evaluate<{ violations: Violation[]; passed: number }>(`(async () => {
      const r = await axe.run(document, {
        runOnly: { type: 'tag', values: ${JSON.stringify(WCAG_21_AA)} },
        resultTypes: ['violations'],
        restoreScroll: true,
      });
      return {
        passed: r.passes.length,
        violations: r.violations.map((v) => ({
          id: v.id,
          impact: v.impact,
          help: v.help,
          nodes: v.nodes.map((n) => ({ target: n.target.join(' '), summary: n.failureSummary || '' })),
        })),
      };
    })()`);
    const blocking = found.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
    const other = found.violations.filter((v) => !blocking.includes(v));
    return { state, theme, blocking, other, passed: found.passed };
  }

  /** One line per blocking violation (state, theme, rule, elements), for the failure list. */
  failures(): string[] {
    return this.records.flatMap((r) =>
      r.blocking.map(
        (v) =>
          `axe ${r.state} (${r.theme}): ${v.impact} ${v.id} — ${v.help}: ` +
          v.nodes.map((n) => `${n.target} [${n.summary.replace(/\s+/g, ' ').slice(0, 160)}]`).join('; '),
      ),
    );
  }

  /** Counts per theme: states audited, blocking and other violations. */
  summary(): string {
    return (['light', 'dark'] as const)
      .map((theme) => {
        const runs = this.records.filter((r) => r.theme === theme);
        const blocking = runs.reduce((n, r) => n + r.blocking.length, 0);
        const other = runs.reduce((n, r) => n + r.other.length, 0);
        const otherIds = [...new Set(runs.flatMap((r) => r.other.map((v) => `${v.id} (${v.impact})`)))];
        return (
          `axe ${theme}: ${runs.length} screen states, ${blocking} serious/critical violations, ` +
          `${other} moderate/minor${otherIds.length ? `: ${otherIds.join(', ')}` : ''}`
        );
      })
      .join('\n');
  }
}

/** Style changes (the colour scheme) applied and painted, and every finite transition finished. */
async function settle(page: Page): Promise<void> {
  await page.evaluate(`(async () => {
    await new Promise((resolve) => requestAnimationFrame(() => requestAnimationFrame(resolve)));
    const finite = document.getAnimations().filter((a) => a.effect?.getTiming().iterations !== Infinity);
    await Promise.all(finite.map((a) => a.finished.catch(() => undefined)));
  })()`);
}

/** The focused element: its name (aria-label or text), role or tag, and whether focus can be seen. */
export interface FocusState {
  /** '<body>' when focus is lost. */
  readonly name: string;
  readonly tag: string;
  /** An outline of at least 2px or a box-shadow ring on it, or (text fields) an outline on the box around it. */
  readonly visible: boolean;
  /** Inside a role=dialog. */
  readonly inDialog: boolean;
}

/** Where focus is now, and whether a sighted keyboard user can see it. */
export function focusState(page: Page): Promise<FocusState> {
  return page.evaluate<FocusState>(`(() => {
    const el = document.activeElement;
    if (!el || el === document.body) return { name: '<body>', tag: 'body', visible: false, inDialog: false };
    const outlined = (node) => {
      const s = getComputedStyle(node);
      return s.outlineStyle !== 'none' && parseFloat(s.outlineWidth) >= 2;
    };
    let visible = outlined(el) || getComputedStyle(el).boxShadow !== 'none';
    // A field whose box shows focus (:focus-within) instead of the field itself.
    for (let p = el.parentElement, i = 0; !visible && p && i < 2; p = p.parentElement, i++) {
      visible = outlined(p);
    }
    const role = el.getAttribute('role');
    const labelledby = (el.getAttribute('aria-labelledby') || '')
      .split(' ')
      .map((id) => document.getElementById(id)?.textContent || '')
      .join(' ');
    // Text as a screen reader gets it: without aria-hidden parts (avatar letters, icons).
    const spoken = (node) =>
      [...node.childNodes]
        .map((n) => (n.nodeType === 3 ? n.textContent : n.nodeType === 1 && n.getAttribute('aria-hidden') !== 'true' ? spoken(n) : ''))
        .join('');
    const name = (
      el.getAttribute('aria-label') || labelledby || spoken(el) || el.getAttribute('placeholder') || ''
    ).trim();
    return {
      name: role === 'dialog' ? '<dialog>' : name.replace(/\\s+/g, ' ').slice(0, 80) || el.tagName.toLowerCase(),
      tag: (role || el.tagName).toLowerCase(),
      visible,
      inDialog: el.closest('[role=dialog]') !== null,
    };
  })()`);
}

/**
 * Presses Tab (or Shift+Tab) until focus comes back to a stop already visited, or `max` presses;
 * returns each stop in order. (A walk that starts on a heading, not a Tab stop, ends when it cycles.)
 */
export async function tabWalk(page: Page, max = 80, backwards = false): Promise<FocusState[]> {
  const stops: FocusState[] = [];
  const seen = new Set<number>();
  // Each focused element gets a number of its own (kept in the page, off the DOM).
  const identify = `(() => {
    const g = globalThis;
    g.__walkIds ||= new WeakMap();
    const el = document.activeElement;
    if (!g.__walkIds.has(el)) g.__walkIds.set(el, (g.__walkNext = (g.__walkNext || 0) + 1));
    return g.__walkIds.get(el);
  })()`;
  for (let i = 0; i < max; i++) {
    await page.keyboard.press(backwards ? 'Shift+Tab' : 'Tab');
    // Past the last stop focus leaves the page (to the browser) before it comes round: not a stop.
    if (await page.evaluate<boolean>(`document.activeElement === document.body`)) continue;
    const id = await page.evaluate<number>(identify);
    if (seen.has(id)) break;
    seen.add(id);
    stops.push(await focusState(page));
  }
  return stops;
}

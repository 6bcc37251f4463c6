/**
 * The renderer's screens in Debian's Chromium against a fake API (tests/renderer/fake-messenger.ts):
 * first run, conversations, panels, dark mode, keyboard-only use and focus return, paging through a
 * 10,000-message conversation with the view kept in place, and no console error or CSP violation.
 */
import { describe, expect, it } from 'vitest';
import { buildRenderer } from '../browser/harness.js';
import { runScreenChecks } from './screens.js';

describe('renderer screens', () => {
  it('every screen check passes', async () => {
    await buildRenderer();
    expect(await runScreenChecks()).toEqual([]);
  }, 240_000);
});

/**
 * The colour tokens as data (issue 10): app.css's palette is read with postcss, both themes of every
 * `light-dark()` token are resolved, and each pair of colours the UI puts together is held to WCAG
 * 2.1: 4.5:1 for text (1.4.3), 3:1 for meaningful icons and focus indicators (1.4.11). A later palette
 * change that breaks one fails here, naming the pair, the theme and the ratio. Contrast and alpha
 * compositing come from culori. The axe checks in screens.ts then test what is actually rendered.
 */
import { readFileSync } from 'node:fs';
import { blend, formatHex, parse, wcagContrast, type Color } from 'culori';
import postcss, { list } from 'postcss';
import { describe, expect, it } from 'vitest';

const CSS = readFileSync(new URL('../../src-renderer/src/app.css', import.meta.url), 'utf8');

type Theme = 'light' | 'dark';
const THEMES: readonly Theme[] = ['light', 'dark'];

/** The `:root` custom properties of app.css, each resolved for both themes (raw CSS colour text). */
function readTokens(): Map<string, Record<Theme, string>> {
  const tokens = new Map<string, Record<Theme, string>>();
  postcss.parse(CSS).walkRules(':root', (rule) => {
    rule.walkDecls(/^--/, (decl) => {
      const value = decl.value.trim();
      const match = /^light-dark\((.*)\)$/s.exec(value);
      const [light, dark] = match ? list.comma(match[1]!) : [value, value];
      if (light !== undefined && dark !== undefined) tokens.set(decl.prop.slice(2), { light, dark });
    });
  });
  return tokens;
}

const tokens = readTokens();

/** A colour in a theme: a token name (`--text`), a token over another (`--hover over --sidebar`), or a literal. */
function colour(spec: string, theme: Theme): Color {
  const over = spec.split(' over ');
  if (over.length === 2) {
    return blend([colour(over[1]!, theme), colour(over[0]!, theme)], 'normal');
  }
  const text = spec.startsWith('--') ? tokens.get(spec.slice(2))?.[theme] : spec;
  if (text === undefined) throw new Error(`app.css has no token ${spec}`);
  const parsed = parse(text);
  if (!parsed) throw new Error(`${spec} (${theme}) is not a colour culori reads: ${text}`);
  return parsed;
}

/**
 * A colour a component's <style> derives from a name's hue (`hsl(var(--hue) …)` inside `light-dark()`),
 * as a function of the hue, for one theme.
 */
function componentColour(
  file: string,
  selector: string,
  prop: string,
  theme: Theme,
): (hue: number) => string {
  const source = readFileSync(
    new URL(`../../src-renderer/src/lib/components/${file}`, import.meta.url),
    'utf8',
  );
  const style = /<style>([\s\S]*)<\/style>/.exec(source)?.[1];
  if (!style) throw new Error(`${file} has no <style>`);
  let value: string | undefined;
  postcss.parse(style).walkRules(selector, (rule) => {
    rule.walkDecls(prop, (decl) => {
      value = decl.value;
    });
  });
  const match = value && /^light-dark\((.*)\)$/s.exec(value);
  if (!match) throw new Error(`${file} ${selector} has no light-dark() ${prop}`);
  const chosen = list.comma(match[1]!)[theme === 'light' ? 0 : 1]!;
  if (!chosen.includes('var(--hue)')) throw new Error(`${file} ${selector} ${prop} does not use --hue`);
  return (hue) => chosen.replace('var(--hue)', String(hue));
}

interface Pair {
  /** What the UI draws there, for the failure message. */
  readonly where: string;
  readonly fg: string;
  readonly bg: string;
  /** 'text' needs 4.5:1; 'graphic' (icons that carry meaning, focus rings) 3:1. */
  readonly kind: 'text' | 'graphic';
}

const text = (where: string, fg: string, bgs: readonly string[]): Pair[] =>
  bgs.map((bg) => ({ where, fg, bg, kind: 'text' }));
const graphic = (where: string, fg: string, bgs: readonly string[]): Pair[] =>
  bgs.map((bg) => ({ where, fg, bg, kind: 'graphic' }));

/** Every background text or icons sit on. */
const SURFACES = [
  '--bg',
  '--surface',
  '--surface-2',
  '--sidebar',
  '--selected',
  '--hover over --sidebar',
  '--hover over --surface',
];

/** The pairs the components use (a component using a new pair adds it here). */
const PAIRS: Pair[] = [
  ...text('body text', '--text', [...SURFACES, '--bubble-in', '--bubble-out', '--accent-soft', '--warn-bg']),
  ...text('hints, previews, event lines, subtitles', '--muted', [...SURFACES, '--accent-soft']),
  ...text('timestamps, key storage line, inactive labels', '--faint', [
    ...SURFACES,
    '--bubble-in',
    '--bubble-out',
  ]),
  ...text('links and actions in the accent colour (Connect, Jump to latest, unread time)', '--accent', [
    ...SURFACES,
    '--accent-soft',
  ]),
  ...text('the checked theme segment', '--accent-strong', ['--surface']),
  ...text('primary buttons, unread badges', '--on-accent', ['--accent', '--accent-strong']),
  ...text('errors, Offline, danger buttons', '--danger', [...SURFACES, '--danger-bg']),
  ...text('solid danger button', '--on-danger', ['--danger']),
  ...text('warnings (key change, no keychain, sending paused)', '--warn-text', [
    '--warn-bg',
    '--bg',
    '--sidebar',
    '--selected',
    '--hover over --sidebar',
  ]),
  ...text('Verified', '--ok', ['--surface', '--surface-2']),
  ...text('text in a danger confirmation', '--text', ['--danger-bg']),
  ...graphic('focus ring', '--focus', [
    ...SURFACES,
    '--bubble-out',
    '--accent-soft',
    '--warn-bg',
    '--danger-bg',
  ]),
  ...graphic('delivery ticks (sending, sent)', '--faint', ['--bubble-out']),
  ...graphic('delivery tick (delivered)', '--accent', ['--bubble-out']),
  ...graphic('icon buttons (Settings, Close, Dismiss)', '--muted', [...SURFACES]),
  ...graphic('error icon in a notice', '--danger', ['--surface']),
  ...graphic('connection dot (connected)', '--ok', ['--surface']),
  ...graphic('switch track and checked radio', '--accent', ['--surface', '--surface-2']),
  ...graphic('switch track when off', '--control-off', ['--surface', '--surface-2']),
];

/** Contrast of a pair in a theme, rounded down to two decimals (never rounds a failure up). */
function ratio(pair: Pair, theme: Theme): number {
  return Math.floor(wcagContrast(colour(pair.fg, theme), colour(pair.bg, theme)) * 100) / 100;
}

describe('colour tokens (WCAG 2.1 AA contrast, both themes)', () => {
  it('reads both themes of every token', () => {
    expect(tokens.size).toBeGreaterThan(20);
    for (const [name, value] of tokens) {
      if (['radius', 'radius-lg', 'mono', 'shadow'].includes(name)) continue;
      for (const theme of THEMES) expect(parse(value[theme]), `--${name} (${theme})`).toBeDefined();
    }
  });

  it.each(THEMES)('every pair the UI uses meets its minimum in the %s theme', (theme) => {
    const failures = PAIRS.flatMap((pair) => {
      const need = pair.kind === 'text' ? 4.5 : 3;
      const got = ratio(pair, theme);
      return got >= need
        ? []
        : [
            `${pair.where}: ${pair.fg} on ${pair.bg} = ${got}:1, needs ${need}:1 ` +
              `(${formatHex(colour(pair.fg, theme))} on ${formatHex(colour(pair.bg, theme))})`,
          ];
    });
    expect(failures).toEqual([]);
  });

  it.each(THEMES)('sender names and avatar letters are readable for every hue in the %s theme', (theme) => {
    // The per-name colours of MessageRow (.sender) and Avatar (.avatar), read from their styles, for
    // each of the 360 hues a name can get.
    const sender = componentColour('MessageRow.svelte', '.sender', 'color', theme);
    const letters = componentColour('Avatar.svelte', '.avatar', 'color', theme);
    const disc = componentColour('Avatar.svelte', '.avatar', 'background', theme);
    const failures: string[] = [];
    for (let hue = 0; hue < 360; hue++) {
      for (const bg of ['--bg', '--bubble-in']) {
        const got = wcagContrast(colour(sender(hue), theme), colour(bg, theme));
        if (got < 4.5) failures.push(`sender name, hue ${hue}, on ${bg}: ${got.toFixed(2)}:1`);
      }
      const got = wcagContrast(colour(letters(hue), theme), colour(disc(hue), theme));
      if (got < 4.5) failures.push(`avatar letters, hue ${hue}: ${got.toFixed(2)}:1`);
    }
    expect(failures).toEqual([]);
  });

  it('prints the table of ratios (for the record)', () => {
    const rows = PAIRS.map(
      (pair) =>
        `${pair.kind === 'text' ? 'text   ' : 'graphic'} ${pair.fg} on ${pair.bg}: ` +
        THEMES.map((theme) => `${theme} ${ratio(pair, theme).toFixed(2)}`).join(', '),
    );
    console.log(rows.join('\n'));
    expect(rows).toHaveLength(PAIRS.length);
  });
});

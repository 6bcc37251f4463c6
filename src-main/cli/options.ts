/**
 * Command-line options from one table, shared by `npm run chat` and `npm run relay`: the table gives
 * each option's name, value placeholder, default and help, and how its value is checked and applied.
 * Parsing, the usage line and `--help` are all derived from it, so a new option is one more row.
 *
 * Input is parsed with node:util parseArgs in non-strict mode and its tokens are checked here, so
 * every problem is reported in our own words (one sentence) instead of Node's message text.
 */
import { parseArgs } from 'node:util';
import { UsageError } from '../core/errors.js';

/** One option of a command line; `T` is what the parsed options are collected into. */
export interface OptionSpec<T> {
  /** Long name, without the leading `--`. */
  readonly name: string;
  /** One-letter alias, without the `-`. */
  readonly short?: string;
  /** A flag, or an option that takes a value. */
  readonly kind: 'flag' | 'value';
  /** Placeholder of the value in usage and help (`URL`, `DIR`); value options only. */
  readonly placeholder?: string;
  /** The value used when the option is not given; goes through `apply` like a given one. */
  readonly default?: string;
  /** How help shows the default when it is not `default` itself (a computed home folder). */
  readonly defaultText?: string;
  /** Must be given. */
  readonly required?: boolean;
  /** Options that cannot be given together with this one. */
  readonly excludes?: readonly string[];
  /** Options that must be given together with this one. */
  readonly requires?: readonly string[];
  /** What it does, for --help (one line, no final period). */
  readonly help: string;
  /** Checks the value and records it; throws UsageError with one sentence when the value is wrong. */
  readonly apply?: (target: T, value: string) => void;
}

/** A program's command line: how it is started, what it does, its options and trailing help. */
export interface CommandLine<T> {
  /** How a user starts it: `npm run chat --`. */
  readonly invocation: string;
  /** One sentence on what the program does. */
  readonly summary: string;
  readonly options: readonly OptionSpec<T>[];
  /** Further help after the option list (e.g. the chat's commands). */
  readonly epilogue?: string;
}

/** What parsing found: `help` when --help was given (nothing else is checked then). */
export type ParseResult<T> = { help: true } | { help: false; values: T };

const optionLabel = (o: Pick<OptionSpec<never>, 'name' | 'kind' | 'placeholder'>): string =>
  `--${o.name}${o.kind === 'value' ? ` ${o.placeholder ?? 'VALUE'}` : ''}`;

/** The one-line usage: required options first, then the optional ones in brackets. */
export function usageLine<T>(cli: CommandLine<T>): string {
  const parts: string[] = [];
  const done = new Set<string>();
  for (const o of cli.options.filter((x) => x.required)) parts.push(optionLabel(o));
  for (const o of cli.options) {
    if (o.required || done.has(o.name) || o.name === 'help') continue;
    // Options that exclude each other share one bracket: [--data DIR | --memory].
    const group = [
      o,
      ...cli.options.filter((x) => o.excludes?.includes(x.name) || x.excludes?.includes(o.name)),
    ];
    // Options that need each other share one too: [--tls-cert FILE --tls-key FILE].
    const together = [o, ...cli.options.filter((x) => o.requires?.includes(x.name))];
    for (const g of [...group, ...together]) done.add(g.name);
    parts.push(
      together.length > 1
        ? `[${together.map(optionLabel).join(' ')}]`
        : `[${group.map(optionLabel).join(' | ')}]`,
    );
  }
  return `usage: ${cli.invocation} ${parts.join(' ')}`;
}

/** The full --help text: usage, summary, every option with its default, then the epilogue. */
export function helpText<T>(cli: CommandLine<T>): string {
  const rows = cli.options.map((o) => {
    const label = `${o.short ? `-${o.short}, ` : '    '}${optionLabel(o)}`;
    const shown = o.defaultText ?? o.default;
    const notes = [o.required ? 'required' : undefined, shown !== undefined ? `default: ${shown}` : undefined]
      .filter(Boolean)
      .join('; ');
    return { label, text: notes ? `${o.help} (${notes})` : o.help };
  });
  const width = Math.max(...rows.map((r) => r.label.length)) + 2;
  const lines = [usageLine(cli), '', cli.summary, '', 'options:'];
  for (const r of rows) lines.push(`  ${r.label.padEnd(width)}${r.text}`);
  if (cli.epilogue) lines.push('', cli.epilogue);
  return lines.join('\n');
}

/**
 * Parses `args` against the table into `target` (which holds no values yet): defaults first, then
 * what was given. Throws UsageError naming the problem: an unknown option, a missing or unexpected
 * value, a stray argument, a missing required option, two options that exclude each other, one
 * given without another it requires, or
 * whatever an option's own `apply` refuses.
 */
export function parseCommandLine<T>(cli: CommandLine<T>, args: readonly string[], target: T): ParseResult<T> {
  const byName = new Map(cli.options.map((o) => [o.name, o]));
  const parsed = parseArgs({
    args: [...args],
    strict: false,
    allowPositionals: true,
    tokens: true,
    options: Object.fromEntries(
      cli.options.map((o) => [
        o.name,
        {
          type: o.kind === 'value' ? ('string' as const) : ('boolean' as const),
          ...(o.short ? { short: o.short } : {}),
        },
      ]),
    ),
  });
  const given = new Map<string, string | true>();
  for (const token of parsed.tokens) {
    if (token.kind === 'option-terminator') continue;
    if (token.kind === 'positional') throw new UsageError(`unexpected argument "${token.value}"`);
    const spec = byName.get(token.name);
    if (!spec) throw new UsageError(`unknown option ${token.rawName}`);
    if (spec.name === 'help') return { help: true };
    if (spec.kind === 'flag') {
      if (token.value !== undefined) throw new UsageError(`${token.rawName} takes no value`);
      given.set(spec.name, true);
      continue;
    }
    // Non-strict parseArgs takes the next argument even when it is another option: `--user --relay`.
    if (token.value === undefined || (!token.inlineValue && token.value.startsWith('-')))
      throw new UsageError(`${token.rawName} needs a value (${optionLabel(spec)})`);
    if (given.has(spec.name)) throw new UsageError(`${token.rawName} is given twice`);
    given.set(spec.name, token.value);
  }
  for (const spec of cli.options) {
    if (spec.required && !given.has(spec.name)) throw new UsageError(`${optionLabel(spec)} is required`);
    for (const other of spec.excludes ?? [])
      if (given.has(spec.name) && given.has(other))
        throw new UsageError(`--${spec.name} and --${other} cannot be used together`);
    for (const other of spec.requires ?? [])
      if (given.has(spec.name) && !given.has(other))
        throw new UsageError(`--${spec.name} needs --${other} as well`);
  }
  for (const spec of cli.options) {
    const value = given.get(spec.name) ?? spec.default;
    if (value === undefined || !spec.apply) continue;
    spec.apply(target, value === true ? 'true' : value);
  }
  return { help: false, values: target };
}

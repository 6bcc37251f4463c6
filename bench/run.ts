/**
 * Benchmark entry point: `npm run bench [-- --json] [-- --quick] [-- --only <substring>]`.
 *
 * Runs every suite in SUITES (each returns result rows), then prints a table, or with --json exactly
 * one JSON document on stdout: { "results": [ { name, unit, ours, reference, ratio, target, ... } ] }.
 * Progress goes to stderr. To add a suite, implement `Suite` (harness.ts) and append it to SUITES.
 */
import os from 'node:os';

import { cryptoSuite, libsignalVersion } from './crypto.js';
import {
  type Clock,
  type Direction,
  FULL,
  heapSettled,
  type MeasureOptions,
  QUICK,
  type ResultRow,
  type Suite,
} from './harness.js';
import { floodSuite } from './flood.js';
import { relaySuite, wsVersion } from './relay.js';

const SUITES: readonly Suite[] = [cryptoSuite, relaySuite, floodSuite];

interface Args {
  json: boolean;
  quick: boolean;
  only: string | undefined;
  clock: Clock;
}

const USAGE = `usage: npm run -s bench -- [--json] [--quick] [--cpu-time] [--only <substring>]
  --json             one JSON document on stdout ({ "results": [...] }), progress on stderr
  --quick            short rounds (${QUICK.rounds} x ${QUICK.roundMs} ms): a smoke test, not for publishing
  --only <substring> run only scenarios whose "suite/name" contains it (case-insensitive)
  --cpu-time         count ops per second of this process's CPU time instead of wall time
                     (steadier when other processes load the machine; crypto suite only, the
                     relay suite spans two processes and always counts wall time)`;

function parseArgs(argv: string[]): Args {
  const args: Args = { json: false, quick: false, only: undefined, clock: 'wall' };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') args.json = true;
    else if (a === '--quick') args.quick = true;
    else if (a === '--cpu-time') args.clock = 'cpu';
    else if (a === '--only') {
      const v = argv[++i];
      if (v === undefined) throw new Error('--only needs a value');
      args.only = v;
    } else if (a.startsWith('--only=')) args.only = a.slice('--only='.length);
    else if (a === '--help' || a === '-h') {
      process.stdout.write(`${USAGE}\n\nscenarios:\n${allNames().join('\n')}\n`);
      process.exit(0);
    } else throw new Error(`unknown argument ${a}`);
  }
  return args;
}

const allNames = (): string[] => SUITES.flatMap((s) => s.scenarios.map((n) => `  ${s.name}/${n}`));

function selector(only: string | undefined, suite: Suite): (scenario: string) => boolean {
  const needle = only?.toLowerCase();
  return (scenario) => needle === undefined || `${suite.name}/${scenario}`.toLowerCase().includes(needle);
}

const fmtRate = (v: number | null): string =>
  v === null
    ? '—'
    : v.toLocaleString('en-US', {
        minimumFractionDigits: v >= 100 ? 0 : 1,
        maximumFractionDigits: v >= 100 ? 0 : 1,
      });
const fmtSpread = (v: number | null | undefined): string => (v === null || v === undefined ? '' : `±${v}%`);
const fmtRatio = (v: number | null): string => (v === null ? '—' : `${v.toFixed(2)}x`);

const meets = (value: number, target: number, direction: Direction): boolean =>
  direction === 'lower' ? value <= target : value >= target;

/** ok when every target the row has is met (ratio and/or absolute), MISS otherwise, '' without targets. */
function status(r: ResultRow): string {
  const checks: boolean[] = [];
  if (r.ratio !== null && r.target !== null) checks.push(meets(r.ratio, r.target, r.direction));
  if (r.ours !== null && r.absoluteTarget !== null) checks.push(meets(r.ours, r.absoluteTarget, r.direction));
  if (checks.length === 0) return '';
  return checks.every(Boolean) ? 'ok' : 'MISS';
}

function fmtTarget(r: ResultRow): string {
  const op = r.direction === 'lower' ? '<=' : '>=';
  const parts: string[] = [];
  if (r.target !== null) parts.push(`${op} ${r.target.toFixed(1)}x`);
  if (r.absoluteTarget !== null) parts.push(`${op} ${fmtRate(r.absoluteTarget)} ${r.unit}`);
  return parts.join(', ');
}

interface Section {
  readonly suite: Suite;
  readonly rows: ResultRow[];
}

/** One block per suite (its header names its reference), the columns aligned across all blocks. */
function table(sections: readonly Section[]): string {
  const head = (s: Suite): string[] => [s.name, 'unit', 'ours', '±', s.reference, '±', 'ratio', 'target', ''];
  const cells = (r: ResultRow): string[] => [
    r.name,
    r.unit,
    fmtRate(r.ours),
    fmtSpread(r.oursSpreadPct),
    fmtRate(r.reference),
    fmtSpread(r.referenceSpreadPct),
    fmtRatio(r.ratio),
    fmtTarget(r),
    status(r),
  ];
  const all = sections.flatMap((s) => [head(s.suite), ...s.rows.map(cells)]);
  const widths = all[0]!.map((_, i) => Math.max(...all.map((c) => c[i]!.length)));
  const numeric = new Set([2, 3, 4, 5, 6]);
  const line = (c: string[]): string =>
    c
      .map((x, i) => (numeric.has(i) ? x.padStart(widths[i]!) : x.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const rule = widths
    .map((w) => '-'.repeat(w))
    .join('  ')
    .trimEnd();
  const out: string[] = [];
  for (const s of sections) {
    if (out.length) out.push('');
    out.push(line(head(s.suite)), rule, ...s.rows.map((r) => line(cells(r))));
  }
  const notes = sections.flatMap((s) => s.rows.filter((r) => r.note).map((r) => `  ${r.name}: ${r.note}`));
  if (notes.length) out.push('', 'notes:', ...notes);
  return out.join('\n');
}

async function main(): Promise<void> {
  let args: Args;
  try {
    args = parseArgs(process.argv.slice(2));
  } catch (e) {
    process.stderr.write(`${e instanceof Error ? e.message : String(e)}\n${USAGE}\n`);
    process.exit(2);
  }
  const log = (m: string): void => void process.stderr.write(`${m}\n`);
  const plan = SUITES.map((suite) => ({ suite, selected: selector(args.only, suite) })).filter((p) =>
    p.suite.scenarios.some(p.selected),
  );
  if (plan.length === 0) {
    process.stderr.write(`--only ${args.only}: no scenario matches; there are:\n${allNames().join('\n')}\n`);
    process.exit(2);
  }

  // Nothing but the final document may reach stdout in --json mode (a dependency might log).
  const realLog = console.log;
  if (args.json) console.log = console.error;
  const opts: MeasureOptions = { ...(args.quick ? QUICK : FULL), clock: args.clock };
  const meta = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    cpu: os.cpus()[0]?.model ?? 'unknown',
    cpus: os.cpus().length,
    libsignal: libsignalVersion(),
    ws: wsVersion(),
    rounds: opts.rounds,
    roundMs: opts.roundMs,
    warmupMs: opts.warmupMs,
    clock: opts.clock,
    quick: args.quick,
    heapSettled,
  };
  log(
    `bench: ${meta.node} ${meta.platform}, ${meta.cpu} x${meta.cpus}; ` +
      `${opts.rounds} interleaved rounds x ${opts.roundMs} ms after ${opts.warmupMs} ms warm-up, ` +
      `median shown, ops per ${opts.clock === 'cpu' ? 'CPU' : 'wall'} second` +
      (heapSettled ? '' : '; rounds do not start from a collected heap (run node with --expose-gc)'),
  );

  const sections: Section[] = [];
  const started = performance.now();
  for (const { suite, selected } of plan) {
    sections.push({ suite, rows: await suite.run({ quick: args.quick, measure: opts, selected, log }) });
  }
  const results = sections.flatMap((s) => s.rows);
  log(`bench: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  console.log = realLog;

  if (args.json) process.stdout.write(`${JSON.stringify({ results, meta }, null, 2)}\n`);
  else process.stdout.write(`${table(sections)}\n`);
}

await main();

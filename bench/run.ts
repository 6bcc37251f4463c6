/**
 * Benchmark entry point: `npm run bench [-- --json] [-- --quick] [-- --only <substring>]`.
 *
 * Runs every suite in SUITES (each returns result rows), then prints a table, or with --json exactly
 * one JSON document on stdout: { "results": [ { name, unit, ours, reference, ratio, target, ... } ] }.
 * Progress goes to stderr. To add a suite, implement `Suite` (harness.ts) and append it to SUITES.
 */
import os from 'node:os';

import { cryptoSuite, libsignalVersion } from './crypto.js';
import { type Clock, FULL, type MeasureOptions, QUICK, type ResultRow, type Suite } from './harness.js';

const SUITES: readonly Suite[] = [cryptoSuite];

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
                     (steadier when other processes load the machine)`;

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
  v === null ? '—' : v.toLocaleString('en-US', { maximumFractionDigits: v >= 100 ? 0 : 1 });
const fmtSpread = (v: number | null | undefined): string => (v === null || v === undefined ? '' : `±${v}%`);
const fmtRatio = (v: number | null): string => (v === null ? '—' : `${v.toFixed(2)}x`);

function status(r: ResultRow): string {
  if (r.ratio === null || r.target === null) return '';
  return r.ratio >= r.target ? 'ok' : 'MISS';
}

function table(rows: ResultRow[]): string {
  const head = ['scenario', 'unit', 'ours', '±', 'libsignal', '±', 'ratio', 'target', ''];
  const body = rows.map((r) => [
    r.name,
    r.unit,
    fmtRate(r.ours),
    fmtSpread(r.oursSpreadPct),
    fmtRate(r.reference),
    fmtSpread(r.referenceSpreadPct),
    fmtRatio(r.ratio),
    r.target === null ? '' : `>= ${r.target.toFixed(1)}x`,
    status(r),
  ]);
  const widths = head.map((h, i) => Math.max(h.length, ...body.map((b) => b[i]!.length)));
  const numeric = new Set([2, 3, 4, 5, 6]);
  const line = (cells: string[]): string =>
    cells
      .map((c, i) => (numeric.has(i) ? c.padStart(widths[i]!) : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  const out = [
    line(head),
    widths
      .map((w) => '-'.repeat(w))
      .join('  ')
      .trimEnd(),
    ...body.map(line),
  ];
  const notes = rows.filter((r) => r.note).map((r) => `  ${r.name}: ${r.note}`);
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
    rounds: opts.rounds,
    roundMs: opts.roundMs,
    warmupMs: opts.warmupMs,
    clock: opts.clock,
    quick: args.quick,
  };
  log(
    `bench: ${meta.node} ${meta.platform}, ${meta.cpu} x${meta.cpus}; ` +
      `${opts.rounds} interleaved rounds x ${opts.roundMs} ms after ${opts.warmupMs} ms warm-up, ` +
      `median shown, ops per ${opts.clock === 'cpu' ? 'CPU' : 'wall'} second`,
  );

  const results: ResultRow[] = [];
  const started = performance.now();
  for (const { suite, selected } of plan) {
    results.push(...(await suite.run({ quick: args.quick, measure: opts, selected, log })));
  }
  log(`bench: done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  console.log = realLog;

  if (args.json) process.stdout.write(`${JSON.stringify({ results, meta }, null, 2)}\n`);
  else process.stdout.write(`${table(results)}\n`);
}

await main();

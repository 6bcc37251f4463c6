/**
 * Shared pieces of the benchmark: the suite/row types every suite module implements and the
 * interleaved A/B measurement. `run.ts` is the command line; suite modules (crypto.ts, later the relay
 * suite) import only this file, so there is no import cycle with the entry point.
 */
import { performance } from 'node:perf_hooks';

/** One line of output: our figure beside the reference implementation's, as throughput. */
export interface ResultRow {
  readonly name: string;
  /** e.g. "msgs/s"; larger is better for every row. */
  readonly unit: string;
  /** Median over the measured rounds. */
  readonly ours: number | null;
  readonly reference: number | null;
  /** ours / reference (throughput), or null when either side is missing. */
  readonly ratio: number | null;
  /** The ratio we aim for (ours must reach at least target x the reference), or null. */
  readonly target: number | null;
  /** Half the min-max spread of the rounds, in % of the median: the visible noise. */
  readonly oursSpreadPct?: number | null;
  readonly referenceSpreadPct?: number | null;
  /** ops/s of every measured round, in order (JSON only). */
  readonly oursRounds?: number[] | null;
  readonly referenceRounds?: number[] | null;
  /** Why a side is missing, or what the reference includes that we do not. */
  readonly note?: string;
}

/** What the harness hands a suite. */
export interface SuiteContext {
  /** Short rounds and fewer of them (smoke test, not for publishing figures). */
  readonly quick: boolean;
  /** Rounds, their length and the clock, as chosen on the command line (pass to measurePair). */
  readonly measure: MeasureOptions;
  /** Whether the scenario of this name was selected (`--only`). */
  selected(scenario: string): boolean;
  /** Progress to stderr (stdout is reserved for the table or the JSON document). */
  log(message: string): void;
}

/** A group of scenarios; returns one row per selected scenario. */
export interface Suite {
  readonly name: string;
  /** The scenario (row) names this suite can produce, for `--only` and `--help`. */
  readonly scenarios: readonly string[];
  run(ctx: SuiteContext): Promise<ResultRow[]>;
}

/** One unit of work; may be synchronous (our core) or return a promise (libsignal's async API). */
export type Op = () => void | Promise<void>;

/**
 * `wall`: operations per elapsed second (the default). `cpu`: operations per second of this process's
 * CPU time (user + system, all its threads), which other busy processes on the machine disturb far
 * less; use it on a shared machine.
 */
export type Clock = 'wall' | 'cpu';

export interface MeasureOptions {
  readonly rounds: number;
  readonly roundMs: number;
  readonly warmupMs: number;
  readonly clock: Clock;
}

export const FULL: Omit<MeasureOptions, 'clock'> = { rounds: 5, roundMs: 800, warmupMs: 400 };
export const QUICK: Omit<MeasureOptions, 'clock'> = { rounds: 3, roundMs: 150, warmupMs: 100 };

const cpuSeconds = (): number => {
  const u = process.cpuUsage();
  return (u.user + u.system) / 1e6;
};

/** Runs `op` for about `ms` milliseconds of wall time; returns operations per second of `clock`. */
async function rateFor(op: Op, ms: number, clock: Clock): Promise<number> {
  const cpuStart = clock === 'cpu' ? cpuSeconds() : 0;
  const start = performance.now();
  const end = start + ms;
  let n = 0;
  let now: number;
  do {
    const r = op();
    if (r instanceof Promise) await r;
    n++;
    now = performance.now();
  } while (now < end);
  const seconds = clock === 'cpu' ? cpuSeconds() - cpuStart : (now - start) / 1000;
  return n / seconds;
}

export interface Sample {
  /** ops/s of each round, in order. */
  readonly rounds: number[];
  readonly median: number;
  /** Half the min-max range in % of the median. */
  readonly spreadPct: number;
}

function summarise(rounds: number[]): Sample {
  const sorted = [...rounds].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  const median = sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
  const spreadPct = median > 0 ? ((sorted[sorted.length - 1]! - sorted[0]!) / 2 / median) * 100 : 0;
  return { rounds, median, spreadPct };
}

/**
 * Measures two implementations of the same scenario in the same process: a warm-up of each, then
 * `rounds` rounds of A then B (A/B/A/B...), so drift (thermal, other load, GC state) hits both sides
 * alike. `b` may be null (reference unavailable): then only A is measured.
 */
export async function measurePair(
  a: Op,
  b: Op | null,
  opts: MeasureOptions,
): Promise<{ a: Sample; b: Sample | null }> {
  await rateFor(a, opts.warmupMs, opts.clock);
  if (b) await rateFor(b, opts.warmupMs, opts.clock);
  const ra: number[] = [];
  const rb: number[] = [];
  for (let i = 0; i < opts.rounds; i++) {
    ra.push(await rateFor(a, opts.roundMs, opts.clock));
    if (b) rb.push(await rateFor(b, opts.roundMs, opts.clock));
  }
  return { a: summarise(ra), b: b ? summarise(rb) : null };
}

/** Rounds a throughput figure: whole numbers from 100 up, one decimal below. */
export function roundRate(v: number): number {
  return v >= 100 ? Math.round(v) : Math.round(v * 10) / 10;
}

/** Builds a row from two samples (ratio = ours / reference, two decimals). */
export function row(
  name: string,
  unit: string,
  target: number | null,
  ours: Sample | null,
  reference: Sample | null,
  note?: string,
): ResultRow {
  const o = ours ? roundRate(ours.median) : null;
  const r = reference ? roundRate(reference.median) : null;
  const ratio = ours && reference ? Math.round((ours.median / reference.median) * 100) / 100 : null;
  return {
    name,
    unit,
    ours: o,
    reference: r,
    ratio,
    target,
    oursSpreadPct: ours ? Math.round(ours.spreadPct * 10) / 10 : null,
    referenceSpreadPct: reference ? Math.round(reference.spreadPct * 10) / 10 : null,
    oursRounds: ours ? ours.rounds.map(roundRate) : null,
    referenceRounds: reference ? reference.rounds.map(roundRate) : null,
    ...(note ? { note } : {}),
  };
}

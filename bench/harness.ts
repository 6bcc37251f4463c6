/**
 * Shared pieces of the benchmark: the suite/row types every suite module implements and the
 * interleaved A/B measurement. `run.ts` is the command line; suite modules (crypto.ts, relay.ts)
 * import only this file, so there is no import cycle with the entry point.
 */
import { performance } from 'node:perf_hooks';

/**
 * Whether a larger figure is better (throughput: `higher`) or worse (memory, latency: `lower`). It
 * decides which way the targets point; the ratio is ours / reference either way.
 */
export type Direction = 'higher' | 'lower';

/** One line of output: our figure beside the reference implementation's. */
export interface ResultRow {
  readonly name: string;
  /** e.g. "msgs/s" or "KiB/conn"; `direction` says whether larger is better. */
  readonly unit: string;
  /** Median over the measured rounds. */
  readonly ours: number | null;
  readonly reference: number | null;
  /** ours / reference, or null when either side is missing. */
  readonly ratio: number | null;
  /**
   * The ratio we aim for, or null: with direction `higher` the ratio must be >= target, with
   * `lower` it must be <= target (e.g. memory at most 2x the reference).
   */
  readonly target: number | null;
  /** `higher` (the default: throughput) or `lower` (memory): which way `target` and `absoluteTarget` point. */
  readonly direction: Direction;
  /**
   * A target for `ours` itself, in `unit` (>= with direction `higher`, <= with `lower`), for rows
   * without a reference to compare with; null when the row has none.
   */
  readonly absoluteTarget: number | null;
  /** Half the min-max spread of the rounds, in % of the median: the visible noise (null for one round). */
  readonly oursSpreadPct?: number | null;
  readonly referenceSpreadPct?: number | null;
  /** The figure of every measured round, in order (JSON only). */
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
  /** What the reference column holds, for the table header (e.g. "libsignal"). */
  readonly reference: string;
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

const gc = (globalThis as { gc?: () => void }).gc;

/**
 * Collects the heap before a round (when node runs with --expose-gc, as `npm run bench` does): a full
 * collection, a turn of the event loop for the finalizers it queued (libsignal frees its native objects
 * in them), and another. Without it a round pays for collecting what the previous round, the other
 * side's, left behind: our group rounds after libsignal's ran ~25 % slower, scavenging around tens of
 * thousands of libsignal handles still awaiting finalization.
 */
export async function settleHeap(): Promise<void> {
  if (!gc) return;
  gc();
  await new Promise((resolve) => setImmediate(resolve));
  await new Promise((resolve) => setTimeout(resolve, 10));
  gc();
}

/** Whether rounds start from a collected heap (node --expose-gc), for the report. */
export const heapSettled = gc !== undefined;

/** Runs `op` for about `ms` milliseconds of wall time; returns operations per second of `clock`. */
async function rateFor(op: Op, ms: number, clock: Clock): Promise<number> {
  await settleHeap();
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
  /** The figure (ops/s, or e.g. KiB) of each round, in order. */
  readonly rounds: number[];
  readonly median: number;
  /** Half the min-max range in % of the median. */
  readonly spreadPct: number;
}

/** Median and spread of measured rounds. */
export function summarise(rounds: number[]): Sample {
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
  return measureRounds((ms) => rateFor(a, ms, opts.clock), b && ((ms) => rateFor(b, ms, opts.clock)), opts);
}

/**
 * Runs the workload for about `ms` milliseconds and returns its rate. For workloads that are not a
 * loop of single operations (a pipelined message stream between processes, say).
 */
export type Round = (ms: number) => Promise<number>;

/** measurePair for rounds: warm-up of each, then `rounds` interleaved rounds A/B/A/B... */
export async function measureRounds(
  a: Round,
  b: Round | null,
  opts: Pick<MeasureOptions, 'rounds' | 'roundMs' | 'warmupMs'>,
): Promise<{ a: Sample; b: Sample | null }> {
  await a(opts.warmupMs);
  if (b) await b(opts.warmupMs);
  const ra: number[] = [];
  const rb: number[] = [];
  for (let i = 0; i < opts.rounds; i++) {
    ra.push(await a(opts.roundMs));
    if (b) rb.push(await b(opts.roundMs));
  }
  return { a: summarise(ra), b: b ? summarise(rb) : null };
}

/** Rounds a throughput figure: whole numbers from 100 up, one decimal below. */
export function roundRate(v: number): number {
  return v >= 100 ? Math.round(v) : Math.round(v * 10) / 10;
}

/** Which way a row's targets point, and a target for `ours` itself (see ResultRow). */
export interface RowOptions {
  readonly direction?: Direction;
  readonly absoluteTarget?: number | null;
}

/** The spread to one decimal; null without a sample or with a single round (no spread to show). */
const spread = (s: Sample | null): number | null =>
  s && s.rounds.length > 1 ? Math.round(s.spreadPct * 10) / 10 : null;

/** Builds a row from two samples (ratio = ours / reference, two decimals). */
export function row(
  name: string,
  unit: string,
  target: number | null,
  ours: Sample | null,
  reference: Sample | null,
  note?: string,
  options: RowOptions = {},
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
    direction: options.direction ?? 'higher',
    absoluteTarget: options.absoluteTarget ?? null,
    oursSpreadPct: spread(ours),
    referenceSpreadPct: spread(reference),
    oursRounds: ours ? ours.rounds.map(roundRate) : null,
    referenceRounds: reference ? reference.rounds.map(roundRate) : null,
    ...(note ? { note } : {}),
  };
}

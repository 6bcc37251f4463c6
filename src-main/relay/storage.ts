/**
 * Storage faults (issue 11): a full disk, a read-only data directory, an I/O error or a damaged
 * database.
 *
 * At start, a data directory that cannot be written or a database that is damaged stops the relay with
 * a StorageStartError naming the file, what is wrong and how to recover: never a fresh database over
 * the old one, which would forget every account and queued message.
 *
 * While running, a write that fails with such a fault puts the relay in the `storage unavailable`
 * state (StorageState) rather than failing request after request: requests that need a write are
 * refused at once with STORAGE_UNAVAILABLE (nothing that was not stored is acknowledged), logins and
 * registrations are refused with close code 1013, `/healthz` fails its `storage` check, and a probe
 * write runs every `storageProbeIntervalMs` until it succeeds; then the relay serves again by itself.
 */
import { closeSync, fsyncSync, mkdirSync, openSync, readSync, rmSync, statSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { CheckState, HealthCheck } from './health.js';
import { errorText, type RelayLogger } from './log.js';
import type { RelayMetrics } from './metrics.js';

/** The code of an error (SQLite's `SQLITE_…` or Node's `E…`), if it has one. */
function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | undefined)?.code;
  return typeof code === 'string' ? code : undefined;
}

/** SQLite's and the system's codes of a storage fault, and what each means in words. */
const FAULTS: [test: (code: string) => boolean, words: string][] = [
  [(c) => c === 'SQLITE_FULL' || c === 'ENOSPC' || c === 'EDQUOT', 'the disk is full'],
  [(c) => c.startsWith('SQLITE_READONLY') || c === 'EROFS', 'the data directory is read-only'],
  [
    (c) => c === 'EACCES' || c === 'EPERM' || c === 'SQLITE_PERM',
    'the relay may not write its data directory',
  ],
  [(c) => c.startsWith('SQLITE_IOERR') || c === 'EIO', 'the disk reports input/output errors'],
  [(c) => c.startsWith('SQLITE_CANTOPEN'), 'the database files cannot be opened'],
  [(c) => c.startsWith('SQLITE_CORRUPT') || c === 'SQLITE_NOTADB', 'the database is damaged'],
];

/** True for an error of the disk or the database files (not a bug of the relay's own). */
export function isStorageFault(err: unknown): boolean {
  const code = codeOf(err);
  return code !== undefined && FAULTS.some(([test]) => test(code));
}

/** What is wrong, in words for users (`the disk is full`). */
export function faultWords(err: unknown): string {
  const code = codeOf(err);
  return (code && FAULTS.find(([test]) => test(code))?.[1]) ?? 'the database cannot be written';
}

/** A storage fault in words for operators: what is wrong, then SQLite's or the system's code and message. */
export function describeFault(err: unknown): string {
  const code = codeOf(err);
  return `${faultWords(err)} (${code ? `${code}: ` : ''}${errorText(err)})`;
}

/** The relay cannot start on its data: the message says which file, what is wrong and what to do. */
export class StorageStartError extends Error {
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = 'StorageStartError';
  }
}

/** How to get a damaged database's contents back, for start errors and the operations guide. */
export function recoverySteps(file: string): string {
  return (
    `Keep a copy of the damaged file, then restore ${file} from a backup, or export what is readable ` +
    `with \`sqlite3 ${file} .recover > dump.sql\`, load it into a new file (\`sqlite3 new.sqlite < dump.sql\`) ` +
    'and put that in its place (docs/OPERATIONS.md, Storage faults).'
  );
}

/** A database that SQLite refused to open or check: a StorageStartError about `file`. */
export function databaseStartError(file: string, err: unknown): StorageStartError {
  const code = codeOf(err) ?? '';
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB')
    return new StorageStartError(
      `The database ${file} is damaged (${errorText(err)}): the relay does not start over it, since a fresh ` +
        `database would forget every account and queued message. ${recoverySteps(file)}`,
      { cause: err },
    );
  return new StorageStartError(
    `The database ${file} cannot be opened: ${describeFault(err)}. Check the disk, the mount and the ` +
      'permissions of the data directory, then start the relay again.',
    { cause: err },
  );
}

/** A failed `PRAGMA quick_check` of `file`: what it found, as a StorageStartError. */
export function integrityStartError(file: string, problems: string[]): StorageStartError {
  const shown = problems.slice(0, 3).join('; ');
  return new StorageStartError(
    `The database ${file} is damaged (its integrity check found: ${shown}${problems.length > 3 ? '; …' : ''}): ` +
      'the relay does not start over it, since it could lose or invent accounts and queued messages. ' +
      recoverySteps(file),
  );
}

const WAL_HEADER_BYTES = 32;

/** A file's size, or undefined if there is none. */
function sizeOf(file: string): number | undefined {
  try {
    return statSync(file).size;
  } catch {
    return undefined;
  }
}

/**
 * Checks a database's files before SQLite opens them, where SQLite itself would start afresh:
 * - an empty database file without a WAL in a data directory that was used before (`usedMarker`, the
 *   relay key, exists): SQLite takes it for a new database, forgetting every account or queued message;
 * - a `<file>-wal` whose header does not verify: SQLite takes it for an empty one and overwrites it,
 *   silently dropping the commits it holds.
 */
export function checkDatabaseFiles(file: string, usedMarker: string): void {
  const wal = `${file}-wal`;
  const size = sizeOf(wal);
  if (sizeOf(file) === 0 && !size && sizeOf(usedMarker) !== undefined)
    throw new StorageStartError(
      `The database ${file} is empty (0 bytes) although this data directory was used before (${usedMarker} ` +
        'exists): it was truncated or replaced, and the relay does not start afresh over it, since that ' +
        `would forget every account and queued message. Restore ${file} from a backup (docs/OPERATIONS.md, ` +
        'Backups); only if it is meant to start empty, delete it and start again.',
    );
  if (!size) return; // no WAL: nothing to replay
  const header = Buffer.alloc(WAL_HEADER_BYTES);
  const fd = openSync(wal, 'r');
  let read: number;
  try {
    read = readSync(fd, header, 0, WAL_HEADER_BYTES, 0);
  } finally {
    closeSync(fd);
  }
  const problem = read < WAL_HEADER_BYTES ? 'it is shorter than a WAL header' : walHeaderProblem(header);
  if (problem === undefined) return;
  throw new StorageStartError(
    `The write-ahead log ${wal} of the database ${file} is damaged (${problem}): SQLite would discard it ` +
      'silently, with every commit it holds, so the relay does not start. Keep a copy of both files; then ' +
      `restore them from a backup, or move ${wal} aside if losing the writes since the last checkpoint is ` +
      `acceptable (the database itself opens without it). ${recoverySteps(file)}`,
  );
}

/** Why a WAL header (https://sqlite.org/fileformat2.html#walformat) is not valid, or undefined. */
function walHeaderProblem(h: Buffer): string | undefined {
  const magic = h.readUInt32BE(0);
  if (magic !== 0x377f0682 && magic !== 0x377f0683) return 'its header is not a SQLite WAL header';
  if (h.readUInt32BE(4) !== 3007000) return 'its header names an unknown WAL format version';
  const bigEndian = (magic & 1) === 1;
  let s0 = 0;
  let s1 = 0;
  for (let i = 0; i < 24; i += 8) {
    const x0 = bigEndian ? h.readUInt32BE(i) : h.readUInt32LE(i);
    const x1 = bigEndian ? h.readUInt32BE(i + 4) : h.readUInt32LE(i + 4);
    s0 = (s0 + x0 + s1) >>> 0;
    s1 = (s1 + x1 + s0) >>> 0;
  }
  if (s0 !== h.readUInt32BE(24) || s1 !== h.readUInt32BE(28)) return 'its header checksum does not match';
  return undefined;
}

/**
 * Creates the data directory if needed and writes, syncs and removes a probe file in it, so that a
 * read-only or full directory is named at start rather than at the first message.
 */
export function checkDataDir(dataDir: string): void {
  const probe = join(dataDir, '.write-test');
  try {
    mkdirSync(dataDir, { recursive: true, mode: 0o700 }); // it holds the relay's key (relay-key.ts)
    const fd = openSync(probe, 'w', 0o600);
    try {
      writeSync(fd, 'sealed relay write test\n');
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    rmSync(probe, { force: true });
  } catch (err) {
    const code = codeOf(err);
    const what =
      code === 'EROFS'
        ? 'is on a read-only file system'
        : code === 'EACCES' || code === 'EPERM'
          ? 'may not be written by the relay (permissions)'
          : code === 'ENOSPC' || code === 'EDQUOT'
            ? 'is on a full disk'
            : `cannot be written (${errorText(err)})`;
    throw new StorageStartError(
      `The data directory ${dataDir} ${what}: the relay keeps its accounts and queued messages there and ` +
        'must be able to write them. Make it writable (remount it read-write, fix its owner or permissions, ' +
        'free some space), then start the relay again.',
      { cause: err },
    );
  }
}

/** The `storage` health check and the state behind it. */
export class StorageState implements HealthCheck {
  readonly name = 'storage';
  private fault: { reason: string; words: string; since: number } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;

  constructor(
    /** A write through every store (a row written, removed and synced); rejects while it still fails. */
    private readonly probe: () => Promise<void>,
    private readonly probeIntervalMs: number,
    private readonly log: RelayLogger,
    private readonly metrics: RelayMetrics | undefined,
    /** Runs once the relay can write again. */
    private readonly onRecovered: () => void,
  ) {}

  /** False while the relay is in the `storage unavailable` state. */
  get available(): boolean {
    return this.fault === undefined;
  }

  /** Why storage is unavailable, in plain words for users (undefined while it is available). */
  get words(): string | undefined {
    return this.fault?.words;
  }

  state(): CheckState {
    return this.fault ? { ok: false, reason: this.fault.reason } : { ok: true };
  }

  /**
   * A write failed: a storage fault puts the relay in the `storage unavailable` state (logged once,
   * probed until it passes); returns whether it was one.
   */
  failed(err: unknown): boolean {
    if (!isStorageFault(err)) return false;
    if (this.fault || this.stopped) return true;
    this.fault = { reason: describeFault(err), words: faultWords(err), since: Date.now() };
    this.metrics?.storageUnavailable(true);
    this.log.error(
      'storage_unavailable',
      `storage unavailable: ${this.fault.reason}; refusing writes until a probe write succeeds`,
      { error: this.fault.reason },
    );
    this.schedule();
    return true;
  }

  /** Stops probing (the relay is closing). */
  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tryProbe(), this.probeIntervalMs);
  }

  private async tryProbe(): Promise<void> {
    try {
      await this.probe();
    } catch (err) {
      if (this.fault && isStorageFault(err)) {
        this.fault.reason = describeFault(err);
        this.fault.words = faultWords(err);
      }
      this.schedule();
      return;
    }
    if (this.stopped || !this.fault) return;
    const seconds = Math.round((Date.now() - this.fault.since) / 1000);
    this.fault = undefined;
    this.metrics?.storageUnavailable(false);
    this.log.info('storage_recovered', `storage available again after ${seconds} s`);
    this.onRecovered();
  }
}

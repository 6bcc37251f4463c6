/**
 * Storage faults of the profile's local database (issue 11): a full disk, a read-only folder, a
 * damaged file or an I/O error. Each is recognised from SQLite's result code (better-sqlite3 sets it
 * as `code`) or the operating system's errno, and told as a sentence: what is wrong, and that nothing
 * is lost (what Sealed cannot save stays on the relay, unacknowledged, until it can).
 */
import { ServiceCode, ServiceError } from './errors.js';
import type { StorageProblem, StorageProblemReason } from '../shared/messenger-api.js';

/** The kind of storage fault an error is, or undefined for any other error. */
export function storageFaultReason(e: unknown): StorageProblemReason | undefined {
  if (e instanceof StorageProblemError) return e.problem.reason;
  const code = (e as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return undefined;
  if (code === 'SQLITE_FULL' || code === 'ENOSPC' || code === 'EDQUOT') return 'full';
  if (code.startsWith('SQLITE_READONLY') || code === 'EROFS' || code === 'EACCES' || code === 'EPERM')
    return 'readOnly';
  if (code.startsWith('SQLITE_CORRUPT') || code === 'SQLITE_NOTADB') return 'damaged';
  if (code.startsWith('SQLITE_IOERR') || code.startsWith('SQLITE_CANTOPEN') || code === 'EIO') return 'io';
  return undefined;
}

/** The sentence for a fault: what is wrong, what happens to new messages, what to do. */
export function storageSentence(reason: StorageProblemReason): string {
  switch (reason) {
    case 'full':
      return 'Your disk is full. Sealed cannot save new messages, so they stay on the relay until you free some space.';
    case 'readOnly':
      return 'Sealed cannot write to its folder: it is read-only. New messages stay on the relay until Sealed can save them again.';
    case 'damaged':
      return 'Sealed’s database is damaged. New messages stay on the relay until it can be opened again.';
    case 'io':
      return 'The disk reported an error while Sealed was saving. New messages stay on the relay until Sealed can save them again.';
  }
}

/** The sentence of a send refused while the database cannot be written. */
export function sendingPausedSentence(problem: StorageProblem): string {
  return `Sending is paused. ${problem.message}`;
}

/** A storage problem of the database at `path`, for the status. */
export function storageProblem(reason: StorageProblemReason, path: string): StorageProblem {
  return { reason, message: storageSentence(reason), path };
}

/** A call refused (or failed) because the profile's database cannot be written. */
export class StorageProblemError extends ServiceError {
  constructor(
    readonly problem: StorageProblem,
    message = problem.message,
  ) {
    super(ServiceCode.STORAGE_PROBLEM, message);
  }
}

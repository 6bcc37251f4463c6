/** What the relay's parts share, and the error a request handler throws to refuse a request. */
import type { RelayErrorCode } from '../core/protocol/wire.js';
import type { Groups } from './groups.js';
import type { ResolvedOptions } from './options.js';
import type { Router } from './router.js';
import type { Store } from './store.js';

/** The state of one running relay, handed to every connection. */
export interface RelayContext {
  readonly options: ResolvedOptions;
  readonly store: Store;
  readonly router: Router;
  readonly groups: Groups;
  /** Every registered user id (the identities stay in SQLite; this answers "exists?" per message). */
  readonly users: Set<string>;
  readonly log: (line: string) => void;
}

/** A refused request: becomes an `error` frame with this code and message (a plain sentence). */
export class RelayError extends Error {
  constructor(
    readonly code: RelayErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'RelayError';
  }
}

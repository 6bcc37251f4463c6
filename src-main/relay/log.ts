/**
 * The relay's log: one record per connection or server event, never per message. An embedder passes a
 * plain callback (`log` option); it gets a readable line and the same event as a record whose fields a
 * structured logger writes as they are (`npm run relay` writes them as JSON lines with pino, cli.ts).
 *
 * What a record may hold is fixed here: event names, connection labels (`#12`), peer addresses, close
 * and error codes, counts of users and connections, error texts of the relay's own failures. Never
 * message content, keys, or user and group ids (who is online when, from where, is the metadata a
 * relay log would otherwise keep for years: docs/PROTOCOL.md, Metadata).
 */

/** How bad an event is: `info` the normal course, `warn` a client or network misbehaving, `error` the relay failing. */
export type LogLevel = 'info' | 'warn' | 'error';

/** Every event the relay logs, by its stable name (the `event` field of a record). */
export type LogEvent =
  | 'listening'
  | 'closed'
  | 'server_error'
  | 'storage_error'
  | 'storage_unavailable'
  | 'storage_recovered'
  | 'tls_reloaded'
  | 'connect'
  | 'authenticated'
  | 'registered'
  | 'auth_failed'
  | 'handshake_timeout'
  | 'heartbeat_missed'
  | 'socket_error'
  | 'internal_error'
  | 'slow_consumer'
  | 'drain_failed'
  | 'account_deleted'
  | 'rate_limited'
  | 'user_ids_canonicalised'
  | 'relay_key'
  | 'relay_key_file'
  | 'groups_dropped'
  | 'close';

/** The fields a record may carry besides its level, event and message. */
export interface LogFields {
  /** The connection's label, `#` and a number counting connections since start. */
  readonly conn?: string;
  /** The peer's IP address (as the socket sees it: a proxy's own address behind a reverse proxy). */
  readonly ip?: string;
  /** A WebSocket close code, or the relay error code sent. */
  readonly code?: number | string;
  /** Authenticated connections (users online) after the event. */
  readonly online?: number;
  /** Registered users after the event. */
  readonly users?: number;
  /** The relay's own failure, as text (a stack for internal errors). */
  readonly error?: string;
  /** Where the relay listens (`listening`). */
  readonly url?: string;
  /** Its data directory (`listening`); absent in memory. */
  readonly dataDir?: string;
  /** Who may read the metrics (`listening`). */
  readonly metrics?: string;
}

/** One logged event. */
export interface LogRecord extends LogFields {
  readonly level: LogLevel;
  readonly event: LogEvent;
  /** The event in words: the line the callback gets as its first argument. */
  readonly msg: string;
}

/** The `log` option: a line for people, and the same event as a record for structured loggers. */
export type RelayLog = (line: string, record: LogRecord) => void;

/** Writes records to the embedder's callback; a callback that throws cannot break the relay. */
export class RelayLogger {
  constructor(private readonly sink: RelayLog) {}

  info(event: LogEvent, msg: string, fields?: LogFields): void {
    this.write({ level: 'info', event, msg, ...fields });
  }

  warn(event: LogEvent, msg: string, fields?: LogFields): void {
    this.write({ level: 'warn', event, msg, ...fields });
  }

  error(event: LogEvent, msg: string, fields?: LogFields): void {
    this.write({ level: 'error', event, msg, ...fields });
  }

  private write(record: LogRecord): void {
    try {
      this.sink(record.msg, record);
    } catch {
      // A logger failing (a closed pipe) must not take a connection or the relay down with it.
    }
  }
}

/** An error as one line of text for a record. */
export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

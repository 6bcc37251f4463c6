/**
 * The relay's health as `GET /healthz` reports it: 200 with `{"status":"ok","checks":{…}}` while the
 * relay can serve, 503 with the failing check's reason when it cannot (a load balancer or a container
 * runtime stops sending it clients), and 503 `stopping` once it is shutting down.
 *
 * Each part of the relay whose failure makes it unable to serve registers a named check: `storage`
 * (storage.ts) fails with the reason while the disk is full or the database cannot be written. The
 * `sealed_relay_health` metric reports every check.
 */

/** What one check says. */
export type CheckState = { readonly ok: true } | { readonly ok: false; readonly reason: string };

/** A named check, asked on every health request and metrics scrape (so it must be cheap). */
export interface HealthCheck {
  readonly name: string;
  state(): CheckState;
}

/** The body of `GET /healthz`. */
export interface HealthReport {
  readonly status: 'ok' | 'failing' | 'stopping';
  readonly checks: Readonly<Record<string, { status: 'ok' } | { status: 'failing'; reason: string }>>;
}

/** The checks of one relay and whether it is shutting down. */
export class Health {
  private readonly checks: HealthCheck[] = [];
  private stopping = false;

  /** Adds a check; names are unique. */
  add(check: HealthCheck): void {
    if (this.checks.some((c) => c.name === check.name))
      throw new Error(`a health check named ${check.name} exists`);
    this.checks.push(check);
  }

  /** From now on the relay reports `stopping`. */
  stop(): void {
    this.stopping = true;
  }

  /** Every check's state by name. */
  states(): { name: string; state: CheckState }[] {
    return this.checks.map((c) => ({ name: c.name, state: c.state() }));
  }

  report(): HealthReport {
    const checks: Record<string, { status: 'ok' } | { status: 'failing'; reason: string }> = {};
    let failing = false;
    for (const { name, state } of this.states()) {
      checks[name] = state.ok ? { status: 'ok' } : { status: 'failing', reason: state.reason };
      failing ||= !state.ok;
    }
    return { status: this.stopping ? 'stopping' : failing ? 'failing' : 'ok', checks };
  }
}

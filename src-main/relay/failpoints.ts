/**
 * Failpoints for crash tests (in the manner of TiKV's fail-rs): named places in the relay where a test
 * can stop the process dead, so that a SIGKILL lands exactly there ("before the forward", "in the middle
 * of a commit"). They are inert unless the relay process was started with SEALED_RELAY_FAILPOINTS set
 * to `<name>@<file>`: once `<file>` exists (the test creates it when the stream it watches is under
 * way), the next thread to reach `<name>` writes `failpoint <name>` to stderr and blocks forever, and
 * the test kills the process. Production relays never set the variable; each place then costs one
 * comparison.
 */
import { existsSync } from 'node:fs';

/** Every failpoint, named where it sits. */
export type FailpointName =
  /** In Router.route, after the item was handed to the queue, before it is forwarded live. */
  | 'route.before-forward'
  /** In the queue worker, inside a write transaction: part of the batch applied, not committed. */
  | 'queue.mid-commit';

const spec = parse(process.env['SEALED_RELAY_FAILPOINTS']);

function parse(value: string | undefined): { name: string; armFile: string } | undefined {
  const at = value?.indexOf('@') ?? -1;
  if (!value || at < 1) return undefined;
  return { name: value.slice(0, at), armFile: value.slice(at + 1) };
}

/** Blocks this thread forever if `name` is the configured failpoint and it is armed; does nothing otherwise. */
export function failpoint(name: FailpointName): void {
  if (spec === undefined || spec.name !== name || !existsSync(spec.armFile)) return;
  process.stderr.write(`failpoint ${name}\n`);
  // Atomics.wait blocks synchronously, also on the main thread of Node: nothing runs until the kill.
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0);
}

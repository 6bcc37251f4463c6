/**
 * The state of a form (or a panel's buttons) around one `AppState` action at a time: busy while the
 * action runs, then the sentence it answered with (see AppState: form actions return it, or null).
 */
export class FormState {
  /** What the last action answered, shown inline; null when it succeeded or was cleared. */
  error = $state<string | null>(null);
  /**
   * An action is under way. Its controls say so with `aria-disabled` (and keep focus: a control that
   * disables itself drops focus to <body>); presses meanwhile are ignored here.
   */
  busy = $state(false);

  /** Runs an action with the form busy; its answer (actions without one count as success) becomes `error`. */
  async run(action: () => Promise<string | null | void>): Promise<string | null> {
    if (this.busy) return this.error;
    this.busy = true;
    try {
      this.error = (await action()) ?? null;
    } finally {
      this.busy = false;
    }
    return this.error;
  }
}

/**
 * The one clock of workflow code. In a workflow, `Date` is the time of the current activation as the
 * history recorded it, so a replay reads the same time the first run did.
 */
export function now(): string {
  return new Date().toISOString();
}

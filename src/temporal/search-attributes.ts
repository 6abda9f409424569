/**
 * Makes sure the namespace has our search attributes. A dev-server database created by an older
 * version of the service ignores new `--search-attribute` flags, and a remote cluster has none, so
 * missing attributes are added through the operator service in one call.
 *
 * Added is not yet usable: the frontend maps an attribute's name to its column through its cached copy
 * of the namespace, refreshed every few seconds (`system.namespaceCacheRefreshInterval`, 2 s by
 * default; the dev server alone reads through). Until then a start that sets the attribute fails with
 * `INVALID_ARGUMENT: Namespace … has no mapping defined for search attribute …`, as a visibility query
 * that names it does; `waitUntilUsable` asks such a query until it is answered.
 */
import { type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { type Logger } from 'pino';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';
import { describeError } from './errors';

const INDEXED: Record<string, temporal.api.enums.v1.IndexedValueType> = {
  TEXT: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
  KEYWORD: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
  INT: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_INT,
  DOUBLE: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
  BOOL: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
  DATETIME: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
  KEYWORD_LIST: temporal.api.enums.v1.IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
};

/** Returns the names it had to add. */
export async function ensureSearchAttributes(client: Client, namespace: string): Promise<string[]> {
  const existing = await client.connection.operatorService.listSearchAttributes({ namespace });
  const known = new Set([...Object.keys(existing.customAttributes ?? {}), ...Object.keys(existing.systemAttributes ?? {})]);
  const missing = ALL_SEARCH_ATTRIBUTES.filter((sa) => !known.has(sa.name));
  if (missing.length === 0) return [];
  const searchAttributes: Record<string, temporal.api.enums.v1.IndexedValueType> = {};
  for (const sa of missing) {
    const type = INDEXED[sa.type];
    if (type !== undefined) searchAttributes[sa.name] = type;
  }
  await client.connection.operatorService.addSearchAttributes({ namespace, searchAttributes });
  return missing.map((sa) => sa.name);
}

export interface UsableOptions {
  /** Give up after this long, with the last answer as the reason. */
  timeoutMs: number;
  logger: Logger;
  /** Between tries. */
  intervalMs?: number;
  /** Between progress lines while it waits. */
  progressMs?: number;
}

/**
 * Resolves once a visibility query naming every one of batchd's attributes is accepted; returns how
 * long that took. Throws, naming the server's last answer, when it is not within timeoutMs.
 */
export async function waitUntilUsable(client: Client, namespace: string, o: UsableOptions): Promise<number> {
  const query = ALL_SEARCH_ATTRIBUTES.map((sa) => `${sa.name} IS NULL`).join(' OR ');
  const started = Date.now();
  const deadline = started + o.timeoutMs;
  let lastProgress = started;
  let told = false;
  for (let attempt = 1; ; attempt++) {
    let problem: string;
    try {
      await client.withDeadline(Date.now() + 5000, () => client.workflowService.countWorkflowExecutions({ namespace, query }));
      const waitedMs = Date.now() - started;
      if (told) o.logger.info({ namespace, waitedMs, attempts: attempt }, 'search attributes are usable');
      return waitedMs;
    } catch (err) {
      problem = describeError(err);
    }
    const now = Date.now();
    if (now >= deadline) {
      throw new Error(`the search attributes of namespace ${namespace} were not usable within ${o.timeoutMs} ms (TEMPORAL_SEARCH_ATTRIBUTES_WAIT_MS): ${problem}`);
    }
    if (!told || now - lastProgress >= (o.progressMs ?? 5000)) {
      o.logger.info(
        { namespace, waitedMs: now - started, reason: problem },
        told ? 'still waiting for the search attributes to be usable' : 'waiting for the search attributes to be usable (the Temporal frontend refreshes its copy of the namespace every few seconds)',
      );
      told = true;
      lastProgress = now;
    }
    await new Promise((r) => setTimeout(r, Math.min(o.intervalMs ?? 500, Math.max(0, deadline - Date.now()))));
  }
}

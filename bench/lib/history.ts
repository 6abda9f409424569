/**
 * Reading workflow histories: per-type event counts, and the billable Temporal Cloud Actions they
 * imply under the rules of docs/evaluate/temporal-cloud/actions.mdx (peers.md §3.3):
 *
 * - a workflow start: 1 (search attributes given at start are free);
 * - an activity: 1 per start and per retry (the attempt number of its started event);
 * - local activities: 1 per workflow task that recorded any local-activity marker (plus 1 per
 *   workflow-task heartbeat, which only a local activity running past ~80% of the task timeout causes);
 * - a timer: 1 per TimerStarted (TypeScript `condition` with a timeout starts one);
 * - a signal: 1 per signal, from a client or a workflow. Counted once, where it lands
 *   (WorkflowExecutionSignaled), plus sends that failed (SignalExternalWorkflowExecutionFailed);
 * - a search-attribute upsert: 1 per UpsertWorkflowSearchAttributes;
 * - an update: 1 per accepted or rejected update; a query: 1 per query (not in histories);
 * - an activity heartbeat: 1 per heartbeat that reached the server (not in histories).
 */
import { type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';
import { sleep } from './stats';

type HistoryEvent = temporal.api.history.v1.IHistoryEvent;
const ET = temporal.api.enums.v1.EventType;

export function eventName(e: HistoryEvent): string {
  return (ET[e.eventType ?? 0] ?? 'UNKNOWN').replace(/^EVENT_TYPE_/, '');
}

/** An event's time in epoch milliseconds. */
export function eventMs(e: HistoryEvent): number {
  const t = e.eventTime;
  if (!t) return Number.NaN;
  const s = t.seconds;
  const seconds = typeof s === 'number' ? s : s ? Number(s.toString()) : 0;
  return seconds * 1000 + (t.nanos ?? 0) / 1e6;
}

export async function historyOf(client: Client, workflowId: string): Promise<HistoryEvent[]> {
  const h = await client.workflow.getHandle(workflowId).fetchHistory();
  return h.events ?? [];
}

export interface EventCounts {
  events: number;
  workflowTasks: number;
  activitiesScheduled: number;
  activityAttempts: number;
  localActivities: number;
  /** Workflow tasks that recorded at least one local-activity marker. */
  localActivityTasks: number;
  timers: number;
  signalsReceived: number;
  signalsSent: number;
  signalsSentFailed: number;
  searchAttributeUpserts: number;
  memoUpserts: number;
  updates: number;
  workflowStarts: number;
  childWorkflowStarts: number;
  continueAsNew: number;
  /** Received signals by name. */
  signalNames: Record<string, number>;
  /** Every event type seen, with its count. */
  byType: Record<string, number>;
}

export function emptyCounts(): EventCounts {
  return {
    events: 0,
    workflowTasks: 0,
    activitiesScheduled: 0,
    activityAttempts: 0,
    localActivities: 0,
    localActivityTasks: 0,
    timers: 0,
    signalsReceived: 0,
    signalsSent: 0,
    signalsSentFailed: 0,
    searchAttributeUpserts: 0,
    memoUpserts: 0,
    updates: 0,
    workflowStarts: 0,
    childWorkflowStarts: 0,
    continueAsNew: 0,
    signalNames: {},
    byType: {},
  };
}

export function countEvents(events: readonly HistoryEvent[]): EventCounts {
  const c = emptyCounts();
  const laTasks = new Set<string>();
  for (const e of events) {
    c.events++;
    const name = eventName(e);
    c.byType[name] = (c.byType[name] ?? 0) + 1;
    switch (e.eventType) {
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED:
        c.workflowStarts++;
        break;
      case ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
        c.workflowTasks++;
        break;
      case ET.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
        c.activitiesScheduled++;
        break;
      case ET.EVENT_TYPE_ACTIVITY_TASK_STARTED:
        c.activityAttempts += Math.max(1, e.activityTaskStartedEventAttributes?.attempt ?? 1);
        break;
      case ET.EVENT_TYPE_MARKER_RECORDED: {
        const a = e.markerRecordedEventAttributes;
        if (a?.markerName === 'core_local_activity') {
          c.localActivities++;
          laTasks.add(String(a.workflowTaskCompletedEventId ?? e.eventId));
        }
        break;
      }
      case ET.EVENT_TYPE_TIMER_STARTED:
        c.timers++;
        break;
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED: {
        c.signalsReceived++;
        const n = e.workflowExecutionSignaledEventAttributes?.signalName ?? '?';
        c.signalNames[n] = (c.signalNames[n] ?? 0) + 1;
        break;
      }
      case ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_INITIATED:
        c.signalsSent++;
        break;
      case ET.EVENT_TYPE_SIGNAL_EXTERNAL_WORKFLOW_EXECUTION_FAILED:
        c.signalsSentFailed++;
        break;
      case ET.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
        c.searchAttributeUpserts++;
        break;
      case ET.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
        c.memoUpserts++;
        break;
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_REJECTED:
        c.updates++;
        break;
      case ET.EVENT_TYPE_START_CHILD_WORKFLOW_EXECUTION_INITIATED:
        c.childWorkflowStarts++;
        break;
      case ET.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW:
        c.continueAsNew++;
        break;
      default:
        break;
    }
  }
  c.localActivityTasks = laTasks.size;
  return c;
}

export function addCounts(a: EventCounts, b: EventCounts): EventCounts {
  const out = emptyCounts();
  for (const k of Object.keys(out) as Array<keyof EventCounts>) {
    if (k === 'signalNames' || k === 'byType') {
      const m: Record<string, number> = { ...a[k] };
      for (const [n, v] of Object.entries(b[k])) m[n] = (m[n] ?? 0) + v;
      out[k] = m;
    } else {
      out[k] = a[k] + b[k];
    }
  }
  return out;
}

export interface Actions {
  workflowStarts: number;
  activities: number;
  localActivityTasks: number;
  timers: number;
  signals: number;
  searchAttributeUpserts: number;
  updates: number;
  childWorkflows: number;
  heartbeats: number;
  queries: number;
  total: number;
}

/** Billable Actions from event counts (summed over every workflow the job touched) plus what histories do not hold. */
export function billableActions(c: EventCounts, heartbeats: number, queries = 0): Actions {
  const a = {
    workflowStarts: c.workflowStarts + c.continueAsNew,
    activities: c.activityAttempts,
    localActivityTasks: c.localActivityTasks,
    timers: c.timers,
    signals: c.signalsReceived + c.signalsSentFailed,
    searchAttributeUpserts: c.searchAttributeUpserts,
    updates: c.updates,
    childWorkflows: 2 * c.childWorkflowStarts,
    heartbeats,
    queries,
  };
  return { ...a, total: Object.values(a).reduce((x, y) => x + y, 0) };
}

/** Waits until a workflow's history stops growing for `quietMs` (bounded by `maxMs`); returns its events. */
export async function settledHistory(client: Client, workflowId: string, quietMs = 1500, maxMs = 15_000): Promise<HistoryEvent[]> {
  const deadline = Date.now() + maxMs;
  let events = await historyOf(client, workflowId);
  let stableSince = Date.now();
  while (Date.now() < deadline) {
    await sleep(250);
    const next = await historyOf(client, workflowId);
    if (next.length !== events.length) {
      events = next;
      stableSince = Date.now();
    } else if (Date.now() - stableSince >= quietMs) {
      break;
    }
  }
  return events;
}

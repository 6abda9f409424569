/**
 * Readiness as Temporal sees it: the server answers, and some control worker has polled the control
 * task queue recently — wherever that worker runs (this process or another machine).
 */
import { type Client } from '@temporalio/client';
import { temporal } from '@temporalio/proto';

/** How recent a poll must be (the server keeps pollers seen in roughly the last few minutes). */
const RECENT_MS = 60_000;

export async function temporalProblem(client: Client): Promise<string | undefined> {
  try {
    await client.withDeadline(Date.now() + 2000, () => client.workflowService.getSystemInfo({}));
    return undefined;
  } catch {
    // Words only: the raw gRPC error (addresses, internals) is not for an unauthenticated caller.
    return 'the Temporal server does not answer within 2 s';
  }
}

export async function controlWorkerProblem(client: Client, namespace: string, taskQueue: string): Promise<string | undefined> {
  for (const [type, kind] of [
    [temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_WORKFLOW, 'workflow'],
    [temporal.api.enums.v1.TaskQueueType.TASK_QUEUE_TYPE_ACTIVITY, 'activity'],
  ] as const) {
    const res = await client.withDeadline(Date.now() + 2000, () =>
      client.workflowService.describeTaskQueue({ namespace, taskQueue: { name: taskQueue }, taskQueueType: type }),
    );
    const now = Date.now();
    const recent = (res.pollers ?? []).some((p) => {
      const seconds = Number(p.lastAccessTime?.seconds ?? 0);
      return now - seconds * 1000 < RECENT_MS;
    });
    if (!recent) return `no control worker is polling task queue ${taskQueue} (${kind} tasks)`;
  }
  return undefined;
}

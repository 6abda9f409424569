/**
 * Reads back the signals a pool's run received after it took the state it continued as new with.
 *
 * A run that continues as new while signals arrive has its task refused by the server (unhandled
 * command); the task that follows can take the state to carry before the handlers of those signals
 * run (sdk-dotnet#427 describes the same ordering), so the new run would start without them. The run
 * counts the signals it handled when it took that state; the next run asks here for the rest, read
 * from the closed run's history, and handles them itself.
 */
import { type Client } from '@temporalio/client';
import { defaultPayloadConverter } from '@temporalio/common';
import { POOL_INBOUND_SIGNALS, type PoolInbound } from '../src/domain/control-model';

export async function missedPoolSignals(
  client: Client,
  { workflowId, runId, skip, limit }: { workflowId: string; runId: string; skip: number; limit: number },
): Promise<{ signals: PoolInbound[]; more: boolean }> {
  const history = await client.workflow.getHandle(workflowId, runId).fetchHistory();
  const names: ReadonlySet<string> = new Set(POOL_INBOUND_SIGNALS);
  const signals: PoolInbound[] = [];
  let seen = 0;
  for (const event of history.events ?? []) {
    const signaled = event.workflowExecutionSignaledEventAttributes;
    if (!signaled?.signalName || !names.has(signaled.signalName)) continue;
    seen++;
    if (seen <= skip) continue;
    if (signals.length >= limit) return { signals, more: true };
    const payload = signaled.input?.payloads?.[0];
    if (!payload) continue;
    signals.push({ name: signaled.signalName, args: defaultPayloadConverter.fromPayload(payload) } as PoolInbound);
  }
  return { signals, more: false };
}

/**
 * The control activities as workflows call them: local activities on the control worker, retried
 * without a limit because a report must eventually land (the store may be briefly unavailable).
 */
import { proxyLocalActivities } from '@temporalio/workflow';
import type { ControlActivities } from '../activities/contracts';

export const control = proxyLocalActivities<ControlActivities>({
  startToCloseTimeout: '30 seconds',
  retry: { initialInterval: '500 milliseconds', maximumInterval: '30 seconds', backoffCoefficient: 2 },
});

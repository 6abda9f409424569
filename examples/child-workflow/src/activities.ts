/**
 * The example's own activities, on its own task queue. `releaseReservation` is the compensating step
 * of a failed training run: in a real pipeline it would release the dataset lock, roll back a model
 * registry entry or page someone; here it returns what it did, so the run's result shows it.
 */
export async function releaseReservation(jobId: string, reason: string): Promise<string> {
  return `released the reservation of ${jobId} after: ${reason}`;
}

/**
 * How the validation activity registers a job with its environment: the `useEnvironment` update on
 * the environment's workflow, whose validator applies admission's rules atomically with deletes.
 */
import { type Client, WorkflowNotFoundError } from '@temporalio/client';
import { type EnvironmentRegistrar, environmentNotFound } from '../src/control/environment-admission';
import { fromTemporal } from '../src/temporal/errors';
import { useEnvironmentUpdate } from '../workflows/messages';

/** The registrar of the validation activity: the `useEnvironment` update on the environment's workflow. */
export function temporalEnvironmentRegistrar(client: () => Client): EnvironmentRegistrar {
  return async (environmentName, request) => {
    try {
      return await client().workflow.getHandle(environmentName).executeUpdate(useEnvironmentUpdate, { args: [request] });
    } catch (err) {
      // The workflow has ended: the environment was deleted after the read model was consulted.
      if (err instanceof WorkflowNotFoundError) {
        const [, account = '', , id = ''] = environmentName.split('/');
        throw environmentNotFound(account, id);
      }
      // A rule the update refused is the job's answer; a transient server error is retried by the caller.
      const known = fromTemporal(err);
      if (known && known.code !== 'UNAVAILABLE' && known.code !== 'RESOURCE_EXHAUSTED') throw known;
      throw err;
    }
  };
}

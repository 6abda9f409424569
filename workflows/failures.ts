/**
 * The one way workflow code fails a request with an API error: a non-retryable ApplicationFailure of
 * type `ApiError:<CODE>`, which src/temporal/errors.ts turns back into the contract's error (an update
 * validator's refusal, a parent's failed start).
 */
import { ApplicationFailure } from '@temporalio/workflow';
import { API_ERROR_FAILURE_PREFIX, ApiError, type GrpcCodeName } from '../src/domain/errors';

export function apiFailure(code: GrpcCodeName, message: string, details?: unknown): ApplicationFailure {
  return ApplicationFailure.create({ type: `${API_ERROR_FAILURE_PREFIX}${code}`, message, nonRetryable: true, ...(details !== undefined ? { details: [details] } : {}) });
}

/** Runs a rule of the domain; its refusal (an ApiError) is thrown as the API failure the caller sees. */
export function rule<T>(fn: () => T): T {
  try {
    return fn();
  } catch (err) {
    throw err instanceof ApiError ? apiFailure(err.code, err.message) : err;
  }
}

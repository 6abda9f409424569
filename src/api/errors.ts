/**
 * Every failure leaves the API in the contract's shape `{code, message, details}`. Known failures are
 * ApiErrors; Temporal's own errors are translated by fromTemporal (src/temporal/errors.ts); anything
 * else is INTERNAL with a request id and no stack trace (the trace goes to the server log).
 */
export { fromTemporal } from '../temporal/errors';

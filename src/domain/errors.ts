/**
 * The error contract (docs/errors.md): every failure the API returns is an ApiError carrying a gRPC
 * status code; the HTTP status and body shape follow from the code. Domain code throws ApiError;
 * activities convert it to a non-retryable ApplicationFailure of type `ApiError:<CODE>`; the HTTP
 * layer renders `{code, message, details}`.
 */

export const GrpcCode = {
  OK: 0,
  CANCELLED: 1,
  UNKNOWN: 2,
  INVALID_ARGUMENT: 3,
  DEADLINE_EXCEEDED: 4,
  NOT_FOUND: 5,
  ALREADY_EXISTS: 6,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  FAILED_PRECONDITION: 9,
  ABORTED: 10,
  OUT_OF_RANGE: 11,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  DATA_LOSS: 15,
  UNAUTHENTICATED: 16,
} as const;

export type GrpcCodeName = keyof typeof GrpcCode;

const HTTP_STATUS: Record<GrpcCodeName, number> = {
  OK: 200,
  CANCELLED: 499,
  UNKNOWN: 500,
  INVALID_ARGUMENT: 400,
  DEADLINE_EXCEEDED: 504,
  NOT_FOUND: 404,
  ALREADY_EXISTS: 409,
  PERMISSION_DENIED: 403,
  RESOURCE_EXHAUSTED: 429,
  FAILED_PRECONDITION: 400,
  ABORTED: 409,
  OUT_OF_RANGE: 400,
  UNIMPLEMENTED: 501,
  INTERNAL: 500,
  UNAVAILABLE: 503,
  DATA_LOSS: 500,
  UNAUTHENTICATED: 401,
};

export function httpStatusOf(code: GrpcCodeName): number {
  return HTTP_STATUS[code];
}

/** One violated rule, in the shape of google.rpc.BadRequest.FieldViolation. */
export interface FieldViolation {
  field: string;
  description: string;
}

/**
 * One entry of `details`: a google.rpc detail message in its proto3 JSON form, the fields of its
 * `@type` only — google.rpc.BadRequest (`fieldViolations`) or google.rpc.ResourceInfo
 * (`resourceType`, `resourceName`, `owner`, `description`).
 */
export interface ErrorDetail {
  '@type': string;
  fieldViolations?: FieldViolation[];
  resourceType?: string;
  resourceName?: string;
  owner?: string;
  description?: string;
}

const RESOURCE_TYPES: Readonly<Record<string, string>> = { batchJobs: 'BatchJob', nodePools: 'NodePool', environments: 'Environment', snapshots: 'Snapshot' };

/**
 * google.rpc.ResourceInfo about a resource a request names (`accounts/a/nodePools/p`, by the request
 * field `nodePoolId`): its type, its name, and the field in the description.
 */
export function resourceInfo(resourceName: string, field: string): ErrorDetail {
  const collection = resourceName.split('/')[2] ?? '';
  return {
    '@type': 'type.googleapis.com/google.rpc.ResourceInfo',
    resourceType: RESOURCE_TYPES[collection] ?? collection,
    resourceName,
    description: `named by the request field ${field}`,
  };
}

export interface ErrorBody {
  code: number;
  message: string;
  details: ErrorDetail[];
}

export class ApiError extends Error {
  override readonly name = 'ApiError';

  constructor(
    readonly code: GrpcCodeName,
    message: string,
    readonly details: ErrorDetail[] = [],
  ) {
    super(message);
  }

  get httpStatus(): number {
    return httpStatusOf(this.code);
  }

  toBody(): ErrorBody {
    return { code: GrpcCode[this.code], message: this.message, details: this.details };
  }

  static invalidArgument(violations: FieldViolation[]): ApiError {
    const message = violations.map((v) => `${v.field}: ${v.description}`).join('; ');
    return new ApiError('INVALID_ARGUMENT', message, [
      { '@type': 'type.googleapis.com/google.rpc.BadRequest', fieldViolations: violations },
    ]);
  }

  static invalidField(field: string, description: string): ApiError {
    return ApiError.invalidArgument([{ field, description }]);
  }

  static notFound(what: string): ApiError {
    return new ApiError('NOT_FOUND', `${what} not found`);
  }

  static failedPrecondition(message: string): ApiError {
    return new ApiError('FAILED_PRECONDITION', message);
  }

  static permissionDenied(message: string): ApiError {
    return new ApiError('PERMISSION_DENIED', message);
  }
}

export function isGrpcCodeName(value: string): value is GrpcCodeName {
  return Object.prototype.hasOwnProperty.call(GrpcCode, value);
}

/** Prefix of ApplicationFailure types that carry an ApiError across an activity or workflow boundary. */
export const API_ERROR_FAILURE_PREFIX = 'ApiError:';

/**
 * The route table: each route says its method, its path template in the API's own words
 * (`/v1/accounts/{account}/batchJobs/{batchJob}:cancel`), its schemas and its handler. The same table
 * drives routing and the OpenAPI document, so the two cannot drift apart.
 */
import { type Request, type Response } from 'express';
import { type z } from 'zod';
import { ApiError } from '../domain/errors';
import { type Principal } from './auth';

export type Method = 'GET' | 'POST' | 'PATCH' | 'DELETE';

export interface RouteContext {
  principal: Principal;
  /** Path parameters by name, URL-decoded. */
  params: Record<string, string>;
  query: Request['query'];
  body: unknown;
  req: Request;
  res: Response;
}

export interface Route {
  method: Method;
  path: string;
  operationId: string;
  summary: string;
  tag: string;
  /** Request body schema (for documentation; handlers parse with it themselves, to name field paths). */
  body?: z.ZodType;
  /** Response body schema. */
  response?: z.ZodType;
  /** The media type of the 200 response; application/json when absent (text/event-stream for streams). */
  responseMediaType?: string;
  /** Query parameters, documented. */
  queryParams?: Array<{ name: string; description: string; type: 'string' | 'integer' | 'boolean'; repeated?: boolean; format?: 'date-time' }>;
  /** Whether the route needs an API key (every /v1 route does). */
  auth: boolean;
  /** Handlers return the JSON body; `undefined` means they answered themselves (streams). */
  handler(ctx: RouteContext): Promise<unknown>;
}

export interface CompiledRoute extends Route {
  regex: RegExp;
  names: string[];
}

/** `{name}` matches one path segment up to a `/` or the `:` of a custom method. */
export function compileRoute(route: Route): CompiledRoute {
  const names: string[] = [];
  const pattern = route.path
    .split(/(\{[a-zA-Z]+\})/)
    .map((part) => {
      const m = /^\{([a-zA-Z]+)\}$/.exec(part);
      if (m?.[1]) {
        names.push(m[1]);
        return '([^/:]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('');
  return { ...route, regex: new RegExp(`^${pattern}$`), names };
}

/**
 * The routes a path matches, with their parameters URL-decoded. A parameter that is not valid
 * percent-encoding (`%E0%A4%A`) is kept as sent and reported in `malformed`: the client's 400,
 * naming the parameter, for the caller to throw.
 */
export function matchRoute(
  routes: readonly CompiledRoute[],
  path: string,
): { matches: Array<{ route: CompiledRoute; params: Record<string, string> }>; malformed?: ApiError } {
  const matches: Array<{ route: CompiledRoute; params: Record<string, string> }> = [];
  let malformed: ApiError | undefined;
  for (const route of routes) {
    const m = route.regex.exec(path);
    if (!m) continue;
    const params: Record<string, string> = {};
    route.names.forEach((name, i) => {
      const raw = m[i + 1] ?? '';
      try {
        params[name] = decodeURIComponent(raw);
      } catch {
        params[name] = raw;
        malformed ??= ApiError.invalidField(name, `the path segment "${raw}" is not valid percent-encoding (each % must start an escape of UTF-8, e.g. %2F)`);
      }
    });
    matches.push({ route, params });
  }
  return malformed ? { matches, malformed } : { matches };
}


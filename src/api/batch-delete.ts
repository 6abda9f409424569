/** The body of every `:batchDelete`: resource names of one collection, all in the caller's account. */
import { ApiError } from '../domain/errors';
import { type Collection, parseResourceName } from '../domain/names';

/** `{names: [...]}` of one collection in the caller's account, as ids; 400/403 naming the bad entry. */
export function idsFromNames(body: unknown, account: string, collection: Collection): string[] {
  const names = (body as { names?: unknown } | undefined)?.names;
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string')) {
    throw ApiError.invalidField('names', `must be a non-empty list of names (accounts/{account}/${collection}/{id})`);
  }
  return (names).map((n, i) => {
    const parsed = parseResourceName(n);
    if (!parsed || parsed.collection !== collection) throw ApiError.invalidField(`names[${i}]`, `"${n}" is not a ${collection} name`);
    if (parsed.account !== account) throw ApiError.permissionDenied(`names[${i}]: "${n}" belongs to another account`);
    return parsed.id;
  });
}


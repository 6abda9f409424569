/** The body of every `:batchDelete`: resource names of one collection, all in the caller's account. */
import { ApiError } from '../domain/errors';
import { type Collection, isValidId, parseResourceName } from '../domain/names';

function namesOf(body: unknown, collection: Collection): string[] {
  const names = (body as { names?: unknown } | undefined)?.names;
  if (!Array.isArray(names) || names.length === 0 || !names.every((n) => typeof n === 'string')) {
    throw ApiError.invalidField('names', `must be a non-empty list of names (accounts/{account}/${collection}/{id})`);
  }
  return names;
}

/** `{names: [...]}` of one collection in the caller's account, as ids; 400/403 naming the bad entry. */
export function idsFromNames(body: unknown, account: string, collection: Collection): string[] {
  return namesOf(body, collection).map((n, i) => {
    const parsed = parseResourceName(n);
    if (!parsed || parsed.collection !== collection) throw ApiError.invalidField(`names[${i}]`, `"${n}" is not a ${collection} name`);
    if (parsed.account !== account) throw ApiError.permissionDenied(`names[${i}]: "${n}" belongs to another account`);
    return parsed.id;
  });
}

/**
 * Checks each name of a `:batchDelete` body in order — a name of the collection, in the caller's
 * account, then `check(id)` (exists, the caller may delete it) — and throws the first bad name's
 * error, its message prefixed with the entry (`names[2]: …`), so that nothing is deleted. Returns the
 * ids, each once, in the order first named.
 */
export async function checkNames(body: unknown, account: string, collection: Collection, check: (id: string) => Promise<void>): Promise<string[]> {
  const names = namesOf(body, collection);
  const ids: string[] = [];
  for (const [i, n] of names.entries()) {
    const parsed = parseResourceName(n);
    if (!parsed || parsed.collection !== collection || !isValidId(parsed.id)) {
      throw ApiError.invalidField(`names[${i}]`, `"${n}" is not a ${collection} name (accounts/{account}/${collection}/{id}); nothing was deleted`);
    }
    if (parsed.account !== account) throw ApiError.permissionDenied(`names[${i}]: "${n}" belongs to another account; nothing was deleted`);
    if (ids.includes(parsed.id)) continue;
    try {
      await check(parsed.id);
    } catch (err) {
      if (err instanceof ApiError) throw new ApiError(err.code, `names[${i}]: ${err.message}; nothing was deleted`, err.details);
      throw err;
    }
    ids.push(parsed.id);
  }
  return ids;
}

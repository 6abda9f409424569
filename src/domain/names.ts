/**
 * Resource names and ids. Every id, chosen or generated: 1–63 chars of [a-z0-9-], starts with a
 * letter, does not end with '-'. Names are flat under the account: accounts/{account}/{collection}/{id}.
 */
import { ApiError } from './errors';

export const ID_PATTERN = /^[a-z](?:[a-z0-9-]{0,61}[a-z0-9])?$/;
export const ID_RULE = '1-63 characters of a-z, 0-9 and "-", starting with a letter and not ending with "-"';

export type Collection = 'batchJobs' | 'nodePools' | 'environments' | 'snapshots';

export function isValidId(id: string): boolean {
  return ID_PATTERN.test(id);
}

export function checkId(field: string, id: string): void {
  if (!isValidId(id)) throw ApiError.invalidField(field, `"${id}" is not a valid id: ${ID_RULE}`);
}

export function resourceName(account: string, collection: Collection, id: string): string {
  return `accounts/${account}/${collection}/${id}`;
}

export interface ParsedName {
  account: string;
  collection: Collection;
  id: string;
}

const NAME_PATTERN = /^accounts\/([^/]+)\/(batchJobs|nodePools|environments|snapshots)\/([^/]+)$/;

export function parseResourceName(name: string): ParsedName | undefined {
  const m = NAME_PATTERN.exec(name);
  if (!m) return undefined;
  const [, account, collection, id] = m;
  if (account === undefined || collection === undefined || id === undefined) return undefined;
  return { account, collection: collection as Collection, id };
}

/** Server-assigned ids: a letter, then 11 characters of base36 from the given random source. */
export function generateId(random: () => number): string {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  let id = alphabet[Math.floor(random() * 26)] ?? 'j';
  for (let i = 0; i < 11; i++) id += alphabet[Math.floor(random() * alphabet.length)] ?? '0';
  return id;
}

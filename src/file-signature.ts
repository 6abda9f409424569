/** What identifies one version of a configuration file that is reloaded when it changes (API keys, sharing). */
import { statSync } from 'node:fs';

/** Modification time, size and inode; or why the file cannot be read (a change too, when it comes back). */
export function fileSignature(path: string): string {
  try {
    const s = statSync(path);
    return `${s.mtimeMs}:${s.size}:${s.ino}`;
  } catch (err) {
    return `unreadable:${(err as NodeJS.ErrnoException).code ?? ''}`;
  }
}

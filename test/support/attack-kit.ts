/**
 * What a tenant could leave on a host for root to run (docs/security.md, "A job's variables reach its
 * rank only"): a library that, when any process loads it, appends `so <uid>` to `log`, and fake tools
 * named as the launchers' that append `<tool> <uid>` there and fail. A job points PATH and LD_PRELOAD
 * at them; `log` then says who ran them. Needs a C compiler (scripts/install-system-deps.sh: gcc).
 */
import { execFileSync } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';

const TOOLS = ['unshare', 'sh', 'mount', 'setpriv', 'env', 'batchd-rank-launch'];

/** Writes the kit into `dir`; returns the library's path (for LD_PRELOAD) and `dir` (for PATH). */
export function plantAttackKit(dir: string, log: string): { library: string; bin: string } {
  const library = join(dir, 'evil.so');
  writeFileSync(
    join(dir, 'evil.c'),
    `#include <stdio.h>\n#include <unistd.h>\n__attribute__((constructor)) static void evil(void) { FILE *f = fopen(${JSON.stringify(log)}, "a"); if (f) { fprintf(f, "so %u\\n", getuid()); fclose(f); } }\n`,
  );
  execFileSync('cc', ['-shared', '-fPIC', '-o', library, join(dir, 'evil.c')]);
  for (const tool of TOOLS) writeFileSync(join(dir, tool), `#!/bin/sh\necho "${tool} $(id -u)" >> '${log}'\nexit 99\n`, { mode: 0o755 });
  return { library, bin: dir };
}

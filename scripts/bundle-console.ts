/**
 * Builds the web console into dist/console: src/console/main.ts and everything it imports (the typed
 * client included) bundled by esbuild into one ES module, beside the page and its stylesheet. No CDN
 * and no runtime fetch of code: the API serves these files as they are (src/api/console.ts).
 */
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { build } from 'esbuild';

async function main(): Promise<void> {
  const root = join(__dirname, '..', '..');
  const source = join(root, 'src', 'console');
  const out = join(root, 'dist', 'console');
  rmSync(out, { recursive: true, force: true });
  mkdirSync(out, { recursive: true });
  await build({
    entryPoints: [join(source, 'main.ts')],
    outfile: join(out, 'app.js'),
    bundle: true,
    format: 'esm',
    platform: 'browser',
    target: ['es2022'],
    tsconfig: join(source, 'tsconfig.json'),
    minify: true,
    sourcemap: 'linked',
    legalComments: 'none',
    logLevel: 'warning',
  });
  for (const file of ['index.html', 'styles.css']) copyFileSync(join(source, file), join(out, file));
}

main().catch((err: unknown) => {
  console.error(err);
  process.exit(1);
});

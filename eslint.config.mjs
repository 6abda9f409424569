// Lint rules: strict typed TypeScript everywhere, and the Temporal sandbox guard on workflow code.
import js from '@eslint/js';
import tseslint from 'typescript-eslint';
import { builtinModules } from 'node:module';

const nodeBuiltins = builtinModules.flatMap((m) => [m, `node:${m}`]).filter((m) => m !== 'assert');

export default tseslint.config(
  // examples/ are outside projects: they import the packed batchd and type-check in their own install
  // (test/integration/child-workflow-example.test.ts).
  { ignores: ['dist/**', 'dist-*/**', 'node_modules/**', 'data/**', 'bench/results/**', 'test-artifacts/**', 'examples/**'] },
  js.configs.recommended,
  ...tseslint.configs.recommendedTypeChecked,
  {
    languageOptions: { parserOptions: { projectService: true, tsconfigRootDir: import.meta.dirname } },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-explicit-any': 'error',
      '@typescript-eslint/no-unused-vars': ['error', { argsIgnorePattern: '^_', varsIgnorePattern: '^_' }],
      '@typescript-eslint/consistent-type-imports': ['error', { prefer: 'type-imports', fixStyle: 'inline-type-imports' }],
    },
  },
  {
    // Workflow code runs in Temporal's deterministic sandbox: no Node built-ins, no SDK packages meant for workers or clients.
    files: ['workflows/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: nodeBuiltins,
        patterns: [
          { group: ['@temporalio/client', '@temporalio/worker', '@temporalio/activity', '**/src/store/**', '**/src/api/**', '**/src/agent/**', '**/src/temporal/**'], message: 'Workflow code may import only @temporalio/workflow, @temporalio/common and src/domain.' },
          {
            group: ['zod', '**/src/domain/batch-job', '**/src/domain/batch-job-update', '**/src/domain/fields', '**/src/domain/validation', '**/src/domain/node-pool', '**/src/domain/environment', '**/src/domain/snapshot'],
            message: 'Workflow code does not load zod (it is evaluated again per workflow, docs/performance.md §7): import the schema-free *-model module instead.',
          },
        ],
      }],
    },
  },
  {
    // The domain core is pure: no I/O, no framework.
    files: ['src/domain/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        paths: nodeBuiltins,
        patterns: [{ group: ['@temporalio/*', 'express', 'better-sqlite3', 'pg', 'pino', '../*/**', '../../*'], message: 'src/domain imports nothing but zod and itself.' }],
      }],
    },
  },
  {
    // The control logic and the stores sit below the layers that use them: they never import the API,
    // the activities or the workflows (shared types live in src/domain).
    files: ['src/control/**/*.ts', 'src/store/**/*.ts'],
    rules: {
      'no-restricted-imports': ['error', {
        patterns: [{ group: ['**/api/**', '**/activities/**', '**/workflows/**', '**/agent/**'], message: 'src/control and src/store import only src/domain, src/temporal, src/store and packages.' }],
      }],
    },
  },
  {
    // node:test's describe() and it() return promises that the runner awaits itself.
    files: ['test/**/*.ts'],
    rules: { '@typescript-eslint/no-floating-promises': 'off' },
  },
  {
    files: ['**/*.mjs', '**/*.js'],
    ...tseslint.configs.disableTypeChecked,
  },
);

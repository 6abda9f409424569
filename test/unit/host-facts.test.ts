/** Which executors a pool can run, from what its hosts reported (src/domain/control-model.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { executorProblem } from '../../src/domain/control-model';

describe('executorProblem', () => {
  const ready = (host: string, executors?: Array<'shell' | 'python' | 'notebook'>) => ({ host, status: 'ready', ...(executors ? { executors } : {}) });

  it('names the pool, the executor, what is missing and the hosts, when no ready host can run it', () => {
    assert.equal(
      executorProblem('notebook', [ready('h0', ['shell', 'python']), ready('h1', ['shell'])], 'cpus'),
      'no ready host of node pool cpus can run notebook jobs: jupyter-nbconvert (Debian: jupyter-nbconvert python3-nbclient python3-ipykernel) is not installed on h0, h1',
    );
    assert.match(executorProblem('python', [ready('h0', ['shell'])], 'cpus') ?? '', /python3 is not installed on h0/);
  });

  it('admits when one ready host can, when hosts have not reported (older agents), or when no host has joined yet', () => {
    assert.equal(executorProblem('notebook', [ready('h0', ['shell']), ready('h1', ['shell', 'notebook'])], 'p'), undefined);
    assert.equal(executorProblem('notebook', [ready('h0')], 'p'), undefined);
    assert.equal(executorProblem('notebook', [], 'p'), undefined);
  });

  it('counts only ready hosts: a lost or draining host that could run it does not', () => {
    const hosts = [ready('h0', ['shell']), { host: 'h1', status: 'unreachable', executors: ['shell', 'notebook'] as Array<'shell' | 'notebook'> }];
    assert.match(executorProblem('notebook', hosts, 'p') ?? '', /not installed on h0$/);
  });
});

import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { compactNumbers, fieldForViolation, formatDuration, niceMax, parseKeyValueLines, parseRanks, polylinePoints, ranksByHost, runTime } from '../../src/console/model';

const FIELDS = ['batchJobId', 'displayName', 'nodePoolId', 'numRanks', 'shellExecutor.command', 'pythonExecutor.target', 'pythonExecutor.args', 'envVars', 'annotations'];

describe('the console’s pure parts', () => {
  it('sends each API field violation to the form field it names, at a path boundary', () => {
    assert.equal(fieldForViolation('numRanks', FIELDS), 'numRanks');
    assert.equal(fieldForViolation('shellExecutor.command', FIELDS), 'shellExecutor.command');
    assert.equal(fieldForViolation('annotations["team"]', FIELDS), 'annotations');
    assert.equal(fieldForViolation('envVars.RANK', FIELDS), 'envVars');
    assert.equal(fieldForViolation('pythonExecutor.args[2]', FIELDS), 'pythonExecutor.args');
    assert.equal(fieldForViolation('numRanksExtra', FIELDS), undefined, 'a prefix is not a boundary');
    assert.equal(fieldForViolation('shellExecutor', FIELDS), undefined, 'a parent object has no field of its own');
    assert.equal(fieldForViolation('(body)', FIELDS), undefined);
  });

  it('reads KEY=VALUE lines and names the bad line', () => {
    assert.deepEqual(parseKeyValueLines('A=1\n\n# note\n B = two=2 \n'), { value: { A: '1', B: 'two=2' } });
    assert.deepEqual(parseKeyValueLines('A=1\nnope'), { error: 'line 2: write KEY=VALUE' });
    assert.deepEqual(parseKeyValueLines('A=1\nA=2'), { error: 'line 2: A is given twice' });
    assert.deepEqual(parseKeyValueLines('=x'), { error: 'line 1: write KEY=VALUE' });
  });

  it('reads rank filters with ranges, and refuses what is not one', () => {
    assert.deepEqual(parseRanks(''), {});
    assert.deepEqual(parseRanks('3, 0 1-2,2'), { ranks: [0, 1, 2, 3] });
    assert.ok('error' in parseRanks('a'));
    assert.ok('error' in parseRanks('5-2'));
    assert.ok('error' in parseRanks('0-5000'));
  });

  it('formats durations, run times, number lists and placement groups for people', () => {
    assert.equal(formatDuration(5.9), '5s');
    assert.equal(formatDuration(185), '3m 05s');
    assert.equal(formatDuration(3720), '1h 02m');
    assert.equal(runTime({}, new Date()), undefined);
    assert.equal(runTime({ startTime: '2026-01-01T00:00:00Z', endTime: '2026-01-01T00:01:00Z' }, new Date()), 60);
    assert.equal(compactNumbers([5, 0, 1, 2, 3, 7, 8]), '0-3, 5, 7-8');
    assert.deepEqual(ranksByHost([{ rank: 2, host: 'b', slot: 0 }, { rank: 0, host: 'a', slot: 3 }, { rank: 1, host: 'a', slot: 4 }]), [
      { host: 'a', ranks: [{ rank: 0, slot: 3 }, { rank: 1, slot: 4 }] },
      { host: 'b', ranks: [{ rank: 2, slot: 0 }] },
    ]);
  });

  it('scales the chart: a nice axis maximum, and points inside the box', () => {
    assert.equal(niceMax(0), 1);
    assert.equal(niceMax(16), 20);
    assert.equal(niceMax(20), 20);
    assert.equal(niceMax(101), 200);
    assert.equal(polylinePoints([{ t: 0, v: 0 }, { t: 50, v: 10 }, { t: 100, v: 99 }], 0, 100, 20, 200, 100), '0.0,100.0 100.0,50.0 200.0,0.0');
  });
});

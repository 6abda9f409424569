import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { batchJobCreateSchema, type BatchJobSpec, MAX_RANKS } from '../../src/domain/batch-job';
import { ApiError, type FieldViolation } from '../../src/domain/errors';
import { MAX_ARG_BYTES, programArgumentProblem, workspacePathProblem } from '../../src/domain/field-rules';
import { parseOrThrow } from '../../src/domain/validation';

const shell = { command: 'echo hi' };
const base = { nodePoolId: 'gpu-a', shellExecutor: shell };

function parse(body: unknown): BatchJobSpec {
  return parseOrThrow(batchJobCreateSchema, body);
}

/** The field violations of a body that must be rejected as INVALID_ARGUMENT (HTTP 400). */
function violations(body: unknown): FieldViolation[] {
  let error: unknown;
  try {
    parse(body);
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ApiError, `expected an ApiError for ${JSON.stringify(body)}`);
  assert.equal(error.code, 'INVALID_ARGUMENT');
  assert.equal(error.httpStatus, 400);
  assert.equal(error.toBody().code, 3);
  const detail = error.details[0];
  assert.equal(detail?.['@type'], 'type.googleapis.com/google.rpc.BadRequest');
  const list = detail?.fieldViolations ?? [];
  for (const v of list) assert.ok(v.description.length > 0, `violation of ${v.field} says nothing`);
  return list;
}

interface Case {
  what: string;
  body: unknown;
  /** The exact list of offending field paths, in order. */
  fields: string[];
  /** A phrase the (first) description must hold. */
  says?: string | RegExp;
}

const CASES: Case[] = [
  { what: 'numRanks 0', body: { ...base, numRanks: 0 }, fields: ['numRanks'], says: 'at least 1' },
  { what: 'numRanks -1', body: { ...base, numRanks: -1 }, fields: ['numRanks'], says: 'at least 1' },
  { what: 'numRanks 1.5', body: { ...base, numRanks: 1.5 }, fields: ['numRanks'], says: 'integer' },
  { what: 'numRanks "2"', body: { ...base, numRanks: '2' }, fields: ['numRanks'], says: 'integer' },
  { what: 'numRanks too big', body: { ...base, numRanks: MAX_RANKS + 1 }, fields: ['numRanks'], says: `at most ${MAX_RANKS}` },
  { what: 'numRanks beyond int32 (two rules broken)', body: { ...base, numRanks: 2 ** 31 }, fields: ['numRanks', 'numRanks'] },
  { what: 'numRanks true', body: { ...base, numRanks: true }, fields: ['numRanks'] },
  {
    what: 'pythonExecutor.targetType unspecified',
    body: { nodePoolId: 'p', pythonExecutor: { targetType: 'TARGET_TYPE_UNSPECIFIED', target: 'train' } },
    fields: ['pythonExecutor.targetType'],
    says: 'MODULE or FILENAME',
  },
  { what: 'pythonExecutor.targetType missing', body: { nodePoolId: 'p', pythonExecutor: { target: 'train' } }, fields: ['pythonExecutor.targetType'] },
  { what: 'pythonExecutor.target empty', body: { nodePoolId: 'p', pythonExecutor: { targetType: 'MODULE', target: '' } }, fields: ['pythonExecutor.target'] },
  {
    what: 'pythonExecutor.target null (nested nulls are not dropped)',
    body: { nodePoolId: 'p', pythonExecutor: { targetType: 'MODULE', target: null } },
    fields: ['pythonExecutor.target'],
  },
  {
    what: 'pythonExecutor.args element not a string',
    body: { nodePoolId: 'p', pythonExecutor: { targetType: 'FILENAME', target: 'a.py', args: ['--x', 2] } },
    fields: ['pythonExecutor.args[1]'],
    says: 'must be a string',
  },
  { what: 'unknown field in pythonExecutor', body: { nodePoolId: 'p', pythonExecutor: { targetType: 'MODULE', target: 'm', module: 'm' } }, fields: ['pythonExecutor.module'], says: 'unknown field' },
  { what: 'notebookExecutor without notebookFilename', body: { nodePoolId: 'p', notebookExecutor: {} }, fields: ['notebookExecutor.notebookFilename'], says: 'required' },
  { what: 'shellExecutor without command', body: { nodePoolId: 'p', shellExecutor: {} }, fields: ['shellExecutor.command'], says: 'required' },
  { what: 'shellExecutor.command empty', body: { nodePoolId: 'p', shellExecutor: { command: '' } }, fields: ['shellExecutor.command'], says: 'must not be empty' },
  { what: 'unknown field in shellExecutor', body: { nodePoolId: 'p', shellExecutor: { command: 'x', shell: 'bash' } }, fields: ['shellExecutor.shell'], says: 'unknown field' },
  { what: 'priority 1.5', body: { ...base, priority: 1.5 }, fields: ['priority'], says: 'priority must be an integer from -1000 to 1000' },
  { what: 'priority 1001', body: { ...base, priority: 1001 }, fields: ['priority'], says: 'from -1000 to 1000' },
  { what: 'priority -1001', body: { ...base, priority: -1001 }, fields: ['priority'], says: 'from -1000 to 1000' },
  { what: 'priority "5"', body: { ...base, priority: '5' }, fields: ['priority'], says: 'not a string' },
  { what: 'unknown top-level field', body: { ...base, nice: 5 }, fields: ['nice'], says: 'unknown field' },
  { what: 'snake_case spelling of a field', body: { ...base, num_ranks: 2 }, fields: ['num_ranks'], says: 'unknown field' },
  { what: 'two executors', body: { ...base, pythonExecutor: { targetType: 'MODULE', target: 'm' } }, fields: ['shellExecutor'], says: 'pythonExecutor and shellExecutor' },
  { what: 'no executor', body: { nodePoolId: 'p' }, fields: ['shellExecutor'], says: 'exactly one of pythonExecutor, notebookExecutor or shellExecutor' },
  { what: 'imageRef with environmentId', body: { ...base, imageRef: 'ubuntu:24.04', environmentId: 'env' }, fields: ['imageRef'], says: 'environmentId' },
  {
    what: 'imageRef with environmentId and snapshotId',
    body: { ...base, imageRef: 'ubuntu:24.04', environmentId: 'env', snapshotId: 'snap' },
    fields: ['imageRef', 'imageRef'],
  },
  { what: 'snapshotId without environmentId', body: { ...base, snapshotId: 'snap' }, fields: ['snapshotId'], says: 'requires environmentId' },
  { what: 'displayName of 64 chars', body: { ...base, displayName: 'x'.repeat(64) }, fields: ['displayName'], says: 'fewer than 64' },
  { what: 'role with a short account id', body: { ...base, role: 'arn:aws:iam::12345:role/x' }, fields: ['role'], says: 'IAM role ARN' },
  { what: 'role that is a user ARN', body: { ...base, role: 'arn:aws:iam::123456789012:user/alice' }, fields: ['role'] },
  { what: 'role with a name over 64 chars', body: { ...base, role: `arn:aws:iam::123456789012:role/${'r'.repeat(65)}` }, fields: ['role'] },
  { what: 'role of another service', body: { ...base, role: 'arn:aws:s3:::bucket' }, fields: ['role'] },
  { what: 'annotation key with a space', body: { ...base, annotations: { 'bad key': 'v' } }, fields: ['annotations["bad key"]'], says: 'invalid annotation key' },
  { what: 'reserved annotation prefix', body: { ...base, annotations: { 'fireworks.ai/owner': 'me' } }, fields: ['annotations["fireworks.ai/owner"]'], says: 'reserved' },
  { what: 'annotation value not a string', body: { ...base, annotations: { team: 7 } }, fields: ['annotations["team"]'], says: 'must be a string' },
  { what: 'annotations not a map', body: { ...base, annotations: ['a'] }, fields: ['annotations'] },
  { what: '__proto__ annotation key is not silently dropped', body: JSON.parse('{"nodePoolId":"p","shellExecutor":{"command":"x"},"annotations":{"__proto__":"v"}}'), fields: ['annotations["__proto__"]'] },
  { what: 'envVars overriding RANK', body: { ...base, envVars: { RANK: '3' } }, fields: ['envVars["RANK"]'], says: 'cannot be overridden' },
  { what: 'envVars overriding CUDA_VISIBLE_DEVICES', body: { ...base, envVars: { CUDA_VISIBLE_DEVICES: '0,1' } }, fields: ['envVars["CUDA_VISIBLE_DEVICES"]'] },
  { what: 'envVars with a bad name', body: { ...base, envVars: { '1X': 'v' } }, fields: ['envVars["1X"]'], says: 'variable name' },
  { what: 'envVars value with NUL', body: { ...base, envVars: { X: 'a\0b' } }, fields: ['envVars["X"]'], says: 'NUL' },
  { what: 'nodePoolId missing', body: { shellExecutor: shell }, fields: ['nodePoolId'], says: 'is required' },
  { what: 'nodePoolId empty (not an optional field: "" is not absent)', body: { ...base, nodePoolId: '' }, fields: ['nodePoolId'] },
  { what: 'nodePoolId a name of another collection', body: { ...base, nodePoolId: 'accounts/a/batchJobs/p' }, fields: ['nodePoolId'], says: 'accounts/{account}/nodePools/{id}' },
  { what: 'nodePoolId a pool name with a bad account', body: { ...base, nodePoolId: 'accounts/A/nodePools/p' }, fields: ['nodePoolId'], says: 'a-z' },
  { what: 'nodePoolId a number', body: { ...base, nodePoolId: 7 }, fields: ['nodePoolId'], says: 'must be a string, not an integer' },
  { what: 'environmentId with upper case', body: { ...base, environmentId: 'MyEnv' }, fields: ['environmentId'] },
  { what: 'imageRef with whitespace', body: { ...base, imageRef: 'ubuntu 24.04' }, fields: ['imageRef'], says: 'without whitespace' },
  { what: 'shared as a string', body: { ...base, shared: 'true' }, fields: ['shared'], says: 'true or false' },
  { what: 'top-level __proto__ key', body: JSON.parse('{"nodePoolId":"p","shellExecutor":{"command":"x"},"__proto__":{"numRanks":2}}'), fields: ['__proto__'] },
  { what: 'body null', body: null, fields: ['(body)'], says: 'JSON object' },
  { what: 'body an array', body: [base], fields: ['(body)'], says: 'not an array' },
  { what: 'body a string', body: 'nodePoolId=p', fields: ['(body)'] },
  { what: 'body a number', body: 42, fields: ['(body)'] },
];

describe('batch job create schema: invalid bodies', () => {
  it('has at least 25 distinct cases', () => {
    assert.ok(CASES.length >= 25);
    assert.equal(new Set(CASES.map((c) => JSON.stringify(c.body))).size, CASES.length);
  });
  for (const c of CASES) {
    it(`rejects ${c.what}`, () => {
      const v = violations(c.body);
      assert.deepEqual(
        v.map((x) => x.field),
        c.fields,
      );
      if (c.says !== undefined) {
        const description = v[0]?.description ?? '';
        if (typeof c.says === 'string') assert.ok(description.includes(c.says), `"${description}" should mention "${c.says}"`);
        else assert.match(description, c.says);
      }
    });
  }

  it('reports every offending field at once, and puts them in the message', () => {
    let error: unknown;
    try {
      parse({ ...base, numRanks: 0, displayName: 'x'.repeat(64), colour: 'red' });
    } catch (e) {
      error = e;
    }
    assert.ok(error instanceof ApiError);
    assert.deepEqual(error.details[0]?.fieldViolations?.map((v) => v.field).sort(), ['colour', 'displayName', 'numRanks']);
    assert.match(error.message, /numRanks: /);
    assert.match(error.message, /colour: unknown field/);
  });

  it('counts the envVars limit in UTF-8 bytes, not UTF-16 units', () => {
    // 50,000 "€" are 50,000 UTF-16 units but 150,000 bytes: over 128 KiB.
    assert.deepEqual(
      violations({ ...base, envVars: { BIG: '€'.repeat(50_000) } }).map((v) => v.field),
      ['envVars'],
    );
    assert.doesNotThrow(() => parse({ ...base, envVars: { BIG: 'e'.repeat(50_000) } }));
  });
});

describe('batch job create schema: valid bodies normalise', () => {
  it('fills the defaults: numRanks 1, empty envVars and annotations, not shared', () => {
    assert.deepEqual(parse(base), {
      nodePoolId: 'gpu-a',
      numRanks: 1,
      envVars: {},
      annotations: {},
      shared: false,
      shellExecutor: shell,
    });
  });

  it('drops output-only fields sent by the client', () => {
    const spec = parse({
      ...base,
      name: 'accounts/evil/batchJobs/x',
      state: 'COMPLETED',
      status: 'done',
      createTime: '2020-01-01T00:00:00Z',
      startTime: '2020-01-01T00:00:00Z',
      endTime: '2020-01-01T00:00:00Z',
      updateTime: '2020-01-01T00:00:00Z',
      createdBy: 'mallory@example.com',
    });
    for (const key of ['name', 'state', 'status', 'createTime', 'startTime', 'endTime', 'updateTime', 'createdBy']) {
      assert.ok(!(key in spec), `${key} must not survive`);
    }
    assert.deepEqual(spec, parse(base));
  });

  it('keeps every writable field', () => {
    const spec = parse({
      nodePoolId: 'gpu-a',
      displayName: 'x'.repeat(63),
      environmentId: 'my-env',
      snapshotId: 'snap-1',
      numRanks: MAX_RANKS,
      envVars: { LR: '0.1', EMPTY: '' },
      role: 'arn:aws:iam::123456789012:role/path/to/trainer',
      pythonExecutor: { targetType: 'FILENAME', target: 'train.py', args: ['--epochs', '3'] },
      annotations: { 'example.com/team': 'ml', note: '' },
      shared: true,
    });
    assert.deepEqual(spec, {
      nodePoolId: 'gpu-a',
      displayName: 'x'.repeat(63),
      environmentId: 'my-env',
      snapshotId: 'snap-1',
      numRanks: MAX_RANKS,
      envVars: { LR: '0.1', EMPTY: '' },
      role: 'arn:aws:iam::123456789012:role/path/to/trainer',
      pythonExecutor: { targetType: 'FILENAME', target: 'train.py', args: ['--epochs', '3'] },
      annotations: { 'example.com/team': 'ml', note: '' },
      shared: true,
    });
  });

  it('accepts role ARNs of every AWS partition, with or without a path', () => {
    for (const role of [
      'arn:aws:iam::123456789012:role/trainer',
      'arn:aws:iam::123456789012:role/service-role/my.role+x=y,z@w-1',
      'arn:aws-cn:iam::123456789012:role/trainer',
      'arn:aws-us-gov:iam::123456789012:role/trainer',
      `arn:aws:iam::123456789012:role/${'r'.repeat(64)}`,
    ]) {
      assert.equal(parse({ ...base, role }).role, role);
    }
  });

  it('accepts a node pool id, or the full name of a pool (shared by another account: admission decides)', () => {
    assert.equal(parse({ ...base, nodePoolId: 'gpus' }).nodePoolId, 'gpus');
    assert.equal(parse({ ...base, nodePoolId: 'accounts/acme/nodePools/big' }).nodePoolId, 'accounts/acme/nodePools/big');
  });

  it('accepts each executor alone, and notebook / python ones', () => {
    assert.deepEqual(parse({ nodePoolId: 'p', notebookExecutor: { notebookFilename: 'a.ipynb' } }).notebookExecutor, { notebookFilename: 'a.ipynb' });
    assert.deepEqual(parse({ nodePoolId: 'p', pythonExecutor: { targetType: 'MODULE', target: 'pkg.train' } }).pythonExecutor, {
      targetType: 'MODULE',
      target: 'pkg.train',
    });
  });
});

describe('batch job create schema: proto3-JSON default values', () => {
  it('accepts a body from a client that emits every default', () => {
    const spec = parse({
      name: '',
      displayName: '',
      createTime: null,
      startTime: null,
      endTime: null,
      createdBy: '',
      nodePoolId: 'gpu-a',
      environmentId: '',
      snapshotId: '',
      numRanks: 2,
      envVars: {},
      role: '',
      pythonExecutor: null,
      notebookExecutor: null,
      shellExecutor: { command: 'nvidia-smi' },
      imageRef: '',
      annotations: {},
      state: 'STATE_UNSPECIFIED',
      status: '',
      shared: false,
      updateTime: null,
    });
    assert.deepEqual(spec, {
      nodePoolId: 'gpu-a',
      numRanks: 2,
      envVars: {},
      annotations: {},
      shared: false,
      shellExecutor: { command: 'nvidia-smi' },
    });
  });

  it('treats a top-level null as absent, so defaults still apply', () => {
    const spec = parse({ ...base, numRanks: null, envVars: null, annotations: null, shared: null, displayName: null });
    assert.deepEqual(spec, parse(base));
  });

  it('treats "" as absent for environmentId, snapshotId, imageRef, role and displayName', () => {
    const spec = parse({ ...base, environmentId: '', snapshotId: '', imageRef: '', role: '', displayName: '' });
    for (const key of ['environmentId', 'snapshotId', 'imageRef', 'role', 'displayName']) assert.ok(!(key in spec), key);
    // imageRef "" with environmentId set is not a conflict: the empty imageRef is absent.
    assert.equal(parse({ ...base, imageRef: '', environmentId: 'env' }).environmentId, 'env');
  });

  it('keeps error paths intact after the preprocessing', () => {
    assert.deepEqual(
      violations({ ...base, environmentId: '', snapshotId: 'snap' }).map((v) => v.field),
      ['snapshotId'],
    );
    assert.deepEqual(
      violations({ ...base, imageRef: null, pythonExecutor: null, notebookExecutor: { notebookFilename: 'a.ipynb' } }).map((v) => v.field),
      ['shellExecutor'],
    );
    assert.deepEqual(
      violations({ ...base, role: '', annotations: { 'a/b/c': 'x' } }).map((v) => v.field),
      ['annotations["a/b/c"]'],
    );
  });

  it('does not treat "" as absent for other string fields', () => {
    assert.deepEqual(
      violations({ nodePoolId: 'p', shellExecutor: { command: '' } }).map((v) => v.field),
      ['shellExecutor.command'],
    );
  });
});

describe('paths and arguments a rank is started with', () => {
  const python = (target: string, targetType = 'FILENAME') => ({ nodePoolId: 'p', pythonExecutor: { targetType, target } });
  const notebook = (notebookFilename: string) => ({ nodePoolId: 'p', notebookExecutor: { notebookFilename } });

  it('accepts FILENAME targets and notebooks inside WORKSPACE_DIR, however they are spelled', () => {
    for (const target of ['train.py', 'jobs/train.py', './train.py', 'a/../train.py', 'a/./b/../../c.py', 'dir//x.py']) {
      assert.equal(parse(python(target)).pythonExecutor?.target, target);
      assert.equal(parse(notebook(target)).notebookExecutor?.notebookFilename, target);
    }
  });

  it('refuses an absolute path or a ".." that leaves WORKSPACE_DIR, naming the field', () => {
    for (const target of ['/etc/passwd', '../secret.py', 'a/../../x.py', './..', 'a/b/../../../data/api-key', '..']) {
      const [v, ...rest] = violations(python(target));
      assert.equal(rest.length, 0);
      assert.equal(v?.field, 'pythonExecutor.target');
      assert.match(v?.description ?? '', /WORKSPACE_DIR/);
      const [n] = violations(notebook(target));
      assert.equal(n?.field, 'notebookExecutor.notebookFilename');
      assert.match(n?.description ?? '', /WORKSPACE_DIR/);
    }
    assert.match(violations(python('/abs.py'))[0]?.description ?? '', /not an absolute path/);
    assert.match(violations(python('../x.py'))[0]?.description ?? '', /may not lead out of it/);
  });

  it('refuses a path that names the workspace itself', () => {
    for (const target of ['.', 'a/..', './']) assert.equal(violations(python(target))[0]?.field, 'pythonExecutor.target');
  });

  it('leaves MODULE targets to python (a module name is not a path) but refuses NUL in them', () => {
    assert.equal(parse(python('pkg.train', 'MODULE')).pythonExecutor?.target, 'pkg.train');
    assert.equal(parse(python('..', 'MODULE')).pythonExecutor?.target, '..', 'python3 -m .. fails on the host; it cannot leave the workspace');
    assert.equal(violations(python('a\0b', 'MODULE'))[0]?.field, 'pythonExecutor.target');
  });

  it('accepts a shell command of exactly 128 KiB with its NUL, and refuses one byte more, naming the field', () => {
    assert.equal(parse({ nodePoolId: 'p', shellExecutor: { command: 'x'.repeat(MAX_ARG_BYTES - 1) } }).shellExecutor?.command.length, MAX_ARG_BYTES - 1);
    const [v, ...rest] = violations({ nodePoolId: 'p', shellExecutor: { command: 'x'.repeat(MAX_ARG_BYTES) } });
    assert.equal(rest.length, 0);
    assert.equal(v?.field, 'shellExecutor.command');
    assert.match(v?.description ?? '', /131072 bytes of UTF-8.*128 KiB/);
  });

  it('counts the command in bytes of UTF-8, not characters', () => {
    const euro = '€'.repeat(Math.ceil(MAX_ARG_BYTES / 3)); // 3 bytes each: fewer characters than the limit, more bytes
    assert.ok(euro.length < MAX_ARG_BYTES);
    assert.equal(violations({ nodePoolId: 'p', shellExecutor: { command: euro } })[0]?.field, 'shellExecutor.command');
  });

  it('refuses NUL in a command or an argument (exec cannot pass it)', () => {
    assert.equal(violations({ nodePoolId: 'p', shellExecutor: { command: 'echo a\0b' } })[0]?.field, 'shellExecutor.command');
    assert.equal(
      violations({ nodePoolId: 'p', pythonExecutor: { targetType: 'MODULE', target: 'm', args: ['ok', 'x\0'] } })[0]?.field,
      'pythonExecutor.args[1]',
    );
  });
});

describe('field rules', () => {
  it('workspacePathProblem walks ".." segment by segment', () => {
    assert.equal(workspacePathProblem('a/b/../c'), undefined);
    assert.equal(workspacePathProblem('a/../../b'), 'must stay inside WORKSPACE_DIR: ".." may not lead out of it');
    // Climbing out and back in still leaves the workspace on the way (and would through a symlink).
    assert.notEqual(workspacePathProblem('../ws/x.py'), undefined);
  });

  it('programArgumentProblem counts the terminating NUL', () => {
    assert.equal(programArgumentProblem('y'.repeat(MAX_ARG_BYTES - 1)), undefined);
    assert.notEqual(programArgumentProblem('y'.repeat(MAX_ARG_BYTES)), undefined);
    assert.equal(MAX_ARG_BYTES, 131072);
  });
});

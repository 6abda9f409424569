import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  type Environment,
  environmentCreateBodySchema,
  type EnvironmentSpec,
  environmentSpecChanged,
  environmentSpecOf,
  mayUseEnvironment,
  planEnvironmentUpdate,
  withEnvironmentSpec,
} from '../../src/domain/environment';
import { ApiError, type FieldViolation } from '../../src/domain/errors';
import { snapshotCreateBodySchema } from '../../src/domain/snapshot';
import { parseOrThrow } from '../../src/domain/validation';

function invalid(run: () => unknown): FieldViolation[] {
  let error: unknown;
  try {
    run();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof ApiError, 'expected an ApiError');
  assert.equal(error.code, 'INVALID_ARGUMENT');
  return error.details[0]?.fieldViolations ?? [];
}

const createEnv = (body: unknown) => parseOrThrow(environmentCreateBodySchema, body);
const envFields = (body: unknown) => invalid(() => createEnv(body)).map((v) => v.field);

describe('environment create body', () => {
  it('normalises: not shared, no annotations by default', () => {
    assert.deepEqual(createEnv({ environment: {}, environmentId: 'my-env' }), {
      environmentId: 'my-env',
      environment: { shared: false, annotations: {} },
    });
  });

  it('keeps every writable field', () => {
    assert.deepEqual(
      createEnv({
        environment: { displayName: 'x'.repeat(63), baseImageRef: 'ghcr.io/acme/base@sha256:abc', shared: true, annotations: { 'example.com/a': 'b' } },
        environmentId: 'my-env',
      }).environment,
      { displayName: 'x'.repeat(63), baseImageRef: 'ghcr.io/acme/base@sha256:abc', shared: true, annotations: { 'example.com/a': 'b' } },
    );
  });

  it('accepts and ignores output-only fields, imageRef included', () => {
    const spec = createEnv({
      environment: {
        baseImageRef: 'ubuntu:24.04',
        name: 'accounts/x/environments/y',
        createTime: '2020-01-01T00:00:00Z',
        updateTime: '2020-01-01T00:00:00Z',
        createdBy: 'mallory@example.com',
        state: 'CONNECTED',
        status: { code: 'OK', message: '' },
        imageRef: 'evil:latest',
        snapshotImageRef: 'evil:snap',
      },
      environmentId: 'e',
    }).environment;
    assert.deepEqual(spec, { baseImageRef: 'ubuntu:24.04', shared: false, annotations: {} });
  });

  it('accepts a proto3 client that emits default values', () => {
    const spec = createEnv({
      environment: { name: '', displayName: '', baseImageRef: '', imageRef: '', connection: null, shared: false, annotations: {}, state: 'STATE_UNSPECIFIED', status: null },
      environmentId: 'e',
    }).environment;
    assert.deepEqual(spec, { shared: false, annotations: {} });
  });

  it('rejects a connection on create: interactive connections are not supported', () => {
    const v = invalid(() => createEnv({ environment: { connection: { nodePoolId: 'gpu-a', numRanks: 1 } }, environmentId: 'e' }));
    assert.deepEqual(
      v.map((x) => x.field),
      ['environment.connection'],
    );
    assert.match(v[0]?.description ?? '', /interactive connections are not supported/);
  });

  const cases: Array<[string, unknown, string[]]> = [
    ['no environment', { environmentId: 'e' }, ['environment']],
    ['no environmentId', { environment: {} }, ['environmentId']],
    ['a bad environmentId', { environment: {}, environmentId: '1env' }, ['environmentId']],
    ['an unknown top-level field', { environment: {}, environmentId: 'e', nodePoolId: 'p' }, ['nodePoolId']],
    ['an unknown environment field', { environment: { image: 'x' }, environmentId: 'e' }, ['environment.image']],
    ['a displayName of 64 chars', { environment: { displayName: 'x'.repeat(64) }, environmentId: 'e' }, ['environment.displayName']],
    ['a baseImageRef with whitespace', { environment: { baseImageRef: 'ubuntu 24.04' }, environmentId: 'e' }, ['environment.baseImageRef']],
    ['shared as a string', { environment: { shared: 'yes' }, environmentId: 'e' }, ['environment.shared']],
    ['a reserved annotation', { environment: { annotations: { 'fireworks.ai/x': '' } }, environmentId: 'e' }, ['environment.annotations["fireworks.ai/x"]']],
    ['a body that is not an object', 'my-env', ['(body)']],
  ];
  for (const [what, body, fields] of cases) {
    it(`rejects ${what}`, () => assert.deepEqual(envFields(body), fields));
  }
});

describe('snapshot create body', () => {
  const snapshot = (body: unknown) => parseOrThrow(snapshotCreateBodySchema, body);
  const fields = (body: unknown) => invalid(() => snapshot(body)).map((v) => v.field);

  it('takes the environment to snapshot', () => {
    assert.deepEqual(snapshot({ environmentId: 'my-env' }), { environmentId: 'my-env' });
  });

  it('accepts and ignores every upstream snapshot field (all output-only)', () => {
    assert.deepEqual(
      snapshot({
        environmentId: 'my-env',
        name: 'accounts/a/snapshots/1',
        createTime: '2020-01-01T00:00:00Z',
        updateTime: null,
        state: 'READY',
        status: { code: 'OK', message: '' },
        imageRef: 'x:y',
      }),
      { environmentId: 'my-env' },
    );
  });

  it('requires environmentId, saying why', () => {
    for (const body of [{}, { environmentId: '' }, { environmentId: null }]) {
      const v = invalid(() => snapshot(body));
      assert.deepEqual(
        v.map((x) => x.field),
        ['environmentId'],
      );
      assert.match(v[0]?.description ?? '', /is required: the id of the environment to snapshot/);
    }
  });

  it('rejects a bad environmentId, unknown fields and non-object bodies', () => {
    assert.deepEqual(fields({ environmentId: 'My Env' }), ['environmentId']);
    assert.deepEqual(fields({ environmentId: 7 }), ['environmentId']);
    assert.deepEqual(fields({ environmentId: 'e', environment: 'e' }), ['environment']);
    assert.deepEqual(fields(null), ['(body)']);
  });
});

describe('planEnvironmentUpdate', () => {
  const current: EnvironmentSpec = { displayName: 'dev', baseImageRef: 'ubuntu:22.04', shared: false, annotations: { a: '1' } };
  const updateFields = (body: unknown, mask?: string) => invalid(() => planEnvironmentUpdate(current, body, mask)).map((v) => v.field);

  it('without a mask writes the writable fields present', () => {
    assert.deepEqual(planEnvironmentUpdate(current, { baseImageRef: 'ubuntu:24.04', shared: true }), { ...current, baseImageRef: 'ubuntu:24.04', shared: true });
    assert.deepEqual(planEnvironmentUpdate(current, { annotations: {} }), { ...current, annotations: {} });
    assert.deepEqual(planEnvironmentUpdate(current, {}), current);
  });

  it('treats null and "" as absent without a mask', () => {
    assert.deepEqual(planEnvironmentUpdate(current, { displayName: '', baseImageRef: null }), current);
  });

  it('ignores output-only fields, connection and imageRef included (a GET echoed back)', () => {
    const echoed: Environment = {
      ...current,
      displayName: 'renamed',
      name: 'accounts/acme/environments/dev',
      createTime: '2026-01-01T00:00:00Z',
      updateTime: '2026-01-01T00:00:00Z',
      createdBy: 'alice@acme.com',
      state: 'CONNECTED',
      status: { code: 'OK', message: '' },
      connection: { nodePoolId: 'gpu-a', numRanks: 1 },
      imageRef: 'something:else',
      snapshotImageRef: 'snap:1',
    };
    assert.deepEqual(planEnvironmentUpdate(current, echoed), { ...current, displayName: 'renamed' });
  });

  it('with a mask writes only masked fields, clearing or resetting absent ones', () => {
    assert.deepEqual(planEnvironmentUpdate(current, { displayName: 'n', shared: true }, 'displayName'), { ...current, displayName: 'n' });
    assert.deepEqual(planEnvironmentUpdate(current, {}, 'display_name,base_image_ref'), { shared: false, annotations: { a: '1' } });
    assert.deepEqual(planEnvironmentUpdate({ ...current, shared: true }, {}, '*'), { shared: false, annotations: {} });
  });

  it('validates new values with the create rules', () => {
    assert.deepEqual(updateFields({ baseImageRef: 'bad ref' }), ['baseImageRef']);
    assert.deepEqual(updateFields({ displayName: 'x'.repeat(64) }), ['displayName']);
    assert.deepEqual(updateFields({ annotations: { 'bad key': '' } }), ['annotations["bad key"]']);
    assert.deepEqual(updateFields({ shared: 1 }), ['shared']);
  });

  it('rejects unknown fields and non-object bodies', () => {
    assert.deepEqual(updateFields({ nodePoolId: 'p' }), ['nodePoolId']);
    assert.deepEqual(updateFields('x'), ['(body)']);
  });

  const badMasks: Array<[string, string, RegExp]> = [
    ['imageRef', 'imageRef', /output only: it is the baseImageRef at creation/],
    ['connection', 'connection', /interactive connections are not supported/],
    ['state', 'state', /output only/],
    ['an unknown field', 'image', /is not a field of an environment/],
  ];
  for (const [what, mask, says] of badMasks) {
    it(`rejects a mask naming ${what}`, () => {
      const v = invalid(() => planEnvironmentUpdate(current, {}, mask));
      assert.deepEqual(
        v.map((x) => x.field),
        ['updateMask'],
      );
      assert.match(v[0]?.description ?? '', says);
    });
  }

  it('environmentSpecChanged tells a real change from a no-op', () => {
    assert.equal(environmentSpecChanged(current, planEnvironmentUpdate(current, { displayName: 'dev' })), false);
    assert.equal(environmentSpecChanged(current, planEnvironmentUpdate(current, { annotations: { a: '2' } })), true);
    assert.equal(environmentSpecChanged(current, planEnvironmentUpdate(current, {}, 'displayName')), true);
  });

  it('never mutates the current spec', () => {
    const before = structuredClone(current);
    planEnvironmentUpdate(current, { annotations: { z: '9' }, displayName: 'x' });
    planEnvironmentUpdate(current, {}, '*');
    assert.deepEqual(current, before);
  });
});

describe('environment use and spec round trip', () => {
  const env: Environment = {
    name: 'accounts/a/environments/e',
    displayName: 'E',
    baseImageRef: 'img:1',
    imageRef: 'img:1',
    snapshotImageRef: 'img:1',
    shared: false,
    annotations: { k: 'v' },
    createTime: '2025-01-01T00:00:00.000Z',
    updateTime: '2025-01-01T00:00:00.000Z',
    createdBy: 'owner@x',
    state: 'DISCONNECTED',
    status: { code: 'OK', message: '' },
  };

  it('the creator may use a private environment, others only a shared one, an operator (no user) always', () => {
    assert.equal(mayUseEnvironment(env, 'owner@x'), true);
    assert.equal(mayUseEnvironment(env, 'other@x'), false);
    assert.equal(mayUseEnvironment({ ...env, shared: true }, 'other@x'), true);
    assert.equal(mayUseEnvironment(env, undefined), true);
  });

  it('a new spec replaces the writable fields and leaves imageRef and the output fields alone', () => {
    const spec = planEnvironmentUpdate(environmentSpecOf(env), { baseImageRef: 'img:2' }, 'baseImageRef,displayName');
    const next = withEnvironmentSpec(env, spec, '2025-01-02T00:00:00.000Z');
    assert.equal(next.baseImageRef, 'img:2');
    assert.equal(next.displayName, undefined);
    assert.ok(!('displayName' in next), 'a cleared field is absent, not undefined on the wire');
    assert.equal(next.imageRef, 'img:1');
    assert.equal(next.snapshotImageRef, 'img:1');
    assert.equal(next.updateTime, '2025-01-02T00:00:00.000Z');
    assert.deepEqual(environmentSpecOf(next), spec);
    assert.equal(env.baseImageRef, 'img:1', 'the input is not mutated');
  });
});

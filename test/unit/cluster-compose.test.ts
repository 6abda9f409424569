/**
 * docker-compose.yml and `npm run cluster` (scripts/cluster/plan.ts) describe one deployment: the same
 * batchd roles, as many API replicas and control workers, the same variables on each role, and the
 * same wiring (one namespace, one read-model database, one agent token, one page-token secret across
 * replicas, agents shipping logs to an API replica). The one difference is deliberate and named here:
 * compose also runs `batchd-fake-hosts` (role `agents`) so that `docker compose up` has hosts at once.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, it } from 'node:test';
import { parse } from 'yaml';
import { loadConfig } from '../../src/config';
import { API_REPLICAS, CONTROL_WORKERS, DEFAULT_OPTIONS, NAMESPACE, portsOf, type ProcessSpec, processesOf, type Secrets } from '../../scripts/cluster/plan';

function repoRoot(): string {
  let dir = __dirname;
  while (!existsSync(join(dir, 'docker-compose.yml'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error(`no docker-compose.yml above ${__dirname}`);
    dir = up;
  }
  return dir;
}

interface Service {
  command?: string | string[];
  environment?: Record<string, string | number | boolean | null>;
  ports?: Array<string | number>;
}
const compose = parse(readFileSync(join(repoRoot(), 'docker-compose.yml'), 'utf8'), { merge: true }) as { services: Record<string, Service> };

const secrets: Secrets = {
  postgresPassword: 'p'.repeat(24),
  bootstrapApiKey: 'b'.repeat(24),
  agentToken: 'a'.repeat(24),
  pageTokenSecret: 's'.repeat(24),
  metricsToken: 'm'.repeat(24),
};
const cluster = processesOf(DEFAULT_OPTIONS, secrets);

type Kind = 'api' | 'worker' | 'agent';
/** A compose service's kind from its command: `api`, `worker`, `agent ...`; `agents` (fake hosts) is compose's own. */
function kindOf(s: Service): Kind | 'agents' | undefined {
  const argv = Array.isArray(s.command) ? s.command : (s.command ?? '').split(/\s+/);
  const first = argv[0];
  return first === 'api' || first === 'worker' || first === 'agent' || first === 'agents' ? first : undefined;
}

const composeByKind = (kind: Kind): Array<[string, Record<string, string>]> =>
  Object.entries(compose.services)
    .filter(([, s]) => kindOf(s) === kind)
    .map(([name, s]) => [name, Object.fromEntries(Object.entries(s.environment ?? {}).map(([k, v]) => [k, String(v)]))]);
const clusterByKind = (kind: Kind): ProcessSpec[] => cluster.filter((p) => p.kind === kind);

/** The value a compose `${VAR:?...}` / `${VAR:-default}` reference names, for comparing wiring. */
const referenceName = (v: string | undefined): string | undefined => /\$\{([A-Z_][A-Z0-9_]*)/.exec(v ?? '')?.[1];

describe('docker-compose.yml and npm run cluster describe the same deployment', () => {
  it('run the same batchd roles, with as many API replicas and control workers', () => {
    assert.equal(clusterByKind('api').length, API_REPLICAS);
    assert.equal(clusterByKind('worker').length, CONTROL_WORKERS);
    assert.equal(composeByKind('api').length, API_REPLICAS, 'API replicas in docker-compose.yml');
    assert.equal(composeByKind('worker').length, CONTROL_WORKERS, 'control workers in docker-compose.yml');
    assert.ok(composeByKind('agent').length >= 1, 'docker-compose.yml has no real-host agent');
    assert.ok(clusterByKind('agent').length >= 1, 'the cluster has no real-host agent');
    // Every batchd service of compose is one of those roles, or the fake hosts named in the header.
    for (const [name, s] of Object.entries(compose.services)) {
      const kind = kindOf(s);
      if (kind === 'agents') assert.equal(name, 'batchd-fake-hosts', `${name}: only batchd-fake-hosts may run the fake fleet`);
    }
  });

  for (const kind of ['api', 'worker', 'agent'] as const) {
    it(`set the same variables on every ${kind} process`, () => {
      const expected = Object.keys(clusterByKind(kind)[0]?.env ?? {}).sort();
      for (const p of clusterByKind(kind)) assert.deepEqual(Object.keys(p.env ?? {}).sort(), expected, `cluster ${p.name}`);
      for (const [name, env] of composeByKind(kind)) assert.deepEqual(Object.keys(env).sort(), expected, `docker-compose.yml ${name}`);
    });
  }

  it("accept the cluster's variables with the same checks every process runs at start", () => {
    for (const p of cluster.filter((x) => x.env)) {
      const config = loadConfig(p.env);
      assert.equal(config.embeddedTemporal, false, `${p.name} would start its own Temporal dev server`);
    }
  });

  it('wire the roles alike: one namespace, one read-model database, shared secrets, agents to an API replica', () => {
    const control = [...clusterByKind('api'), ...clusterByKind('worker')];
    const composeControl = [...composeByKind('api'), ...composeByKind('worker')];
    for (const p of cluster.filter((x) => x.env)) assert.equal(p.env?.TEMPORAL_NAMESPACE, NAMESPACE, p.name);
    for (const [name, env] of [...composeControl, ...composeByKind('agent')]) assert.equal(env.TEMPORAL_NAMESPACE, NAMESPACE, name);
    // Temporal's frontend port: the one both point every batchd process at.
    for (const p of cluster.filter((x) => x.env)) assert.equal(p.env?.TEMPORAL_ADDRESS?.split(':')[1], String(portsOf(DEFAULT_OPTIONS).frontend), p.name);
    for (const [name, env] of [...composeControl, ...composeByKind('agent')]) assert.equal(env.TEMPORAL_ADDRESS, 'temporal:7233', name);
    // One read-model database, named alike.
    const dbOf = (url: string | undefined) => (url ? new URL(url.replace(/\$\{[^}]*\}/g, 'x')).pathname : undefined);
    assert.equal(new Set(control.map((p) => p.env?.DATABASE_URL)).size, 1);
    assert.equal(new Set(composeControl.map(([, e]) => e.DATABASE_URL)).size, 1);
    assert.equal(dbOf(composeControl[0]?.[1].DATABASE_URL), dbOf(control[0]?.env?.DATABASE_URL));
    // Secrets shared where they must be: one value in the cluster, one reference in compose.
    for (const k of ['BOOTSTRAP_API_KEY', 'AGENT_TOKEN']) {
      assert.equal(new Set(control.map((p) => p.env?.[k])).size, 1, `cluster ${k}`);
      assert.equal(new Set(composeControl.map(([, e]) => referenceName(e[k]))).size, 1, `docker-compose.yml ${k}`);
    }
    for (const k of ['PAGE_TOKEN_SECRET', 'METRICS_TOKEN']) {
      assert.equal(new Set(clusterByKind('api').map((p) => p.env?.[k])).size, 1, `cluster ${k}`);
      assert.equal(new Set(composeByKind('api').map(([, e]) => referenceName(e[k]))).size, 1, `docker-compose.yml ${k}`);
    }
    const agentToken = referenceName(composeByKind('api')[0]?.[1].AGENT_TOKEN);
    for (const p of clusterByKind('agent')) assert.equal(p.env?.BATCHD_AGENT_TOKEN, secrets.agentToken, `${p.name}: BATCHD_AGENT_TOKEN`);
    for (const [name, env] of composeByKind('agent')) assert.equal(referenceName(env.BATCHD_AGENT_TOKEN), agentToken, `${name}: BATCHD_AGENT_TOKEN`);
    // Agents ship their logs to one of the API replicas.
    const clusterApis = clusterByKind('api').map((p) => `http://${p.env?.HOST}:${p.env?.PORT}`);
    for (const p of clusterByKind('agent')) assert.ok(clusterApis.includes(p.env?.BATCHD_API_URL ?? ''), `${p.name}: ${p.env?.BATCHD_API_URL}`);
    const composeApis = composeByKind('api').map(([name, e]) => `http://${name}:${e.PORT}`);
    for (const [name, env] of composeByKind('agent')) assert.ok(composeApis.includes(env.BATCHD_API_URL ?? ''), `${name}: ${env.BATCHD_API_URL}`);
    // API replicas listen on distinct ports in the cluster (one machine); compose publishes them on distinct host ports.
    assert.equal(new Set(clusterByKind('api').map((p) => p.port)).size, API_REPLICAS);
  });
});

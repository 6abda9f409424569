/**
 * The production-shaped deployment (docker-compose.yml, Dockerfile, deploy/.env.example), checked
 * without a Docker engine: the compose file is parsed and interpolated here, its wiring is compared
 * with what the code actually reads (src/config.ts's schema, the agent's variables, the search
 * attributes of workflows/search-attributes.ts), and when Debian's docker-compose (v1) is installed
 * it must accept the file offline too (`docker-compose config`), with the same interpolated result.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { after, describe, it } from 'node:test';
import { parse } from 'yaml';
import { DEFAULT_POOLS } from '../../src/bootstrap';
import { loadConfig } from '../../src/config';
import { HOST_ID_PATTERN } from '../../src/domain/hosts';
import { parseResourceName } from '../../src/domain/names';
import { ALL_ROLES, type Role } from '../../src/service';
import { ALL_SEARCH_ATTRIBUTES } from '../../workflows/search-attributes';

// ---------------------------------------------------------------------------------------------
// The files

/** The repository root, whether this runs from dist/test/unit or from test/unit. */
function repoRoot(): string {
  let dir = __dirname;
  for (;;) {
    if (existsSync(join(dir, 'docker-compose.yml')) && existsSync(join(dir, 'package.json'))) return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error(`no docker-compose.yml above ${__dirname}`);
    dir = up;
  }
}

const root = repoRoot();
const COMPOSE_FILE = join(root, 'docker-compose.yml');
const ENV_EXAMPLE = join(root, 'deploy', '.env.example');
const composeText = readFileSync(COMPOSE_FILE, 'utf8');
const dockerfile = readFileSync(join(root, 'Dockerfile'), 'utf8');

type Env = Record<string, string>;

interface Service {
  image?: string;
  build?: string | { context?: string; dockerfile?: string };
  command?: string | string[];
  entrypoint?: string | string[];
  environment?: Record<string, string | number | boolean | null> | string[];
  depends_on?: string[] | Record<string, { condition?: string }>;
  healthcheck?: { test?: string | string[] };
  restart?: string;
  volumes?: Array<string | { source?: string; target?: string }>;
  ports?: Array<string | number>;
  profiles?: string[];
  deploy?: { resources?: { reservations?: { devices?: Array<{ driver?: string; count?: string | number; capabilities?: string[] }> } } };
}

interface Compose {
  services: Record<string, Service>;
  volumes?: Record<string, unknown>;
}

/** Compose files use YAML 1.1 merge keys (`<<: *anchor`), so they are parsed with merge on. */
const compose = parse(composeText, { merge: true }) as Compose;
const services = compose.services;

/** deploy/.env.example as KEY=value pairs; `# KEY=value` lines are the optional settings. */
function readEnvExample(): { required: Env; optional: Env } {
  const required: Env = {};
  const optional: Env = {};
  for (const line of readFileSync(ENV_EXAMPLE, 'utf8').split('\n')) {
    const set = /^([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (set?.[1] !== undefined) required[set[1]] = set[2] ?? '';
    const commented = /^#\s*([A-Z][A-Z0-9_]*)=(.*)$/.exec(line);
    if (commented?.[1] !== undefined) optional[commented[1]] = commented[2] ?? '';
  }
  return { required, optional };
}

const envExample = readEnvExample();

/** The .env a deployment would use: every change-me placeholder replaced by a fresh random value. */
function throwawayDotEnv(): Env {
  const env: Env = {};
  for (const [k, v] of Object.entries(envExample.required)) env[k] = v.startsWith('change-me') ? randomBytes(24).toString('hex') : v;
  return env;
}

const dotEnv = throwawayDotEnv();

// ---------------------------------------------------------------------------------------------
// Compose interpolation (the subset of the Compose spec this file may use)

const REFERENCE = /\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|\$([A-Za-z_][A-Za-z0-9_]*)/g;

interface Reference {
  name: string;
  op?: string;
  arg?: string;
}

function references(text: string): Reference[] {
  const out: Reference[] = [];
  for (const m of text.matchAll(REFERENCE)) {
    const name = m[1] ?? m[4];
    if (name !== undefined) out.push({ name, op: m[2], arg: m[3] });
  }
  return out;
}

function interpolate(text: string, vars: Env): string {
  return text.replace(REFERENCE, (whole, braced: string | undefined, op: string | undefined, arg: string | undefined, bare: string | undefined) => {
    if (whole === '$$') return '$';
    const name = (braced ?? bare) as string;
    const value = vars[name];
    const unset = value === undefined;
    const empty = unset || value === '';
    switch (op) {
      case ':-':
        return empty ? (arg ?? '') : value;
      case '-':
        return unset ? (arg ?? '') : value;
      case ':?':
      case '?':
        if (op === ':?' ? empty : unset) throw new Error(`${name}: ${arg ?? 'required'}`);
        return value as string;
      default:
        return value ?? '';
    }
  });
}

function rawEnvironment(service: Service): Env {
  const env: Env = {};
  const e = service.environment;
  if (Array.isArray(e)) {
    for (const item of e) {
      const i = item.indexOf('=');
      if (i > 0) env[item.slice(0, i)] = item.slice(i + 1);
    }
  } else if (e) {
    for (const [k, v] of Object.entries(e)) if (v !== null) env[k] = String(v);
  }
  return env;
}

function environment(service: Service, vars: Env = dotEnv): Env {
  const env: Env = {};
  for (const [k, v] of Object.entries(rawEnvironment(service))) env[k] = interpolate(v, vars);
  return env;
}

function words(value: string | string[] | undefined): string[] {
  if (value === undefined) return [];
  return Array.isArray(value) ? value : value.split(/\s+/).filter((w) => w !== '');
}

function service(name: string): Service {
  const s = services[name];
  assert.ok(s, `docker-compose.yml has no service "${name}"`);
  return s;
}

/** Every variable name src/config.ts's schema reads: loadConfig runs on an environment that records each read. */
function configKeys(): Set<string> {
  const seen = new Set<string>();
  const recorder = new Proxy<NodeJS.ProcessEnv>({}, {
    get(_target, key) {
      if (typeof key === 'string' && /^[A-Z][A-Z0-9_]*$/.test(key)) seen.add(key);
      return undefined;
    },
  });
  loadConfig(recorder);
  return seen;
}

// ---------------------------------------------------------------------------------------------
// What the deployment must contain

const INFRA = ['postgres', 'temporal', 'temporal-admin-tools', 'temporal-ui'];
const WORKERS = ['batchd-worker-1', 'batchd-worker-2'];
const APIS = ['batchd-api-1', 'batchd-api-2'];
const CONTROL = [...WORKERS, ...APIS];
const BATCHD = [...CONTROL, 'batchd-fake-hosts', 'agent-gpu', 'agent-cpu'];
const REAL_AGENTS = ['agent-gpu', 'agent-cpu'];
/** Read by the agent and the API straight from process.env, beside src/config.ts. */
const AGENT_ONLY_KEYS = ['BATCHD_API_URL', 'BATCHD_AGENT_TOKEN'];
const API_ONLY_KEYS = ['PAGE_TOKEN_SECRET'];
const SECRET_KEY = /(PASSWORD|PWD|SECRET|TOKEN|API_KEY)$/;
/** The only shape a secret may take in docker-compose.yml: a required reference, no default. */
const SECRET_REFERENCE = /^\$\{[A-Z_][A-Z0-9_]*(?::?\?[^}]*)?\}$/;

/** The roles a batchd service runs: `worker,api`, `agents`, or the standalone `agent` command. */
function rolesOf(name: string): { roles: Role[]; agent: boolean } {
  const argv = words(service(name).command);
  if (argv[0] === 'agent') return { roles: [], agent: true };
  const roles = (argv[0] ?? ALL_ROLES.join(',')).split(',') as Role[];
  return { roles, agent: false };
}

function flag(argv: string[], name: string): string | undefined {
  const i = argv.indexOf(`--${name}`);
  return i >= 0 ? argv[i + 1] : undefined;
}

function hostPort(address: string): { host: string; port: number } {
  const m = /^([^:]+):(\d+)$/.exec(address);
  assert.ok(m?.[1] && m[2], `"${address}" is not host:port`);
  return { host: m[1], port: Number(m[2]) };
}

function containerPorts(s: Service): number[] {
  return (s.ports ?? []).map((p) => Number(String(p).split('/')[0]?.split(':').pop()));
}

function dependsOn(s: Service): Record<string, string | undefined> {
  const d = s.depends_on;
  if (d === undefined) return {};
  if (Array.isArray(d)) return Object.fromEntries(d.map((n) => [n, undefined]));
  return Object.fromEntries(Object.entries(d).map(([n, v]) => [n, v.condition]));
}

function healthTest(s: Service): string {
  const t = s.healthcheck?.test;
  return Array.isArray(t) ? t.join(' ') : (t ?? '');
}

// ---------------------------------------------------------------------------------------------

describe('deployment: docker-compose.yml', () => {
  it('has every service the architecture names', () => {
    for (const name of [...INFRA, ...BATCHD]) service(name);
  });

  it('runs batchd services on the image built from the Dockerfile', () => {
    const images = new Set<string>();
    for (const name of BATCHD) {
      const s = service(name);
      const build = typeof s.build === 'string' ? { context: s.build } : s.build;
      assert.ok(build, `${name} has no build section`);
      assert.equal(resolve(root, build.context ?? '.'), root, `${name} builds from another context`);
      assert.equal(build.dockerfile ?? 'Dockerfile', 'Dockerfile', `${name} builds another Dockerfile`);
      assert.ok(s.image, `${name} names no image`);
      images.add(interpolate(s.image, dotEnv));
    }
    assert.equal(images.size, 1, `batchd services use different images: ${[...images].join(', ')}`);
    // Nothing else claims that image.
    for (const name of INFRA) assert.ok(!images.has(interpolate(service(name).image ?? '', dotEnv)), `${name} reuses the batchd image`);
  });

  it('gives batchd services roles the entry point knows', () => {
    for (const name of WORKERS) assert.deepEqual(rolesOf(name).roles, ['worker']);
    for (const name of APIS) assert.deepEqual(rolesOf(name).roles, ['api']);
    assert.deepEqual(rolesOf('batchd-fake-hosts').roles, ['agents']);
    for (const name of BATCHD) {
      const { roles, agent } = rolesOf(name);
      for (const r of roles) assert.ok(ALL_ROLES.includes(r), `${name}: unknown role ${r}`);
      assert.equal(agent, REAL_AGENTS.includes(name), `${name}: agent command`);
    }
  });

  it('sets on batchd services only variables batchd reads, with values src/config.ts accepts', () => {
    const keys = configKeys();
    // The recorder really sees the schema: a few keys every deployment relies on.
    for (const k of ['TEMPORAL_ADDRESS', 'TEMPORAL_NAMESPACE', 'DATABASE_URL', 'BOOTSTRAP_API_KEY', 'DATA_DIR', 'HOST', 'PORT']) {
      assert.ok(keys.has(k), `src/config.ts no longer reads ${k}`);
    }
    for (const name of BATCHD) {
      const { roles, agent } = rolesOf(name);
      const allowed = new Set(keys);
      if (agent || roles.includes('agents')) for (const k of AGENT_ONLY_KEYS) allowed.add(k);
      if (roles.includes('api')) for (const k of API_ONLY_KEYS) allowed.add(k);
      const env = environment(service(name));
      for (const k of Object.keys(env)) assert.ok(allowed.has(k), `${name} sets ${k}, which nothing in ${name} reads`);
      // The values pass the same validation the process runs at start.
      const config = loadConfig(env);
      assert.equal(config.embeddedTemporal, false, `${name} would start its own Temporal dev server`);
      assert.equal(config.DATA_DIR, '/data', `${name}: DATA_DIR`);
    }
  });

  it('points batchd, the UI and the admin tools at the temporal service, which runs on PostgreSQL', () => {
    const temporal = service('temporal');
    assert.match(temporal.image ?? '', /^temporalio\/auto-setup:1\.29\.\d+$/);
    const ports = containerPorts(temporal);
    for (const name of [...BATCHD, 'temporal-ui', 'temporal-admin-tools']) {
      const address = environment(service(name)).TEMPORAL_ADDRESS;
      assert.ok(address, `${name} has no TEMPORAL_ADDRESS`);
      const { host, port } = hostPort(address);
      assert.equal(host, 'temporal', `${name}: TEMPORAL_ADDRESS host`);
      assert.ok(ports.includes(port), `${name}: port ${port} is not the one temporal serves (${ports.join(', ')})`);
    }
    const t = environment(temporal);
    const pg = environment(service('postgres'));
    assert.equal(t.DB, 'postgres12');
    assert.equal(t.POSTGRES_SEEDS, 'postgres');
    assert.equal(t.DB_PORT, '5432');
    assert.equal(t.POSTGRES_USER, pg.POSTGRES_USER);
    assert.equal(t.POSTGRES_PWD, pg.POSTGRES_PASSWORD);
    assert.match(service('postgres').image ?? '', /^postgres:16(\b|$)/);
    assert.match(service('temporal-ui').image ?? '', /^temporalio\/ui:\d+\.\d+\.\d+$/);
    assert.match(service('temporal-admin-tools').image ?? '', /^temporalio\/admin-tools:1\.29\.\d+/);
    // One namespace everywhere: the one auto-setup creates is the one batchd uses.
    for (const name of BATCHD) assert.equal(environment(service(name)).TEMPORAL_NAMESPACE, t.DEFAULT_NAMESPACE, `${name}: TEMPORAL_NAMESPACE`);
  });

  it("points DATABASE_URL at the postgres service's read-model database, shared by workers, API replicas and fake hosts", () => {
    const pg = environment(service('postgres'));
    const urls = new Set<string>();
    for (const name of [...CONTROL, 'batchd-fake-hosts']) {
      const raw = rawEnvironment(service(name)).DATABASE_URL;
      assert.ok(raw, `${name} has no DATABASE_URL`);
      urls.add(raw);
      const url = new URL(interpolate(raw, dotEnv));
      assert.equal(url.protocol, 'postgresql:');
      assert.equal(url.hostname, 'postgres');
      assert.equal(url.port, '5432');
      assert.equal(url.pathname, `/${pg.BATCHD_DB_NAME}`);
      assert.equal(decodeURIComponent(url.username), pg.BATCHD_DB_USER);
      assert.equal(decodeURIComponent(url.password), pg.BATCHD_DB_PASSWORD);
      assert.notEqual(url.pathname, '/temporal');
      assert.notEqual(url.pathname, '/temporal_visibility');
    }
    assert.equal(urls.size, 1, 'workers, API replicas and fake hosts must share one read model');
    // The read-model database and its owner come from the init script mounted into the postgres image.
    const init = (service('postgres').volumes ?? []).map(String).find((v) => v.includes(':/docker-entrypoint-initdb.d'));
    assert.ok(init, 'postgres mounts no init scripts');
    const dir = resolve(root, init.split(':')[0] ?? '');
    const script = join(dir, '10-batchd-read-model.sh');
    assert.ok(existsSync(script), `${script} is missing`);
    assert.ok((statSync(script).mode & 0o111) !== 0, `${script} is not executable`);
    for (const k of ['BATCHD_DB_USER', 'BATCHD_DB_PASSWORD', 'BATCHD_DB_NAME']) assert.match(readFileSync(script, 'utf8'), new RegExp(`\\b${k}\\b`));
  });

  it('starts services in order: each waits for what it needs to be healthy (or done)', () => {
    const expected: Record<string, Record<string, string>> = {
      temporal: { postgres: 'service_healthy' },
      'temporal-admin-tools': { temporal: 'service_healthy' },
      'temporal-ui': { temporal: 'service_healthy' },
      ...Object.fromEntries(CONTROL.map((n) => [n, { postgres: 'service_healthy', temporal: 'service_healthy', 'temporal-admin-tools': 'service_completed_successfully' }])),
      'batchd-fake-hosts': { 'batchd-api-1': 'service_healthy' },
      'agent-gpu': { 'batchd-api-1': 'service_healthy' },
      'agent-cpu': { 'batchd-api-2': 'service_healthy' },
    };
    for (const [name, deps] of Object.entries(expected)) assert.deepEqual(dependsOn(service(name)), deps, `${name}: depends_on`);
    for (const [name, s] of Object.entries(services)) {
      for (const [dep, condition] of Object.entries(dependsOn(s))) {
        assert.ok(services[dep], `${name} depends on unknown service ${dep}`);
        assert.ok(condition, `${name} → ${dep}: no condition`);
        if (condition === 'service_healthy') assert.ok(healthTest(service(dep)), `${name} waits for ${dep} to be healthy, but ${dep} has no healthcheck`);
      }
    }
  });

  it('checks health the way each service can answer, and restarts what should keep running', () => {
    assert.match(healthTest(service('postgres')), /pg_isready/);
    assert.match(healthTest(service('temporal')), /temporal operator cluster health --address temporal:7233/);
    for (const name of APIS) {
      const api = environment(service(name));
      assert.equal(api.HOST, '0.0.0.0', `${name}: the API must listen beyond the container`);
      assert.ok(healthTest(service(name)).includes(`http://127.0.0.1:${api.PORT}/healthz`), `${name} healthcheck must ask /healthz on PORT`);
      assert.ok(containerPorts(service(name)).includes(Number(api.PORT)), `${name} does not publish PORT`);
    }
    const published = APIS.flatMap((n) => (service(n).ports ?? []).map((p) => interpolate(String(p), dotEnv).split(':').slice(0, -1).join(':')));
    assert.equal(new Set(published).size, published.length, `API replicas publish on the same host port: ${published.join(', ')}`);
    for (const [name, s] of Object.entries(services)) {
      if (name === 'temporal-admin-tools') assert.equal(s.restart, 'on-failure', 'the one-shot retries only on failure');
      else assert.ok(s.restart === 'unless-stopped' || s.restart === 'always', `${name}: restart is ${s.restart}`);
    }
  });

  it('keeps state in named volumes, one data volume per batchd service', () => {
    const declared = new Set(Object.keys(compose.volumes ?? {}));
    const used = new Map<string, string>();
    for (const [name, s] of Object.entries(services)) {
      for (const v of s.volumes ?? []) {
        const source = typeof v === 'string' ? (v.split(':')[0] ?? '') : (v.source ?? '');
        if (source.startsWith('.') || source.startsWith('/')) continue;
        assert.ok(declared.has(source), `${name} mounts undeclared volume ${source}`);
        assert.ok(!used.has(source), `${source} is mounted by both ${used.get(source)} and ${name}`);
        used.set(source, name);
      }
    }
    for (const name of BATCHD) {
      const dataDir = environment(service(name)).DATA_DIR;
      const mount = (service(name).volumes ?? []).map(String).find((v) => v.split(':')[1] === dataDir);
      assert.ok(mount, `${name}: no volume at DATA_DIR ${dataDir}`);
      assert.ok(declared.has(mount.split(':')[0] ?? ''), `${name}: DATA_DIR is not on a named volume`);
    }
    const pgData = (service('postgres').volumes ?? []).map(String).find((v) => v.split(':')[1] === '/var/lib/postgresql/data');
    assert.ok(pgData && declared.has(pgData.split(':')[0] ?? ''), 'postgres keeps its data on no named volume');
  });

  it('joins each real agent to a real pool and ships every agent’s logs to the API', () => {
    const apiRaw = rawEnvironment(service('batchd-api-1'));
    const fakePools = new Set(DEFAULT_POOLS.map((p) => p.id));
    for (const name of REAL_AGENTS) {
      const argv = words(service(name).command);
      const pool = flag(argv, 'pool');
      const host = flag(argv, 'host');
      const parsed = pool ? parseResourceName(pool) : undefined;
      assert.equal(parsed?.collection, 'nodePools', `${name}: --pool ${pool} is not a node pool name`);
      assert.ok(parsed && !fakePools.has(parsed.id), `${name}: a real host cannot join the fake pool ${pool}`);
      assert.ok(host && HOST_ID_PATTERN.test(host), `${name}: --host ${host} is not a host id`);
      assert.ok(service(name).profiles?.includes('real-hosts'), `${name} should start only with --profile real-hosts`);
    }
    for (const name of [...REAL_AGENTS, 'batchd-fake-hosts']) {
      const env = environment(service(name));
      const target = APIS.find((a) => env.BATCHD_API_URL === `http://${a}:${environment(service(a)).PORT}`);
      assert.ok(target, `${name}: BATCHD_API_URL ${env.BATCHD_API_URL} is none of the API replicas`);
      assert.equal(dependsOn(service(name))[target], 'service_healthy', `${name} ships logs to ${target} but does not wait for it`);
      assert.equal(rawEnvironment(service(name)).BATCHD_AGENT_TOKEN, apiRaw.AGENT_TOKEN, `${name}: BATCHD_AGENT_TOKEN is not the API's AGENT_TOKEN`);
    }
    const hosts = REAL_AGENTS.map((n) => flag(words(service(n).command), 'host'));
    assert.equal(new Set(hosts).size, hosts.length, 'two agents share a host id');
    const devices = service('agent-gpu').deploy?.resources?.reservations?.devices ?? [];
    assert.ok(
      devices.some((d) => d.driver === 'nvidia' && String(d.count) === 'all' && (d.capabilities ?? []).includes('gpu')),
      'agent-gpu reserves no NVIDIA GPUs (driver nvidia, count all, capabilities [gpu])',
    );
  });

  it('registers exactly the search attributes of workflows/search-attributes.ts, in the namespace batchd uses', () => {
    const s = service('temporal-admin-tools');
    const script = interpolate([...words(s.entrypoint), ...(Array.isArray(s.command) ? s.command : [s.command ?? ''])].join(' '), dotEnv);
    const create = /temporal operator search-attribute create([\s\S]*)$/.exec(script)?.[1];
    assert.ok(create, 'temporal-admin-tools runs no `temporal operator search-attribute create`');
    const CLI_TYPE: Record<string, string> = {
      Text: 'TEXT', Keyword: 'KEYWORD', Int: 'INT', Double: 'DOUBLE', Bool: 'BOOL', Datetime: 'DATETIME', KeywordList: 'KEYWORD_LIST',
    };
    const registered = [...create.matchAll(/--name\s+(\S+)\s+--type\s+(\S+)/g)].map((m) => `${m[1]}:${CLI_TYPE[m[2] ?? ''] ?? m[2]}`);
    assert.equal(registered.length, (create.match(/--name\b/g) ?? []).length, 'every --name needs its --type right after it');
    assert.deepEqual(registered.sort(), ALL_SEARCH_ATTRIBUTES.map((a) => `${a.name}:${a.type}`).sort());
    const namespace = /--namespace\s+(\S+)/.exec(create)?.[1];
    assert.equal(namespace, environment(service('temporal')).DEFAULT_NAMESPACE);
    for (const name of CONTROL) assert.equal(namespace, environment(service(name)).TEMPORAL_NAMESPACE, `${name}: TEMPORAL_NAMESPACE`);
  });

  it('commits no secret: each one is a required ${...} reference with no default, documented in deploy/.env.example', () => {
    for (const [name, s] of Object.entries(services)) {
      for (const [k, v] of Object.entries(rawEnvironment(s))) {
        if (SECRET_KEY.test(k)) assert.match(v, SECRET_REFERENCE, `${name}: ${k} must be a \${VAR:?...} reference`);
        if (k === 'DATABASE_URL') assert.match(v, /^postgres(?:ql)?:\/\/(?:\$\{[^}]*\}|[^:@/$])+:\$\{[A-Z_][A-Z0-9_]*(?::?\?[^}]*)?\}@/, `${name}: DATABASE_URL password must be a \${VAR:?...} reference`);
      }
    }
    const all = references(composeText);
    const secretNames = new Set<string>();
    for (const s of Object.values(services)) {
      for (const [k, v] of Object.entries(rawEnvironment(s))) {
        if (SECRET_KEY.test(k) || k === 'DATABASE_URL') for (const r of references(v)) if (r.op?.endsWith('?')) secretNames.add(r.name);
      }
    }
    for (const r of all) {
      if (secretNames.has(r.name)) assert.ok(!r.op?.endsWith('-'), `\${${r.name}} has a committed default`);
    }
    // Every variable the file reads is documented; the required ones are set, with placeholders only.
    for (const r of all) {
      assert.ok(r.name in envExample.required || r.name in envExample.optional, `deploy/.env.example does not document ${r.name}`);
      if (r.op?.endsWith('?')) assert.ok(r.name in envExample.required, `deploy/.env.example must set ${r.name} (it is required)`);
    }
    for (const n of secretNames) assert.match(envExample.required[n] ?? '', /^change-me/, `deploy/.env.example: ${n} must be a change-me placeholder`);
  });
});

describe('deployment: Dockerfile', () => {
  const stages = dockerfile.split(/^FROM\s+/m).slice(1);
  const runtime = stages[stages.length - 1] ?? '';

  it('builds in stages and runs as a non-root user on node:20-bookworm-slim', () => {
    assert.ok(stages.length >= 2, 'not a multi-stage build');
    assert.match(dockerfile, /^ARG NODE_IMAGE=node:20-bookworm-slim$/m);
    assert.match(dockerfile, /RUN npm ci\b/);
    assert.match(dockerfile, /npm run build/);
    assert.match(dockerfile, /npm prune --omit=dev/);
    // npm run build compiles the rank launcher: its source and a C compiler are in the build stage.
    assert.match(stages[0] ?? '', /^COPY native \.\/native$/m);
    assert.match(stages[0] ?? '', /apt-get install[^\n]*\bgcc\b[^\n]*\blibc6-dev\b/);
    assert.match(runtime, /python3/);
    assert.match(runtime, /\bbash\b/);
    assert.match(runtime, /\bprocps\b/);
    const user = /^USER\s+(\S+)/m.exec(runtime)?.[1];
    assert.ok(user && user !== 'root' && user !== '0', `the runtime stage runs as ${user ?? 'root'}`);
    assert.match(runtime, /DATA_DIR=\/data/);
    assert.match(runtime, /^VOLUME \["\/data"\]$/m);
    // Workflow threads without the SDK's stack-trace hook, as npm start runs them (src/temporal/workflow-threads.ts).
    assert.match(runtime, /^ENTRYPOINT \["node", "--require", "\.\/dist\/src\/temporal\/workflow-threads\.js", "dist\/src\/main\.js"\]$/m);
  });

  it('keeps secrets and local builds out of the build context', () => {
    const ignored = readFileSync(join(root, '.dockerignore'), 'utf8').split('\n').map((l) => l.trim());
    for (const p of ['.env', 'node_modules', 'dist', 'data', '.git']) assert.ok(ignored.includes(p), `.dockerignore lacks ${p}`);
  });
});

describe('deployment: docker-compose (v1) accepts the file offline', () => {
  const probe = spawnSync('docker-compose', ['version', '--short'], { encoding: 'utf8' });
  const available = probe.status === 0;
  const dir = mkdtempSync(join(tmpdir(), 'batchd-compose-'));
  after(() => rmSync(dir, { recursive: true, force: true }));
  const skip = available ? false : 'docker-compose (v1) is not installed (scripts/install-system-deps.sh installs it)';

  function run(env: Env, ...args: string[]) {
    const file = join(dir, `env-${randomBytes(4).toString('hex')}`);
    writeFileSync(file, Object.entries(env).map(([k, v]) => `${k}=${v}\n`).join(''));
    // A bare environment: the shell's own POSTGRES_PASSWORD and the like must not leak in.
    return spawnSync('docker-compose', ['--env-file', file, '-f', COMPOSE_FILE, '--profile', 'real-hosts', ...args], {
      cwd: root,
      encoding: 'utf8',
      env: { PATH: process.env.PATH ?? '/usr/bin:/bin', HOME: dir },
    });
  }

  it('validates with a .env made from deploy/.env.example', { skip }, () => {
    const r = run(dotEnv, 'config', '-q');
    assert.equal(r.status, 0, `docker-compose config -q failed:\n${r.stderr}`);
  });

  it('interpolates every service environment the way this test reads it', { skip }, () => {
    const r = run(dotEnv, 'config');
    assert.equal(r.status, 0, r.stderr);
    const resolved = parse(r.stdout) as Compose;
    assert.deepEqual(Object.keys(resolved.services).sort(), Object.keys(services).sort());
    for (const name of Object.keys(services)) {
      const theirs: Env = {};
      for (const [k, v] of Object.entries(rawEnvironment(resolved.services[name] as Service))) theirs[k] = v;
      assert.deepEqual(theirs, environment(service(name)), `${name}: environment`);
    }
  });

  it('refuses the file when a secret is missing from .env', { skip }, () => {
    // Every secret is a ${VAR:?...} reference (checked above); one is enough to see compose enforce it.
    const env = { ...dotEnv };
    delete env.AGENT_TOKEN;
    const r = run(env, 'config', '-q');
    assert.notEqual(r.status, 0, 'docker-compose accepted the file without AGENT_TOKEN');
    assert.match(r.stderr, /set AGENT_TOKEN in \.env/);
  });
});

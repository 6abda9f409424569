/**
 * A throwaway PostgreSQL server for tests: the server binaries of Debian's `postgresql` package
 * (/usr/lib/postgresql/<version>/bin), a fresh cluster in a temp dir, listening on 127.0.0.1 at a free
 * port (and a Unix socket in the same dir), fsync off. Run as root, the server runs as the `postgres`
 * OS user (PostgreSQL refuses root). There is no skip: without the binaries, startPostgres rejects
 * with a message saying what to install, so every test that needs it fails.
 *
 * Databases are created with an ICU en-US collation on purpose: a linguistic default collation is
 * what production servers often have, and what the read model must not depend on.
 */
import { type ChildProcess, execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, chownSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Client } from 'pg';
import { freePort } from './ports';

export const INSTALL_HINT =
  "PostgreSQL server binaries not found (looked for initdb and postgres under /usr/lib/postgresql/*/bin and $POSTGRES_BIN_DIR). Install Debian's postgresql package: apt-get install -y postgresql";

export interface TestPostgres {
  /** A database of its own on the server, with a password in the URL (scram-sha-256 over TCP). */
  url: string;
  /** Creates another empty database and returns its URL. */
  createDatabase(name: string): Promise<string>;
  stop(): Promise<void>;
}

export interface StartPostgresOptions {
  /** Where to look for <version>/bin/{initdb,postgres}; default /usr/lib/postgresql. */
  searchRoot?: string;
}

/** The newest bin dir that has both initdb and postgres, or undefined. */
export function findPostgresBinDir(searchRoot = '/usr/lib/postgresql'): string | undefined {
  const override = process.env.POSTGRES_BIN_DIR;
  const candidates = override ? [override] : existsSync(searchRoot) ? readdirSync(searchRoot).sort((a, b) => Number(b) - Number(a)).map((v) => join(searchRoot, v, 'bin')) : [];
  return candidates.find((dir) => existsSync(join(dir, 'initdb')) && existsSync(join(dir, 'postgres')));
}

export async function startPostgres(options: StartPostgresOptions = {}): Promise<TestPostgres> {
  const bin = findPostgresBinDir(options.searchRoot);
  if (!bin) throw new Error(INSTALL_HINT);
  const owner = serverUser();
  const dir = mkdtempSync(join(tmpdir(), 'batchd-pg-'));
  const data = join(dir, 'data');
  const password = randomBytes(12).toString('hex');
  let server: ChildProcess | undefined;
  const killOnExit = (): void => {
    // The test process is exiting without stop(): immediate shutdown, so no server outlives it.
    server?.kill('SIGQUIT');
  };
  try {
    chmodSync(dir, 0o700);
    writeFileSync(join(dir, 'pwfile'), `${password}\n`, { mode: 0o600 });
    if (owner) {
      chownSync(dir, owner.uid, owner.gid);
      chownSync(join(dir, 'pwfile'), owner.uid, owner.gid);
    }
    await run(
      join(bin, 'initdb'),
      ['-D', data, '-U', 'postgres', '--auth-local=trust', '--auth-host=scram-sha-256', `--pwfile=${join(dir, 'pwfile')}`, '-E', 'UTF8', '--locale=C', '--no-sync'],
      owner,
    );

    let port = 0;
    let log = { text: '' };
    for (let attempt = 1; ; attempt++) {
      port = await freePort();
      log = { text: '' };
      server = spawn(
        join(bin, 'postgres'),
        ['-D', data, '-k', dir, '-p', String(port), '-c', 'listen_addresses=127.0.0.1', '-c', 'fsync=off', '-c', 'synchronous_commit=off', '-c', 'full_page_writes=off'],
        { stdio: ['ignore', 'pipe', 'pipe'], ...(owner ?? {}) },
      );
      collect(server, log);
      process.once('exit', killOnExit);
      const up = await waitUntilReady(server, adminUrl(password, port), log);
      if (up) break;
      process.removeListener('exit', killOnExit);
      // Another process took the port between freePort and the bind: try another one.
      if (attempt >= 3 || !/could not bind|address already in use/i.test(log.text)) {
        throw new Error(`PostgreSQL did not start:\n${log.text.slice(-4000)}`);
      }
    }

    const createDatabase = async (name: string): Promise<string> => {
      if (!/^[a-z_][a-z0-9_]{0,62}$/.test(name)) throw new Error(`bad test database name ${name}`);
      const admin = new Client({ connectionString: adminUrl(password, port) });
      await admin.connect();
      try {
        await admin.query(`CREATE DATABASE ${name} TEMPLATE template0 ENCODING 'UTF8' LOCALE 'C' LOCALE_PROVIDER icu ICU_LOCALE 'en-US'`);
      } finally {
        await admin.end();
      }
      return `postgresql://postgres:${password}@127.0.0.1:${port}/${name}`;
    };
    const url = await createDatabase('batchd_test');

    const running = server;
    let stopped: Promise<void> | undefined;
    return {
      url,
      createDatabase,
      stop() {
        stopped ??= (async () => {
          process.removeListener('exit', killOnExit);
          await shutDown(running);
          rmSync(dir, { recursive: true, force: true });
        })();
        return stopped;
      },
    };
  } catch (error) {
    process.removeListener('exit', killOnExit);
    if (server) await shutDown(server);
    rmSync(dir, { recursive: true, force: true });
    throw error;
  }
}

/** The OS user the server runs as: `postgres` when we are root (PostgreSQL refuses root), else ourselves. */
function serverUser(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith('postgres:'));
  const [, , uid, gid] = line?.split(':') ?? [];
  if (uid === undefined || gid === undefined) {
    throw new Error("running as root, but there is no 'postgres' OS user to run the server as (Debian's postgresql package creates it)");
  }
  return { uid: Number(uid), gid: Number(gid) };
}

const adminUrl = (password: string, port: number): string => `postgresql://postgres:${password}@127.0.0.1:${port}/postgres`;

function run(file: string, args: string[], owner: { uid: number; gid: number } | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile(file, args, { ...(owner ?? {}), maxBuffer: 4 << 20 }, (error, stdout, stderr) => {
      if (error) reject(new Error(`${file} failed: ${error.message}\n${stdout}${stderr}`));
      else resolve();
    });
  });
}

function collect(child: ChildProcess, log: { text: string }): void {
  const append = (chunk: Buffer): void => {
    log.text = (log.text + chunk.toString()).slice(-16_000);
  };
  child.stdout?.on('data', append);
  child.stderr?.on('data', append);
}

/** Polls until the server accepts a login; false when it exited first (its log says why). */
async function waitUntilReady(server: ChildProcess, url: string, log: { text: string }): Promise<boolean> {
  const deadline = Date.now() + 30_000;
  while (Date.now() < deadline) {
    if (server.exitCode !== null || server.signalCode !== null) return false;
    const client = new Client({ connectionString: url, connectionTimeoutMillis: 2000 });
    client.on('error', () => undefined);
    try {
      await client.connect();
      await client.query('SELECT 1');
      await client.end();
      return true;
    } catch {
      await client.end().catch(() => undefined);
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`PostgreSQL did not accept connections within 30 s:\n${log.text.slice(-4000)}`);
}

/** Fast shutdown (SIGINT: abort sessions, checkpoint), then SIGKILL if it lingers. */
async function shutDown(server: ChildProcess): Promise<void> {
  if (server.exitCode !== null || server.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => server.once('exit', () => resolve()));
  server.kill('SIGINT');
  const timer = setTimeout(() => server.kill('SIGKILL'), 10_000);
  await exited;
  clearTimeout(timer);
}

/**
 * One server for a test file, started on first use (a start failure fails every case that needs it),
 * handing out a fresh database per call (`<prefix>_<n>`); `current` is the newest one.
 */
export function sharedPostgres(prefix: string): { freshDatabase(): Promise<string>; readonly current: string; stop(): Promise<void> } {
  let server: Promise<TestPostgres> | undefined;
  let n = 0;
  let current = '';
  return {
    async freshDatabase() {
      current = await (await (server ??= startPostgres())).createDatabase(`${prefix}_${n++}`);
      return current;
    },
    get current() {
      return current;
    },
    async stop() {
      await (await server?.catch(() => undefined))?.stop();
    },
  };
}

/** Runs one statement on its own connection and returns its rows. */
export async function sql<R extends object = Record<string, unknown>>(url: string, text: string, params: unknown[] = []): Promise<R[]> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    return (await client.query<R & Record<string, unknown>>(text, params)).rows;
  } finally {
    await client.end();
  }
}

/**
 * The web console, end to end: the whole service and Debian's Chromium driven by playwright-core, as a
 * person uses it. Sign in with a pasted key; create a job through the form; watch it reach RUNNING
 * with its placement and its logs streaming; cancel it after the confirmation and see CANCELLED, then
 * delete it; a bad form shows the API's errors on their fields; a key of another account sees none of
 * the first account's jobs; the pools page draws hosts, slots and the sampled chart. The pages load with a
 * strict CSP and no console error (a CSP violation would be one). Screenshots, at laptop and phone
 * widths, go to test-artifacts/console-*.png.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type Page } from 'playwright-core';
import { startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const INSTALL_HINT = 'run `bash scripts/install-system-deps.sh` (it installs Debian’s chromium)';
const ARTIFACTS = join(__dirname, '..', '..', '..', 'test-artifacts');
const UI_TIMEOUT = 30_000;
const JOB_ID = `console-${randomBytes(3).toString('hex')}`;
const BETA_KEY = `beta-${randomBytes(16).toString('hex')}`;
const LAPTOP = { width: 1280, height: 860 };
const PHONE = { width: 390, height: 844 };

/** A full-page screenshot under test-artifacts/, checked to be a PNG of at least the viewport with something drawn on it. */
async function screenshot(page: Page, name: string): Promise<void> {
  const path = join(ARTIFACTS, `console-${name}.png`);
  rmSync(path, { force: true });
  await page.screenshot({ path, fullPage: true });
  const png = readFileSync(path);
  assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), `${path} is a PNG`);
  const viewport = page.viewportSize();
  assert.ok(viewport && png.readUInt32BE(16) >= viewport.width && png.readUInt32BE(20) >= viewport.height, `${path} covers the page`);
  assert.ok(png.length > 10_000, `${path} has content (${png.length} bytes)`);
}

async function signIn(page: Page, base: string, account: string, key: string): Promise<void> {
  await page.goto(`${base}/console/#/jobs`);
  await page.getByLabel('Account').fill(account);
  await page.getByLabel('API key').fill(key);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

describe('the web console', () => {
  let t: TestService | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let base: string;
  let pool: string;
  const pageErrors: string[] = [];
  const keysDir = mkdtempSync(join(tmpdir(), 'batchd-console-keys-'));

  before(
    async () => {
      if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM}: ${INSTALL_HINT}`);
      mkdirSync(ARTIFACTS, { recursive: true });
      const keysFile = join(keysDir, 'keys.json');
      writeFileSync(keysFile, JSON.stringify({ keys: [{ key: BETA_KEY, account: 'beta', email: 'cat@beta.dev' }] }));
      t = await startTestService({ env: { API_KEYS_FILE: keysFile, USAGE_SAMPLE_MS: '1000' } });
      base = t.url;
      // A pool of its own: a fake pool's agents are keyed by pool and host, and another suite's start sweeps `default-*`.
      pool = `console-${randomBytes(4).toString('hex')}`;
      const created = await t.api.post('/v1/accounts/default/nodePools', { nodePoolId: pool, nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes: 3 } } });
      assert.equal(created.status, 200, JSON.stringify(created.body));
      try {
        browser = await chromium.launch({
          executablePath: CHROMIUM,
          headless: true,
          timeout: UI_TIMEOUT,
          args: ['--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        });
      } catch (err) {
        throw new Error(`Chromium at ${CHROMIUM} did not start (${(err as Error).message.split('\n')[0]}): ${INSTALL_HINT}`);
      }
      page = await browser.newPage({ viewport: LAPTOP });
      page.setDefaultTimeout(UI_TIMEOUT);
      page.on('pageerror', (err) => pageErrors.push(`page error: ${err.message}`));
      page.on('console', (m) => {
        if (m.type() === 'error') pageErrors.push(`console error: ${m.text()}`);
      });
    },
    { timeout: 240_000 },
  );

  after(async () => {
    await browser?.close();
    await t?.stop();
    rmSync(keysDir, { recursive: true, force: true });
  });

  it('is served at / and /console/ with the right types and a strict Content-Security-Policy', async () => {
    const root = await fetch(`${base}/`, { redirect: 'manual' });
    assert.equal(root.status, 302);
    assert.equal(root.headers.get('location'), '/console/');
    const bare = await fetch(`${base}/console`, { redirect: 'manual' });
    assert.equal(bare.status, 301, 'the page’s relative URLs need the slash');
    assert.equal(bare.headers.get('location'), '/console/');
    const html = await fetch(`${base}/console/`);
    assert.equal(html.status, 200);
    assert.match(html.headers.get('content-type') ?? '', /^text\/html/);
    const csp = html.headers.get('content-security-policy') ?? '';
    assert.match(csp, /default-src 'none'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval|https?:/);
    const text = await html.text();
    assert.doesNotMatch(text, /<script>|<script [^>]*>[^<]|<style|\sstyle=|\son[a-z]+=/i, 'no inline script, style or handler');
    assert.match((await fetch(`${base}/console/app.js`)).headers.get('content-type') ?? '', /^(text|application)\/javascript/);
    assert.match((await fetch(`${base}/console/styles.css`)).headers.get('content-type') ?? '', /^text\/css/);
    assert.equal((await fetch(`${base}/console/nope.js`)).status, 404);
  });

  it('signs in with a pasted key, and refuses a bad one on the key field', { timeout: 60_000 }, async () => {
    await signIn(page, base, 'default', 'not-a-key-0123456789');
    await page.getByRole('alert').filter({ hasText: 'This API key is not valid.' }).waitFor();
    assert.equal(await page.getByLabel('API key').getAttribute('aria-invalid'), 'true');
    await screenshot(page, 'sign-in-refused');
    await page.getByLabel('API key').fill(t?.key ?? '');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByRole('heading', { name: 'Batch jobs', level: 1 }).waitFor();
    // On a fresh load the keyboard's first stop is the skip link, and it lands in the main content.
    await page.reload();
    await page.getByRole('heading', { name: 'Batch jobs', level: 1 }).waitFor();
    await page.keyboard.press('Tab');
    assert.equal(await page.evaluate<string>('document.activeElement.textContent'), 'Skip to content');
    await page.keyboard.press('Enter');
    assert.equal(await page.evaluate<string>('document.activeElement.id'), 'main');
    // Evaluated in the page (a string: this project's TypeScript has no DOM types).
    const stored = await page.evaluate<{ session: number; local: number; cookies: string }>('({ session: sessionStorage.length, local: localStorage.length, cookies: document.cookie })');
    assert.deepEqual(stored, { session: 1, local: 0, cookies: '' }, 'the key is kept for the tab only');
  });

  it('shows the API’s field errors on the fields of a bad form, and creates nothing', { timeout: 60_000 }, async () => {
    await page.getByRole('link', { name: 'New job' }).first().click();
    await page.getByRole('heading', { name: 'New batch job' }).waitFor();
    await page.getByLabel('Node pool').selectOption(pool);
    await page.getByLabel('Job id (optional)').fill('Bad_Id');
    await page.getByLabel('Ranks', { exact: true }).fill('0');
    await page.getByLabel('Command').fill('');
    await page.getByRole('button', { name: 'Create job' }).click();
    const summary = page.locator('.error-summary');
    await summary.waitFor({ state: 'visible' });
    for (const [label, message] of [
      ['Ranks', /numRanks|at least 1|greater/i],
      ['Command', /./],
    ] as const) {
      const input = page.getByLabel(label, { exact: true });
      assert.equal(await input.getAttribute('aria-invalid'), 'true', `${label} is marked invalid`);
      const errorId = (await input.getAttribute('aria-describedby'))?.split(' ').find((id) => id.endsWith('-error')) ?? '';
      const text = await page.locator(`#${errorId}`).innerText();
      assert.match(text, message, `${label}: ${text}`);
    }
    await screenshot(page, 'create-errors');
    await page.setViewportSize(PHONE);
    await screenshot(page, 'create-errors-phone');
    await page.setViewportSize(LAPTOP);
    // The summary links each problem to its field.
    await summary.getByRole('link').first().click();
    assert.equal(await page.evaluate<string | null>("document.activeElement?.getAttribute('aria-invalid') ?? null"), 'true');
    // A bad id is its own refusal (the id is checked once the body is good).
    await page.getByLabel('Ranks', { exact: true }).fill('1');
    await page.getByLabel('Command').fill('true');
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.locator('#f-batchJobId[aria-invalid="true"]').waitFor();
    // Another executor's nested fields: an empty python target is refused on the Target field.
    await page.getByLabel('Job id (optional)').fill('');
    await page.getByLabel('Python').check();
    assert.equal(await page.getByLabel('Command').isVisible(), false, 'only the chosen executor’s fields show');
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.locator('#f-pythonExecutor-target[aria-invalid="true"]').waitFor();
    assert.equal(await page.locator('#f-batchJobId').getAttribute('aria-invalid'), null, 'a field that is now right is no longer marked');
    assert.match(await page.locator('#f-pythonExecutor-target-error').innerText(), /./);
    const list = await t?.api.get<{ totalSize: number }>('/v1/accounts/default/batchJobs');
    assert.equal(list?.body.totalSize, 0, 'nothing was created');
  });

  it('creates a job through the form, follows it to RUNNING with its placement and live logs, cancels it after a confirmation', { timeout: 150_000 }, async () => {
    await page.goto(`${base}/console/#/create`);
    await page.getByLabel('Node pool').selectOption(pool);
    await page.getByLabel('Job id (optional)').fill(JOB_ID);
    await page.getByLabel('Display name').fill('Console test job');
    await page.getByLabel('Shell').check();
    await page.getByLabel('Ranks', { exact: true }).fill('2');
    await page.getByLabel('Command').fill('for i in $(seq 1 600); do echo "tick $i from rank $RANK"; sleep 0.3; done');
    await page.getByText('More: environment variables, annotations, image').click();
    await page.getByLabel('Annotations').fill('team=console\npurpose=e2e');
    await page.getByRole('button', { name: 'Create job' }).click();
    await page.waitForURL((u) => u.hash === `#/jobs/${JOB_ID}`);
    await page.locator('.chip-slot .chip', { hasText: /^RUNNING$/ }).waitFor({ timeout: 60_000 });
    // Both ranks' lines arrive through the live stream.
    for (const rank of [0, 1]) await page.locator('#log-lines .log-line', { hasText: `from rank ${rank}` }).first().waitFor({ timeout: 30_000 });
    // More keep coming while it runs (polled from here: the page's CSP forbids the string evaluation waitForFunction uses).
    const before = await page.locator('#log-lines .log-line').count();
    await waitFor('more log lines', async () => ((await page.locator('#log-lines .log-line').count()) > before + 4 ? true : undefined), 20_000, 250);
    // Placement: two CPU hosts, one rank each, rank 0 and rank 1.
    const rows = page.locator('#job-placement tbody tr');
    await rows.first().waitFor();
    assert.equal(await rows.count(), 2);
    assert.match(await page.locator('#job-placement').innerText(), /h\d\s+0\s+0[\s\S]*h\d\s+1\s+0/);
    assert.match(await page.locator('#job-status').innerText(), /running 2 ranks on 2 hosts/);
    assert.match(await page.locator('section', { has: page.getByRole('heading', { name: 'Annotations' }) }).innerText(), /team\s+console/);
    await screenshot(page, 'job-running');
    await page.setViewportSize(PHONE);
    await screenshot(page, 'job-running-phone');
    await page.setViewportSize(LAPTOP);

    // Rank filter and search restart the stream with only those lines.
    await page.getByLabel('Ranks', { exact: true }).fill('1');
    await page.getByLabel('Search').fill('tick 1');
    await page.getByRole('button', { name: 'Show' }).click();
    await page.locator('#log-lines .log-line', { hasText: 'from rank 1' }).first().waitFor();
    const lines = await page.locator('#log-lines .log-msg').allInnerTexts();
    assert.ok(lines.length > 0 && lines.every((l) => l.includes('tick 1') && l.endsWith('from rank 1')), `filtered lines: ${lines.slice(0, 5).join(' | ')}`);

    // Rename after a confirmation.
    await page.getByRole('button', { name: 'Edit name' }).click();
    const rename = page.getByRole('dialog', { name: 'Edit display name' });
    await rename.getByLabel('Display name').fill('Renamed in the console');
    await rename.getByRole('button', { name: 'Save' }).click();
    await page.getByRole('heading', { name: /Renamed in the console/ }).waitFor();

    // Cancel: the dialog first (dismissing it changes nothing), then CANCELLED.
    await page.getByRole('button', { name: 'Cancel job' }).click();
    const dialog = page.getByRole('dialog', { name: `Cancel job ${JOB_ID}?` });
    await dialog.waitFor();
    await screenshot(page, 'cancel-confirm');
    await page.keyboard.press('Escape');
    await dialog.waitFor({ state: 'detached' });
    assert.equal((await t?.api.get<{ state: string }>(`/v1/accounts/default/batchJobs/${JOB_ID}`))?.body.state, 'RUNNING', 'Escape cancels nothing');
    await page.getByRole('button', { name: 'Cancel job' }).click();
    assert.equal(await dialog.getByRole('button', { name: 'Keep it running', exact: true }).count(), 1, 'the way back says what it does');
    await dialog.getByRole('button', { name: 'Cancel job', exact: true }).click();
    await page.locator('.chip-slot .chip', { hasText: /^CANCELLED$/ }).waitFor({ timeout: 60_000 });
    assert.equal((await waitForState(t?.api ?? assert.fail(), 'default', JOB_ID, 'CANCELLED')).state, 'CANCELLED');
    await page.locator('#log-info', { hasText: /ended CANCELLED/ }).waitFor();
    await screenshot(page, 'job-cancelled');

    // The list shows it with its state chip; at phone width each job is a card.
    await page.getByRole('link', { name: 'Jobs', exact: true }).click();
    const row = page.getByRole('row').filter({ has: page.getByRole('link', { name: JOB_ID }) });
    await row.getByText('CANCELLED', { exact: true }).waitFor();
    await screenshot(page, 'jobs');
    await page.getByLabel('Filter', { exact: true }).fill('state = "NOPE"');
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.locator('#jobs-filter[aria-invalid="true"]').waitFor();
    assert.match(await page.locator('#jobs-filter-error').innerText(), /state/);
    await page.getByLabel('Filter', { exact: true }).fill(`state = "CANCELLED" AND nodePoolId = "${pool}"`);
    await page.getByRole('button', { name: 'Apply' }).click();
    await page.locator('#jobs-count', { hasText: /of 1 job$/ }).waitFor();
    await page.setViewportSize(PHONE);
    await screenshot(page, 'jobs-phone');
    await page.setViewportSize(LAPTOP);
  });

  it('draws each pool’s hosts, slots and the sampled last hour', { timeout: 60_000 }, async () => {
    await page.getByRole('link', { name: 'Pools' }).click();
    const card = page.locator('section.pool', { has: page.getByRole('heading', { name: new RegExp(`^${pool}`) }) });
    await card.waitFor();
    assert.equal(await card.locator('li.host').count(), 3);
    assert.equal(await card.locator('.slot').count(), 3, 'm5.xlarge: one slot per host');
    const picture = card.locator('.slots[role="img"]').first();
    assert.match((await picture.getAttribute('aria-label')) ?? '', /^h\d, ready: 0 of 1 slot in use$/);
    await card.locator('figure.chart polyline.line-capacity').waitFor({ state: 'attached' });
    assert.match(await card.locator('figure.chart').innerText(), /Now 0 of 3 slots in use, 0 queued/);
    await screenshot(page, 'pools');
    await page.setViewportSize(PHONE);
    await screenshot(page, 'pools-phone');
    await page.setViewportSize(LAPTOP);
  });

  it('deletes the job after a confirmation, and the list no longer has it', { timeout: 60_000 }, async () => {
    await page.goto(`${base}/console/#/jobs/${JOB_ID}`);
    await page.locator('.chip-slot .chip', { hasText: /^CANCELLED$/ }).waitFor();
    await page.getByRole('button', { name: 'Delete', exact: true }).click();
    const dialog = page.getByRole('dialog', { name: `Delete job ${JOB_ID}?` });
    await dialog.getByRole('button', { name: 'Delete job', exact: true }).click();
    await page.waitForURL((u) => u.hash === '#/jobs');
    await waitFor('the job to be gone', async () => ((await t?.api.get(`/v1/accounts/default/batchJobs/${JOB_ID}`))?.status === 404 ? true : undefined));
    await page.reload();
    await page.locator('#jobs-count', { hasText: /of 0 jobs$/ }).waitFor();
  });

  it('a key of another account sees none of the first account’s jobs', { timeout: 60_000 }, async () => {
    await page.getByRole('button', { name: 'Sign out' }).click();
    await page.getByLabel('API key').waitFor();
    // The beta key cannot sign in to account default …
    await signIn(page, base, 'default', BETA_KEY);
    await page.getByRole('alert').filter({ hasText: /belongs to account "beta"/ }).waitFor();
    // … and in its own account sees no job, not even by name.
    await page.getByLabel('Account').fill('beta');
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.locator('#jobs-count', { hasText: /of 0 jobs$/ }).waitFor();
    assert.equal(await page.getByRole('link', { name: JOB_ID }).count(), 0);
    await page.goto(`${base}/console/#/jobs/${JOB_ID}`);
    await page.getByRole('alert').filter({ hasText: `Job ${JOB_ID} does not exist` }).waitFor();
    await page.getByRole('link', { name: 'Pools' }).click();
    await page.getByText('This account has no node pools.').waitFor();
    await screenshot(page, 'other-account');
  });

  it('raised no page error and no CSP violation', () => {
    assert.deepEqual(pageErrors.filter((e) => !/status of 40[0-9]/.test(e)), []);
  });
});

/**
 * The operator's view, end to end: a real Temporal dev server with its Web UI (2.42), the whole service,
 * and Debian's Chromium driven by playwright-core. A RUNNING job is found in the workflow list by its
 * search attributes (a visibility query in the URL; a COMPLETED job is filtered out), its workflow page
 * shows the static summary and `**RUNNING** · …` as Current Details (User Metadata tab) and
 * BatchJobState in the Search Attributes tab; after a cancel through the API, a reload shows CANCELLED.
 * Full-page screenshots go to test-artifacts/temporal-ui-*.png.
 *
 * The jobs run on a node pool of their own: a fake pool's agents are keyed by pool name and host, and an
 * agent that starts sweeps the machine for processes with its key, so ranks on `default-cpu` are killed
 * whenever another suite (or bench) on the same machine starts its default pools.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { type Browser, chromium, type FrameLocator, type Page } from 'playwright-core';
import { startTestService, type TestService, waitFor, waitForState } from '../support/harness';

const A = '/v1/accounts/default';
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium';
const INSTALL_HINT = 'run `bash scripts/install-system-deps.sh` (it installs Debian’s chromium)';
const ARTIFACTS = join(__dirname, '..', '..', '..', 'test-artifacts');
const UI_TIMEOUT = 30_000;
const RUNNING_ID = 'ui-visible';
const DONE_ID = 'ui-done';
const workflowId = (id: string) => `accounts/default/batchJobs/${id}`;

/** A full-page screenshot under test-artifacts/, checked to be a real PNG of the whole viewport with something drawn on it. */
async function screenshot(page: Page, name: string): Promise<string> {
  const path = join(ARTIFACTS, `temporal-ui-${name}.png`);
  rmSync(path, { force: true });
  await page.screenshot({ path, fullPage: true, timeout: UI_TIMEOUT });
  const png = readFileSync(path);
  assert.ok(png.subarray(0, 8).equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])), `${path} is a PNG`);
  assert.equal(png.toString('latin1', 12, 16), 'IHDR');
  const viewport = page.viewportSize();
  assert.ok(viewport, 'the page has a viewport');
  assert.ok(png.readUInt32BE(16) >= viewport.width && png.readUInt32BE(20) >= viewport.height, `${path} covers the page`);
  // A blank page of this size compresses to a few KB; the UI with its tables and text is tens of KB.
  assert.ok(png.length > 20_000, `${path} has content (${png.length} bytes)`);
  return path;
}

/** The markdown the UI renders (in an iframe) under one of the User Metadata tab's headings. */
function metadataPanel(page: Page, heading: 'Summary' | 'Details' | 'Current Details'): FrameLocator {
  return page
    .locator('div')
    .filter({ has: page.getByRole('heading', { name: heading, exact: true }) })
    .filter({ has: page.locator('iframe') })
    .last()
    .frameLocator('iframe');
}

/** Opens a tab of the workflow page (History, User Metadata, Search Attributes, …) the way an operator does: by clicking it. */
async function openTab(page: Page, name: string, path: string): Promise<void> {
  await page.getByRole('tab', { name }).click({ timeout: UI_TIMEOUT });
  await page.waitForURL((url) => url.pathname.endsWith(`/${path}`), { timeout: UI_TIMEOUT });
}

/** The workflow page's State: `**<STATE>** · …` in Current Details and BatchJobState in Search Attributes. */
async function assertStateShown(page: Page, state: string, status: RegExp): Promise<void> {
  await openTab(page, 'User Metadata', 'user-metadata');
  const details = metadataPanel(page, 'Current Details');
  // The state is the bold text the markdown renders; the status follows it on the same line.
  await details.locator('strong', { hasText: new RegExp(`^${state}$`) }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  const text = await details.locator('body').innerText({ timeout: UI_TIMEOUT });
  assert.match(text, new RegExp(`^${state} · ${status.source}`), `Current Details: ${text}`);

  await openTab(page, 'Search Attributes', 'search-attributes');
  await page
    .locator('.cm-content .cm-line', { hasText: new RegExp(`"BatchJobState":\\s*"${state}"`) })
    .waitFor({ state: 'visible', timeout: UI_TIMEOUT });
  await page.locator('.cm-content .cm-line', { hasText: /"BatchdAccount":\s*"default"/ }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
}

describe('the Temporal UI shows batch jobs to an operator', () => {
  let t: TestService | undefined;
  let browser: Browser | undefined;
  let page: Page;
  let ui: string;
  let pool: string;

  before(
    async () => {
      if (!existsSync(CHROMIUM)) throw new Error(`Chromium is not installed at ${CHROMIUM}: ${INSTALL_HINT}`);
      mkdirSync(ARTIFACTS, { recursive: true });
      t = await startTestService();
      const svc = t;
      ui = `http://127.0.0.1:${svc.env.TEMPORAL_UI_PORT}`;
      pool = `ui-e2e-${randomBytes(4).toString('hex')}`;
      const created = await svc.api.post(`${A}/nodePools`, { nodePoolId: pool, nodePool: { fakeNodePool: { machineType: 'm5.xlarge', numNodes: 2 } } });
      assert.equal(created.status, 200, JSON.stringify(created.body));

      // A job in another state, which the RUNNING query must leave out.
      const done = await svc.api.post(`${A}/batchJobs?batchJobId=${DONE_ID}`, { nodePoolId: pool, shellExecutor: { command: 'true' } });
      assert.equal(done.status, 200, JSON.stringify(done.body));
      await waitForState(svc.api, 'default', DONE_ID, 'COMPLETED', 60_000);
      const running = await svc.api.post(`${A}/batchJobs?batchJobId=${RUNNING_ID}`, { nodePoolId: pool, shellExecutor: { command: 'sleep 600' } });
      assert.equal(running.status, 200, JSON.stringify(running.body));
      await waitForState(svc.api, 'default', RUNNING_ID, 'RUNNING', 60_000);

      // The UI server comes up beside the dev server's frontend; wait until it answers.
      await waitFor('the Temporal UI to answer', async () => ((await fetch(ui)).ok ? true : undefined), UI_TIMEOUT, 250);
      try {
        // Playwright gives every launch a fresh temporary profile (user-data dir) and removes it on close.
        browser = await chromium.launch({
          executablePath: CHROMIUM,
          headless: true,
          timeout: UI_TIMEOUT,
          args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
        });
      } catch (err) {
        throw new Error(`Chromium at ${CHROMIUM} did not start (${(err as Error).message.split('\n')[0]}): ${INSTALL_HINT}`);
      }
      page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
      page.setDefaultTimeout(UI_TIMEOUT);
      page.setDefaultNavigationTimeout(UI_TIMEOUT);
    },
    { timeout: 240_000 },
  );

  after(async () => {
    await browser?.close();
    await t?.stop();
  });

  it('lists the RUNNING job, and only it, for the visibility query BatchJobState="RUNNING" AND BatchdAccount="default"', { timeout: 90_000 }, async () => {
    const query = 'BatchJobState="RUNNING" AND BatchdAccount="default"';
    // UI 2.42 applies `?query=` on load: it shows the clauses as filter chips and lists what the query finds.
    await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent(query)}`);
    const rows = page.getByTestId('workflows-summary-configurable-table-row');
    const rowOf = (id: string) => rows.filter({ has: page.getByRole('link', { name: workflowId(id), exact: true }) });
    await rowOf(RUNNING_ID).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await rowOf(RUNNING_ID).getByText('Running', { exact: true }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await page.getByRole('button', { name: 'BatchJobState = "RUNNING"' }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await page.getByRole('button', { name: 'BatchdAccount = "default"' }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    assert.equal(await rowOf(DONE_ID).count(), 0, `${workflowId(DONE_ID)} is COMPLETED: the query leaves it out`);
    assert.equal(await rows.count(), 1, 'the query finds the running job alone (no node-pool workflow, no ended job)');
    assert.equal((await page.getByTestId('workflow-count').innerText()).trim(), '1', 'the count is the query’s count');
    await screenshot(page, 'workflow-list');

    // The same query form finds the COMPLETED job when asked for it: the absence above is the filter at work.
    await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent('BatchJobState="COMPLETED" AND BatchdAccount="default"')}`);
    await rowOf(DONE_ID).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    assert.equal(await rowOf(RUNNING_ID).count(), 0);
  });

  it('shows the job’s static summary and its RUNNING state on its workflow page', { timeout: 90_000 }, async () => {
    const svc = t;
    assert.ok(svc);
    // From the list, as an operator would: the workflow id links to the run's page.
    await page.goto(`${ui}/namespaces/default/workflows?query=${encodeURIComponent(`WorkflowId="${workflowId(RUNNING_ID)}"`)}`);
    await page.getByRole('link', { name: workflowId(RUNNING_ID), exact: true }).click({ timeout: UI_TIMEOUT });
    await page.waitForURL((url) => url.pathname.endsWith('/history'), { timeout: UI_TIMEOUT });
    await page.getByRole('heading', { name: workflowId(RUNNING_ID) }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });

    await assertStateShown(page, 'RUNNING', /running 1 rank on 1 host: h\d/);
    await openTab(page, 'User Metadata', 'user-metadata');
    const summary = metadataPanel(page, 'Summary');
    await summary.getByText(`batch job ${RUNNING_ID}: 1 rank(s) on node pool ${pool}`, { exact: true }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await metadataPanel(page, 'Details').getByText('Created by admin@localhost through the API.', { exact: true }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await metadataPanel(page, 'Current Details').locator('strong', { hasText: /^RUNNING$/ }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await screenshot(page, 'workflow');
  });

  it('shows CANCELLED on the reloaded workflow page once the job is cancelled through the API', { timeout: 120_000 }, async () => {
    const svc = t;
    assert.ok(svc);
    const cancel = await svc.api.post(`${A}/batchJobs/${RUNNING_ID}:cancel`, {});
    assert.equal(cancel.status, 200, JSON.stringify(cancel.body));
    await waitForState(svc.api, 'default', RUNNING_ID, 'CANCELLED', 60_000);

    await page.reload();
    await assertStateShown(page, 'CANCELLED', /cancelled by admin@localhost/);
    await openTab(page, 'User Metadata', 'user-metadata');
    await metadataPanel(page, 'Current Details').locator('strong', { hasText: /^CANCELLED$/ }).waitFor({ state: 'visible', timeout: UI_TIMEOUT });
    await screenshot(page, 'workflow-cancelled');
  });
});

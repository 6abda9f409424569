/**
 * One job: its state and status (what it waits for, its place in the queue), where its ranks run,
 * its times, spec and annotations, its logs (followed live while it runs, by rank and text), and the
 * actions its owner may take — cancel, delete, rename — each after a confirmation. What the key may
 * not do, the API refuses, and the refusal is shown as it comes.
 */
import { BatchdApiError, type LogEntry } from '../client/batchd-client';
import { type BatchJob, type BatchJobPlacement, isTerminal } from '../domain/batch-job-model';
import { announce, append, confirmDialog, h, replaceChildren, stateChip, timeElement } from './dom';
import { type Stop, type ViewContext } from './main';
import { compactNumbers, formatDuration, parseRanks, ranksByHost, runTime } from './model';
import { errorText } from './session';

const REFRESH_MS = 2000;
/** The log view keeps this many lines; older ones scroll away (the API still has them). */
const MAX_LOG_LINES = 5000;
const LOG_PAGE = 500;

export function renderJobPage(ctx: ViewContext, id: string): Stop {
  let stopped = false;
  let timer: number | undefined;
  let job: BatchJob | undefined;
  const logs = new LogPanel(ctx, id);

  const heading = h('h1', {}, id);
  const chipSlot = h('span', { class: 'chip-slot' });
  const actions = h('div', { class: 'actions', role: 'group', 'aria-label': 'Job actions' });
  const message = h('p', { class: 'error', role: 'alert', tabindex: '-1', hidden: true });
  const statusBox = h('p', { class: 'status-text', id: 'job-status' });
  const placement = h('div', { id: 'job-placement' });
  const times = h('dl', { class: 'facts' });
  const spec = h('dl', { class: 'facts' });
  const annotations = h('div');
  const raw = h('pre', { class: 'json', tabindex: '0' });

  replaceChildren(
    ctx.main,
    h('p', { class: 'crumbs' }, h('a', { href: '#/jobs' }, '← All jobs')),
    h('div', { class: 'title-row' }, h('div', {}, heading, chipSlot), actions),
    message,
    h(
      'div',
      { class: 'grid' },
      h('section', { class: 'card', 'aria-labelledby': 'h-status' }, h('h2', { id: 'h-status' }, 'Status'), statusBox, h('h3', {}, 'Placement'), placement),
      h('section', { class: 'card', 'aria-labelledby': 'h-times' }, h('h2', { id: 'h-times' }, 'Times'), times),
      h('section', { class: 'card', 'aria-labelledby': 'h-spec' }, h('h2', { id: 'h-spec' }, 'Spec'), spec, h('details', {}, h('summary', {}, 'The job as the API returns it'), raw)),
      h('section', { class: 'card', 'aria-labelledby': 'h-annotations' }, h('h2', { id: 'h-annotations' }, 'Annotations'), annotations),
    ),
    logs.element,
  );

  function showError(text: string): void {
    message.textContent = text;
    message.hidden = false;
  }

  async function refresh(): Promise<void> {
    window.clearTimeout(timer);
    let fresh: BatchJob;
    try {
      fresh = await ctx.client.getBatchJob(id);
    } catch (err) {
      if (stopped) return;
      if (err instanceof BatchdApiError && err.code === 'NOT_FOUND') {
        showError(`Job ${id} does not exist (or has been deleted).`);
        replaceChildren(actions);
        logs.stop();
        return;
      }
      showError(errorText(err));
      timer = window.setTimeout(() => void refresh(), REFRESH_MS * 2);
      return;
    }
    if (stopped) return;
    const previous = job?.state;
    job = fresh;
    message.hidden = true;
    render(fresh);
    if (previous !== fresh.state) {
      // The first load is not news; a change of state is, to someone who cannot see the chip change.
      if (previous !== undefined) announce(`Job ${id} is ${fresh.state}`);
      logs.jobChanged(fresh);
    }
    void loadPlacement(fresh);
    if (!isTerminal(fresh.state)) timer = window.setTimeout(() => void refresh(), REFRESH_MS);
  }

  async function loadPlacement(j: BatchJob): Promise<void> {
    if (isTerminal(j.state)) {
      replaceChildren(placement, h('p', { class: 'muted' }, 'The job has ended; its hosts are free again. (The API knows where ranks run only while a job lives.)'));
      return;
    }
    let p: BatchJobPlacement;
    try {
      p = await ctx.client.getBatchJobPlacement(id);
    } catch (err) {
      if (!stopped) replaceChildren(placement, h('p', { class: 'muted' }, `Placement unavailable: ${errorText(err)}`));
      return;
    }
    if (stopped) return;
    if (p.ranks.length === 0) {
      replaceChildren(placement, h('p', { class: 'muted' }, 'Not placed yet: the job has no hosts until its whole gang fits.'));
      return;
    }
    replaceChildren(
      placement,
      h(
        'table',
        { class: 'compact' },
        h('caption', { class: 'visually-hidden' }, 'Ranks per host'),
        h('thead', {}, h('tr', {}, h('th', { scope: 'col' }, 'Host'), h('th', { scope: 'col' }, 'Ranks'), h('th', { scope: 'col' }, 'Slots'))),
        h(
          'tbody',
          {},
          ...ranksByHost(p.ranks).map((g) =>
            h('tr', {}, h('th', { scope: 'row' }, g.host), h('td', {}, compactNumbers(g.ranks.map((r) => r.rank))), h('td', {}, compactNumbers(g.ranks.map((r) => r.slot)))),
          ),
        ),
      ),
      h('p', { class: 'muted small' }, `A slot is the GPU index on a GPU host (CUDA_VISIBLE_DEVICES), 0 on a CPU host.${p.masterAddr ? ` MASTER_ADDR ${p.masterAddr}:${p.masterPort ?? ''}.` : ''}`),
    );
  }

  function render(j: BatchJob): void {
    heading.textContent = j.displayName ? `${j.displayName}` : id;
    if (j.displayName) append(heading, h('span', { class: 'muted id' }, ` ${id}`));
    replaceChildren(chipSlot, stateChip(j.state));
    statusBox.textContent = j.status || '—';
    const ran = runTime(j, new Date());
    replaceChildren(
      times,
      ...fact('Created', timeElement(j.createTime)),
      ...fact('Started', timeElement(j.startTime)),
      ...fact('Ended', timeElement(j.endTime)),
      ...fact('Run time', ran === undefined ? '—' : formatDuration(ran)),
      ...fact('Updated', timeElement(j.updateTime)),
      ...fact('Created by', j.createdBy),
    );
    const executor = j.shellExecutor
      ? h('code', {}, j.shellExecutor.command)
      : j.pythonExecutor
        ? h('code', {}, `python ${j.pythonExecutor.targetType === 'MODULE' ? '-m ' : ''}${j.pythonExecutor.target} ${(j.pythonExecutor.args ?? []).join(' ')}`)
        : j.notebookExecutor
          ? h('code', {}, `notebook ${j.notebookExecutor.notebookFilename}`)
          : '—';
    replaceChildren(
      spec,
      ...fact('Executor', executor),
      ...fact('Node pool', h('a', { href: '#/pools' }, j.nodePoolId)),
      ...fact('Ranks', String(j.numRanks)),
      ...(j.environmentId ? fact('Environment', j.environmentId) : []),
      ...(j.imageRef ? fact('Image', j.imageRef) : []),
      ...(j.role ? fact('Role', j.role) : []),
      ...fact('Environment variables', Object.keys(j.envVars).length ? h('code', {}, Object.entries(j.envVars).map(([k, v]) => `${k}=${v}`).join('\n')) : 'none'),
      ...fact('Shared', j.shared ? 'yes: every user of the account may change it' : 'no: only its creator may change it'),
    );
    const entries = Object.entries(j.annotations);
    replaceChildren(annotations, entries.length ? h('dl', { class: 'facts' }, ...entries.flatMap(([k, v]) => fact(k, v))) : h('p', { class: 'muted' }, 'None.'));
    raw.textContent = JSON.stringify(j, null, 2);
    renderActions(j);
  }

  function renderActions(j: BatchJob): void {
    const live = !isTerminal(j.state) && j.state !== 'DELETING' && j.state !== 'CANCELLING';
    replaceChildren(
      actions,
      h('button', { type: 'button', onclick: () => void rename(), disabled: j.state === 'DELETING' }, 'Edit name'),
      live ? h('button', { type: 'button', class: 'danger', onclick: () => void cancel() }, 'Cancel job') : null,
      h('button', { type: 'button', class: 'danger', onclick: () => void remove(), disabled: j.state === 'DELETING' }, 'Delete'),
    );
  }

  async function act(what: string, fn: () => Promise<unknown>): Promise<void> {
    try {
      await fn();
      announce(what);
    } catch (err) {
      showError(errorText(err));
      message.focus();
    }
    await refresh();
  }

  async function cancel(): Promise<void> {
    const ok = await confirmDialog({
      title: `Cancel job ${id}?`,
      confirmLabel: 'Cancel job',
      dismissLabel: 'Keep it running',
      danger: true,
      body: () => ({ content: h('p', {}, 'Every rank is stopped (SIGTERM, then SIGKILL after the grace period). The job ends CANCELLED; its logs stay.'), value: () => true }),
    });
    if (ok) await act(`Cancelling job ${id}`, () => ctx.client.cancelBatchJob(id));
  }

  async function remove(): Promise<void> {
    const ok = await confirmDialog({
      title: `Delete job ${id}?`,
      confirmLabel: 'Delete job',
      dismissLabel: 'Keep it',
      danger: true,
      body: () => ({ content: h('p', {}, 'A live job is stopped first. The job, its logs and its rank folders are removed for good.'), value: () => true }),
    });
    if (!ok) return;
    try {
      await ctx.client.deleteBatchJob(id);
      announce(`Job ${id} is being deleted`);
      ctx.navigate('#/jobs');
    } catch (err) {
      showError(errorText(err));
    }
  }

  async function rename(): Promise<void> {
    const input = h('input', { id: 'rename-input', value: job?.displayName ?? '', maxlength: 1000, autocomplete: 'off' });
    const name = await confirmDialog({
      title: 'Edit display name',
      confirmLabel: 'Save',
      dismissLabel: 'Discard',
      body: () => ({ content: h('div', { class: 'field' }, h('label', { for: 'rename-input' }, 'Display name'), input), value: () => input.value, focus: input }),
    });
    if (name === undefined) return;
    await act('Display name saved', () => ctx.client.updateBatchJob(id, { displayName: name }, { updateMask: 'displayName' }));
  }

  void refresh();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
    logs.stop();
  };
}

function fact(term: string, value: Node | string): HTMLElement[] {
  return [h('dt', {}, term), h('dd', {}, value)];
}

/**
 * The logs: followed as server-sent events while the job lives (everything so far, then each line as
 * it comes, filtered here by the search text), or paged from the API with its own filter once it has
 * ended. Changing the ranks or the search starts over.
 */
class LogPanel {
  readonly element: HTMLElement;
  private readonly lines: HTMLElement;
  private readonly info: HTMLElement;
  private readonly ranksInput: HTMLInputElement;
  private readonly searchInput: HTMLInputElement;
  private readonly ranksError: HTMLElement;
  private readonly more: HTMLButtonElement;
  private abort: AbortController | undefined;
  private mode: 'follow' | 'page' | undefined;
  private count = 0;
  private nextPageToken = '';
  private stopped = false;

  constructor(
    private readonly ctx: ViewContext,
    private readonly id: string,
  ) {
    this.ranksInput = h('input', { id: 'log-ranks', inputmode: 'numeric', placeholder: 'all, or 0, 2, 4-7', autocomplete: 'off', 'aria-describedby': 'log-ranks-error' });
    this.searchInput = h('input', { id: 'log-search', type: 'search', placeholder: 'text in the line', autocomplete: 'off' });
    this.ranksError = h('p', { id: 'log-ranks-error', class: 'error', hidden: true });
    this.info = h('p', { class: 'muted', id: 'log-info', 'aria-live': 'polite' });
    this.lines = h('div', { class: 'log', id: 'log-lines', role: 'log', 'aria-label': 'Log lines', tabindex: '0' });
    this.more = h('button', { type: 'button', hidden: true, onclick: () => void this.loadPage() }, 'Load more');
    const form = h(
      'form',
      { class: 'toolbar', 'aria-label': 'Filter logs' },
      h('div', { class: 'field' }, h('label', { for: 'log-ranks' }, 'Ranks'), this.ranksInput, this.ranksError),
      h('div', { class: 'field grow' }, h('label', { for: 'log-search' }, 'Search'), this.searchInput),
      h('div', { class: 'field actions' }, h('button', { type: 'submit' }, 'Show')),
    );
    form.addEventListener('submit', (e) => {
      e.preventDefault();
      this.restart();
    });
    this.element = h('section', { class: 'card logs', 'aria-labelledby': 'h-logs' }, h('h2', { id: 'h-logs' }, 'Logs'), form, this.info, this.lines, this.more);
  }

  private job: BatchJob | undefined;

  /** Called when the job's state changes: a live job is followed, an ended one paged (once). */
  jobChanged(job: BatchJob): void {
    this.job = job;
    const want = isTerminal(job.state) ? 'page' : 'follow';
    // A followed stream ends by itself with the job, keeping its lines; start paging only for a job first seen ended.
    if (this.mode === undefined || (want === 'follow' && this.mode !== 'follow')) this.restart();
  }

  stop(): void {
    this.stopped = true;
    this.abort?.abort();
  }

  private filterRanks(): number[] | undefined | null {
    const parsed = parseRanks(this.ranksInput.value);
    if ('error' in parsed) {
      this.ranksError.textContent = parsed.error;
      this.ranksError.hidden = false;
      this.ranksInput.setAttribute('aria-invalid', 'true');
      return null;
    }
    this.ranksError.hidden = true;
    this.ranksInput.removeAttribute('aria-invalid');
    return parsed.ranks;
  }

  private restart(): void {
    if (!this.job || this.stopped) return;
    const ranks = this.filterRanks();
    if (ranks === null) return;
    this.abort?.abort();
    this.lines.replaceChildren();
    this.count = 0;
    this.nextPageToken = '';
    this.more.hidden = true;
    if (isTerminal(this.job.state)) {
      this.mode = 'page';
      void this.loadPage();
    } else {
      this.mode = 'follow';
      void this.follow(ranks);
    }
  }

  private async follow(ranks: number[] | undefined): Promise<void> {
    const abort = new AbortController();
    this.abort = abort;
    const search = this.searchInput.value;
    this.info.textContent = 'Following the logs live…';
    this.lines.setAttribute('aria-busy', 'true');
    try {
      for await (const e of this.ctx.client.followBatchJobLogs(this.id, { ...(ranks ? { ranks } : {}), signal: abort.signal })) {
        if (abort.signal.aborted) return;
        if (e.type === 'end') {
          this.info.textContent = `The job ended ${e.state}; ${this.count} line${this.count === 1 ? '' : 's'} shown.`;
          break;
        }
        if (!search || e.entry.message.includes(search)) this.add(e.entry);
      }
    } catch (err) {
      if (!abort.signal.aborted) this.info.textContent = `The log stream stopped: ${errorText(err)}`;
    } finally {
      this.lines.removeAttribute('aria-busy');
    }
  }

  private async loadPage(): Promise<void> {
    const ranks = this.filterRanks();
    if (ranks === null) return;
    const search = this.searchInput.value;
    try {
      const page = await this.ctx.client.getBatchJobLogs(this.id, {
        startFromHead: true,
        pageSize: LOG_PAGE,
        ...(ranks ? { ranks } : {}),
        ...(search ? { filter: search } : {}),
        ...(this.nextPageToken ? { pageToken: this.nextPageToken } : {}),
      });
      if (this.stopped) return;
      for (const entry of page.entries) this.add(entry);
      this.nextPageToken = page.nextPageToken;
      this.more.hidden = !page.nextPageToken;
      this.info.textContent = `${this.count} line${this.count === 1 ? '' : 's'}${page.nextPageToken ? ', more to load' : ''}.`;
    } catch (err) {
      this.info.textContent = `Logs unavailable: ${errorText(err)}`;
    }
  }

  private add(entry: LogEntry): void {
    const atBottom = this.lines.scrollTop + this.lines.clientHeight >= this.lines.scrollHeight - 4;
    this.lines.appendChild(
      h('div', { class: 'log-line' }, h('span', { class: 'log-time' }, entry.logTime.slice(11, 23)), h('span', { class: 'log-rank' }, `[${entry.rank}]`), h('span', { class: 'log-msg' }, entry.message)),
    );
    this.count++;
    if (this.lines.childElementCount > MAX_LOG_LINES) this.lines.firstElementChild?.remove();
    if (atBottom) this.lines.scrollTop = this.lines.scrollHeight;
  }
}

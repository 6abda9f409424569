/**
 * The jobs list: the API's own filter (AIP-160), order and paging, state chips, and auto-refresh.
 * The filter and order live in the URL (`#/jobs?filter=…&orderBy=…`) so a view can be bookmarked or
 * shared; a filter the API refuses shows its error on the filter box.
 */
import { type ListBatchJobsResponse } from '../client/batchd-client';
import { type BatchJob } from '../domain/batch-job-model';
import { announce, h, replaceChildren, stateChip, timeElement } from './dom';
import { type Stop, type ViewContext } from './main';
import { idOf } from './model';
import { errorText } from './session';

const ORDERS: Array<[string, string]> = [
  ['create_time desc', 'Newest first'],
  ['create_time', 'Oldest first'],
  ['update_time desc', 'Recently changed'],
  ['state, create_time desc', 'State'],
  ['display_name', 'Display name'],
];
const PAGE_SIZES = [10, 25, 50, 100];
const REFRESH_MS = 5000;

export function renderJobList(ctx: ViewContext): Stop {
  let filter = ctx.params.get('filter') ?? '';
  let orderBy = ctx.params.get('orderBy') ?? 'create_time desc';
  let pageSize = Number(ctx.params.get('pageSize') ?? 25);
  if (!PAGE_SIZES.includes(pageSize)) pageSize = 25;
  /** Tokens of the pages before this one, so Previous works (the API's tokens only go forward). */
  const previous: string[] = [];
  let pageToken = '';
  let timer: number | undefined;
  let stopped = false;

  const filterInput = h('input', {
    id: 'jobs-filter',
    name: 'filter',
    value: filter,
    placeholder: 'state = "RUNNING" AND nodePoolId = "default-gpu"',
    spellcheck: 'false',
    autocomplete: 'off',
    'aria-describedby': 'jobs-filter-help jobs-filter-error',
  });
  const filterError = h('p', { id: 'jobs-filter-error', class: 'error', hidden: true });
  const orderSelect = h('select', { id: 'jobs-order', name: 'orderBy' }, ...ORDERS.map(([v, label]) => h('option', { value: v, selected: v === orderBy }, label)));
  const sizeSelect = h('select', { id: 'jobs-page-size', name: 'pageSize' }, ...PAGE_SIZES.map((n) => h('option', { value: n, selected: n === pageSize }, String(n))));
  const refresh = h('input', { id: 'jobs-refresh', type: 'checkbox', checked: true });
  const form = h(
    'form',
    { class: 'toolbar', role: 'search', 'aria-label': 'Filter jobs' },
    h(
      'div',
      { class: 'field grow' },
      h('label', { for: 'jobs-filter' }, 'Filter'),
      filterInput,
      h('p', { id: 'jobs-filter-help', class: 'help' }, 'AIP-160, as the API takes it: state, nodePoolId, displayName, createdBy, createTime, numRanks …'),
      filterError,
    ),
    h('div', { class: 'field' }, h('label', { for: 'jobs-order' }, 'Order'), orderSelect),
    h('div', { class: 'field' }, h('label', { for: 'jobs-page-size' }, 'Per page'), sizeSelect),
    h('div', { class: 'field actions' }, h('button', { type: 'submit', class: 'primary' }, 'Apply')),
  );
  const quick = h(
    'div',
    { class: 'quick', role: 'group', 'aria-label': 'Quick filters' },
    ...[
      ['All', ''],
      ['Live', 'state = "QUEUED" OR state = "PENDING" OR state = "RUNNING" OR state = "CREATING" OR state = "CANCELLING"'],
      ['Running', 'state = "RUNNING"'],
      ['Queued', 'state = "QUEUED"'],
      ['Failed', 'state = "FAILED"'],
    ].map(([label, f]) =>
      h(
        'button',
        {
          type: 'button',
          class: 'chip-button',
          onclick: () => {
            filterInput.value = f ?? '';
            apply();
          },
        },
        label ?? '',
      ),
    ),
  );
  const status = h('p', { class: 'muted', id: 'jobs-count', 'aria-live': 'polite' });
  const tableBody = h('tbody');
  const table = h(
    'table',
    { class: 'jobs', 'aria-describedby': 'jobs-count' },
    h('caption', { class: 'visually-hidden' }, 'Batch jobs'),
    h('thead', {}, h('tr', {}, ...['Job', 'State', 'Pool', 'Ranks', 'Created', 'Status'].map((c) => h('th', { scope: 'col' }, c)))),
    tableBody,
  );
  const prev = h('button', { type: 'button', disabled: true }, 'Previous');
  const next = h('button', { type: 'button', disabled: true }, 'Next');
  const pager = h('nav', { class: 'pager', 'aria-label': 'Pages' }, prev, next);

  replaceChildren(
    ctx.main,
    h('div', { class: 'title-row' }, h('h1', {}, 'Batch jobs'), h('a', { class: 'button primary', href: '#/create' }, 'New job')),
    form,
    h('div', { class: 'row' }, quick, h('label', { class: 'inline', for: 'jobs-refresh' }, refresh, ' Refresh every 5 s')),
    status,
    h('div', { class: 'table-wrap' }, table),
    pager,
  );

  function apply(): void {
    filter = filterInput.value.trim();
    orderBy = orderSelect.value;
    pageSize = Number(sizeSelect.value);
    previous.length = 0;
    pageToken = '';
    const params = new URLSearchParams();
    if (filter) params.set('filter', filter);
    params.set('orderBy', orderBy);
    params.set('pageSize', String(pageSize));
    // replaceState: no hashchange, so the view keeps its focus and state.
    history.replaceState(null, '', `#/jobs?${params.toString()}`);
    void load(true);
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    apply();
  });
  prev.addEventListener('click', () => {
    pageToken = previous.pop() ?? '';
    void load(true);
  });
  let nextToken = '';
  next.addEventListener('click', () => {
    previous.push(pageToken);
    pageToken = nextToken;
    void load(true);
  });
  refresh.addEventListener('change', () => schedule());

  function schedule(): void {
    window.clearTimeout(timer);
    if (!stopped && refresh.checked) timer = window.setTimeout(() => void load(false), REFRESH_MS);
  }

  async function load(userAsked: boolean): Promise<void> {
    window.clearTimeout(timer);
    // A refresh replaces the rows: not while the keyboard is on one of them, or its focus would be lost.
    if (!userAsked && table.contains(document.activeElement)) return schedule();
    let page: ListBatchJobsResponse;
    try {
      page = await ctx.client.listBatchJobs({ filter: filter || undefined, orderBy, pageSize, pageToken: pageToken || undefined });
    } catch (err) {
      if (stopped) return;
      filterError.textContent = errorText(err);
      filterError.hidden = false;
      filterInput.setAttribute('aria-invalid', 'true');
      if (userAsked) filterInput.focus();
      schedule();
      return;
    }
    if (stopped) return;
    filterError.hidden = true;
    filterInput.removeAttribute('aria-invalid');
    replaceChildren(tableBody, ...(page.batchJobs.length ? page.batchJobs.map(row) : [h('tr', {}, h('td', { colspan: 6, class: 'empty' }, filter ? 'No job matches this filter.' : 'No jobs yet.'))]));
    const first = previous.length * pageSize + (page.batchJobs.length ? 1 : 0);
    const last = previous.length * pageSize + page.batchJobs.length;
    status.textContent = `${first}–${last} of ${page.totalSize} job${page.totalSize === 1 ? '' : 's'}`;
    nextToken = page.nextPageToken;
    next.disabled = !nextToken;
    prev.disabled = previous.length === 0;
    if (userAsked) announce(status.textContent);
    schedule();
  }

  void load(false);
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}

function row(job: BatchJob): HTMLElement {
  const id = idOf(job.name);
  return h(
    'tr',
    {},
    h('td', { 'data-label': 'Job' }, h('div', {}, h('a', { href: `#/jobs/${encodeURIComponent(id)}` }, id), job.displayName ? h('div', { class: 'muted small' }, job.displayName) : null)),
    h('td', { 'data-label': 'State' }, stateChip(job.state)),
    h('td', { 'data-label': 'Pool' }, job.nodePoolId),
    h('td', { 'data-label': 'Ranks', class: 'num' }, job.numRanks),
    h('td', { 'data-label': 'Created' }, timeElement(job.createTime)),
    h('td', { 'data-label': 'Status', class: 'status-cell' }, job.status),
  );
}

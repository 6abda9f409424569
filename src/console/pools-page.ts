/**
 * The pools: for each pool of the account, its hosts (ready, draining, unreachable) with a picture of
 * their slots in use and by which job, its queue (length, oldest wait), and a chart of the last hour —
 * slots in use against capacity, and queue length — from the samples the API process keeps
 * (`:getUsageHistory`). Every picture has a text equivalent for screen readers.
 */
import { type NodePoolUsageHistory } from '../client/batchd-client';
import { type NodePool } from '../domain/node-pool-model';
import { type HostUsage, type PoolUsage, type UsageSample } from '../domain/pool-usage';
import { h, replaceChildren, svg } from './dom';
import { type Stop, type ViewContext } from './main';
import { formatDuration, idOf, niceMax, polylinePoints } from './model';
import { errorText } from './session';

const REFRESH_MS = 10_000;
const HOUR_MS = 60 * 60 * 1000;

export function renderPools(ctx: ViewContext): Stop {
  let stopped = false;
  let timer: number | undefined;
  const list = h('div', { class: 'pools' }, h('p', { class: 'muted' }, 'Loading pools…'));
  const updated = h('p', { class: 'muted small', 'aria-live': 'off' });
  replaceChildren(ctx.main, h('div', { class: 'title-row' }, h('h1', {}, 'Node pools'), updated), list);

  async function load(): Promise<void> {
    window.clearTimeout(timer);
    const pools: NodePool[] = [];
    try {
      for await (const p of ctx.client.listAllNodePools()) pools.push(p);
    } catch (err) {
      if (!stopped) replaceChildren(list, h('p', { class: 'error', role: 'alert' }, errorText(err)));
      timer = window.setTimeout(() => void load(), REFRESH_MS);
      return;
    }
    const cards = await Promise.all(pools.map((p) => poolCard(ctx, p)));
    if (stopped) return;
    // Not while the keyboard is inside the list (its focus would be lost); and open tables stay open.
    if (list.contains(document.activeElement) && document.activeElement !== list) {
      timer = window.setTimeout(() => void load(), REFRESH_MS);
      return;
    }
    const open = new Set([...list.querySelectorAll<HTMLDetailsElement>('details[open]')].map((d) => d.dataset.key));
    for (const card of cards) for (const d of card.querySelectorAll<HTMLDetailsElement>('details')) d.open = open.has(d.dataset.key);
    replaceChildren(list, ...(cards.length ? cards : [h('p', { class: 'muted' }, 'This account has no node pools.')]));
    updated.textContent = `Updated ${new Date().toLocaleTimeString()} · every ${REFRESH_MS / 1000} s`;
    timer = window.setTimeout(() => void load(), REFRESH_MS);
  }

  void load();
  return () => {
    stopped = true;
    window.clearTimeout(timer);
  };
}

async function poolCard(ctx: ViewContext, pool: NodePool): Promise<HTMLElement> {
  const id = idOf(pool.name);
  const headingId = `pool-${id}`;
  const [usage, history] = await Promise.all([
    ctx.client.getNodePoolUsage(id).catch((err: unknown) => errorText(err)),
    ctx.client.getNodePoolUsageHistory(id).catch((err: unknown) => errorText(err)),
  ]);
  const machine = pool.fakeNodePool ? `${pool.fakeNodePool.machineType} (local fake hosts)` : `${pool.eksNodePool?.instanceType ?? ''} (EKS)`;
  return h(
    'section',
    { class: 'card pool', 'aria-labelledby': headingId },
    h('h2', { id: headingId }, id, pool.displayName ? h('span', { class: 'muted' }, ` ${pool.displayName}`) : null, ' ', h('span', { class: `chip chip-${pool.state.toLowerCase()}` }, pool.state)),
    h('p', { class: 'muted' }, machine),
    typeof usage === 'string' ? h('p', { class: 'error' }, `Usage unavailable: ${usage}`) : usageView(usage),
    typeof history === 'string' ? h('p', { class: 'error' }, `History unavailable: ${history}`) : chart(id, history, typeof usage === 'string' ? undefined : usage),
  );
}

function usageView(u: PoolUsage): HTMLElement {
  const statusCounts = (['ready', 'draining', 'unreachable'] as const).map((s) => `${u.hosts.filter((h) => h.status === s).length} ${s}`).join(', ');
  return h(
    'div',
    {},
    h(
      'dl',
      { class: 'stats' },
      h('div', {}, h('dt', {}, 'Slots in use'), h('dd', {}, `${u.ranksInUse} of ${u.rankCapacity}`)),
      h('div', {}, h('dt', {}, 'Queued jobs'), h('dd', {}, String(u.queueLength))),
      h('div', {}, h('dt', {}, 'Oldest wait'), h('dd', {}, u.queueLength ? formatDuration(u.oldestWaitSeconds) : '—')),
      h('div', {}, h('dt', {}, 'Hosts'), h('dd', {}, statusCounts)),
    ),
    h('ul', { class: 'hosts', 'aria-label': 'Hosts and their slots' }, ...u.hosts.map(hostView)),
  );
}

function hostView(host: HostUsage): HTMLElement {
  const jobs = [...new Set(host.slotJobs.filter((j): j is string => j !== null))];
  const label = `${host.host}, ${host.status}: ${host.slotsInUse} of ${host.slots} slot${host.slots === 1 ? '' : 's'} in use${jobs.length ? ` by ${jobs.join(', ')}` : ''}`;
  return h(
    'li',
    { class: `host host-${host.status}` },
    h('div', { class: 'host-head' }, h('strong', {}, host.host), h('span', { class: `badge badge-${host.status}` }, host.status)),
    // The slots as a picture; its text equivalent is the label, read once instead of slot by slot.
    h(
      'div',
      { class: 'slots', role: 'img', 'aria-label': label },
      ...host.slotJobs.map((job, i) => h('span', { class: job ? 'slot used' : 'slot', title: job ? `slot ${i}: ${job}` : `slot ${i}: free` })),
    ),
    h('div', { class: 'muted small' }, `${host.slotsInUse}/${host.slots}${jobs.length ? ` · ${jobs.join(', ')}` : ''}`),
  );
}

const W = 600;
const H = 160;

/** The last hour as an SVG line chart with a table equivalent. */
function chart(poolId: string, history: NodePoolUsageHistory, now: PoolUsage | undefined): HTMLElement {
  const samples: UsageSample[] = history.samples;
  const to = samples.length ? Date.parse(samples[samples.length - 1]?.sampleTime ?? '') : Date.now();
  const from = to - HOUR_MS;
  const max = niceMax(Math.max(1, ...samples.map((s) => Math.max(s.rankCapacity, s.ranksInUse, s.queueLength)), now?.rankCapacity ?? 0));
  const series = (pick: (s: UsageSample) => number) => samples.map((s) => ({ t: Date.parse(s.sampleTime), v: pick(s) }));
  const last = samples[samples.length - 1];
  const summary = last
    ? `Last hour, ${samples.length} samples every ${history.sampleIntervalSeconds} s. Now ${last.ranksInUse} of ${last.rankCapacity} slots in use, ${last.queueLength} queued; at most ${Math.max(...samples.map((s) => s.ranksInUse))} in use and ${Math.max(...samples.map((s) => s.queueLength))} queued.`
    : 'No samples yet: the service samples every pool periodically and keeps the last hour in memory.';
  // Gridlines only in the drawing; the numbers are HTML beside it, so the drawing may stretch to any width.
  const grid = [0, 0.5, 1].map((f) => svg('line', { x1: 0, x2: W, y1: H - f * H, y2: H - f * H, class: 'grid-line' }));
  const figure = h(
    'figure',
    { class: 'chart' },
    h('figcaption', {}, h('strong', {}, 'Last hour'), ' ', h('span', { class: 'legend' }, h('span', { class: 'key key-capacity' }), 'capacity ', h('span', { class: 'key key-used' }), 'slots in use ', h('span', { class: 'key key-queue' }), 'queued jobs')),
  );
  const picture = svg(
    'svg',
    { viewBox: `0 0 ${W} ${H}`, preserveAspectRatio: 'none', role: 'img', 'aria-label': `${poolId}: ${summary}`, class: 'chart-svg' },
    ...grid,
    samples.length
      ? svg('g', {}, ...[
          svg('polyline', { points: polylinePoints(series((s) => s.rankCapacity), from, to, max, W, H), class: 'line-capacity' }),
          svg('polyline', { points: polylinePoints(series((s) => s.ranksInUse), from, to, max, W, H), class: 'line-used' }),
          svg('polyline', { points: polylinePoints(series((s) => s.queueLength), from, to, max, W, H), class: 'line-queue' }),
        ])
      : null,
  );
  const yAxis = h('div', { class: 'y-axis', 'aria-hidden': 'true' }, h('span', {}, String(max)), h('span', {}, String(max / 2)), h('span', {}, '0'));
  const xAxis = h('div', { class: 'x-axis', 'aria-hidden': 'true' }, h('span', {}, '60 min ago'), h('span', {}, '30 min'), h('span', {}, 'now'));
  figure.appendChild(h('div', { class: 'plot' }, yAxis, h('div', { class: 'plot-area' }, picture, xAxis)));
  figure.appendChild(h('p', { class: 'muted small' }, summary));
  const rows = samples.slice(-12).reverse();
  figure.appendChild(
    h(
      'details',
      { 'data-key': `samples-${poolId}` },
      h('summary', {}, 'Latest samples as a table'),
      h(
        'table',
        { class: 'compact' },
        h('thead', {}, h('tr', {}, ...['Time', 'In use', 'Capacity', 'Queued'].map((c) => h('th', { scope: 'col' }, c)))),
        h('tbody', {}, ...rows.map((s) => h('tr', {}, h('td', {}, new Date(s.sampleTime).toLocaleTimeString()), h('td', {}, s.ranksInUse), h('td', {}, s.rankCapacity), h('td', {}, s.queueLength)))),
      ),
    ),
  );
  return figure;
}

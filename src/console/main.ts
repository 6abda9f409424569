/**
 * The web console's entry point: the page shell (skip link, navigation, live region), sign-in, and
 * a hash router (`#/jobs`, `#/jobs/<id>`, `#/create`, `#/pools`) so that every view has a URL that
 * survives a reload and works with the browser's back button. Each view returns a function that stops
 * its timers and streams when the user leaves it.
 */
import { type BatchdClient } from '../client/batchd-client';
import { renderCreateForm } from './create-form';
import { announce, h, replaceChildren } from './dom';
import { renderJobPage } from './job-page';
import { renderJobList } from './job-list';
import { renderPools } from './pools-page';
import { checkSession, clearSession, clientFor, loadSession, saveSession, type Session } from './session';

export interface ViewContext {
  client: BatchdClient;
  main: HTMLElement;
  params: URLSearchParams;
  /** Goes to another view (`#/jobs/x`). */
  navigate(hash: string): void;
}

export type Stop = () => void;
type View = (ctx: ViewContext, arg: string) => Stop | undefined;

const ROUTES: Array<{ pattern: RegExp; title: (arg: string) => string; nav: string; view: View }> = [
  { pattern: /^\/jobs\/?$/, title: () => 'Batch jobs', nav: 'jobs', view: (ctx) => renderJobList(ctx) },
  { pattern: /^\/jobs\/([^/]+)$/, title: (id) => `Job ${id}`, nav: 'jobs', view: (ctx, id) => renderJobPage(ctx, id) },
  { pattern: /^\/create$/, title: () => 'New batch job', nav: 'create', view: (ctx) => renderCreateForm(ctx) },
  { pattern: /^\/pools$/, title: () => 'Node pools', nav: 'pools', view: (ctx) => renderPools(ctx) },
];

let stopView: Stop | undefined;

function navigate(hash: string): void {
  if (window.location.hash === hash) route();
  else window.location.hash = hash;
}

function shell(session: Session | undefined): { main: HTMLElement } {
  const app = document.getElementById('app');
  if (!app) throw new Error('the page has no #app');
  const main = h('main', { id: 'main', tabindex: '-1' });
  const header = h(
    'header',
    { class: 'top' },
    h('a', { class: 'skip', href: '#main', onclick: (e) => (e.preventDefault(), main.focus()) }, 'Skip to content'),
    h('span', { class: 'brand' }, 'batchd'),
    session
      ? h(
          'nav',
          { 'aria-label': 'Main' },
          h('a', { href: '#/jobs', 'data-nav': 'jobs' }, 'Jobs'),
          h('a', { href: '#/create', 'data-nav': 'create' }, 'New job'),
          h('a', { href: '#/pools', 'data-nav': 'pools' }, 'Pools'),
        )
      : null,
    session
      ? h(
          'div',
          { class: 'who' },
          h('span', {}, 'Account ', h('strong', {}, session.account)),
          h('button', { type: 'button', class: 'link', onclick: signOut }, 'Sign out'),
        )
      : null,
  );
  replaceChildren(app, header, main, h('div', { id: 'announcer', class: 'visually-hidden', 'aria-live': 'polite', role: 'status' }));
  return { main };
}

function signOut(): void {
  clearSession();
  stopView?.();
  stopView = undefined;
  window.location.hash = '#/jobs';
  route();
  announce('Signed out');
}

function renderSignIn(): void {
  stopView?.();
  stopView = undefined;
  const { main } = shell(undefined);
  document.title = 'Sign in · batchd';
  const account = h('input', { id: 'signin-account', name: 'account', required: true, value: 'default', autocomplete: 'off', spellcheck: 'false' });
  const key = h('input', { id: 'signin-key', name: 'apiKey', type: 'password', required: true, autocomplete: 'off', spellcheck: 'false', 'aria-describedby': 'signin-key-help' });
  const problem = h('p', { id: 'signin-error', class: 'error', role: 'alert', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Sign in');
  const form = h(
    'form',
    { class: 'card signin', novalidate: true },
    h('h1', {}, 'Sign in to batchd'),
    h('div', { class: 'field' }, h('label', { for: 'signin-account' }, 'Account'), account),
    h(
      'div',
      { class: 'field' },
      h('label', { for: 'signin-key' }, 'API key'),
      key,
      h('p', { id: 'signin-key-help', class: 'help' }, 'Paste an API key of the account. It is kept in this tab only, and forgotten when the tab closes.'),
    ),
    problem,
    submit,
  );
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    const s: Session = { account: account.value.trim(), apiKey: key.value.trim() };
    if (!s.account || !s.apiKey) {
      problem.textContent = 'Enter the account and an API key.';
      problem.hidden = false;
      (s.account ? key : account).focus();
      return;
    }
    submit.disabled = true;
    void checkSession(s).then((bad) => {
      submit.disabled = false;
      if (bad) {
        problem.textContent = bad;
        problem.hidden = false;
        key.setAttribute('aria-invalid', 'true');
        key.focus();
        return;
      }
      saveSession(s);
      if (!/^#\/(jobs|create|pools)/.test(window.location.hash)) window.location.hash = '#/jobs';
      route();
      announce(`Signed in to account ${s.account}`);
    });
  });
  main.appendChild(form);
  account.focus();
}

function route(): void {
  const session = loadSession();
  if (!session) return renderSignIn();
  const raw = window.location.hash.replace(/^#/, '') || '/jobs';
  const [path = '/jobs', query = ''] = raw.split('?', 2);
  const match = ROUTES.map((r) => ({ r, m: r.pattern.exec(path) })).find((x) => x.m);
  if (!match?.m) {
    window.location.replace('#/jobs');
    return;
  }
  stopView?.();
  const arg = decodeURIComponent(match.m[1] ?? '');
  const { main } = shell(session);
  for (const a of document.querySelectorAll<HTMLAnchorElement>('nav a[data-nav]')) {
    if (a.dataset.nav === match.r.nav) a.setAttribute('aria-current', 'page');
  }
  document.title = `${match.r.title(arg)} · batchd`;
  stopView = match.r.view({ client: clientFor(session), main, params: new URLSearchParams(query), navigate }, arg);
  // After a navigation, focus goes to the new view (a screen reader starts there); on the page's first
  // load it stays at the top, so the first Tab reaches the skip link.
  if (navigated) main.focus({ preventScroll: true });
  navigated = true;
}

let navigated = false;

window.addEventListener('hashchange', route);
route();

/**
 * A very small DOM toolkit for the console: build elements from data (text is always set as text,
 * never parsed as HTML, so nothing the API returns can become markup), confirm with a modal dialog,
 * and announce changes to screen readers.
 */

type Child = Node | string | number | false | null | undefined;
type Attrs = Record<string, string | number | boolean | undefined | ((e: Event) => void)>;

/** `h('button', {type: 'button', onclick: fn}, 'Cancel')`; `on*` attributes become listeners, booleans toggle attributes. */
export function h<K extends keyof HTMLElementTagNameMap>(tag: K, attrs: Attrs = {}, ...children: Child[]): HTMLElementTagNameMap[K] {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, ...children);
  return el;
}

const SVG_NS = 'http://www.w3.org/2000/svg';

export function svg(tag: string, attrs: Record<string, string | number> = {}, ...children: Child[]): SVGElement {
  const el = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  append(el, ...children);
  return el;
}

function setAttrs(el: HTMLElement, attrs: Attrs): void {
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === false) continue;
    if (typeof v === 'function') el.addEventListener(k.slice(2), v);
    else if (v === true) el.setAttribute(k, '');
    else el.setAttribute(k, String(v));
  }
}

export function append(el: Node, ...children: Child[]): void {
  for (const c of children) {
    if (c === undefined || c === null || c === false) continue;
    el.appendChild(typeof c === 'string' || typeof c === 'number' ? document.createTextNode(String(c)) : c);
  }
}

export function replaceChildren(el: Element, ...children: Child[]): void {
  el.replaceChildren();
  append(el, ...children);
}

/** A polite announcement in the page's live region (screen readers read it; nothing moves on screen). */
export function announce(text: string): void {
  const region = document.getElementById('announcer');
  if (!region) return;
  region.textContent = '';
  // A fresh text node after a tick, so the same message twice is read twice.
  setTimeout(() => (region.textContent = text), 50);
}

/**
 * Asks for confirmation in a modal dialog; resolves with what `body` returns (the edited value) when
 * confirmed, undefined when cancelled (Escape, the Cancel button). Focus returns to where it was.
 */
export function confirmDialog<T>(options: { title: string; confirmLabel: string; dismissLabel?: string; danger?: boolean; body: () => { content: Node; value: () => T; focus?: HTMLElement } }): Promise<T | undefined> {
  const previous = document.activeElement as HTMLElement | null;
  const { content, value, focus } = options.body();
  const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
  const dialog = h('dialog', { 'aria-labelledby': titleId, class: 'dialog' });
  const form = h('form', { method: 'dialog' });
  const confirm = h('button', { type: 'submit', value: 'confirm', class: options.danger ? 'danger' : 'primary' }, options.confirmLabel);
  const cancel = h('button', { type: 'submit', value: 'cancel', formnovalidate: true }, options.dismissLabel ?? 'Go back');
  append(form, h('h2', { id: titleId }, options.title), content, h('div', { class: 'dialog-actions' }, cancel, confirm));
  dialog.appendChild(form);
  document.body.appendChild(dialog);
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => {
      const ok = dialog.returnValue === 'confirm';
      const result = ok ? value() : undefined;
      dialog.remove();
      previous?.focus();
      resolve(result);
    });
    dialog.showModal();
    (focus ?? cancel).focus();
  });
}

/** A state as a chip: its colour comes from the stylesheet (`chip-running` …), its name is the text. */
export function stateChip(state: string): HTMLElement {
  return h('span', { class: `chip chip-${state.toLowerCase()}` }, state);
}

export function formatTime(iso: string | undefined): string {
  if (!iso) return '—';
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? iso : d.toLocaleString(undefined, { dateStyle: 'medium', timeStyle: 'medium' });
}

export function timeElement(iso: string | undefined): HTMLElement {
  return iso ? h('time', { datetime: iso }, formatTime(iso)) : h('span', {}, '—');
}

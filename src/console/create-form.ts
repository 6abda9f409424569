/**
 * The create form, for the three executors. The form checks only what it must to build a body (the
 * `KEY=VALUE` lines); every rule of a job is the API's, and each field violation of its answer is
 * shown on the field it names (`aria-invalid`, the message under the field), with a summary at the
 * top that links to each.
 */
import { BatchdApiError, type CreateBatchJobRequest } from '../client/batchd-client';
import { type FieldViolation } from '../domain/errors';
import { type NodePool } from '../domain/node-pool-model';
import { announce, h, replaceChildren } from './dom';
import { type Stop, type ViewContext } from './main';
import { fieldForViolation, idOf, parseKeyValueLines, parseLines } from './model';
import { errorText } from './session';

type Executor = 'shell' | 'python' | 'notebook';

interface Field {
  /** The API's field path this input fills (`shellExecutor.command`); `batchJobId` is the query parameter. */
  path: string;
  input: HTMLInputElement | HTMLTextAreaElement | HTMLSelectElement;
  error: HTMLElement;
  wrapper: HTMLElement;
}

export function renderCreateForm(ctx: ViewContext): Stop {
  let stopped = false;
  const fields = new Map<string, Field>();

  function field(path: string, label: string, input: Field['input'], help?: string): HTMLElement {
    const id = `f-${path.replace(/[^a-zA-Z0-9]/g, '-')}`;
    input.id = id;
    input.name = path;
    const error = h('p', { id: `${id}-error`, class: 'error', hidden: true });
    const helpEl = help ? h('p', { id: `${id}-help`, class: 'help' }, help) : null;
    input.setAttribute('aria-describedby', [helpEl ? `${id}-help` : '', `${id}-error`].filter(Boolean).join(' '));
    const wrapper = h('div', { class: 'field' }, h('label', { for: id }, label), input, helpEl, error);
    fields.set(path, { path, input, error, wrapper });
    return wrapper;
  }

  const text = (attrs: Record<string, string> = {}) => h('input', { autocomplete: 'off', spellcheck: 'false', ...attrs });
  const area = (rows: number, placeholder = '') => h('textarea', { rows, spellcheck: 'false', placeholder });

  const pool = h('select', {}, h('option', { value: '' }, 'Loading pools…'));
  const executorRadios = (['shell', 'python', 'notebook'] as const).map((e) =>
    h('input', { type: 'radio', name: 'executor', value: e, id: `executor-${e}`, checked: e === 'shell' }),
  );
  const targetType = h('select', {}, h('option', { value: 'FILENAME' }, 'File (FILENAME)'), h('option', { value: 'MODULE' }, 'Module (MODULE)'));

  const groups: Record<Executor, HTMLElement> = {
    shell: h('div', { class: 'executor-fields' }, field('shellExecutor.command', 'Command', area(3, 'echo rank $RANK of $WORLD_SIZE; sleep 5'), 'Run with bash -c on every rank.')),
    python: h(
      'div',
      { class: 'executor-fields' },
      field('pythonExecutor.targetType', 'Target type', targetType),
      field('pythonExecutor.target', 'Target', text({ placeholder: 'train.py' }), 'A file or module; relative paths resolve in the service’s workspace.'),
      field('pythonExecutor.args', 'Arguments', area(3, '--lr\n0.1'), 'One per line.'),
    ),
    notebook: h('div', { class: 'executor-fields' }, field('notebookExecutor.notebookFilename', 'Notebook', text({ placeholder: 'analysis.ipynb' }))),
  };

  const summary = h('div', { class: 'error-summary', role: 'alert', tabindex: '-1', hidden: true });
  const submit = h('button', { type: 'submit', class: 'primary' }, 'Create job');
  const form = h(
    'form',
    { class: 'card create', novalidate: true, 'aria-labelledby': 'create-title' },
    summary,
    h(
      'div',
      { class: 'form-grid' },
      field('batchJobId', 'Job id (optional)', text({ placeholder: 'my-job' }), 'Lowercase letters, digits and -, starting with a letter; chosen by the service when empty.'),
      field('displayName', 'Display name', text()),
      field('nodePoolId', 'Node pool', pool),
      field('numRanks', 'Ranks', h('input', { type: 'number', inputmode: 'numeric', min: 1, value: 1 }), 'On a GPU pool one GPU each; on a CPU pool one host each.'),
    ),
    h(
      'fieldset',
      { class: 'executor' },
      h('legend', {}, 'Executor'),
      h(
        'div',
        { class: 'radios' },
        ...executorRadios.map((r) => h('label', { for: r.id, class: 'inline' }, r, ` ${r.value === 'shell' ? 'Shell' : r.value === 'python' ? 'Python' : 'Notebook'}`)),
      ),
      groups.shell,
      groups.python,
      groups.notebook,
    ),
    h(
      'details',
      {},
      h('summary', {}, 'More: environment variables, annotations, image'),
      h(
        'div',
        { class: 'form-grid' },
        field('envVars', 'Environment variables', area(3, 'KEY=value'), 'KEY=VALUE, one per line.'),
        field('annotations', 'Annotations', area(3, 'team=research'), 'key=value, one per line.'),
        field('imageRef', 'Image reference', text()),
      ),
    ),
    h('div', { class: 'form-actions' }, submit, h('a', { href: '#/jobs', class: 'button' }, 'Back to jobs')),
  );

  function executor(): Executor {
    return (executorRadios.find((r) => r.checked)?.value as Executor | undefined) ?? 'shell';
  }
  function showExecutor(): void {
    for (const [name, group] of Object.entries(groups)) group.hidden = name !== executor();
  }
  for (const r of executorRadios) r.addEventListener('change', showExecutor);
  showExecutor();

  replaceChildren(ctx.main, h('h1', { id: 'create-title' }, 'New batch job'), form);

  void (async () => {
    const pools: NodePool[] = [];
    try {
      for await (const p of ctx.client.listAllNodePools()) pools.push(p);
    } catch (err) {
      if (!stopped) setError('nodePoolId', `Cannot list the pools: ${errorText(err)}`);
      return;
    }
    if (stopped) return;
    replaceChildren(
      pool,
      h('option', { value: '' }, pools.length ? 'Choose a pool' : 'No pools in this account'),
      ...pools.map((p) => {
        const machine = p.fakeNodePool?.machineType ?? p.eksNodePool?.instanceType ?? '';
        return h('option', { value: idOf(p.name) }, `${idOf(p.name)} (${machine}, ${p.nodePoolStats.nodeCount} × ${p.nodePoolStats.ranksPerNode} slots)`);
      }),
    );
    if (pools.length === 1) pool.value = idOf(pools[0]?.name ?? '');
  })();

  function value(path: string): string {
    return fields.get(path)?.input.value.trim() ?? '';
  }

  function clearErrors(): void {
    summary.hidden = true;
    summary.replaceChildren();
    for (const f of fields.values()) {
      f.error.hidden = true;
      f.error.textContent = '';
      f.input.removeAttribute('aria-invalid');
    }
  }

  function setError(path: string, message: string): void {
    const f = fields.get(path);
    if (!f) return;
    f.error.textContent = f.error.textContent ? `${f.error.textContent} ${message}` : message;
    f.error.hidden = false;
    f.input.setAttribute('aria-invalid', 'true');
  }

  /** Shows every problem on its field and lists them all at the top; focus moves to the list. */
  function showProblems(problems: Array<{ field?: string; message: string }>): void {
    const items = problems.map((p) => {
      const target = p.field ? fields.get(p.field) : undefined;
      if (target && p.field) setError(p.field, p.message);
      const label = target?.wrapper.querySelector('label')?.textContent ?? '';
      return h(
        'li',
        {},
        target
          ? h('a', { href: `#${target.input.id}`, onclick: (e) => (e.preventDefault(), target.input.focus()) }, `${label}: ${p.message}`)
          : p.message,
      );
    });
    replaceChildren(summary, h('h2', {}, problems.length === 1 ? 'There is a problem' : `There are ${problems.length} problems`), h('ul', {}, ...items));
    summary.hidden = false;
    summary.focus();
  }

  /** The body from the form, or the problems that keep it from being one. */
  function body(): { body: CreateBatchJobRequest; id?: string } | { problems: Array<{ field: string; message: string }> } {
    const problems: Array<{ field: string; message: string }> = [];
    const b: CreateBatchJobRequest = { nodePoolId: value('nodePoolId') };
    if (value('displayName')) b.displayName = value('displayName');
    // The API checks the number; the form sends what was typed (a non-number is still a number field's problem).
    const ranks = value('numRanks');
    if (ranks !== '') b.numRanks = Number(ranks);
    const exec = executor();
    if (exec === 'shell') b.shellExecutor = { command: value('shellExecutor.command') };
    if (exec === 'python') {
      b.pythonExecutor = { targetType: value('pythonExecutor.targetType') as 'FILENAME' | 'MODULE', target: value('pythonExecutor.target') };
      const args = parseLines(fields.get('pythonExecutor.args')?.input.value ?? '');
      if (args.length) b.pythonExecutor.args = args;
    }
    if (exec === 'notebook') b.notebookExecutor = { notebookFilename: value('notebookExecutor.notebookFilename') };
    for (const path of ['envVars', 'annotations'] as const) {
      const parsed = parseKeyValueLines(fields.get(path)?.input.value ?? '');
      if ('error' in parsed) problems.push({ field: path, message: parsed.error });
      else if (Object.keys(parsed.value).length) b[path] = parsed.value;
    }
    if (value('imageRef')) b.imageRef = value('imageRef');
    if (problems.length) return { problems };
    return { body: b, ...(value('batchJobId') ? { id: value('batchJobId') } : {}) };
  }

  form.addEventListener('submit', (e) => {
    e.preventDefault();
    clearErrors();
    const built = body();
    if ('problems' in built) return showProblems(built.problems);
    submit.disabled = true;
    ctx.client
      .createBatchJob(built.body, built.id ? { batchJobId: built.id } : {})
      .then((job) => {
        announce(`Job ${idOf(job.name)} created`);
        ctx.navigate(`#/jobs/${encodeURIComponent(idOf(job.name))}`);
      })
      .catch((err: unknown) => {
        if (stopped) return;
        submit.disabled = false;
        showProblems(problemsOf(err, [...fields.keys()]));
      });
  });

  return () => {
    stopped = true;
  };
}

/** The API's refusal as problems: one per field violation on the field it names, else its message. */
function problemsOf(err: unknown, paths: string[]): Array<{ field?: string; message: string }> {
  if (!(err instanceof BatchdApiError)) return [{ message: errorText(err) }];
  const violations: FieldViolation[] = err.fieldViolations;
  if (violations.length === 0) {
    // ALREADY_EXISTS is about the id; NOT_FOUND and FAILED_PRECONDITION about the pool.
    const field = err.code === 'ALREADY_EXISTS' ? 'batchJobId' : err.code === 'NOT_FOUND' && /node pool/.test(err.message) ? 'nodePoolId' : undefined;
    return [{ ...(field ? { field } : {}), message: err.message }];
  }
  return violations.map((v) => {
    // The id travels as the query parameter batchJobId; the API may name it either way.
    const field = fieldForViolation(v.field === 'batchJobId' || v.field === 'batch_job_id' ? 'batchJobId' : v.field, paths);
    return { ...(field ? { field } : {}), message: field ? v.description : `${v.field}: ${v.description}` };
  });
}

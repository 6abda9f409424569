/**
 * The Node.js behaviour behind "One pool task, thousands of signals" in docs/performance.md: in a
 * worker thread that uses AsyncLocalStorage (as the SDK's workflow threads do), a `vm` timeout that
 * fires inside a microtask of a context in `microtaskMode: 'afterEvaluate'` (as the SDK's sandbox is)
 * corrupts the thread's async-hook stack; the next message to the thread aborts the process.
 *
 *   node dist/bench/experiments/vm-timeout-abort.js           # with AsyncLocalStorage: aborts
 *   node dist/bench/experiments/vm-timeout-abort.js --no-als  # without: 300 messages, then "survived"
 *
 * Bounded: 300 messages, one script in ten runs 200 ms against a 50 ms timeout.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import vm from 'node:vm';
import { isMainThread, parentPort, Worker, workerData } from 'node:worker_threads';

const MESSAGES = 300;

if (isMainThread) {
  const worker = new Worker(__filename, { workerData: { als: !process.argv.includes('--no-als') } });
  let received = 0;
  worker.on('message', (i: number) => {
    received++;
    if (received < MESSAGES) worker.postMessage(i + 1);
    else {
      console.log(`survived: ${received} messages, ${Math.floor(received / 10)} of them timed out in a microtask`);
      void worker.terminate();
    }
  });
  worker.on('error', (err) => console.log('worker error', err));
  worker.postMessage(0);
} else {
  if ((workerData as { als: boolean }).als) new AsyncLocalStorage<object>().enterWith({});
  const context = vm.createContext({}, { microtaskMode: 'afterEvaluate' });
  const slow = new vm.Script('Promise.resolve().then(() => { const t = Date.now(); while (Date.now() - t < 200); })');
  const fast = new vm.Script('Promise.resolve().then(() => 1)');
  parentPort?.on('message', (i: number) => {
    try {
      (i % 10 === 5 ? slow : fast).runInContext(context, { timeout: 50 });
    } catch {
      // ERR_SCRIPT_EXECUTION_TIMEOUT, as the SDK's watchdog gets it
    }
    parentPort?.postMessage(i);
  });
}

/*
 * worker.js - runs solver.js in a Web Worker, so that the page stays
 * responsive while it hashes. Start it as a module worker:
 *
 *   const worker = new Worker(new URL('./worker.js', import.meta.url), {type: 'module'});
 *   worker.postMessage({prefix, bits});   // from the 428's challenge
 *
 * and it posts back:
 *
 *   {type: 'progress', tries}               after every batch that found nothing
 *   {type: 'done', nonce, tries, header, engine}
 *                                           header is the Holdfast-Proof value;
 *                                           engine, 'wasm' or 'webcrypto', what
 *                                           hashed (solver.js)
 *   {type: 'error', message}                a bad challenge, no engine that can
 *                                           run, or triesMax ran out
 *
 * The message may also carry triesMax, batch and engine (solver.js's
 * options). A worker solves one challenge at a time and refuses another
 * meanwhile; to give up on a challenge, terminate the worker.
 */
import { solve } from './solver.js';

let busy = false;

function post(message) {
  self.postMessage(message);
}

async function onMessage(event) {
  if (busy) {
    post({ type: 'error', message: 'pow: this worker is already solving a challenge' });
    return;
  }
  busy = true;
  const { prefix, bits, triesMax, batch, engine } = event.data ?? {};
  try {
    const onProgress = (tries) => post({ type: 'progress', tries });
    const result = await solve(prefix, bits, { triesMax, batch, engine, onProgress });
    if (result === null) {
      post({ type: 'error', message: 'pow: no nonce found within triesMax tries' });
    } else {
      const { nonce, tries, engine: used } = result;
      post({ type: 'done', nonce, tries, header: `${prefix}:${nonce}`, engine: used });
    }
  } catch (err) {
    post({ type: 'error', message: String(err?.message ?? err) });
  } finally {
    busy = false;
  }
}

self.addEventListener('message', onMessage);

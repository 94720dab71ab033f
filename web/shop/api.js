/*
 * api.js - the pages' client of holdfast's HTTP API (docs/API.md):
 * JSON calls with the key the page was given, a proof of work when a 428
 * asks for one (solved in a Web Worker), and the server-sent events of
 * GET /v1/events read through fetch, so that the key goes in a header
 * (EventSource cannot send one).
 */

const KEY_ITEM = 'holdfast.key';

/* The key: from the page's #key=... (then kept for the tab), or kept. */
export function storedKey() {
  const fromHash = new URLSearchParams(location.hash.slice(1)).get('key');
  if (fromHash) {
    sessionStorage.setItem(KEY_ITEM, fromHash);
    history.replaceState(null, '', location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY_ITEM) || '';
}

export function storeKey(key) {
  if (key) sessionStorage.setItem(KEY_ITEM, key);
  else sessionStorage.removeItem(KEY_ITEM);
}

export class ApiError extends Error {
  constructor(status, body) {
    const e = body?.error ?? {};
    super(e.message || `HTTP ${status}`);
    this.status = status;
    this.code = e.code || 'http_' + status;
    this.detail = e;
  }
}

export class Api {
  constructor(key = '') {
    this.key = key;
  }

  headers(extra = {}) {
    const h = { ...extra };
    if (this.key) h.Authorization = `Bearer ${this.key}`;
    return h;
  }

  /* One call; the parsed reply, or an ApiError. */
  async call(method, path, body, extraHeaders = {}) {
    const init = { method, headers: this.headers(extraHeaders) };
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const res = await fetch(path, init);
    const text = await res.text();
    let json = null;
    try {
      json = text ? JSON.parse(text) : null;
    } catch {
      json = null;
    }
    if (!res.ok) throw new ApiError(res.status, json);
    return json;
  }

  /*
   * A hold (POST /v1/holds). A 428 is answered with a proof of work from a
   * Web Worker, and the same request sent again; onProof(tries) reports the
   * progress, onProof(null) the end.
   */
  async hold(body, onProof = () => {}) {
    try {
      return await this.call('POST', '/v1/holds', body);
    } catch (err) {
      if (!(err instanceof ApiError) || err.status !== 428) throw err;
      onProof(0); /* said at once: a lucky proof comes before any progress report */
      const proof = await solveInWorker(err.detail.challenge, onProof);
      return await this.call('POST', '/v1/holds', body, { 'Holdfast-Proof': proof });
    }
  }

  /*
   * The sku events: calls onSku(object) for each, until signal aborts.
   * Reconnects after the server's retry delay when the stream ends or
   * fails; onState('open' | 'retrying' | 'unauthorized') tells the page.
   */
  async follow(skus, onSku, onState, signal) {
    const query = skus && skus.length ? `?skus=${skus.map(encodeURIComponent).join(',')}` : '';
    let retryMs = 2000;
    while (!signal.aborted) {
      try {
        const res = await fetch(`/v1/events${query}`, { headers: this.headers(), signal });
        if (res.status === 401 || res.status === 403) {
          onState('unauthorized');
          return;
        }
        if (!res.ok) throw new Error(`HTTP ${res.status}`);
        onState('open');
        retryMs = await readEvents(res.body, onSku, retryMs);
      } catch (err) {
        if (signal.aborted) return;
      }
      onState('retrying');
      await new Promise((resolve) => setTimeout(resolve, retryMs));
    }
  }
}

/* Reads one event stream to its end; returns the last retry delay. */
async function readEvents(body, onSku, retryMs) {
  const reader = body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return retryMs;
    buffer += value;
    let end;
    while ((end = buffer.indexOf('\n\n')) >= 0) {
      const block = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let event = 'message';
      let data = '';
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data += line.slice(6);
        else if (line.startsWith('retry: ')) retryMs = Number(line.slice(7)) || retryMs;
      }
      if (event === 'sku' && data) onSku(JSON.parse(data));
    }
  }
}

/* Solves a challenge in a Web Worker (the page stays responsive). */
export function solveInWorker(challenge, onProgress = () => {}) {
  return new Promise((resolve, reject) => {
    const worker = new Worker('/pow/worker.js', { type: 'module' });
    worker.onmessage = ({ data }) => {
      if (data.type === 'progress') {
        onProgress(data.tries);
        return;
      }
      worker.terminate();
      onProgress(null);
      if (data.type === 'done') {
        /* Which engine solved it (wasm, or the slow WebCrypto fallback):
         * the page keeps it where a look at the document finds it. */
        if (typeof document !== 'undefined') document.documentElement.dataset.powEngine = data.engine;
        resolve(data.header);
      } else reject(new Error(data.message));
    };
    worker.onerror = (e) => {
      worker.terminate();
      onProgress(null);
      reject(new Error(e.message || 'the proof-of-work worker failed'));
    };
    worker.postMessage({ prefix: challenge.prefix, bits: challenge.bits });
  });
}

/*
 * admin.js - the operator's dashboard: every SKU's units live (server-sent
 * events) with a chart of the chosen one, conversion, escalation, waitlist
 * and refusals; denials and challenges by rule (/metrics); the top holders
 * with revoke; the policy editor; and, on a server started for a demo, the
 * attack panel, which runs a bounded `holdfast sim --live` against this
 * server (POST /v1/sim).
 *
 * The chart has a past: the server keeps the last hour of the most recently
 * active SKUs (GET /v1/history), which the page loads when it shows a SKU
 * and then continues from the events, a point a second on the server's
 * clock (the page learns how far its own clock is off from the server's
 * now_ms), so the past and the live points meet with no gap and no second
 * twice.
 */
import { Api, ApiError, storedKey, storeKey } from '/shop/api.js';

const $ = (id) => document.getElementById(id);
let api = new Api(storedKey());

/* Points kept per SKU for the chart: an hour at one a second, as the
 * server keeps. */
const SERIES_MAX = 3600;
const COLUMNS = ['stock', 'held', 'sold', 'available', 'denials', 'challenges', 'escalated'];
const skus = new Map(); /* sku -> latest object from the events */
/* sku -> {t: [server seconds], and a column of each of COLUMNS} */
const series = new Map();
const pasts = new Map(); /* sku -> the promise of its history, asked for once */
let clockSkewMs = 0; /* the server's clock minus ours */
let chart = null;
let live = null;

/* For the browser tests and a curious operator's console. */
globalThis.dashboard = { series: (sku) => series.get(sku) };

/* ------------------------------------------------------------------ skus */

function serverSecond() {
  return Math.floor((Date.now() + clockSkewMs) / 1000);
}

function emptySeries() {
  const s = { t: [] };
  for (const k of COLUMNS) s[k] = [];
  return s;
}

function valuesOf(obj) {
  return {
    stock: obj.stock, held: obj.held, sold: obj.sold, available: obj.available,
    denials: obj.denials ?? 0, challenges: obj.challenges ?? 0,
    escalated: obj.escalation?.state === 'escalated' ? 1 : 0,
  };
}

/* The SKU's point for second t: one a second. A later value in the same
 * second replaces the point; seconds with no news repeat the last point,
 * as the server's history does. */
function record(obj, t = serverSecond()) {
  let s = series.get(obj.sku);
  if (!s) {
    s = emptySeries();
    series.set(obj.sku, s);
  }
  const n = s.t.length;
  const last = n ? s.t[n - 1] : null;
  if (last !== null && t < last) return; /* the clock was set back: keep what is there */
  const v = valuesOf(obj);
  if (last === t) {
    for (const k of COLUMNS) s[k][n - 1] = v[k];
    return;
  }
  if (last !== null) repeatLast(s, last + 1, t);
  s.t.push(t);
  for (const k of COLUMNS) s[k].push(v[k]);
  const extra = s.t.length - SERIES_MAX;
  if (extra > 0) for (const k in s) s[k].splice(0, extra);
}

/* The server's clock: from the history route's now_ms (the admin's). */
async function syncClock() {
  const before = Date.now();
  const h = await api.call('GET', '/v1/history');
  clockSkewMs = h.now_ms - (before + Date.now()) / 2;
}

/* Seconds from..to-1 as copies of the point before them: a gap repeats
 * the last known point, as the server's history does. */
function repeatLast(s, from, to) {
  for (let f = Math.max(from, to - SERIES_MAX); f < to; f++) {
    s.t.push(f);
    for (const k of COLUMNS) s[k].push(s[k][s[k].length - 1]);
  }
}

/* The server's hour h of a SKU merged with the points s the page has: the
 * server's seconds as it kept them (it saw every change, even while the
 * page's stream was down), the page's own before them (a restarted server
 * has no past) and after them (the events since); each second once. */
function merged(h, s) {
  if (!h.count) return s;
  const first = h.first_ms / 1000;
  const last = first + h.count - 1;
  const out = emptySeries();
  const before = s.t.findIndex((t) => t >= first);
  const head = before < 0 ? s.t.length : before;
  for (const k in out) out[k].push(...s[k].slice(0, head));
  if (head > 0) repeatLast(out, out.t[head - 1] + 1, first);
  for (let i = 0; i < h.count; i++) {
    out.t.push(first + i);
    for (const k of COLUMNS) out[k].push(h[k][i]);
  }
  const after = s.t.findIndex((t) => t > last);
  if (after >= 0) {
    repeatLast(out, last + 1, s.t[after]);
    for (const k in out) out[k].push(...s[k].slice(after));
  }
  const extra = out.t.length - SERIES_MAX;
  if (extra > 0) for (const k in out) out[k].splice(0, extra);
  return out;
}

/* The SKU's last hour from the server, merged with the points the events
 * brought: asked for once, and again after the stream was down. */
function loadPast(sku) {
  if (!pasts.has(sku)) {
    pasts.set(sku, api.call('GET', `/v1/history?sku=${encodeURIComponent(sku)}`).then((h) => {
      series.set(sku, merged(h, series.get(sku) ?? emptySeries()));
      if (sku === $('chart-sku').value) updateChart();
    }).catch(() => pasts.delete(sku))); /* asked again when next shown */
  }
  return pasts.get(sku);
}

/* The stream is back after a break: what happened meanwhile is in the
 * server's history, not in the events, so each SKU's past is asked again
 * (the shown one now, the others when shown). */
function refetchPasts() {
  pasts.clear();
  syncClock().catch(() => {}); /* a restarted server may keep another time */
  if ($('chart-sku').value) loadPast($('chart-sku').value);
}

function cell(row, text, className = '') {
  const td = document.createElement('td');
  td.textContent = text;
  if (className) td.className = className;
  row.append(td);
}

/* "hold share 12 denied, scarcity challenge 3 challenged" */
function byRule(rules) {
  const parts = [];
  for (const [rule, n] of Object.entries(rules ?? {})) {
    if (n.denied) parts.push(`${rule.replaceAll('_', ' ')} ${n.denied} denied`);
    if (n.challenged) parts.push(`${rule.replaceAll('_', ' ')} ${n.challenged} challenged`);
  }
  return parts.length ? parts.join(', ') : '–';
}

function renderSkus() {
  const body = $('skus').querySelector('tbody');
  body.replaceChildren();
  for (const s of skus.values()) {
    const tr = document.createElement('tr');
    tr.dataset.sku = s.sku;
    const th = document.createElement('th');
    th.scope = 'row';
    th.textContent = s.sku;
    tr.append(th);
    for (const k of ['stock', 'held', 'sold', 'available']) cell(tr, String(s[k]), k);
    cell(tr, s.conversion == null ? '–' : `${Math.round(s.conversion * 100)}%`, 'conversion');
    const escalated = s.escalation?.state === 'escalated';
    cell(tr, s.escalation?.state ?? '', escalated ? 'escalated' : '');
    cell(tr, String(s.waitlist ?? 0), 'waitlist');
    cell(tr, String(s.denials ?? 0), 'denials');
    cell(tr, String(s.challenges ?? 0), 'challenges');
    cell(tr, byRule(s.refusals_by_rule), 'by-rule');
    body.append(tr);
  }
}

function onSku(obj) {
  const first = !skus.has(obj.sku);
  skus.set(obj.sku, obj);
  record(obj);
  if (first) {
    $('chart-sku').add(new Option(obj.sku, obj.sku));
    if (!chart) drawChart();
    if (obj.sku === $('chart-sku').value) loadPast(obj.sku);
  }
  renderSkus();
  if (obj.sku === $('chart-sku').value) updateChart();
}

/* ----------------------------------------------------------------- chart */

/* Refusals (denials and challenges) in each second, from their totals. */
function refusedPerSecond(s) {
  return s.t.map((_, i) =>
    i === 0 ? 0 : Math.max(0, s.denials[i] + s.challenges[i] - s.denials[i - 1] - s.challenges[i - 1]));
}

function chartData() {
  const s = series.get($('chart-sku').value);
  return s ? [s.t, s.stock, s.held, s.sold, s.available, refusedPerSecond(s)] : [[], [], [], [], [], []];
}

/* The seconds the SKU was escalated, shaded behind the lines. */
function shadeEscalated(u) {
  const s = series.get($('chart-sku').value);
  if (!s) return;
  const { ctx } = u;
  const { top, height } = u.bbox;
  ctx.save();
  ctx.fillStyle = 'rgba(164, 38, 44, 0.12)';
  for (let i = 0; i < s.t.length; i++) {
    if (!s.escalated[i]) continue;
    let j = i;
    while (j + 1 < s.t.length && s.escalated[j + 1]) j++;
    const x0 = u.valToPos(s.t[i], 'x', true);
    const x1 = u.valToPos(s.t[j] + 1, 'x', true);
    ctx.fillRect(x0, top, Math.max(1, x1 - x0), height);
    i = j;
  }
  ctx.restore();
}

function drawChart() {
  const el = $('chart');
  chart?.destroy();
  chart = new uPlot(
    {
      width: Math.max(300, el.clientWidth - 8),
      height: 300,
      scales: { x: { time: true }, refused: { range: (u, min, max) => [0, Math.max(5, max)] } },
      cursor: { points: { show: false } },
      series: [
        {},
        { label: 'stock', points: { show: false }, stroke: '#5a6372', width: 1.5 },
        { label: 'held', points: { show: false }, stroke: '#d9822b', width: 2 },
        { label: 'sold', points: { show: false }, stroke: '#1e6b3a', width: 2 },
        { label: 'available', points: { show: false }, stroke: '#1f5fbf', width: 2 },
        { label: 'refused /s', scale: 'refused', points: { show: false }, stroke: '#a4262c', width: 1, dash: [4, 3] },
      ],
      axes: [{}, { label: 'units' }, { scale: 'refused', side: 1, label: 'refused /s', grid: { show: false } }],
      hooks: { drawClear: [shadeEscalated] },
    },
    chartData(),
    el,
  );
  updateChart();
}

function updateChart() {
  if (!chart) return;
  const data = chartData();
  chart.setData(data);
  const t = data[0];
  if (t.length > 0) { /* the span chosen, at least a minute across: one point is not years wide */
    const max = t[t.length - 1];
    const span = Number($('chart-span').value) || 900;
    chart.setScale('x', { min: Math.min(Math.max(t[0], max - span), max - 60), max });
  }
}

/* A point a second even when nothing changes, so time moves on the chart. */
function tick() {
  const t = serverSecond();
  for (const obj of skus.values()) record(obj, t);
  updateChart();
}

/* --------------------------------------------------------------- metrics */

async function refreshRules() {
  const res = await fetch('/metrics', { headers: api.headers() });
  if (!res.ok) return;
  const text = await res.text();
  const rules = new Map();
  const pattern = /^holdfast_policy_(denials|challenges)_total\{rule="([a-z_]+)"\} (\d+)/gm;
  for (const m of text.matchAll(pattern)) {
    const r = rules.get(m[2]) ?? { denials: 0, challenges: 0 };
    r[m[1]] = Number(m[3]);
    rules.set(m[2], r);
  }
  const body = $('rules').querySelector('tbody');
  body.replaceChildren();
  for (const [rule, r] of [...rules].sort((a, b) => b[1].denials + b[1].challenges - a[1].denials - a[1].challenges)) {
    const tr = document.createElement('tr');
    cell(tr, rule.replaceAll('_', ' '));
    cell(tr, String(r.denials));
    cell(tr, String(r.challenges));
    body.append(tr);
  }
  if (rules.size === 0) {
    const tr = document.createElement('tr');
    cell(tr, 'none yet');
    body.append(tr);
  }
}

/* ------------------------------------------------------------ identities */

async function refreshTop() {
  const by = $('top-by').value;
  const { identities } = await api.call('GET', `/v1/identities/top?by=${by}&limit=10`);
  const body = $('top').querySelector('tbody');
  body.replaceChildren();
  for (const id of identities) {
    const tr = document.createElement('tr');
    cell(tr, id.kind.replace('_', ' '));
    cell(tr, id.value);
    cell(tr, String(id.held_units));
    cell(tr, String(id.holds));
    cell(tr, String(id.commits));
    const td = document.createElement('td');
    const button = document.createElement('button');
    button.type = 'button';
    button.className = 'small';
    button.textContent = 'Revoke';
    button.setAttribute('aria-label', `Revoke ${id.kind.replace('_', ' ')} ${id.value}`);
    button.disabled = id.held_units === 0;
    button.addEventListener('click', () => revoke(id));
    td.append(button);
    tr.append(td);
    body.append(tr);
  }
  if (identities.length === 0) {
    const tr = document.createElement('tr');
    cell(tr, 'nobody holds anything');
    body.append(tr);
  }
}

async function revoke(id) {
  const path = `/v1/identities/${id.kind}/${encodeURIComponent(id.value)}/revoke`;
  try {
    const r = await api.call('POST', path, { reason: 'revoked from the dashboard' });
    $('top-note').textContent = `Revoked ${id.kind.replace('_', ' ')} ${id.value}: ${r.revoked ?? 0} holds released.`;
  } catch (err) {
    $('top-note').textContent = `Could not revoke: ${err.message}`;
  }
  await refreshTop();
}

/* ---------------------------------------------------------------- policy */

async function loadPolicy() {
  const policy = await api.call('GET', '/v1/policy');
  $('policy-text').value = JSON.stringify(policy, null, 2);
  note('policy-note', 'The policy in force.', 'ok');
}

async function savePolicy() {
  let doc;
  try {
    doc = JSON.parse($('policy-text').value);
  } catch (err) {
    return note('policy-note', `Not JSON: ${err.message}. Nothing was changed.`, 'error');
  }
  try {
    const saved = await api.call('PUT', '/v1/policy', doc);
    $('policy-text').value = JSON.stringify(saved, null, 2);
    note('policy-note', 'Saved: the new policy applies from now on.', 'ok');
  } catch (err) {
    const field = err.detail?.field ? ` (${err.detail.field})` : '';
    note('policy-note', `Refused${field}: ${err.message}. Nothing was changed.`, 'error');
  }
}

function note(id, text, kind) {
  $(id).textContent = text;
  $(id).dataset.kind = kind;
}

/* ---------------------------------------------------------------- attack */

function showRun(run) {
  const running = run.state === 'running' || run.state === 'stopping';
  $('attack-start').disabled = running;
  $('attack-stop').disabled = run.state !== 'running';
  const what = run.scenario ? `${run.scenario}, ${run.seconds} s` : '';
  const progress = run.progress ? ` — ${run.progress.replace(/^sim live:\s*/, '')}` : '';
  $('attack-state').textContent = run.state === 'idle' ? 'No run yet.' : `Attack ${run.state} (${what})${progress}`;
  $('attack-state').dataset.state = run.state;
  const result = run.result?.results?.[0];
  $('attack-result').hidden = !result;
  if (result) {
    const rows = [
      ['genuine buyers', run.result.genuine],
      ['hoarders', run.result.attackers],
      ['units genuine buyers bought', result.genuine_units_bought],
      ['buyers who saw "sold out" with units in carts', result.genuine_saw_sold_out_while_held],
      ['hoarders challenged / denied', `${result.attacker_challenged} / ${result.attacker_denied}`],
      ['units held by hoarders × hours (scenario)', Math.round(result.attacker_unit_hours)],
      ['requests / failed', `${run.result.live.requests} / ${run.result.live.failed}`],
    ];
    $('attack-result').replaceChildren(
      ...rows.flatMap(([k, v]) => {
        const dt = document.createElement('dt');
        dt.textContent = k;
        const dd = document.createElement('dd');
        dd.textContent = String(v);
        return [dt, dd];
      }),
    );
  }
  return running;
}

/* The panel shows only when the server answers for it: one not started
 * for a demo refuses (403, attack_panel_off), since a run's purchases are
 * real sales. */
let attackTimer = null;
async function watchRun() {
  clearTimeout(attackTimer);
  try {
    const run = await api.call('GET', '/v1/sim');
    $('attack-panel').hidden = false;
    if (showRun(run)) attackTimer = setTimeout(watchRun, 1000);
  } catch (err) {
    if (err.detail?.reason === 'attack_panel_off') {
      $('attack-panel').hidden = true;
      return;
    }
    $('attack-state').textContent = `Cannot read the run: ${err.message}`;
  }
}

async function startAttack(event) {
  event.preventDefault();
  try {
    showRun(await api.call('POST', '/v1/sim', {
      scenario: $('attack-scenario').value,
      seconds: Number($('attack-seconds').value),
    }));
  } catch (err) {
    $('attack-state').textContent = `Not started: ${err.message}`;
  }
  watchRun();
}

async function stopAttack() {
  showRun(await api.call('DELETE', '/v1/sim'));
  watchRun();
}

/* ----------------------------------------------------------------- start */

function every(ms, fn) {
  const run = () => fn().catch(() => {});
  run();
  return setInterval(run, ms);
}

async function open() {
  $('login').hidden = true;
  $('dashboard').hidden = false;
  live = new AbortController();
  try {
    await syncClock();
  } catch {
    /* an older server: our own clock then */
  }
  let opened = false;
  api.follow([], onSku, (state) => {
    if (state === 'open' && opened) refetchPasts();
    opened ||= state === 'open';
    $('live').textContent = state === 'open' ? 'Live' : state === 'unauthorized' ? 'Signed out' : 'Reconnecting…';
    $('live').dataset.state = state;
  }, live.signal);
  $('chart-span').addEventListener('change', updateChart);
  $('chart-sku').addEventListener('change', () => {
    updateChart();
    loadPast($('chart-sku').value);
  });
  $('top-by').addEventListener('change', () => refreshTop().catch(() => {}));
  $('policy-save').addEventListener('click', savePolicy);
  $('policy-reload').addEventListener('click', () => loadPolicy().catch(() => {}));
  $('attack').addEventListener('submit', startAttack);
  $('attack-stop').addEventListener('click', stopAttack);
  addEventListener('resize', () => chart?.setSize({ width: Math.max(300, $('chart').clientWidth - 8), height: 300 }));
  setInterval(tick, 1000);
  every(2000, refreshRules);
  every(2000, refreshTop);
  await loadPolicy();
  watchRun();
}

/* Signed in when the admin-only policy reads; else the key form. */
async function start() {
  $('login').addEventListener('submit', async (event) => {
    event.preventDefault();
    api = new Api($('admin-key').value);
    try {
      await api.call('GET', '/v1/policy');
      storeKey($('admin-key').value);
      open();
    } catch (err) {
      $('login-error').textContent =
        err instanceof ApiError && (err.status === 401 || err.status === 403)
          ? 'That is not the admin key.'
          : `Cannot reach the server: ${err.message}`;
    }
  });
  try {
    await api.call('GET', '/v1/policy');
    open();
  } catch (err) {
    $('login').hidden = false;
    $('live').textContent = 'Signed out';
    $('admin-key').focus();
  }
}

start();

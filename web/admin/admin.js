/*
 * admin.js - the operator's dashboard: every SKU's units live (server-sent
 * events) with a chart of the chosen one, conversion, escalation, waitlist
 * and refusals; denials and challenges by rule (/metrics); the top holders
 * with revoke; the policy editor; and the attack panel, which runs a
 * bounded `holdfast sim --live` against this server (POST /v1/sim).
 */
import { Api, ApiError, storedKey, storeKey } from '/shop/api.js';

const $ = (id) => document.getElementById(id);
let api = new Api(storedKey());

/* Points kept per SKU for the chart: ten minutes at one a second. */
const SERIES_MAX = 600;
const skus = new Map(); /* sku -> latest object from the events */
const series = new Map(); /* sku -> {t, stock, held, sold, available} arrays */
let chart = null;
let live = null;

/* ------------------------------------------------------------------ skus */

function record(obj, t = Date.now() / 1000) {
  let s = series.get(obj.sku);
  if (!s) {
    s = { t: [], stock: [], held: [], sold: [], available: [] };
    series.set(obj.sku, s);
  }
  for (const k of ['stock', 'held', 'sold', 'available']) s[k].push(obj[k]);
  s.t.push(t);
  if (s.t.length > SERIES_MAX) for (const k in s) s[k].shift();
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
  }
  renderSkus();
  if (obj.sku === $('chart-sku').value) updateChart();
}

/* ----------------------------------------------------------------- chart */

function chartData() {
  const s = series.get($('chart-sku').value);
  return s ? [s.t, s.stock, s.held, s.sold, s.available] : [[], [], [], [], []];
}

function drawChart() {
  const el = $('chart');
  chart?.destroy();
  chart = new uPlot(
    {
      width: Math.max(300, el.clientWidth - 8),
      height: 300,
      scales: { x: { time: true } },
      cursor: { points: { show: false } },
      series: [
        {},
        { label: 'stock', points: { show: false }, stroke: '#5a6372', width: 1.5 },
        { label: 'held', points: { show: false }, stroke: '#d9822b', width: 2 },
        { label: 'sold', points: { show: false }, stroke: '#1e6b3a', width: 2 },
        { label: 'available', points: { show: false }, stroke: '#1f5fbf', width: 2 },
      ],
      axes: [{}, { label: 'units' }],
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
  if (t.length > 0) { /* at least a minute across: one point is not years wide */
    const max = t[t.length - 1];
    chart.setScale('x', { min: Math.min(t[0], max - 60), max });
  }
}

/* A point a second even when nothing changes, so time moves on the chart. */
function tick() {
  const t = Date.now() / 1000;
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
  api.follow([], onSku, (state) => {
    $('live').textContent = state === 'open' ? 'Live' : state === 'unauthorized' ? 'Signed out' : 'Reconnecting…';
    $('live').dataset.state = state;
  }, live.signal);
  $('chart-sku').addEventListener('change', updateChart);
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

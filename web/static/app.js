// The page glue: network (fetch + EventSource), header text, input events.
// All chart drawing happens in Rust (orderflow_web.wasm, plotters). The
// chart shows the series store when the output has one (store.js), else
// the rolling files (ohlc, metrics, depth) below.
import init, { Chart } from './orderflow_web.js';
import { StoreView, tfMs, tfName } from './store.js';

const FILES = {
  'ohlc_data.json': '/api/ohlc',
  'metrics_data.json': '/api/metrics',
  'depth_data.json': '/api/depth',
  'status.json': '/api/status',
  'supervisor.json': '/api/supervisor',
};
const CHART_FILES = new Set(['ohlc_data.json', 'metrics_data.json', 'depth_data.json']);

// State for automation (tests, benchmarks): see docs/architecture.md.
const state = {
  connection: 'reconnecting', draws: 0, lastDrawMs: 0, bars: 0, lastBarTs: null,
  dataVersion: 0, instance: null, following: true, hover: null, lastHoverMs: 0,
  stale: {}, drawLog: [], errors: 0,
  mode: 'files', series: null, windowMs: null, visible: null, historyBars: null, overlay: null,
  freshnessMs: null,
};
window.orderflowState = state;

const data = { ohlc: [], metrics: [], depth: { bids: [], asks: [] }, status: null, supervisor: null };
let chart = null;
let store = null;
let dirty = false, frameQueued = false, sseOpen = false;
let mouse = null, drag = null;
const $ = (id) => document.getElementById(id);

// ---- formatting -------------------------------------------------------
const pad = (n, w = 2) => String(n).padStart(w, '0');
function utc(ms) {
  if (ms == null || !Number.isFinite(ms)) return '–';
  const d = new Date(ms);
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ` +
    `${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
}
function windowLabel(sec) {
  if (!sec) return '–';
  if (sec % 86400 === 0) return `${sec / 86400}d`;
  if (sec % 3600 === 0) return `${sec / 3600}h`;
  if (sec % 60 === 0) return `${sec / 60}m`;
  return `${sec}s`;
}
function compact(v) {
  const a = Math.abs(v);
  if (a >= 1e9) return (v / 1e9).toFixed(2) + 'B';
  if (a >= 1e6) return (v / 1e6).toFixed(2) + 'M';
  if (a >= 1e3) return (v / 1e3).toFixed(1) + 'k';
  return v.toFixed(a >= 100 ? 0 : 1);
}
// The readout shows prices and volume exactly as in the files, OBI and
// CVD to 4 decimals.
const fmtObi = (v) => (v == null || !Number.isFinite(v) ? '–' : v.toFixed(4));
window.orderflowFormat = { obi: fmtObi, cvd: fmtObi, price: (v) => String(v) };

// ---- data -------------------------------------------------------------
function flat(rows, n) {
  const out = new Float64Array(rows.length * n);
  let k = 0;
  for (const r of rows) {
    for (let i = 0; i < n; i++) out[k++] = i < r.length ? Number(r[i]) : NaN;
  }
  return out;
}

function windowMs() {
  const s = data.status && data.status.window_seconds;
  if (s) return s * 1000;
  let best = Infinity;
  const rows = data.ohlc.length > 1 ? data.ohlc : data.metrics;
  for (let i = 1; i < rows.length; i++) best = Math.min(best, rows[i][0] - rows[i - 1][0]);
  return Number.isFinite(best) && best > 0 ? best : 60000;
}

// The rolling files feed the chart only while there is no series store.
function apply(file, body) {
  const files = !store.active;
  if (file === 'ohlc_data.json') {
    data.ohlc = Array.isArray(body) ? body : [];
    if (files) chart.set_ohlc(flat(data.ohlc, 6));
  } else if (file === 'metrics_data.json') {
    data.metrics = Array.isArray(body) ? body : [];
    if (files) chart.set_metrics(flat(data.metrics, 9));
  } else if (file === 'depth_data.json') {
    data.depth = body && Array.isArray(body.bids) ? body : { bids: [], asks: [] };
    if (files) chart.set_depth(flat(data.depth.bids, 2), flat(data.depth.asks || [], 2));
  } else if (file === 'status.json') {
    data.status = body;
    if (files) detectStore();
  } else if (file === 'supervisor.json') {
    data.supervisor = body;
  }
  const win = windowMs();
  chart.set_window_ms(win);
  const title = updateHeader();
  // status.json is refreshed every second: redraw only if it changes the chart.
  if ((files && CHART_FILES.has(file)) || win !== shown.win || title !== shown.title) requestDraw();
  shown.win = win;
  shown.title = title;
}
const shown = { win: 0, title: '' };

// Whether the output has a series store (then the page shows it); asked
// again at most every two seconds while it has none.
let detecting = false, detectedAt = -Infinity;
async function detectStore() {
  if (detecting || performance.now() - detectedAt < 2000) return;
  detecting = true;
  detectedAt = performance.now();
  const was = store.active;
  try {
    if (!(await store.detect(data.status))) {
      state.mode = 'files';
      if (was) loadAll();
    }
  } finally {
    detecting = false;
    updateConn();
    requestDraw();
  }
}

// One fetch per file at a time; a change during a fetch fetches again.
const loading = {};
async function load(file) {
  // The store feeds the chart through /api/stream; its files are not read.
  if (store.active && CHART_FILES.has(file)) return;
  const l = (loading[file] ||= { busy: false, again: false });
  if (l.busy) { l.again = true; return; }
  l.busy = true;
  try {
    do {
      l.again = false;
      if (store.active && CHART_FILES.has(file)) break;
      const r = await fetch(FILES[file], { cache: 'no-store' });
      if (!r.ok) throw new Error(`${FILES[file]}: HTTP ${r.status}`);
      const version = Number(r.headers.get('x-orderflow-version') || 0);
      // Stale: the file is missing or unreadable now but was good before.
      state.stale[file] = r.headers.get('x-orderflow-stale') === 'true' && version > 0;
      apply(file, await r.json());
      state.dataVersion = Math.max(state.dataVersion, version);
    } while (l.again);
  } catch (e) {
    state.errors++;
    console.warn('load failed', file, e);
  } finally {
    l.busy = false;
    updateConn();
  }
}
const loadAll = () => Object.keys(FILES).forEach(load);

// ---- drawing ----------------------------------------------------------
function requestDraw() {
  dirty = true;
  if (!frameQueued) { frameQueued = true; requestAnimationFrame(frame); }
}
function frame() {
  frameQueued = false;
  if (dirty) drawNow();
}
function drawNow() {
  dirty = false;
  const t0 = performance.now();
  try { chart.draw(); } catch (e) { state.errors++; console.error(e); }
  const t1 = performance.now();
  state.draws++;
  state.lastDrawMs = t1 - t0;
  state.bars = chart.bars();
  const [heat, foots, rows, poc, footStep, profileStep] = chart.views_drawn();
  Object.assign(state, { heatColumns: heat, footprints: foots, profileRows: rows,
    poc: Number.isFinite(poc) ? poc : null, footStep, profileStep });
  state.overlayBars = chart.overlay_len();
  const last = chart.last_bar_ts();
  state.lastBarTs = Number.isFinite(last) ? last : null;
  const [from, to] = chart.visible();
  state.visible = { from, to };
  const ext = chart.extent();
  state.extent = ext.length ? { first: ext[0], last: ext[1] } : null;
  state.following = chart.following();
  state.drawnCandles = chart.drawn_candles();
  state.downsampled = chart.downsampled();
  state.drawLog.push({ lastBarTs: state.lastBarTs, bars: state.bars, ms: state.lastDrawMs,
    doneMs: performance.timeOrigin + t1 });
  if (state.drawLog.length > 500) state.drawLog.splice(0, state.drawLog.length - 500);
  $('h-follow').textContent = state.following ? 'following' : 'paused · dbl-click to follow';
  $('h-follow').classList.toggle('paused', !state.following);
  if (mouse) hover(mouse.x, mouse.y);
  if (store.active) {
    state.windowMs = chart.window_ms();
    store.sync();
  }
  return t1 - t0;
}

function hover(x, y) {
  const t0 = performance.now();
  const i = chart.hover(x, y);
  state.lastHoverMs = performance.now() - t0;
  const ro = $('readout');
  const row = i >= 0 ? chart.row(i) : [];
  if (row.length < 14) { state.hover = null; ro.textContent = ''; return; }
  // [ts, o, h, l, c, v, obi o h l c, cvd o h l c] (NaN: none).
  const [ts, o, h, l, c, v] = row;
  const m = Number.isFinite(row[6]) ? [ts, ...row.slice(6)] : null;
  state.hover = { ts, ohlc: row.slice(0, 6), metrics: m };
  const cls = c >= o ? 'up' : 'down';
  const obi = m ? `<span class="k">OBI</span> o ${fmtObi(m[1])} h ${fmtObi(m[2])} l ${fmtObi(m[3])} c ${fmtObi(m[4])}` : '<span class="k">OBI</span> –';
  const cvd = m && Number.isFinite(m[8]) ? `<span class="k">CVD</span> ${fmtObi(m[8])}` : '<span class="k">CVD</span> –';
  ro.innerHTML = `<span class="k">${utc(ts)} UTC</span>  ` +
    `<span class="k">O</span> <span class="${cls}">${o}</span>  <span class="k">H</span> <span class="${cls}">${h}</span>  ` +
    `<span class="k">L</span> <span class="${cls}">${l}</span>  <span class="k">C</span> <span class="${cls}">${c}</span>  ` +
    `<span class="k">V</span> ${v}\n${obi}   ${cvd}`;
}

// ---- header -----------------------------------------------------------
function updateHeader() {
  const s = data.status;
  let title;
  if (store.active) {
    // The series shown; its bars drawn coarser when the range is wide.
    const shownMs = chart.window_ms();
    const tf = store.timeframe;
    const drawnAt = shownMs > tfMs(tf) ? ` (drawn at ${tfName(shownMs)})` : '';
    $('h-instrument').textContent = store.instrument;
    $('h-window').textContent = tf + drawnAt;
    const age = store.freshness();
    state.freshnessMs = age;
    $('h-fresh').textContent = age == null ? '–' : age < 10000 ? `${(age / 1000).toFixed(1)} s old` : `${Math.round(age / 1000)} s old`;
  }
  if (s) {
    if (!store.active) {
      $('h-instrument').textContent = s.instrument || '–';
      $('h-window').textContent = windowLabel(s.window_seconds);
    }
    const pct = Number.isFinite(s.progress) ? (s.progress * 100).toFixed(1) + '%' : '–';
    // A running processor refreshes its heartbeat every second.
    const quiet = s.state === 'running' && Number.isFinite(s.heartbeat_ms) ? Date.now() - s.heartbeat_ms : 0;
    $('h-progress').textContent = `${s.state} ${pct}` + (quiet > 5000 ? ` · no heartbeat ${Math.round(quiet / 1000)}s` : '');
    $('h-rate').textContent = Number.isFinite(s.rows_per_second) ? `${compact(s.rows_per_second)} rows/s` : '–';
    $('h-market').textContent = s.market_time_ms != null ? utc(s.market_time_ms) + ' UTC' : '–';
    title = store.active ? `${store.instrument} · ${store.timeframe}` : `${s.instrument} · ${windowLabel(s.window_seconds)}`;
  } else if (store.active) {
    title = `${store.instrument} · ${store.timeframe}`;
  } else {
    title = `${windowLabel(windowMs() / 1000)} bars`;
  }
  chart.set_title(title);
  updateReplay();
  const sup = data.supervisor;
  if (sup && Array.isArray(sup.children)) {
    $('h-restarts').textContent = sup.children.map((c) => `${c.name} ${c.restarts}` +
      (c.state === 'failed' ? ' (failed)' : '')).join(' · ') || '–';
    $('h-restarts').title = sup.children.filter((c) => c.last_error)
      .map((c) => `${c.name}: ${c.last_error}`).join('\n');
  }
  return title;
}

// ---- replay control -----------------------------------------------------
// POST /api/control (JSON, same origin); the processor reports the result
// in status.json (paused, speed), which the header shows.
async function control(body) {
  try {
    const r = await fetch('/api/control', {
      method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body),
    });
    const answer = await r.json().catch(() => ({}));
    state.control = r.ok ? { ok: true, action: body.action } : { ok: false, action: body.action, error: answer.error };
    if (!r.ok) {
      $('h-replay').textContent = answer.error || `HTTP ${r.status}`;
      $('h-replay').classList.add('error');
    }
  } catch (e) {
    state.control = { ok: false, action: body.action, error: String(e) };
  }
}

function updateReplay() {
  const s = data.status;
  const el = $('h-replay');
  if (!s) return;
  const running = s.state === 'running';
  const speed = s.speed == null ? 'max' : `${s.speed}×`;
  el.classList.remove('error');
  el.classList.toggle('paused', running && !!s.paused);
  el.textContent = !running ? s.state : s.paused ? `paused · ${speed}` : `playing · ${speed}`;
  document.querySelector('[data-control="pause"]').disabled = !running || !!s.paused;
  document.querySelector('[data-control="resume"]').disabled = !running || !s.paused;
  document.querySelector('[data-control="step"]').disabled = !running || !s.paused;
  const sel = document.querySelector('[data-control="speed"]');
  const value = s.speed == null ? 'max' : String(s.speed);
  if (![...sel.options].some((o) => o.value === value)) sel.add(new Option(speed, value));
  if (document.activeElement !== sel) sel.value = value;
  state.paused = !!s.paused;
  state.speed = s.speed;
}

function wireControls() {
  for (const b of document.querySelectorAll('button[data-control]')) {
    const action = b.dataset.control;
    b.addEventListener('click', () => control(action === 'step' ? { action, bars: 1 } : { action }));
  }
  const sel = document.querySelector('select[data-control="speed"]');
  sel.addEventListener('change', () => {
    const v = sel.value;
    control({ action: 'speed', speed: v === 'max' ? 'max' : Number(v) });
  });
}

function updateConn() {
  let conn = 'live';
  if (!sseOpen || (store.active && !store.open)) conn = 'reconnecting';
  else if (Object.values(state.stale).some(Boolean)) conn = 'stale';
  state.connection = conn;
  const el = $('h-conn');
  el.textContent = conn;
  el.className = `pill ${conn}`;
}

// ---- change events ----------------------------------------------------
let es = null, retryMs = 250;
function connect() {
  es = new EventSource('/api/events');
  es.addEventListener('open', () => { sseOpen = true; retryMs = 250; updateConn(); });
  es.addEventListener('hello', (e) => {
    // A (re)connection: the viewer may be a new process; fetch everything.
    const hello = JSON.parse(e.data);
    if (hello.instance !== state.instance) state.dataVersion = 0;
    state.instance = hello.instance;
    sseOpen = true;
    // status.json names the run's instrument and window, which the store
    // view starts from: its load asks whether there is a store.
    detectedAt = -Infinity;
    loadAll();
    setTimeout(() => detectStore(), 1500);
    updateConn();
  });
  for (const file of Object.keys(FILES)) {
    es.addEventListener(file, () => load(file));
  }
  es.addEventListener('error', () => {
    sseOpen = false;
    updateConn();
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (e.g. an HTTP error): reconnect ourselves.
      es.close();
      setTimeout(connect, retryMs);
      retryMs = Math.min(retryMs * 2, 5000);
    }
  });
}

// ---- input ------------------------------------------------------------
function setupInput() {
  const ov = $('overlay');
  ov.addEventListener('wheel', (e) => {
    e.preventDefault();
    chart.zoom(Math.exp(e.deltaY * 0.0015), e.offsetX);
    requestDraw();
  }, { passive: false });
  ov.addEventListener('mousedown', (e) => { drag = { x: e.offsetX }; ov.focus(); });
  window.addEventListener('mouseup', () => { drag = null; });
  ov.addEventListener('mousemove', (e) => {
    mouse = { x: e.offsetX, y: e.offsetY };
    if (drag && (e.buttons & 1)) {
      chart.pan_px(e.offsetX - drag.x);
      drag.x = e.offsetX;
      requestDraw();
    } else {
      hover(mouse.x, mouse.y);
    }
  });
  ov.addEventListener('mouseleave', () => { mouse = null; chart.leave(); $('readout').textContent = ''; state.hover = null; });
  ov.addEventListener('dblclick', () => { chart.follow(); requestDraw(); });
  // The history strip: press or drag to move the view there.
  const strip = $('strip');
  let stripDrag = false;
  const stripGo = (e) => { chart.strip_goto(e.offsetX); requestDraw(); };
  strip.addEventListener('mousedown', (e) => { stripDrag = true; stripGo(e); });
  strip.addEventListener('mousemove', (e) => { if (stripDrag && (e.buttons & 1)) stripGo(e); });
  window.addEventListener('mouseup', () => { stripDrag = false; });
  document.querySelector('[data-range="all"]').addEventListener('click', () => store.showAll());
  window.addEventListener('keydown', (e) => {
    const k = e.key;
    if (k === 'ArrowLeft') chart.pan(-0.1);
    else if (k === 'ArrowRight') chart.pan(0.1);
    else if (k === '+' || k === '=' || k === 'ArrowUp') chart.zoom(0.8, NaN);
    else if (k === '-' || k === '_' || k === '\u2212' || k === 'ArrowDown') chart.zoom(1.25, NaN);
    else if (k === 'End' || k === 'f') chart.follow();
    else return;
    e.preventDefault();
    requestDraw();
  });
}

function resize() {
  const m = $('chart-wrap').getBoundingClientRect();
  const d = $('depth-wrap').getBoundingClientRect();
  const st = $('strip-wrap').getBoundingClientRect();
  chart.resize(m.width, m.height, d.width, d.height, st.width, st.height, window.devicePixelRatio || 1);
  requestDraw();
}

// ---- automation hooks -------------------------------------------------
// Client x of the centre of the bar starting at `ts` (for tests).
window.orderflowBarX = (ts) => $('main').getBoundingClientRect().left + chart.bar_x(ts);
// Client y of the middle of the price pane.
window.orderflowPriceY = () => {
  const [top, bottom] = chart.price_pane_y();
  return $('main').getBoundingClientRect().top + (top + bottom) / 2;
};
// A synchronous full redraw; returns its duration in ms (benchmarks).
window.orderflowRedraw = () => drawNow();

async function main() {
  await init({ module_or_path: new URL('./orderflow_web_bg.wasm', import.meta.url) });
  chart = new Chart('main', 'overlay', 'depth', 'strip');
  store = new StoreView(chart, state, {
    draw: requestDraw,
    header: updateHeader,
    status: (body) => { data.status = body; updateHeader(); },
    conn: updateConn,
  });
  store.wireViews();
  setupInput();
  wireControls();
  new ResizeObserver(resize).observe($('chart-wrap'));
  new ResizeObserver(resize).observe($('strip-wrap'));
  window.addEventListener('resize', resize);
  resize();
  updateHeader();
  setInterval(updateHeader, 1000);
  setInterval(() => { if (!store.active && sseOpen) detectStore(); }, 2000);
  connect();
}
main().catch((e) => { console.error(e); document.body.insertAdjacentText('beforeend', `chart failed to start: ${e}`); });

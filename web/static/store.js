// The page over the series store (docs/formats.md, "Series API" and "Live
// stream"): timeframe, instrument and overlay controls, ranges fetched at
// the screen's resolution as the view moves, the history strip, and live
// bars from /api/stream diffs. The chart (wasm) holds and merges the bars
// and says which range it needs (chart.wanted()); this module only moves
// bytes between the network and the chart, and keeps the controls.

// The timeframe buttons, in order; those the store cannot serve exactly
// are disabled.
const TIMEFRAMES = ['1s', '1m', '5m', '15m', '1h', '4h', '1d'];
const UNIT_MS = { s: 1000, m: 60000, h: 3600000, d: 86400000 };

export function tfMs(tf) {
  const m = /^(\d+)([smhd])$/.exec(tf);
  return m ? Number(m[1]) * UNIT_MS[m[2]] : NaN;
}
// The store's name of a window: its largest whole unit (60000 → "1m").
export function tfName(ms) {
  for (const u of ['d', 'h', 'm', 's']) {
    if (ms % UNIT_MS[u] === 0) return `${ms / UNIT_MS[u]}${u}`;
  }
  return `${Math.round(ms / 1000)}s`;
}
// 14 store columns a bar, NaN for a null price.
function flat14(bars) {
  const out = new Float64Array(bars.length * 14);
  let k = 0;
  for (const b of bars) {
    for (let i = 0; i < 14; i++) {
      const v = b[i];
      out[k++] = v == null ? NaN : Number(v);
    }
  }
  return out;
}
const q = (params) => Object.entries(params)
  .filter(([, v]) => v != null && Number.isFinite(v))
  .map(([k, v]) => `${k}=${Math.round(v)}`).join('&');

async function getJson(url) {
  const r = await fetch(url, { cache: 'no-store' });
  const body = await r.json().catch(() => ({}));
  if (!r.ok) throw new Error(`${url}: ${body.error || `HTTP ${r.status}`}`);
  return body;
}

export class StoreView {
  // chart: the wasm Chart; state: window.orderflowState; hooks: {draw,
  // header, status(body), conn()} from the page.
  constructor(chart, state, hooks) {
    Object.assign(this, { chart, state, hooks });
    this.index = null;
    this.instrument = null;
    this.timeframe = null;
    this.overlay = null;
    this.es = null;
    this.open = false;
    this.fetching = false;
    this.again = false;
    this.lastWant = '';
    this.range = null;
    this.lastStaleFetch = 0;
    this.stripBusy = false;
    this.stripAgain = false;
    this.lastTs = null;
    this.depthBusy = false;
    this.depthAgain = false;
    this.written = null;
    this.generation = 0;
    this.waits = 0;
    // Orderflow views: which are on, the range held (fetched, then grown
    // by the stream's diffs), one fetch at a time.
    this.views = { heatmap: false, footprint: false, profile: false, group: 1 };
    this.viewsHeld = null;
    this.viewsBusy = false;
    this.viewStreams = '';
  }

  get active() { return this.index !== null; }
  get primaryId() { return `${this.instrument}/${this.timeframe}`; }
  get overlayId() { return this.overlay ? `${this.overlay}/${this.timeframe}` : null; }

  // The stored series of `instrument`.
  stored(instrument) {
    return (this.index ? this.index.series : []).filter((e) => e.instrument === instrument);
  }
  // The stored series `tf` is merged from (the coarsest dividing it).
  source(instrument, tf) {
    const ms = tfMs(tf);
    let best = null;
    for (const e of this.stored(instrument)) {
      if (ms % e.window_ms === 0 && (!best || e.window_ms > best.window_ms)) best = e;
    }
    return best;
  }
  instruments() {
    return [...new Set((this.index ? this.index.series : []).map((e) => e.instrument))];
  }

  // Reads the index; true when the store has series (the page then shows
  // it), false when there is none (the page shows the rolling files).
  async detect(status) {
    let index;
    try { index = await getJson('/api/series'); } catch (e) { return this.active; }
    if (!index || !Array.isArray(index.series) || index.series.length === 0) {
      if (this.active) this.leave();
      return false;
    }
    const first = !this.active;
    // The run's status names its instrument and window, where the view
    // starts; a store without one (no processor status yet) waits a
    // little for it.
    if (first && !(status && status.window_seconds) && ++this.waits < 3) return false;
    this.index = index;
    if (first) {
      const names = this.instruments();
      this.instrument = status && names.includes(status.instrument) ? status.instrument : names[0];
      const runTf = status && status.window_seconds ? tfName(status.window_seconds * 1000) : '1m';
      this.timeframe = this.source(this.instrument, runTf) ? runTf
        : TIMEFRAMES.find((tf) => this.source(this.instrument, tf)) || this.stored(this.instrument)[0].timeframe;
      document.body.classList.add('store');
      this.select();
    } else {
      this.setExtent();
      this.buildControls();
    }
    return true;
  }

  // Counts `name` in the page state the tests and the console read.
  tally(name) {
    this.state[name] = (this.state[name] || 0) + 1;
  }

  leave() {
    this.index = null;
    if (this.es) this.es.close();
    this.es = null;
    this.open = false;
    document.body.classList.remove('store');
    this.chart.files_mode();
    this.state.mode = 'files';
    this.state.series = null;
    this.state.overlay = null;
  }

  // ---- controls ---------------------------------------------------------
  buildControls() {
    const tfs = [...TIMEFRAMES];
    if (!tfs.includes(this.timeframe)) {
      tfs.push(this.timeframe);
      tfs.sort((a, b) => tfMs(a) - tfMs(b));
    }
    const box = document.getElementById('timeframes');
    box.replaceChildren(...tfs.map((tf) => {
      const b = button(tf, { timeframe: tf }, `${tf} bars`);
      b.disabled = !this.source(this.instrument, tf);
      if (b.disabled) b.title = `${tf}: not a whole multiple of a stored timeframe`;
      b.classList.toggle('on', tf === this.timeframe);
      b.addEventListener('click', () => this.setTimeframe(tf));
      return b;
    }));
    const names = this.instruments();
    document.getElementById('instruments').replaceChildren(...names.map((name) => {
      const b = button(name, { instrument: name }, `show ${name}`);
      b.classList.toggle('on', name === this.instrument);
      b.addEventListener('click', () => this.setInstrument(name));
      return b;
    }));
    document.getElementById('overlays').replaceChildren(...names.filter((n) => n !== this.instrument).map((name) => {
      const b = button(`+ ${name}`, { overlay: name }, `overlay ${name}'s close as % change`);
      b.classList.toggle('on', name === this.overlay);
      b.setAttribute('aria-pressed', String(name === this.overlay));
      b.disabled = !this.source(name, this.timeframe);
      b.addEventListener('click', () => this.setOverlay(this.overlay === name ? null : name));
      return b;
    }));
    document.getElementById('t-series').textContent = this.primaryId;
    const entry = this.viewEntry('footprint');
    for (const b of document.querySelectorAll('[data-view]')) {
      b.disabled = !entry;
      b.classList.toggle('on', !!this.views[b.dataset.view]);
      b.setAttribute('aria-pressed', String(!!this.views[b.dataset.view]));
    }
  }

  // The index entry of the chosen instrument's `view`.
  viewEntry(view) {
    const views = this.index && Array.isArray(this.index.views) ? this.index.views : [];
    return views.find((e) => e.instrument === this.instrument && e.view === view) || null;
  }

  wireViews() {
    for (const b of document.querySelectorAll('button[data-view]')) {
      b.addEventListener('click', () => {
        this.views[b.dataset.view] = !this.views[b.dataset.view];
        this.applyViews(true);
      });
    }
    const sel = document.querySelector('select[data-tick-group]');
    sel.addEventListener('change', () => {
      this.views.group = Number(sel.value) || 1;
      this.applyViews(false);
    });
  }

  applyViews(refetch) {
    const v = this.views;
    this.chart.show_views(v.heatmap, v.footprint, v.profile, v.group);
    this.state.views = { ...v };
    if (refetch) this.viewsHeld = null;
    if (this.viewIds().join(',') !== this.viewStreams) this.connect();
    this.buildControls();
    this.hooks.draw();
  }

  // The views the stream follows: those on (the profile is drawn from the
  // footprints) that the store has.
  viewIds() {
    const v = this.views, ids = [];
    if (v.heatmap && this.viewEntry('heatmap')) ids.push(`${this.instrument}/heatmap`);
    if ((v.footprint || v.profile) && this.viewEntry('footprint')) ids.push(`${this.instrument}/footprint`);
    return ids;
  }

  // A footprint or heatmap event: its bars go into what is held when they
  // touch it (the held range then grows with them); a reset starts over.
  onView(ev, name) {
    if (name === 'reset') { this.viewsHeld = null; return; }
    const held = this.viewsHeld, bars = Array.isArray(ev.bars) ? ev.bars : [];
    if (!held || held.gen !== this.generation || !bars.length) return;
    const w = ev.window_ms;
    const first = bars[0][0], last = bars[bars.length - 1][0];
    if (first > held.to || last + w < held.from) return;
    if (ev.series.endsWith('/heatmap')) {
      this.chart.upsert_heat(flatHeat(bars));
    } else {
      this.chart.upsert_foot(flatFoot(bars), ev.tick == null ? NaN : ev.tick);
      if (ev.tick != null) this.state.tick = ev.tick;
    }
    held.to = Math.max(held.to, last + w);
    // Bounded: a held range grown past 40 000 windows is fetched anew
    // around the view.
    if ((held.to - held.from) / w > 40000) this.viewsHeld = null;
    this.tally('viewEvents');
  }

  // Fetches the views' bars for the visible range (and half a view's
  // width each side) when they are on and what is held does not cover
  // it; while following, the stream's diffs keep it covered.
  async syncViews() {
    const v = this.views;
    if (!(v.heatmap || v.footprint || v.profile) || this.viewsBusy) return;
    const foot = this.viewEntry('footprint'), heat = this.viewEntry('heatmap');
    if (!foot || !heat) return;
    const w = foot.window_ms;
    const [x0, x1] = this.chart.visible();
    const span = x1 - x0;
    let from = Math.floor((x0 - span / 2) / w) * w;
    const to = Math.ceil((x1 + span / 2) / w) * w;
    // At most 19 000 windows a request (the API's limit is 20 000).
    from = Math.max(from, to - 19000 * w);
    const held = this.viewsHeld;
    const covered = held && held.from <= Math.max(x0, from) && held.to >= x1 && held.gen === this.generation;
    if (covered) return;
    this.viewsBusy = true;
    const gen = this.generation, name = this.instrument;
    try {
      const range = `from=${from}&to=${to}`;
      if (v.heatmap) {
        const h = await getJson(`/api/series/${name}/heatmap?${range}`);
        if (gen !== this.generation) return;
        this.chart.set_heat(flatHeat(h.bars), h.window_ms);
      }
      if (v.footprint || v.profile) {
        const f = await getJson(`/api/series/${name}/footprint?${range}`);
        if (gen !== this.generation) return;
        this.chart.set_foot(flatFoot(f.bars), f.window_ms, f.tick == null ? NaN : f.tick);
        this.state.tick = f.tick;
      }
      this.viewsHeld = { from, to, gen };
      this.tally('viewFetches');
      this.hooks.draw();
    } catch (e) {
      this.state.errors++;
      console.warn('views fetch failed', e);
    } finally {
      this.viewsBusy = false;
    }
  }

  setTimeframe(tf) {
    if (tf === this.timeframe || !this.source(this.instrument, tf)) return;
    this.timeframe = tf;
    if (this.overlay && !this.source(this.overlay, tf)) this.overlay = null;
    this.select();
  }
  setInstrument(name) {
    if (name === this.instrument || !this.stored(name).length) return;
    this.instrument = name;
    if (this.overlay === name) this.overlay = null;
    if (!this.source(name, this.timeframe)) {
      this.timeframe = TIMEFRAMES.find((tf) => this.source(name, tf)) || this.stored(name)[0].timeframe;
    }
    this.select();
  }
  setOverlay(name) {
    this.overlay = name;
    this.chart.set_overlay(name || '');
    this.state.overlay = this.overlayId;
    this.buildControls();
    this.connect();
    this.fetchOverlay();
    this.hooks.draw();
  }
  showAll() {
    this.chart.show_all();
    this.hooks.draw();
  }

  // A new series: nothing held; its stream, strip and range follow.
  select() {
    this.generation++;
    this.chart.store_mode(tfMs(this.timeframe));
    this.chart.set_overlay(this.overlay || '');
    Object.assign(this.state, {
      mode: 'store', series: this.primaryId, overlay: this.overlayId,
      windowMs: tfMs(this.timeframe), historyBars: null,
    });
    this.setExtent();
    this.buildControls();
    this.lastWant = '';
    this.range = null;
    this.viewsHeld = null;
    this.chart.set_heat(new Float64Array(0), 0);
    this.chart.set_foot(new Float64Array(0), 0, NaN);
    this.connect();
    this.refreshStrip();
    this.loadDepth();
    this.hooks.header();
    this.hooks.draw();
  }

  // The whole run's first and last bar of the chosen series, from the
  // index (aligned down to the timeframe).
  setExtent() {
    const src = this.source(this.instrument, this.timeframe);
    if (!src || src.first_ts == null || src.last_ts == null) return;
    const w = tfMs(this.timeframe);
    this.chart.set_extent(Math.floor(src.first_ts / w) * w, Math.floor(src.last_ts / w) * w);
  }

  // ---- ranges ------------------------------------------------------------
  // Called after every draw: fetches what the view lacks, one request at a
  // time; a stale range (a diff in a window drawn from it) at most once a
  // second.
  async sync() {
    if (!this.active) return;
    this.syncViews();
    if (this.fetching) { this.again = true; return; }
    const want = this.chart.wanted();
    if (!want.length) return;
    const key = `${this.generation}:${want.join(',')}`;
    const stale = this.chart.stale();
    if (key === this.lastWant && !stale) return;
    if (stale && key === this.lastWant && performance.now() - this.lastStaleFetch < 1000) {
      setTimeout(() => this.sync(), 1000);
      return;
    }
    this.fetching = this.state.fetching = true;
    const gen = this.generation;
    try {
      const [from, to, maxBars] = want;
      const body = await getJson(`/api/series/${this.instrument}/${this.timeframe}?${q({ from, to, max_bars: maxBars })}`);
      if (gen !== this.generation) return;
      this.chart.set_range(0, flat14(body.bars), body.window_ms, from, to);
      this.state.windowMs = this.chart.window_ms();
      this.lastWant = key;
      this.range = { from, to };
      this.lastStaleFetch = performance.now();
      this.tally('rangeFetches');
      if (this.overlay) await this.fetchOverlay();
      this.hooks.draw();
    } catch (e) {
      this.state.errors++;
      console.warn('range fetch failed', e);
    } finally {
      this.fetching = this.state.fetching = false;
      if (this.again) { this.again = false; setTimeout(() => this.sync(), 0); }
    }
  }

  // The overlay over the primary's fetched range, at its window (without
  // a fetched range, the stream's newest bars are all either holds).
  async fetchOverlay() {
    const name = this.overlay;
    const gen = this.generation;
    if (!name || !this.range) return;
    const { from, to } = this.range;
    const w = this.chart.window_ms();
    try {
      const body = await getJson(`/api/series/${name}/${tfName(w)}?${q({ from, to })}`);
      if (gen !== this.generation || name !== this.overlay) return;
      this.chart.set_range(1, flat14(body.bars), body.window_ms, from, to);
      this.hooks.draw();
    } catch (e) {
      this.state.errors++;
      console.warn('overlay fetch failed', e);
    }
  }

  // The history strip: the whole run at about one bar a pixel; its
  // `total` is how many bars the run holds at the timeframe. Fetched for a
  // new series or a stream (re)start; stream diffs extend it after that.
  async refreshStrip() {
    if (this.stripBusy) { this.stripAgain = true; return; }
    this.stripBusy = this.state.stripping = true;
    const gen = this.generation;
    try {
      const px = Math.max(50, Math.round(document.getElementById('strip').getBoundingClientRect().width));
      const [body, index] = await Promise.all([
        getJson(`/api/series/${this.instrument}/${this.timeframe}?max_bars=${px}`),
        getJson('/api/series'),
      ]);
      if (gen !== this.generation) return;
      if (index && Array.isArray(index.series) && index.series.length) this.index = index;
      this.setExtent();
      this.chart.set_strip(flat14(body.bars), body.window_ms);
      this.tally('stripFetches');
      this.state.historyBars = body.total;
      const src = this.source(this.instrument, this.timeframe);
      const w = tfMs(this.timeframe);
      this.lastTs = src && src.last_ts != null ? Math.floor(src.last_ts / w) * w : null;
      this.hooks.draw();
    } catch (e) {
      console.warn('strip fetch failed', e);
    } finally {
      this.stripBusy = this.state.stripping = false;
      if (this.stripAgain) { this.stripAgain = false; this.refreshStrip(); }
    }
  }

  // The chosen instrument's depth, one request at a time.
  async loadDepth() {
    if (this.depthBusy) { this.depthAgain = true; return; }
    this.depthBusy = true;
    try {
      do {
        this.depthAgain = false;
        const name = this.instrument;
        const d = await getJson(`/api/series/${name}/depth`);
        if (name !== this.instrument) continue;
        const levels = (side) => {
          const rows = Array.isArray(d[side]) ? d[side] : [];
          const out = new Float64Array(rows.length * 2);
          rows.forEach((r, i) => { out[2 * i] = Number(r[0]); out[2 * i + 1] = Number(r[1]); });
          return out;
        };
        this.chart.set_depth(levels('bids'), levels('asks'));
        this.hooks.draw();
      } while (this.depthAgain);
    } catch (e) {
      console.warn('depth fetch failed', e);
    } finally {
      this.depthBusy = false;
    }
  }

  // ---- live ----------------------------------------------------------------
  // /api/stream for the primary (and the overlay): snapshot and reset
  // replace the tail, bars diffs update it, status events feed the header.
  connect() {
    if (this.es) this.es.close();
    this.viewStreams = this.viewIds().join(',');
    const ids = [this.primaryId, this.overlayId, ...this.viewIds()].filter(Boolean);
    const es = new EventSource(`/api/stream?series=${encodeURIComponent(ids.join(','))}`);
    this.es = es;
    this.open = false;
    const which = (id) => (id === this.primaryId ? 0 : id === this.overlayId ? 1 : -1);
    const onBars = (replace) => (e) => {
      if (es !== this.es) return;
      const ev = JSON.parse(e.data);
      if (/\/(footprint|heatmap)$/.test(ev.series)) {
        this.onView(ev, e.type);
        this.hooks.draw();
        return;
      }
      const w = which(ev.series);
      if (w < 0) return;
      const flat = flat14(ev.bars || []);
      if (replace) this.chart.set_tail(w, flat); else this.chart.upsert_tail(w, flat);
      if (Number.isFinite(ev.written_ms)) this.written = Math.max(this.written || 0, ev.written_ms);
      if (w === 0) {
        this.tally('streamEvents');
        if (replace) {
          this.tally(e.type === 'reset' ? 'resets' : 'snapshots');
          this.refreshStrip();
        } else {
          // New windows count into the run's bars and extend the strip.
          for (const b of ev.bars || []) {
            if (this.lastTs == null || b[0] > this.lastTs) {
              if (this.lastTs != null && this.state.historyBars != null) this.state.historyBars++;
              this.lastTs = b[0];
            }
          }
          this.chart.strip_upsert(flat);
        }
        this.loadDepth();
      }
      this.hooks.draw();
    };
    es.addEventListener('open', () => {
      if (es !== this.es) return;
      this.open = true;
      this.tally('streamOpens');
      this.hooks.conn();
    });
    es.addEventListener('snapshot', onBars(true));
    es.addEventListener('reset', onBars(true));
    es.addEventListener('bars', onBars(false));
    es.addEventListener('status', (e) => { if (es === this.es) this.hooks.status(JSON.parse(e.data)); });
    es.addEventListener('error', () => {
      if (es !== this.es) return;
      this.open = false;
      this.hooks.conn();
      if (es.readyState === EventSource.CLOSED) {
        setTimeout(() => { if (es === this.es) this.connect(); }, 1000);
      }
    });
  }

  // Age of the newest store write this page has seen, ms.
  freshness() {
    return this.written == null ? null : Math.max(0, Date.now() - this.written);
  }
}

// Heatmap bars `[ts, bids, asks]` as `[ts, nb, na, p, s…]`.
function flatHeat(bars) {
  const out = [];
  for (const [ts, bids, asks] of bars) {
    out.push(ts, bids.length, asks.length);
    for (const [p, s] of bids) out.push(p, s);
    for (const [p, s] of asks) out.push(p, s);
  }
  return new Float64Array(out);
}
// Footprint bars `[ts, [[p, buy, sell]…]]` as `[ts, n, p, buy, sell…]`.
function flatFoot(bars) {
  const out = [];
  for (const [ts, levels] of bars) {
    out.push(ts, levels.length);
    for (const [p, b, s] of levels) out.push(p, b, s);
  }
  return new Float64Array(out);
}

function button(text, data, title) {
  const b = document.createElement('button');
  b.type = 'button';
  b.textContent = text;
  b.title = title;
  for (const [k, v] of Object.entries(data)) b.dataset[k] = v;
  return b;
}

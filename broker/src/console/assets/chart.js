// A small SVG line chart of rates over time (no library): each series is [{t, v}] with t in ms.

const NS = 'http://www.w3.org/2000/svg';

function el(tag, attrs, text) {
  const e = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
  if (text !== undefined) e.textContent = text;
  return e;
}

// A round upper bound for the y axis (1, 2, 5 × 10^n).
function niceMax(v) {
  if (!(v > 0)) return 1;
  const p = 10 ** Math.floor(Math.log10(v));
  for (const m of [1, 2, 5, 10]) if (m * p >= v) return m * p;
  return 10 * p;
}

function shortNum(v) {
  if (v >= 1e9) return `${+(v / 1e9).toFixed(1)}G`;
  if (v >= 1e6) return `${+(v / 1e6).toFixed(1)}M`;
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`;
  return `${+v.toFixed(2)}`;
}

export class RateChart {
  // series: [{name, cls}] (cls picks the stroke colour in app.css); windowMs: visible span.
  constructor(series, windowMs = 120000) {
    this.series = series.map((s) => ({ ...s, points: [] }));
    this.windowMs = windowMs;
    this.w = 640;
    this.h = 180;
    this.pad = { l: 48, r: 10, t: 10, b: 22 };
    this.svg = el('svg', { viewBox: `0 0 ${this.w} ${this.h}`, class: 'chart', role: 'img', 'aria-label': 'rates over time' });
    this.legend = document.createElement('div');
    this.legend.className = 'legend';
    for (const s of this.series) {
      const item = document.createElement('span');
      item.className = `key ${s.cls}`;
      item.textContent = s.name;
      this.legend.append(item);
    }
    this.el = document.createElement('div');
    this.el.className = 'chart-wrap';
    this.el.append(this.svg, this.legend);
    this.draw();
  }

  // Adds one sample per series (values may be null: a gap) and redraws.
  push(t, values) {
    this.series.forEach((s, i) => {
      s.points.push({ t, v: values[i] });
      while (s.points.length && s.points[0].t < t - this.windowMs) s.points.shift();
    });
    this.draw();
  }

  draw() {
    // As wide as the page lays the chart out (text keeps its size), 640 before it is shown.
    this.w = Math.max(320, Math.round(this.el.clientWidth) || 640);
    this.svg.setAttribute('viewBox', `0 0 ${this.w} ${this.h}`);
    const { w, h, pad } = this;
    const now = Date.now();
    const t0 = now - this.windowMs;
    let max = 0;
    for (const s of this.series) for (const p of s.points) if (p.v > max) max = p.v;
    max = niceMax(max);
    const x = (t) => pad.l + ((t - t0) / this.windowMs) * (w - pad.l - pad.r);
    const y = (v) => h - pad.b - (v / max) * (h - pad.t - pad.b);
    const nodes = [];
    for (let i = 0; i <= 4; i += 1) {
      const v = (max * i) / 4;
      nodes.push(el('line', { x1: pad.l, x2: w - pad.r, y1: y(v), y2: y(v), class: 'gridline' }));
      nodes.push(el('text', { x: pad.l - 6, y: y(v) + 4, class: 'axis', 'text-anchor': 'end' }, shortNum(v)));
    }
    for (let s = 0; s <= this.windowMs / 1000; s += 30) {
      const tx = x(now - s * 1000);
      nodes.push(el('text', { x: tx, y: h - 6, class: 'axis', 'text-anchor': 'middle' }, s === 0 ? 'now' : `-${s}s`));
    }
    for (const s of this.series) {
      let d = '';
      let pen = false;
      for (const p of s.points) {
        if (p.v === null || p.v === undefined || !Number.isFinite(p.v)) {
          pen = false;
          continue;
        }
        d += `${pen ? 'L' : 'M'}${x(p.t).toFixed(1)},${y(p.v).toFixed(1)}`;
        pen = true;
      }
      nodes.push(el('path', { d: d || 'M0,0', class: `line ${s.cls}` }));
    }
    this.svg.replaceChildren(...nodes);
  }
}

// A topic's subscriptions: the table (backlog, rates, consumers) refreshed from topic stats, and
// the subscription actions — create, delete, clear backlog, reset cursor, peek messages — each one
// admin REST call.

import * as api from './api.js';
import { actionButton, errorBox, fmtAny, fmtBytes, fmtNum, fmtRate, fmtTime, h, KeyedTable, section } from './ui.js';

const EARLIEST = { ledgerId: -1, entryId: -1 };
const LATEST = { ledgerId: 9223372036854775807n, entryId: 9223372036854775807n };

// JSON with i64::MAX as a number (JSON.stringify cannot write BigInt).
function idBody(id) {
  return `{"ledgerId":${id.ledgerId.toString()},"entryId":${id.entryId.toString()}}`;
}

// A <select> whose options follow a changing list, keeping the chosen value.
class NameSelect {
  constructor(id) {
    this.el = h('select', { id, 'aria-label': 'subscription' });
    this.names = [];
  }

  set(names) {
    if (names.join('\n') === this.names.join('\n')) return;
    const keep = this.el.value;
    this.names = names.slice();
    this.el.replaceChildren(...names.map((n) => h('option', { value: n }, n)));
    if (names.includes(keep)) this.el.value = keep;
  }
}

export class Subscriptions {
  constructor(ctx, t, ns, topic, partitions, refresh) {
    this.ctx = ctx;
    this.partitions = partitions;
    this.t = t;
    this.ns = ns;
    this.topic = topic;
    this.refresh = refresh;
    this.table = new KeyedTable([
      { label: 'Subscription', value: (s, name) => name },
      { label: 'Type', value: (s) => fmtAny(s.type) },
      { label: 'Backlog', value: (s) => fmtNum(s.msgBacklog), cls: 'num backlog' },
      { label: 'Backlog size', value: (s) => fmtBytes(s.backlogSize), cls: 'num' },
      { label: 'Out msg/s', value: (s) => fmtRate(s.msgRateOut), cls: 'num' },
      { label: 'Unacked', value: (s) => fmtNum(s.unackedMessages), cls: 'num' },
      { label: 'Redeliver/s', value: (s) => fmtRate(s.msgRateRedeliver), cls: 'num' },
      { label: 'Durable', value: (s) => fmtAny(s.isDurable) },
      { label: 'Consumers', value: (s) => String((s.consumers || []).length), cls: 'num' },
    ], (name) => this.rowActions(name), { table: { id: 'subscriptions' }, emptyText: 'No subscriptions.' });
    this.consumers = new KeyedTable([
      { label: 'Subscription', value: (c) => c.sub },
      { label: 'Consumer', value: (c) => fmtAny(c.consumerName) },
      { label: 'Permits', value: (c) => fmtNum(c.availablePermits), cls: 'num' },
      { label: 'Unacked', value: (c) => fmtNum(c.unackedMessages), cls: 'num' },
      { label: 'Blocked', value: (c) => fmtAny(c.blockedConsumerOnUnackedMsgs) },
      { label: 'Out msg/s', value: (c) => fmtRate(c.msgRateOut), cls: 'num' },
      { label: 'Address', value: (c) => fmtAny(c.address) },
      { label: 'Connected since', value: (c) => fmtTime(c.connectedSince) },
      { label: 'Client', value: (c) => fmtAny(c.clientVersion) },
    ], null, { table: { id: 'consumers' }, emptyText: 'No consumers connected.' });
    this.resetSelect = new NameSelect('reset-sub');
    this.peekSelect = new NameSelect('peek-sub');
    this.peekOut = h('div', { id: 'peek-out' });
    this.el = h('div', null,
      section('Subscriptions', this.table.el, this.createForm()),
      section('Consumers', this.consumers.el),
      section('Reset cursor', this.resetForm()),
      section('Peek messages', this.peekForm(), this.peekOut));
  }

  path(sub) {
    return api.paths.subscription(this.t, this.ns, this.topic, sub);
  }

  rowActions(name) {
    return [
      actionButton('Clear backlog', () => api.post(`${this.path(name)}/skip_all`), {
        confirm: `Skip every message of subscription ${name}?`, done: `Cleared the backlog of ${name}`, what: 'Clear backlog',
        after: this.refresh, attrs: { class: 'clear-backlog' },
      }),
      h('button', { type: 'button', class: 'link', onclick: () => { this.resetSelect.el.value = name; this.resetSelect.el.focus(); } }, 'Reset…'),
      h('button', { type: 'button', class: 'link', onclick: () => { this.peekSelect.el.value = name; this.peek(); } }, 'Peek'),
      actionButton('Delete', () => api.del(this.path(name)), {
        confirm: `Delete subscription ${name}?`, danger: true, done: `Deleted subscription ${name}`, what: 'Delete subscription', after: this.refresh,
      }),
    ];
  }

  createForm() {
    const name = h('input', { id: 'new-sub', placeholder: 'subscription name', 'aria-label': 'subscription name' });
    const pos = h('select', { id: 'new-sub-position', 'aria-label': 'initial position' },
      h('option', { value: 'latest' }, 'from latest'), h('option', { value: 'earliest' }, 'from earliest'));
    const form = h('form', { class: 'inline' }, name, pos,
      actionButton('Create subscription', () => api.put(this.path(name.value.trim()), pos.value === 'earliest' ? EARLIEST : undefined), {
        done: 'Subscription created', after: this.refresh, attrs: { id: 'create-sub' },
      }));
    form.addEventListener('submit', (e) => e.preventDefault());
    return form;
  }

  resetForm() {
    const mode = h('select', { id: 'reset-mode', 'aria-label': 'reset to' },
      h('option', { value: 'earliest' }, 'earliest message'),
      h('option', { value: 'latest' }, 'latest (skip all)'),
      h('option', { value: 'minutes' }, 'minutes ago'),
      h('option', { value: 'id' }, 'message id ledger:entry'));
    const arg = h('input', { id: 'reset-arg', placeholder: '10 or 12:0', 'aria-label': 'minutes or message id' });
    const run = () => {
      const sub = this.resetSelect.el.value;
      if (!sub) throw new Error('no subscription chosen');
      const p = `${this.path(sub)}/resetcursor`;
      switch (mode.value) {
        case 'earliest': return api.post(p, idBody(EARLIEST));
        case 'latest': return api.post(p, idBody(LATEST));
        case 'minutes': {
          const m = Number(arg.value);
          if (!(m >= 0)) throw new Error('minutes must be a number ≥ 0');
          return api.post(`${p}/${Date.now() - Math.round(m * 60000)}`);
        }
        default: {
          const m = /^\s*(\d+)\s*:\s*(-?\d+)\s*$/.exec(arg.value);
          if (!m) throw new Error('message id must look like 12:0');
          return api.post(p, idBody({ ledgerId: BigInt(m[1]), entryId: BigInt(m[2]) }));
        }
      }
    };
    const form = h('form', { class: 'inline' }, this.resetSelect.el, mode, arg,
      actionButton('Reset cursor', run, { done: 'Cursor reset', what: 'Reset cursor', after: this.refresh, attrs: { id: 'reset-cursor' } }));
    form.addEventListener('submit', (e) => e.preventDefault());
    return form;
  }

  peekForm() {
    this.peekCount = h('input', { id: 'peek-count', type: 'number', min: '1', max: '50', value: '5', 'aria-label': 'how many' });
    const form = h('form', { class: 'inline' }, this.peekSelect.el, this.peekCount,
      h('button', { type: 'button', id: 'peek', onclick: () => this.peek() }, 'Peek'));
    form.addEventListener('submit', (e) => e.preventDefault());
    return form;
  }

  // The subscription's path on each partition (or on the topic itself).
  peekPaths(sub) {
    if (!this.partitions) return [[null, this.path(sub)]];
    const out = [];
    for (let p = 0; p < this.partitions; p += 1) {
      out.push([p, api.paths.subscription(this.t, this.ns, `${this.topic}-partition-${p}`, sub)]);
    }
    return out;
  }

  // The next `n` messages of the subscription: on a partitioned topic, partition by partition.
  async peek() {
    const sub = this.peekSelect.el.value;
    if (!sub) return;
    const n = Math.min(50, Math.max(1, Number(this.peekCount.value) || 5));
    const rows = [];
    this.peekOut.replaceChildren(h('div', { class: 'muted' }, 'Reading…'));
    try {
      for (const [partition, path] of this.peekPaths(sub)) {
        for (let i = 1; rows.length < n; i += 1) {
          let resp;
          try {
            resp = await api.get(`${path}/position/${i}`, { raw: true, signal: this.ctx.signal });
          } catch (e) {
            // The end of this partition's backlog.
            if (e.status === 404 && (rows.length || partition !== null)) break;
            throw e;
          }
          rows.push(await messageRow(rows.length + 1, resp, partition));
        }
        if (rows.length >= n) break;
      }
      if (!rows.length) {
        this.peekOut.replaceChildren(h('div', { class: 'muted' }, 'No messages in the backlog.'));
        return;
      }
      this.peekOut.replaceChildren(h('table', { class: 'grid', id: 'peek-table' },
        h('thead', null, h('tr', null, ['#', 'Message id', 'Published', 'Producer', 'Key', 'Properties', 'Payload'].map((c) => h('th', null, c)))),
        h('tbody', null, rows)));
    } catch (e) {
      if (e.name !== 'AbortError') this.peekOut.replaceChildren(errorBox(e));
    }
  }

  // Refresh from a topic stats answer.
  update(stats) {
    const subs = stats.subscriptions || {};
    const names = Object.keys(subs).sort();
    this.table.update(names.map((n) => [n, subs[n]]));
    const consumers = [];
    for (const n of names) {
      (subs[n].consumers || []).forEach((c, i) => consumers.push([`${n}\u0000${i}\u0000${c.consumerName ?? ''}`, { ...c, sub: n }]));
    }
    this.consumers.update(consumers);
    this.resetSelect.set(names);
    this.peekSelect.set(names);
  }
}

async function messageRow(i, resp, partition) {
  const hd = (k) => resp.headers.get(k);
  const props = [];
  for (const [k, v] of resp.headers) {
    if (k.toLowerCase().startsWith('x-pulsar-property-')) props.push(`${k.slice(18)}=${v}`);
  }
  const bytes = new Uint8Array(await resp.arrayBuffer());
  let text;
  try {
    text = new TextDecoder('utf-8', { fatal: true }).decode(bytes);
    if (text.length > 2000) text = `${text.slice(0, 2000)}…`;
  } catch {
    text = `0x${Array.from(bytes.slice(0, 64), (b) => b.toString(16).padStart(2, '0')).join('')}${bytes.length > 64 ? '…' : ''} (${bytes.length} bytes)`;
  }
  const published = Number(hd('x-pulsar-publish-time'));
  return h('tr', null,
    h('td', { class: 'num' }, String(i)),
    h('td', null, `${partition === null ? '' : `p${partition} `}${fmtAny(hd('x-pulsar-message-id'))}`),
    h('td', null, Number.isFinite(published) && published > 0 ? fmtTime(published) : '–'),
    h('td', null, fmtAny(hd('x-pulsar-producer-name'))),
    h('td', null, fmtAny(hd('x-pulsar-partition-key'))),
    h('td', null, props.join(', ') || '–'),
    h('td', { class: 'payload' }, h('code', null, text)));
}

// A topic: live rates (a chart fed by polling topic stats), storage, publishers, subscriptions
// and their actions, internal stats (ledgers and cursors), and topic actions (unload, delete).
//
// Rates are Pulsar's `msgRateIn/Out` and `msgThroughputIn/Out` when the broker reports them;
// otherwise they are computed here from the counters' change between two polls.

import * as api from './api.js';
import { RateChart } from './chart.js';
import { Subscriptions } from './subscriptions.js';
import { actionButton, errorBox, fmtAny, fmtBytes, fmtNum, fmtRate, fmtTime, h, isNum, KeyedTable, kvGrid, section } from './ui.js';

const POLL_MS = 1000;
// Internal stats (ledgers, cursors) change slowly and cost more: refreshed less often.
const INTERNAL_MS = 5000;

// The four rates of a stats answer, from its rate fields or from counter deltas since `prev`.
export function ratesOf(cur, prev, dtSec) {
  const pick = (rate, counter) => {
    if (isNum(cur[rate])) return cur[rate];
    if (!prev || !(dtSec > 0) || !isNum(cur[counter]) || !isNum(prev[counter])) return null;
    return Math.max(0, (cur[counter] - prev[counter]) / dtSec);
  };
  return {
    msgIn: pick('msgRateIn', 'msgInCounter'),
    msgOut: pick('msgRateOut', 'msgOutCounter'),
    bytesIn: pick('msgThroughputIn', 'bytesInCounter'),
    bytesOut: pick('msgThroughputOut', 'bytesOutCounter'),
  };
}

function rateCard(id, label) {
  const value = h('span', { class: 'value', id, dataset: { value: '' } }, '–');
  return { value, el: h('div', { class: 'stat' }, h('div', { class: 'label' }, label), value) };
}

function setRate(card, v, fmt) {
  card.value.textContent = fmt(v);
  card.value.dataset.value = isNum(v) ? String(v) : '';
}

const STORAGE_FIELDS = [
  ['Storage size', 'storageSize', fmtBytes],
  ['Backlog size', 'backlogSize', fmtBytes],
  ['Offloaded', 'offloadedStorageSize', fmtBytes],
  ['Average message size', 'averageMsgSize', fmtBytes],
  ['Messages in', 'msgInCounter', fmtNum],
  ['Messages out', 'msgOutCounter', fmtNum],
  ['Bytes in', 'bytesInCounter', fmtBytes],
  ['Bytes out', 'bytesOutCounter', fmtBytes],
  ['Deduplication', 'deduplicationStatus', fmtAny],
  ['Topic epoch', 'topicEpoch', fmtAny],
  ['Owner broker', 'ownerBroker', fmtAny],
  ['Terminated', 'terminated', fmtAny],
];

async function internalStats(ctx, base, box) {
  try {
    const s = await api.get(`${base}/internalStats`, { signal: ctx.signal });
    const scalars = Object.entries(s).filter(([, v]) => v === null || typeof v !== 'object');
    const ledgers = new KeyedTable([
      { label: 'Ledger', value: (l) => fmtAny(l.ledgerId), cls: 'num' },
      { label: 'Entries', value: (l) => fmtNum(l.entries), cls: 'num' },
      { label: 'Size', value: (l) => fmtBytes(l.size), cls: 'num' },
      { label: 'Offloaded', value: (l) => fmtAny(l.offloaded ?? false) },
      { label: 'Closed', value: (l) => fmtAny(l.closed) },
    ], null, { table: { id: 'ledgers' }, emptyText: 'No ledgers.' });
    ledgers.update((s.ledgers || []).map((l, i) => [String(i), l]));
    const cursors = new KeyedTable([
      { label: 'Cursor', value: (c, name) => name },
      { label: 'Mark-delete', value: (c) => fmtAny(c.markDeletePosition) },
      { label: 'Read position', value: (c) => fmtAny(c.readPosition) },
      { label: 'Consumed', value: (c) => fmtNum(c.messagesConsumedCounter), cls: 'num' },
      { label: 'Individually deleted', value: (c) => fmtAny(c.individuallyDeletedMessages) },
    ], null, { table: { id: 'cursors' }, emptyText: 'No cursors.' });
    cursors.update(Object.entries(s.cursors || {}));
    box.replaceChildren(kvGrid(scalars.map(([k, v]) => [k, fmtAny(v)])), h('h3', null, 'Ledgers'), ledgers.el, h('h3', null, 'Cursors'), cursors.el);
  } catch (e) {
    if (e.name !== 'AbortError') box.replaceChildren(errorBox(e));
  }
}

function partitionLinks(t, ns, topic, n) {
  const shown = Math.min(n, 200);
  const links = [];
  for (let i = 0; i < shown; i += 1) {
    links.push(h('a', { href: api.routes.topic(t, ns, `${topic}-partition-${i}`) }, String(i)), ' ');
  }
  return h('p', { class: 'partitions' }, links, n > shown ? `… ${n - shown} more` : '');
}

function topicActions(t, ns, topic, partitions) {
  const base = api.paths.topic(t, ns, topic);
  return h('div', { class: 'toolbar' },
    actionButton('Unload', () => api.put(`${base}/unload`), { done: 'Topic unloaded', what: 'Unload', attrs: { id: 'unload' } }),
    actionButton('Delete topic', () => api.del(partitions > 0 ? `${base}/partitions` : base), {
      confirm: `Delete ${topic}? Its messages and subscriptions are removed.`, danger: true, what: 'Delete topic', attrs: { id: 'delete-topic' },
      done: 'Topic deleted', after: () => { window.location.hash = api.routes.namespace(t, ns); },
    }));
}

export async function page(main, ctx, [t, ns, topic]) {
  const base = api.paths.topic(t, ns, topic);
  let partitions = 0;
  try {
    partitions = (await api.get(`${base}/partitions`, { signal: ctx.signal }))?.partitions || 0;
  } catch (e) {
    if (e.name === 'AbortError') return;
    // Without permission the stats request below shows the refusal.
  }
  const cards = {
    msgIn: rateCard('rate-in', 'Msg in/s'),
    msgOut: rateCard('rate-out', 'Msg out/s'),
    bytesIn: rateCard('throughput-in', 'Bytes in/s'),
    bytesOut: rateCard('throughput-out', 'Bytes out/s'),
  };
  const chart = new RateChart([{ name: 'msg in/s', cls: 's-in' }, { name: 'msg out/s', cls: 's-out' }]);
  const status = h('div', { id: 'stats-status' });
  const storage = h('div', { id: 'storage' });
  const publishers = new KeyedTable([
    { label: 'Producer', value: (p) => fmtAny(p.producerName) },
    { label: 'Id', value: (p) => fmtAny(p.producerId), cls: 'num' },
    { label: 'Access mode', value: (p) => fmtAny(p.accessMode) },
    { label: 'In msg/s', value: (p) => fmtRate(p.msgRateIn), cls: 'num' },
    { label: 'In bytes/s', value: (p) => fmtBytes(p.msgThroughputIn), cls: 'num' },
    { label: 'Address', value: (p) => fmtAny(p.address) },
    { label: 'Connected since', value: (p) => fmtTime(p.connectedSince) },
    { label: 'Client', value: (p) => fmtAny(p.clientVersion) },
  ], null, { table: { id: 'publishers' }, emptyText: 'No producers connected.' });
  let prev = null;
  let prevAt = 0;
  let stopped = false;
  const poll = async () => {
    if (stopped) return;
    const statsPath = partitions > 0 ? `${base}/partitioned-stats` : `${base}/stats`;
    try {
      const s = await api.get(statsPath, { signal: ctx.signal });
      const now = Date.now();
      const r = ratesOf(s, prev, (now - prevAt) / 1000);
      prev = s;
      prevAt = now;
      setRate(cards.msgIn, r.msgIn, fmtRate);
      setRate(cards.msgOut, r.msgOut, fmtRate);
      setRate(cards.bytesIn, r.bytesIn, fmtBytes);
      setRate(cards.bytesOut, r.bytesOut, fmtBytes);
      chart.push(now, [r.msgIn, r.msgOut]);
      storage.replaceChildren(kvGrid(STORAGE_FIELDS.map(([label, k, f]) => [label, f(s[k]), `stat-${k}`])));
      publishers.update((s.publishers || []).map((p, i) => [`${i}\u0000${p.producerName ?? ''}`, p]));
      subs.update(s);
      status.replaceChildren();
      main.dataset.polled = String((Number(main.dataset.polled) || 0) + 1);
    } catch (e) {
      if (e.name === 'AbortError') return;
      status.replaceChildren(errorBox(e));
      // A refusal or a missing topic does not change by asking again.
      if (e.status === 401 || e.status === 403 || e.status === 404) stopped = true;
    }
  };
  const subs = new Subscriptions(ctx, t, ns, topic, partitions, poll);
  const internal = h('div', { class: 'muted' }, 'Loading…');
  main.replaceChildren(...[
    h('nav', { class: 'crumbs' }, h('a', { href: '#/tenants' }, 'Tenants'), ' / ', h('a', { href: api.routes.tenant(t) }, t), ' / ',
      h('a', { href: api.routes.namespace(t, ns) }, ns), ' / ', topic),
    h('h1', { class: 'topic-name' }, `persistent://${t}/${ns}/${topic}`),
    partitions > 0 ? h('p', { class: 'muted' }, `Partitioned topic with ${partitions} partitions (stats merged).`) : null,
    topicActions(t, ns, topic, partitions),
    status,
    section('Rates', h('div', { class: 'stats-row' }, Object.values(cards).map((c) => c.el)), chart.el),
    section('Storage and counters', storage),
    section('Producers', publishers.el),
    subs.el,
    partitions > 0
      ? section('Partitions', partitionLinks(t, ns, topic, partitions))
      : section('Internal stats', h('div', { class: 'toolbar' }, h('button', { type: 'button', onclick: () => internalStats(ctx, base, internal) }, 'Refresh')), internal),
  ].filter(Boolean));
  await poll();
  ctx.rendered('topic');
  ctx.every(POLL_MS, poll);
  if (partitions === 0) {
    await internalStats(ctx, base, internal);
    ctx.every(INTERNAL_MS, () => internalStats(ctx, base, internal));
  }
}

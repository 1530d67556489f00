// A namespace: its topics (searchable and paginated in the browser, so 10,000 topics take one
// request and render one page), creating a topic, and its policies (each saved through the
// policy's own admin endpoint).

import * as api from './api.js';
import { actionButton, errorBox, fmtNum, h, kvGrid, section } from './ui.js';

const PAGE = 50;
const PARTITION = /^(.*)-partition-(\d+)$/;

const byName = (a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0);

// Sorted by name; the broker's lists come sorted, so this is usually one pass.
function sortedByName(rows) {
  for (let i = 1; i < rows.length; i += 1) {
    if (rows[i - 1].name > rows[i].name) return rows.sort(byName);
  }
  return rows;
}

// The rows of the topic list: partitioned topics (their partitions folded in) and the others.
// Cheap per topic (a namespace may hold 10,000): no regex unless there are partitioned topics.
export function topicRows(topics, partitioned) {
  const local = (full) => full.slice(full.lastIndexOf('/') + 1);
  if (!partitioned.length) return sortedByName(topics.map((full) => ({ name: local(full), partitions: 0 })));
  const parents = new Map(partitioned.map((p) => [local(p), 0]));
  const rows = [];
  for (const full of topics) {
    const name = local(full);
    const m = PARTITION.exec(name);
    if (m && parents.has(m[1])) {
      parents.set(m[1], parents.get(m[1]) + 1);
      continue;
    }
    rows.push({ name, partitions: 0 });
  }
  for (const [name, n] of parents) rows.push({ name, partitions: n || null });
  return sortedByName(rows);
}

class TopicList {
  constructor(t, ns) {
    this.t = t;
    this.ns = ns;
    this.rows = [];
    this.shown = [];
    this.page = 0;
    this.search = h('input', { id: 'topic-search', type: 'search', placeholder: 'Search topics', 'aria-label': 'search topics' });
    this.search.addEventListener('input', () => { this.page = 0; this.filter(); });
    this.count = h('span', { id: 'topic-count', class: 'muted' });
    this.body = h('tbody');
    this.prev = h('button', { type: 'button', id: 'page-prev', onclick: () => this.go(-1) }, '‹ Prev');
    this.next = h('button', { type: 'button', id: 'page-next', onclick: () => this.go(1) }, 'Next ›');
    this.pageInfo = h('span', { id: 'page-info', class: 'muted' });
    this.table = h('table', { class: 'grid', id: 'topics' },
      h('thead', null, h('tr', null, h('th', null, 'Topic'), h('th', null, 'Kind'))), this.body);
    this.el = h('div', null,
      h('div', { class: 'toolbar' }, this.search, this.count),
      this.table,
      h('div', { class: 'pager' }, this.prev, this.pageInfo, this.next));
  }

  async load(signal) {
    const [topics, partitioned] = await Promise.all([
      api.get(api.paths.topics(this.t, this.ns), { signal }),
      api.get(`${api.paths.topics(this.t, this.ns)}/partitioned`, { signal }),
    ]);
    this.rows = topicRows(topics, partitioned);
    this.filter();
  }

  filter() {
    const q = this.search.value.trim().toLowerCase();
    // Lower-cased names are made on the first search, not on every load.
    this.shown = q ? this.rows.filter((r) => (r.lower ??= r.name.toLowerCase()).includes(q)) : this.rows;
    this.render();
  }

  go(d) {
    const pages = Math.max(1, Math.ceil(this.shown.length / PAGE));
    this.page = Math.min(pages - 1, Math.max(0, this.page + d));
    this.render();
  }

  render() {
    const pages = Math.max(1, Math.ceil(this.shown.length / PAGE));
    const start = this.page * PAGE;
    const slice = this.shown.slice(start, start + PAGE);
    this.body.replaceChildren(...slice.map((r) => h('tr', null,
      h('td', null, h('a', { href: api.routes.topic(this.t, this.ns, r.name) }, r.name)),
      h('td', null, r.partitions === 0 ? 'topic' : `partitioned (${r.partitions ?? '?'})`))));
    const total = this.rows.length;
    this.count.textContent = this.shown.length === total
      ? `${fmtNum(total)} topics` : `${fmtNum(this.shown.length)} of ${fmtNum(total)} topics`;
    this.table.dataset.count = String(this.shown.length);
    this.pageInfo.textContent = `page ${this.page + 1} of ${pages}`;
    this.prev.disabled = this.page === 0;
    this.next.disabled = this.page >= pages - 1;
  }
}

function createTopicForm(t, ns, after) {
  const name = h('input', { id: 'new-topic', placeholder: 'topic name', 'aria-label': 'topic name' });
  const parts = h('input', { id: 'new-topic-partitions', type: 'number', min: '0', value: '0', 'aria-label': 'partitions (0: not partitioned)' });
  const form = h('form', { class: 'inline', id: 'create-topic' }, name,
    h('label', null, 'partitions ', parts),
    actionButton('Create topic', () => {
      const n = Number(parts.value) || 0;
      const path = api.paths.topic(t, ns, name.value.trim());
      return n > 0 ? api.put(`${path}/partitions`, String(n)) : api.put(path);
    }, { done: 'Topic created', after }));
  form.addEventListener('submit', (e) => e.preventDefault());
  return form;
}

const num = (key, label, get) => ({ key, label, type: 'number', get });

// Each editable policy: its admin endpoint name, inputs, current values and request body.
const POLICIES = [
  { name: 'messageTTL', label: 'Message TTL', fields: [num('v', 'seconds (0: none)', (p) => p.message_ttl_in_seconds ?? 0)], body: (v) => String(v.v) },
  {
    name: 'retention',
    label: 'Retention',
    fields: [
      num('retentionTimeInMinutes', 'minutes', (p) => p.retention_policies?.retentionTimeInMinutes ?? 0),
      num('retentionSizeInMB', 'MB', (p) => p.retention_policies?.retentionSizeInMB ?? 0),
    ],
  },
  {
    name: 'deduplication',
    label: 'Deduplication',
    fields: [{ key: 'v', label: 'enabled', type: 'select', options: ['false', 'true'], get: (p) => String(p.deduplicationEnabled ?? false) }],
    body: (v) => v.v,
  },
  {
    name: 'backlogQuota',
    label: 'Backlog quota',
    fields: [
      num('limitSize', 'bytes (-1: none)', (p) => p.backlog_quota_map?.destination_storage?.limitSize ?? -1),
      {
        key: 'policy', label: 'policy', type: 'select',
        options: ['producer_request_hold', 'producer_exception', 'consumer_backlog_eviction'],
        get: (p) => p.backlog_quota_map?.destination_storage?.policy ?? 'producer_request_hold',
      },
    ],
  },
  { name: 'maxProducersPerTopic', label: 'Max producers per topic', fields: [num('v', '0: no limit', (p) => p.max_producers_per_topic ?? 0)], body: (v) => String(v.v) },
  { name: 'maxConsumersPerTopic', label: 'Max consumers per topic', fields: [num('v', '0: no limit', (p) => p.max_consumers_per_topic ?? 0)], body: (v) => String(v.v) },
  { name: 'maxConsumersPerSubscription', label: 'Max consumers per subscription', fields: [num('v', '0: no limit', (p) => p.max_consumers_per_subscription ?? 0)], body: (v) => String(v.v) },
  {
    name: 'publishRate',
    label: 'Publish rate',
    fields: [
      num('publishThrottlingRateInMsg', 'msg/s (-1: none)', (p) => p.publishMaxMessageRate?.publishThrottlingRateInMsg ?? -1),
      num('publishThrottlingRateInByte', 'bytes/s (-1: none)', (p) => p.publishMaxMessageRate?.publishThrottlingRateInByte ?? -1),
    ],
  },
  {
    name: 'dispatchRate',
    label: 'Dispatch rate',
    fields: [
      num('dispatchThrottlingRateInMsg', 'msg (-1: none)', (p) => p.topicDispatchRate?.dispatchThrottlingRateInMsg ?? -1),
      num('dispatchThrottlingRateInByte', 'bytes (-1: none)', (p) => p.topicDispatchRate?.dispatchThrottlingRateInByte ?? -1),
      num('ratePeriodInSecond', 'per seconds', (p) => p.topicDispatchRate?.ratePeriodInSecond ?? 1),
    ],
  },
];

function policyRow(t, ns, pol, current, reload) {
  const inputs = pol.fields.map((f) => {
    const id = `policy-${pol.name}-${f.key}`;
    const input = f.type === 'select'
      ? h('select', { id }, f.options.map((o) => h('option', { value: o, selected: o === f.get(current) }, o)))
      : h('input', { id, type: 'number', value: String(f.get(current)) });
    return h('label', null, input, ` ${f.label}`);
  });
  const values = () => {
    const v = {};
    pol.fields.forEach((f, i) => {
      const raw = inputs[i].firstChild.value;
      v[f.key] = f.type === 'number' ? Number(raw) : raw;
    });
    return v;
  };
  const path = `${api.paths.namespace(t, ns)}/${pol.name}`;
  return h('tr', { dataset: { policy: pol.name } },
    h('th', null, pol.label),
    h('td', null, inputs),
    h('td', { class: 'actions' },
      actionButton('Save', () => api.post(path, pol.body ? pol.body(values()) : values()), {
        done: `${pol.label} saved`, what: `Saving ${pol.label}`, after: reload, attrs: { id: `save-${pol.name}` },
      }),
      actionButton('Remove', () => api.del(path), { done: `${pol.label} removed`, what: `Removing ${pol.label}`, after: reload })));
}

async function policiesBox(ctx, t, ns, box) {
  const reload = () => policiesBox(ctx, t, ns, box);
  try {
    const p = await api.get(api.paths.namespace(t, ns), { signal: ctx.signal });
    const perms = p.auth_policies?.namespace_auth || {};
    box.replaceChildren(
      h('table', { class: 'grid policies', id: 'policies' }, h('tbody', null, POLICIES.map((pol) => policyRow(t, ns, pol, p, reload)))),
      h('h3', null, 'Permissions'),
      kvGrid(Object.keys(perms).length ? Object.entries(perms).map(([role, acts]) => [role, acts.join(', ')]) : [['–', 'no roles granted']]),
      kvGrid([
        ['Bundles', String(p.bundles?.numBundles ?? '–')],
        ['Replication clusters', (p.replication_clusters || []).join(', ') || '–'],
      ]),
    );
  } catch (e) {
    if (e.name !== 'AbortError') box.replaceChildren(errorBox(e));
  }
}

export async function page(main, ctx, [t, ns]) {
  const list = new TopicList(t, ns);
  const listBox = h('div', null, h('div', { class: 'muted' }, 'Loading…'));
  const policies = h('div', { class: 'muted' }, 'Loading…');
  const reload = async () => {
    try {
      await list.load(ctx.signal);
      listBox.replaceChildren(list.el);
    } catch (e) {
      if (e.name !== 'AbortError') listBox.replaceChildren(errorBox(e));
    }
  };
  main.replaceChildren(
    h('nav', { class: 'crumbs' }, h('a', { href: '#/tenants' }, 'Tenants'), ' / ', h('a', { href: api.routes.tenant(t) }, t), ' / ', ns),
    h('h1', null, `Namespace ${t}/${ns}`),
    section('Topics', listBox, createTopicForm(t, ns, reload)),
    section('Policies', policies),
  );
  await reload();
  ctx.rendered('topics');
  await policiesBox(ctx, t, ns, policies);
}

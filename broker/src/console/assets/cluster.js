// Cluster pages: the overview (clusters, brokers, bookies), the tenant list and one tenant's
// namespaces.

import * as api from './api.js';
import { actionButton, errorBox, fmtAny, h, KeyedTable, kvGrid, section } from './ui.js';

// Runs `load` and puts its result (or the error) into `box`; sections load independently, so a
// role that may see tenants but not brokers still gets a page.
async function fill(box, load) {
  try {
    box.replaceChildren(await load());
  } catch (e) {
    if (e.name !== 'AbortError') box.replaceChildren(errorBox(e));
  }
}

function loading() {
  return h('div', { class: 'muted' }, 'Loading…');
}

async function clustersBox(ctx) {
  const names = await api.get('/admin/v2/clusters', { signal: ctx.signal });
  const details = await Promise.all(
    names.map((n) => api.get(`/admin/v2/clusters/${encodeURIComponent(n)}`, { signal: ctx.signal }).catch((e) => e)),
  );
  const t = new KeyedTable([
    { label: 'Cluster', value: (r) => r.name },
    { label: 'Service URL', value: (r) => fmtAny(r.d.serviceUrl) },
    { label: 'Broker service URL', value: (r) => fmtAny(r.d.brokerServiceUrl) },
    { label: 'TLS', value: (r) => fmtAny(r.d.brokerServiceUrlTls || r.d.serviceUrlTls) },
  ], null, { table: { id: 'clusters' } });
  t.update(names.map((n, i) => [n, { name: n, d: details[i] instanceof Error ? {} : details[i] }]));
  ctx.cluster = names[0];
  return t.el;
}

async function brokersBox(ctx, cluster) {
  const [brokers, leader] = await Promise.all([
    api.get(`/admin/v2/brokers/${encodeURIComponent(cluster)}`, { signal: ctx.signal }),
    api.get('/admin/v2/brokers/leaderBroker', { signal: ctx.signal }).catch(() => ({})),
  ]);
  const t = new KeyedTable([
    { label: 'Broker', value: (r) => r },
    { label: 'Role', value: (r) => (leader.brokerId === r ? 'leader' : '') },
  ], null, { table: { id: 'brokers' } });
  t.update(brokers.map((b) => [b, b]));
  return t.el;
}

async function bookiesBox(ctx) {
  const [all, racks] = await Promise.all([
    api.get('/admin/v2/bookies/all', { signal: ctx.signal }),
    api.get('/admin/v2/bookies/racks-info', { signal: ctx.signal }).catch(() => ({})),
  ]);
  const rackOf = {};
  for (const group of Object.values(racks || {})) Object.assign(rackOf, group);
  const t = new KeyedTable([
    { label: 'Bookie', value: (r) => r.bookieId },
    { label: 'Rack', value: (r) => fmtAny(rackOf[r.bookieId]?.rack) },
  ], null, { table: { id: 'bookies' }, emptyText: 'No bookies registered (a standalone keeps its bookie inside).' });
  t.update((all.bookies || []).map((b) => [b.bookieId, b]));
  return t.el;
}

export async function overview(main, ctx) {
  const clusters = loading();
  const brokers = loading();
  const bookies = loading();
  const tenants = loading();
  main.replaceChildren(
    h('h1', null, 'Cluster'),
    h('div', { class: 'cols' }, section('Clusters', clusters), section('Brokers', brokers)),
    h('div', { class: 'cols' }, section('Bookies', bookies), section('Tenants', tenants)),
  );
  await fill(clusters, () => clustersBox(ctx));
  await Promise.all([
    fill(brokers, () => brokersBox(ctx, ctx.cluster || 'standalone')),
    fill(bookies, () => bookiesBox(ctx)),
    fill(tenants, () => tenantTable(ctx)),
  ]);
  ctx.rendered('overview');
}

async function tenantTable(ctx) {
  const names = await api.get('/admin/v2/tenants', { signal: ctx.signal });
  const t = new KeyedTable([
    { label: 'Tenant', value: (n) => h('a', { href: api.routes.tenant(n) }, n) },
  ], null, { table: { id: 'tenants' }, emptyText: 'No tenants.' });
  t.update(names.map((n) => [n, n]));
  return t.el;
}

export async function tenants(main, ctx) {
  const box = loading();
  main.replaceChildren(h('h1', null, 'Tenants'), section('Tenants', box));
  await fill(box, () => tenantTable(ctx));
  ctx.rendered('tenants');
}

export async function tenant(main, ctx, [t]) {
  const info = loading();
  const list = loading();
  const name = h('input', { placeholder: 'namespace name', 'aria-label': 'namespace name', id: 'ns-name' });
  const refresh = () => fill(list, () => namespaceTable(ctx, t));
  const create = h('form', { class: 'inline', id: 'create-namespace' }, name,
    actionButton('Create namespace', () => api.put(api.paths.namespace(t, name.value.trim())), {
      done: 'Namespace created', after: refresh,
    }));
  create.addEventListener('submit', (e) => e.preventDefault());
  main.replaceChildren(
    h('nav', { class: 'crumbs' }, h('a', { href: '#/tenants' }, 'Tenants'), ' / ', t),
    h('h1', null, `Tenant ${t}`),
    section('Configuration', info),
    section('Namespaces', list, create),
  );
  await Promise.all([
    fill(info, async () => {
      const ti = await api.get(api.paths.tenant(t), { signal: ctx.signal });
      return kvGrid([
        ['Admin roles', (ti.adminRoles || []).join(', ') || '–'],
        ['Allowed clusters', (ti.allowedClusters || []).join(', ') || '–'],
      ]);
    }),
    refresh(),
  ]);
  ctx.rendered('tenant');
}

async function namespaceTable(ctx, t) {
  const names = await api.get(api.paths.namespaces(t), { signal: ctx.signal });
  const table = new KeyedTable([
    {
      label: 'Namespace',
      value: (full) => {
        const ns = full.includes('/') ? full.slice(full.indexOf('/') + 1) : full;
        return h('a', { href: api.routes.namespace(t, ns) }, full);
      },
    },
  ], null, { table: { id: 'namespaces' }, emptyText: 'No namespaces.' });
  table.update(names.map((n) => [n, n]));
  return table.el;
}

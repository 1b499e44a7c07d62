import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { ENTRY, drawn, fieldOfProblem, freshId, nodeOfProblem, reconnect, renameNode, toDefinition, toGraph } from './graph';
import { layout } from './layout';
import type { JourneyDef, JsonObject } from './types';

const dir = join(__dirname, '../../../examples/journeys');
const examples = readdirSync(dir)
  .filter((f) => /\.(ya?ml|json)$/.test(f))
  .map((f) => {
    const text = readFileSync(join(dir, f), 'utf8');
    return { file: f, def: (f.endsWith('.json') ? JSON.parse(text) : YAML.parse(text)) as JourneyDef };
  });

function roundTrip(def: JourneyDef): JourneyDef {
  const g = toGraph(def);
  return toDefinition(g.meta, layout(g.nodes, g.edges), g.edges, def.start);
}

describe('definition <-> canvas', () => {
  it('reads every example', () => {
    expect(examples.length).toBeGreaterThanOrEqual(8);
  });

  it.each(examples.map((e) => [e.file, e.def] as const))('%s round-trips unchanged, key order included', (_file, def) => {
    expect(JSON.stringify(roundTrip(def))).toBe(JSON.stringify(def));
  });

  it.each(examples.map((e) => [e.file, e.def] as const))('%s: one edge per reference, every node laid out', (_file, def) => {
    const g = toGraph(def);
    expect(g.nodes.map((n) => n.id)).toEqual([ENTRY, ...Object.keys(def.nodes)]);
    expect(g.edges.find((e) => e.source === ENTRY)?.target).toBe(def.start);
    const laid = layout(g.nodes, g.edges);
    const xs = new Set(laid.map((n) => `${n.position.x},${n.position.y}`));
    expect(xs.size).toBe(laid.length);
    // Left to right: the entry is left of the first node.
    const at = (id: string) => laid.find((n) => n.id === id)!.position.x;
    expect(at(ENTRY)).toBeLessThan(at(def.start));
  });

  const welcome = examples.find((e) => e.file === 'welcome.yaml')!.def;

  it('a connection removed on the canvas leaves the definition', () => {
    const g = toGraph(welcome);
    const edges = g.edges.filter((e) => !(e.source === 'wait_2d' && e.sourceHandle === 'next'));
    const out = toDefinition(g.meta, g.nodes, edges, welcome.start);
    expect(out.nodes.wait_2d.next).toBeUndefined();
    expect(Object.keys(out.nodes.wait_2d)).toEqual(['type', 'label', 'duration']);
  });

  it('a connection drawn on the canvas is written in its slot', () => {
    const g = toGraph(welcome);
    const edges = [...g.edges.filter((e) => !(e.source === 'has_purchased' && e.sourceHandle === 'otherwise')), { id: 'x', source: 'has_purchased', sourceHandle: 'otherwise', target: 'done' }, { id: 'y', source: 'has_purchased', sourceHandle: 'on_error', target: 'send_tips' }];
    const out = toDefinition(g.meta, g.nodes, edges, welcome.start);
    expect(out.nodes.has_purchased.otherwise).toBe('done');
    expect(out.nodes.has_purchased.on_error).toBe('send_tips');
    const withBranch = [...edges.filter((e) => e.sourceHandle !== 'branches.0'), { id: 'z', source: 'has_purchased', sourceHandle: 'branches.0', target: 'done' }];
    expect((toDefinition(g.meta, g.nodes, withBranch, welcome.start).nodes.has_purchased.branches as { next: string }[])[0].next).toBe('done');
  });

  it('the entry edge is the start; a reference to a missing node is kept for validation', () => {
    const def: JourneyDef = { entry: { type: 'event', event: 'e' }, start: 'a', nodes: { a: { type: 'wait', duration: 'P1D', next: 'ghost' }, b: { type: 'end' } } };
    const g = toGraph(def);
    expect(g.edges.map((e) => e.id)).toEqual([`${ENTRY}:start`]);
    const moved = g.edges.map((e) => (e.source === ENTRY ? { ...e, target: 'b' } : e));
    const out = toDefinition(g.meta, g.nodes, moved, def.start);
    expect(out.start).toBe('b');
    expect(out.nodes.a.next).toBe('ghost');
  });

  it('a deleted node disappears with its connections', () => {
    const g = toGraph(welcome);
    const nodes = g.nodes.filter((n) => n.id !== 'send_thanks');
    const edges = g.edges.filter((e) => e.target !== 'send_thanks' && e.source !== 'send_thanks');
    const out = toDefinition(g.meta, nodes, edges, welcome.start);
    expect(out.nodes.send_thanks).toBeUndefined();
    expect((out.nodes.has_purchased.branches as { next?: string }[])[0].next).toBeUndefined();
  });
});

describe('a node edited in the properties form', () => {
  const welcome = examples.find((e) => e.file === 'welcome.yaml')!.def;
  const ids = new Set(Object.keys(welcome.nodes));

  it('keeps the connections drawn on the canvas', () => {
    const g = toGraph(welcome);
    // Drawn on the canvas only: the node's definition still has no `next` there.
    const drawn = [...g.edges.filter((e) => e.source !== 'wait_2d'), { id: 'd', source: 'wait_2d', sourceHandle: 'next', target: 'done' }];
    const before = { ...welcome.nodes.wait_2d };
    const after = { ...before, duration: 'PT1H' };
    const { edges } = reconnect('wait_2d', before, after, drawn, ids, undefined);
    expect(edges.find((e) => e.source === 'wait_2d')?.target).toBe('done');
  });

  it('takes a reference typed in the form, and drops the edge of a removed branch', () => {
    const g = toGraph(welcome);
    const before = welcome.nodes.has_purchased;
    const retyped = { ...before, branches: [{ label: 'Already a customer', when: 'true', next: 'done' }] };
    expect(reconnect('has_purchased', before, retyped, g.edges, ids, undefined).edges.find((e) => e.sourceHandle === 'branches.0')?.target).toBe('done');
    const none = { ...before, branches: [] };
    expect(reconnect('has_purchased', before, none, g.edges, ids, undefined).edges.filter((e) => e.source === 'has_purchased').map((e) => e.sourceHandle)).toEqual(['otherwise']);
  });
});

describe('a branch moved or removed in the form takes its connection along', () => {
  const def: JourneyDef = {
    entry: { type: 'event', event: 'e' },
    start: 'c',
    nodes: { c: { type: 'condition', branches: [{ label: 'A', when: 'true', next: 'a' }, { label: 'B', when: 'false' }] }, a: { type: 'end' }, b: { type: 'end' } },
  };
  const ids = new Set(Object.keys(def.nodes));

  it('even one drawn on the canvas only', () => {
    const g = toGraph(def);
    const step = g.nodes.find((n) => n.id === 'c')!;
    // Branch B connected on the canvas: the stored definition does not know it yet.
    const edges = [...g.edges, { id: 'c:branches.1', source: 'c', sourceHandle: 'branches.1', target: 'b' }];
    const before = drawn(step.data as never, edges, ids);
    expect((before.branches as { next?: string }[]).map((b) => b.next)).toEqual(['a', 'b']);
    // Remove branch A in the form: B becomes branch 0, still to `b`.
    const after = { ...before, branches: [(before.branches as JsonObject[])[1]] };
    const out = reconnect('c', before, after, edges, ids, undefined).edges.filter((e) => e.source === 'c');
    expect(out.map((e) => [e.sourceHandle, e.target])).toEqual([['branches.0', 'b']]);
  });
});

describe('renaming a node', () => {
  const welcome = examples.find((e) => e.file === 'welcome.yaml')!.def;

  it('keeps its connections, in and out, and the start', () => {
    const g = toGraph(welcome);
    const r = renameNode(g.nodes, g.edges, welcome.start, welcome.start, 'hello');
    const out = toDefinition(g.meta, r.nodes, r.edges, r.start);
    expect(out.start).toBe('hello');
    expect(Object.keys(out.nodes)).toContain('hello');
    expect(Object.keys(out.nodes)).not.toContain(welcome.start);
    expect(out.nodes.hello).toEqual(welcome.nodes[welcome.start]);
    const wait = renameNode(g.nodes, g.edges, welcome.start, 'wait_2d', 'pause');
    const def2 = toDefinition(g.meta, wait.nodes, wait.edges, wait.start);
    expect(Object.values(def2.nodes).some((n) => n.next === 'pause')).toBe(true);
    expect(def2.nodes.pause.next).toBe(welcome.nodes.wait_2d.next);
  });

  it('turns a reference written to the new id into a connection', () => {
    const def: JourneyDef = { entry: { type: 'event', event: 'e' }, start: 'ghost', nodes: { a: { type: 'wait', duration: 'P1D', next: 'ghost' }, b: { type: 'end' } } };
    const g = toGraph(def);
    const r = renameNode(g.nodes, g.edges, def.start, 'b', 'ghost');
    expect(r.edges.map((e) => `${e.source}>${e.target}`).sort()).toEqual([`${ENTRY}>ghost`, 'a>ghost']);
    expect(toDefinition(g.meta, r.nodes, r.edges, r.start)).toEqual({ ...def, nodes: { a: def.nodes.a, ghost: { type: 'end' } } });
  });
});

describe('problems on the canvas', () => {
  it.each([
    ['nodes.wait_2d.duration', 'wait_2d', 'duration'],
    ['nodes.has_purchased.branches[0].when', 'has_purchased', 'branches'],
    ['nodes.a', 'a', undefined],
    ['entry.event', ENTRY, 'event'],
    ['start', ENTRY, undefined],
    ['properties.time_zone', undefined, undefined],
  ])('%s is on node %s, field %s', (path, node, field) => {
    expect(nodeOfProblem(path)).toBe(node);
    expect(fieldOfProblem(path)).toBe(field);
  });

  it('new node ids do not collide', () => {
    expect(freshId('wait', new Set(['end']))).toBe('wait');
    expect(freshId('wait', new Set(['wait', 'wait_2']))).toBe('wait_3');
  });
});

describe('paths drawn on the graph', () => {
  it('visits in order, each connection once, the entry by its canvas id', async () => {
    const { pathOf, nodeOfReplayItem } = await import('./paths');
    const p = pathOf(['entry', 'send_welcome', 'wait_2d', 'wait_2d', 'has_purchased', 'send_tips', 'done', 'done']);
    expect([...p.visits.entries()]).toEqual([[ENTRY, 0], ['send_welcome', 1], ['wait_2d', 2], ['has_purchased', 3], ['send_tips', 4], ['done', 5]]);
    expect(p.edges.has(`${ENTRY}>send_welcome`)).toBe(true);
    expect(p.edges.has('wait_2d>wait_2d')).toBe(false);
    expect(nodeOfReplayItem('has_purchased:passed->otherwise')).toBe('has_purchased');
  });
});

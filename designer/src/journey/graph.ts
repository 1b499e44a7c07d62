// The canvas model of a journey and back: definition -> nodes and edges -> definition.
//
// The definition stays the source of truth for everything but connections: each canvas
// node carries its node's definition untouched; edges are read from the node's slots
// (`next`, `branches[i].next`, `otherwise`...) and written back into the same places, in
// the same key order, so a journey opened and saved without edits is byte-identical.
// A reference to a node that does not exist is not an edge; it is kept as written, for
// the engine's validation to locate (until a connection is drawn from that slot).

import type { Edge, Node } from '@xyflow/react';
import { slotsOf } from './kinds';
import type { EntryDef, Json, JourneyDef, JsonObject, NodeDef } from './types';

/** The id of the canvas node standing for the entry (never a valid journey node id). */
export const ENTRY = '__entry';

/** A step: its definition, and the references it holds to nodes that do not exist (by
 * handle), kept as written for the engine's validation to locate. */
export type StepData = { id: string; def: NodeDef; dangling?: Record<string, string> } & Record<string, unknown>;
export type EntryData = { entry: EntryDef } & Record<string, unknown>;
export type CanvasNode = Node<StepData, 'step'> | Node<EntryData, 'entry'> | Node<GhostData, 'ghost'>;
/** A node a version diff removed (see ghosts.ts): drawn, never part of the definition. */
type GhostData = { id: string; def: NodeDef } & Record<string, unknown>;

/** The journey-level fields (everything but the graph). */
export type JourneyMeta = Omit<JourneyDef, 'nodes' | 'start'>;

function get(value: Json | undefined, path: (string | number)[]): Json | undefined {
  let at: Json | undefined = value;
  for (const key of path) {
    if (at === null || typeof at !== 'object') return undefined;
    at = Array.isArray(at) ? at[key as number] : (at as JsonObject)[key as string];
  }
  return at;
}

function set(value: JsonObject, path: (string | number)[], target: string | undefined): void {
  let at: Json = value;
  for (const key of path.slice(0, -1)) {
    const next: Json | undefined = Array.isArray(at) ? at[key as number] : (at as JsonObject)[key as string];
    if (next === null || typeof next !== 'object') return;
    at = next;
  }
  const last = path[path.length - 1] as string;
  const object = at as JsonObject;
  if (target === undefined) delete object[last];
  else object[last] = target;
}

export function edgeId(source: string, handle: string): string {
  return `${source}:${handle}`;
}

/** Nodes and edges of a definition (positions left at 0: see layout.ts). */
export function toGraph(def: JourneyDef): { meta: JourneyMeta; nodes: CanvasNode[]; edges: Edge[] } {
  const { nodes: defs, start, ...meta } = def;
  const nodes: CanvasNode[] = [
    { id: ENTRY, type: 'entry', position: { x: 0, y: 0 }, data: { entry: def.entry }, deletable: false },
  ];
  const edges: Edge[] = [];
  if (start in defs) edges.push({ id: edgeId(ENTRY, 'start'), source: ENTRY, sourceHandle: 'start', target: start });
  const ids = new Set(Object.keys(defs));
  for (const [id, node] of Object.entries(defs)) {
    const out = connectionsOf(id, node, ids);
    nodes.push({ id, type: 'step', position: { x: 0, y: 0 }, data: { id, def: node, ...(out.dangling ? { dangling: out.dangling } : {}) } });
    edges.push(...out.edges);
  }
  return { meta, nodes, edges };
}

/** The edges a node's definition draws to the nodes in `ids`, and its references to
 * nodes that are not there. */
export function connectionsOf(id: string, node: NodeDef, ids: Set<string>): { edges: Edge[]; dangling?: Record<string, string> } {
  const edges: Edge[] = [];
  let dangling: Record<string, string> | undefined;
  for (const slot of slotsOf(node)) {
    const target = get(node, slot.path);
    if (typeof target !== 'string') continue;
    if (ids.has(target)) edges.push({ id: edgeId(id, slot.handle), source: id, sourceHandle: slot.handle, target, label: slot.label || undefined });
    else (dangling ??= {})[slot.handle] = target;
  }
  return { edges, dangling };
}

/** The connections of a node whose definition was edited in a form: a slot the edit did
 * not touch keeps its edge on the canvas; a slot whose reference the edit changed (a
 * branch's `next` typed in) takes the new reference; a slot that is gone loses its edge. */
export function reconnect(
  id: string,
  before: NodeDef,
  after: NodeDef,
  edges: Edge[],
  ids: Set<string>,
  dangling: Record<string, string> | undefined,
): { edges: Edge[]; dangling?: Record<string, string> } {
  const was = new Map(slotsOf(before).map((s) => [s.handle, get(before, s.path)]));
  const fresh = connectionsOf(id, after, ids);
  const out: Edge[] = edges.filter((e) => e.source !== id);
  let kept: Record<string, string> | undefined;
  for (const slot of slotsOf(after)) {
    const value = get(after, slot.path);
    if (was.has(slot.handle) && was.get(slot.handle) === value) {
      const edge = edges.find((e) => e.source === id && (e.sourceHandle ?? 'next') === slot.handle);
      if (edge) out.push({ ...edge, label: slot.label || undefined });
      if (dangling?.[slot.handle] !== undefined) (kept ??= {})[slot.handle] = dangling[slot.handle];
    } else {
      const edge = fresh.edges.find((e) => e.sourceHandle === slot.handle);
      if (edge) out.push(edge);
      if (fresh.dangling?.[slot.handle] !== undefined) (kept ??= {})[slot.handle] = fresh.dangling[slot.handle];
    }
  }
  return { edges: out, dangling: kept };
}

/** A copy of a node's definition without its connections (a pasted node). */
export function unconnected(def: NodeDef): NodeDef {
  const copy = structuredClone(def) as NodeDef;
  for (const slot of slotsOf(copy)) set(copy, slot.path, undefined);
  return copy;
}

/** The journey's node ids (the canvas nodes but the entry and removed nodes drawn). */
export function stepIds(nodes: CanvasNode[]): Set<string> {
  return new Set(nodes.filter((n) => n.type === 'step').map((n) => n.id));
}

/** A step's definition as the canvas draws it: each slot holds its edge's target among
 * `ids` (the journey's node ids). */
export function drawn(step: StepData, edges: Edge[], ids: Set<string>): NodeDef {
  const def = structuredClone(step.def) as NodeDef;
  for (const slot of slotsOf(def)) {
    const edge = edges.find((e) => e.source === step.id && (e.sourceHandle ?? 'next') === slot.handle && ids.has(e.target));
    const written = get(def, slot.path);
    if (edge) set(def, slot.path, edge.target);
    // A reference to a node that never existed stays as written; one whose connection
    // (or target node) was removed on the canvas goes.
    else if (typeof written === 'string' && step.dangling?.[slot.handle] !== written) set(def, slot.path, undefined);
  }
  return def;
}

/** The definition drawn by `nodes` and `edges`; `start` and every slot come from edges. */
export function toDefinition(meta: JourneyMeta, nodes: CanvasNode[], edges: Edge[], previousStart = ''): JourneyDef {
  const ids = stepIds(nodes);
  const out: Record<string, NodeDef> = {};
  for (const node of nodes) if (node.type === 'step') out[node.id] = drawn(node.data, edges, ids);
  const startEdge = edges.find((e) => e.source === ENTRY && ids.has(e.target));
  const start = startEdge ? startEdge.target : ids.has(previousStart) ? '' : previousStart;
  const entryNode = nodes.find((n) => n.type === 'entry');
  const entry = entryNode && entryNode.type === 'entry' ? entryNode.data.entry : meta.entry;
  // Key order of the engine's format: id, name, description, entry, start, nodes, properties.
  const { id, name, description, properties } = meta;
  return {
    ...(id !== undefined ? { id } : {}),
    ...(name !== undefined ? { name } : {}),
    ...(description !== undefined ? { description } : {}),
    entry,
    start,
    nodes: out,
    ...(properties !== undefined ? { properties } : {}),
  };
}

/** The node a problem's path points at (`nodes.wait_2d.duration` -> `wait_2d`), the
 * entry for `entry.*` and `start`, nothing for journey-level paths. */
export function nodeOfProblem(path: string): string | undefined {
  if (path === 'start' || path === 'entry' || path.startsWith('entry.') || path.startsWith('entry[')) return ENTRY;
  const m = /^nodes\.([^.[]+)/.exec(path);
  return m ? m[1] : undefined;
}

/** The field of the node a problem names (`nodes.wait_2d.duration` -> `duration`). */
export function fieldOfProblem(path: string): string | undefined {
  const m = /^nodes\.[^.[]+[.]?([^.[]+)?/.exec(path);
  if (m) return m[1];
  const e = /^entry\.([^.[]+)/.exec(path);
  return e ? e[1] : undefined;
}

/** A node id not used yet: `wait`, `wait_2`, `wait_3`... */
export function freshId(kind: string, taken: Set<string>): string {
  if (!taken.has(kind)) return kind;
  for (let n = 2; ; n++) if (!taken.has(`${kind}_${n}`)) return `${kind}_${n}`;
}

/** The graph with node `from` called `to`: its connections and the start follow, and a
 * reference written to `to` while no node had that id becomes a connection. */
export function renameNode(nodes: CanvasNode[], edges: Edge[], start: string, from: string, to: string): { nodes: CanvasNode[]; edges: Edge[]; start: string } {
  const moved = edges.map((e) => {
    const source = e.source === from ? to : e.source;
    const target = e.target === from ? to : e.target;
    return source === e.source && target === e.target ? e : { ...e, id: edgeId(source, e.sourceHandle ?? 'next'), source, target };
  });
  const renamed = nodes.map((n): CanvasNode => {
    if (n.type !== 'step') return n;
    const id = n.id === from ? to : n.id;
    if (!n.data.dangling) return id === n.id ? n : { ...n, id, data: { ...n.data, id } };
    const rest = Object.entries(n.data.dangling).filter(([handle, target]) => {
      if (target !== to) return true;
      const slot = slotsOf(n.data.def).find((x) => x.handle === handle);
      moved.push({ id: edgeId(id, handle), source: id, sourceHandle: handle, target: to, label: slot?.label || undefined });
      return false;
    });
    return { ...n, id, data: { id, def: n.data.def, ...(rest.length ? { dangling: Object.fromEntries(rest) } : {}) } };
  });
  if (start === to && !moved.some((e) => e.source === ENTRY)) moved.push({ id: edgeId(ENTRY, 'start'), source: ENTRY, sourceHandle: 'start', target: to });
  return { nodes: renamed, edges: moved, start: start === from ? to : start };
}

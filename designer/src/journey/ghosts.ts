// Nodes a version diff removed: drawn faded below the graph shown, where they stood left
// to right in the older version, with dashed connections to the nodes they were linked
// to. They are never part of the definition.

import type { Edge } from '@xyflow/react';
import { ENTRY, toGraph, type CanvasNode } from './graph';
import { slotsOf } from './kinds';
import { layout } from './layout';
import type { JourneyDef } from './types';

/** Canvas ids of removed nodes start with this (never a valid node id). */
export const GHOST = 'ghost:';

export type GhostNode = Extract<CanvasNode, { type: 'ghost' }>;

export interface Ghosts {
  nodes: GhostNode[];
  edges: Edge[];
}

export const NO_GHOSTS: Ghosts = { nodes: [], edges: [] };

/** The `removed` nodes of `older`, placed below `shown` (the graph on the canvas). */
export function ghostsOf(older: JourneyDef, removed: string[], shown: CanvasNode[]): Ghosts {
  const old = toGraph(older);
  const laid = layout(old.nodes, old.edges);
  const bottom = shown.reduce((y, n) => Math.max(y, n.position.y + (n.measured?.height ?? 90)), 0) + 80;
  const gone = new Set(removed.filter((id) => id in older.nodes));
  const present = new Set(shown.map((n) => n.id));
  const nodes: GhostNode[] = [];
  let lastX = -Infinity;
  let row = 0;
  for (const n of laid.filter((n) => gone.has(n.id)).sort((a, b) => a.position.x - b.position.x)) {
    // Two removed nodes of the same column go one under the other.
    row = n.position.x - lastX < 250 ? row + 1 : 0;
    lastX = n.position.x;
    nodes.push({
      id: GHOST + n.id,
      type: 'ghost',
      position: { x: n.position.x, y: bottom + row * 120 },
      data: { id: n.id, def: older.nodes[n.id] },
      draggable: false,
      selectable: false,
      deletable: false,
      connectable: false,
    });
  }
  const canvasId = (id: string) => (gone.has(id) ? GHOST + id : present.has(id) ? id : undefined);
  const edges: Edge[] = [];
  for (const e of old.edges) {
    if (!gone.has(e.source) && !gone.has(e.target)) continue;
    const source = canvasId(e.source);
    const target = canvasId(e.target);
    if (!source || !target) continue;
    // A node still there may have lost the slot the removed node hung from: draw it from
    // the node's first handle then.
    const sourceNode = shown.find((n) => n.id === source);
    const handle =
      gone.has(e.source) || source === ENTRY || (sourceNode?.type === 'step' && slotsOf(sourceNode.data.def).some((s) => s.handle === e.sourceHandle))
        ? e.sourceHandle
        : sourceNode?.type === 'step'
          ? (slotsOf(sourceNode.data.def)[0]?.handle ?? null)
          : null;
    if (handle === null || handle === undefined) continue;
    edges.push({ id: `${GHOST}${e.id}`, source, sourceHandle: handle, target, className: 'ghost-edge', selectable: false, deletable: false, focusable: false });
  }
  return { nodes, edges };
}

// Automatic layout, left to right (dagre): the entry on the left, each branch below the
// one before, edges crossing as little as dagre manages.

import dagre from '@dagrejs/dagre';
import type { Edge } from '@xyflow/react';
import type { CanvasNode } from './graph';

export const NODE_WIDTH = 230;
export const NODE_HEIGHT = 84;

export function layout(nodes: CanvasNode[], edges: Edge[]): CanvasNode[] {
  const g = new dagre.graphlib.Graph();
  g.setGraph({ rankdir: 'LR', nodesep: 36, ranksep: 90, marginx: 20, marginy: 20 });
  g.setDefaultEdgeLabel(() => ({}));
  for (const node of nodes) g.setNode(node.id, { width: NODE_WIDTH, height: NODE_HEIGHT });
  for (const edge of edges) if (g.hasNode(edge.source) && g.hasNode(edge.target)) g.setEdge(edge.source, edge.target);
  dagre.layout(g);
  return nodes.map((node) => {
    const at = g.node(node.id);
    return at ? { ...node, position: { x: at.x - NODE_WIDTH / 2, y: at.y - NODE_HEIGHT / 2 } } : node;
  });
}

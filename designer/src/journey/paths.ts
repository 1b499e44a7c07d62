// A profile's path through the graph, from the node ids of its steps in order (a
// simulation's steps, an instance's step events, a replay's `node:status->branch`).

import { ENTRY } from './graph';

export interface Path {
  /** Each node visited, with the order of its first visit. */
  visits: Map<string, number>;
  /** The connections taken, as `source>target`. */
  edges: Set<string>;
}

export const NO_PATH: Path = { visits: new Map(), edges: new Set() };

export function pathOf(nodes: string[]): Path {
  const visits = new Map<string, number>();
  const edges = new Set<string>();
  let previous: string | undefined;
  for (const raw of nodes) {
    const node = raw === 'entry' ? ENTRY : raw;
    if (!visits.has(node)) visits.set(node, visits.size);
    if (previous !== undefined && previous !== node) edges.add(`${previous}>${node}`);
    previous = node;
  }
  return { visits, edges };
}

/** The node of a replay's path item (`has_purchased:passed->otherwise` -> `has_purchased`). */
export function nodeOfReplayItem(item: string): string {
  return item.split(':')[0];
}

/** An instance's step events as a path to draw: each node with the time, status, code
 * and branch of its step. */
export function notesOfSteps(steps: { node: string; at: string; status: string; code?: string | null; detail?: Record<string, unknown> | null }[]): { node: string; note: string }[] {
  return steps.map((s) => ({
    node: s.node,
    note: `${new Date(s.at).toLocaleString()} · ${s.status}${s.code ? ` ${s.code}` : ''}${s.detail && typeof s.detail.branch === 'string' ? ` → ${s.detail.branch}` : ''}`,
  }));
}

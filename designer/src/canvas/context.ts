// What the canvas draws on top of the definition: problems and live counts per node, a
// version diff, a profile's path. Kept out of the nodes' data, so the definition
// round-trips untouched.

import { createContext } from 'react';
import type { NodeReport } from '../api';
import { NO_PATH, type Path } from '../journey/paths';
import type { Problem } from '../journey/types';

export interface EntryCounts {
  entered: number;
  discarded: number;
  codes: Record<string, number>;
}

export interface Overlay {
  problems: Map<string, Problem[]>;
  counts: Map<string, NodeReport>;
  entry?: EntryCounts;
  /** Nodes a version diff touches: `added` or `changed`. */
  diff: Map<string, string>;
  /** The path being shown (a simulated profile, an instance). */
  path: Path;
  /** The step shown at each node of the path (time, status, branch, why). */
  pathNotes: Map<string, string>;
}

export const OverlayContext = createContext<Overlay>({ problems: new Map(), counts: new Map(), diff: new Map(), path: NO_PATH, pathNotes: new Map() });

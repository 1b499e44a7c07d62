// What the canvas draws on top of the definition: problems and live counts per node.
// Kept out of the nodes' data, so the definition round-trips untouched.

import { createContext } from 'react';
import type { NodeReport } from '../api';
import type { Problem } from '../journey/types';

export interface Overlay {
  problems: Map<string, Problem[]>;
  counts: Map<string, NodeReport>;
  /** Nodes a version diff touches: `added`, `removed` or `changed`. */
  diff: Map<string, string>;
  /** Nodes on the simulated path being shown, in order of visit. */
  path: Map<string, number>;
}

export const OverlayContext = createContext<Overlay>({ problems: new Map(), counts: new Map(), diff: new Map(), path: new Map() });

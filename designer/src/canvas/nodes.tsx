// The canvas's node shapes: the entry, and one step shape coloured by kind with a handle
// per outgoing slot (branches, otherwise, on error...), its problems and its live counts;
// and the faded copy of a node a version diff removed.

import { Handle, Position, type NodeProps } from '@xyflow/react';
import { useContext } from 'react';
import type { CanvasNode, EntryData, StepData } from '../journey/graph';
import { ENTRY } from '../journey/graph';
import { entrySummary, kindOf, slotsOf, summaryOf, type Slot } from '../journey/kinds';
import { OverlayContext } from './context';

function Problems({ id }: { id: string }) {
  const { problems } = useContext(OverlayContext);
  const list = problems.get(id);
  if (!list || list.length === 0) return null;
  return (
    <div className="node-problems" title={list.map((p) => `${p.path}: ${p.message}`).join('\n')}>
      ⚠ {list.length === 1 ? list[0].message : `${list.length} problems`}
    </div>
  );
}

/** One handle per way out, spread down the node's right side. */
function SlotHandles({ slots, connectable = true }: { slots: Slot[]; connectable?: boolean }) {
  return (
    <>
      {slots.map((slot, i) => (
        <Handle
          key={slot.handle}
          type="source"
          position={Position.Right}
          id={slot.handle}
          isConnectable={connectable}
          className={`slot slot-${slot.handle.split('.')[0]}`}
          style={{ top: slots.length === 1 ? '50%' : `${((i + 1) * 100) / (slots.length + 1)}%` }}
          title={slot.label || 'next'}
        />
      ))}
    </>
  );
}


/** A message node's strongest delivery feedback: clicks, else opens, else deliveries. */
function engagement(feedback: Record<string, number> | undefined): string | null {
  for (const kind of ['clicked', 'opened', 'delivered']) {
    const n = feedback?.[kind] ?? 0;
    if (n > 0) return `${kind} ${n}`;
  }
  return null;
}

export function EntryNode({ data, selected }: NodeProps<Extract<CanvasNode, { type: 'entry' }>>) {
  const { problems, entry, path } = useContext(OverlayContext);
  const { title, detail } = entrySummary((data as EntryData).entry);
  const bad = (problems.get(ENTRY) ?? []).length > 0;
  return (
    <div className={`node entry${selected ? ' selected' : ''}${bad ? ' invalid' : ''}${path.visits.has(ENTRY) ? ' on-path' : ''}`} data-node={ENTRY}>
      <div className="node-head">
        <span className="badge" style={{ background: '#1e3a8a' }} aria-hidden>⇥</span>
        <span className="node-kind">Entry</span>
      </div>
      <div className="node-title">{title}</div>
      {detail && <div className="node-summary">{detail}</div>}
      {entry && (
        <div className="counts" data-counts={ENTRY}>
          <span title="entered">→ {entry.entered}</span>
          {entry.discarded > 0 && <span className="failed" title={Object.entries(entry.codes).map(([c, n]) => `${c}: ${n}`).join('\n')}>discarded {entry.discarded}</span>}
        </div>
      )}
      <Problems id={ENTRY} />
      <Handle type="source" position={Position.Right} id="start" />
    </div>
  );
}

export function StepNode({ data, selected }: NodeProps<Extract<CanvasNode, { type: 'step' }>>) {
  const { problems, counts, diff, path, pathNotes } = useContext(OverlayContext);
  const { id, def } = data as StepData;
  const kind = kindOf(def.type);
  const slots = slotsOf(def);
  const count = counts.get(id);
  const bad = (problems.get(id) ?? []).length > 0;
  const label = typeof def.label === 'string' && def.label ? def.label : id;
  const change = diff.get(id);
  const visit = path.visits.get(id);
  const note = pathNotes.get(id);
  return (
    <div
      className={`node step kind-${def.type}${selected ? ' selected' : ''}${bad ? ' invalid' : ''}${change ? ` diff-${change}` : ''}${visit !== undefined ? ' on-path' : ''}`}
      style={{ borderLeftColor: kind.color, minHeight: Math.max(72, 22 * slots.length + 18) }}
      data-node={id}
    >
      <Handle type="target" position={Position.Left} />
      <div className="node-head">
        <span className="badge" style={{ background: kind.color }} aria-hidden>{kind.glyph}</span>
        <span className="node-kind">{kind.title}</span>
        {visit !== undefined && <span className="visit">{visit + 1}</span>}
        {change && <span className={`diff-tag diff-${change}`}>{change}</span>}
      </div>
      <div className="node-title">{label}</div>
      <div className="node-summary">{summaryOf(def)}</div>
      {count && (
        <div className="counts" data-counts={id}>
          <span title="passed">✓ {count.passed}</span>
          <span title="here now">◷ {count.current}</span>
          {(count.skipped ?? 0) > 0 && <span className="skipped" title={Object.entries(count.skip_codes ?? {}).map(([c, n]) => `${c}: ${n}`).join('\n')}>not sent {count.skipped}</span>}
          {engagement(count.feedback) && <span className="engaged" title={Object.entries(count.feedback ?? {}).map(([k, n]) => `${k}: ${n}`).join('\n')}>{engagement(count.feedback)}</span>}
          {count.failed > 0 && <span className="failed" title={Object.entries(count.error_codes).map(([c, n]) => `${c}: ${n}`).join('\n')}>✗ {count.failed}</span>}
        </div>
      )}
      {note && <div className="path-note" data-path-note={id}>{note}</div>}
      <Problems id={id} />
      <SlotHandles slots={slots} />
    </div>
  );
}

/** A node a version diff removed: faded, dashed, with its handles for the dashed edges. */
export function GhostNode({ data }: NodeProps<Extract<CanvasNode, { type: 'ghost' }>>) {
  const { id, def } = data;
  const kind = kindOf(def.type);
  const slots = slotsOf(def);
  const label = typeof def.label === 'string' && def.label ? def.label : id;
  return (
    <div className={`node step ghost kind-${def.type} diff-removed`} style={{ borderLeftColor: kind.color }} data-node={id} data-ghost={id}>
      <Handle type="target" position={Position.Left} isConnectable={false} />
      <div className="node-head">
        <span className="badge" style={{ background: kind.color }} aria-hidden>{kind.glyph}</span>
        <span className="node-kind">{kind.title}</span>
        <span className="diff-tag diff-removed">removed</span>
      </div>
      <div className="node-title">{label}</div>
      <div className="node-summary">{summaryOf(def)}</div>
      <SlotHandles slots={slots} connectable={false} />
    </div>
  );
}

export const nodeTypes = { entry: EntryNode, step: StepNode, ghost: GhostNode };

// One journey on the canvas: edit its draft (palette, connections, properties panel,
// definition text), see its problems on the nodes as you edit, save and publish, and
// watch its live counts. Everything goes through the engine's API.

import {
  Background,
  Controls,
  MiniMap,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
  type Connection,
  type Edge,
  type EdgeChange,
  type NodeChange,
} from '@xyflow/react';
import { useCallback, useEffect, useMemo, useRef, useState } from 'react';
import YAML from 'yaml';
import * as api from '../api';
import { OverlayContext, type Overlay } from '../canvas/context';
import { nodeTypes } from '../canvas/nodes';
import { ENTRY, drawn, edgeId, freshId, renameNode, stepIds, unconnected, nodeOfProblem, reconnect, toDefinition, toGraph, type CanvasNode, type JourneyMeta } from '../journey/graph';
import { KINDS, kindOf, slotsOf } from '../journey/kinds';
import { layout } from '../journey/layout';
import { variants, type Schema } from '../journey/schema';
import type { JourneyDef, JsonObject, NodeDef, Problem } from '../journey/types';
import { Live } from './Live';
import { SchemaForm } from './SchemaForm';
import { Simulate } from './Simulate';
import { Versions } from './Versions';
import { NO_PATH, pathOf } from '../journey/paths';
import { GHOST, NO_GHOSTS, ghostsOf, type GhostNode, type Ghosts } from '../journey/ghosts';

interface Graph {
  meta: JourneyMeta;
  nodes: CanvasNode[];
  edges: Edge[];
  start: string;
}

function load(def: JourneyDef): Graph {
  const g = toGraph(def);
  return { meta: g.meta, nodes: layout(g.nodes, g.edges), edges: g.edges, start: def.start };
}

const KIND_MIME = 'application/x-parcours-kind';

export function Designer({ id }: { id: string }) {
  return (
    <ReactFlowProvider>
      <DesignerInner id={id} />
    </ReactFlowProvider>
  );
}

function DesignerInner({ id }: { id: string }) {
  const flow = useReactFlow();
  const [record, setRecord] = useState<api.JourneyRecord | null>(null);
  const [graph, setGraph] = useState<Graph | null>(null);
  const [past, setPast] = useState<Graph[]>([]);
  const [future, setFuture] = useState<Graph[]>([]);
  const [schema, setSchema] = useState<Schema | null>(null);
  const [problems, setProblems] = useState<Problem[]>([]);
  const [counts, setCounts] = useState<Map<string, api.NodeReport>>(new Map());
  const [report, setReport] = useState<api.Report | null>(null);
  const [pathSteps, setPathSteps] = useState<{ node: string; note: string }[] | null>(null);
  const [diffNodes, setDiffNodes] = useState<Map<string, string>>(new Map());
  // Nodes a version diff removed, drawn (faded, below the graph) beside what is shown.
  const [ghosts, setGhosts] = useState<Ghosts>(NO_GHOSTS);
  // A published version shown instead of the draft (a diff's `to`): read-only.
  const [viewing, setViewing] = useState<{ version: number; draft: Graph } | null>(null);
  const [tab, setTab] = useState<'properties' | 'problems' | 'live' | 'simulate' | 'definition' | 'versions'>('properties');
  const [selected, setSelected] = useState<string | null>(null);
  const [message, setMessage] = useState<{ text: string; error?: boolean } | null>(null);
  const [saved, setSaved] = useState<string>('');
  const [readOnly, setReadOnly] = useState(false);
  const [loadError, setLoadError] = useState<string | null>(null);
  const clipboard = useRef<{ id: string; def: NodeDef }[]>([]);

  const definition = useMemo(() => (graph ? toDefinition(graph.meta, graph.nodes, graph.edges, graph.start) : null), [graph]);
  const text = useMemo(() => (definition ? JSON.stringify(definition) : ''), [definition]);

  // Load the journey, the schema, and whether this token may write.
  useEffect(() => {
    let live = true;
    (async () => {
      try {
        const [r, s] = await Promise.all([api.getJourney(id), api.journeySchema()]);
        if (!live) return;
        setRecord(r);
        setSchema(s as Schema);
        const def = r.draft ?? (r.versions.length ? await api.getVersion(id, r.versions[r.versions.length - 1].version) : null);
        if (def && live) {
          const g = load(def);
          setGraph(g);
          setSaved(JSON.stringify(toDefinition(g.meta, g.nodes, g.edges, g.start)));
        }
      } catch (e) {
        if (live) setLoadError(e instanceof Error ? e.message : String(e));
      }
    })();
    return () => {
      live = false;
    };
  }, [id]);

  // Validate the draft as it changes (debounced).
  useEffect(() => {
    if (!definition) return;
    const timer = setTimeout(async () => {
      try {
        setProblems(await api.validate(definition));
      } catch (e) {
        if (e instanceof api.ApiError && e.status === 403) setReadOnly(true);
      }
    }, 400);
    return () => clearTimeout(timer);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [text]);

  // Live counts, every few seconds.
  useEffect(() => {
    let live = true;
    const poll = async () => {
      try {
        const report = await api.getReport(id);
        const sum = new Map<string, api.NodeReport>();
        for (const v of report.versions) {
          for (const n of v.nodes) {
            const at = sum.get(n.node);
            if (!at) sum.set(n.node, { ...n, error_codes: { ...n.error_codes }, skip_codes: { ...n.skip_codes }, feedback: { ...n.feedback } });
            else {
              at.passed += n.passed;
              at.failed += n.failed;
              at.current += n.current;
              at.waited += n.waited;
              at.skipped += n.skipped ?? 0;
              for (const [c, k] of Object.entries(n.skip_codes ?? {})) at.skip_codes![c] = (at.skip_codes![c] ?? 0) + k;
              for (const [c, k] of Object.entries(n.feedback ?? {})) at.feedback![c] = (at.feedback![c] ?? 0) + k;
              for (const [c, k] of Object.entries(n.error_codes)) at.error_codes[c] = (at.error_codes[c] ?? 0) + k;
            }
          }
        }
        if (live) {
          setCounts(sum);
          setReport(report);
        }
      } catch {
        // A journey without versions has no report yet.
      }
    };
    void poll();
    const timer = setInterval(poll, 3000);
    return () => {
      live = false;
      clearInterval(timer);
    };
  }, [id]);

  const change = useCallback(
    (next: Graph, remember = true) => {
      if (remember && graph) {
        setPast((p) => [...p.slice(-99), graph]);
        setFuture([]);
      }
      setGraph(next);
    },
    [graph],
  );
  const undo = useCallback(() => {
    if (!graph || past.length === 0) return;
    setFuture((f) => [graph, ...f]);
    setGraph(past[past.length - 1]);
    setPast((p) => p.slice(0, -1));
  }, [graph, past]);
  const redo = useCallback(() => {
    if (!graph || future.length === 0) return;
    setPast((p) => [...p, graph]);
    setGraph(future[0]);
    setFuture((f) => f.slice(1));
  }, [graph, future]);

  const onNodesChange = useCallback(
    (all: NodeChange<CanvasNode>[]) => {
      if (!graph) return;
      const isGhost = (c: NodeChange<CanvasNode>) => 'id' in c && c.id.startsWith(GHOST);
      if (all.some(isGhost)) setGhosts((g) => ({ ...g, nodes: applyNodeChanges(all.filter(isGhost), g.nodes as CanvasNode[]) as GhostNode[] }));
      const changes = all.filter((c) => !isGhost(c));
      if (changes.length === 0) return;
      const removed = changes.filter((c) => c.type === 'remove').map((c) => c.id);
      const nodes = applyNodeChanges(changes, graph.nodes);
      const edges = removed.length ? graph.edges.filter((e) => !removed.includes(e.source) && !removed.includes(e.target)) : graph.edges;
      const dragEnd = changes.some((c) => c.type === 'position' && c.dragging === false);
      change({ ...graph, nodes, edges }, removed.length > 0 || dragEnd);
      for (const c of changes) if (c.type === 'select' && c.selected) setSelected(c.id);
      if (removed.includes(selected ?? '')) setSelected(null);
    },
    [graph, change, selected],
  );
  const onEdgesChange = useCallback(
    (changes: EdgeChange[]) => {
      if (!graph) return;
      change({ ...graph, edges: applyEdgeChanges(changes, graph.edges) }, changes.some((c) => c.type === 'remove'));
    },
    [graph, change],
  );
  const onConnect = useCallback(
    (c: Connection) => {
      if (!graph || !c.source || !c.target || c.target === ENTRY) return;
      const handle = c.sourceHandle ?? 'next';
      const source = graph.nodes.find((n) => n.id === c.source);
      const slot = source && source.type === 'step' ? slotsOf(source.data.def).find((s) => s.handle === handle) : undefined;
      // One connection per slot: a new one replaces the old.
      const edges = graph.edges.filter((e) => !(e.source === c.source && (e.sourceHandle ?? 'next') === handle));
      edges.push({ id: edgeId(c.source, handle), source: c.source, sourceHandle: handle, target: c.target, label: slot?.label || undefined });
      change({ ...graph, edges });
    },
    [graph, change],
  );

  const addNode = useCallback(
    (kind: string, position: { x: number; y: number }) => {
      if (!graph) return;
      const taken = new Set(graph.nodes.map((n) => n.id));
      const nodeId = freshId(kind, taken);
      const node: CanvasNode = { id: nodeId, type: 'step', position, data: { id: nodeId, def: kindOf(kind).template() }, selected: true };
      change({ ...graph, nodes: [...graph.nodes.map((n) => ({ ...n, selected: false })), node] });
      setSelected(nodeId);
      setTab('properties');
    },
    [graph, change],
  );

  const setNodeDef = useCallback(
    (nodeId: string, def: NodeDef) => {
      if (!graph) return;
      const node = graph.nodes.find((n) => n.id === nodeId);
      if (!node || node.type !== 'step') return;
      // A branch removed in the form loses its edge, a `next` typed in draws one; the
      // connections drawn on the canvas stay.
      const ids = stepIds(graph.nodes);
      // The form edits the node as the canvas draws it (its slots filled from the edges),
      // so a branch moved or removed in the form takes its connection along.
      const before = drawn(node.data, graph.edges, ids);
      const { edges, dangling } = reconnect(nodeId, before, def, graph.edges, ids, node.data.dangling);
      const nodes = graph.nodes.map((n): CanvasNode => (n.id === nodeId && n.type === 'step' ? { ...n, data: { id: nodeId, def, ...(dangling ? { dangling } : {}) } } : n));
      change({ ...graph, nodes, edges });
    },
    [graph, change],
  );

  /** A node's new id: its connections, the start and the selection follow. */
  const rename = useCallback(
    (from: string, to: string) => {
      if (!graph) return;
      const next = renameNode(graph.nodes, graph.edges, graph.start, from, to);
      change({ ...graph, ...next });
      setSelected(to);
    },
    [graph, change],
  );

  // Keyboard: undo/redo, copy/paste (not while typing in a field).
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      const target = e.target as HTMLElement;
      if (target.closest('input, textarea, select, [contenteditable]')) return;
      const mod = e.ctrlKey || e.metaKey;
      if (!mod || !graph) return;
      const key = e.key.toLowerCase();
      if (key === 'z' && !e.shiftKey) { e.preventDefault(); undo(); }
      else if ((key === 'z' && e.shiftKey) || key === 'y') { e.preventDefault(); redo(); }
      else if (key === 'c') {
        clipboard.current = graph.nodes.filter((n) => n.selected && n.type === 'step').map((n) => ({ id: n.id, def: (n.data as { def: NodeDef }).def }));
      } else if (key === 'v' && clipboard.current.length) {
        e.preventDefault();
        const taken = new Set(graph.nodes.map((n) => n.id));
        const pasted: CanvasNode[] = clipboard.current.map((c, i) => {
          const nodeId = freshId(c.id, taken);
          taken.add(nodeId);
          const def = unconnected(c.def);
          const from = graph.nodes.find((n) => n.id === c.id)?.position ?? { x: 0, y: 0 };
          return { id: nodeId, type: 'step', position: { x: from.x + 40 + i * 10, y: from.y + 60 }, data: { id: nodeId, def }, selected: true };
        });
        change({ ...graph, nodes: [...graph.nodes.map((n) => ({ ...n, selected: false })), ...pasted] });
      }
    };
    window.addEventListener('keydown', onKey);
    return () => window.removeEventListener('keydown', onKey);
  }, [graph, undo, redo, change]);

  const overlay: Overlay = useMemo(() => {
    const byNode = new Map<string, Problem[]>();
    for (const p of problems) {
      const n = nodeOfProblem(p.path);
      if (n) byNode.set(n, [...(byNode.get(n) ?? []), p]);
    }
    const path = pathSteps ? pathOf(pathSteps.map((p) => p.node)) : NO_PATH;
    const pathNotes = new Map<string, string>();
    for (const p of pathSteps ?? []) pathNotes.set(p.node === 'entry' ? ENTRY : p.node, p.note);
    let entry;
    if (report) {
      const codes: Record<string, number> = {};
      for (const v of report.versions) for (const [c, n] of Object.entries(v.discard_codes)) codes[c] = (codes[c] ?? 0) + n;
      entry = { entered: report.versions.reduce((n, v) => n + v.entered, 0), discarded: report.versions.reduce((n, v) => n + v.discarded, 0), codes };
    }
    return { problems: viewing ? new Map() : byNode, counts, entry, diff: diffNodes, path, pathNotes };
  }, [problems, counts, report, pathSteps, diffNodes, viewing]);

  const shownEdges = useMemo(() => {
    if (!graph) return [];
    const edges = overlay.path.edges.size === 0 ? graph.edges : graph.edges.map((e) => (overlay.path.edges.has(`${e.source}>${e.target}`) ? { ...e, className: 'on-path', animated: true } : e));
    return ghosts.edges.length ? [...edges, ...ghosts.edges] : edges;
  }, [graph, overlay.path, ghosts]);

  const showDiff = async (changes: api.Change[] | null, from: number, to: number | 'draft') => {
    const nodes = new Map<string, string>();
    const removed: string[] = [];
    for (const c of changes ?? []) {
      const m = /^nodes\.([^.[]+)(.*)$/.exec(c.path);
      if (m) nodes.set(m[1], m[2] === '' ? c.change : 'changed');
      else if (c.path === 'entry' || c.path.startsWith('entry.') || c.path === 'start') nodes.set(ENTRY, 'changed');
      if (m && m[2] === '' && c.change === 'removed') removed.push(m[1]);
    }
    setDiffNodes(nodes);
    const draft = viewing?.draft ?? graph;
    let shown = draft;
    if (changes && to !== 'draft' && draft) {
      const def = await api.getVersion(id, to);
      setViewing({ version: to, draft });
      shown = load(def);
      setGraph(shown);
    } else if (viewing) {
      setGraph(viewing.draft);
      setViewing(null);
    }
    setGhosts(removed.length && shown ? ghostsOf(await api.getVersion(id, from), removed, shown.nodes) : NO_GHOSTS);
  };

  const save = async (): Promise<boolean> => {
    if (!definition) return false;
    try {
      const answer = await api.putDraft(id, definition);
      setSaved(text);
      setProblems(answer.problems);
      setMessage({ text: answer.valid ? 'Draft saved.' : `Draft saved with ${answer.problems.length} problem(s).` });
      return true;
    } catch (e) {
      setMessage({ text: `Not saved: ${e instanceof Error ? e.message : String(e)}`, error: true });
      return false;
    }
  };
  const doPublish = async () => {
    const note = window.prompt('What changed in this version? (kept in the version history)', '');
    if (note === null) return;
    if (!(await save())) return;
    try {
      const { version } = await api.publish(id, note);
      setRecord(await api.getJourney(id));
      setMessage({ text: `Published version ${version}.` });
    } catch (e) {
      if (e instanceof api.ApiError && e.problems) setProblems(e.problems);
      setMessage({ text: `Not published: ${e instanceof Error ? e.message : String(e)}`, error: true });
    }
  };
  const operate = async (action: 'pause' | 'resume' | 'close' | 'stop') => {
    const why = { pause: 'Pause this journey? Entries and actions are held until it resumes.', resume: 'Resume this journey? What was held is released in order.', close: 'Close this journey? No new entries; running instances finish.', stop: 'Stop this journey? No new entries, and every live instance ends now.' }[action];
    if (!window.confirm(why)) return;
    try {
      await api.lifecycle(id, action);
      setRecord(await api.getJourney(id));
      setMessage({ text: `Journey ${action === 'stop' ? 'stopped' : `${action}d`}.` });
    } catch (e) {
      setMessage({ text: e instanceof Error ? e.message : String(e), error: true });
    }
  };

  const onDrop = (e: React.DragEvent) => {
    e.preventDefault();
    const kind = e.dataTransfer.getData(KIND_MIME);
    if (kind) addNode(kind, flow.screenToFlowPosition({ x: e.clientX, y: e.clientY }));
  };

  const focusProblem = (p: Problem) => {
    const n = nodeOfProblem(p.path);
    if (!graph) return;
    if (n) {
      change({ ...graph, nodes: graph.nodes.map((x) => ({ ...x, selected: x.id === n })) }, false);
      setSelected(n);
      const node = graph.nodes.find((x) => x.id === n);
      if (node) flow.setCenter(node.position.x + 115, node.position.y + 40, { zoom: 1, duration: 300 });
    } else setSelected(null);
    setTab('properties');
    setTimeout(() => {
      // The field itself, or the nearest object holding it (a branch's `next` is drawn on
      // the canvas, not in the form).
      for (let at = p.path; at; at = at.replace(/(\.[^.[]*|\[\d+\])$/, '')) {
        const q = `[data-field="${CSS.escape(at)}"]`;
        const field = document.querySelector<HTMLElement>(`${q} input, ${q} textarea, ${q} select, ${q} button`);
        if (field) {
          field.scrollIntoView({ block: 'center' });
          field.focus();
          return;
        }
        if (!/[.[]/.test(at)) return;
      }
    }, 350);
  };

  if (loadError) return <div className="page"><p className="error" role="alert">{loadError}</p></div>;
  if (!graph || !definition || !schema || !record) return <div className="page"><p>Loading…</p></div>;
  const dirty = !viewing && text !== saved;
  const locked = readOnly || viewing !== null;
  const status = record.status;

  return (
    <div className="designer">
      <div className="toolbar" role="toolbar" aria-label="Journey">
        <h1>{definition.name ?? id}</h1>
        <span className={`status status-${status}`}>{status}</span>
        {record.versions.length > 0 && <span className="muted">v{record.versions[record.versions.length - 1].version}</span>}
        <span className={problems.length ? 'error' : 'ok'} aria-live="polite" data-testid="validity">
          {problems.length ? `${problems.length} problem${problems.length === 1 ? '' : 's'}` : 'valid'}
        </span>
        <span className="spacer" />
        <button type="button" onClick={undo} disabled={past.length === 0} title="Undo (Ctrl+Z)">Undo</button>
        <button type="button" onClick={redo} disabled={future.length === 0} title="Redo (Ctrl+Shift+Z)">Redo</button>
        <button type="button" onClick={() => { change({ ...graph, nodes: layout(graph.nodes, graph.edges) }); setTimeout(() => flow.fitView({ duration: 300, maxZoom: 1, padding: 0.15 }), 50); }}>Arrange</button>
        {viewing && (
          <span className="viewing">
            Showing version {viewing.version} (read-only){' '}
            <button type="button" onClick={() => void showDiff(null, 0, 'draft')}>Back to the draft</button>
          </span>
        )}
        {!locked && (
          <>
            <button type="button" onClick={() => void save()} disabled={!dirty}>{dirty ? 'Save draft' : 'Saved'}</button>
            <button type="button" className="primary" onClick={() => void doPublish()} disabled={problems.length > 0}>Publish…</button>
            {(status === 'live') && <button type="button" onClick={() => void operate('pause')}>Pause</button>}
            {status === 'paused' && <button type="button" onClick={() => void operate('resume')}>Resume</button>}
            {(status === 'live' || status === 'paused') && <button type="button" onClick={() => void operate('close')}>Close</button>}
            {(status === 'live' || status === 'paused' || status === 'closed') && <button type="button" className="danger" onClick={() => void operate('stop')}>Stop</button>}
          </>
        )}
        {readOnly && <span className="muted">read-only</span>}
      </div>
      {message && (
        <div className={`message${message.error ? ' error' : ''}`} role="status">
          {message.text} <button type="button" className="link" onClick={() => setMessage(null)} aria-label="Dismiss">×</button>
        </div>
      )}
      <div className="workspace">
        {!locked && (
          <nav className="palette" aria-label="Node kinds">
            <h2>Add</h2>
            {KINDS.map((k) => (
              <div
                key={k.kind}
                className="palette-item"
                draggable
                role="button"
                tabIndex={0}
                data-kind={k.kind}
                onDragStart={(e) => { e.dataTransfer.setData(KIND_MIME, k.kind); e.dataTransfer.effectAllowed = 'move'; }}
                onKeyDown={(e) => { if (e.key === 'Enter') { const c = flow.screenToFlowPosition({ x: window.innerWidth / 2, y: window.innerHeight / 2 }); addNode(k.kind, c); } }}
                title={`Drag onto the canvas (or press Enter) to add a ${k.title.toLowerCase()}`}
              >
                <span className="badge" style={{ background: k.color }} aria-hidden>{k.glyph}</span> {k.title}
              </div>
            ))}
          </nav>
        )}
        <section className="canvas" aria-label="Journey graph" onDragOver={(e) => { e.preventDefault(); e.dataTransfer.dropEffect = 'move'; }} onDrop={onDrop}>
          <OverlayContext.Provider value={overlay}>
            <ReactFlow
              nodes={ghosts.nodes.length ? [...graph.nodes, ...ghosts.nodes] : graph.nodes}
              edges={shownEdges}
              nodeTypes={nodeTypes}
              onNodesChange={onNodesChange}
              onEdgesChange={onEdgesChange}
              onConnect={onConnect}
              onPaneClick={() => setSelected(null)}
              nodesDraggable={!locked}
              nodesConnectable={!locked}
              elementsSelectable
              deleteKeyCode={locked ? null : ['Delete', 'Backspace']}
              fitView
              fitViewOptions={{ maxZoom: 1, padding: 0.15 }}
              minZoom={0.2}
              maxZoom={2}
              defaultEdgeOptions={{ type: 'smoothstep' }}
              proOptions={{ hideAttribution: true }}
            >
              <Background gap={20} />
              <Controls />
              <MiniMap pannable zoomable nodeColor={(n) => (n.type === 'entry' ? '#1e3a8a' : kindOf(((n.data as { def?: NodeDef }).def?.type) ?? '').color)} />
            </ReactFlow>
          </OverlayContext.Provider>
        </section>
        <aside className="side">
          <div className="tabs" role="tablist">
            {(['properties', 'problems', 'live', 'simulate', 'definition', 'versions'] as const).map((t) => (
              <button key={t} type="button" role="tab" aria-selected={tab === t} className={tab === t ? 'active' : ''} onClick={() => setTab(t)}>
                {t === 'problems' ? `Problems (${problems.length})` : t[0].toUpperCase() + t.slice(1)}
              </button>
            ))}
          </div>
          <div className="tab-body" role="tabpanel">
            {tab === 'properties' && (
              <Properties
                schema={schema}
                graph={graph}
                selected={selected}
                problems={problems}
                readOnly={locked}
                onNode={setNodeDef}
                onGraph={(g) => change(g)}
                onRename={rename}
              />
            )}
            {tab === 'problems' && <ProblemList problems={problems} onPick={focusProblem} />}
            {tab === 'live' && (
              <Live
                id={id}
                node={selected}
                report={report}
                onPath={setPathSteps}
                test={record.test}
                entryEvent={typeof definition.entry.event === 'string' ? definition.entry.event : 'signup'}
                readOnly={locked}
                onChanged={() => void api.getJourney(id).then(setRecord)}
              />
            )}
            {tab === 'simulate' && (
              <Simulate
                id={id}
                entryEvent={typeof definition.entry.event === 'string' ? definition.entry.event : 'signup'}
                prepare={async () => (viewing ? false : dirty ? save() : true)}
                onPath={setPathSteps}
              />
            )}
            {tab === 'definition' && <DefinitionText definition={definition} readOnly={locked} onApply={(def) => change(load(def))} />}
            {tab === 'versions' && <Versions id={id} record={record} onDiff={(c, from, to) => void showDiff(c, from, to)} />}
          </div>
        </aside>
      </div>
    </div>
  );
}

function Properties({ schema, graph, selected, problems, readOnly, onNode, onGraph, onRename }: {
  schema: Schema; graph: Graph; selected: string | null; problems: Problem[]; readOnly: boolean;
  onNode: (id: string, def: NodeDef) => void; onGraph: (g: Graph) => void; onRename: (from: string, to: string) => void;
}) {
  const node = graph.nodes.find((n) => n.id === selected);
  if (node && node.type === 'step') {
    const ids = stepIds(graph.nodes);
    const def = drawn(node.data, graph.edges, ids);
    const variant = variants(schema, 'NodeDef').get(def.type);
    return (
      <div>
        <h2><span className="badge" style={{ background: kindOf(def.type).color }} aria-hidden>{kindOf(def.type).glyph}</span> {kindOf(def.type).title} <code>{node.id}</code></h2>
        {!readOnly && <RenameNode key={node.id} id={node.id} taken={ids} onRename={onRename} />}
        {variant ? (
          <SchemaForm
            root={schema}
            schema={variant}
            value={def}
            prefix={`nodes.${node.id}`}
            problems={problems}
            readOnly={readOnly}
            skip={['next', 'otherwise', 'on_error', 'on_timeout']}
            onChange={(v) => onNode(node.id, v as NodeDef)}
          />
        ) : (
          <p>Unknown node kind {def.type}.</p>
        )}
        <p className="help">Connections (next, branches, otherwise, on error, timeout) are drawn on the canvas: drag from a node's right-hand handles.</p>
      </div>
    );
  }
  const entries = variants(schema, 'EntryDef');
  const entry = graph.meta.entry;
  const setMeta = (meta: JourneyMeta) => onGraph({ ...graph, meta, nodes: graph.nodes.map((n) => (n.type === 'entry' ? { ...n, data: { ...n.data, entry: meta.entry } } : n)) });
  const metaProps = (schema.properties ?? {}) as Record<string, Schema>;
  return (
    <div>
      <h2>Journey</h2>
      <SchemaForm root={schema} schema={{ properties: { name: metaProps.name ?? {}, description: metaProps.description ?? {} } }} value={graph.meta as unknown as JsonObject} prefix="" problems={[]} readOnly={readOnly} onChange={(v) => setMeta({ ...graph.meta, name: v.name as string | undefined, description: v.description as string | undefined })} />
      <h3>Entry</h3>
      <div className="field">
        <label htmlFor="entry-type">type</label>
        <select id="entry-type" value={entry.type} disabled={readOnly} onChange={(e) => setMeta({ ...graph.meta, entry: { type: e.target.value } })}>
          {[...entries.keys()].map((k) => <option key={k} value={k}>{k}</option>)}
        </select>
      </div>
      {entries.get(entry.type) && (
        <SchemaForm root={schema} schema={entries.get(entry.type) as Schema} value={entry} prefix="entry" problems={problems} readOnly={readOnly} onChange={(v) => setMeta({ ...graph.meta, entry: { ...v, type: entry.type } })} />
      )}
      <h3>Properties</h3>
      <SchemaForm root={schema} schema={{ $ref: '#/$defs/Properties' }} value={(graph.meta.properties ?? {}) as JsonObject} prefix="properties" problems={problems} readOnly={readOnly} onChange={(v) => setMeta({ ...graph.meta, properties: v })} />
    </div>
  );
}

/** Node ids are names in expressions (`actions.send_welcome`) and paths. */
const NODE_ID = /^[A-Za-z_][A-Za-z0-9_]*$/;

function RenameNode({ id, taken, onRename }: { id: string; taken: Set<string>; onRename: (from: string, to: string) => void }) {
  const [name, setName] = useState(id);
  const problem = name === id ? null : !NODE_ID.test(name) ? 'letters, digits and _, not starting with a digit' : name === 'entry' ? '`entry` names the entry in step events' : taken.has(name) ? `${name} is taken` : null;
  return (
    <form className="row rename" onSubmit={(e) => { e.preventDefault(); if (!problem && name !== id) onRename(id, name); }}>
      <label htmlFor="node-id">id</label>
      <input id="node-id" type="text" value={name} aria-invalid={problem !== null} onChange={(e) => setName(e.target.value)} />
      <button type="submit" disabled={problem !== null || name === id}>Rename</button>
      {problem && <div className="field-problem" role="alert">{problem}</div>}
    </form>
  );
}

function ProblemList({ problems, onPick }: { problems: Problem[]; onPick: (p: Problem) => void }) {
  if (problems.length === 0) return <p className="ok">No problem: the draft can be published.</p>;
  return (
    <ul className="problems">
      {problems.map((p) => (
        <li key={p.path + p.message}>
          <button type="button" className="link" onClick={() => onPick(p)}>
            <code>{p.path || '(journey)'}</code>
          </button>{' '}
          {p.message}
        </li>
      ))}
    </ul>
  );
}

function DefinitionText({ definition, readOnly, onApply }: { definition: JourneyDef; readOnly: boolean; onApply: (def: JourneyDef) => void }) {
  const [format, setFormat] = useState<'yaml' | 'json'>('yaml');
  const shown = useMemo(() => (format === 'yaml' ? YAML.stringify(definition) : JSON.stringify(definition, null, 2)), [definition, format]);
  const [text, setText] = useState(shown);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => setText(shown), [shown]);
  const apply = () => {
    try {
      const value = format === 'yaml' ? YAML.parse(text) : JSON.parse(text);
      if (!value || typeof value !== 'object' || typeof value.nodes !== 'object' || !value.entry) throw new Error('a journey needs `entry`, `start` and `nodes`');
      setError(null);
      onApply(value as JourneyDef);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <div className="definition">
      <div className="row">
        <label><input type="radio" checked={format === 'yaml'} onChange={() => setFormat('yaml')} /> YAML</label>
        <label><input type="radio" checked={format === 'json'} onChange={() => setFormat('json')} /> JSON</label>
        <span className="spacer" />
        {!readOnly && <button type="button" onClick={apply} disabled={text === shown}>Apply to canvas</button>}
      </div>
      <textarea aria-label="Definition" spellCheck={false} value={text} readOnly={readOnly} onChange={(e) => setText(e.target.value)} />
      {error && <p className="error" role="alert">{error}</p>}
    </div>
  );
}

// The version history, and what changed between two versions (or a version and the
// draft), highlighted on the canvas.

import { useState } from 'react';
import * as api from '../api';

export function Versions({ id, record, onDiff }: { id: string; record: api.JourneyRecord; onDiff: (changes: api.Change[] | null, from: number, to: number | 'draft') => void }) {
  const versions = record.versions;
  const [from, setFrom] = useState(versions.length ? versions[versions.length - 1].version : 0);
  const [to, setTo] = useState<number | 'draft'>('draft');
  const [changes, setChanges] = useState<api.Change[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  if (versions.length === 0) return <p>Not published yet.</p>;
  const compare = async () => {
    setError(null);
    try {
      const r = await api.diff(id, from, to);
      setChanges(r.changes);
      onDiff(r.changes, from, to);
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <div>
      <h2>Compare</h2>
      <div className="row">
        <label htmlFor="diff-from">From</label>
        <select id="diff-from" value={from} onChange={(e) => setFrom(Number(e.target.value))}>
          {versions.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}
        </select>
        <label htmlFor="diff-to">to</label>
        <select id="diff-to" value={String(to)} onChange={(e) => setTo(e.target.value === 'draft' ? 'draft' : Number(e.target.value))}>
          <option value="draft">the draft</option>
          {versions.map((v) => <option key={v.version} value={v.version}>v{v.version}</option>)}
        </select>
        <button type="button" onClick={() => void compare()}>Show</button>
      </div>
      {error && <p className="error" role="alert">{error}</p>}
      {changes && (
        <>
          {changes.length === 0 ? <p>No difference.</p> : (
            <ul className="changes">
              {changes.map((c) => (
                <li key={c.path} className={`change-${c.change}`}>
                  <code>{c.path}</code> {c.change}
                  {c.change === 'changed' && <div className="muted">{JSON.stringify(c.from)} → {JSON.stringify(c.to)}</div>}
                </li>
              ))}
            </ul>
          )}
          <button type="button" onClick={() => { setChanges(null); onDiff(null, from, 'draft'); }}>Clear</button>
        </>
      )}
      <h2>History</h2>
      <ol className="versions" reversed>
        {[...versions].reverse().map((v) => (
          <li key={v.version}>
            <strong>v{v.version}</strong> <span className={`status status-${v.status}`}>{v.status}</span>
            <div className="muted">{v.published_at ? new Date(v.published_at).toLocaleString() : ''} · {v.published_by ?? 'local'}{v.running_instances ? ` · ${v.running_instances} running` : ''}</div>
            {v.note && <div>{v.note}</div>}
          </li>
        ))}
      </ol>
    </div>
  );
}

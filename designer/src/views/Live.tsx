// The journey live: entries and errors by hour, the instances at the selected node and
// the path of one of them drawn on the canvas.

import { useEffect, useState } from 'react';
import * as api from '../api';
import { notesOfSteps } from '../journey/paths';
import { ProfileSearch, TestMode } from './Operations';

export function HourlyChart({ hourly }: { hourly: api.Report['hourly'] }) {
  const hours = hourly.slice(-24);
  if (hours.length === 0) return <p className="muted">No entry yet.</p>;
  const top = Math.max(1, ...hours.map((h) => Math.max(h.entered, h.failed)));
  const w = 14;
  return (
    <figure className="chart">
      <svg width={hours.length * (w + 4)} height={90} role="img" aria-label={`Entries and errors per hour, last ${hours.length} hours`}>
        {hours.map((h, i) => (
          <g key={h.hour} transform={`translate(${i * (w + 4)},0)`}>
            <title>{`${new Date(h.hour).toLocaleString()}: ${h.entered} entered, ${h.failed} failed`}</title>
            <rect x={0} y={80 - (70 * h.entered) / top} width={w / 2} height={(70 * h.entered) / top} fill="#1d4ed8" />
            <rect x={w / 2} y={80 - (70 * h.failed) / top} width={w / 2} height={(70 * h.failed) / top} fill="#b91c1c" />
          </g>
        ))}
        <line x1={0} x2={hours.length * (w + 4)} y1={80.5} y2={80.5} stroke="#6b7280" />
      </svg>
      <figcaption className="muted"><span className="key entered" /> entered <span className="key failed" /> failed, per hour (latest right)</figcaption>
    </figure>
  );
}

export function Live({ id, node, report, onPath, test, entryEvent, readOnly, onChanged }: {
  id: string; node: string | null; report: api.Report | null; onPath: (steps: { node: string; note: string }[] | null) => void;
  test: api.TestMode | undefined; entryEvent: string; readOnly: boolean; onChanged: () => void;
}) {
  const [instances, setInstances] = useState<api.Instance[] | null>(null);
  const [steps, setSteps] = useState<{ instance: string; steps: api.Step[] } | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setInstances(null);
    setSteps(null);
    if (!node || node === '__entry') return;
    api.instancesAt(id, node).then((r) => setInstances(r.instances), (e) => setError(String(e.message ?? e)));
  }, [id, node]);
  const open = async (instance: string) => {
    const r = await api.stepsOf(instance);
    setSteps({ instance, steps: r.steps });
    onPath(notesOfSteps(r.steps));
  };
  return (
    <div>
      <h2>Entries and errors</h2>
      {report ? <HourlyChart hourly={report.hourly} /> : <p className="muted">Not published yet.</p>}
      <h2>Instances here now</h2>
      {error && <p className="error">{error}</p>}
      {!node || node === '__entry' ? (
        <p className="muted">Click a node to list the instances waiting or working there.</p>
      ) : instances === null ? (
        <p>Loading…</p>
      ) : instances.length === 0 ? (
        <p className="muted">No live instance at {node}.</p>
      ) : (
        <ul className="instances">
          {instances.map((i) => (
            <li key={i.id}>
              <button type="button" className="link" onClick={() => void open(i.id)}>{i.profile_id}</button>{' '}
              <span className="muted">v{i.version} · {i.status} since {new Date(i.updated_at).toLocaleString()}{i.wake_at ? ` · wakes ${new Date(i.wake_at).toLocaleString()}` : ''}</span>
            </li>
          ))}
        </ul>
      )}
      {steps && (
        <>
          <h3>Steps of {steps.instance.slice(0, 8)}…</h3>
          <ol className="steps">
            {steps.steps.slice(-12).map((s) => (
              <li key={s.seq}>
                <code>{s.node}</code> {s.status}{s.code ? ` ${s.code}` : ''} <span className="muted">{new Date(s.at).toLocaleString()}</span>
                {s.message && <div className="muted">{s.message}</div>}
              </li>
            ))}
          </ol>
          <button type="button" onClick={() => { setSteps(null); onPath(null); }}>Clear the path</button>
        </>
      )}
      <ProfileSearch id={id} onPath={onPath} />
      <TestMode id={id} test={test} entryEvent={entryEvent} readOnly={readOnly} onChanged={onChanged} />
    </div>
  );
}

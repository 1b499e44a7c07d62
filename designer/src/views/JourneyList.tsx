// Every journey: status, versions, entries and errors today; create one (blank or from
// a copy of another journey); open one.

import { useEffect, useState } from 'react';
import { ApiError, getJourney, getReport, listJourneys, putDraft, type JourneySummary } from '../api';
import type { JourneyDef } from '../journey/types';

interface Row extends JourneySummary {
  today?: { entered: number; failed: number };
}

const BLANK: JourneyDef = {
  entry: { type: 'event', event: 'signup' },
  start: 'done',
  nodes: { done: { type: 'end' } },
};

export function JourneyList() {
  const [rows, setRows] = useState<Row[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    let live = true;
    (async () => {
      try {
        const journeys = await listJourneys();
        if (!live) return;
        setRows(journeys);
        const midnight = new Date();
        midnight.setHours(0, 0, 0, 0);
        const withToday = await Promise.all(
          journeys.map(async (j) => {
            try {
              const report = await getReport(j.id);
              const hours = report.hourly.filter((h) => new Date(h.hour) >= midnight);
              return { ...j, today: { entered: hours.reduce((n, h) => n + h.entered, 0), failed: hours.reduce((n, h) => n + h.failed, 0) } };
            } catch {
              return j;
            }
          }),
        );
        if (live) setRows(withToday);
      } catch (e) {
        if (live) setError(e instanceof Error ? e.message : String(e));
      }
    })();
    return () => {
      live = false;
    };
  }, []);
  return (
    <div className="page">
      <h1>Journeys</h1>
      {error && <p className="error" role="alert">{error}</p>}
      <NewJourney journeys={rows ?? []} />
      {rows === null ? (
        <p>Loading…</p>
      ) : rows.length === 0 ? (
        <p>No journey yet: create one above.</p>
      ) : (
        <table className="list">
          <thead>
            <tr>
              <th scope="col">Journey</th>
              <th scope="col">Status</th>
              <th scope="col">Versions</th>
              <th scope="col">Entries today</th>
              <th scope="col">Errors today</th>
              <th scope="col">Updated</th>
            </tr>
          </thead>
          <tbody>
            {rows.map((j) => (
              <tr key={j.id}>
                <td>
                  <a href={`#/journeys/${encodeURIComponent(j.id)}`}>{j.name ?? j.id}</a>
                  {j.name && <div className="muted">{j.id}</div>}
                </td>
                <td><span className={`status status-${j.status}`}>{j.status}</span></td>
                <td>{j.versions.length}</td>
                <td>{j.today?.entered ?? '…'}</td>
                <td className={j.today && j.today.failed > 0 ? 'error' : ''}>{j.today?.failed ?? '…'}</td>
                <td className="muted">{new Date(j.updated_at).toLocaleString()}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </div>
  );
}

function NewJourney({ journeys }: { journeys: JourneySummary[] }) {
  const [id, setId] = useState('');
  const [from, setFrom] = useState('');
  const [error, setError] = useState<string | null>(null);
  const create = async () => {
    setError(null);
    try {
      let def: JourneyDef = structuredClone(BLANK);
      if (from) {
        const source = await getJourney(from);
        if (source.draft) def = structuredClone(source.draft);
      }
      def.id = id;
      if (from && def.name) def.name = `${def.name} (copy)`;
      await putDraft(id, def);
      window.location.hash = `#/journeys/${encodeURIComponent(id)}`;
    } catch (e) {
      setError(e instanceof ApiError ? `${e.location ? `${e.location}: ` : ''}${e.message}` : String(e));
    }
  };
  return (
    <form className="new-journey" onSubmit={(e) => { e.preventDefault(); void create(); }}>
      <label htmlFor="new-id">New journey id</label>
      <input id="new-id" value={id} pattern="[A-Za-z0-9_\-]+" placeholder="spring_sale" onChange={(e) => setId(e.target.value)} />
      <label htmlFor="new-from">Start from</label>
      <select id="new-from" value={from} onChange={(e) => setFrom(e.target.value)}>
        <option value="">an empty journey</option>
        {journeys.map((j) => (
          <option key={j.id} value={j.id}>a copy of {j.name ?? j.id}</option>
        ))}
      </select>
      <button type="submit" className="primary" disabled={!id}>Create</button>
      {error && <span className="error" role="alert">{error}</span>}
    </form>
  );
}

// Simulation and replay drawn on the graph: run the draft for some profiles on a
// timeline (nothing stored or sent), pick a profile to see its path with the time and
// reason at each node; replay a recorded period against the draft to see who moves.

import { useState } from 'react';
import * as api from '../api';
import { nodeOfReplayItem } from '../journey/paths';

type PathStep = { node: string; note: string };

export function Simulate({ id, entryEvent, prepare, onPath }: { id: string; entryEvent: string; prepare: () => Promise<boolean>; onPath: (steps: PathStep[] | null) => void }) {
  const [profiles, setProfiles] = useState('[\n  {"id": "ada", "attributes": {"orders": 1}},\n  {"id": "bob", "attributes": {}}\n]');
  const [events, setEvents] = useState(`[\n  {"at": "PT0S", "type": "${entryEvent}", "profile_id": "ada"},\n  {"at": "PT1M", "type": "${entryEvent}", "profile_id": "bob"}\n]`);
  const [result, setResult] = useState<api.Simulation | null>(null);
  const [shown, setShown] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const week = new Date(Date.now() - 7 * 86400000).toISOString().slice(0, 16);
  const [from, setFrom] = useState(week);
  const [to, setTo] = useState(new Date().toISOString().slice(0, 16));
  const [replay, setReplay] = useState<api.Replay | null>(null);
  const [pick, setPick] = useState('');

  /** Stored profiles (by id, or by a condition) added to the profiles, each sent the entry
   * event a minute after the previous one. */
  const addStored = async () => {
    setError(null);
    try {
      const list = JSON.parse(profiles) as { id: string }[];
      const timeline = JSON.parse(events) as { at: string }[];
      const ids = (await api.profileIds(pick.trim())).filter((p) => !list.some((x) => x.id === p)).slice(0, 20);
      if (ids.length === 0) throw new Error(`no profile matches ${pick.trim()}`);
      for (const p of ids) {
        const stored = await api.getProfile(p);
        list.push({ id: stored.id, attributes: stored.attributes, ...(stored.timezone ? { timezone: stored.timezone } : {}) } as { id: string });
        timeline.push({ at: `PT${timeline.length}M`, type: entryEvent, profile_id: stored.id } as { at: string });
      }
      setProfiles(JSON.stringify(list, null, 2));
      setEvents(JSON.stringify(timeline, null, 2));
      setPick('');
    } catch (e) {
      setError(e instanceof api.ApiError ? e.message : e instanceof SyntaxError ? `the profiles or the timeline are not JSON: ${e.message}` : String(e instanceof Error ? e.message : e));
    }
  };

  const run = async () => {
    setError(null);
    try {
      if (!(await prepare())) return;
      const r = await api.simulate(id, JSON.parse(profiles), JSON.parse(events));
      setResult(r);
      if (r.profiles[0]) show(r, r.profiles[0].profile_id);
    } catch (e) {
      setError(e instanceof api.ApiError ? `${e.location ? `${e.location}: ` : ''}${e.message}` : String(e));
    }
  };
  const show = (r: api.Simulation, profile: string) => {
    setShown(profile);
    const p = r.profiles.find((x) => x.profile_id === profile);
    if (!p) return;
    onPath(p.steps.map((s) => ({ node: s.node, note: `${s.at.slice(0, 16).replace('T', ' ')} ${s.status}${s.branch ? ` → ${s.branch}` : ''}${s.why ? `: ${s.why}` : ''}` })));
  };
  const doReplay = async () => {
    setError(null);
    try {
      if (!(await prepare())) return;
      setReplay(await api.replay(id, new Date(from).toISOString(), new Date(to).toISOString()));
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    }
  };
  return (
    <div>
      <h2>Simulate the draft</h2>
      <p className="help">On a virtual clock, actions in dry run: nothing is stored or sent. The draft is saved first.</p>
      <div className="field">
        <label htmlFor="sim-profiles">Profiles (JSON)</label>
        <textarea id="sim-profiles" className="json" rows={5} value={profiles} onChange={(e) => setProfiles(e.target.value)} />
      </div>
      <form className="row sim-pick" onSubmit={(e) => { e.preventDefault(); if (pick.trim()) void addStored(); }}>
        <label htmlFor="sim-pick">Add stored profiles</label>
        <input id="sim-pick" type="text" placeholder="profile id or profile.tier == &quot;gold&quot;" value={pick} onChange={(e) => setPick(e.target.value)} />
        <button type="submit" disabled={!pick.trim()}>Add</button>
      </form>
      <div className="field">
        <label htmlFor="sim-events">Timeline (JSON: `at` is an offset from the start)</label>
        <textarea id="sim-events" className="json" rows={5} value={events} onChange={(e) => setEvents(e.target.value)} />
      </div>
      <button type="button" className="primary" onClick={() => void run()}>Run simulation</button>
      {error && <p className="error" role="alert">{error}</p>}
      {result && (
        <ul className="sim-profiles">
          {result.profiles.map((p) => {
            const last = p.instances[p.instances.length - 1];
            return (
              <li key={p.profile_id}>
                <button type="button" className={shown === p.profile_id ? 'active' : ''} aria-pressed={shown === p.profile_id} onClick={() => show(result, p.profile_id)}>
                  {p.profile_id}
                </button>{' '}
                <span className="muted">{last ? `${last.status} at ${last.node}` : 'did not enter'}</span>
              </li>
            );
          })}
        </ul>
      )}
      <h2>Replay recorded events</h2>
      <p className="help">The events of a period run against the latest version and against the draft: who would take another path.</p>
      <div className="row">
        <label htmlFor="replay-from">From</label>
        <input id="replay-from" type="datetime-local" value={from} onChange={(e) => setFrom(e.target.value)} />
      </div>
      <div className="row">
        <label htmlFor="replay-to">To</label>
        <input id="replay-to" type="datetime-local" value={to} onChange={(e) => setTo(e.target.value)} />
      </div>
      <button type="button" onClick={() => void doReplay()}>Replay against the draft</button>
      {replay && (
        <div className="replay">
          <p>{replay.events} events, {replay.profiles} profiles: {replay.moved.length} would move ({replay.before} → {replay.after}).</p>
          <ul>
            {replay.moved.map((m) => (
              <li key={m.profile_id}>
                <button type="button" className="link" onClick={() => onPath(m.after.map((item) => ({ node: nodeOfReplayItem(item), note: `now: ${item}` })))}>{m.profile_id}</button>
                <div className="muted">before: {m.before.join(' → ')}</div>
                <div className="muted">after: {m.after.join(' → ')}</div>
              </li>
            ))}
          </ul>
        </div>
      )}
    </div>
  );
}

// Operating a journey from the designer: test mode (the draft runs for test profiles
// only, waits shortened, actions in dry run) and a profile search that lists a
// profile's instances of this journey and draws the path of one.

import { useState } from 'react';
import * as api from '../api';
import { notesOfSteps } from '../journey/paths';

type PathStep = { node: string; note: string };

export function TestMode({ id, test, entryEvent, readOnly, onChanged }: { id: string; test: api.TestMode | undefined; entryEvent: string; readOnly: boolean; onChanged: () => void }) {
  const [wait, setWait] = useState('PT5S');
  const [dryRun, setDryRun] = useState(true);
  const [profile, setProfile] = useState('test-ada');
  const [note, setNote] = useState<{ text: string; error?: boolean } | null>(null);
  const act = async (what: () => Promise<unknown>, done: string) => {
    try {
      await what();
      setNote({ text: done });
      onChanged();
    } catch (e) {
      setNote({ text: e instanceof Error ? e.message : String(e), error: true });
    }
  };
  return (
    <div className="test-mode">
      <h2>Test mode</h2>
      {test ? (
        <p data-testid="test-state">On since {new Date(test.started_at).toLocaleString()}: the draft runs for test profiles, waits at most {test.wait_seconds} s{test.dry_run ? ', actions in dry run' : ''}.</p>
      ) : (
        <p className="help" data-testid="test-state">Off. In test mode the saved draft runs for profiles with <code>test_profile: true</code> only, waits shortened.</p>
      )}
      {!readOnly && (test ? (
        <>
          <div className="row">
            <label htmlFor="test-profile">Test profile</label>
            <input id="test-profile" value={profile} onChange={(e) => setProfile(e.target.value)} />
          </div>
          <div className="row">
            <button type="button" onClick={() => void act(() => api.makeTestProfile(profile), `${profile} is a test profile.`)}>Mark as test profile</button>
            <button type="button" onClick={() => void act(() => api.sendEvent(entryEvent, profile), `Sent ${entryEvent} for ${profile}.`)}>Send {entryEvent}</button>
          </div>
          <button type="button" className="danger" onClick={() => { if (window.confirm('End test mode? Test instances end with TEST_ENDED.')) void act(() => api.stopTest(id), 'Test mode ended.'); }}>End test mode</button>
        </>
      ) : (
        <>
          <div className="row">
            <label htmlFor="test-wait">Longest wait</label>
            <input id="test-wait" value={wait} onChange={(e) => setWait(e.target.value)} />
            <label><input type="checkbox" checked={dryRun} onChange={(e) => setDryRun(e.target.checked)} /> dry run</label>
          </div>
          <button type="button" onClick={() => void act(() => api.startTest(id, wait, dryRun), 'Test mode on.')}>Start test mode</button>
        </>
      ))}
      {note && <p className={note.error ? 'error' : 'muted'} role="status">{note.text}</p>}
    </div>
  );
}

export function ProfileSearch({ id, onPath }: { id: string; onPath: (steps: PathStep[] | null) => void }) {
  const [query, setQuery] = useState('');
  const [found, setFound] = useState<{ profile: string; instances: api.Instance[] }[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const search = async () => {
    setError(null);
    try {
      const ids = await api.profileIds(query);
      const out = [];
      for (const profile of ids.slice(0, 20)) {
        const r = await api.instancesOfProfile(profile).catch(() => ({ instances: [] as api.Instance[] }));
        out.push({ profile, instances: r.instances.filter((i) => i.journey_id === id) });
      }
      setFound(out);
    } catch (e) {
      setError(e instanceof api.ApiError ? `${e.location ? `${e.location}: ` : ''}${e.message}` : String(e));
    }
  };
  const draw = async (instance: string) => {
    const r = await api.stepsOf(instance);
    onPath(notesOfSteps(r.steps));
  };
  return (
    <div>
      <h2>Find a profile</h2>
      <form className="row" onSubmit={(e) => { e.preventDefault(); void search(); }}>
        <label htmlFor="profile-query" className="visually-hidden">Profile id or condition</label>
        <input id="profile-query" placeholder='ada, or profile.tier == "gold"' value={query} onChange={(e) => setQuery(e.target.value)} />
        <button type="submit" disabled={!query.trim()}>Find</button>
      </form>
      {error && <p className="error" role="alert">{error}</p>}
      {found && (found.length === 0 ? <p className="muted">No profile matches.</p> : (
        <ul className="instances">
          {found.map((f) => (
            <li key={f.profile}>
              <strong>{f.profile}</strong>
              {f.instances.length === 0 ? <span className="muted"> never entered this journey</span> : (
                <ul>
                  {f.instances.map((i) => (
                    <li key={i.id}>
                      <button type="button" className="link" onClick={() => void draw(i.id)}>v{i.version} {i.status}</button>{' '}
                      <span className="muted">entered {new Date(i.entered_at).toLocaleString()}{i.node ? ` · at ${i.node}` : ''}</span>
                    </li>
                  ))}
                </ul>
              )}
            </li>
          ))}
        </ul>
      ))}
    </div>
  );
}

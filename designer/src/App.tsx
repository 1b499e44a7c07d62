// The page's frame: which view the address names (`#/` the journeys, `#/journeys/{id}`
// one journey), and the token prompt when the engine asks for one.

import { Suspense, lazy, useEffect, useState } from 'react';
import { AUTH_EVENT, setToken, token } from './api';
import { JourneyList } from './views/JourneyList';

// The canvas and its libraries load when a journey is opened, not with the list.
const Designer = lazy(() => import('./views/Designer').then((m) => ({ default: m.Designer })));

function route(): { view: 'list' } | { view: 'journey'; id: string } {
  const m = /^#\/journeys\/([^/]+)/.exec(window.location.hash);
  return m ? { view: 'journey', id: decodeURIComponent(m[1]) } : { view: 'list' };
}

export function App() {
  const [at, setAt] = useState(route);
  const [auth, setAuth] = useState<number | null>(null);
  const [generation, setGeneration] = useState(0);
  useEffect(() => {
    const onHash = () => setAt(route());
    const onAuth = (e: Event) => setAuth((e as CustomEvent<number>).detail);
    window.addEventListener('hashchange', onHash);
    window.addEventListener(AUTH_EVENT, onAuth);
    return () => {
      window.removeEventListener('hashchange', onHash);
      window.removeEventListener(AUTH_EVENT, onAuth);
    };
  }, []);
  return (
    <div className="app">
      <header className="topbar">
        <a className="brand" href="#/">
          <img src="/favicon.svg" alt="" width={22} height={22} /> Parcours
        </a>
        <span className="crumb">{at.view === 'journey' ? at.id : 'Journeys'}</span>
        <span className="spacer" />
        {token() && (
          <button type="button" className="link" onClick={() => { setToken(null); setGeneration((g) => g + 1); }}>
            Forget token
          </button>
        )}
      </header>
      {auth !== null && (
        <TokenPrompt
          forbidden={auth === 403}
          onDone={() => {
            setAuth(null);
            setGeneration((g) => g + 1);
          }}
        />
      )}
      <main key={generation}>
        {at.view === 'journey' ? (
          <Suspense fallback={<div className="page"><p>Loading…</p></div>}>
            <Designer id={at.id} />
          </Suspense>
        ) : (
          <JourneyList />
        )}
      </main>
    </div>
  );
}

function TokenPrompt({ forbidden, onDone }: { forbidden: boolean; onDone: () => void }) {
  const [value, setValue] = useState('');
  return (
    <div className="modal" role="dialog" aria-modal="true" aria-labelledby="token-title">
      <form
        className="card"
        onSubmit={(e) => {
          e.preventDefault();
          setToken(value.trim());
          onDone();
        }}
      >
        <h2 id="token-title">{forbidden ? 'This token may not do that' : 'API token'}</h2>
        <p>
          {forbidden
            ? 'The token in use does not cover this action (a read token sees the designer read-only). Give an admin token to edit and publish.'
            : 'This engine has API tokens. Give one (parcours token create NAME --scope admin); it is kept for this tab only.'}
        </p>
        <label htmlFor="token-input">Token</label>
        <input id="token-input" type="password" autoComplete="off" value={value} onChange={(e) => setValue(e.target.value)} />
        <div className="row">
          <button type="submit" className="primary" disabled={!value.trim()}>Use token</button>
          <button type="button" onClick={onDone}>Cancel</button>
        </div>
      </form>
    </div>
  );
}

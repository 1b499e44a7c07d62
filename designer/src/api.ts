// The engine's HTTP API as the page calls it: same origin, under /v1, with the token the
// user gave (kept in session storage: gone when the tab closes, never in a cookie).

import type { JourneyDef, Problem } from './journey/types';

const TOKEN_KEY = 'parcours.token';

export function token(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(value: string | null): void {
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/** An answer the engine refused, with its JSON error (`code`, `message`, `location`). */
export class ApiError extends Error {
  constructor(
    public status: number,
    public code: string,
    message: string,
    public location?: string,
    public problems?: Problem[],
  ) {
    super(message);
  }
}

/** Raised when the engine wants a token (401) or a wider one (403). */
export const AUTH_EVENT = 'parcours:auth';

/** `quiet`: a 403 is the answer sought (the designer probes whether it may write), not a
 * reason to ask for another token. */
export async function call<T>(method: string, path: string, body?: unknown, quiet = false): Promise<T> {
  const headers: Record<string, string> = { Accept: 'application/json' };
  const t = token();
  if (t) headers.Authorization = `Bearer ${t}`;
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const text = await response.text();
  const value = text ? JSON.parse(text) : null;
  if (!response.ok) {
    if (response.status === 401 || (response.status === 403 && !quiet)) window.dispatchEvent(new CustomEvent(AUTH_EVENT, { detail: response.status }));
    throw new ApiError(response.status, value?.code ?? 'ERROR', value?.message ?? response.statusText, value?.location, value?.problems);
  }
  return value as T;
}

export interface JourneySummary {
  id: string;
  name: string | null;
  status: string;
  versions: { version: number; published_at: string; note?: string }[];
  updated_at: string;
}

export interface Version {
  version: number;
  note?: string | null;
  published_at?: string;
  published_by?: string;
  status: string;
  running_instances: number;
}

export interface JourneyRecord {
  id: string;
  status: string;
  draft: JourneyDef | null;
  versions: Version[];
  test?: TestMode;
  pause?: unknown;
}

export interface NodeReport {
  node: string;
  kind: string;
  passed: number;
  failed: number;
  error_codes: Record<string, number>;
  /** Messages not sent on purpose (unsubscribed, suppressed), by code. */
  skipped: number;
  skip_codes?: Record<string, number>;
  /** Delivery feedback about the messages the node sent, by kind (delivered, opened, clicked, ...). */
  feedback?: Record<string, number>;
  waited: number;
  held: number;
  ended: number;
  end_codes: Record<string, number>;
  branches: Record<string, number>;
  current: number;
}

export interface Report {
  journey: string;
  versions: { version: number; entered: number; discarded: number; discard_codes: Record<string, number>; live: number; nodes: NodeReport[] }[];
  hourly: { hour: string; entered: number; discarded: number; passed: number; failed: number; ended: number }[];
}

export async function listJourneys(): Promise<JourneySummary[]> {
  const out: JourneySummary[] = [];
  let after: string | null = null;
  do {
    const page: { journeys: JourneySummary[]; next: string | null } = await call('GET', `/v1/journeys?limit=1000${after ? `&after=${encodeURIComponent(after)}` : ''}`);
    out.push(...page.journeys);
    after = page.next;
  } while (after);
  return out;
}

export const getJourney = (id: string) => call<JourneyRecord>('GET', `/v1/journeys/${encodeURIComponent(id)}`);
export const getVersion = async (id: string, version: number) => (await call<{ definition: JourneyDef }>('GET', `/v1/journeys/${encodeURIComponent(id)}/versions/${version}`)).definition;
export const getReport = (id: string) => call<Report>('GET', `/v1/journeys/${encodeURIComponent(id)}/report`);
export const putDraft = (id: string, def: JourneyDef) => call<{ valid: boolean; problems: Problem[] }>('PUT', `/v1/journeys/${encodeURIComponent(id)}`, def);
export const publish = (id: string, note: string) => call<{ version: number }>('POST', `/v1/journeys/${encodeURIComponent(id)}/publish`, note ? { note } : {});
export const lifecycle = (id: string, action: 'pause' | 'resume' | 'close' | 'stop') => call<unknown>('POST', `/v1/journeys/${encodeURIComponent(id)}/${action}`, {});
export const journeySchema = () => call<Record<string, unknown>>('GET', '/v1/schema/journey');

/** The problems of a definition: none, the validator's list (422), or the one located
 * fault of a definition that does not even decode (400). */
export async function validate(def: JourneyDef): Promise<Problem[]> {
  try {
    await call('POST', '/v1/journeys/validate', def, true);
    return [];
  } catch (e) {
    if (e instanceof ApiError && (e.status === 422 || e.status === 400)) {
      if (e.problems && e.problems.length > 0) return e.problems;
      return [{ path: e.location ?? '', message: e.message }];
    }
    throw e;
  }
}

export interface Instance {
  id: string;
  journey_id: string;
  profile_id: string;
  version: number;
  status: string;
  node: string | null;
  entered_at: string;
  updated_at: string;
  wake_at?: string | null;
}

export interface Step {
  seq: number;
  node: string;
  kind: string;
  status: string;
  at: string;
  code?: string | null;
  message?: string | null;
  detail?: Record<string, unknown> | null;
}

export interface SimStep {
  at: string;
  node: string;
  kind: string;
  status: string;
  branch?: string;
  why?: string;
  code?: string;
}

export interface Simulation {
  profiles: { profile_id: string; steps: SimStep[]; instances: { status: string; node: string; end_reason?: string }[] }[];
}

export interface Replay {
  events: number;
  profiles: number;
  before: string;
  after: string;
  moved: { profile_id: string; before: string[]; after: string[] }[];
}

export interface Change {
  path: string;
  change: 'added' | 'removed' | 'changed';
  from?: unknown;
  to?: unknown;
}

const j = encodeURIComponent;
export const instancesAt = (id: string, node: string) => call<{ instances: Instance[]; next: string | null }>('GET', `/v1/journeys/${j(id)}/instances?node=${j(node)}&limit=20`);
export const stepsOf = (instance: string) => call<{ steps: Step[] }>('GET', `/v1/instances/${j(instance)}/steps?limit=1000`);
export const simulate = (id: string, profiles: unknown, events: unknown) => call<Simulation>('POST', `/v1/journeys/${j(id)}/simulate`, { version: 'draft', profiles, events });
export const replay = (id: string, from: string, to: string) => call<Replay>('POST', `/v1/journeys/${j(id)}/replay`, { from, to });
export const diff = (id: string, from: number, to: number | 'draft') => call<{ changes: Change[] }>('GET', `/v1/journeys/${j(id)}/diff?from=${from}${to === 'draft' ? '' : `&to=${to}`}`);

export interface TestMode {
  wait_seconds: number;
  dry_run: boolean;
  started_at: string;
}

export const startTest = (id: string, wait: string, dryRun: boolean) => call<unknown>('POST', `/v1/journeys/${j(id)}/test`, { wait, dry_run: dryRun });
export const stopTest = (id: string) => call<unknown>('DELETE', `/v1/journeys/${j(id)}/test`);
export const instancesOfProfile = (profile: string) => call<{ instances: Instance[] }>('GET', `/v1/profiles/${j(profile)}/instances?limit=1000`);
export interface StoredProfile {
  id: string;
  attributes: Record<string, unknown>;
  timezone?: string | null;
}
export const getProfile = (profile: string) => call<StoredProfile>('GET', `/v1/profiles/${j(profile)}`);
/** Profile ids: `query` itself, or those matching it when it is a condition over `profile`. */
export async function profileIds(query: string): Promise<string[]> {
  return /[\s=<>!.]/.test(query) ? (await findProfiles(query)).profiles.map((p) => p.id) : [query];
}
export const findProfiles = (filter: string) => call<{ profiles: { id: string }[]; next: string | null }>('GET', `/v1/profiles?limit=20&filter=${j(filter)}`);
export const sendEvent = (type: string, profile: string) => call<unknown>('POST', '/v1/events', { type, profile_id: profile });

/** Marks a profile as a test profile (`test_profile: true`), creating it if needed. */
export async function makeTestProfile(profile: string): Promise<void> {
  try {
    await call('PATCH', `/v1/profiles/${j(profile)}`, { attributes: { test_profile: true } });
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
    await call('PUT', `/v1/profiles/${j(profile)}`, { attributes: { test_profile: true } });
  }
}

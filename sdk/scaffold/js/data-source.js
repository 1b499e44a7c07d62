// A data source: `lookup("<name>", key)` reads `{url}{key}` as JSON.
// A 404 answer means "no record"; answers are cached for `ttlSeconds`.
import { config } from 'parcours:plugin/host@0.1.0';

function fail(tag, message) {
  throw { tag, val: message };
}

export async function fetch(ctx, key) {
  const url = config('url');
  if (!url) fail('permanent', 'the manifest sets no url');
  let resp;
  try {
    resp = await globalThis.fetch(url + encodeURIComponent(key));
  } catch (e) {
    fail('retryable', `request failed: ${e}`);
  }
  if (resp.status === 404) return { value: undefined, ttlSeconds: 60 };
  if (resp.status === 429 || resp.status >= 500) fail('retryable', `HTTP ${resp.status}`);
  if (resp.status >= 300) fail('permanent', `HTTP ${resp.status}`);
  let record;
  try {
    record = await resp.json();
  } catch {
    fail('permanent', 'the answer is not JSON');
  }
  return { value: JSON.stringify(record), ttlSeconds: 60 };
}

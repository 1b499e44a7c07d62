// End-to-end check with Segment's own Node client library (@segment/analytics-node).
//
// Starts `parcours serve --examples` on a temporary database with a Segment write key,
// points the unmodified client at the engine's address (it posts to `/v1/batch`, which
// the engine serves as well as `/v1/segment/v1/batch`), tracks a sign-up anonymously,
// then identifies the user, and checks through the API that the anonymous profile was
// merged into the user's: traits, aliases, and the welcome journey the sign-up entered.
//
//     node tests/segment/node/segment_client.mjs target/debug/parcours [--plugin-cache DIR]

import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Analytics } from '@segment/analytics-node';

const WRITE_KEY = 'ci-node-write-key';

function fail(message) {
  console.error(`segment node client: ${message}`);
  process.exit(1);
}

async function startEngine(binary, db, pluginCache) {
  const args = ['serve', '--examples', '--listen', '127.0.0.1:0', '--db', db,
    '--segment-write-key', WRITE_KEY];
  if (pluginCache) args.push('--plugin-cache', pluginCache);
  const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = createInterface({ input: proc.stderr });
  return await new Promise((resolve, reject) => {
    proc.on('exit', (code) => reject(new Error(`parcours exited before listening (${code})`)));
    lines.on('line', (line) => {
      const at = line.indexOf('listening on http://');
      if (at >= 0) resolve({ proc, base: line.slice(at + 'listening on '.length).split(/\s/)[0] });
    });
  });
}

async function get(base, path) {
  const r = await fetch(base + path);
  return { status: r.status, body: await r.json() };
}

async function eventually(check, what, seconds = 60) {
  const deadline = Date.now() + seconds * 1000;
  while (Date.now() < deadline) {
    const value = await check().catch(() => null);
    if (value) return value;
    await new Promise((r) => setTimeout(r, 100));
  }
  fail(`timed out waiting for ${what}`);
}

async function main() {
  const binary = process.argv[2];
  const cacheAt = process.argv.indexOf('--plugin-cache');
  const pluginCache = cacheAt > 0 ? process.argv[cacheAt + 1] : undefined;
  const dir = mkdtempSync(join(tmpdir(), 'parcours-segment-node-'));
  const { proc, base } = await startEngine(binary, join(dir, 'segment.db'), pluginCache);
  try {
    const errors = [];
    // The engine's address as the host, as for Segment's own API: no path to set.
    const analytics = new Analytics({ writeKey: WRITE_KEY, host: base, flushAt: 20 });
    analytics.on('error', (e) => errors.push(String(e?.reason ?? e)));
    analytics.track({ anonymousId: 'node-anon-1', event: 'signup', properties: { first_name: 'Node' } });
    analytics.identify({
      userId: 'node-user-1',
      anonymousId: 'node-anon-1',
      traits: { email: 'node@example.com', tier: 'gold', newsletter: true },
    });
    analytics.track({ userId: 'node-user-1', event: 'order_placed', properties: { amount: 42 } });
    await analytics.closeAndFlush({ timeout: 30000 });
    if (errors.length) fail(`the client reported errors: ${errors.join('; ')}`);

    const anonymous = await get(base, '/v1/profiles/node-anon-1');
    if (anonymous.status !== 404) fail(`the anonymous profile was not merged: ${JSON.stringify(anonymous)}`);
    const { body: profile } = await get(base, '/v1/profiles/node-user-1');
    const want = { anonymous_id: 'node-anon-1', email: 'node@example.com' };
    if (JSON.stringify(profile.aliases) !== JSON.stringify(want)) fail(`aliases: ${JSON.stringify(profile)}`);
    if (profile.attributes.tier !== 'gold') fail(`traits: ${JSON.stringify(profile)}`);
    const names = await eventually(async () => {
      const { body } = await get(base, '/v1/profiles/node-user-1/instances');
      const names = new Set(body.instances.map((i) => i.journey_id));
      return ['welcome', 'gold_welcome'].every((n) => names.has(n)) ? [...names].sort() : null;
    }, 'the calls to enter journeys');
    const { body } = await get(base, '/v1/profiles/node-user-1/instances');
    const welcome = body.instances.find((i) => i.journey_id === 'welcome');
    if (welcome.data.event.data.first_name !== 'Node') fail(`welcome: ${JSON.stringify(welcome)}`);
    console.log(`segment node client: anonymous sign-up merged into the identified user, journeys ${names.join(', ')}`);
  } finally {
    proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  }
}

main().catch((e) => fail(e.stack ?? String(e)));

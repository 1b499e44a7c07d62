// The designer in a real browser: Debian's Chromium driven by playwright-core (no browser
// download), against `parcours serve --examples` on a temporary database.
//
// Builds a journey from an empty canvas by drag and drop, connects it, sees a problem
// appear on a node and disappear when fixed, edits branches, parameters and exit
// criteria in sub-forms, renames a node, copies, pastes, deletes, undoes and redoes,
// publishes, sends events through the API and sees the counts change on the nodes (and a
// message node's delivery feedback), lists
// a node's instances and draws one's path, runs a simulation drawn on the graph,
// highlights a version diff (a removed node drawn faded), runs the draft in test mode for
// a test profile and finds it by a profile search, asks for a token and shows a read
// token a read-only designer; checks the main views for serious or critical
// accessibility violations (axe). A screenshot of each stage goes to the output folder.
//
//     node e2e/run.mjs ../target/debug/parcours [--plugin-cache DIR] [--out DIR]

import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import AxeBuilder from '@axe-core/playwright';
import { chromium } from 'playwright-core';

const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';

function arg(name, fallback) {
  const at = process.argv.indexOf(name);
  return at > 0 ? process.argv[at + 1] : fallback;
}

async function startEngine(binary, db, pluginCache, extra = []) {
  const args = ['serve', '--examples', '--listen', '127.0.0.1:0', '--db', db, ...extra];
  if (pluginCache) args.push('--plugin-cache', pluginCache);
  const proc = spawn(binary, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  const lines = createInterface({ input: proc.stderr });
  return await new Promise((done, fail) => {
    proc.on('exit', (code) => fail(new Error(`parcours exited before listening (${code})`)));
    lines.on('line', (line) => {
      const at = line.indexOf('listening on http://');
      if (at >= 0) done({ proc, base: line.slice(at + 'listening on '.length).split(/\s/)[0] });
    });
  });
}

const steps = [];
let failureShot = async () => {};
async function step(name, body) {
  const started = Date.now();
  try {
    await body();
    steps.push(`ok   ${name} (${Date.now() - started} ms)`);
  } catch (e) {
    steps.push(`FAIL ${name}`);
    await failureShot();
    throw e;
  }
}

/** Serious or critical accessibility violations of the page as it is. */
async function accessible(page, view) {
  const results = await new AxeBuilder({ page }).analyze();
  const bad = results.violations.filter((v) => v.impact === 'serious' || v.impact === 'critical');
  if (bad.length) {
    const lines = bad.map((v) => `${v.impact} ${v.id}: ${v.help}\n    ${v.nodes.slice(0, 3).map((n) => n.target.join(' ')).join('\n    ')}`);
    throw new Error(`${view}: ${bad.length} accessibility violation(s)\n  ${lines.join('\n  ')}`);
  }
}

/** Drags from a node's output handle to another node (its input handle). */
async function connect(page, source, handle, target) {
  const from = page.locator(`.react-flow__node[data-id="${source}"] .react-flow__handle.source[data-handleid="${handle}"]`);
  const to = page.locator(`.react-flow__node[data-id="${target}"] .react-flow__handle.target`);
  const a = await from.boundingBox();
  const b = await to.boundingBox();
  if (!a || !b) throw new Error(`cannot see ${source}.${handle} or ${target}`);
  await page.mouse.move(a.x + a.width / 2, a.y + a.height / 2);
  await page.mouse.down();
  await page.mouse.move((a.x + b.x) / 2, (a.y + b.y) / 2, { steps: 5 });
  await page.mouse.move(b.x + b.width / 2, b.y + b.height / 2, { steps: 5 });
  await page.mouse.up();
  await page.locator(`.react-flow__edge[data-id="${source}:${handle}"]`).waitFor({ state: 'attached', timeout: 5000 }).catch(async () => {
    // React Flow's own edge ids differ from ours when it creates them; check the wire instead.
    const n = await page.locator(`.react-flow__edge`).count();
    if (!n) throw new Error(`no edge from ${source}.${handle} to ${target}`);
  });
}

async function main() {
  const binary = resolve(process.argv[2] ?? '../target/debug/parcours');
  const out = resolve(arg('--out', 'test-output'));
  mkdirSync(out, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'parcours-designer-'));
  const { proc, base } = await startEngine(binary, join(dir, 'designer.db'), arg('--plugin-cache'));
  const browser = await chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  const context = await browser.newContext({ viewport: { width: 1500, height: 900 } });
  const page = await context.newPage();
  const errors = [];
  page.on('pageerror', (e) => errors.push(String(e)));
  // A 4xx answer is logged by the browser; the page shows it (validation answers 422).
  page.on('console', (m) => { if (m.type() === 'error' && !/status of 4\d\d/.test(m.text())) errors.push(m.text()); });
  page.on('dialog', (d) => d.accept(d.type() === 'prompt' ? 'first version, drawn in the browser' : undefined));
  const shot = (name) => page.screenshot({ path: join(out, `${name}.png`) });
  failureShot = () => shot('failure').catch(() => {});
  try {
    await step('the journeys list shows the examples', async () => {
      await page.goto(`${base}/`);
      await page.getByRole('link', { name: 'Welcome series' }).waitFor();
      await shot('01-journeys');
      await accessible(page, 'journeys list');
    });

    await step('an example opens on the canvas, laid out, with its entry', async () => {
      await page.getByRole('link', { name: 'Welcome series' }).click();
      await page.locator('.react-flow__node[data-id="has_purchased"]').waitFor();
      await page.locator('.node.entry', { hasText: 'Event: signup' }).waitFor();
      const labels = await page.locator('.react-flow__edge-text').allTextContents();
      if (!labels.includes('Already a customer') || !labels.includes('otherwise')) throw new Error(`branch labels: ${labels}`);
      await shot('02-example-canvas');
      await accessible(page, 'designer');
    });

    await step('a new journey is built from an empty canvas by drag and drop', async () => {
      await page.goto(`${base}/#/`);
      await page.getByLabel('New journey id').fill('drawn');
      await page.getByRole('button', { name: 'Create' }).click();
      await page.locator('.react-flow__node[data-id="done"]').waitFor();
      const canvas = page.locator('.react-flow__pane');
      const box = await canvas.boundingBox();
      const drop = async (kind, x, y) => {
        await page.locator(`.palette-item[data-kind="${kind}"]`).dragTo(canvas, { targetPosition: { x, y } });
        await page.locator(`.react-flow__node[data-id="${kind}"]`).waitFor();
      };
      await drop('condition', box.width * 0.35, box.height * 0.3);
      await drop('wait', box.width * 0.55, box.height * 0.15);
      await drop('action', box.width * 0.75, box.height * 0.15);
      await shot('03-dropped');
      // Arranged: the dropped nodes in a column beside the entry, none over another.
      await page.getByRole('button', { name: 'Arrange' }).click();
      await page.waitForTimeout(400);
      // Dropped but unconnected: the engine says they cannot be reached.
      await page.locator('.react-flow__node[data-id="wait"] .node-problems').waitFor();
      await connect(page, '__entry', 'start', 'condition');
      await connect(page, 'condition', 'branches.0', 'wait');
      await connect(page, 'condition', 'otherwise', 'done');
      await connect(page, 'wait', 'next', 'action');
      await connect(page, 'action', 'next', 'done');
      await page.getByTestId('validity').filter({ hasText: 'valid' }).waitFor();
      await page.getByRole('button', { name: 'Arrange' }).click();
      await page.waitForTimeout(400);
      await shot('04-connected');
    });

    await step('a problem appears on its node and field, and disappears when fixed', async () => {
      await page.locator('.react-flow__node[data-id="wait"]').click();
      const duration = page.locator('[data-field="nodes.wait.duration"] input');
      await duration.fill('P2X');
      await page.locator('.react-flow__node[data-id="wait"] .node-problems', { hasText: 'P2X' }).waitFor();
      await page.locator('[data-field="nodes.wait.duration"] .field-problem').waitFor();
      await shot('05-problem');
      await page.getByRole('tab', { name: /Problems/ }).click();
      await page.locator('ul.problems', { hasText: 'nodes.wait.duration' }).waitFor();
      await page.getByRole('tab', { name: 'Properties' }).click();
      await page.locator('.react-flow__node[data-id="wait"]').click();
      await page.locator('[data-field="nodes.wait.duration"] input').fill('PT1H');
      await page.getByTestId('validity').filter({ hasText: 'valid' }).waitFor();
      if (await page.locator('.react-flow__node[data-id="wait"] .node-problems').count()) throw new Error('the problem stayed');
    });

    await step('sub-forms edit branches, parameters and exit criteria; a node is renamed', async () => {
      // A second branch added in the condition's list gets its own handle on the node.
      await page.locator('.react-flow__node[data-id="condition"]').click();
      await page.getByRole('button', { name: '+ Add branch' }).click();
      await page.locator('[data-field="nodes.condition.branches[1].label"] input').fill('VIP');
      await page.locator('[data-field="nodes.condition.branches[1].when"] textarea').fill('profile.tier == "vip"');
      await page.locator('.react-flow__node[data-id="condition"] .react-flow__handle[data-handleid="branches.1"]').waitFor();
      // Moved above the first, it keeps no connection; the first keeps its own.
      await page.getByRole('button', { name: 'Move branch 2 up' }).click();
      await page.locator('.react-flow__edge[data-id="condition:branches.1"]').waitFor();
      await page.getByRole('button', { name: 'Remove branch 1' }).click();
      await page.locator('.react-flow__edge[data-id="condition:branches.0"]').waitFor();
      // The action's parameters, one row per name.
      await page.locator('.react-flow__node[data-id="action"]').click();
      await page.locator('[data-field="nodes.action.params"] button', { hasText: '+ Add' }).click();
      await page.getByLabel('name 1').fill('message');
      await page.getByLabel('message', { exact: true }).fill('"hello " + profile.id');
      // A node renamed keeps its connections.
      await page.getByLabel('id', { exact: true }).fill('say_hello');
      await page.getByRole('button', { name: 'Rename' }).click();
      await page.locator('.react-flow__node[data-id="say_hello"]').waitFor();
      await page.locator('.react-flow__edge[data-id="wait:next"]').waitFor();
      await page.locator('.react-flow__edge[data-id="say_hello:next"]').waitFor();
      await shot('05a-sub-forms');
      // The journey's exit criteria: a list of tagged objects.
      await page.locator('.react-flow__pane').click({ position: { x: 20, y: 20 } });
      await page.getByRole('button', { name: '+ Add exit' }).click();
      await page.locator('[data-field="properties.exit[0]"] select').selectOption('event');
      await page.locator('[data-field="properties.exit[0].event"] input').fill('unsubscribe');
      await page.getByTestId('validity').filter({ hasText: 'valid' }).waitFor();
      await shot('05b-journey-properties');
      await accessible(page, 'designer, sub-forms');
    });

    await step('copy, paste, delete, undo and redo on the canvas', async () => {
      await page.locator('.react-flow__node[data-id="say_hello"]').click();
      await page.keyboard.press('Control+c');
      await page.keyboard.press('Control+v');
      const copy = page.locator('.react-flow__node[data-id="say_hello_2"]');
      await copy.waitFor();
      await page.locator('.react-flow__node[data-id="say_hello_2"] .node-summary', { hasText: 'log' }).waitFor();
      await page.keyboard.press('Delete');
      await copy.waitFor({ state: 'detached' });
      await page.keyboard.press('Control+z');
      await copy.waitFor();
      await page.keyboard.press('Control+Shift+z');
      await copy.waitFor({ state: 'detached' });
      await page.getByRole('button', { name: 'Undo' }).click();
      await copy.waitFor();
      await page.getByRole('button', { name: 'Redo' }).click();
      await copy.waitFor({ state: 'detached' });
      await page.getByTestId('validity').filter({ hasText: 'valid' }).waitFor();
    });

    await step('publish', async () => {
      await page.getByRole('button', { name: 'Publish…' }).click();
      await page.getByRole('status').filter({ hasText: 'Published version 1' }).waitFor();
      const journey = await (await fetch(`${base}/v1/journeys/drawn`)).json();
      const { definition: version } = await (await fetch(`${base}/v1/journeys/drawn/versions/1`)).json();
      if (journey.status !== 'live' || journey.versions[0].note !== 'first version, drawn in the browser') throw new Error(JSON.stringify(journey));
      if (version.start !== 'condition' || version.nodes.wait.next !== 'say_hello' || version.nodes.wait.duration !== 'PT1H' || version.nodes.condition.otherwise !== 'done') throw new Error(JSON.stringify(version));
      if (version.nodes.say_hello.params.message !== '"hello " + profile.id' || version.nodes.say_hello.next !== 'done') throw new Error(JSON.stringify(version.nodes.say_hello));
      if (version.nodes.condition.branches.length !== 1 || version.nodes.condition.branches[0].next !== 'wait' || version.nodes.say_hello_2) throw new Error(JSON.stringify(version.nodes));
      if (JSON.stringify(version.properties.exit) !== '[{"type":"event","event":"unsubscribe"}]') throw new Error(JSON.stringify(version.properties));
      await shot('06-published');
    });

    await step('events sent through the API change the counts on the nodes', async () => {
      const events = ['ada', 'grace', 'linus'].map((p) => ({ type: 'signup', profile_id: `drawn-${p}` }));
      const r = await fetch(`${base}/v1/events`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(events) });
      if (r.status !== 202) throw new Error(`events: ${r.status}`);
      await page.locator('[data-counts="condition"]', { hasText: '✓ 3' }).waitFor({ timeout: 20000 });
      await page.locator('[data-counts="wait"]', { hasText: '◷ 3' }).waitFor({ timeout: 20000 });
      await shot('07-live-counts');
    });

    await step("a message node shows the delivery feedback on what it sent", async () => {
      const json = { 'Content-Type': 'application/json' };
      const put = await fetch(`${base}/v1/profiles/fb-ada`, { method: 'PUT', headers: json, body: JSON.stringify({ attributes: { email: 'ada@example.com', first_name: 'Ada' } }) });
      if (put.status >= 300) throw new Error(`profile: ${put.status}`);
      const r = await fetch(`${base}/v1/events`, { method: 'POST', headers: json, body: JSON.stringify([{ type: 'signup', profile_id: 'fb-ada' }]) });
      if (r.status !== 202) throw new Error(`event: ${r.status}`);
      let sent;
      for (let i = 0; i < 100 && !sent; i++) {
        sent = (await (await fetch(`${base}/v1/outbox?profile_id=fb-ada`)).json()).messages?.[0];
        if (!sent) await new Promise((done) => setTimeout(done, 200));
      }
      if (!sent) throw new Error('the welcome email was not sent');
      const feedback = [
        { type: 'delivered', message_id: sent.message_id },
        { type: 'clicked', message_id: sent.message_id, url: 'https://shop.example/' },
      ];
      const f = await fetch(`${base}/v1/deliveries/outbox`, { method: 'POST', headers: json, body: JSON.stringify(feedback) });
      if (f.status !== 202) throw new Error(`feedback: ${f.status}`);
      const other = await context.newPage();
      await other.goto(`${base}/#/journeys/welcome`);
      await other.locator('[data-counts="send_welcome"]', { hasText: 'clicked 1' }).waitFor({ timeout: 20000 });
      await other.screenshot({ path: join(out, '07a-message-feedback.png') });
      await other.close();
    });

    await step("a node lists its instances; one instance's path is drawn", async () => {
      await page.locator('.react-flow__node[data-id="wait"]').click();
      await page.getByRole('tab', { name: 'Live' }).click();
      await page.locator('ul.instances li').nth(2).waitFor();
      await page.locator('ul.instances li button').first().click();
      await page.locator('.react-flow__node[data-id="condition"] .node.on-path').waitFor();
      await page.locator('[data-path-note="wait"]').waitFor();
      await page.locator('.react-flow__edge.on-path').first().waitFor();
      await shot('08-instance-path');
      await accessible(page, 'designer, live tab');
    });

    await step("a simulation draws each profile's path with its reasons", async () => {
      await page.getByRole('tab', { name: 'Simulate' }).click();
      await page.getByRole('button', { name: 'Run simulation' }).click();
      await page.getByRole('button', { name: 'ada' }).waitFor();
      await page.locator('[data-path-note="condition"]', { hasText: '→ Yes' }).waitFor();
      await page.locator('.react-flow__node[data-id="say_hello"] .node.on-path').waitFor();
      // A stored profile (entered through the API above) joins the simulation.
      await page.getByLabel('Add stored profiles').fill('drawn-grace');
      await page.getByRole('button', { name: 'Add', exact: true }).click();
      await page.locator('#sim-profiles', { hasText: 'drawn-grace' }).waitFor();
      await page.getByRole('button', { name: 'Run simulation' }).click();
      await page.getByRole('button', { name: 'drawn-grace' }).waitFor();
      await shot('09-simulation');
      await accessible(page, 'designer, simulate tab');
    });

    await step('a version diff is highlighted on the canvas', async () => {
      await page.getByRole('tab', { name: 'Properties' }).click();
      await page.locator('.react-flow__node[data-id="wait"]').click();
      await page.locator('[data-field="nodes.wait.duration"] input').fill('PT2H');
      await page.getByRole('button', { name: 'Save draft' }).click();
      await page.getByRole('status').filter({ hasText: 'Draft saved' }).waitFor();
      await page.getByRole('tab', { name: 'Versions' }).click();
      await page.getByRole('button', { name: 'Show' }).click();
      await page.locator('ul.changes', { hasText: 'nodes.wait.duration' }).waitFor();
      await page.locator('.react-flow__node[data-id="wait"] .node.diff-changed').waitFor();
      if (await page.locator('.node.diff-changed').count() !== 1) throw new Error('only the wait changed');
      await shot('10-version-diff');
    });

    await step('test mode runs the draft for a test profile, found by a profile search', async () => {
      await page.getByRole('tab', { name: 'Live' }).click();
      await page.getByRole('button', { name: 'Start test mode' }).click();
      await page.getByTestId('test-state').filter({ hasText: 'On since' }).waitFor();
      await page.getByLabel('Test profile').fill('tester');
      await page.getByRole('button', { name: 'Mark as test profile' }).click();
      await page.getByRole('status').filter({ hasText: 'tester is a test profile' }).waitFor();
      await page.getByRole('button', { name: 'Send signup' }).click();
      await page.getByRole('status').filter({ hasText: 'Sent signup for tester' }).waitFor();
      await page.getByLabel('Profile id or condition').fill('tester');
      const instance = page.locator('ul.instances li li button', { hasText: 'v0' });
      for (let i = 0; i < 50 && !(await instance.count()); i++) {
        await page.getByRole('button', { name: 'Find' }).click();
        await page.waitForTimeout(200);
      }
      await instance.first().click();
      await page.locator('[data-path-note="condition"]').waitFor();
      await shot('11-test-mode');
      await accessible(page, 'designer, live tab with test mode');
      await page.getByRole('button', { name: 'End test mode' }).click();
      await page.getByTestId('test-state').filter({ hasText: 'Off' }).waitFor();
    });

    await step('a node removed since a version is drawn faded where it stood, with its connections', async () => {
      await page.getByRole('tab', { name: 'Properties' }).click();
      await page.locator('.react-flow__node[data-id="say_hello"]').click();
      await page.keyboard.press('Delete');
      await page.locator('.react-flow__node[data-id="say_hello"]').waitFor({ state: 'detached' });
      await connect(page, 'wait', 'next', 'done');
      await page.getByTestId('validity').filter({ hasText: 'valid' }).waitFor();
      await page.getByRole('button', { name: 'Save draft' }).click();
      await page.getByRole('status').filter({ hasText: 'Draft saved' }).waitFor();
      await page.getByRole('tab', { name: 'Versions' }).click();
      await page.getByRole('button', { name: 'Show' }).click();
      await page.locator('ul.changes', { hasText: 'nodes.say_hello' }).waitFor();
      await page.locator('.react-flow__node[data-id="ghost:say_hello"] .diff-tag', { hasText: 'removed' }).waitFor();
      await page.locator('.react-flow__edge.ghost-edge').first().waitFor();
      await page.getByRole('button', { name: 'Fit View' }).click().catch(() => {});
      await page.waitForTimeout(300);
      await shot('11a-removed-node');
      await page.getByRole('button', { name: 'Clear' }).click();
      await page.locator('.react-flow__node[data-id="ghost:say_hello"]').waitFor({ state: 'detached' });
    });

    await step('with API tokens, the page asks for one; a read token sees a read-only designer', async () => {
      const tokens = join(dir, 'tokens.json');
      const create = (name, scope) => execFileSync(binary, ['token', 'create', name, '--scope', scope, '--tokens', tokens]).toString().trim();
      create('ops', 'admin');
      const read = create('viewer', 'read');
      const guarded = await startEngine(binary, join(dir, 'guarded.db'), arg('--plugin-cache'), ['--tokens', tokens]);
      const context2 = await browser.newContext({ viewport: { width: 1500, height: 900 } });
      const page2 = await context2.newPage();
      page2.on('dialog', (d) => d.accept());
      try {
        await page2.goto(`${guarded.base}/`);
        await page2.getByRole('dialog', { name: 'API token' }).waitFor();
        await page2.screenshot({ path: join(out, '12-token.png') });
        await page2.getByLabel('Token', { exact: true }).fill(read);
        await page2.getByRole('button', { name: 'Use token' }).click();
        await page2.getByRole('link', { name: 'Welcome series' }).click();
        await page2.locator('.react-flow__node[data-id="has_purchased"]').waitFor();
        await page2.getByText('read-only').waitFor();
        if (await page2.locator('.palette').count()) throw new Error('a read token sees the palette');
        if (await page2.getByRole('button', { name: /Publish/ }).count()) throw new Error('a read token sees Publish');
        await page2.screenshot({ path: join(out, '13-read-only.png') });
      } finally {
        await context2.close();
        guarded.proc.kill('SIGTERM');
      }
    });

    if (errors.length) throw new Error(`the page logged errors:\n${errors.join('\n')}`);
  } finally {
    await browser.close();
    proc.kill('SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    console.log(steps.join('\n'));
    console.log(`screenshots in ${out}`);
  }
}

main().catch((e) => {
  console.error(`designer e2e: ${e.stack ?? e}`);
  process.exit(1);
});

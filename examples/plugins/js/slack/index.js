// `slack`: posts a message to a Slack incoming webhook (or any endpoint that takes the
// same JSON). Parameters: `text` (required) and `channel` (optional). The webhook URL is
// the `webhook_url` secret, or the manifest's `webhook_url` setting when no secret is
// given. The step's idempotency key travels as `Idempotency-Key`.
import { log, config, secret } from 'parcours:plugin/host@0.1.0';

const MAX_TEXT = 40000;

function fail(tag, message) {
  // A `result` error for the host: `invalid-input`, `retryable` or `permanent`.
  throw { tag, val: message };
}

export async function invoke(ctx, params) {
  const p = JSON.parse(params);
  if (typeof p.text !== 'string' || p.text.length === 0 || p.text.length > MAX_TEXT) {
    fail('invalid-input', `text: must be a string of 1 to ${MAX_TEXT} characters`);
  }
  const url = secret('webhook_url') ?? config('webhook_url');
  if (!url) {
    fail('permanent', 'no webhook_url secret or setting');
  }
  const message = { text: p.text };
  if (p.channel !== undefined) message.channel = String(p.channel);
  let resp;
  try {
    resp = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'idempotency-key': ctx.idempotencyKey,
      },
      body: JSON.stringify(message),
    });
  } catch (e) {
    fail('permanent', `request failed: ${e}`);
  }
  const body = await resp.text();
  if (resp.status === 429 || resp.status >= 500) fail('retryable', `HTTP ${resp.status}`);
  if (resp.status >= 300) fail('permanent', `HTTP ${resp.status}: ${body.slice(0, 200)}`);
  log('info', 'message posted', JSON.stringify({ status: resp.status }));
  return JSON.stringify({ status: resp.status, body });
}

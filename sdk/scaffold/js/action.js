// An action: sends the step's message to an HTTP endpoint.
//
// Parameters (checked against `params_schema` in plugin.toml before the call): `message`.
// The endpoint is the manifest's `url` setting; the step's idempotency key travels as
// `Idempotency-Key`, so a receiver can drop the repeats of a retried step.
import { log, config } from 'parcours:plugin/host@0.1.0';

// A `result` error for the host: `invalid-input`, `retryable` or `permanent`.
function fail(tag, message) {
  throw { tag, val: message };
}

export async function invoke(ctx, params) {
  const p = JSON.parse(params);
  if (typeof p.message !== 'string' || p.message.length === 0) {
    fail('invalid-input', 'message: must be a non-empty string');
  }
  const url = config('url');
  if (!url) fail('permanent', 'the manifest sets no url');
  let resp;
  try {
    resp = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'idempotency-key': ctx.idempotencyKey,
      },
      body: JSON.stringify({
        profile_id: ctx.profileId,
        journey_id: ctx.journeyId,
        message: p.message,
      }),
    });
  } catch (e) {
    fail('retryable', `request failed: ${e}`);
  }
  const text = await resp.text();
  if (resp.status === 429 || resp.status >= 500) fail('retryable', `HTTP ${resp.status}`);
  if (resp.status >= 300) fail('permanent', `HTTP ${resp.status}: ${text.slice(0, 200)}`);
  log('info', 'message sent', JSON.stringify({ status: resp.status }));
  return JSON.stringify({ status: resp.status });
}

"""`sms`: sends a text message through an SMS provider's HTTP API.

Parameters: `to` (E.164 phone number) and `text`. The provider's endpoint comes from the
manifest's `api_url` setting and its key from the `api_key` secret. The step's
idempotency key travels as `Idempotency-Key`, so a retried step never sends twice.
"""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.parcours_plugin_types import (
    PluginError_InvalidInput,
    PluginError_Permanent,
    PluginError_Retryable,
)

from parcours_http import HttpError, request

MAX_TEXT = 1600


class WitWorld(wit_world.WitWorld):
    def invoke(self, ctx, params: str) -> str:
        p = json.loads(params)
        to = p.get("to", "")
        text = p.get("text", "")
        if not (to.startswith("+") and to[1:].isdigit() and 8 <= len(to) <= 16):
            raise Err(PluginError_InvalidInput(f"to: {to!r} is not an E.164 phone number"))
        if not text or len(text) > MAX_TEXT:
            raise Err(PluginError_InvalidInput(f"text: must have 1 to {MAX_TEXT} characters"))
        url = host.config("api_url")
        if url is None:
            raise Err(PluginError_Permanent("the manifest sets no api_url"))
        headers = {
            "content-type": "application/json",
            "idempotency-key": ctx.idempotency_key,
        }
        key = host.secret("api_key")
        if key:
            headers["authorization"] = f"Bearer {key}"
        body = json.dumps({"to": to, "text": text, "reference": ctx.instance_id})
        try:
            resp = request("POST", url, headers, body.encode("utf-8"))
        except HttpError as e:
            raise Err(PluginError_Permanent(str(e)))
        if resp.status == 429 or resp.status >= 500:
            raise Err(PluginError_Retryable(f"HTTP {resp.status}"))
        if resp.status >= 300:
            raise Err(PluginError_Permanent(f"HTTP {resp.status}: {resp.text()[:200]}"))
        try:
            answer = json.loads(resp.body or b"{}")
        except ValueError:
            answer = {}
        host.log(host.Level.INFO, "sms sent", json.dumps({"to": to[:4] + "…"}))
        return json.dumps({"status": resp.status, "message_id": answer.get("id")})

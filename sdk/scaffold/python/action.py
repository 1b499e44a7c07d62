"""An action: sends the step's message to an HTTP endpoint.

Parameters (checked against `params_schema` in plugin.toml before the call): `message`.
The endpoint is the manifest's `url` setting; the step's idempotency key travels as
`Idempotency-Key`, so a receiver can drop the repeats of a retried step.
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


class WitWorld(wit_world.WitWorld):
    def invoke(self, ctx, params: str) -> str:
        p = json.loads(params)
        message = p.get("message")
        if not isinstance(message, str) or not message:
            raise Err(PluginError_InvalidInput("message: must be a non-empty string"))
        url = host.config("url")
        if url is None:
            raise Err(PluginError_Permanent("the manifest sets no url"))
        body = json.dumps(
            {
                "profile_id": ctx.profile_id,
                "journey_id": ctx.journey_id,
                "message": message,
            }
        ).encode("utf-8")
        headers = {
            "content-type": "application/json",
            "idempotency-key": ctx.idempotency_key,
        }
        try:
            resp = request("POST", url, headers, body)
        except HttpError as e:
            raise Err(PluginError_Retryable(str(e)))
        if resp.status == 429 or resp.status >= 500:
            raise Err(PluginError_Retryable(f"HTTP {resp.status}"))
        if resp.status >= 300:
            raise Err(PluginError_Permanent(f"HTTP {resp.status}: {resp.text()[:200]}"))
        host.log(host.Level.INFO, "message sent", json.dumps({"status": resp.status}))
        return json.dumps({"status": resp.status})

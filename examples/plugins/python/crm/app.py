"""`crm`: looks a customer record up in a CRM's REST API.

`lookup("crm", key)` fetches `GET {base_url}/customers/{key}` (the manifest's
`base_url` setting, the `token` secret as a bearer token). 404 means "no such
record"; the answer is cached for the manifest's `ttl_seconds`.
"""

import json
from urllib.parse import quote

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.parcours_plugin_types import (
    Lookup,
    PluginError_InvalidInput,
    PluginError_Permanent,
    PluginError_Retryable,
)

from parcours_http import HttpError, request


class WitWorld(wit_world.WitWorld):
    def fetch(self, ctx, key: str) -> Lookup:
        if not key or len(key) > 256:
            raise Err(PluginError_InvalidInput("the key must have 1 to 256 characters"))
        base = host.config("base_url")
        if base is None:
            raise Err(PluginError_Permanent("the manifest sets no base_url"))
        ttl = int(host.config("ttl_seconds") or "0")
        headers = {"accept": "application/json"}
        token = host.secret("token")
        if token:
            headers["authorization"] = f"Bearer {token}"
        try:
            resp = request("GET", f"{base.rstrip('/')}/customers/{quote(key, safe='')}", headers)
        except HttpError as e:
            raise Err(PluginError_Retryable(str(e)))
        if resp.status == 404:
            return Lookup(value=None, ttl_seconds=ttl)
        if resp.status == 429 or resp.status >= 500:
            raise Err(PluginError_Retryable(f"HTTP {resp.status}"))
        if resp.status >= 300:
            raise Err(PluginError_Permanent(f"HTTP {resp.status}"))
        try:
            record = json.loads(resp.body)
        except ValueError:
            raise Err(PluginError_Permanent("the CRM answered with invalid JSON"))
        return Lookup(value=json.dumps(record), ttl_seconds=ttl)

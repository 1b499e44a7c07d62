"""A data source: `lookup("<name>", key)` reads `{url}{key}` as JSON.

A 404 answer means "no record"; answers are cached for `ttl_seconds`.
"""

import json
from urllib.parse import quote

import wit_world
from componentize_py_types import Err
from wit_world.imports import host
from wit_world.imports.parcours_plugin_types import (
    Lookup,
    PluginError_Permanent,
    PluginError_Retryable,
)

from parcours_http import HttpError, request


class WitWorld(wit_world.WitWorld):
    def fetch(self, ctx, key: str) -> Lookup:
        url = host.config("url")
        if url is None:
            raise Err(PluginError_Permanent("the manifest sets no url"))
        try:
            resp = request("GET", url + quote(key, safe=""))
        except HttpError as e:
            raise Err(PluginError_Retryable(str(e)))
        if resp.status == 404:
            return Lookup(value=None, ttl_seconds=60)
        if resp.status == 429 or resp.status >= 500:
            raise Err(PluginError_Retryable(f"HTTP {resp.status}"))
        if resp.status >= 300:
            raise Err(PluginError_Permanent(f"HTTP {resp.status}"))
        try:
            record = json.loads(resp.body)
        except ValueError:
            raise Err(PluginError_Permanent("the answer is not JSON"))
        return Lookup(value=json.dumps(record), ttl_seconds=60)

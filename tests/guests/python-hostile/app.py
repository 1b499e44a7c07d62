"""A hostile action for tests, in Python: `{"mode": ...}` picks the misbehaviour."""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports.parcours_plugin_types import PluginError_Permanent

from parcours_http import HttpError, request


class WitWorld(wit_world.WitWorld):
    def invoke(self, ctx, params: str) -> str:
        mode = json.loads(params).get("mode")
        if mode == "loop":
            n = 0
            while True:
                n += 1
        if mode == "memory":
            hog = [bytearray(1 << 20) for _ in range(1024)]
            return json.dumps({"allocated": len(hog)})
        if mode == "http":
            try:
                request("GET", "http://denied.example.net/secrets")
            except HttpError as e:
                raise Err(PluginError_Permanent(str(e)))
            return json.dumps({"reached": True})
        if mode == "print":
            print("printed to stdout")
            return json.dumps({"printed": True})
        if mode == "count":
            # Counts calls in module state: shows whether instances are reused.
            global CALLS
            CALLS = globals().get("CALLS", 0) + 1
            return json.dumps({"calls": CALLS})
        return json.dumps({"ok": True})

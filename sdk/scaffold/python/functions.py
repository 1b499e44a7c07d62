"""Expression functions: `<name>::double(21)` in a condition or a parameter."""

import json

import wit_world
from componentize_py_types import Err
from wit_world.imports.types import (
    FunctionSignature,
    PluginError_InvalidInput,
)


class WitWorld(wit_world.WitWorld):
    def describe(self):
        return [FunctionSignature("double", ["int"], "int", "twice its argument")]

    def call(self, name: str, args: str) -> str:
        values = json.loads(args)
        if name != "double":
            raise Err(PluginError_InvalidInput(f"no function {name}"))
        if len(values) != 1 or not isinstance(values[0], int):
            raise Err(PluginError_InvalidInput("double: takes one integer"))
        return json.dumps(values[0] * 2)

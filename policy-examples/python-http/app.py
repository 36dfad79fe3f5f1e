"""deny-delete-py: a Gatehouse HTTP policy written in Python.

Denies DELETE requests unless the caller is in the `ops` group, and masks
e-mail addresses in every response. Built into a WebAssembly component with
componentize-py against the WIT world `gatehouse:policy/http-policy@0.1.0`
(see build.sh).

componentize-py looks up one class per exported interface, named after the
interface in CamelCase: `Meta` for `gatehouse:policy/meta` and `Http` for
`gatehouse:policy/http`. The `wit_world` package is generated at build time.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import meta
from wit_world.imports import types

NAME = "deny-delete-py"
VERSION = "0.1.0"
ALLOWED_GROUP = "ops"
DENY_REASON = "DELETE is not allowed for agents"


def _decision(verdict: types.Verdict) -> types.Decision:
    return types.Decision(verdict=verdict, annotations=[])


class Meta(exports.Meta):
    def describe(self) -> meta.Description:
        return meta.Description(
            name=NAME,
            version=VERSION,
            summary="Denies DELETE unless the caller is in group ops; masks e-mail addresses in responses.",
            protocols=[types.Protocol.HTTP],
            settings_schema="",
        )

    def validate_config(self, settings: str) -> None:
        # A `result<_, string>` export: return normally for ok, raise
        # componentize_py_types.Err(message) for err.
        try:
            value = json.loads(settings)
        except ValueError as e:
            raise Err(f"settings are not valid JSON: {e}")
        if not isinstance(value, dict):
            raise Err(f"settings must be a JSON object, got {type(value).__name__}")


class Http(exports.Http):
    def on_request(self, ctx: types.Context, request) -> types.Decision:
        if request.method.upper() == "DELETE" and ALLOWED_GROUP not in ctx.principal.groups:
            return _decision(types.Verdict_Deny(DENY_REASON))
        return _decision(types.Verdict_Allow())

    def on_response(self, ctx: types.Context, request, response) -> types.Decision:
        return _decision(
            types.Verdict_Mask(
                [
                    types.MaskRule(
                        target=types.MaskTarget_Detector("email"),
                        method=types.MaskMethod_Redact(),
                    )
                ]
            )
        )

"""python-http: Denies DELETE unless the caller is in an allowed group; masks e-mail addresses in responses.

Built into a component by componentize-py against the WIT world
`gatehouse:policy/http-policy@0.1.0` (see the Makefile). componentize-py
looks up one class per exported interface, named after it in CamelCase.
"""

import json

from componentize_py_types import Err
from wit_world import exports
from wit_world.exports import meta, http
from wit_world.imports import host, types


def _settings():
    value = json.loads(host.settings())
    value.setdefault("allow_groups", ["ops"])
    return value


def _in_any(ctx, groups):
    return any(g in ctx.principal.groups for g in groups)


def _decision(verdict):
    return types.Decision(verdict=verdict, annotations=[])


def _detector(name):
    return types.MaskRule(target=types.MaskTarget_Detector(name), method=types.MaskMethod_Redact())


def _column(name):
    return types.MaskRule(target=types.MaskTarget_Column(name), method=types.MaskMethod_Redact())


class Meta(exports.Meta):
    def describe(self):
        return meta.Description(
            name="python-http",
            version="0.1.0",
            summary="Denies DELETE unless the caller is in an allowed group; masks e-mail addresses in responses",
            protocols=[types.Protocol.HTTP],
            settings_schema="",
        )

    def validate_config(self, settings):
        try:
            value = json.loads(settings)
        except ValueError as e:
            raise Err(f"settings are not valid JSON: {e}")
        if not isinstance(value, dict):
            raise Err("settings must be a JSON object")
        unknown = set(value) - {"allow_groups"}
        if unknown:
            raise Err(f"unknown settings key {sorted(unknown)[0]!r}")
        groups = value.get("allow_groups", [])
        if not (isinstance(groups, list) and all(isinstance(g, str) for g in groups)):
            raise Err("allow_groups: must be a list of strings")


class Http(exports.Http):
    def on_request(self, ctx, request):
        if request.method.upper() == "DELETE" and not _in_any(ctx, _settings()["allow_groups"]):
            return _decision(types.Verdict_Deny("DELETE needs one of the allowed groups"))
        return _decision(types.Verdict_Allow())

    def on_response(self, ctx, request, response):
        return _decision(types.Verdict_Mask([_detector("email")]))

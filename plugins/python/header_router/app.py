"""Switchyard header router in Python (componentize-py).

Same behaviour as the Rust `header-router`: routes by the value of one header.

Config: `header` (default `route`), `route.<value>` → queue, `default` → queue for the rest;
without `default`, unmatched messages are dead-lettered.
"""

import wit_world
from wit_world.imports import config, types


def _text(value):
    if isinstance(value, types.HeaderValue_Text):
        return value.value
    if isinstance(value, types.HeaderValue_Boolean):
        return "true" if value.value else "false"
    if isinstance(
        value,
        (
            types.HeaderValue_Int8, types.HeaderValue_Uint8, types.HeaderValue_Int16,
            types.HeaderValue_Uint16, types.HeaderValue_Int32, types.HeaderValue_Uint32,
            types.HeaderValue_Int64, types.HeaderValue_Uint64,
        ),
    ):
        return str(value.value)
    return None


class WitWorld(wit_world.WitWorld):
    def route(self, msg: types.Message, ctx: types.RouteContext) -> types.Verdict:
        header = config.get("header") or "route"
        value = None
        for name, v in msg.headers:
            if name == header:
                value = _text(v)
                break
        queue = None
        if value is not None:
            queue = config.get("route." + value)
        if queue is None:
            queue = config.get("default")
        if queue is None:
            if value is None:
                return types.Verdict_DeadLetter("missing header " + header)
            return types.Verdict_DeadLetter("no route for " + header + "=" + value)
        return types.Verdict_Deliver([types.Destination(types.Target_Queue(queue), None, None)])

"""Switchyard header router in Python, for the `view-router` world (componentize-py).

Same behaviour as `../header_router` (and the Rust `header-router`), but the message is lent as
a `message-view` and the router asks for the one header it needs, instead of receiving every
field copied into Python objects. Its verdict depends only on that header and its config, so it
can be deployed with the broker's verdict cache (`--config switchyard.verdict-cache=on`): the
broker then calls it once per distinct header value instead of once per message.

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
    def route(self, msg) -> types.Verdict:
        header = config.get("header") or "route"
        found = msg.header(header)
        value = _text(found) if found is not None else None
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

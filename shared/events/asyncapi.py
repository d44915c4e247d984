"""The AsyncAPI 3.0 document of the platform's topics, generated from the event catalog so it
cannot drift from the code. `ido asyncapi` prints it; docs/asyncapi.json is its committed copy."""

from typing import Any

from pydantic.json_schema import models_json_schema

from shared import reference
from shared.events import catalog
from shared.events.envelope import CONTENT_TYPE, CloudEvent

REF = "#/components/schemas/{model}"


def _channel_id(address: str) -> str:
    return address.replace("{agency}", "agency").replace(".", "-")


def _envelope(event_type: str, data_ref: str) -> dict[str, Any]:
    """The CloudEvent envelope's schema with this event type's `type` and `data` filled in."""
    schema = CloudEvent.model_json_schema()
    properties = {**schema["properties"], "type": {"const": event_type}, "data": {"$ref": data_ref}}
    return {"type": "object", "required": schema["required"], "properties": properties}


def document(version: str = "1.0.0") -> dict[str, Any]:
    models = list(catalog.EVENT_TYPES.values())
    keys, definitions = models_json_schema([(m, "serialization") for m in models], ref_template=REF)
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for model in models:
        name = model.event_name
        channel_id = _channel_id(model.topic_template)
        channel = channels.setdefault(channel_id, {"address": model.topic_template, "messages": {}})
        if "{agency}" in model.topic_template:
            channel["parameters"] = {"agency": {"enum": list(reference.AGENCIES), "description": "agency code"}}
            channel["description"] = (
                "One topic per receiving organisation, so broker ACLs can give each agency its own."
            )
        channel["messages"][name] = {"$ref": f"#/components/messages/{name}"}
        messages[name] = {
            "name": name,
            "title": f"nl.ido.{name}",
            "summary": model.summary,
            "contentType": CONTENT_TYPE,
            "headers": {"type": "object", "properties": {"content-type": {"const": CONTENT_TYPE}}},
            "bindings": {
                "kafka": {"key": {"type": "string", "description": f"the CloudEvent subject ({model.subject_field})"}}
            },
            "payload": _envelope(f"nl.ido.{name}", keys[(model, "serialization")]["$ref"]),
        }
        operations[f"{model.producer}Sends{name}"] = {
            "action": "send",
            "summary": f"{model.producer} publishes {name}",
            "channel": {"$ref": f"#/channels/{channel_id}"},
            "messages": [{"$ref": f"#/channels/{channel_id}/messages/{name}"}],
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "IDO platform events",
            "version": version,
            "description": (
                "CloudEvents 1.0 in structured JSON mode (NL GOV profile) on Kafka. The record key is the "
                "event's subject; every topic has a `<topic>.dlq` sibling for records that could not be processed."
            ),
        },
        "defaultContentType": CONTENT_TYPE,
        "servers": {"local": {"host": "127.0.0.1:9092", "protocol": "kafka", "description": "make up"}},
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages, "schemas": definitions.get("$defs", {})},
    }

"""Request schemas that validate input and describe themselves for OpenAPI.

One definition serves both: ``validate`` turns a bad value into a
VALIDATION_ERROR naming the field, ``openapi`` gives the JSON Schema.
"""

from __future__ import annotations

import re
import uuid
from dataclasses import dataclass, field
from typing import Any

from nexusctl.core import metadata
from nexusctl.enums import Provider
from nexusctl.errors import UsageProblem


@dataclass(frozen=True)
class Str:
    max_length: int | None = None
    min_length: int = 0
    enum: tuple[str, ...] | None = None
    format: str | None = None  # "uuid"
    description: str = ""
    pattern: str | None = None  # the whole value must match (re.fullmatch; JSON Schema anchors it with ^...$)
    hint: str = ""  # what a matching value looks like, for the error message

    def check(self, name: str, value: Any) -> Any:
        if not isinstance(value, str):
            raise UsageProblem(f"{name} must be a string", field=name)
        if self.format == "uuid":
            try:
                return uuid.UUID(value)
            except ValueError:
                raise UsageProblem(f"{name} must be a UUID", field=name) from None
        if len(value) < self.min_length or (self.max_length is not None and len(value) > self.max_length):
            raise UsageProblem(f"{name} must be {self.min_length}-{self.max_length} characters", field=name)
        if self.enum is not None and value not in self.enum and value.upper() not in self.enum:
            raise UsageProblem(f"{name} must be one of: {', '.join(self.enum)}", field=name)
        if self.pattern is not None and not re.fullmatch(self.pattern, value):
            raise UsageProblem(f"{name} must be {self.hint or 'text matching ' + self.pattern}", field=name)
        return value

    def openapi(self) -> dict:
        out: dict = {"type": "string"}
        if self.format:
            out["format"] = self.format
        if self.max_length is not None:
            out["maxLength"] = self.max_length
        if self.min_length:
            out["minLength"] = self.min_length
        if self.enum:
            out["enum"] = list(self.enum)
        if self.pattern:
            out["pattern"] = f"^(?:{self.pattern})$"
        return _described(out, self.description)


@dataclass(frozen=True)
class Bool:
    description: str = ""

    def check(self, name: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise UsageProblem(f"{name} must be true or false", field=name)
        return value

    def openapi(self) -> dict:
        return _described({"type": "boolean"}, self.description)


@dataclass(frozen=True)
class Int:
    minimum: int | None = None
    maximum: int | None = None
    description: str = ""

    def check(self, name: str, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise UsageProblem(f"{name} must be a whole number", field=name)
        if (self.minimum is not None and value < self.minimum) or (self.maximum is not None and value > self.maximum):
            raise UsageProblem(f"{name} must be from {self.minimum} to {self.maximum}", field=name)
        return value

    def openapi(self) -> dict:
        out: dict = {"type": "integer"}
        if self.minimum is not None:
            out["minimum"] = self.minimum
        if self.maximum is not None:
            out["maximum"] = self.maximum
        return _described(out, self.description)


@dataclass(frozen=True)
class Obj:
    """A free-form JSON object (metadata, event data)."""

    description: str = ""
    max_keys: int | None = None  # documented; core's check_metadata enforces it (and the size) as a 413

    def check(self, name: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise UsageProblem(f"{name} must be a JSON object", field=name)
        return value

    def openapi(self) -> dict:
        out: dict = {"type": "object", "additionalProperties": True}
        if self.max_keys is not None:
            out["maxProperties"] = self.max_keys
        return _described(out, self.description)


def metadata_field(description: str = "") -> Obj:
    """Caller metadata: at most metadata.MAX_KEYS keys and MAX_BYTES of JSON, else 413 PAYLOAD_TOO_LARGE."""
    bound = f"at most {metadata.MAX_KEYS} keys and {metadata.MAX_BYTES} bytes of JSON"
    return Obj(f"{description} ({bound})" if description else bound.capitalize(), max_keys=metadata.MAX_KEYS)


@dataclass(frozen=True)
class Body:
    """A JSON object body with known fields; unknown fields are refused."""

    fields: dict[str, Any]
    required: tuple[str, ...] = ()
    min_fields: int = 0

    def validate(self, value: Any) -> dict:
        if not isinstance(value, dict):
            raise UsageProblem("the body must be a JSON object")
        unknown = sorted(set(value) - set(self.fields))
        if unknown:
            raise UsageProblem(f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
        for name in self.required:
            if name not in value:
                raise UsageProblem(f"{name} is required", field=name)
        if len(value) < self.min_fields:
            raise UsageProblem(f"give at least one of: {', '.join(self.fields)}")
        return {name: self.fields[name].check(name, item) for name, item in value.items()}

    def openapi(self) -> dict:
        out = {
            "type": "object",
            "properties": {name: spec.openapi() for name, spec in self.fields.items()},
            "additionalProperties": False,
        }
        if self.required:
            out["required"] = list(self.required)
        if self.min_fields:
            out["minProperties"] = self.min_fields
        return out


@dataclass(frozen=True)
class Query:
    """Query-string parameters (all optional), parsed from text.

    A parameter the route does not know is ignored, as HTTP caches and browsers expect: a
    cache-buster (``?_=1733356800``) or a tracking parameter must not turn a read into a 400.
    """

    params: dict[str, Any] = field(default_factory=dict)

    def validate(self, query) -> dict:
        values = {}
        for name, spec in self.params.items():
            if name in query:
                values[name] = spec.check(name, _from_text(spec, name, query.getone(name)))
        return values


def _from_text(spec, name: str, text: str):
    if isinstance(spec, Bool):
        lowered = text.lower()
        if lowered not in ("true", "false"):
            raise UsageProblem(f"{name} must be true or false", field=name)
        return lowered == "true"
    if isinstance(spec, Int):
        try:
            return int(text)
        except ValueError:
            raise UsageProblem(f"{name} must be a whole number", field=name) from None
    return text


def _described(out: dict, description: str) -> dict:
    if description:
        out["description"] = description
    return out


@dataclass(frozen=True)
class ProviderName:
    """A provider of the spec's enum, any case; anything else is INVALID_PROVIDER (the spec's code).

    ``only`` narrows what the document lists to the providers the route can use (API-key providers);
    the route's own check refuses the others with VALIDATION_ERROR, naming the right route.
    """

    description: str = ""
    only: tuple[str, ...] | None = None

    def check(self, name: str, value: Any) -> str:
        if not isinstance(value, str):
            raise UsageProblem(f"{name} must be a string", field=name)
        return Provider.parse(value).value

    def openapi(self) -> dict:
        names = list(self.only) if self.only is not None else [p.value for p in Provider]
        return _described({"type": "string", "enum": names, "description": "case-insensitive"}, self.description)


@dataclass(frozen=True)
class StrList:
    """A JSON array of strings (event names)."""

    max_items: int = 50
    description: str = ""
    item: Str = Str()  # each item: length, pattern

    def check(self, name: str, value: Any) -> list:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise UsageProblem(f"{name} must be a list of strings", field=name)
        if not 1 <= len(value) <= self.max_items:
            raise UsageProblem(f"{name} must have 1-{self.max_items} items", field=name)
        for item in value:
            try:
                self.item.check(name, item)
            except UsageProblem:
                raise UsageProblem(f"{name}: {item[:64]!r} is not {self.item.hint or 'valid'}", field=name) from None
        return value

    def openapi(self) -> dict:
        return _described(
            {"type": "array", "items": self.item.openapi(), "minItems": 1, "maxItems": self.max_items}, self.description
        )


@dataclass(frozen=True)
class ObjList:
    """A JSON array of objects (a batch); each item is checked by the route, so one bad item is refused alone."""

    max_items: int
    item: Body
    description: str = ""

    def check(self, name: str, value: Any) -> list:
        if not isinstance(value, list) or not all(isinstance(item, dict) for item in value):
            raise UsageProblem(f"{name} must be a list of objects", field=name)
        if not 1 <= len(value) <= self.max_items:
            raise UsageProblem(f"{name} must have 1-{self.max_items} items", field=name)
        return value

    def openapi(self) -> dict:
        # Items are documented as objects only: one that breaks the item's rules is answered in the
        # batch's results (its error), not with a 400 for the whole request.
        item = {
            "type": "object",
            "description": "checked on its own against: "
            + ", ".join(
                f"{name} ({'required' if name in self.item.required else 'optional'})" for name in self.item.fields
            ),
        }
        return _described({"type": "array", "items": item, "minItems": 1, "maxItems": self.max_items}, self.description)

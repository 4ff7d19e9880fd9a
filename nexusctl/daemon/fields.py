"""Field types of the API's request models (pydantic), and how a pydantic refusal becomes VALIDATION_ERROR.

Request bodies and query strings are ``TypedDict`` models validated by pydantic: one definition checks
the input and, through pydantic's JSON Schema generation, describes it in /openapi.json. The types here
are the API's recurring fields (ids, bounded text, event names, metadata, providers); ``usage_problem``
turns pydantic's first error into the spec's VALIDATION_ERROR, naming the field as the API always has.
"""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainValidator,
    Strict,
    ValidationError,
    with_config,
)
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict  # pydantic needs typing_extensions' TypedDict before Python 3.12

from nexusctl.core import metadata
from nexusctl.core.paging import MAX_LIMIT
from nexusctl.enums import Provider
from nexusctl.errors import UsageProblem

# Request bodies: JSON types as sent (no "5" for 5, no "yes" for true), unknown fields refused.
BODY = ConfigDict(extra="forbid", strict=True)
# Query strings: text parsed by the field types below; a parameter the route does not know is ignored, as HTTP
# caches and browsers expect (a cache-buster ``?_=1733356800`` must not turn a read into a 400).
QUERY = ConfigDict(extra="ignore", strict=True)

# A UUID arrives as text (JSON has no UUID type): strict mode would take only uuid.UUID objects in Python input.
Id = Annotated[uuid.UUID, Strict(False)]

# What a value matching a pattern looks like, for the error message (keyed by the anchored pattern).
_HINTS: dict[str, str] = {}


def Text(max_length: int | None = None, min_length: int | None = None, description: str | None = None) -> Any:
    return Annotated[str, Field(max_length=max_length, min_length=min_length, description=description)]


def Matching(pattern: str, hint: str, max_length: int | None = None, min_length: int | None = None) -> Any:
    """Text the whole of which matches ``pattern`` (anchored, so JSON Schema and the check agree)."""
    anchored = f"^(?:{pattern})$"
    _HINTS[anchored] = hint
    return Annotated[str, Field(pattern=anchored, max_length=max_length, min_length=min_length)]


def OneOf(values, description: str | None = None) -> Any:
    """One of ``values``; one given in another case is taken as the listed one (``completed``: COMPLETED)."""
    values = tuple(values)

    def as_listed(value):
        if isinstance(value, str) and value not in values and value.upper() in values:
            return value.upper()
        return value

    return Annotated[Literal[values], BeforeValidator(as_listed), Field(description=description)]


def Metadata(description: str = "") -> Any:
    """Caller metadata: a JSON object; over metadata.MAX_KEYS keys or MAX_BYTES of JSON it is 413
    PAYLOAD_TOO_LARGE (core's check_metadata), so the key bound is documented, not checked here."""
    bound = f"at most {metadata.MAX_KEYS} keys and {metadata.MAX_BYTES} bytes of JSON"
    return Annotated[
        dict[str, Any],
        Field(
            description=f"{description} ({bound})" if description else bound.capitalize(),
            json_schema_extra={"maxProperties": metadata.MAX_KEYS},
        ),
    ]


def _provider(value: Any) -> str:
    if not isinstance(value, str):
        raise PydanticCustomError("string_type", "must be a string")
    return Provider.parse(value).value  # anything else: INVALID_PROVIDER (the spec's code), raised as is


def ProviderName(only=None, description: str = "case-insensitive") -> Any:
    """A provider of the spec's enum, any case; anything else is INVALID_PROVIDER.

    ``only`` narrows what the document lists to the providers the route can use (API-key providers);
    the route's own check refuses the others with VALIDATION_ERROR, naming the right route.
    """
    names = tuple(p.value for p in (only or Provider))
    return Annotated[
        str, PlainValidator(_provider, json_schema_input_type=Literal[names]), Field(description=description)
    ]


def AtLeastOne(model) -> Any:
    """A body of ``model`` (all fields optional) that must name at least one of them."""
    names = ", ".join(model.__annotations__)

    def check(value: dict) -> dict:
        if not value:
            raise PydanticCustomError("at_least_one", "give at least one of: " + names)
        return value

    return Annotated[model, AfterValidator(check), Field(json_schema_extra={"minProperties": 1})]


def _bool_from_text(value: Any) -> Any:
    if isinstance(value, str):
        lowered = value.lower()
        if lowered not in ("true", "false"):
            raise PydanticCustomError("bool_parsing", "must be true or false")
        return lowered == "true"
    return value


def _int_from_text(value: Any) -> Any:
    if isinstance(value, str):
        try:
            return int(value)
        except ValueError:
            raise PydanticCustomError("int_parsing", "must be a whole number") from None
    return value


QueryBool = Annotated[bool, BeforeValidator(_bool_from_text)]


def QueryInt(minimum: int, maximum: int, description: str | None = None) -> Any:
    # The bounds first: pydantic then states them as JSON Schema's minimum and maximum.
    return Annotated[int, Field(ge=minimum, le=maximum, description=description), BeforeValidator(_int_from_text)]


@with_config(QUERY)
class PagingQuery(TypedDict, total=False):
    limit: QueryInt(1, MAX_LIMIT, "rows per page")
    cursor: Text(max_length=512, description="from paging.nextCursor")


def usage_problem(exc: ValidationError) -> UsageProblem:
    """The first of pydantic's errors as VALIDATION_ERROR, with the message and field the API has always used:
    unknown fields first (all named), then a missing one, then the first bad value."""
    errors = exc.errors(include_url=False)
    unknown = sorted(str(e["loc"][0]) for e in errors if e["type"] == "extra_forbidden" and len(e["loc"]) == 1)
    if unknown:
        return UsageProblem(f"unknown field(s): {', '.join(unknown)}", field=unknown[0])
    error = next((e for e in errors if e["type"] == "missing"), errors[0])
    loc, kind, ctx = error["loc"], error["type"], error.get("ctx") or {}
    if kind == "at_least_one":
        return UsageProblem(error["msg"])
    if not loc:
        return UsageProblem("the body must be a JSON object")
    name = str(loc[0])
    item = len(loc) > 1 and isinstance(loc[1], int)  # an item of a list (loc: name, index)
    if kind == "missing":
        message = "is required"
    elif kind == "string_type":
        message = "must be a list of strings" if item else "must be a string"
    elif kind.startswith("uuid"):
        message = "must be a UUID"
    elif kind == "string_too_short":
        message = _at("least", ctx["min_length"], "character")
    elif kind == "string_too_long":
        message = _at("most", ctx["max_length"], "character")
    elif kind == "too_short":
        message = _at("least", ctx["min_length"], "item", verb="have")
    elif kind == "too_long":
        message = _at("most", ctx["max_length"], "item", verb="have")
    elif kind.startswith("bool"):
        message = "must be true or false"
    elif kind.startswith("int"):
        message = "must be a whole number"
    elif kind == "greater_than_equal":
        message = f"must be at least {ctx['ge']}"
    elif kind == "less_than_equal":
        message = f"must be at most {ctx['le']}"
    elif kind == "dict_type":
        message = "must be a list of objects" if item else "must be a JSON object"
    elif kind == "list_type":
        message = "must be a JSON array"
    elif kind == "literal_error":
        message = f"must be one of: {ctx['expected']}"
    elif kind == "string_pattern_mismatch":
        hint = _HINTS.get(ctx.get("pattern"), "text matching " + str(ctx.get("pattern")))
        if item:
            return UsageProblem(f"{name}: {str(error['input'])[:64]!r} is not {hint}", field=name)
        message = f"must be {hint}"
    else:  # a type of error no field of ours makes; pydantic's own words
        message = error["msg"][:1].lower() + error["msg"][1:]
    return UsageProblem(f"{name} {message}", field=name)


def _at(bound: str, n: int, unit: str, verb: str = "be") -> str:
    return f"must {verb} at {bound} {n} {unit}{'' if n == 1 else 's'}"

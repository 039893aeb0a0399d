"""Reading and validating JSON request bodies against a resource's JSON Schema (Draft 2020-12).

Every refusal is a :class:`~callcore.web.api.problems.ProblemError` that names the offending
field: 413 past the size limit, 415 for a body that is not JSON, 400 for malformed JSON, 422
with one ``errors`` entry per field for a document the schema refuses. Messages never echo the
submitted value (it may be a password), only its type. Strings containing NUL are refused here
for every resource, because PostgreSQL can store NUL in neither ``text`` nor ``jsonb``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from http import HTTPStatus
from typing import Any

from aiohttp import web
from jsonschema import Draft202012Validator, FormatChecker
from jsonschema.exceptions import ValidationError as SchemaError

from callcore.web.api.problems import FieldError, ProblemError, field_error

DEFAULT_MAX_BYTES = 64 * 1024
MAX_ID = 2**63 - 1
"""The largest row id (PostgreSQL bigint) a path or a body may name."""
JSON_CONTENT_TYPES = frozenset({"application/json", "application/merge-patch+json"})
_CHUNK = 16 * 1024

TYPE_NAMES = {
    "string": "text",
    "integer": "an integer",
    "number": "a number",
    "boolean": "true or false",
    "object": "an object",
    "array": "a list",
    "null": "null",
}


def pointer(path: Iterator[Any] | list[Any] | tuple[Any, ...]) -> str:
    """The RFC 6901 JSON pointer of a path such as ``["label", "fr"]``: ``/label/fr``."""
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in path)


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _expected(kinds: Any) -> str:
    names = [kinds] if isinstance(kinds, str) else list(kinds)
    return " or ".join(TYPE_NAMES.get(name, name) for name in names)


def _described(error: SchemaError, root: str) -> list[FieldError]:
    """Turn one jsonschema error into field errors whose messages name the field."""
    where = pointer(error.absolute_path)
    name = where or root
    custom = error.schema.get("x-message") if isinstance(error.schema, Mapping) else None
    if custom:
        return [field_error(where, f"{name}: {custom}")]
    match error.validator:
        case "required":
            missing = [key for key in error.validator_value if key not in error.instance]
            return [field_error(f"{where}/{key}", f"{where}/{key} is required") for key in missing]
        case "additionalProperties":
            known = set(error.schema.get("properties", {}))
            read_only = set(error.schema.get("x-read-only", ()))
            return [
                field_error(
                    f"{where}/{key}",
                    f"{where}/{key} is read-only"
                    if key in read_only
                    else f"{where}/{key} is not a field of this resource",
                )
                for key in error.instance
                if key not in known
            ]
        case "type":
            return [
                field_error(
                    where,
                    f"{name} must be {_expected(error.validator_value)}, "
                    f"got {TYPE_NAMES[_json_type(error.instance)]}",
                )
            ]
        case "enum":
            choices = ", ".join(json.dumps(choice) for choice in error.validator_value)
            return [field_error(where, f"{name} must be one of {choices}")]
        case "const":
            return [field_error(where, f"{name} must be {json.dumps(error.validator_value)}")]
        case "pattern":
            return [field_error(where, f"{name} must match {error.validator_value}")]
        case "minLength":
            return [
                field_error(where, f"{name} must be at least {error.validator_value} characters")
            ]
        case "maxLength":
            return [
                field_error(where, f"{name} must be at most {error.validator_value} characters")
            ]
        case "minimum":
            return [field_error(where, f"{name} must be at least {error.validator_value}")]
        case "maximum":
            return [field_error(where, f"{name} must be at most {error.validator_value}")]
        case "format":
            return [field_error(where, f"{name} must be a valid {error.validator_value}")]
    return [field_error(where, f"{name}: {error.message}")]


def schema_errors(value: Any, schema: Mapping[str, Any], root: str) -> list[FieldError]:
    """Every field of ``value`` that ``schema`` refuses; ``root`` names the value as a whole."""
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    errors = sorted(validator.iter_errors(value), key=lambda e: (list(map(str, e.path)), e.message))
    return [entry for error in errors for entry in _described(error, root)] + list(
        _nul_strings(value, [], root)
    )


def validate(body: Any, schema: Mapping[str, Any]) -> None:
    """Raise ProblemError 422 listing every field of ``body`` that ``schema`` refuses."""
    problems = schema_errors(body, schema, "the body")
    if problems:
        raise ProblemError(
            HTTPStatus.UNPROCESSABLE_ENTITY,
            detail=f"The request has {len(problems)} invalid field(s).",
            errors=problems,
        )


def _nul_strings(value: Any, path: list[Any], root: str) -> Iterator[FieldError]:
    where = pointer(path)
    if isinstance(value, str) and "\x00" in value:
        yield field_error(where, f"{where or root} contains a NUL character")
    elif isinstance(value, list):
        for index, item in enumerate(value):
            yield from _nul_strings(item, [*path, index], root)
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                yield field_error(where, f"a field name in {where or root} contains a NUL")
            yield from _nul_strings(item, [*path, key], root)


def _refuse_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _unique_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """An object hook refusing duplicate keys, which parsers resolve differently."""
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise ValueError(f"the field {key!r} appears twice")
        result[key] = value
    return result


async def _read_limited(request: web.Request, max_bytes: int) -> bytes:
    too_large = ProblemError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        detail=f"The request body is larger than {max_bytes} bytes.",
    )
    if request.content_length is not None and request.content_length > max_bytes:
        raise too_large
    chunks: list[bytes] = []
    size = 0
    while chunk := await request.content.read(_CHUNK):
        size += len(chunk)
        if size > max_bytes:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def read_body(request: web.Request, max_bytes: int = DEFAULT_MAX_BYTES) -> Any:
    """Parse the request's JSON body, refusing oversized, non-JSON and malformed bodies."""
    if request.content_type not in JSON_CONTENT_TYPES:
        raise ProblemError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            detail=f"The body must be JSON (Content-Type application/json), "
            f"not {request.content_type!r}.",
        )
    raw = await _read_limited(request, max_bytes)
    try:
        return json.loads(
            raw.decode("utf-8"), parse_constant=_refuse_constant, object_pairs_hook=_unique_keys
        )
    except UnicodeDecodeError:
        raise ProblemError(HTTPStatus.BAD_REQUEST, detail="The body is not valid UTF-8.") from None
    except (ValueError, RecursionError) as error:
        raise ProblemError(
            HTTPStatus.BAD_REQUEST, detail=f"The body is not valid JSON: {error}"
        ) from None


async def read_json(
    request: web.Request, schema: Mapping[str, Any], max_bytes: int = DEFAULT_MAX_BYTES
) -> Any:
    """The request's JSON body, validated against ``schema``."""
    body = await read_body(request, max_bytes)
    validate(body, schema)
    return body

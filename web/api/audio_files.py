"""Uploaded prompts: ``/api/v1/audio-files`` (list, upload, get, delete).

An upload is ``multipart/form-data`` with ``name`` (``welcome``), ``language`` (``fr``/``en``)
and ``file`` (WAV, MP3, OGG, FLAC… anything SoX reads). It is streamed to a temporary file (past
``ivr.upload_max_bytes`` the answer is 413 and nothing is kept), converted by SoX in a
subprocess to 8 kHz mono 16-bit WAV, and renamed into place as
``<sounds_dir>/<language>/callcore/<name>.wav`` in the same transaction that stores its row, so
flows play it as ``callcore/<name>`` in the caller's language (:mod:`callcore.ivr.audio`). A file
SoX cannot read is a 422 quoting SoX. Staff list them; admins upload and delete. A prompt a flow
still plays (published version, draft or emergency message) cannot be deleted: the 409 names the
flows.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import tempfile
from collections.abc import Sequence
from http import HTTPStatus
from pathlib import Path
from typing import Any

import asyncpg
import attrs
from aiohttp import BodyPartReader, web

from callcore.config import LANGUAGES
from callcore.db import audio_files as store
from callcore.ivr import audio
from callcore.web.api.etags import check_version, if_match_tags
from callcore.web.api.ivr_flows import IF_MATCH_PARAMETER, READERS, WRITERS, describe
from callcore.web.api.pagination import CURSOR_PATTERN, LIMIT_SCHEMA, Filter, SortKey
from callcore.web.api.pagination import sort_parameter_schema as sort_schema
from callcore.web.api.problems import ProblemError, field_error
from callcore.web.api.resources import Condition, Resource, jsonable, list_page, read_write_roles
from callcore.web.api.users import ID_SCHEMA, READ_ONLY
from callcore.web.api.validation import validate
from callcore.web.api.writes import (
    audit_change,
    named_conflict,
    not_found,
    respond,
    row_id,
    transaction,
)
from callcore.web.auth import PRINCIPAL, requires
from callcore.web.keys import RUNTIME

ENTITY = "audio file"
AUDIT_ENTITY = "audio_file"
TAG = "audio-files"
FORM_OVERHEAD = 64 * 1024
"""Room for the form's other fields and boundaries on top of the file's own size limit."""
MAX_FIELD_BYTES = 1024
_CHUNK = 64 * 1024
_EXTENSION = re.compile(r"\.[A-Za-z0-9]{1,8}$")

NAME: dict[str, Any] = {
    "type": "string",
    "pattern": audio.NAME_PATTERN,
    "x-message": "must be 1-63 lowercase letters, digits, _ or -, starting with a letter or digit",
    "description": "Flows play it as callcore/<name>.",
}
LANGUAGE: dict[str, Any] = {"type": "string", "enum": list(LANGUAGES)}
UPLOAD_FIELDS: dict[str, Any] = {
    "type": "object",
    "required": ["name", "language", "file"],
    "additionalProperties": False,
    "properties": {
        "name": NAME,
        "language": LANGUAGE,
        "file": {"type": "string", "format": "binary", "description": "Any audio SoX reads."},
    },
}
AUDIO_FILE_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Audio file",
    "required": [
        "id",
        "name",
        "language",
        "sound",
        "path",
        "original_name",
        "duration_ms",
        "size_bytes",
        "uploaded_by",
        "version",
        "created_at",
        "updated_at",
    ],
    "properties": {
        "id": READ_ONLY["id"],
        "name": NAME,
        "language": LANGUAGE,
        "sound": {
            "type": "string",
            "description": "What a flow's sound parameter names: callcore/<name>.",
        },
        "path": {
            "type": "string",
            "description": "The file under the sounds directory, without .wav.",
        },
        "original_name": {"type": "string"},
        "duration_ms": {"type": "integer", "minimum": 0},
        "size_bytes": {"type": "integer", "minimum": 0},
        "uploaded_by": {"type": ["integer", "null"]},
        "version": READ_ONLY["version"],
        "created_at": READ_ONLY["created_at"],
        "updated_at": READ_ONLY["updated_at"],
    },
}
AUDIO_FILES = Resource(
    name="audio-files",
    entity=ENTITY,
    table="audio_files",
    schema=AUDIO_FILE_SCHEMA,
    roles=read_write_roles(read=READERS, write=WRITERS),
    sortable={
        "id": SortKey("id", "bigint"),
        "name": SortKey("name", "text"),
        "created_at": SortKey("created_at", "timestamptz"),
    },
    default_sort="name",
    filterable={"name": Filter("name", NAME), "language": Filter("language", LANGUAGE)},
    label_field="name",
)
_CONDITIONS: dict[str, Condition] = {
    "name": lambda p, v: f"name = {p(v)}",
    "language": lambda p, v: f"language = {p(v)}",
}
_UNIQUE = {"audio_files_name_language_key": "name", "audio_files_path_key": "name"}


@attrs.frozen
class Upload:
    """A received form: its text fields and the file as stored in a temporary directory."""

    fields: dict[str, str]
    file: Path | None
    original_name: str


def _served(row: dict[str, Any]) -> dict[str, Any]:
    return jsonable({**row, "sound": audio.sound_name(row["name"])})


async def _fetch(
    conn: asyncpg.Connection, *, where: str, args: Sequence[Any], order: str, limit: int
) -> list[dict[str, Any]]:
    rows = await store.list_audio_files(conn, where=where, args=args, order=order, limit=limit)
    return [_served(row) for row in rows]


async def _row(conn: asyncpg.Connection, file_id: int, *, lock: bool = False) -> dict[str, Any]:
    row = await store.get_audio_file(conn, file_id, lock=lock)
    if row is None:
        raise not_found(ENTITY, file_id)
    return _served(row)


def _too_large(max_bytes: int) -> ProblemError:
    return ProblemError(
        HTTPStatus.REQUEST_ENTITY_TOO_LARGE,
        detail=f"The file is larger than {max_bytes} bytes (ivr.upload_max_bytes).",
        errors=[field_error("/file", f"/file is larger than {max_bytes} bytes")],
    )


def _malformed(what: str) -> ProblemError:
    return ProblemError(HTTPStatus.BAD_REQUEST, detail=f"The upload form is malformed: {what}.")


async def _read_field(part: BodyPartReader) -> str:
    data = b""
    while chunk := await part.read_chunk(_CHUNK):
        data += chunk
        if len(data) > MAX_FIELD_BYTES:
            raise ProblemError(
                HTTPStatus.UNPROCESSABLE_ENTITY,
                detail=f"The field {part.name!r} is longer than {MAX_FIELD_BYTES} bytes.",
                errors=[field_error(f"/{part.name}", f"/{part.name} is too long")],
            )
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise _malformed(f"the field {part.name!r} is not UTF-8") from None


async def _save_file(part: BodyPartReader, directory: Path, max_bytes: int) -> Path:
    """Stream the file part to ``directory``, keeping its extension (SoX reads it as a hint)."""
    extension = _EXTENSION.search(part.filename or "")
    target = directory / f"upload{extension.group(0).lower() if extension else ''}"
    size = 0
    with await asyncio.to_thread(target.open, "wb") as out:
        while chunk := await part.read_chunk(_CHUNK):
            size += len(chunk)
            if size > max_bytes:
                raise _too_large(max_bytes)
            await asyncio.to_thread(out.write, chunk)
    return target


async def _receive(request: web.Request, directory: Path, max_bytes: int) -> Upload:
    """Read the form, the file into ``directory``; unknown or repeated fields are refused."""
    if request.content_type != "multipart/form-data":
        raise ProblemError(
            HTTPStatus.UNSUPPORTED_MEDIA_TYPE,
            detail="An upload is multipart/form-data with the fields name, language and file, "
            f"not {request.content_type!r}.",
        )
    if request.content_length is not None and request.content_length > max_bytes + FORM_OVERHEAD:
        raise _too_large(max_bytes)
    fields: dict[str, str] = {}
    file: Path | None = None
    original = ""
    try:
        reader = await request.multipart()
        while (part := await reader.next()) is not None:
            if not isinstance(part, BodyPartReader):
                raise _malformed("a nested multipart part")
            name = part.name or ""
            if name in fields or (name == "file" and file is not None):
                raise _malformed(f"the field {name!r} is sent twice")
            if name == "file":
                original = (part.filename or "")[:200]
                file = await _save_file(part, directory, max_bytes)
            elif name in UPLOAD_FIELDS["properties"]:
                fields[name] = await _read_field(part)
            else:
                raise ProblemError(
                    HTTPStatus.UNPROCESSABLE_ENTITY,
                    detail=f"{name!r} is not a field of an upload (name, language, file).",
                    errors=[field_error(f"/{name}", f"/{name} is not a field of an upload")],
                )
    except (ValueError, AssertionError) as exc:  # aiohttp's words for a broken form
        raise _malformed(str(exc) or type(exc).__name__) from None
    return Upload(fields, file, original)


def _check(upload: Upload) -> None:
    """422 naming every missing or invalid field."""
    document: dict[str, Any] = dict(upload.fields)
    if upload.file is not None:
        document["file"] = ""
    validate(document, UPLOAD_FIELDS)


def _audio_refused(error: audio.AudioError, original: str) -> ProblemError:
    if isinstance(error, audio.SoxMissing):
        return ProblemError(HTTPStatus.SERVICE_UNAVAILABLE, detail=f"{error}.")
    what = repr(original) if original else "The file"
    return ProblemError(
        HTTPStatus.UNPROCESSABLE_ENTITY,
        detail=f"{what} cannot be used as a prompt: {error}.",
        errors=[field_error("/file", f"/file: {error}")],
    )


def _upload_directory(sounds_dir: Path) -> Path:
    """A private directory for one upload, next to where it will be stored (same filesystem)."""
    sounds_dir.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=".upload-", dir=sounds_dir))


@requires(*READERS)
async def list_audio_files(request: web.Request) -> web.Response:
    return await list_page(request, AUDIO_FILES, _fetch, _CONDITIONS)


@requires(*READERS)
async def get_audio_file(request: web.Request) -> web.Response:
    file_id = row_id(request, ENTITY)
    async with request.app[RUNTIME].database.pool.acquire() as conn:
        return respond(await _row(conn, file_id))


@requires(*WRITERS)
async def upload_audio_file(request: web.Request) -> web.Response:
    settings = request.app[RUNTIME].settings
    max_bytes = settings.ivr.upload_max_bytes
    directory = await asyncio.to_thread(_upload_directory, settings.sounds_dir)
    try:
        upload = await _receive(request, directory, max_bytes)
        _check(upload)
        name, language = upload.fields["name"], upload.fields["language"]
        return await _store(request, upload, name, language, settings.sounds_dir)
    finally:
        await asyncio.to_thread(shutil.rmtree, directory, ignore_errors=True)


async def _store(
    request: web.Request, upload: Upload, name: str, language: str, sounds_dir: Path
) -> web.Response:
    """Convert, then store the row and rename the file into place together."""
    assert upload.file is not None
    pool = request.app[RUNTIME].database.pool
    if await pool.fetchval(
        "SELECT EXISTS (SELECT FROM audio_files WHERE name = $1 AND language = $2)", name, language
    ):
        raise ProblemError(
            HTTPStatus.CONFLICT,
            detail=f"There is already a {language} prompt named {name!r}: delete it first.",
            errors=[field_error("/name", f"/name {name!r} is already taken in {language}")],
        )
    destination = audio.file_path(sounds_dir, language, name)
    try:
        converted = await audio.convert(upload.file, upload.file.parent)
    except audio.AudioError as error:
        raise _audio_refused(error, upload.original_name) from None
    installed = False
    try:
        async with transaction(request, lambda error: named_conflict(error, _UNIQUE)) as write:
            row = await store.insert_audio_file(
                write.conn,
                name=name,
                language=language,
                path=audio.relative_path(language, name),
                original_name=upload.original_name,
                duration_ms=converted.duration_ms,
                size_bytes=converted.size_bytes,
                uploaded_by=request[PRINCIPAL].user_id,
            )
            after = _served(row)
            await audit_change(write, request, "create", AUDIT_ENTITY, row["id"], None, after)
            await asyncio.to_thread(audio.install, converted, destination)
            installed = True
    except BaseException:
        await asyncio.to_thread((destination if installed else converted.path).unlink, True)
        raise
    return respond(after, HTTPStatus.CREATED, f"{AUDIO_FILES.path}/{row['id']}")


@requires(*WRITERS)
async def delete_audio_file(request: web.Request) -> web.Response:
    file_id = row_id(request, ENTITY)
    async with transaction(request, lambda error: named_conflict(error, _UNIQUE)) as write:
        before = await _row(write.conn, file_id, lock=True)
        check_version(if_match_tags(request), before["version"])
        users = await store.sound_users(write.conn, before["sound"])
        if users:
            raise ProblemError(
                HTTPStatus.CONFLICT,
                detail=f"Prompt {before['sound']!r} cannot be deleted: {'; '.join(users)} "
                "still play it.",
            )
        await store.delete_audio_file(write.conn, file_id)
        await audit_change(write, request, "delete", AUDIT_ENTITY, file_id, before, None)
    sounds_dir = request.app[RUNTIME].settings.sounds_dir
    path = audio.file_path(sounds_dir, before["language"], before["name"])
    await asyncio.to_thread(path.unlink, True)
    return web.Response(status=HTTPStatus.NO_CONTENT)


def setup_audio_files_api(app: web.Application) -> None:
    """Add the audio file routes and their docs."""
    files = AUDIO_FILES
    app.router.add_get(files.path, list_audio_files, name="api.audio-files.list")
    app.router.add_post(files.path, upload_audio_file, name="api.audio-files.create")
    app.router.add_get(files.item_path, get_audio_file, name="api.audio-files.get")
    app.router.add_delete(files.item_path, delete_audio_file, name="api.audio-files.delete")
    one = AUDIO_FILE_SCHEMA
    id_parameter = {"name": "id", "in": "path", "required": True, "schema": ID_SCHEMA}
    list_parameters = [
        {"name": "limit", "in": "query", "schema": dict(LIMIT_SCHEMA)},
        {"name": "cursor", "in": "query", "schema": {"type": "string", "pattern": CURSOR_PATTERN}},
        {"name": "sort", "in": "query", "schema": sort_schema(files.sortable, files.default_sort)},
        *(
            {"name": name, "in": "query", "schema": dict(spec.schema)}
            for name, spec in files.filterable.items()
        ),
    ]
    page = {
        "type": "object",
        "required": ["items", "next_cursor"],
        "properties": {
            "items": {"type": "array", "items": one},
            "next_cursor": {"type": ["string", "null"]},
        },
    }
    describe(
        app,
        "get",
        files.path,
        operation_id="list_audio_files",
        summary="List uploaded prompts",
        roles=READERS,
        parameters=list_parameters,
        ok=(200, page, "One page."),
        errors=(400, 401, 403, 500),
        tag=TAG,
    )
    describe(
        app,
        "post",
        files.path,
        operation_id="upload_audio_file",
        summary="Upload a prompt: converted to 8 kHz mono WAV, played as callcore/<name>",
        roles=WRITERS,
        body=UPLOAD_FIELDS,
        media_type="multipart/form-data",
        ok=(201, one, "Stored and converted."),
        errors=(400, 401, 403, 409, 413, 415, 422, 500, 503),
        etag=True,
        tag=TAG,
    )
    describe(
        app,
        "get",
        files.item_path,
        operation_id="get_audio_file",
        summary="Get an uploaded prompt",
        roles=READERS,
        parameters=[id_parameter],
        ok=(200, one, "The prompt."),
        errors=(401, 403, 404, 500),
        etag=True,
        tag=TAG,
    )
    describe(
        app,
        "delete",
        files.item_path,
        operation_id="delete_audio_file",
        summary="Delete a prompt no flow plays, and its file",
        roles=WRITERS,
        parameters=[id_parameter, IF_MATCH_PARAMETER],
        ok=(204, None, "Deleted."),
        errors=(400, 401, 403, 404, 409, 412, 428, 500),
        tag=TAG,
    )

"""/api/v1/audio-files: real uploads made by SoX, converted by SoX to 8 kHz mono 16-bit WAV at
<sounds_dir>/<language>/callcore/<name>.wav; bad audio, oversized uploads and conflicts refused
with nothing left behind; deletes with If-Match, refused while a flow plays the prompt."""

import asyncio
import wave
from pathlib import Path

import attrs
import pytest
from _api_client import if_match, open_api, problem
from aiohttp import FormData

from callcore.config import IvrSettings

FILES = "/api/v1/audio-files"


async def sox(*args: str) -> None:
    process = await asyncio.create_subprocess_exec("sox", *args)
    assert await process.wait() == 0


@pytest.fixture
async def stereo_wav(tmp_path) -> Path:
    """Half a second of a 440 Hz tone, 44.1 kHz stereo 24-bit: nothing like the target."""
    path = tmp_path / "welcome-tone.wav"
    await sox("-n", "-r", "44100", "-c", "2", "-b", "24", str(path), "synth", "0.5", "sine", "440")
    return path


@pytest.fixture
async def admin(api):
    return await api.headers("admin")


def form(path: Path | None = None, *, data: bytes | None = None, **fields: str) -> FormData:
    body = FormData(default_to_multipart=True)
    for name, value in fields.items():
        body.add_field(name, value)
    if path is not None or data is not None:
        content = data if data is not None else path.read_bytes()
        body.add_field("file", content, filename=path.name if path else "upload.wav")
    return body


BOUNDARY = "callcore-test-boundary"


def multipart(content: bytes) -> bytes:
    """A form written by hand, to send it in chunks (no Content-Length to refuse it by)."""
    parts = [
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
        for name, value in (("name", "welcome"), ("language", "fr"))
    ]
    head = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="a.wav"\r\n'
        "Content-Type: audio/wav\r\n\r\n"
    ).encode()
    return b"".join([*parts, head, content, f"\r\n--{BOUNDARY}--\r\n".encode()])


async def chunked(data: bytes):
    for start in range(0, len(data), 4096):
        yield data[start : start + 4096]


def stored(sounds_dir: Path) -> list[str]:
    """Every file and directory under the sounds directory, relative."""
    return sorted(str(p.relative_to(sounds_dir)) for p in sounds_dir.rglob("*"))


async def test_an_upload_is_converted_for_asterisk_and_stored(api, admin, stereo_wav):
    sounds = api.runtime.settings.sounds_dir
    response = await api.client.post(
        FILES, data=form(stereo_wav, name="welcome", language="fr"), headers=admin
    )
    assert response.status == 201, await response.text()
    row = await response.json()
    assert response.headers["Location"] == f"{FILES}/{row['id']}"
    assert response.headers["ETag"] == f'"{row["version"]}"'
    assert row["name"] == "welcome" and row["language"] == "fr"
    assert row["sound"] == "callcore/welcome" and row["path"] == "fr/callcore/welcome"
    assert row["original_name"] == "welcome-tone.wav"
    assert row["duration_ms"] == 500
    target = sounds / "fr" / "callcore" / "welcome.wav"
    assert row["size_bytes"] == target.stat().st_size
    with wave.open(str(target), "rb") as converted:
        assert converted.getframerate() == 8000
        assert converted.getnchannels() == 1
        assert converted.getsampwidth() == 2
        assert converted.getnframes() == 4000
    assert stored(sounds) == ["fr", "fr/callcore", "fr/callcore/welcome.wav"]
    listed = await (await api.client.get(FILES, headers=await api.headers("supervisor"))).json()
    assert listed == {"items": [row], "next_cursor": None}
    assert await (await api.client.get(f"{FILES}/{row['id']}", headers=admin)).json() == row
    entry = await api.runtime.database.pool.fetchrow(
        "SELECT action, entity_type, after FROM audit_log"
    )
    assert (entry["action"], entry["entity_type"]) == ("create", "audio_file")
    assert entry["after"]["sound"] == "callcore/welcome"


async def test_other_formats_and_languages(api, admin, tmp_path):
    ogg = tmp_path / "bonjour.ogg"
    await sox("-n", "-r", "22050", "-c", "1", str(ogg), "synth", "1.25", "sine", "300")
    response = await api.client.post(
        FILES, data=form(ogg, name="welcome", language="en"), headers=admin
    )
    row = await response.json()
    assert response.status == 201, row
    assert row["path"] == "en/callcore/welcome" and abs(row["duration_ms"] - 1250) <= 1
    path = api.runtime.settings.sounds_dir / "en" / "callcore" / "welcome.wav"
    with wave.open(str(path), "rb") as converted:
        assert (converted.getframerate(), converted.getnchannels()) == (8000, 1)


async def test_bad_audio_is_refused_naming_what_sox_found(api, admin, stereo_wav):
    data = bytes(range(256)) * 8
    response = await api.client.post(
        FILES, data=form(data=data, name="broken", language="fr"), headers=admin
    )
    body = await problem(response, 422)
    assert body["errors"][0]["field"] == "/file"
    assert (
        "'upload.wav' cannot be used as a prompt: not an audio file SoX can read" in body["detail"]
    )
    assert "can't open input file `upload.wav': WAVE: RIFF header not found" in body["detail"]
    assert str(api.runtime.settings.sounds_dir) not in body["detail"], "no server path leaks"
    empty = await problem(
        await api.client.post(
            FILES, data=form(data=b"", name="empty", language="fr"), headers=admin
        ),
        422,
    )
    assert "SoX" in empty["detail"]
    assert stored(api.runtime.settings.sounds_dir) == [], "nothing is left behind"
    assert await api.count("audio_files") == 0 and await api.count("audit_log") == 0


@pytest.mark.parametrize(
    ("fields", "with_file", "expected"),
    [
        ({"name": "welcome"}, True, {"/language"}),
        ({"name": "welcome", "language": "fr"}, False, {"/file"}),
        ({"name": "Welcome!", "language": "fr"}, True, {"/name"}),
        ({"name": "welcome\n", "language": "fr"}, True, {"/name"}),
        ({"name": "../x", "language": "de"}, True, {"/name", "/language"}),
        ({"name": "welcome", "language": "fr", "owner": "me"}, True, {"/owner"}),
    ],
)
async def test_form_fields_are_checked_by_name(api, admin, stereo_wav, fields, with_file, expected):
    response = await api.client.post(
        FILES, data=form(stereo_wav if with_file else None, **fields), headers=admin
    )
    body = await problem(response, 422)
    assert {error["field"] for error in body["errors"]} == expected
    assert stored(api.runtime.settings.sounds_dir) == []
    assert await api.count("audio_files") == 0


async def test_a_name_is_taken_once_per_language(api, admin, stereo_wav):
    first = await api.client.post(
        FILES, data=form(stereo_wav, name="welcome", language="fr"), headers=admin
    )
    assert first.status == 201
    again = await problem(
        await api.client.post(
            FILES, data=form(stereo_wav, name="welcome", language="fr"), headers=admin
        ),
        409,
    )
    assert again["errors"][0]["field"] == "/name"
    assert stored(api.runtime.settings.sounds_dir) == [
        "fr",
        "fr/callcore",
        "fr/callcore/welcome.wav",
    ]


async def test_json_and_roles_are_refused(api, admin, stereo_wav):
    await problem(await api.client.post(FILES, json={"name": "x"}, headers=admin), 415)
    supervisor = await api.headers("supervisor")
    refused = await api.client.post(
        FILES, data=form(stereo_wav, name="welcome", language="fr"), headers=supervisor
    )
    assert refused.status == 403
    agent = await api.headers("agent")
    assert (await api.client.get(FILES, headers=agent)).status == 403


async def test_an_oversized_upload_is_refused_and_nothing_is_kept(
    aiohttp_client, callcore_settings, stereo_wav
):
    limit = 20_000
    settings = attrs.evolve(callcore_settings, ivr=IvrSettings(upload_max_bytes=limit))
    async with open_api(aiohttp_client, settings) as api:
        admin = await api.headers("admin")
        size = stereo_wav.stat().st_size
        assert size > limit
        body = await problem(
            await api.client.post(
                FILES, data=form(stereo_wav, name="welcome", language="fr"), headers=admin
            ),
            413,
        )
        assert body["errors"] == [
            {"field": "/file", "message": f"/file is larger than {limit} bytes"}
        ]
        streamed = await problem(
            await api.client.post(
                FILES,
                data=chunked(multipart(stereo_wav.read_bytes())),
                headers={**admin, "Content-Type": f"multipart/form-data; boundary={BOUNDARY}"},
            ),
            413,
        )
        assert streamed["errors"][0]["field"] == "/file"
        assert stored(settings.sounds_dir) == []
        assert await api.count("audio_files") == 0


async def test_deleting_a_prompt_removes_its_file_unless_a_flow_plays_it(api, admin, stereo_wav):
    response = await api.client.post(
        FILES, data=form(stereo_wav, name="welcome", language="fr"), headers=admin
    )
    row = await response.json()
    pool = api.runtime.database.pool
    flow_id = await pool.fetchval("INSERT INTO flows (name) VALUES ('Main') RETURNING id")
    graph = {
        "entry": "hi",
        "nodes": [{"id": "hi", "type": "play", "params": {"sound": "callcore/welcome"}}],
        "edges": [],
    }
    await pool.execute(
        "INSERT INTO flow_versions (flow_id, version_number, graph) VALUES ($1, 1, $2)",
        flow_id,
        graph,
    )
    url = f"{FILES}/{row['id']}"
    await problem(await api.client.delete(url, headers=admin), 428)
    used = await problem(await api.client.delete(url, headers=if_match(admin, row)), 409)
    assert "IVR flows ('Main')" in used["detail"] and "callcore/welcome" in used["detail"]
    await pool.execute("DELETE FROM flows")
    await pool.execute(
        "INSERT INTO settings (key, value) VALUES ('ivr.emergency', $1)",
        {"mode": "closed", "message": "callcore/welcome"},
    )
    emergency = await problem(await api.client.delete(url, headers=if_match(admin, row)), 409)
    assert "the global emergency override" in emergency["detail"]
    await pool.execute("DELETE FROM settings WHERE key = 'ivr.emergency'")
    deleted = await api.client.delete(url, headers=if_match(admin, row))
    assert deleted.status == 204
    assert stored(api.runtime.settings.sounds_dir) == ["fr", "fr/callcore"]
    assert await api.count("audio_files") == 0
    actions = await pool.fetch("SELECT action FROM audit_log ORDER BY id")
    assert [a["action"] for a in actions] == ["create", "delete"]

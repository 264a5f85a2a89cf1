"""Strict, streaming decoding (sources/encoding.py): exact offsets across chunks, transcoding, cleanup."""

from __future__ import annotations

import datetime as dt

import pytest

from loyalty_pipeline.sources import encoding
from loyalty_pipeline.sources.files import ExportError, find_export

DAY = dt.date(2026, 3, 10)


def _export(tmp_path, content: bytes, name: str = "accounts.csv"):
    path = tmp_path / DAY.isoformat() / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return find_export(tmp_path, DAY, name.split(".")[0], required=True)


@pytest.mark.parametrize("chunk", [1, 2, 3, 5, 1 << 20])
def test_the_offset_is_exact_whatever_the_chunks(tmp_path, monkeypatch, chunk):
    monkeypatch.setattr(encoding, "CHUNK", chunk)
    content = "a,b\ncafé,€\n".encode() + b"x,\xe9t\xc3\n"  # é and € span chunks; then a bad byte on line 3
    file = _export(tmp_path, content)
    offset = content.index(b"\xe9t")
    with pytest.raises(ExportError, match=rf"line 3, byte offset {offset}: b'\\xe9' is not utf-8"):
        encoding.utf8_path(file, "utf-8")


def test_a_truncated_multibyte_character_at_the_end_is_reported(tmp_path):
    content = "a\né".encode()[:-1]
    with pytest.raises(ExportError, match=rf"line 2, byte offset {len(content) - 1}: b'\\xc3' is not utf-8"):
        encoding.utf8_path(_export(tmp_path, content), "utf-8")


def test_valid_utf8_is_read_in_place(tmp_path):
    file = _export(tmp_path, "\ufeffa,b\nZoë,€\n".encode())
    assert encoding.utf8_path(file, "utf-8") == file.path


def test_windows_1252_is_transcoded_to_a_utf8_copy(tmp_path, monkeypatch):
    monkeypatch.setattr(encoding, "CHUNK", 3)
    text = "tier,note\nÉlite,€ “œuvre” ‰\n"
    file = _export(tmp_path, text.encode("cp1252"))
    copy = encoding.utf8_path(file, "windows-1252")
    assert copy != file.path and copy.read_text(encoding="utf-8") == text
    assert encoding.utf8_path(file, "windows-1252") == copy  # same content: the copy is reused


def test_transcoded_copies_do_not_pile_up(tmp_path):
    copies = [encoding.utf8_path(_export(tmp_path / str(i), f"a\n{i}é\n".encode("cp1252")), "windows-1252")
              for i in range(encoding._KEEP + 3)]
    assert [c.exists() for c in copies] == [False] * 3 + [True] * encoding._KEEP


def test_parquet_is_not_decoded(tmp_path):
    file = _export(tmp_path, b"PAR1 not really", name="accounts.parquet")
    assert encoding.utf8_path(file, "windows-1252") == file.path

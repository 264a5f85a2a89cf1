"""Strict, streaming decoding (ingest/encoding.py): exact offsets across chunks, transcoding, cleanup."""

from __future__ import annotations

import datetime as dt

import pytest

from loyalty_pipeline.ingest import encoding
from loyalty_pipeline.ingest.files import ExportError, find_export

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


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_a_line_over_the_limit_is_named_whatever_the_chunks(tmp_path, monkeypatch, chunk, newline):
    monkeypatch.setattr(encoding, "CHUNK", chunk)
    monkeypatch.setattr("loyalty_pipeline.ingest.readers.MAX_LINE_BYTES", 10)
    ok = newline.join([b"a,b", b"x" * 9, b"y"]) + newline  # the limit counts a CR before the LF
    assert encoding.utf8_path(_export(tmp_path / "ok", ok), "utf-8")
    long = newline.join([b"a,b", b"x" * 9, b"y" * 11, b"z"]) + newline
    with pytest.raises(ExportError, match=r"accounts\.csv: line 3 is longer than 10 bytes"):
        encoding.utf8_path(_export(tmp_path / "long", long), "utf-8")


@pytest.mark.parametrize("chunk", [1, 2, 5, 1 << 20])
@pytest.mark.parametrize(("content", "quotes", "blank_lines"), [
    (b"a,b\n1,x\n2,y\n", False, False),
    (b'a,b\n1,"x"\n', True, False),
    (b"a,b\n1,x\n\n2,y\n", False, True),
    (b"a,b\r\n1,x\r\n \t\r\n2,y\r\n", False, True),  # whitespace only, CRLF
    (b"a,b\r1,x\r\r2,y\r", False, True),  # lone CR
    (b"\na,b\n", False, True),  # before the header
    (b"a,b\n1,x\n  ", False, False),  # trailing spaces after the last line end: no line
])
def test_the_decode_pass_sees_quotes_and_blank_lines_whatever_the_chunks(tmp_path, monkeypatch, chunk, content,
                                                                          quotes, blank_lines):
    # Only a file with a `"` or a blank line needs its lines scanned to number its records.
    monkeypatch.setattr(encoding, "CHUNK", chunk)
    shape = encoding.text_shape(_export(tmp_path, content), "utf-8")
    assert (shape.quotes, shape.blank_lines) == (quotes, blank_lines)


@pytest.mark.parametrize("chunk", [1, 3, 7, 1 << 20])
@pytest.mark.parametrize("newline", [b"\n", b"\r\n", b"\r"])
def test_the_decode_pass_bounds_the_longest_line_whatever_the_chunks(tmp_path, monkeypatch, chunk, newline):
    # The readers are given this as their line limit: a line within one chunk is shorter than a chunk,
    # one across chunks is measured (a CR before the LF counts, as DuckDB counts it).
    monkeypatch.setattr(encoding, "CHUNK", chunk)
    monkeypatch.setattr(encoding, "_shapes", type(encoding._shapes)())  # shapes are kept by content
    content = newline.join([b"a,b", b"x" * 25, b"y"]) + newline
    longest = 25 + (newline == b"\r\n")
    assert encoding.text_shape(_export(tmp_path, content), "utf-8").longest_line == max(chunk, longest)
    unterminated = newline.join([b"a,b", b"y", b"x" * 25])  # the last line ends with the file
    assert encoding.text_shape(_export(tmp_path / "u", unterminated), "utf-8").longest_line == max(chunk, 25)


@pytest.mark.parametrize("folder", ["ex*", "e[x]", "o'brien", "a?b", "~home", "s3:"])
def test_a_path_duckdb_would_expand_is_read_through_a_plain_alias(tmp_path, folder):
    from loyalty_pipeline.ingest import readers

    file = _export(tmp_path / folder, b"a,b\n1,2\n")
    alias = encoding.utf8_path(file, "utf-8")
    assert alias != file.path and readers.is_plain(alias) and alias.resolve() == file.path.resolve()
    assert readers.literal(alias) == f"'{alias}'"
    with pytest.raises(ValueError, match="not a plain path"):
        readers.literal(file.path)  # a reader never gets the raw path

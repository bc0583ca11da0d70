"""The event-line codec: checksums catch any changed byte; lines round-trip exactly."""

import json

import pytest

from localflow.errors import InvalidValue
from localflow.store import codec, history


def record(seq, **extra):
    return {"seq": seq, "ts": "2026-11-25T19:20:48.123Z", "type": "TimerFired", "timer": 1, **extra}


def test_line_round_trips_and_puts_seq_ts_type_first_and_crc_last():
    line = codec.encode(record(3))
    assert line.endswith(b"\n")
    keys = list(json.loads(line))
    assert keys[:3] == ["seq", "ts", "type"] and keys[-1] == "crc"
    assert codec.decode(line.rstrip(b"\n")) == record(3)


def test_changed_value_is_detected_by_the_checksum():
    line = codec.encode(record(3)).replace(b'"timer":1', b'"timer":2')
    with pytest.raises(codec.LineError, match="checksum mismatch"):
        codec.decode(line.rstrip(b"\n"))


def test_line_without_crc_or_not_json_is_rejected():
    with pytest.raises(codec.LineError, match="no crc"):
        codec.decode(json.dumps(record(1)).encode())
    with pytest.raises(codec.LineError, match="not a JSON line"):
        codec.decode(b'{"seq":1,')


def test_unicode_payload_round_trips():
    rec = record(1, note="café ✓")
    assert codec.decode(codec.encode(rec).rstrip(b"\n")) == rec


def test_nan_is_refused_because_json_has_no_nan():
    with pytest.raises(InvalidValue, match="cannot be stored as JSON"):
        codec.encode(record(1, value=float("nan")))


def lines(*records):
    return b"".join(codec.encode(r) for r in records)


def test_parse_ignores_a_torn_tail_without_newline():
    data = lines(record(1), record(2)) + b'{"seq":3,"ts":"2026'
    read = history.parse("h.jsonl", data)
    assert [r["seq"] for r in read.records] == [1, 2]
    assert read.torn == b'{"seq":3,"ts":"2026'
    assert read.valid_size == len(lines(record(1), record(2)))


def test_parse_treats_trailing_nul_runs_as_torn():
    data = lines(record(1)) + b"\x00" * 40 + b"\n" + b"\x00" * 10
    read = history.parse("h.jsonl", data)
    assert [r["seq"] for r in read.records] == [1]
    assert read.torn.strip(b"\x00\n") == b""


def test_bad_line_followed_by_good_lines_is_corruption_naming_the_line():
    good = lines(record(1), record(2), record(3)).split(b"\n")
    good[1] = good[1].replace(b'"timer":1', b'"timer":9')
    with pytest.raises(history.HistoryCorruptError) as info:
        history.parse("h.jsonl", b"\n".join(good))
    assert info.value.line == 2 and "h.jsonl:2" in str(info.value)


def test_seq_gap_and_duplicate_are_corruption():
    with pytest.raises(history.HistoryCorruptError, match="expected seq 2, found 3"):
        history.parse("h.jsonl", lines(record(1), record(3)))
    with pytest.raises(history.HistoryCorruptError, match="expected seq 2, found 1"):
        history.parse("h.jsonl", lines(record(1), record(1)))

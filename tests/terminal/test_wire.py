"""The terminal protocol without sockets: control messages, base64, cmd checks, status
messages (SPEC §5.2–5.3), the history ring buffer and a viewer's bounded queue (SPEC §6).

Rules: no I/O; what is asserted is what a client sees on the wire.
"""

from __future__ import annotations

import json

import pytest
import trio

from loop_server.terminal import RingBuffer, Viewer
from loop_server.terminal._wire import (
    CLOSED,
    STOPPED,
    ControlMessage,
    InvalidMessage,
    check_cmd,
    decode_input,
    encode_error,
    encode_status,
    parse_control,
)


def test_a_full_create_message() -> None:
    message = parse_control(
        b'{"type":"create","container_id":"c1","channel_id":"ch","cmd":["sh","-c","x"],'
        b'"session_id":"s","data":"YQ==","rows":24,"cols":80,"extra":{"ignored":[1]}}'
    )
    assert message == ControlMessage(
        type="create",
        container_id="c1",
        channel_id="ch",
        cmd=("sh", "-c", "x"),
        session_id="s",
        data="YQ==",
        rows=24,
        cols=80,
    )


def test_keys_match_case_insensitively_and_the_last_one_wins() -> None:
    assert parse_control(b'{"TYPE":"attach","Session_ID":"a"}') == ControlMessage(
        type="attach", session_id="a"
    )
    assert parse_control(b'{"type":"a","Type":"b"}').type == "b"


def test_null_leaves_a_field_unset_and_null_is_an_empty_message() -> None:
    assert parse_control(b'{"type":"resize","rows":null,"cmd":null}') == ControlMessage(
        type="resize"
    )
    assert parse_control(b"null") == ControlMessage()
    assert parse_control(b' {"type":"stop"} \n').type == "stop"


def test_a_null_cmd_element_is_an_empty_argument() -> None:
    assert parse_control(b'{"type":"create","cmd":["sh",null]}').cmd == ("sh", "")


@pytest.mark.parametrize(
    "payload",
    [
        b"",
        b"not json",
        b"[]",
        b'"create"',
        b"42",
        b'{"type":"create"} {"type":"stop"}',  # trailing data: json.Unmarshal refuses it
        b'{"type":1}',
        b'{"type":"create","cmd":"sh"}',
        b'{"type":"create","cmd":[1]}',
        b'{"type":"create","cmd":{"a":1}}',
        b'{"type":"resize","rows":-1,"cols":5}',  # negative: fails unsigned decoding
        b'{"type":"resize","rows":1.5,"cols":5}',
        b'{"type":"resize","rows":2.0,"cols":5}',
        b'{"type":"resize","rows":true,"cols":5}',
        b'{"type":"resize","rows":"24","cols":5}',
        b'{"type":"resize","rows":18446744073709551616,"cols":5}',  # > uint64
        b'{"type":"resize","rows":NaN,"cols":5}',
        b'{"type":"input","data":["YQ=="]}',
        b"\xff\xfe\x00garbage",
    ],
)
def test_invalid_messages(payload: bytes) -> None:
    with pytest.raises(InvalidMessage):
        parse_control(payload)


def test_invalid_utf8_inside_strings_is_replaced_as_go_does() -> None:
    assert parse_control(b'{"type":"x\xffy"}').type == "x\ufffdy"


def test_lone_surrogate_escapes_become_the_replacement_character() -> None:
    """Go decodes "\\ud800" to U+FFFD; kept as a lone surrogate it could not even be encoded
    for Docker's API."""
    message = parse_control(b'{"type":"create","channel_id":"c\\udc00","cmd":["echo","\\ud800x"]}')
    assert message.channel_id == "c\ufffd"
    assert message.cmd == ("echo", "\ufffdx")
    assert parse_control(b'{"cmd":["\\ud83d\\ude00"]}').cmd == ("\U0001f600",)  # a pair


def test_uint64_range_is_accepted() -> None:
    assert parse_control(b'{"rows":18446744073709551615,"cols":0}').rows == 2**64 - 1


@pytest.mark.parametrize(
    ("data", "decoded"),
    [
        ("", b""),
        ("YQ==", b"a"),
        ("YWJj", b"abc"),
        ("YW\r\nJj", b"abc"),
        ("AAEC/w==", b"\0\1\2\xff"),
    ],
)
def test_base64_input(data: str, decoded: bytes) -> None:
    assert decode_input(data) == decoded


@pytest.mark.parametrize("data", ["YQ", "YQ=", "Y Q==", "YQ==YQ==", "=YQ=", "é", "YQ_-", "!!!!"])
def test_base64_must_be_standard_and_padded(data: str) -> None:
    with pytest.raises(InvalidMessage):
        decode_input(data)


def test_cmd_limits() -> None:
    assert check_cmd(()) is None
    assert check_cmd(tuple(["a"] * 64)) is None
    assert check_cmd(tuple(["a"] * 65)) == "cmd exceeds maximum arguments"
    assert check_cmd(("sh", "")) == "cmd contains empty argument"
    assert check_cmd(("echo", "a\x00b")) == "cmd contains NUL byte"


def test_status_messages_omit_empty_fields_and_end_with_a_newline() -> None:
    assert encode_status("created", session_id="0a1b2c3d") == (
        b'{"type":"created","session_id":"0a1b2c3d"}\n'
    )
    assert CLOSED == b'{"type":"closed"}\n'
    assert STOPPED == b'{"type":"stopped"}\n'
    assert encode_error("no active session", "no_session") == (
        b'{"type":"error","message":"no active session","error_code":"no_session"}\n'
    )


def test_status_messages_escape_like_go() -> None:
    encoded = encode_error('bad <input> & "q" \u2028 \\b', "invalid_input")
    assert encoded == (
        b'{"type":"error","message":"bad \\u003cinput\\u003e \\u0026 \\"q\\" \\u2028 \\\\b",'
        b'"error_code":"invalid_input"}\n'
    )
    assert json.loads(encoded)["message"] == 'bad <input> & "q" \u2028 \\b'


# -- the history ring buffer ----------------------------------------------------------------


def test_ring_keeps_the_most_recent_bytes_in_order() -> None:
    ring = RingBuffer(10)
    assert ring.snapshot() == b""
    ring.write(b"abc")
    ring.write(b"defg")
    assert ring.snapshot() == b"abcdefg"
    ring.write(b"hijkl")
    assert ring.snapshot() == b"cdefghijkl"
    ring.write(b"mn")
    assert ring.snapshot() == b"efghijklmn"
    ring.write(b"0123456789XY")  # larger than the capacity: only its tail
    assert ring.snapshot() == b"23456789XY"
    ring.write(b"z")
    assert ring.snapshot() == b"3456789XYz"
    assert len(ring) == 10


def test_ring_against_a_reference_on_many_writes() -> None:
    ring = RingBuffer(97)
    everything = bytearray()
    for n in range(400):
        chunk = bytes((n + i) % 251 for i in range(n % 13 + (n % 50 == 0) * 150))
        ring.write(chunk)
        everything += chunk
        assert ring.snapshot() == bytes(everything[-97:])


def test_ring_capacity_must_be_positive() -> None:
    with pytest.raises(ValueError, match="positive"):
        RingBuffer(0)


# -- a viewer's queue -------------------------------------------------------------------------


def test_a_viewer_that_falls_behind_loses_its_oldest_chunks() -> None:
    viewer = Viewer("s", max_bytes=10, max_chunks=3)
    for chunk in (b"aaaa", b"bbbb", b"cccc"):
        viewer.push(chunk)
    assert viewer.dropped_chunks == 1  # 12 bytes > 10: the oldest went
    viewer.push(b"d")
    viewer.push(b"e")  # 4 chunks > 3
    assert viewer.receive_output_nowait() == b"ccccde"
    assert (viewer.dropped_chunks, viewer.dropped_bytes) == (2, 8)
    with pytest.raises(trio.WouldBlock):
        viewer.receive_output_nowait()


def test_a_single_oversized_chunk_is_kept() -> None:
    viewer = Viewer("s", max_bytes=4, max_chunks=2)
    viewer.push(b"0123456789")
    assert viewer.receive_output_nowait() == b"0123456789"


def test_closing_a_viewer() -> None:
    viewer = Viewer("s", max_bytes=100, max_chunks=10)
    viewer.push(b"left")
    viewer.close()
    viewer.push(b"ignored")
    assert viewer.receive_output_nowait() == b"left"
    with pytest.raises(trio.EndOfChannel):
        viewer.receive_output_nowait()
    detached = Viewer("s", max_bytes=100, max_chunks=10)
    detached.push(b"dropped")
    detached.close(discard=True)
    with pytest.raises(trio.EndOfChannel):
        detached.receive_output_nowait()


async def test_receive_output_waits_and_joins_what_is_queued() -> None:
    viewer = Viewer("s", max_bytes=100, max_chunks=10)
    received: list[bytes] = []

    async def reader() -> None:
        received.append(await viewer.receive_output())

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            await trio.testing.wait_all_tasks_blocked()
            viewer.push(b"a")
            viewer.push(b"b")
    assert received == [b"ab"]


def test_the_listener_recognises_both_websocket_paths() -> None:
    from loop_server.serving._request_head import Sniff, sniff_paths

    paths = [b"/api/ws", b"/api/ws/terminal"]
    assert sniff_paths(b"GET /api/ws ", paths) == (Sniff.EVENTS, 0)
    assert sniff_paths(b"GET /api/ws/terminal?token=x", paths) == (Sniff.EVENTS, 1)
    assert sniff_paths(b"GET /api/ws/term", paths) == (Sniff.NEED_MORE, -1)
    assert sniff_paths(b"GET /api/ws/terminals", paths) == (Sniff.OTHER, -1)
    assert sniff_paths(b"GET /api/channels", paths) == (Sniff.OTHER, -1)
    assert sniff_paths(b"POST /api/ws/terminal ", paths) == (Sniff.OTHER, -1)

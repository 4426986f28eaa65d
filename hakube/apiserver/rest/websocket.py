"""Just enough WebSocket (RFC 6455) for ``kubectl exec`` of a command without stdin or a TTY.

kubectl (1.30+) opens ``pods/NAME/exec`` as a WebSocket with the ``v5.channel.k8s.io`` (or
``v4``) subprotocol: every binary message starts with a channel byte, 1 stdout, 2 stderr,
3 the final Status (success, or the non-zero exit code as a cause). The server here answers a
whole command at once (hakube's node agents run exec to completion), so only the handshake
and unmasked server frames are needed; what the client sends is not read.
"""

from __future__ import annotations

import base64
import hashlib
import json
import struct
from typing import Any

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PROTOCOLS = ("v5.channel.k8s.io", "v4.channel.k8s.io")
STDOUT, STDERR, ERROR = 1, 2, 3


def accept_key(key: str) -> str:
    return base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()


def pick_protocol(offered: str) -> str | None:
    """The channel protocol to speak, of those the client offers (None: none we speak)."""
    wanted = [p.strip() for p in offered.split(",")]
    return next((p for p in PROTOCOLS if p in wanted), None)


def frame(payload: bytes, opcode: int = 2) -> bytes:
    """One final, unmasked frame (server to client)."""
    n = len(payload)
    if n < 126:
        head = struct.pack("!BB", 0x80 | opcode, n)
    elif n < 1 << 16:
        head = struct.pack("!BBH", 0x80 | opcode, 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 127, n)
    return head + payload


def channel(number: int, data: bytes) -> bytes:
    return frame(bytes([number]) + data)


def exit_status(code: int) -> bytes:
    """The error channel's Status for a command's exit code."""
    doc: dict[str, Any] = {"metadata": {}, "status": "Success"}
    if code:
        doc = {
            "metadata": {},
            "status": "Failure",
            "message": f"command terminated with non-zero exit code: {code}",
            "reason": "NonZeroExitCode",
            "details": {"causes": [{"reason": "ExitCode", "message": str(code)}]},
        }
    return channel(ERROR, json.dumps(doc).encode())


def close() -> bytes:
    return frame(struct.pack("!H", 1000), opcode=8)

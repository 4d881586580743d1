"""CURVE for the harnesses' own ZeroMQ clients (docs/SECURITY.md): every socket made by a StackContext uses the
key pair a one-machine stack makes at first start (<data_dir>/keys/baton.key) as its client pair, and its public
key as the server key. Before the file exists (or with CURVE off) sockets stay plain."""
from __future__ import annotations

import os

import zmq

KEY_FILE: str | None = None  # set once the stack's data directory is known


def read_pair(path: str) -> tuple[bytes, bytes]:
    """(public, secret) from a `baton keygen`-style NAME.key file."""
    fields = dict(line.split(" ", 1) for line in open(path).read().splitlines() if " " in line)
    return fields["public"].strip().encode(), fields["secret"].strip().encode()


def apply(sock: zmq.Socket, key_file: str | None = None) -> zmq.Socket:
    path = key_file or KEY_FILE
    if path and os.path.exists(path):
        public, secret = read_pair(path)
        sock.curve_publickey, sock.curve_secretkey, sock.curve_serverkey = public, secret, public
    return sock


class StackContext(zmq.Context):
    """A context whose sockets use the stack's key pair (see the module's doc)."""

    def socket(self, socket_type, *args, **kwargs):  # type: ignore[override]
        return apply(super().socket(socket_type, *args, **kwargs))

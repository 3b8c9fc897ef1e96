"""Sealing the frames of one connection after its handshake, without sockets.

Both ends derive two keys from the cluster secret and the handshake's two nonces (HKDF-SHA256, RFC
5869), one per direction, so a frame can never be reflected back to its sender. Every frame is sealed
under its direction's key together with its sequence number and its length header: a frame that was
forged, replayed, reordered, dropped or altered fails to open, and nothing of it is decoded.

Integrity is always on: the body travels as it is, followed by a 16-byte HMAC-SHA256 tag. With
encryption the body is AES-256-GCM ciphertext instead (the sequence number is the nonce, unique per
key since every connection has keys of its own), whose 16-byte tag authenticates it the same way.
"""

from __future__ import annotations

import hashlib
import hmac

from .errors import ProtocolError

TAG = 16
_SEQ_BYTES = 12  # the AES-GCM nonce size; the HMAC covers the same 12 bytes


def derive_keys(secret: bytes, server_nonce: bytes, client_nonce: bytes, encrypted: bool) -> tuple[bytes, bytes]:
    """(client-to-server key, server-to-client key) of one connection. The mode is part of the
    derivation, so the two ends can never use keys of different modes."""
    prk = hmac.new(server_nonce + client_nonce, secret, hashlib.sha256).digest()
    mode = b"aes-256-gcm" if encrypted else b"hmac-sha256"

    def expand(direction: bytes) -> bytes:
        return hmac.new(prk, b"mrengine frames " + mode + b" " + direction + b"\x01", hashlib.sha256).digest()

    return expand(b"client->server"), expand(b"server->client")


class Sealer:
    """One direction of a connection: seals (or opens) its frames in order."""

    def __init__(self, key: bytes, encrypted: bool):
        self.seq = 0
        self.encrypted = encrypted
        if encrypted:
            from cryptography.hazmat.primitives.ciphers.aead import AESGCM

            self._aead = AESGCM(key)
        else:
            self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def _next_nonce(self) -> bytes:
        nonce = self.seq.to_bytes(_SEQ_BYTES, "big")
        self.seq += 1
        return nonce

    def _tag(self, nonce: bytes, header: bytes, body: bytes) -> bytes:
        mac = self._mac.copy()
        mac.update(nonce + header)
        mac.update(body)
        return mac.digest()[:TAG]

    def seal(self, header: bytes, body: bytes) -> bytes:
        """The body as it goes on the wire after `header`: TAG bytes longer than `body`."""
        nonce = self._next_nonce()
        if self.encrypted:
            return self._aead.encrypt(nonce, body, header)
        return b"".join((body, self._tag(nonce, header, body)))

    def open(self, header: bytes, sealed: bytes, peer: str) -> bytes:
        """The body of the next frame, or a ProtocolError if it is not the frame its sender sealed next."""
        seq = self.seq
        nonce = self._next_nonce()
        if self.encrypted:
            from cryptography.exceptions import InvalidTag

            try:
                return self._aead.decrypt(nonce, sealed, header)
            except InvalidTag:
                pass
        else:
            body, tag = sealed[:-TAG], sealed[-TAG:]
            if hmac.compare_digest(tag, self._tag(nonce, header, body)):
                return body
        raise ProtocolError(f"frame {seq} from {peer} failed its integrity check (forged, replayed, reordered or "
                            f"altered on the way); nothing of it was decoded")

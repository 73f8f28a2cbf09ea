"""An independent receiver for letterlock roots and status documents, from the specification alone.

Written from ``docs/spec/root.md``. Rules for this module:

- it MUST NOT import anything from the ``letterlock`` package, nor python-tuf or securesystemslib;
- it imports only the Python standard library and ``cryptography`` (pyca);
- where the specification is silent, it refuses.

:func:`run_vector` applies a vector of ``vectors/root/`` and returns what it decided, in the shape
of the vector's ``expect`` field, with the decision of each check.
"""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, mldsa
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

Document = dict[str, Any]
ROLES = ("root", "snapshot", "targets", "timestamp")
DUAL_PREFIX = b"letterlock/tuf-dual/v1\x00"
REASONS = ("compromised", "superseded", "compromised-unknown-time")


class Refused(Exception):
    def __init__(self, rule: str) -> None:
        super().__init__(rule)
        self.rule = rule


def canonical(value: Any) -> str:
    """OLPC canonical JSON, as TUF signs it (section 3.2)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list):
        return "[" + ",".join(canonical(item) for item in value) + "]"
    if isinstance(value, dict):
        items = sorted(value.items())
        return "{" + ",".join(canonical(k) + ":" + canonical(v) for k, v in items) + "}"
    raise Refused("malformed")


def _spki(key: Any) -> bytes:
    der: bytes = key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    return der


class Key:
    """One key of section 2: its identities, and a verify function."""

    def __init__(self, document: Any) -> None:
        if not isinstance(document, dict) or not isinstance(document.get("keyval"), dict):
            raise Refused("malformed")
        kind = (str(document.get("keytype")), str(document.get("scheme")))
        public = document["keyval"].get("public")
        if not isinstance(public, str):
            raise Refused("malformed")
        self.kind = kind
        try:
            self._load(kind, public)
        except (ValueError, TypeError):
            raise Refused("malformed") from None

    def _load(self, kind: tuple[str, str], public: str) -> None:
        if kind == ("ed25519", "ed25519"):
            self.key: Any = ed25519.Ed25519PublicKey.from_public_bytes(bytes.fromhex(public))
            self.identities = {_spki(self.key)}
        elif kind in (("ecdsa", "ecdsa-sha2-nistp256"), ("ecdsa", "ecdsa-sha2-nistp384")):
            self.key = load_pem_public_key(public.encode())
            curve = ec.SECP256R1 if kind[1].endswith("256") else ec.SECP384R1
            if not isinstance(self.key, ec.EllipticCurvePublicKey) or not isinstance(
                self.key.curve, curve
            ):
                raise Refused("malformed")
            self.identities = {_spki(self.key)}
        elif kind == ("ml-dsa", "ml-dsa-87/1"):
            self.key = load_pem_public_key(public.encode())
            if not isinstance(self.key, mldsa.MLDSA87PublicKey):
                raise Refused("malformed")
            self.identities = {_spki(self.key)}
        elif kind == ("letterlock-pq", "ml-dsa-87+ecdsa-sha2-nistp384"):
            raw = bytes.fromhex(public)
            if len(raw) != 2592 + 97 or raw[2592] != 4:
                raise Refused("malformed")
            ml = mldsa.MLDSA87PublicKey.from_public_bytes(raw[:2592])
            point = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP384R1(), raw[2592:])
            self.key = (ml, point)
            self.identities = {_spki(ml), _spki(point)}
        else:
            raise Refused("malformed")

    def verify(self, signature_hex: Any, payload: bytes) -> bool:
        try:
            signature = bytes.fromhex(signature_hex)
            return self._verify(signature, payload)
        except (InvalidSignature, ValueError, TypeError):
            return False

    def _verify(self, signature: bytes, payload: bytes) -> bool:
        kind = self.kind
        if kind[0] == "ed25519":
            self.key.verify(signature, payload)
        elif kind[0] == "ecdsa":
            algorithm = hashes.SHA256() if kind[1].endswith("256") else hashes.SHA384()
            self.key.verify(signature, payload, ec.ECDSA(algorithm))
        elif kind[0] == "ml-dsa":
            self.key.verify(signature, b"tuf\x01" + hashlib.sha512(payload).digest())
        else:
            ml, point = self.key
            if len(signature) != 4627 + 96:
                return False
            message = DUAL_PREFIX + payload
            ml.verify(signature[:4627], message, b"letterlock/v1")
            r, s = signature[4627 : 4627 + 48], signature[4627 + 48 :]
            der = encode_dss_signature(int.from_bytes(r, "big"), int.from_bytes(s, "big"))
            point.verify(der, message, ec.ECDSA(hashes.SHA384()))
        return True


def _expires(signed: Document) -> int:
    text = signed.get("expires")
    if not isinstance(text, str) or not text.endswith("Z"):
        raise Refused("malformed")
    try:
        when = datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        raise Refused("malformed") from None
    return int(when.timestamp())


def _version(signed: Document) -> int:
    version = signed.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise Refused("malformed")
    return version


class RootDoc:
    """A root's keys and roles (section 3.1)."""

    def __init__(self, document: Document) -> None:
        signed = document.get("signed")
        if not isinstance(signed, dict) or signed.get("_type") != "root":
            raise Refused("malformed")
        self.version = _version(signed)
        self.expires = _expires(signed)
        keys, roles = signed.get("keys"), signed.get("roles")
        if not isinstance(keys, dict) or not isinstance(roles, dict) or set(roles) != set(ROLES):
            raise Refused("malformed")
        self.keys = {keyid: Key(key) for keyid, key in keys.items()}
        self.roles: dict[str, tuple[list[str], int]] = {}
        for name, role in roles.items():
            keyids, threshold = role.get("keyids"), role.get("threshold")
            if (
                not isinstance(keyids, list)
                or len(set(keyids)) != len(keyids)
                or not isinstance(threshold, int)
                or threshold < 1
            ):
                raise Refused("malformed")
            self.roles[name] = (keyids, threshold)

    def meets(self, role: str, document: Document) -> bool:
        """Section 3.2: distinct keys of ``role`` that signed ``document`` reach the threshold."""
        signatures = _signatures(document)
        payload = canonical(document["signed"]).encode("utf-8")
        keyids, threshold = self.roles[role]
        groups: list[set[bytes]] = []
        for keyid in keyids:
            key = self.keys.get(keyid)
            if key is None or keyid not in signatures or not key.verify(signatures[keyid], payload):
                continue
            merged = set(key.identities)
            for group in [g for g in groups if g & merged]:
                groups.remove(group)
                merged |= group
            groups.append(merged)
        return len(groups) >= threshold


def _signatures(document: Document) -> dict[str, Any]:
    listed = document.get("signatures")
    if not isinstance(listed, list):
        raise Refused("malformed")
    signatures: dict[str, Any] = {}
    for entry in listed:
        if not isinstance(entry, dict) or not isinstance(entry.get("keyid"), str):
            raise Refused("malformed")
        if entry["keyid"] in signatures:
            raise Refused("malformed")
        signatures[entry["keyid"]] = entry.get("sig")
    return signatures


def update(trusted: RootDoc, document: Document) -> RootDoc:
    """Section 3.3, step 2."""
    new = RootDoc(document)
    if new.version <= trusted.version:
        raise Refused("rollback")
    if new.version != trusted.version + 1:
        raise Refused("skipped_version")
    if not trusted.meets("root", document):
        raise Refused("threshold")
    if not new.meets("root", document):
        raise Refused("self_threshold")
    return new


class StatusDoc:
    """Section 4.1."""

    def __init__(self, root: RootDoc, document: Document) -> None:
        signed = document.get("signed")
        if not isinstance(signed, dict) or signed.get("_type") != "timestamp":
            raise Refused("malformed")
        self.version = _version(signed)
        self.expires = _expires(signed)
        if not root.meets("timestamp", document):  # before the letterlock field is read
            raise Refused("threshold")
        body = signed.get("letterlock_status")
        if not isinstance(body, dict) or set(body) != {"issued", "keys", "principals"}:
            raise Refused("malformed")
        self.issued = _time(body["issued"])
        if self.issued >= self.expires:
            raise Refused("malformed")
        if not isinstance(body["keys"], dict) or not isinstance(body["principals"], dict):
            raise Refused("malformed")
        self.keys = {_fingerprint(k): _entry(v) for k, v in body["keys"].items()}
        self.principals = {k: _entry(v) for k, v in body["principals"].items()}
        self.signed = canonical(signed)

    def refuses(
        self, key: str | None, principal: str | None, dated: int, path: tuple[str, ...] = ()
    ) -> bool:
        """Section 4.4: the key, the principal, and every key on the path."""
        for entry in (self.keys.get(_fingerprint(key)) if key else None,
                      self.principals.get(principal) if principal else None,
                      *(self.keys.get(_fingerprint(k)) for k in path)):  # fmt: skip
            if entry is None:
                continue
            reason, since = entry
            if reason == "compromised-unknown-time" or since is None or dated >= since:
                return True
        return False


def _time(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise Refused("malformed")
    return value


def _fingerprint(text: Any) -> bytes:
    if not isinstance(text, str) or not text.startswith("SHA256:"):
        raise Refused("malformed")
    encoded = text[7:]
    try:
        raw = base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except ValueError:
        raise Refused("malformed") from None
    if len(raw) != 32 or base64.b64encode(raw).decode().rstrip("=") != encoded:
        raise Refused("malformed")
    return raw


def _entry(value: Any) -> tuple[str, int | None]:
    if not isinstance(value, dict) or not {"reason"} <= set(value) <= {"reason", "since"}:
        raise Refused("malformed")
    reason = value["reason"]
    if reason not in REASONS:
        raise Refused("malformed")
    since = _time(value["since"]) if "since" in value else None
    if since is None and reason != "compromised-unknown-time":
        raise Refused("malformed")
    return reason, since


def pin(document: Document) -> RootDoc:
    """Section 3.3, step 1."""
    root = RootDoc(document)
    if not root.meets("root", document):
        raise Refused("self_threshold")
    return root


def accept(root: RootDoc, held: StatusDoc | None, document: Document, now: int) -> StatusDoc:
    """Section 4.2: the status to hold after ``document``."""
    if now >= root.expires:
        raise Refused("expired")
    new = StatusDoc(root, document)
    if held is None or new.version > held.version:
        return new
    if new.version < held.version:
        raise Refused("rollback")
    if new.signed != held.signed:
        raise Refused("equivocation")
    return held


def run_vector(vector: Document) -> tuple[Document, list[bool]]:
    now = vector["now"]
    outcome: Document = {"roots": [], "statuses": []}
    try:
        root = pin(vector["trusted"])
    except Refused as exc:
        outcome["trusted"] = f"refuse:{exc.rule}"
        return outcome, []
    outcome["trusted"] = "accept"
    for document in vector["roots"]:
        try:
            root = update(root, document)
            outcome["roots"].append("accept")
        except Refused as exc:
            outcome["roots"].append(f"refuse:{exc.rule}")
    outcome["root_version"] = root.version
    outcome["root_current"] = now < root.expires
    held: StatusDoc | None = None
    for document in vector["statuses"]:
        try:
            held = accept(root, held, document, now)
            outcome["statuses"].append("accept")
        except Refused as exc:
            outcome["statuses"].append(f"refuse:{exc.rule}")
    outcome["status_version"] = held.version if held is not None else None
    outcome["fresh"] = (
        held is not None and now < held.expires and now - held.issued <= vector["max_age"]
    )
    refused = [
        held is not None
        and held.refuses(
            check.get("key"), check.get("principal"), check["dated"], tuple(check.get("path", ()))
        )
        for check in vector["checks"]
    ]
    return outcome, refused

"""The home's trust data: own authorities, published roots and status, and what a receiver trusts.

Layout (directories 0700, files 0600, all checked as :mod:`letterlock.cli.strict` checks the
rest of the home; a file others can write is refused, never read)::

    HOME/identities/NAME.credentials  letterlock credentials identity NAME presents in every
                                 envelope it seals, leaf first (``authority present``)
    HOME/authorities/NAME.key    an authority's private key (an encrypted key file, as an
                                 identity's: docs/spec/keyfile-v1.md)
    HOME/authorities/NAME.pub    its public key line
    HOME/authorities/NAME.json   {"namespace": NS, "max_depth": N}: what it certifies within
    HOME/root/N.root.json        every root version this home made (``root init``, ``rotate``)
    HOME/status/revocations.json revocations to publish (``letterlock revoke``)
    HOME/status/timestamp.json   the last status document published (``status publish``)
    HOME/trust/anchors.json      a receiver's anchors: authorities it trusts, with their scope
    HOME/trust/credentials       credentials it was given (one ``letterlock-credential`` a line)
    HOME/trust/pinned.root.json  the root it was given out of band (``root pin``)
    HOME/trust/root.json         the newest root it accepted      } sources.SnapshotCache: no
    HOME/trust/timestamp.json    the newest status it accepted    } version rolls back
    HOME/trust/freshness.json    {"max_age": SECONDS, "allow_stale": BOOL}

Root and status keys are the home's own identities (``letterlock id new``): a root key is
best an identity used for nothing else, on an offline machine or a token.

A receiver with a pinned root uses the status document for every message: a sender the rest of
its trust admits is refused when revoked, and every message fails closed (a transient refusal)
while the status is stale, unless ``freshness.json`` says ``allow_stale``.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

from letterlock import Identity, PublicIdentity, Suite, UsageError
from letterlock._fs import write_private_file
from letterlock.cli.render import quoted
from letterlock.cli.strict import check_directory, read_checked, read_private_key
from letterlock.core.principal import Namespace
from letterlock.core.trust import TrustPolicy
from letterlock.keystore import encrypt_identity
from letterlock.sources.folder import Snapshot, SnapshotCache
from letterlock.trust.authorities import Authorities
from letterlock.trust.credentials import MAX_DEPTH, Anchor, Credential, parse_credentials
from letterlock.trust.pins import check_name, valid_name
from letterlock.trust.root import MAX_ROOT_BYTES, TrustedRoot
from letterlock.trust.scope import ScopePattern
from letterlock.trust.status import MAX_STATUS_BYTES, Freshness, Revocations, Status

if TYPE_CHECKING:
    from letterlock.cli.home import Home

__all__ = [
    "DEFAULT_MAX_AGE",
    "AuthorityInfo",
    "HomeCache",
    "TrustData",
    "anchor_of",
    "status_group_of",
]

#: How old a status may be before a receiver fails closed, unless ``status freshness`` says.
DEFAULT_MAX_AGE: Final = 24 * 3600
_MAX_FILE: Final = 16 * 1024 * 1024
_CREDENTIALS_HEADER: Final = "# letterlock credentials: one letterlock-credential line each\n"


@dataclass(frozen=True, slots=True, kw_only=True)
class AuthorityInfo:
    """An own authority: its public key and what it certifies within."""

    name: str
    public: PublicIdentity
    namespace: Namespace
    max_depth: int


def _json(path: Path, limit: int = _MAX_FILE) -> Any:
    data = read_checked(path, limit=limit)
    if data is None:
        return None
    try:
        return json.loads(data)
    except ValueError as exc:  # includes UnicodeDecodeError
        raise UsageError(f"{path}: not JSON ({exc})") from None


class TrustData:
    """Paths and operations for the trust data of one home (see the module)."""

    def __init__(self, home: Home) -> None:
        self.home = home
        self.authorities_dir = home.root / "authorities"
        self.roots = home.root / "root"
        self.status_dir = home.root / "status"
        self.revocations_path = self.status_dir / "revocations.json"
        self.published_path = self.status_dir / "timestamp.json"
        self.trust_dir = home.root / "trust"
        self.anchors_path = self.trust_dir / "anchors.json"
        self.credentials_path = self.trust_dir / "credentials"
        self.pinned_path = self.trust_dir / "pinned.root.json"
        self.freshness_path = self.trust_dir / "freshness.json"

    def _dir_exists(self, directory: Path) -> bool:
        return self.home.exists_safely() and check_directory(directory)

    # own authorities ---------------------------------------------------------------

    def authority_names(self) -> list[str]:
        if not self._dir_exists(self.authorities_dir):
            return []
        names = {p.name.removesuffix(".key") for p in self.authorities_dir.glob("*.key")}
        return sorted(n for n in names if valid_name(n))

    def create_authority(
        self,
        name: str,
        suite: Suite,
        get_passphrase: Callable[[], bytes],
        *,
        namespace: Namespace,
        max_depth: int,
    ) -> AuthorityInfo:
        """Make authority ``name``: its .pub and .json, then its .key (which completes it)."""
        check_name(name, "authority name")
        if not 0 <= max_depth <= MAX_DEPTH:
            raise UsageError(f"--depth is 0 to {MAX_DEPTH}")
        key_path = self.authorities_dir / f"{name}.key"
        if key_path.exists():
            raise UsageError(f"authority {name!r} already exists; refusing to overwrite")
        passphrase = get_passphrase()
        identity = Identity.generate(suite)
        key_file = encrypt_identity(identity, passphrase)
        settings = {"namespace": str(namespace), "max_depth": max_depth}
        with self.home.locked():
            self.home.make_dir(self.authorities_dir)
            line = identity.public.to_text(name) + "\n"
            write_private_file(
                self.authorities_dir / f"{name}.pub", line.encode(), overwrite=True, mode=0o644
            )
            write_private_file(
                self.authorities_dir / f"{name}.json",
                (json.dumps(settings) + "\n").encode(),
                overwrite=True,
            )
            try:
                write_private_file(key_path, key_file, overwrite=False)
            except FileExistsError:
                raise UsageError(
                    f"authority {name!r} already exists; refusing to overwrite"
                ) from None
        return AuthorityInfo(
            name=name, public=identity.public, namespace=namespace, max_depth=max_depth
        )

    def authority(self, name: str) -> AuthorityInfo:
        if name not in self.authority_names():
            raise UsageError(f"no authority named {quoted(name)} in {self.authorities_dir}")
        data = read_checked(self.authorities_dir / f"{name}.pub", limit=64 * 1024)
        settings = _json(self.authorities_dir / f"{name}.json", 4096)
        if data is None or not isinstance(settings, dict):
            raise UsageError(f"authority {name!r} is damaged: its .pub or .json is missing")
        try:
            public, _ = PublicIdentity.from_text(data.decode("utf-8"), allow_unchecked=True)
            namespace = Namespace.parse(str(settings["namespace"]))
            max_depth = int(settings["max_depth"])
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"authority {name!r} is damaged: {exc}") from None
        return AuthorityInfo(name=name, public=public, namespace=namespace, max_depth=max_depth)

    def load_authority(self, name: str, get_passphrase: Callable[[], bytes]) -> Identity:
        info = self.authority(name)
        path = self.authorities_dir / f"{name}.key"
        return read_private_key(
            path, get_passphrase, info.public,
            missing=f"no authority named {quoted(name)} in {self.authorities_dir}",
            mismatch=f"{path} and its .pub hold different keys",
        )  # fmt: skip

    # credentials own identities present ------------------------------------------------

    def presented_path(self, name: str) -> Path:
        return self.home.identities / f"{check_name(name, 'identity name')}.credentials"

    def presented(self, name: str) -> tuple[Credential, ...]:
        """The credentials identity ``name`` presents in every envelope, leaf first."""
        if not self._dir_exists(self.home.identities):
            return ()
        data = read_checked(self.presented_path(name), limit=_MAX_FILE)
        if data is None:
            return ()
        try:
            return parse_credentials(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{self.presented_path(name)}: {exc}") from None

    def present(self, name: str, chain: tuple[Credential, ...]) -> None:
        text = "".join(f"{c.to_text()}\n" for c in chain)
        with self.home.locked():
            write_private_file(self.presented_path(name), text.encode(), overwrite=True, mode=0o644)

    # roots this home made -----------------------------------------------------------

    def root_versions(self) -> list[int]:
        if not self._dir_exists(self.roots):
            return []
        found = []
        for path in self.roots.glob("*.root.json"):
            number = path.name.removesuffix(".root.json")
            if number.isascii() and number.isdigit():
                found.append(int(number))
        return sorted(found)

    def read_root(self, version: int) -> bytes:
        data = read_checked(self.roots / f"{version}.root.json", limit=MAX_ROOT_BYTES)
        if data is None:
            raise UsageError(f"no root version {version} in {self.roots}")
        return data

    def write_root(self, version: int, data: bytes, *, overwrite: bool) -> Path:
        path = self.roots / f"{version}.root.json"
        with self.home.locked():
            self.home.make_dir(self.roots)
            try:
                write_private_file(path, data, overwrite=overwrite, mode=0o644)
            except FileExistsError:
                raise UsageError(f"{path} exists; refusing to overwrite") from None
        return path

    # revocations and status to publish ----------------------------------------------

    def revocations(self) -> dict[str, dict[str, dict[str, Any]]]:
        """``{"keys": {FINGERPRINT: {...}}, "principals": {P: {...}}}`` (the status's form)."""
        if not self._dir_exists(self.status_dir):
            return {"keys": {}, "principals": {}}
        data = _json(self.revocations_path)
        if data is None:
            return {"keys": {}, "principals": {}}
        if not isinstance(data, dict) or set(data) != {"keys", "principals"}:
            raise UsageError(f"{self.revocations_path}: not a revocation list")
        return data

    @contextmanager
    def changing_revocations(self) -> Iterator[dict[str, dict[str, dict[str, Any]]]]:
        with self.home.locked():
            self.home.make_dir(self.status_dir)
            found = self.revocations()
            yield found
            data = (json.dumps(found, indent=2, sort_keys=True) + "\n").encode()
            write_private_file(self.revocations_path, data, overwrite=True)

    def published(self) -> bytes | None:
        if not self._dir_exists(self.status_dir):
            return None
        return read_checked(self.published_path, limit=MAX_STATUS_BYTES)

    def save_published(self, data: bytes) -> None:
        with self.home.locked():
            self.home.make_dir(self.status_dir)
            write_private_file(self.published_path, data, overwrite=True, mode=0o644)

    # what the receiver trusts --------------------------------------------------------

    def anchors(self) -> list[Anchor]:
        if not self._dir_exists(self.trust_dir):
            return []
        data = _json(self.anchors_path)
        if data is None:
            return []
        if not isinstance(data, list):
            raise UsageError(f"{self.anchors_path}: not a list of anchors")
        try:
            return [anchor_of(entry) for entry in data]
        except (ValueError, KeyError, TypeError) as exc:
            raise UsageError(f"{self.anchors_path}: {exc}") from None

    def add_anchor(self, anchor: Anchor, entry: Mapping[str, Any]) -> None:
        with self.home.locked():
            self.home.make_dir(self.trust_dir)
            entries = _json(self.anchors_path) or []
            if any(e.get("name") == anchor.name for e in entries):
                raise UsageError(f"an anchor is already called {anchor.name!r}")
            entries.append(dict(entry))
            data = (json.dumps(entries, indent=2) + "\n").encode()
            write_private_file(self.anchors_path, data, overwrite=True)

    def credentials(self) -> tuple[Credential, ...]:
        if not self._dir_exists(self.trust_dir):
            return ()
        data = read_checked(self.credentials_path, limit=_MAX_FILE)
        if data is None:
            return ()
        try:
            return parse_credentials(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{self.credentials_path}: {exc}") from None

    def add_credentials(self, new: tuple[Credential, ...]) -> int:
        """Keep ``new`` beside the credentials held; how many were not held yet."""
        with self.home.locked():
            self.home.make_dir(self.trust_dir)
            held = self.credentials()
            added = [c for c in dict.fromkeys(new) if c not in held]
            lines = [c.to_text() for c in (*held, *added)]
            text = _CREDENTIALS_HEADER + "".join(f"{line}\n" for line in lines)
            write_private_file(self.credentials_path, text.encode(), overwrite=True)
        return len(added)

    def freshness(self) -> Freshness:
        data = _json(self.freshness_path, 4096) if self._dir_exists(self.trust_dir) else None
        if data is None:
            return Freshness(max_age=DEFAULT_MAX_AGE)
        try:
            return Freshness(max_age=int(data["max_age"]), allow_stale=bool(data["allow_stale"]))
        except (KeyError, TypeError, ValueError) as exc:
            raise UsageError(f"{self.freshness_path}: {exc}") from None

    def set_freshness(self, freshness: Freshness) -> None:
        settings = {"max_age": freshness.max_age, "allow_stale": freshness.allow_stale}
        with self.home.locked():
            self.home.make_dir(self.trust_dir)
            data = (json.dumps(settings) + "\n").encode()
            write_private_file(self.freshness_path, data, overwrite=True)

    def pinned(self) -> TrustedRoot | None:
        if not self._dir_exists(self.trust_dir):
            return None
        data = read_checked(self.pinned_path, limit=MAX_ROOT_BYTES)
        return None if data is None else TrustedRoot.pin(data)

    def pin_root(self, data: bytes) -> TrustedRoot:
        root = TrustedRoot.pin(data)
        with self.home.locked():
            self.home.make_dir(self.trust_dir)
            if read_checked(self.pinned_path, limit=MAX_ROOT_BYTES) is not None:
                raise UsageError(
                    f"a root is pinned already ({self.pinned_path}); "
                    "newer versions come with 'letterlock root update'"
                )
            write_private_file(self.pinned_path, data, overwrite=False)
            SnapshotCache(self.trust_dir).save(Snapshot(root=root))
        return root

    def snapshot(self) -> Snapshot | None:
        """The root and status the receiver holds, or None without a pinned root."""
        pinned = self.pinned()
        if pinned is None:
            return None
        return SnapshotCache(self.trust_dir).load(pinned)

    def cache(self) -> HomeCache:
        """The receiver's cache, for a :class:`~letterlock.sources.updater.StatusUpdater`."""
        pinned = self.pinned()
        if pinned is None:
            raise UsageError("no root pinned: letterlock root pin FILE")
        return HomeCache(self, pinned)

    def save_snapshot(self, snapshot: Snapshot) -> None:
        self.cache().save(snapshot)

    def status(self) -> Status | None:
        snapshot = self.snapshot()
        return None if snapshot is None else snapshot.status

    def authorities(self) -> Authorities | None:
        """The Authorities policy over the anchors and credentials held (None: no anchors)."""
        anchors = self.anchors()
        return Authorities(anchors, self.credentials()) if anchors else None

    def revocations_in_front(
        self, policy: TrustPolicy, snapshot: Snapshot | None = None
    ) -> TrustPolicy:
        """``policy`` behind the held status (revocations and freshness) if a root is pinned
        (``snapshot``: this one rather than the one saved)."""
        snapshot = snapshot or self.snapshot()
        if snapshot is None:
            return policy
        return Revocations(policy, snapshot.status, self.freshness())


class HomeCache(SnapshotCache):
    """The receiver's :class:`~letterlock.sources.folder.SnapshotCache` in the home: saved under
    the home's lock, and never over a newer snapshot that another process (``status update``
    beside a listener that follows the status topic) saved meanwhile."""

    def __init__(self, data: TrustData, pinned: TrustedRoot) -> None:
        super().__init__(data.trust_dir)
        self._home = data.home
        self._pinned = pinned

    def save(self, snapshot: Snapshot) -> None:
        with self._home.locked():
            saved = self.load(self._pinned)
            if _order(saved) > _order(snapshot):
                return
            super().save(snapshot)


def _order(snapshot: Snapshot) -> tuple[int, int]:
    return snapshot.root.version, 0 if snapshot.status is None else snapshot.status.version


def status_group_of(home: Home) -> str:
    """The durable group in which this home follows the status topic (one per home, so every
    receiving home sees every status document)."""
    digest = hashlib.sha256(str(home.root.resolve()).encode("utf-8")).hexdigest()[:16]
    return f"letterlock-status-{digest}"


def anchor_of(entry: Mapping[str, Any]) -> Anchor:
    """An anchor from its entry in ``anchors.json`` (ValueError, KeyError, TypeError if bad)."""
    public, _ = PublicIdentity.from_text(str(entry["key"]), allow_unchecked=True)
    roles = entry.get("roles")
    return Anchor(
        name=str(entry["name"]),
        identity=public,
        namespace=Namespace.parse(str(entry["namespace"])),
        max_depth=int(entry["max_depth"]),
        roles=None if roles is None else frozenset(str(r) for r in roles),
        publish=tuple(ScopePattern.parse(str(p)) for p in entry.get("publish", ["#"])),
        consume=tuple(ScopePattern.parse(str(p)) for p in entry.get("consume", ["#"])),
    )

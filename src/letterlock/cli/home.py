"""The CLI's home directory: own identities, pinned senders and the replay record.

Layout (directories 0700, private files 0600)::

    HOME/identities/NAME.key   encrypted private identity (docs/spec/keyfile-v1.md)
    HOME/identities/NAME.token or, for an identity on a PKCS#11 token, which module and token
                               hold its keys (JSON: {"module": PATH, "token": LABEL})
    HOME/identities/NAME.pub   its public identity, one text line
    HOME/identities/NAME.chain.pem  optional: the X.509 chain (leaf first) the identity presents
                               in the envelopes it seals (``letterlock id attach``)
    HOME/x509_anchors/NAME.json  a company CA trusted for a namespace (``trust anchor``):
                               {"namespace": "ll://acme/", "certificate": PEM}
    HOME/identities/NAME.keyset, NAME.keys/ID.key
                               its keyset and the keys it certifies (cli/keysets.py,
                               docs/spec/keyset.md); HOME/keysets/NAME.keyset: contacts'
    HOME/known_senders         pinned senders (letterlock.Pins text, like ssh's known_hosts)
    HOME/policy.toml           optional policy rules over them (docs/policy.md): when present,
                               deny by default: only topics a rule covers are accepted
    HOME/contacts              keys one seals to (letterlock.trust.Contacts text), not senders
    HOME/replay.sqlite         ids of opened messages (letterlock.stores.sqlite)
    HOME/listen/NAME.sqlite    ids of messages ``listen --as NAME`` handled, and the claims of
                               its running listeners (one per identity: see listener_store)
    HOME/authorities/, root/, status/, trust/
                               authorities, roots and status documents, and what a receiver
                               trusts beyond pins (letterlock.cli.trustdata)
    HOME/.lock                 held (flock) by a command that changes known_senders or
                               identities/ or contacts, from reading them to the rename

HOME is ``--home``, else ``$LETTERLOCK_HOME``, else ``~/.letterlock``. Reading never creates
anything; only commands that write create the directories. Every file and directory is checked
before use as OpenSSH's StrictModes would (:mod:`letterlock.cli.strict`): an unsafe home is
refused, never used.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Final

from letterlock import (
    CredentialFormat,
    Identity,
    KeyStoreError,
    Pins,
    PublicIdentity,
    ReplayWindow,
    Suite,
    UsageError,
)
from letterlock._fs import make_private_dir, write_private_file
from letterlock._x509 import load_pem
from letterlock.cli.render import quoted
from letterlock.cli.strict import (
    check_ancestors,
    check_directory,
    check_file,
    open_private,
    read_checked,
)
from letterlock.cli.trustdata import TrustData
from letterlock.core.trust import TrustPolicy
from letterlock.keystore import decrypt_identity, encrypt_identity, save_identity
from letterlock.keystore.file import MAX_FILE_SIZE
from letterlock.stores.sqlite import SQLiteReplayStore
from letterlock.trust import (
    Contacts,
    DelegatedSigners,
    DenyRevokedPins,
    FirstKnown,
    OwnIdentities,
    Rule,
    Rules,
    parse_policy,
)
from letterlock.trust.pins import check_name, valid_name
from letterlock.trust.x509 import Anchor, AnchorSet, bound_identity
from letterlock.trust.x509_senders import X509Senders

if TYPE_CHECKING:
    from letterlock.keystore.pkcs11 import Pkcs11KeyStore

if sys.platform == "win32":
    import msvcrt
else:
    import fcntl

__all__ = [
    "HOME_ENV",
    "REPLAY_RETENTION",
    "DamagedIdentity",
    "Home",
    "OwnIdentity",
    "check_identity_name",
]

HOME_ENV: Final = "LETTERLOCK_HOME"
#: How long the home remembers the id of an opened message (and so the oldest message any run
#: of ``open`` accepts, whatever its ``--max-age``): seven days.
REPLAY_RETENTION: Final = 7 * 24 * 3600
_NEVER: Final = 2**62  # the window's own pruning, by its max_age, must never run
_MAX_PUBLIC_FILE: Final = 64 * 1024
_MAX_CHAIN_FILE: Final = 128 * 1024
_MAX_KNOWN_SENDERS: Final = 16 * 1024 * 1024
_CONTACTS_HEADER: Final = "# letterlock contacts: NAME SOURCE letterlock-SUITE KEY:CHECK\n"
_KNOWN_SENDERS_HEADER: Final = (
    "# letterlock known senders: NAME letterlock-SUITE KEY (@revoked marks refused)\n"
)


def check_identity_name(name: str) -> str:
    """``name`` if it can name an identity (the rule of pin names: :data:`NAME_RULE`)."""
    return check_name(name, "identity name")


class DamagedIdentity(UsageError):
    """An own identity whose NAME.pub is missing or unreadable; only that identity is unusable."""

    def __init__(self, name: str, problem: str) -> None:
        self.name = name
        self.problem = problem
        super().__init__(f"identity {name!r} is damaged: {problem} ({_rebuild_hint(name)})")


def _rebuild_hint(name: str) -> str:
    return f"rebuild its public key with: letterlock id export {name}"


@dataclass(frozen=True, slots=True, kw_only=True)
class OwnIdentity:
    """An own identity as found in the home: its public key, or why it is damaged."""

    name: str
    public: PublicIdentity | None = None
    problem: str | None = None


class Home:
    """Paths and the few operations the commands need on them."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.identities = root / "identities"
        self.known_senders = root / "known_senders"
        self.policy_file = root / "policy.toml"
        self.contacts_path = root / "contacts"
        self.replay_db = root / "replay.sqlite"
        self.listen_dir = root / "listen"
        self.lock_path = root / ".lock"
        self.x509_anchors = root / "x509_anchors"
        self._checked = False

    @classmethod
    def locate(cls, option: str | None) -> Home:
        chosen = option or os.environ.get(HOME_ENV) or "~/.letterlock"
        return cls(Path(chosen).expanduser())

    # safety --------------------------------------------------------------------------

    def check(self) -> None:
        """Refuse an unsafe home (UsageError naming the path) before a command uses it."""
        self._exists_safely()

    def exists_safely(self) -> bool:
        """Check the home and the directories above it; False if it does not exist yet."""
        return self._exists_safely()

    def make_dir(self, directory: Path) -> None:
        """Create ``directory`` in the home (mode 0700) unless it exists, and check it."""
        self._make(directory)

    def _exists_safely(self) -> bool:
        """Check the home and the directories above it; False if it does not exist yet."""
        if not self._checked:
            check_ancestors(self.root)
            self._checked = check_directory(self.root, follow=True)
        return self._checked

    def _make(self, directory: Path) -> None:
        """Create ``directory`` (the home or one in it) with mode 0700 unless it exists; check."""
        check_ancestors(self.root)
        make_private_dir(directory)
        self._exists_safely()
        check_directory(directory, follow=directory == self.root)

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the home's lock: one writer at a time from its read to its atomic rename."""
        self._make(self.root)
        fd = open_private(self.lock_path)
        try:
            _lock_exclusively(fd)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _identities_exist(self) -> bool:
        return self._exists_safely() and check_directory(self.identities)

    # own identities ----------------------------------------------------------------

    def key_path(self, name: str) -> Path:
        return self.identities / f"{check_identity_name(name)}.key"

    def pub_path(self, name: str) -> Path:
        return self.identities / f"{check_identity_name(name)}.pub"

    def chain_path(self, name: str) -> Path:
        return self.identities / f"{check_identity_name(name)}.chain.pem"

    def chain(self, name: str) -> tuple[bytes, ...] | None:
        """The X.509 chain (DER, leaf first) identity ``name`` presents, or None."""
        if not self._identities_exist():
            return None
        path = self.chain_path(name)
        data = read_checked(path, limit=_MAX_CHAIN_FILE)
        if data is None:
            return None
        try:
            return tuple(cert.der for cert in load_pem(data))
        except ValueError as exc:
            raise UsageError(f"{path}: {exc}") from None

    def token_path(self, name: str) -> Path:
        return self.identities / f"{check_identity_name(name)}.token"

    def names(self) -> list[str]:
        if not self._identities_exist():
            return []
        names = {
            n.removesuffix(suffix)
            for n in os.listdir(self.identities)
            for suffix in (".key", ".token")
            if n.endswith(suffix)
        }
        return sorted(n for n in names if valid_name(n))

    def public(self, name: str) -> PublicIdentity:
        """The public identity of own identity ``name`` (from NAME.pub; no passphrase).

        Raises DamagedIdentity if NAME.pub is missing or unreadable (``id export`` rebuilds it).
        """
        if name not in self.names():
            raise UsageError(f"no identity named {quoted(name)} in {self.identities}")
        path = self.pub_path(name)
        data = read_checked(path, limit=_MAX_PUBLIC_FILE)
        if data is None:
            raise DamagedIdentity(name, f"{path.name} is missing")
        try:
            identity, _ = PublicIdentity.from_text(data.decode("utf-8"), allow_unchecked=True)
        except UnicodeDecodeError:
            raise DamagedIdentity(
                name, f"{path.name} is not a public key line (not text)"
            ) from None
        except ValueError as exc:
            raise DamagedIdentity(name, f"{path.name}: {exc}") from None
        return identity

    def own_identities(self) -> list[OwnIdentity]:
        """Every own identity, a damaged one with its problem instead of its public key."""
        found = []
        for name in self.names():
            try:
                found.append(OwnIdentity(name=name, public=self.public(name)))
            except DamagedIdentity as exc:
                found.append(OwnIdentity(name=name, problem=exc.problem))
        return found

    def own_publics(self, *, warn: Callable[[str], None]) -> dict[str, PublicIdentity]:
        """The usable own identities; ``warn`` is told about each damaged one, which is skipped."""
        usable = {}
        for own in self.own_identities():
            if own.public is None:
                warn(f"skipping identity {own.name!r}: {own.problem} ({_rebuild_hint(own.name)})")
            else:
                usable[own.name] = own.public
        return usable

    def create(self, name: str, suite: Suite, get_passphrase: Callable[[], bytes]) -> Identity:
        """Make identity ``name``: NAME.pub first, then NAME.key, whose name completes the pair.

        Each file is complete before it has a name (``write_private_file``), and an identity
        exists only with its key file, so a crash leaves no identity or a complete one (and at
        worst a NAME.pub without key, which is no identity and is replaced by the next try).
        """
        self._refuse_taken(name)
        passphrase = get_passphrase()  # asked before the lock: nobody waits for a typist
        identity = Identity.generate(suite)
        key_file = encrypt_identity(identity, passphrase)
        with self.locked():
            self._refuse_taken(name)  # a concurrent command may have taken it meanwhile
            self._make(self.identities)
            self._write_public(name, identity.public)
            try:
                write_private_file(self.key_path(name), key_file, overwrite=False)
            except FileExistsError:
                raise UsageError(
                    f"identity {name!r} already exists; refusing to overwrite"
                ) from None
        return identity

    def create_on_token(
        self, name: str, suite: Suite, get_pin: Callable[[], bytes], *, module: str, token: str
    ) -> Identity:
        """Make identity ``name`` with its keys generated on a PKCS#11 token: NAME.pub, then
        NAME.token (which module and token hold it), whose name completes the identity."""
        self._refuse_taken(name)
        identity = _token_store(module, token).create(name, suite, get_pin)
        reference = json.dumps({"module": module, "token": token}) + "\n"
        with self.locked():
            self._refuse_taken(name)
            self._make(self.identities)
            self._write_public(name, identity.public)
            try:
                write_private_file(self.token_path(name), reference.encode(), overwrite=False)
            except FileExistsError:
                raise UsageError(
                    f"identity {name!r} already exists; refusing to overwrite"
                ) from None
        return identity

    def token_of(self, name: str) -> tuple[str, str] | None:
        """(module, token label) of an identity on a PKCS#11 token; None for a key file's."""
        path = self.token_path(name)
        data = read_checked(path, limit=_MAX_PUBLIC_FILE)
        if data is None:
            return None
        try:
            reference = json.loads(data)
            module, token = reference["module"], reference["token"]
        except (ValueError, TypeError, KeyError):
            raise DamagedIdentity(name, f"{path.name} does not name a module and token") from None
        if not (isinstance(module, str) and isinstance(token, str)):
            raise DamagedIdentity(name, f"{path.name} does not name a module and token")
        return module, token

    def rebuild_public(self, name: str, get_passphrase: Callable[[], bytes]) -> PublicIdentity:
        """Rewrite a missing or damaged NAME.pub from NAME.key (which needs the passphrase) or
        from the token (which needs its PIN)."""
        public = self._unlock(name, get_passphrase).public
        with self.locked():
            self._write_public(name, public)
        return public

    def _write_public(self, name: str, public: PublicIdentity) -> None:
        line = public.to_text(name) + "\n"
        write_private_file(self.pub_path(name), line.encode(), overwrite=True, mode=0o644)

    def _refuse_taken(self, name: str) -> None:
        for path in (self.key_path(name), self.token_path(name)):
            if path.exists():
                raise UsageError(
                    f"identity {name!r} already exists ({path}); refusing to overwrite"
                )
        if name in self._pin_names():
            raise UsageError(f"a pinned sender is already called {name!r}; choose another name")
        if name in self.contacts():
            raise UsageError(f"a contact is already called {name!r}; choose another name")

    def load(self, name: str, get_passphrase: Callable[[], bytes]) -> Identity:
        """Unlock own identity ``name`` (decrypt its key file, or log in to its token with
        ``get_passphrase`` as the PIN); it must match NAME.pub."""
        public = self.public(name)
        identity = self._unlock(name, get_passphrase)
        if identity.public != public:
            where = self.token_path(name) if self.token_of(name) else self.key_path(name)
            raise KeyStoreError(f"{where} and {self.pub_path(name)} hold different keys")
        chain = self.chain(name)
        data = TrustData(self)
        status = data.status()
        held = 0 if status is None else status.version
        if chain:  # the identity presents its chain in every envelope it seals
            bound = bound_identity(chain[0])
            if isinstance(bound, tuple) and bound[1] == public:
                return identity.with_credentials(CredentialFormat.X509, chain, status_version=held)
            raise UsageError(
                f"{self.chain_path(name)} does not certify identity {name!r}'s key "
                f"(a rotated key?): attach a new certificate with letterlock id attach"
            )
        presented = data.presented(name)
        if presented:  # its letterlock credentials, leaf first (``authority present``)
            if presented[0].subject_identity != public:
                raise UsageError(
                    f"{data.presented_path(name)} does not certify identity {name!r}'s key "
                    f"(a rotated key?): present new credentials with letterlock authority present"
                )
            encoded = [c.encoded for c in presented]
            return identity.with_credentials(CredentialFormat.LETTERLOCK, encoded,
                                             status_version=held)  # fmt: skip
        if held:  # no chain to present: the block carries only the status version
            return identity.with_credentials(CredentialFormat.NONE, (), status_version=held)
        return identity

    def _unlock(self, name: str, get_secret: Callable[[], bytes]) -> Identity:
        on_token = self.token_of(name)
        if on_token is None:
            return self._decrypt(name, get_secret)
        module, token = on_token
        return _token_store(module, token).load(name, get_secret)

    def _decrypt(self, name: str, get_passphrase: Callable[[], bytes]) -> Identity:
        path = self.key_path(name)
        data = read_checked(path, limit=MAX_FILE_SIZE, secret=True)
        if data is None:
            raise UsageError(f"no identity named {quoted(name)} in {self.identities}")
        try:
            return decrypt_identity(data, get_passphrase())
        except KeyStoreError as exc:
            raise KeyStoreError(f"{path}: {exc}") from None

    def save_private_key(self, name: str, identity: Identity, passphrase: bytes) -> None:
        with self.locked():
            save_identity(self.key_path(name), identity, passphrase, overwrite=True)

    # pinned senders ----------------------------------------------------------------

    def pins(self) -> Pins:
        if not self._exists_safely():
            return Pins()
        data = read_checked(self.known_senders, limit=_MAX_KNOWN_SENDERS)
        if data is None:
            return Pins()
        try:
            return Pins.parse(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{self.known_senders}: {exc}") from None

    def _pin_names(self) -> set[str]:
        return {pin.name for pin in self.pins()}

    @contextmanager
    def changing_pins(self) -> Iterator[Pins]:
        """The pins, to change: read under the home's lock, written back atomically (if
        changed) before the lock is released, so concurrent commands never lose an update."""
        with self.locked():
            pins = self.pins()
            before = pins.to_text()
            yield pins
            if pins.to_text() != before:
                data = (_KNOWN_SENDERS_HEADER + pins.to_text()).encode("utf-8")
                write_private_file(self.known_senders, data, overwrite=True)

    def trust(self, own: dict[str, PublicIdentity]) -> TrustPolicy:
        """The home's trust policy: :meth:`senders` and, with a pinned root, the status
        document it holds in front (revocations, and failing closed when it is stale)."""
        return TrustData(self).revocations_in_front(self.senders(own))

    def senders(self, own: dict[str, PublicIdentity]) -> TrustPolicy:
        """Its pins, ``own`` (from :meth:`own_publics`) as self, senders whose X.509 chain
        (carried in the envelope) verifies to one of its X.509 anchors, and senders certified
        by its anchored authorities (:mod:`letterlock.cli.trustdata`), under the rules of
        ``policy.toml`` if the home has one; the signing keys those senders' keysets certify,
        admitted as the senders (:class:`~letterlock.trust.DelegatedSigners`, with the keysets
        the home holds); a key revoked in its pins is refused in front of all of them
        (:class:`~letterlock.trust.DenyRevokedPins`)."""
        pins = self.pins()
        policies: list[TrustPolicy] = [pins, OwnIdentities(own)]
        anchors = self.anchors()
        if anchors:
            policies.append(X509Senders(AnchorSet(anchors), [], now=int(time.time())))
        authorities = TrustData(self).authorities()
        if authorities is not None:
            policies.append(authorities)
        senders: TrustPolicy = FirstKnown(*policies)
        rules = self.rules()
        if rules is not None:
            senders = Rules(senders, rules)
        # keyset_files reads keysets through Home: imported here, where it is needed
        from letterlock.cli.keyset_files import known_keysets  # noqa: PLC0415 - import cycle

        senders = DelegatedSigners(senders, known_keysets(self))  # signing keys, as identities
        return DenyRevokedPins(pins, senders)  # a key revoked here: refused whatever vouches

    def rules(self) -> tuple[Rule, ...] | None:
        """The rules of ``policy.toml``, or None if the home has none (then pins decide alone)."""
        if not self._exists_safely():
            return None
        data = read_checked(self.policy_file, limit=_MAX_KNOWN_SENDERS)
        if data is None:
            return None
        try:
            return parse_policy(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{self.policy_file}: {exc}") from None

    # X.509 anchors -----------------------------------------------------------------

    def anchor_path(self, name: str) -> Path:
        return self.x509_anchors / f"{check_name(name)}.json"

    def anchors(self) -> list[Anchor]:
        """The company CAs this home trusts (``letterlock trust anchor``), by name."""
        if not self._exists_safely() or not check_directory(self.x509_anchors):
            return []
        found = []
        for entry in sorted(os.listdir(self.x509_anchors)):
            name = entry.removesuffix(".json")
            if not entry.endswith(".json") or not valid_name(name):
                continue
            path = self.x509_anchors / entry
            data = read_checked(path, limit=_MAX_PUBLIC_FILE)
            if data is None:
                continue
            try:
                fields = json.loads(data)
                certificate = load_pem(fields["certificate"].encode("ascii"))[0].der
                found.append(Anchor(name=name, certificate=certificate,
                                    namespace=fields["namespace"]))  # fmt: skip
            except (ValueError, KeyError, TypeError, IndexError, AttributeError) as exc:
                raise UsageError(f"{path}: not an anchor ({exc})") from None
        return found

    def save_anchor(self, anchor: Anchor, pem: str) -> None:
        """Trust ``anchor`` (its certificate as ``pem``); refuses a name already taken."""
        AnchorSet([*self.anchors(), anchor])  # a bad namespace or a duplicate: UsageError
        with self.locked():
            self._make(self.x509_anchors)
            data = json.dumps({"namespace": anchor.namespace, "certificate": pem}, indent=2)
            try:
                write_private_file(self.anchor_path(anchor.name), data.encode() + b"\n",
                                   overwrite=False, mode=0o644)  # fmt: skip
            except FileExistsError:
                raise UsageError(f"an anchor is already called {anchor.name!r}") from None

    def save_chain(self, name: str, pem: bytes) -> None:
        with self.locked():
            write_private_file(self.chain_path(name), pem, overwrite=True, mode=0o644)

    # contacts ----------------------------------------------------------------------

    def contacts(self) -> Contacts:
        if not self._exists_safely():
            return Contacts()
        data = read_checked(self.contacts_path, limit=_MAX_KNOWN_SENDERS)
        if data is None:
            return Contacts()
        try:
            return Contacts.parse(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise UsageError(f"{self.contacts_path}: {exc}") from None

    @contextmanager
    def changing_contacts(self) -> Iterator[Contacts]:
        """The contacts, to change, under the home's lock (as :meth:`changing_pins`)."""
        with self.locked():
            contacts = self.contacts()
            before = contacts.to_text()
            yield contacts
            if contacts.to_text() != before:
                data = (_CONTACTS_HEADER + contacts.to_text()).encode("utf-8")
                write_private_file(self.contacts_path, data, overwrite=True)

    def resolve_recipient(
        self, name: str, *, warn: Callable[[str], None] = lambda _: None
    ) -> PublicIdentity:
        """A recipient by name: a contact, else an own identity, else (for homes made before
        contacts existed) a pinned sender, which ``warn`` is told about.

        Pins are read as contacts, not copied into the contacts file: reading never writes,
        and revoking the pin still stops sealing to it until it is added as a contact.
        """
        contact = self.contacts().get(name)
        if contact is not None:
            return contact.identity
        if valid_name(name) and name in self.names():
            return self.public(name)
        pins = self.pins()
        if name in pins:
            pin = pins[name]
            if pin.revoked:
                raise UsageError(f"the pin {name!r} ({pin.identity.fingerprint_text}) is revoked")
            warn(
                f"sealing to pinned sender {name!r}, which is not a contact "
                f"(make it one: letterlock contact add THEIR-KEY.pub --name {name})"
            )
            return pin.identity
        raise UsageError(
            f"unknown recipient {quoted(name)}: add it with 'letterlock contact add FILE --name N'"
        )

    # replay record -----------------------------------------------------------------

    @contextmanager
    def replay_window(self, *, max_age: int, now: int) -> Iterator[ReplayWindow]:
        """The home's replay record, as a window refusing messages older than ``max_age``.

        The record itself is pruned with the home's fixed :data:`REPLAY_RETENTION` only, never
        with a run's ``max_age`` (at most the retention): one run with a short window must not
        make later runs refuse messages their own window accepts.
        """
        if not 1 <= max_age <= REPLAY_RETENTION:
            raise UsageError(f"max_age must be between 1 and {REPLAY_RETENTION} seconds")
        self._make(self.root)
        check_file(self.replay_db)  # a new one is made by the store (mode 0600)
        with SQLiteReplayStore(self.replay_db) as store:
            # One CLI run opens one message, so the window's own pruning (every N records of
            # one process) never runs: prune here, or the record grows forever.
            store.prune(now - REPLAY_RETENTION)
            yield ReplayWindow(store, max_age=max_age, prune_every=_NEVER)

    def listener_store(self, name: str) -> SQLiteReplayStore:
        """The replay record of the listeners of own identity ``name`` (``listen --as NAME``).

        Apart from ``open``'s record: every listener of ``name`` on this host, in any group,
        claims each message in it before its handler runs and records it after, so a copy
        delivered twice (two groups, a redelivery after a crash) is handled once, and a
        listener started again refuses what it already handled. One file per identity, so
        one identity's long-running listeners never hold up another's or ``open``; safe to
        share between the processes of this host (a pool's workers).
        """
        path = self.listen_dir / f"{check_identity_name(name)}.sqlite"
        self._make(self.listen_dir)
        check_file(path)  # a new one is made by the store (mode 0600)
        return SQLiteReplayStore(path)


def _token_store(module: str, token: str) -> Pkcs11KeyStore:
    """The PKCS#11 store of ``token``; python-pkcs11 is imported only when a token is used."""
    try:
        from letterlock.keystore.pkcs11 import Pkcs11KeyStore  # noqa: PLC0415 - optional
    except ImportError:
        raise UsageError(
            "identities on PKCS#11 tokens need python-pkcs11: pip install 'letterlock[pkcs11]'"
        ) from None
    return Pkcs11KeyStore(module, token)


def _lock_exclusively(fd: int) -> None:
    """Block until this process holds the exclusive lock of ``fd`` (released when it closes)."""
    if sys.platform == "win32":
        msvcrt.locking(fd, msvcrt.LK_LOCK, 1)  # retries for 10 s, then OSError
    else:
        fcntl.flock(fd, fcntl.LOCK_EX)

"""What verifying an X.509 sender chain costs (a measurement, not a test).

    .venv/bin/python benchmarks/x509_chain.py [--runs 200]

Mints with pyca a root, 0 to 4 intermediates and a letterlock leaf (``docs/spec/x509.md``),
then times :func:`letterlock.trust.x509.verify_chain` (the median of ``--runs`` calls) per
depth; compares opening a message from a pinned sender with one from a sender certified
through 3 intermediates whose chain was already seen; compares, in CPU time per open, a pinned
sender with one whose chain travels in the envelope (``docs/spec/envelope-v1.md`` section 4.1:
leaf and 2 or 3 intermediates) to a receiver holding only the root, once the chain has been
seen (through ``letterlock.open`` and through an ``Opener``); prints the DER sizes of a p256
and a pq leaf (what carrying the chain in an envelope would cost). With
``../shared/conformance/x509-limbo`` present it also times each pathological case through pyca
alone, through ``validate_path`` and through ``verify_chain``'s bounds.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import datetime
import json
import re
import statistics
import time
from pathlib import Path

from cryptography import x509 as pyca
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

import letterlock
from letterlock import Suite, _x509
from letterlock.core.keys import PrivateKeys
from letterlock.core.trust import TrustPolicy
from letterlock.trust import x509
from letterlock.trust.x509_senders import X509Senders

START = datetime.datetime(2024, 1, 1, tzinfo=datetime.UTC)
AT = int((START + datetime.timedelta(days=1)).timestamp())
LIMBO = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "x509-limbo"
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)
_CA_USAGE = pyca.KeyUsage(
    digital_signature=False, content_commitment=False, key_encipherment=False,
    data_encipherment=False, key_agreement=False, key_cert_sign=True, crl_sign=True,
    encipher_only=False, decipher_only=False,
)  # fmt: skip


def _name(text: str) -> pyca.Name:
    return pyca.Name([pyca.NameAttribute(NameOID.COMMON_NAME, text)])


def _octets(data: bytes) -> bytes:
    size = len(data).to_bytes(2, "big")
    return b"\x04\x82" + size + data if len(data) > 255 else b"\x04\x81" + size[1:] + data


def _signing_point(keys: PrivateKeys) -> ec.EllipticCurvePublicKey:
    encoded = keys.public.to_bytes()
    length = int.from_bytes(encoded[5:7], "big")
    point = encoded[7 : 7 + length][-97:] if keys.suite is Suite.PQ else encoded[7 : 7 + length]
    curve = ec.SECP256R1() if keys.suite is Suite.P256 else ec.SECP384R1()
    return ec.EllipticCurvePublicKey.from_encoded_point(curve, point)


def mint(depth: int, sender: PrivateKeys) -> tuple[bytes, bytes, list[bytes]]:
    """(root, leaf, intermediates leaf-side first) with ``depth`` intermediates."""
    keys = [ec.generate_private_key(ec.SECP256R1()) for _ in range(depth + 1)]
    certs: list[bytes] = []
    for i in range(depth + 1):
        issuer = max(i - 1, 0)
        public = keys[i].public_key()
        cert = (
            pyca.CertificateBuilder().subject_name(_name(f"ca{i}")).issuer_name(_name(f"ca{issuer}"))
            .public_key(public).serial_number(i + 1).not_valid_before(START)
            .not_valid_after(START + datetime.timedelta(days=30))
            .add_extension(pyca.SubjectKeyIdentifier.from_public_key(public), False)
            .add_extension(pyca.AuthorityKeyIdentifier.from_issuer_public_key(
                keys[issuer].public_key()), False)
            .add_extension(pyca.BasicConstraints(ca=True, path_length=None), True)
            .add_extension(_CA_USAGE, True)
            .sign(keys[issuer], hashes.SHA256())
        )  # fmt: skip
        certs.append(cert.public_bytes(serialization.Encoding.DER))
    scope = x509.encode_scope(x509.Scope.of(publish=["orders.#"], consume=["replies.#"]))
    public = _signing_point(sender)
    leaf = (
        pyca.CertificateBuilder().subject_name(_name("billing")).issuer_name(_name(f"ca{depth}"))
        .public_key(public).serial_number(99).not_valid_before(START)
        .not_valid_after(START + datetime.timedelta(days=30))
        .add_extension(pyca.SubjectKeyIdentifier.from_public_key(public), False)
        .add_extension(pyca.AuthorityKeyIdentifier.from_issuer_public_key(
            keys[depth].public_key()), False)
        .add_extension(pyca.BasicConstraints(ca=False, path_length=None), True)
        .add_extension(pyca.ExtendedKeyUsage([pyca.ObjectIdentifier(x509.LETTERLOCK_EKU)]), False)
        .add_extension(pyca.SubjectAlternativeName(
            [pyca.UniformResourceIdentifier("ll://acme/payments/billing")]), False)
        .add_extension(pyca.UnrecognizedExtension(
            pyca.ObjectIdentifier(x509.IDENTITY_OID), _octets(sender.public.to_bytes())), False)
        .add_extension(pyca.UnrecognizedExtension(pyca.ObjectIdentifier(x509.SCOPE_OID), scope),
                       False)
        .sign(keys[depth], hashes.SHA256())
    )  # fmt: skip
    return certs[0], leaf.public_bytes(serialization.Encoding.DER), certs[1:][::-1]


def _ders(pems: list[str] | str) -> list[bytes]:
    text = "".join(pems).encode("ascii")
    return [base64.b64decode(b"".join(b.split())) for b in _PEM.findall(text)]


def pathological() -> None:
    if not LIMBO.is_dir():
        print("no x509-limbo data at ../shared/conformance/x509-limbo")
        return
    cases = json.loads((LIMBO / "limbo-pathological.json").read_text(encoding="utf-8"))
    print(f"\n{'pathological case':<56}{'pyca alone':>12}{'validate_path':>15}{'verify_chain':>14}")
    for case in cases["testcases"]:
        roots, inter = _ders(case["trusted_certs"]), _ders(case["untrusted_intermediates"])
        (leaf,) = _ders(case["peer_certificate"])
        at = time.time()
        parsed = [_x509.load_der(der) for der in roots], [_x509.load_der(d) for d in inter]
        target = _x509.load_der(leaf)
        start = time.perf_counter()
        with contextlib.suppress(_x509.ChainError):
            _x509.verify_chain(
                *parsed[:1], target, parsed[1], at=at, eku=_x509.SERVER_AUTH, max_depth=8
            )
        alone = time.perf_counter() - start
        start = time.perf_counter()
        x509.validate_path(roots, leaf, inter, at=at, eku=_x509.SERVER_AUTH, max_depth=8)
        path = time.perf_counter() - start
        anchors = x509.AnchorSet(
            x509.Anchor(name=f"a{i}", certificate=r, namespace="ll://acme/")
            for i, r in enumerate(roots)
        )
        start = time.perf_counter()
        x509.verify_chain(anchors, leaf, inter, at=int(at))
        bounded = time.perf_counter() - start
        print(
            f"{case['id']:<56}{alone * 1e3:>9.1f} ms{path * 1e3:>12.1f} ms{bounded * 1e3:>11.3f} ms"
        )


def open_ratio(sender: PrivateKeys, runs: int) -> None:
    """Opening a 1 KiB message: a pinned sender vs one certified through 3 intermediates,
    its chain already seen (X509Senders' cache), interleaved, medians."""
    root, leaf, chain = mint(3, sender)
    anchors = x509.AnchorSet([x509.Anchor(name="r", certificate=root, namespace="ll://acme/")])
    bob = letterlock.Identity.generate(Suite.P256)
    pins = letterlock.Pins()
    pins.pin("billing", sender.public)
    certified = X509Senders(anchors, [(leaf, *chain)], now=AT)
    sealed = letterlock.seal(bytes(1024), sender=sender.identity(), recipients=[bob.public],
                             topic="orders.eu", now=AT)  # fmt: skip
    policies: dict[str, TrustPolicy] = {"pinned": pins, "x509, chain seen": certified}
    times: dict[str, list[float]] = {name: [] for name in policies}
    window = letterlock.ReplayWindow()
    for _ in range(runs):
        for name, trust in policies.items():
            start = time.perf_counter()
            letterlock.open(sealed, identity=bob, trust=trust, replay=window, now=AT, record=False)
            times[name].append(time.perf_counter() - start)
    pinned, seen = (statistics.median(times[name]) for name in policies)
    print(
        f"\nopen 1 KiB (median of {runs}): pinned {pinned * 1e6:.0f} us, "
        f"x509 3 intermediates seen {seen * 1e6:.0f} us, ratio {seen / pinned:.3f}"
    )


def open_carried(sender: PrivateKeys, rounds: int, batch: int = 100) -> None:
    """CPU time per open of a 1 KiB message: pinned sender vs a chain carried in the envelope,
    to a receiver with only the root (``X509Senders(anchors, [])``), the chain already seen.
    Batches of ``batch`` opens alternate between the two; the best round of each is kept (the
    machine is shared: the least disturbed)."""
    bob = letterlock.Identity.generate(Suite.P256)
    pins = letterlock.Pins()
    pins.pin("billing", sender.public)
    print(f"\nopen 1 KiB, CPU time per open, best of {rounds} rounds of {batch}:")
    for depth in (2, 3):
        root, leaf, chain = mint(depth, sender)
        anchors = x509.AnchorSet([x509.Anchor(name="r", certificate=root, namespace="ll://acme/")])
        carrying = sender.identity().with_credentials(
            letterlock.CredentialFormat.X509, [leaf, *chain]
        )
        carried = X509Senders(anchors, [], now=AT)
        plain = letterlock.Sealer(sender.identity())
        certified = letterlock.Sealer(carrying)
        envelopes = {
            name: [sealer.seal(bytes(1024), recipients=[bob.public], topic="orders.eu", now=AT)
                   for _ in range(batch)]
            for name, sealer in (("pinned", plain), ("carried", certified))
        }  # fmt: skip
        policies: dict[str, TrustPolicy] = {"pinned": pins, "carried": carried}
        openers = {
            name: letterlock.Opener(bob, trust=trust, replay=letterlock.ReplayWindow())
            for name, trust in policies.items()
        }
        best: dict[tuple[str, str], float] = {}
        for _ in range(rounds):
            for name, trust in policies.items():
                for how in ("open", "Opener"):
                    window = letterlock.ReplayWindow()
                    opener = openers[name]
                    opener.replay = window
                    started = time.process_time()
                    for sealed in envelopes[name]:
                        if how == "open":
                            letterlock.open(sealed, identity=bob, trust=trust, replay=window,
                                            now=AT, record=False)  # fmt: skip
                        else:
                            opener.open(sealed, now=AT)
                    spent = (time.process_time() - started) / batch
                    best[name, how] = min(best.get((name, how), spent), spent)
        size = len(envelopes["carried"][0]) - len(envelopes["pinned"][0])
        for how in ("open", "Opener"):
            pinned, seen = best["pinned", how], best["carried", how]
            print(
                f"  {how:<7} leaf + {depth} intermediates carried ({size} bytes more): "
                f"pinned {pinned * 1e6:.0f} us, carried {seen * 1e6:.0f} us, "
                f"ratio {seen / pinned:.3f}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15, help="rounds of the carried benchmark")
    parser.add_argument("--only-carried", action="store_true", help="only the carried benchmark")
    args = parser.parse_args()
    if args.only_carried:
        open_carried(PrivateKeys.generate(Suite.P256), args.rounds)
        return
    sender = PrivateKeys.generate(Suite.P256)
    print("intermediates  verify_chain (median)")
    for depth in range(5):
        root, leaf, chain = mint(depth, sender)
        anchors = x509.AnchorSet([x509.Anchor(name="r", certificate=root, namespace="ll://acme/")])
        assert isinstance(x509.verify_chain(anchors, leaf, chain, at=AT), x509.X509Sender)
        times = []
        for _ in range(args.runs):
            start = time.perf_counter()
            x509.verify_chain(anchors, leaf, chain, at=AT)
            times.append(time.perf_counter() - start)
        print(f"{depth:>13}  {statistics.median(times) * 1e6:>8.0f} us")
    open_ratio(sender, args.runs)
    open_carried(sender, args.rounds)
    root, leaf, chain = mint(1, sender)
    pq_leaf = mint(0, PrivateKeys.generate(Suite.PQ))[1]
    print(f"\nDER bytes: p256 leaf {len(leaf)}, intermediate {len(chain[0])}, "
          f"pq leaf {len(pq_leaf)}")  # fmt: skip
    pathological()


if __name__ == "__main__":
    main()

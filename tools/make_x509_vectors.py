"""Generate the X.509 sender-chain vectors (``docs/spec/x509.md`` section 8).

Usage: ``PYTHONPATH=src:tests python tools/make_x509_vectors.py docs/spec/x509-vectors.json``

Every certificate is made by the ``openssl`` command line (``tests/openssl_ca.py``). Keys and
validity periods come from the run, so a new run gives other bytes with the same outcomes; the
committed file is the reference. Each case states the anchors (with namespaces), the chain
(leaf first), the time, the envelope's sender key id and topic, and two outcomes:
``expect`` (letterlock's: ``accept`` or the refusal code of section 7) and ``path_valid``
(RFC 5280 path validation alone, without letterlock's rules, as ``openssl verify -purpose any``
judges it; ``tests/test_x509_vectors.py`` asks openssl again). An accepted case also states
``path_key_ids``: the key ids of its anchor and intermediates, the anchor's first (section 7,
"Key id and revocation"), which ``tests/independent/x509_key_ids.py`` computes again.

``--add-key-ids FILE`` adds ``path_key_ids`` to the cases of an existing file instead (the
certificates and times unchanged).
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path
from typing import Any

from letterlock import Suite
from letterlock.core.keys import PrivateKeys, format_fingerprint
from letterlock.trust.x509 import ca_key_id
from openssl_ca import CA_EXT, DAY, Openssl, scope_ext, unix_now


def path_key_ids(anchor: str, chain: list[str]) -> list[str]:
    """The key ids of the path of an accepted ``chain`` (PEM, leaf first) ending at ``anchor``:
    the anchor's first, then each intermediate's from the anchor down."""
    path = [anchor, *reversed(chain[1:])]
    return [format_fingerprint(ca_key_id(pem.encode("ascii"))) for pem in path]


def _with_key_ids(case: dict[str, Any]) -> dict[str, Any]:
    """``case`` with ``path_key_ids`` after ``principal`` (None unless it is accepted)."""
    ids = None
    if case["expect"] == "accept":
        (anchor,) = case["anchors"]
        ids = path_key_ids(anchor["certificate"], case["chain"])
    fields = list(case.items())
    at = [name for name, _ in fields].index("principal") + 1
    return dict([*fields[:at], ("path_key_ids", ids), *fields[at:]])


def add_key_ids(path: Path) -> None:
    document = json.loads(path.read_text(encoding="utf-8"))
    document["cases"] = [_with_key_ids(case) for case in document["cases"]]
    path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


def main(out: Path) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        ssl = Openssl(Path(scratch))
        keys = PrivateKeys.generate(Suite.P256)
        ssl.root_ca("Acme Root")
        ssl.intermediate("Acme Issuing", "Acme Root")
        ext, sections = scope_ext("eu", ("orders.eu.*",), ("replies.#",))
        ssl.intermediate("Acme EU", "Acme Root", extra=ext, sections=sections)
        ssl.leaf("billing", "Acme Issuing", keys)
        ssl.leaf("billing-eu", "Acme EU", keys)
        ssl.leaf("tls-client", "Acme Issuing", keys, eku="clientAuth")
        ssl.leaf("no-eku", "Acme Issuing", keys, eku=None)
        ssl.leaf("two-uris", "Acme Issuing", keys,
                 san="URI:ll://acme/payments/billing, URI:ll://acme/hr/payroll")  # fmt: skip
        ssl.leaf("spiffe", "Acme Issuing", keys, san="URI:spiffe://acme.example/ns/prod/sa/billing")
        issuer = "Acme Root"
        for i in range(5):
            ssl.issue(f"Ladder {i}", issuer, extensions=CA_EXT)
            issuer = f"Ladder {i}"
        ssl.leaf("deep", issuer, keys)
        ssl.root_ca("Other Root")
        ssl.intermediate("Other Issuing", "Other Root")
        ssl.leaf("other", "Other Issuing", keys)

        def pem(name: str) -> str:
            return ssl.made[name].read_text(encoding="ascii")

        at = unix_now() + 3600
        acme = {"name": "acme", "namespace": "ll://acme/", "certificate": pem("Acme Root")}
        spiffe = {
            "name": "acme-spiffe",
            "namespace": "spiffe://acme.example/",
            "certificate": pem("Acme Root"),
        }

        def case(
            name: str,
            description: str,
            chain: list[str],
            expect: str,
            *,
            path_valid: bool = True,
            anchors: list[dict[str, str]] | None = None,
            topic: str = "orders.eu.new",
            when: int = at,
            key_id: bytes | None = None,
            principal: str | None = "ll://acme/payments/billing",
        ) -> dict[str, Any]:
            return _with_key_ids(
                {
                    "name": name,
                    "description": description,
                    "anchors": anchors or [acme],
                    "chain": [pem(c) for c in chain],
                    "at": when,
                    "key_id": (key_id or keys.public.fingerprint).hex(),
                    "topic": topic,
                    "expect": expect,
                    "principal": principal if expect == "accept" else None,
                    "path_valid": path_valid,
                }
            )

        ladder = [f"Ladder {i}" for i in reversed(range(5))]
        cases = [
            case("accept", "root, one intermediate, leaf", ["billing", "Acme Issuing"], "accept"),
            case(
                "accept-spiffe",
                "a SPIFFE ID as principal, anchor for spiffe://acme.example/",
                ["spiffe", "Acme Issuing"],
                "accept",
                anchors=[spiffe],
                principal="spiffe://acme.example/ns/prod/sa/billing",
            ),
            case(
                "accept-narrowed",
                "the leaf allows orders.#, its CA orders.eu.*",
                ["billing-eu", "Acme EU"],
                "accept",
            ),
            case(
                "scope-narrowed",
                "orders.us.new: the leaf allows it, its CA does not",
                ["billing-eu", "Acme EU"],
                "scope",
                topic="orders.us.new",
            ),
            case(
                "scope-leaf",
                "payroll.run: outside the leaf's scope",
                ["billing", "Acme Issuing"],
                "scope",
                topic="payroll.run",
            ),
            case(
                "wrong-eku-client-auth",
                "the leaf's only EKU is clientAuth",
                ["tls-client", "Acme Issuing"],
                "wrong_eku",
            ),
            case("wrong-eku-none", "the leaf has no EKU", ["no-eku", "Acme Issuing"], "wrong_eku"),
            case(
                "no-principal-two-uris",
                "two URI SANs",
                ["two-uris", "Acme Issuing"],
                "no_principal",
            ),
            case(
                "out-of-namespace",
                "the anchor is trusted for ll://acme/hr/ only",
                ["billing", "Acme Issuing"],
                "out_of_namespace",
                anchors=[{**acme, "namespace": "ll://acme/hr/"}],
            ),
            case(
                "unknown-ca",
                "the chain ends at a CA the receiver does not trust",
                ["other", "Other Issuing"],
                "unknown_ca",
                path_valid=False,
            ),
            case(
                "expired",
                "400 days later: the leaf and its CA have expired",
                ["billing", "Acme Issuing"],
                "expired",
                path_valid=False,
                when=at + 400 * DAY,
            ),
            case("too-deep", "five intermediates", ["deep", *ladder], "too_deep"),
            case(
                "wrong-key",
                "the envelope names another sender key",
                ["billing", "Acme Issuing"],
                "wrong_key",
                key_id=PrivateKeys.generate(Suite.P256).public.fingerprint,
            ),
        ]
    document = {"format": "letterlock-x509-vectors-v1", "cases": cases}
    out.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--add-key-ids"]:
        add_key_ids(Path(sys.argv[2]))
    else:
        main(Path(sys.argv[1]))

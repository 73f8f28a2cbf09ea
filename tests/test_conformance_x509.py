"""letterlock's X.509 path validation against C2SP x509-limbo (``../shared/conformance``).

Each chain case of ``limbo-subset.json`` goes through :func:`letterlock.trust.x509.validate_path`
(the code a receiver runs: certificate parsing, then pyca's verifier under letterlock's extension
policies), with the EKU the case names (serverAuth or clientAuth) in place of letterlock's and
the case's validation time and maximum depth (letterlock's four intermediates otherwise). The
89 cases were chosen as name-independent: letterlock's own name rule (one URI SAN) is tested in
``tests/test_x509.py``. Every case asserts limbo's expected result within :data:`CASE_LIMIT`.

Skipped, with reasons: the cases where pyca/cryptography departs from limbo on purpose
(:data:`DEPARTURES`). Each is run first and the departure asserted, so the skip goes stale
(and fails) the day pyca changes.

The 11 ``pathological::`` path-building cases run three ways, each asserting limbo's result:
through pyca alone (``letterlock._x509.verify_chain``, no size cap) with every intermediate the
case supplies, under :data:`PATHOLOGICAL_LIMIT` (this measures pyca); through
``validate_path`` (which adds letterlock's size cap); and through
:func:`letterlock.trust.x509.verify_chain`, whose bounds refuse them before pyca builds a
path, under :data:`BOUNDED_LIMIT`.
"""

from __future__ import annotations

import base64
import datetime
import json
import re
import time
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from letterlock import _x509
from letterlock._x509 import CLIENT_AUTH, SERVER_AUTH
from letterlock.trust import x509
from letterlock.trust.x509 import Anchor, AnchorSet, Refused, X509Refusal

LIMBO = Path(__file__).resolve().parents[1].parent / "shared" / "conformance" / "x509-limbo"
pytestmark = pytest.mark.skipif(
    not LIMBO.is_dir(), reason="no x509-limbo data at ../shared/conformance/x509-limbo"
)

CASE_LIMIT = 1.0  # seconds, per chain case (they take under 10 ms)
PATHOLOGICAL_LIMIT = 5.0  # seconds, pyca alone (the slowest, nc-dos-1, takes about 1 s)
BOUNDED_LIMIT = 0.25  # seconds, through letterlock's bounds

#: Where pyca/cryptography departs from limbo on purpose, so letterlock does too.
DEPARTURES: dict[str, str] = {
    "pathlen::self-issued-certs-pathlen": (
        "pyca counts self-issued intermediates against pathLenConstraint (RFC 5280 exempts them)"
    ),
    "pathlen::max-chain-depth-1-self-issued": (
        "pyca counts self-issued intermediates against the maximum chain depth"
    ),
    "rfc5280::aki::intermediate-missing-aki": (
        "pyca does not require an authorityKeyIdentifier on intermediates"
    ),
    "rfc5280::ski::root-missing-ski": "pyca does not require a subjectKeyIdentifier on a root",
    "rfc5280::ski::intermediate-missing-ski": (
        "pyca does not require a subjectKeyIdentifier on intermediates"
    ),
    "webpki::aki::root-with-aki-all-fields": (
        "pyca does not check the contents of a trust anchor's authorityKeyIdentifier"
    ),
    "webpki::aki::root-with-aki-ski-mismatch": (
        "pyca does not check a trust anchor's authorityKeyIdentifier against its SKI"
    ),
    "rfc5280::ca-as-leaf": (
        "pyca refuses a certificate with cA=TRUE as the end entity (so does letterlock: a sender "
        "certificate is never a CA)"
    ),
    "pathlen::validation-ignores-pathlen-in-leaf": (
        "the leaf asserts cA=TRUE, which pyca refuses in an end entity (and it has no EKU, which "
        "letterlock refuses on purpose)"
    ),
    "webpki::forbidden-rsa-not-divisible-by-8-in-root": (
        "pyca accepts an RSA modulus that is not a multiple of 8 bits"
    ),
}

Case = dict[str, Any]
_PEM = re.compile(rb"-----BEGIN CERTIFICATE-----(.*?)-----END CERTIFICATE-----", re.DOTALL)


@cache
def _cases(name: str) -> tuple[Case, ...]:
    data: dict[str, Any] = json.loads((LIMBO / name).read_text(encoding="utf-8"))
    return tuple(data["testcases"])


def _ids(name: str) -> list[str]:
    return [case["id"] for case in _cases(name)] if LIMBO.is_dir() else []


def _case(name: str, case_id: str) -> Case:
    return next(case for case in _cases(name) if case["id"] == case_id)


def _der(pems: list[str] | str) -> list[bytes]:
    """DER of each PEM block, unparsed (a malformed certificate must reach letterlock)."""
    text = "".join(pems).encode("ascii")
    return [base64.b64decode(b"".join(body.split())) for body in _PEM.findall(text)]


def _at(case: Case) -> float:
    when = case["validation_time"]
    if when is None:
        return datetime.datetime.now(datetime.UTC).timestamp()
    return datetime.datetime.fromisoformat(when).timestamp()


def _run(case: Case, *, max_depth: int | None = None) -> tuple[bool, float, str]:
    """(accepted, seconds, detail) of validate_path on one case."""
    (leaf,) = _der(case["peer_certificate"])
    eku = SERVER_AUTH if case["validation_kind"] == "SERVER" else CLIENT_AUTH
    depth = case["max_chain_depth"]
    depth = max_depth if depth is None and max_depth is not None else depth
    start = time.perf_counter()
    result = x509.validate_path(
        _der(case["trusted_certs"]),
        leaf,
        _der(case["untrusted_intermediates"]),
        at=_at(case),
        eku=eku,
        max_depth=x509.MAX_INTERMEDIATES if depth is None else depth,
    )
    elapsed = time.perf_counter() - start
    detail = f"{result.reason.value}: {result.detail}" if isinstance(result, Refused) else "path"
    return not isinstance(result, Refused), elapsed, detail


@pytest.mark.parametrize("case_id", _ids("limbo-subset.json"))
def test_limbo_chain_case(case_id: str) -> None:
    case = _case("limbo-subset.json", case_id)
    accepted, elapsed, detail = _run(case)
    assert elapsed < CASE_LIMIT, f"{case_id} took {elapsed:.3f} s"
    expected = case["expected_result"] == "SUCCESS"
    if case_id in DEPARTURES:
        assert accepted is not expected, f"{case_id}: pyca no longer departs; drop the skip"
        pytest.skip(DEPARTURES[case_id])
    assert accepted is expected, f"{case_id}: expected {case['expected_result']}, got {detail}"


@pytest.mark.parametrize("case_id", _ids("limbo-pathological.json"))
def test_limbo_pathological_case(case_id: str) -> None:
    """pyca alone (no size cap), given every intermediate of the case (up to 100) and pyca's
    default depth of 8: its own limits hold within the time limit. Then validate_path, with
    letterlock's size cap, reaches the same result."""
    case = _case("limbo-pathological.json", case_id)
    expected = case["expected_result"] == "SUCCESS"
    eku = SERVER_AUTH if case["validation_kind"] == "SERVER" else CLIENT_AUTH
    roots = [_x509.load_der(der) for der in _der(case["trusted_certs"])]
    intermediates = [_x509.load_der(der) for der in _der(case["untrusted_intermediates"])]
    (leaf,) = (_x509.load_der(der) for der in _der(case["peer_certificate"]))
    depth = case["max_chain_depth"]
    start = time.perf_counter()
    try:
        _x509.verify_chain(
            roots,
            leaf,
            intermediates,
            at=_at(case),
            eku=eku,
            max_depth=8 if depth is None else depth,
        )
    except _x509.ChainError as exc:
        accepted, detail = False, str(exc)
    else:
        accepted, detail = True, "path"
    elapsed = time.perf_counter() - start
    print(f"{case_id}: pyca alone {elapsed * 1000:.1f} ms ({detail[:70]})")
    assert elapsed < PATHOLOGICAL_LIMIT, f"{case_id} took {elapsed:.3f} s"
    assert accepted is expected, detail
    accepted, elapsed, detail = _run(case, max_depth=8)
    assert accepted is expected, detail
    assert elapsed < PATHOLOGICAL_LIMIT, f"{case_id} took {elapsed:.3f} s"


@pytest.mark.parametrize("case_id", _ids("limbo-pathological.json"))
def test_limbo_pathological_case_is_bounded_by_letterlock(case_id: str) -> None:
    """Through verify_chain, a pathological chain is refused without the search pyca bounds."""
    case = _case("limbo-pathological.json", case_id)
    anchors = AnchorSet(
        Anchor(name=f"a{i}", certificate=der, namespace="ll://acme/")
        for i, der in enumerate(_der(case["trusted_certs"]))
    )
    (leaf,) = _der(case["peer_certificate"])
    start = time.perf_counter()
    result = x509.verify_chain(
        anchors, leaf, _der(case["untrusted_intermediates"]), at=int(_at(case))
    )
    elapsed = time.perf_counter() - start
    assert isinstance(result, Refused)  # no limbo leaf carries a letterlock principal
    assert elapsed < BOUNDED_LIMIT, f"{case_id} took {elapsed:.3f} s"


def test_limbo_counts() -> None:
    """The counts the closing note reports: pinned, so a changed data set is noticed."""
    chain = _ids("limbo-subset.json")
    pathological = _ids("limbo-pathological.json")
    assert (len(chain), len(pathological)) == (89, 11)
    assert set(DEPARTURES) <= set(chain)
    run = len(chain) - len(DEPARTURES) + len(pathological)
    print(f"x509-limbo: {len(chain) + len(pathological)} cases, {run} run and passed, "
          f"{len(DEPARTURES)} skipped (pyca departures):")  # fmt: skip
    for case_id, reason in sorted(DEPARTURES.items()):
        print(f"  {case_id}: {reason}")
    assert (run, len(DEPARTURES)) == (90, 10)


def test_every_limbo_certificate_is_decided_without_an_exception() -> None:
    """Hostile input fails in one shape: each certificate of the data set (a few hundred odd
    ones: bad keys, explicit curves, duplicate extensions, DSA, ...), as a leaf and as an
    intermediate, gets an X509Sender or a Refused, never an exception."""
    certificates = {
        der
        for name in ("limbo-subset.json", "limbo-pathological.json")
        for case in _cases(name)
        for field in ("trusted_certs", "untrusted_intermediates", "peer_certificate")
        for der in _der(case[field])
    }
    assert len(certificates) > 300
    anchor = _der(
        _case("limbo-subset.json", "pathlen::ee-with-intermediate-pathlen-0")["trusted_certs"]
    )
    anchors = AnchorSet([Anchor(name="limbo", certificate=anchor[0], namespace="ll://acme/")])
    now = int(datetime.datetime.now(datetime.UTC).timestamp())
    outcomes = set()
    for der in sorted(certificates):
        for leaf, intermediates in ((der, []), (der, [der]), (der, [der] * 4)):
            result = x509.verify_chain(anchors, leaf, intermediates, at=now)
            assert isinstance(result, Refused)
            outcomes.add(result.reason)
        assert isinstance(x509.validate_path([der], der, [der], at=now), tuple | Refused)
    assert X509Refusal.MALFORMED in outcomes

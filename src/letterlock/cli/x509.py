"""X.509 commands: ``id csr``, ``id attach`` (the sender's side) and ``trust anchor``,
``trust anchors`` (the receiver's), registered into the ``id`` and ``trust`` groups.

A sender asks its company CA for a certificate (``id csr`` prints the request, signed by the
identity's own key), attaches what the CA returns (``id attach``), and from then on every
envelope it seals carries that chain (``docs/spec/envelope-v1.md`` section 4.1). A receiver
that trusts the CA for a namespace (``trust anchor``) opens such messages from senders it has
never seen; ``open`` prints the principal and the chain it verified.
"""

from __future__ import annotations

import base64
import json
import sys

import click

from letterlock import UsageError
from letterlock._x509 import load_der, load_pem
from letterlock.cli.home import Home, check_identity_name
from letterlock.cli.options import example, pass_home, passphrase_file_option
from letterlock.cli.passphrase import passphrase
from letterlock.cli.render import note, print_table, stdout_console
from letterlock.trust.pins import check_name
from letterlock.trust.x509 import (
    MAX_INTERMEDIATES,
    Anchor,
    Refused,
    bound_identity,
    certificate_request,
)

__all__ = ["register"]

_PEM = click.Path(exists=True, dir_okay=False, allow_dash=False)


def _certificates(path: str) -> list[tuple[bytes, str]]:
    """Every certificate of a PEM file: (DER, its PEM block)."""
    with open(path, "rb") as file:
        data = file.read(1 << 20)
    try:
        found = load_pem(data)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None
    if not found:
        raise UsageError(f"{path}: no PEM certificate in it")
    return [(cert.der, _pem(cert.der)) for cert in found]


def _pem(der: bytes) -> str:

    body = base64.b64encode(der).decode("ascii")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "-----BEGIN CERTIFICATE-----\n" + "\n".join(lines) + "\n-----END CERTIFICATE-----\n"


@click.command(
    "csr",
    epilog=example(
        "letterlock id csr billing --principal ll://acme/payments/billing > billing.csr"
    ),
)
@click.argument("name")
@click.option("--principal", required=True, help="The URI SAN to request (ll:// or spiffe://).")
@passphrase_file_option
@pass_home
def id_csr(home: Home, name: str, principal: str, passphrase_file: str | None) -> None:
    """Print a PEM certificate request for identity NAME's signing key.

    It carries PRINCIPAL as its URI SAN, letterlock's extended key usage and the identity
    extension (docs/spec/x509.md section 6); the CA copies them and adds the topic scope.
    """
    check_identity_name(name)
    identity = home.load(
        name, lambda: passphrase(passphrase_file, prompt=f"Passphrase for {name!r}: ")
    )
    try:
        request = certificate_request(identity, principal)
    except ValueError as exc:
        raise UsageError(f"cannot make a request for {name!r}: {exc}") from None
    sys.stdout.write(request.decode("ascii"))


@click.command(
    "attach",
    epilog=example("letterlock id attach billing billing.pem acme-issuing.pem"),
)
@click.argument("name")
@click.argument("certificate", type=_PEM)
@click.argument("chain", nargs=-1, type=_PEM)
@pass_home
def id_attach(home: Home, name: str, certificate: str, chain: tuple[str, ...]) -> None:
    """Make identity NAME present CERTIFICATE (and the intermediates of CHAIN) in every
    envelope it seals, so receivers that trust the CA need nothing else.

    CERTIFICATE must bind NAME's key (its identity extension and public key); at most 4
    intermediates. Replaces a chain attached before.
    """
    public = home.public(name)
    leaf, *rest = _certificates(certificate)
    intermediates = rest + [cert for path in chain for cert in _certificates(path)]
    bound = bound_identity(leaf[0])
    if isinstance(bound, Refused):
        raise UsageError(f"{certificate}: {bound.reason.value}: {bound.detail}")
    principal, identity = bound
    if identity != public:
        raise UsageError(
            f"{certificate} certifies {identity.fingerprint_text}, "
            f"not identity {name!r} ({public.fingerprint_text})"
        )
    if len(intermediates) > MAX_INTERMEDIATES:
        raise UsageError(f"at most {MAX_INTERMEDIATES} intermediates, not {len(intermediates)}")
    home.save_chain(name, "".join(pem for _, pem in (leaf, *intermediates)).encode("ascii"))
    note(f"{name} now presents {principal} with {len(intermediates)} intermediate(s)")


@click.command(
    "anchor",
    epilog=example("letterlock trust anchor acme-root.pem --name acme --namespace ll://acme/"),
)
@click.argument("certificate", type=_PEM)
@click.option("--name", required=True, help="Your name for this CA.")
@click.option(
    "--namespace",
    default=None,
    metavar="NS",
    help="The principals it may certify: ll://<trust-domain>/ or spiffe://<trust-domain>/, "
    "with optional path segments, ending in '/'. Required: a CA is never trusted for every "
    "principal by default.",
)
@pass_home
def trust_anchor(home: Home, certificate: str, name: str, namespace: str | None) -> None:
    """Trust the company CA in CERTIFICATE for the senders under NAMESPACE.

    Messages whose sender presents a chain to it (letterlock id attach) then open, within the
    topics the certificates' scopes allow.
    """
    check_name(name)
    if namespace is None:
        raise UsageError("give --namespace (for example ll://acme/): the principals this CA "
                         "may certify")  # fmt: skip
    der, pem = _certificates(certificate)[0]
    home.save_anchor(Anchor(name=name, certificate=der, namespace=namespace), pem)
    note(f"trusting CA {name!r} for {namespace}")


@click.command("anchors", epilog=example("letterlock trust anchors --json"))
@click.option("--json", "as_json", is_flag=True, help="Print one JSON array instead.")
@pass_home
def trust_anchors(home: Home, as_json: bool) -> None:
    """List the company CAs you trust, with their namespaces."""

    rows = [(a.name, a.namespace, load_der(a.certificate).subject) for a in home.anchors()]
    if as_json:
        keys = ("name", "namespace", "subject")
        sys.stdout.write(json.dumps([dict(zip(keys, row, strict=True)) for row in rows]) + "\n")
        return
    print_table(stdout_console(), ["name", "namespace", "subject"], rows)


def register(id_group: click.Group, trust_group: click.Group) -> None:
    """Add these commands to the ``id`` and ``trust`` groups."""
    id_group.add_command(id_csr)
    id_group.add_command(id_attach)
    trust_group.add_command(trust_anchor)
    trust_group.add_command(trust_anchors)

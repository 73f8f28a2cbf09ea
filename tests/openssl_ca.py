"""A scratch certificate authority run through the ``openssl`` command line, for the X.509 tests
and ``tools/make_x509_vectors.py``: what a company CA's tooling emits, not what letterlock or
pyca would make."""

from __future__ import annotations

import datetime
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509 as pyca_x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from letterlock import PublicIdentity, Suite
from letterlock.core.keys import PrivateKeys
from letterlock.trust import x509

DAY = 86400
PRINCIPAL = "ll://acme/payments/billing"
EKU = x509.LETTERLOCK_EKU
CA_EXT = """basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash
"""


def unix_now() -> int:
    return int(datetime.datetime.now(datetime.UTC).timestamp())


def sig_private_pem(keys: PrivateKeys) -> bytes:
    """The identity's signing key as PKCS#8 PEM, for openssl (envelope-v1 section 3.2)."""
    encoded = keys._private_encoding()
    length = int.from_bytes(encoded[5:7], "big")
    raw = encoded[7 : 7 + length]
    key: ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey
    if keys.suite is Suite.X25519:
        key = ed25519.Ed25519PrivateKey.from_private_bytes(raw)
    else:
        curve = ec.SECP256R1() if keys.suite is Suite.P256 else ec.SECP384R1()
        key = ec.derive_private_key(int.from_bytes(raw, "big"), curve)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def der_octets(data: bytes) -> bytes:
    n = len(data)
    if n < 0x80:
        return bytes([0x04, n]) + data
    size = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x04, 0x80 | len(size)]) + size + data


@dataclass
class Openssl:
    """A scratch CA workshop in ``tmp_path``: every certificate made by the openssl CLI."""

    root: Path
    serial: int = 1
    made: dict[str, Path] = field(default_factory=dict)

    def run(self, *args: str) -> None:
        subprocess.run(["openssl", *args], cwd=self.root, check=True, capture_output=True)

    def _config(self, name: str, extensions: str, sections: str = "") -> Path:
        path = self.root / f"{name}.cnf"
        path.write_text(
            "[req]\ndistinguished_name = dn\nprompt = no\n[dn]\nCN = unused\n"
            f"[ext]\n{extensions}\n{sections}",
            encoding="utf-8",
        )
        return path

    def key(self, name: str) -> Path:
        path = self.root / f"{name}.key"
        self.run("genpkey", "-algorithm", "EC", "-pkeyopt", "ec_paramgen_curve:P-256",
                 "-out", str(path))  # fmt: skip
        return path

    def root_ca(self, name: str, *, extra: str = "", sections: str = "", days: int = 3650) -> Path:
        key = self.key(name)
        cfg = self._config(name, CA_EXT + extra, sections)
        out = self.root / f"{name}.pem"
        self.run("req", "-x509", "-new", "-key", str(key), "-subj", f"/O=Acme/CN={name}",
                 "-days", str(days), "-config", str(cfg), "-extensions", "ext",
                 "-set_serial", str(self._next()), "-out", str(out))  # fmt: skip
        self.made[name] = out
        return out

    def _next(self) -> int:
        self.serial += 1
        return self.serial

    def issue(
        self,
        name: str,
        issuer: str,
        *,
        extensions: str,
        sections: str = "",
        key: Path | None = None,
        days: int = 365,
        dates: tuple[str, str] | None = None,
    ) -> Path:
        """A certificate for ``name`` signed by ``issuer``: ``x509 -req``, or ``ca`` with dates."""
        key = key or self.key(name)
        cfg = self._config(name, extensions + "authorityKeyIdentifier = keyid:always\n", sections)
        csr = self.root / f"{name}.csr"
        out = self.root / f"{name}.pem"
        self.run("req", "-new", "-key", str(key), "-subj", f"/O=Acme/CN={name}",
                 "-config", str(cfg), "-out", str(csr))  # fmt: skip
        ca_cert, ca_key = self.made[issuer], self.root / f"{issuer}.key"
        if dates is None:
            self.run("x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key),
                     "-set_serial", str(self._next()), "-days", str(days), "-sha256",
                     "-extfile", str(cfg), "-extensions", "ext", "-out", str(out))  # fmt: skip
        else:
            db = self.root / f"{name}.db"
            db.mkdir()
            (db / "index.txt").write_text("", encoding="utf-8")
            (db / "serial").write_text(f"{self._next():04X}\n", encoding="utf-8")
            ca_cfg = self.root / f"{name}.ca.cnf"
            ca_cfg.write_text(
                cfg.read_text(encoding="utf-8")
                + f"[ca]\ndefault_ca = x\n[x]\ndatabase = {db}/index.txt\nserial = {db}/serial\n"
                f"new_certs_dir = {db}\ndefault_md = sha256\npolicy = any\n"
                "unique_subject = no\n[any]\nCN = supplied\nO = optional\n",
                encoding="utf-8",
            )
            self.run("ca", "-batch", "-config", str(ca_cfg), "-extensions", "ext",
                     "-cert", str(ca_cert), "-keyfile", str(ca_key), "-in", str(csr),
                     "-startdate", dates[0], "-enddate", dates[1], "-notext",
                     "-out", str(out))  # fmt: skip
        self.made[name] = out
        return out

    def intermediate(self, name: str, issuer: str, *, extra: str = "", sections: str = "") -> Path:
        return self.issue(name, issuer, extensions=CA_EXT + extra, sections=sections)

    def leaf(
        self,
        name: str,
        issuer: str,
        keys: PrivateKeys,
        *,
        san: str = f"URI:{PRINCIPAL}",
        eku: str | None = EKU,
        publish: tuple[str, ...] = ("orders.#",),
        consume: tuple[str, ...] = ("replies.#",),
        identity: PublicIdentity | None = None,
        dates: tuple[str, str] | None = None,
    ) -> Path:
        """A letterlock sender certificate for ``keys``' signing key (spec section 6)."""
        key = self.root / f"{name}.key"
        key.write_bytes(sig_private_pem(keys))
        bound = der_octets((identity or keys.public).to_bytes()).hex()
        extensions = (
            "basicConstraints = critical, CA:FALSE\nkeyUsage = critical, digitalSignature\n"
            f"subjectKeyIdentifier = hash\nsubjectAltName = {san}\n"
            f"{x509.IDENTITY_OID} = DER:{bound}\n{x509.SCOPE_OID} = ASN1:SEQUENCE:{name}_scope\n"
        )
        if eku is not None:
            extensions += f"extendedKeyUsage = {eku}\n"
        return self.issue(
            name, issuer, extensions=extensions, sections=scope_sections(name, publish, consume),
            key=key, dates=dates,
        )  # fmt: skip

    def der(self, name: str) -> bytes:
        cert = pyca_x509.load_pem_x509_certificate(self.made[name].read_bytes())
        return cert.public_bytes(serialization.Encoding.DER)


def scope_sections(name: str, publish: tuple[str, ...], consume: tuple[str, ...]) -> str:
    """openssl ASN1 generator sections for the scope extension (spec section 5)."""
    text = f"[{name}_scope]\npublish = SEQUENCE:{name}_pub\nconsume = SEQUENCE:{name}_con\n"
    for part, patterns in (("pub", publish), ("con", consume)):
        text += f"[{name}_{part}]\n"
        text += "".join(f'p{i} = UTF8:"{p}"\n' for i, p in enumerate(patterns))  # '#' comments
    return text


def scope_ext(name: str, publish: tuple[str, ...], consume: tuple[str, ...]) -> tuple[str, str]:
    return f"{x509.SCOPE_OID} = ASN1:SEQUENCE:{name}_scope\n", scope_sections(
        name, publish, consume
    )

"""TLS against a loopback HTTPS emulator with a certificate from a private CA made at test time.

Verification is on by default: the unknown CA is a clear FlowPlatformError naming TLS and the certificate,
at once (not retried). ``verify: false`` turns it off; ``verify: <CA bundle path>`` trusts that CA. Both the
sync (requests) and the async (aiohttp) paths, on every platform.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import ssl
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from airflow_provider_flowinst.errors import PLATFORM_TITLES, FlowPlatformError
from airflow_provider_flowinst.hooks import aget_hook, get_hook
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.testing.connections import emulator_connection_specs
from airflow_provider_flowinst.testing.emulator import EmulatorServer
from airflow_provider_flowinst.transport import close_shared_session

#: An instance each platform's emulator serves from the start (EnOS periodic ids exist when asked for).
INSTANCES = {
    "enos_batch": "2809-20360101000000",
    "enos_bpm": "0b7c5e00-e39a-11ea-b667-e2b39eaec001",
    "lsf_pm": "101",
    "dataworks": "700001",
}
FIRST_CALL = {
    "enos_batch": "Get Access Token",
    "enos_bpm": "Get Access Token",
    "lsf_pm": "Log On",
    "dataworks": "GetWorkflowInstance",
}


def issue_certificates(directory: Path) -> tuple[Path, Path, Path]:
    """A private CA and a server certificate it signs, for 127.0.0.1 and localhost: (ca, cert, key) files."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "flowinst test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    paths = directory / "ca.pem", directory / "server.pem", directory / "server.key"
    paths[0].write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return paths


@pytest.fixture(scope="module")
def https_emulator(tmp_path_factory) -> Iterator[tuple[EmulatorServer, Path]]:
    ca, cert, key = issue_certificates(tmp_path_factory.mktemp("tls"))
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    with EmulatorServer(time_scale=0.1, ssl_context=context) as server:
        yield server, ca


def connect(monkeypatch, server: EmulatorServer, platform: str, **extra: Any) -> str:
    spec = emulator_connection_specs(server.url)[f"{platform}_default"]
    conn_id = f"{platform}_tls"
    spec = {**spec, "extra": {**spec.get("extra", {}), "max_retries": 2, "retry_max_wait": 0.05, **extra}}
    monkeypatch.setenv(f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(spec))
    return conn_id


async def read(conn_id: str, instance_id: str, path: str):
    if path == "sync":
        return get_hook(conn_id).get_instance(instance_id)
    try:
        return await (await aget_hook(conn_id)).aget_instance(instance_id)
    finally:
        await close_shared_session()


PATHS = ["sync", "async"]
PLATFORMS = sorted(INSTANCES)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_verification_is_on_by_default(https_emulator, monkeypatch, platform, path):
    server, _ = https_emulator
    conn_id = connect(monkeypatch, server, platform)

    started = time.monotonic()
    with pytest.raises(FlowPlatformError) as error:
        await read(conn_id, INSTANCES[platform], path)

    assert time.monotonic() - started < 2.0  # not retried: another attempt would meet the same certificate
    message = str(error.value)
    assert message.startswith(
        f"{PLATFORM_TITLES[platform]}: {FIRST_CALL[platform]} failed: TLS error with 127.0.0.1: "
        "[SSL: CERTIFICATE_VERIFY_FAILED] certificate verify failed: unable to get local issuer certificate. "
    )
    assert "'verify'" in message  # says what to do about it
    assert not error.value.retryable


@pytest.mark.filterwarnings("ignore::urllib3.exceptions.InsecureRequestWarning")
@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("platform", PLATFORMS)
@pytest.mark.parametrize("verify", [False, "false"])
async def test_verify_false_turns_verification_off(https_emulator, monkeypatch, platform, path, verify):
    server, _ = https_emulator
    conn_id = connect(monkeypatch, server, platform, verify=verify)

    instance = await read(conn_id, INSTANCES[platform], path)

    assert (instance.platform, instance.instance_id) == (platform, INSTANCES[platform])
    assert instance.state != FlowState.UNKNOWN


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_verify_with_a_ca_bundle_path_trusts_that_ca(https_emulator, monkeypatch, platform, path):
    server, ca = https_emulator
    conn_id = connect(monkeypatch, server, platform, verify=str(ca))

    instance = await read(conn_id, INSTANCES[platform], path)

    assert (instance.platform, instance.instance_id) == (platform, INSTANCES[platform])

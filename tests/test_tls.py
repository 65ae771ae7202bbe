"""TLS against a loopback HTTPS emulator with a certificate from a private CA made at test time.

Verification is on by default: the unknown CA is a clear FlowPlatformError naming TLS and the certificate,
at once (not retried). ``verify: false`` turns it off; ``verify: <CA bundle path>`` or a CA directory
trusts that CA. Both the sync (requests) and the async (aiohttp) paths, on every platform, trust the same
store (the CA variables, else certifi) and take the same proxy (HTTPS_PROXY / HTTP_PROXY / NO_PROXY,
through a loopback proxy).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import shutil
import socket
import ssl
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from airflow_provider_flowinst.errors import PLATFORM_TITLES, FlowPlatformError
from airflow_provider_flowinst.models import FlowState
from airflow_provider_flowinst.testing.connections import emulator_connection_specs
from airflow_provider_flowinst.testing.emulator import EmulatorServer
from tests.helpers import read_instance

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


PATHS = ["sync", "async"]
PLATFORMS = sorted(INSTANCES)


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_verification_is_on_by_default(https_emulator, monkeypatch, platform, path):
    server, _ = https_emulator
    conn_id = connect(monkeypatch, server, platform)

    started = time.monotonic()
    with pytest.raises(FlowPlatformError) as error:
        await read_instance(conn_id, INSTANCES[platform], path)

    # Not retried: another attempt would meet the same certificate (retries would back off 15 s in all); the
    # margin holds on a loaded 2-core machine.
    assert time.monotonic() - started < 5.0
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

    instance = await read_instance(conn_id, INSTANCES[platform], path)

    assert (instance.platform, instance.instance_id) == (platform, INSTANCES[platform])
    assert instance.state != FlowState.UNKNOWN


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_verify_with_a_ca_bundle_path_trusts_that_ca(https_emulator, monkeypatch, platform, path):
    server, ca = https_emulator
    conn_id = connect(monkeypatch, server, platform, verify=str(ca))

    instance = await read_instance(conn_id, INSTANCES[platform], path)

    assert (instance.platform, instance.instance_id) == (platform, INSTANCES[platform])


# -- one trust store and one proxy decision for both paths -------------------------------------------------


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("variable", ["SSL_CERT_FILE", "REQUESTS_CA_BUNDLE"])
async def test_the_ca_variables_are_honoured_alike_on_both_paths(https_emulator, monkeypatch, variable, path):
    # Before, requests read only REQUESTS_CA_BUNDLE and aiohttp only SSL_CERT_FILE: a wait worked in poke mode
    # and failed deferred, or the reverse.
    server, ca = https_emulator
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(variable, str(ca))
    conn_id = connect(monkeypatch, server, "dataworks")

    instance = await read_instance(conn_id, INSTANCES["dataworks"], path)

    assert instance.instance_id == INSTANCES["dataworks"]


def hashed_ca_directory(ca: Path, directory: Path) -> Path:
    """A directory of CA certificates as OpenSSL looks them up: named by subject hash (``c_rehash``)."""
    subject_hash = subprocess.run(
        ["openssl", "x509", "-hash", "-noout", "-in", str(ca)], check=True, capture_output=True, text=True
    ).stdout.strip()
    directory.mkdir()
    shutil.copy(ca, directory / f"{subject_hash}.0")
    return directory


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_verify_with_a_ca_directory_trusts_its_cas(https_emulator, monkeypatch, tmp_path, platform, path):
    server, ca = https_emulator
    conn_id = connect(monkeypatch, server, platform, verify=str(hashed_ca_directory(ca, tmp_path / "cas")))

    instance = await read_instance(conn_id, INSTANCES[platform], path)

    assert (instance.platform, instance.instance_id) == (platform, INSTANCES[platform])


class LoopbackProxy:
    """A tiny HTTP proxy on a loopback port: CONNECT tunnels (for https) and absolute-form forwarding (for
    http), recording each request line it was asked for."""

    def __init__(self) -> None:
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self.seen: list[str] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(client,), daemon=True).start()

    def _serve(self, client: socket.socket) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                data = client.recv(65536)
                if not data:
                    return
                head += data
            line = head.split(b"\r\n", 1)[0].decode()
            self.seen.append(line)
            method, target, _ = line.split(" ", 2)
            address = target if method == "CONNECT" else urlsplit(target).netloc
            host, _, port = address.rpartition(":")
            with socket.create_connection((host, int(port))) as upstream:
                if method == "CONNECT":
                    client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
                else:
                    upstream.sendall(head)  # the emulator reads an absolute-form request target as well
                pipe = threading.Thread(target=_copy, args=(upstream, client), daemon=True)
                pipe.start()
                _copy(client, upstream)
                pipe.join(timeout=5)

    def close(self) -> None:
        self.listener.close()


def _copy(source: socket.socket, target: socket.socket) -> None:
    try:
        while data := source.recv(65536):
            target.sendall(data)
        target.shutdown(socket.SHUT_WR)
    except OSError:
        pass


@pytest.fixture
def proxy(monkeypatch) -> Iterator[LoopbackProxy]:
    for name in ("http_proxy", "https_proxy", "all_proxy", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.upper(), raising=False)
    running = LoopbackProxy()
    yield running
    running.close()


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("platform", PLATFORMS)
async def test_https_proxy_is_used_on_both_paths(https_emulator, monkeypatch, proxy, platform, path):
    server, ca = https_emulator
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    conn_id = connect(monkeypatch, server, platform, verify=str(ca))

    instance = await read_instance(conn_id, INSTANCES[platform], path)

    assert instance.instance_id == INSTANCES[platform]
    assert any(line.startswith(f"CONNECT 127.0.0.1:{server.port} HTTP/1.") for line in proxy.seen), proxy.seen


@pytest.mark.parametrize("path", PATHS)
async def test_http_proxy_forwards_plain_http_on_both_paths(emulator, monkeypatch, proxy, path):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    spec = emulator_connection_specs(emulator.url)["lsf_pm_default"]
    monkeypatch.setenv("AIRFLOW_CONN_LSF_PM_PROXIED", json.dumps(spec))

    instance = await read_instance("lsf_pm_proxied", "101", path)

    assert instance.instance_id == "101"
    # The logon, then the read on the same kept-alive connection: both in absolute form, through the proxy.
    assert proxy.seen[0] == f"POST {emulator.url}/platform/ws/logon HTTP/1.1", proxy.seen


@pytest.mark.parametrize("path", PATHS)
async def test_no_proxy_is_honoured_on_both_paths(https_emulator, monkeypatch, proxy, path):
    server, ca = https_emulator
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    conn_id = connect(monkeypatch, server, "dataworks", verify=str(ca))

    assert (await read_instance(conn_id, INSTANCES["dataworks"], path)).instance_id == INSTANCES["dataworks"]
    assert proxy.seen == []


class TlsThenPlainText:
    """A server that completes the TLS handshake (with the test CA's certificate), reads the request, then
    answers in plain text: a TLS error on a connection that was set up, as a broken middlebox makes one."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.handshakes = 0
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                connection, _ = self.listener.accept()
            except OSError:
                return
            with connection:
                incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
                tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
                received, shaken = b"", False
                try:
                    while b"\r\n\r\n" not in received:
                        try:
                            if not shaken:
                                tls.do_handshake()
                                shaken = True
                                self.handshakes += 1
                            received += tls.read(65536)
                        except ssl.SSLWantReadError:
                            if outgoing.pending:
                                connection.sendall(outgoing.read())
                            data = connection.recv(65536)
                            if not data:
                                break
                            incoming.write(data)
                    if outgoing.pending:
                        connection.sendall(outgoing.read())
                    connection.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
                except (OSError, ssl.SSLError):
                    pass  # the client gave up first

    def close(self) -> None:
        self.listener.close()


async def test_a_tls_error_after_the_handshake_is_a_broken_connection_not_a_certificate_error(tmp_path, monkeypatch):
    # The async path only: requests wraps a TLS error the same whether the handshake failed or a record after it,
    # so the sync path still reports either as a TLS error.
    ca, cert, key = issue_certificates(tmp_path)
    server = TlsThenPlainText(cert, key)
    conn_id = connect(monkeypatch, server, "enos_batch", verify=str(ca), max_retries=1)
    try:
        with pytest.raises(FlowPlatformError) as error:
            await read_instance(conn_id, INSTANCES["enos_batch"], "async")
    finally:
        server.close()

    assert server.handshakes == 2  # the certificate was verified and accepted each time
    assert "still failing after 2 attempts" in str(error.value)
    assert error.value.retryable
    assert "TLS certificates are verified by default" not in str(error.value)

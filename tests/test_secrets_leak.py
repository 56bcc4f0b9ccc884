"""Secrets never leak: NAS secrets and subscriber passwords appear in no output.

Representative flows, everything they print collected: the CLI (nas add/list/show in
every format, service add/show/edit, explain, history, an operator's history, refused
commands and their one-line errors, an operator without the permission), and `aaa serve`
as a process (its start and stop log lines, an Access-Request signed with a wrong secret,
one with a wrong password, one accepted, one from an unknown address, and /metrics).
Then none of the secrets may appear anywhere, in clear, hex or base64.
"""

from __future__ import annotations

import base64
import socket
from pathlib import Path

from aaa.radius import PacketCode, build_request, encode_attributes, load_dictionary
from tests.conftest import CliResult
from tests.daemon_process import running_daemon
from tests.factories import cpf

DICT = load_dictionary()
NAS_SECRET = "NasSecret-Zq81x"
NAS_SECRET_2 = "HwSecret-Lp27v"
WRONG_SECRET = "Attacker-Key-Tt55"
PASSWORD = "SubPass-Wk39t"
NEW_PASSWORD = "NewPass-Mm04r"
TRIED_PASSWORD = "Guess-Qe62y"
SECRETS = (NAS_SECRET, NAS_SECRET_2, PASSWORD, NEW_PASSWORD, TRIED_PASSWORD, WRONG_SECRET)


def forms(secret: str) -> list[str]:
    raw = secret.encode()
    return [secret, raw.hex(), base64.b64encode(raw).decode(), secret.lower()]


def assert_clean(where: str, text: str) -> None:
    for secret in SECRETS:
        for form in forms(secret):
            assert form not in text, f"{secret!r} leaked ({form!r}) in {where}:\n{text[:2000]}"


def access_request(login: str, password: str, secret: str, ident: int) -> bytes:
    auth = bytes(range(ident, ident + 16))
    attrs = encode_attributes(DICT, [("User-Name", login), ("User-Password", password),
                                     ("NAS-IP-Address", "127.0.0.1")], secret=secret.encode(),
                              authenticator=auth)
    return build_request(PacketCode.ACCESS_REQUEST, ident, attrs, secret.encode(), authenticator=auth)


def exchange(port: int, packet: bytes, source: str = "127.0.0.1") -> bytes | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind((source, 0))
        sock.settimeout(1.0)
        sock.sendto(packet, ("127.0.0.1", port))
        try:
            return sock.recv(4096)
        except TimeoutError:
            return None


def test_no_secret_in_cli_output_logs_or_metrics(cli, fresh_db_url: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    outputs: list[tuple[str, CliResult]] = []

    def run(*args: str, code: int | None = 0) -> CliResult:
        result: CliResult = cli(*args)
        outputs.append((" ".join(args), result))
        if code is not None:
            assert result.code == code, (args, result.out, result.err)
        return result

    document = cpf()
    run("plan", "add", "FIBRA", "--download", "100000", "--upload", "50000")
    run("nas", "add", "mk", "--ip", "127.0.0.1", "--secret", NAS_SECRET, "--vendor", "mikrotik",
        "--no-require-message-authenticator")
    run("--format", "json", "nas", "add", "hw", "--ip", "127.0.0.2", "--secret", NAS_SECRET_2,
        "--vendor", "huawei")
    run("customer", "add", "--name", "Ana", "--document", document)
    run("--format", "json", "service", "add", "--customer", document, "--plan", "FIBRA",
        "--login", "ana", "--password", PASSWORD)
    for fmt in ("table", "json", "csv"):
        run("--format", fmt, "nas", "list")
        run("--format", fmt, "nas", "show", "mk")
        run("--format", fmt, "service", "show", "ana")
        run("--format", fmt, "explain", "ana")
        run("--format", fmt, "history", "ana")
    run("service", "edit", "ana", "--password", NEW_PASSWORD)
    run("--format", "json", "history", "ana")
    run("--format", "json", "history", "--operator", "admin")
    run("explain", "ana", "--nas", "hw")
    # Refused commands: their one-line messages must not echo what was typed.
    run("nas", "add", "mk", "--ip", "127.0.0.9", "--secret", NAS_SECRET, "--vendor", "mikrotik", code=None)
    run("nas", "add", "mk2", "--ip", "127.0.0.1", "--secret", NAS_SECRET_2, "--vendor", "mikrotik", code=None)
    run("nas", "add", "bad", "--ip", "not-an-ip", "--secret", NAS_SECRET, "--vendor", "mikrotik", code=None)
    run("service", "add", "--customer", document, "--plan", "FIBRA", "--login", "ana",
        "--password", PASSWORD, code=None)
    run("service", "edit", "ana", "--password", NEW_PASSWORD * 20, code=None)
    run("service", "edit", "nobody", "--password", NEW_PASSWORD, code=None)
    run("operator", "add", "fraco", "--name", "Fraco", "--password", "op-Pass-991", code=None)
    run("--as", "fraco", "nas", "add", "mk3", "--ip", "127.0.0.5", "--secret", NAS_SECRET,
        "--vendor", "mikrotik", code=None)
    run("--as", "fraco", "service", "edit", "ana", "--password", TRIED_PASSWORD, code=None)
    refused = [r for _, r in outputs if r.code != 0]
    assert len(refused) >= 6 and all(r.err.strip() and "Traceback" not in r.err for r in refused)
    for command, result in outputs:
        assert_clean(f"`aaa {command}` stdout", result.out)
        assert_clean(f"`aaa {command}` stderr", result.err)

    with running_daemon(fresh_db_url, tmp_path) as daemon:
        port = daemon.auth_port
        assert exchange(port, access_request("ana", NEW_PASSWORD, WRONG_SECRET, 1)) is None
        rejected = exchange(port, access_request("ana", TRIED_PASSWORD, NAS_SECRET, 2))
        assert rejected is not None and rejected[0] == PacketCode.ACCESS_REJECT
        accepted = exchange(port, access_request("ana", NEW_PASSWORD, NAS_SECRET, 3))
        assert accepted is not None and accepted[0] == PacketCode.ACCESS_ACCEPT
        assert exchange(port, access_request("ana", NEW_PASSWORD, NAS_SECRET, 4), source="127.0.0.3") is None
        exchange(port, access_request("nobody", TRIED_PASSWORD, NAS_SECRET, 5))
        metrics = daemon.metrics_text()
        assert 'reason="bad_authenticator"' in metrics or "aaa_radius_dropped_total" in metrics
        assert_clean("/metrics", metrics)
        lines = daemon.lines
    assert any("event=start" in line for line in lines)
    assert_clean("aaa serve stderr (start, requests, stop)", "\n".join(lines))


"""No unsafe deserialization anywhere in the product, Keras' safe_mode refuses a Lambda layer through every
command that loads a .keras, and the web view serves only its own page and stream, on loopback by default."""

from __future__ import annotations

import json
import re
import socket
import zipfile

import pytest

from edgekit.runtime.errors import EXIT_BAD_INPUT

from .conftest import REPO, cli, error_line, listing

PRODUCT = ("toolkit", "export", "runtime")
UNSAFE = {
    "pickle": re.compile(r"\bimport\s+(c?pickle|dill|cloudpickle|shelve|marshal)\b|\b(c?pickle|dill|cloudpickle|marshal)\.(loads?|Unpickler)\b"),
    "allow_pickle=True": re.compile(r"allow_pickle\s*=\s*True"),
    "safe_mode=False": re.compile(r"safe_mode\s*=\s*False|enable_unsafe_deserialization"),
    "eval/exec": re.compile(r"(?<![\w.])(eval|exec)\s*\("),
    "yaml.load": re.compile(r"\byaml\.(unsafe_)?load\s*\("),
    "torch.load": re.compile(r"\btorch\.load\s*\("),
}


def test_product_code_has_no_unsafe_deserialization():
    files = [p for part in PRODUCT for p in sorted((REPO / part).rglob("*.py"))]
    assert len(files) > 10, files  # the scan really looks at the product
    found = []
    for path in files:
        for n, line in enumerate(path.read_text("utf-8").splitlines(), 1):
            for what, pattern in UNSAFE.items():
                if pattern.search(line):
                    found.append(f"{path.relative_to(REPO)}:{n}: {what}: {line.strip()}")
    assert not found, "\n".join(found)


def test_the_scan_would_catch_each_pattern():
    for line in ("import pickle", "np.load(p, allow_pickle=True)", "load_model(p, safe_mode=False)",
                 "x = eval(text)", "exec(code)", "yaml.load(f)", "pickle.loads(b)"):
        assert any(p.search(line) for p in UNSAFE.values()), line
    for line in ("with np.load(path, allow_pickle=False) as npz:", "model.evaluate(x)", "Nothing is ever unpickled."):
        assert not any(p.search(line) for p in UNSAFE.values()), line


# --- a .keras with a Lambda layer -------------------------------------------------------------------

def test_lambda_model_is_real(lambda_model_path):
    with zipfile.ZipFile(lambda_model_path) as z:
        config = json.loads(z.read("config.json"))
    layers = [layer["class_name"] for layer in config["config"]["layers"]]
    assert "Lambda" in layers, layers


def test_keras_safe_mode_refuses_the_lambda(lambda_model_path):
    import keras

    with pytest.raises(ValueError, match="(?i)lambda"):
        keras.saving.load_model(lambda_model_path, safe_mode=True)


def test_export_refuses_a_lambda_layer(lambda_model_path, tmp_path):
    out = tmp_path / "out"
    line = error_line(cli("export", "--model", lambda_model_path, "--out", out), EXIT_BAD_INPUT)
    assert str(lambda_model_path) in line and "refused by Keras safe_mode" in line and "Lambda" in line
    assert not out.exists()


def test_validate_refuses_a_lambda_reference(lambda_model_path, exported, small_npz):
    before = listing(exported)
    line = error_line(
        cli("validate", exported, "--reference", lambda_model_path, "--data", small_npz, "--limit", 20, "--latency-runs", 1),
        EXIT_BAD_INPUT,
    )
    assert str(lambda_model_path) in line and "refused by Keras safe_mode" in line and "Lambda" in line
    assert listing(exported) == before


# --- the web view -----------------------------------------------------------------------------------

def _get(port: int, target: str, method: str = "GET") -> tuple[int, bytes]:
    """One raw HTTP/1.1 request (the path exactly as given, no client-side normalisation)."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(f"{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n".encode())
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    return int(head.split()[1]), body


@pytest.fixture
def server():
    from edgekit.runtime.serve import StreamServer

    with StreamServer(port=0) as srv:
        yield srv


def test_web_view_binds_to_loopback_by_default(server):
    from edgekit.runtime.serve import parse_address

    assert server.address[0] == "127.0.0.1"
    assert parse_address("8080") == ("127.0.0.1", 8080)
    assert parse_address(":8080") == ("127.0.0.1", 8080)


@pytest.mark.parametrize("target", [
    "/../../etc/passwd",
    "/%2e%2e/%2e%2e/etc/passwd",
    "/..%2f..%2fetc%2fpasswd",
    "/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
    "//etc/passwd",
    "/etc/passwd",
    "/page.html",
    "/serve.py",
    "/runtime/serve.py",
    "/index.html/../../../etc/passwd",
    "/stream.mjpg/../../etc/passwd",
    "/static/../../etc/passwd",
    "http://127.0.0.1/../../etc/passwd",
    "/favicon.ico",
])
def test_web_view_answers_unknown_paths_with_404(server, target):
    code, body = _get(server.address[1], target)
    assert code == 404, (target, code)
    assert b"root:" not in body and b"import" not in body


def test_web_view_serves_its_page_status_and_stream(server):
    port = server.address[1]
    code, page = _get(port, "/")
    assert code == 200 and b"<html" in page.lower()
    code, status = _get(port, "/status.json")
    assert code == 200 and "digit" in json.loads(status)
    code, _ = _get(port, "/stream.mjpg", method="HEAD")
    assert code == 200


@pytest.mark.parametrize("method", ["POST", "PUT", "DELETE"])
def test_web_view_accepts_only_get_and_head(server, method):
    code, _ = _get(server.address[1], "/", method=method)
    assert code in (405, 501), (method, code)

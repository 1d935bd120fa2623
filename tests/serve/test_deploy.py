"""`deploy/`: no container runs here (no registry, no Docker engine), so the files are checked
as written: each parses, each probe path and port is the app's, `haproxy -c` accepts the
configuration with the addresses compose gives it, the drain has its grace everywhere."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import httpx
import pytest
import yaml
from conftest import ROOT, AppProcess

DEPLOY = ROOT / "deploy"
PORT = 7860


def dockerfile() -> str:
    return (DEPLOY / "Dockerfile").read_text()


def kubernetes() -> dict[str, dict]:
    docs = list(yaml.safe_load_all((DEPLOY / "kubernetes" / "llmstream.yaml").read_text()))
    return {d["kind"]: d for d in docs}


def compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.yaml").read_text())


def test_the_dockerfile_builds_in_stages_runs_unprivileged_and_checks_healthz():
    text = dockerfile()
    assert len(re.findall(r"^FROM ", text, re.M)) == 2 and "COPY --from=build /opt/venv /opt/venv" in text
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user == ["llmstream"] and "useradd --create-home --uid 10001 llmstream" in text
    assert re.search(rf"^EXPOSE {PORT}$", text, re.M)
    assert f"GRADIO_SERVER_PORT={PORT}" in text and "GRADIO_SERVER_NAME=0.0.0.0" in text
    (check,) = re.findall(r"^HEALTHCHECK .*\n\s+CMD (.*)$", text, re.M)
    assert f"http://127.0.0.1:{PORT}/healthz" in check
    assert re.search(r'^CMD \["python", "app.py"\]$', text, re.M)
    for path in re.findall(r"^COPY (?!--from)(.+) \S+$", text, re.M):  # everything it copies exists
        for name in path.split():
            assert (ROOT / name).exists(), name


def test_kubernetes_probes_ports_and_grace_match_the_app():
    k = kubernetes()
    assert set(k) == {"Deployment", "Service", "Ingress"}
    pod = k["Deployment"]["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert container["ports"] == [{"name": "http", "containerPort": PORT}] and env["GRADIO_SERVER_PORT"] == str(PORT)
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    assert pod["terminationGracePeriodSeconds"] > float(env["DRAIN_SECONDS"])
    assert pod["securityContext"]["runAsUser"] == 10001 and pod["securityContext"]["runAsNonRoot"]
    service = k["Service"]["spec"]
    assert service["selector"] == k["Deployment"]["spec"]["selector"]["matchLabels"]
    assert service["ports"][0]["targetPort"] == "http"
    ingress = k["Ingress"]
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]["backend"]["service"]
    assert backend == {"name": k["Service"]["metadata"]["name"], "port": {"name": "http"}}
    notes = ingress["metadata"]["annotations"]
    assert notes["nginx.ingress.kubernetes.io/affinity"] == "cookie"
    assert notes["nginx.ingress.kubernetes.io/proxy-buffering"] == "off"
    annotations = k["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/path"] == "/metrics" and annotations["prometheus.io/port"] == str(PORT)


def test_compose_runs_replicas_behind_the_shipped_haproxy_configuration(tmp_path):
    c = compose()
    services = c["services"]
    apps = [name for name in services if name.startswith("app")]
    assert len(apps) == 2
    haproxy = services["haproxy"]
    assert "./haproxy.cfg:/usr/local/etc/haproxy/haproxy.cfg:ro" in haproxy["volumes"]
    env = haproxy["environment"]
    assert [env[f"LLMSTREAM_REPLICA_{i}"] for i in (1, 2)] == [f"{a}:{PORT}" for a in apps]
    for name in apps:
        service = services[name]
        assert service["build"]["dockerfile"] == "deploy/Dockerfile"
        assert f"http://127.0.0.1:{PORT}/readyz" in " ".join(service["healthcheck"]["test"])
        grace = float(service["stop_grace_period"].rstrip("s"))
        assert grace > float(service["environment"]["DRAIN_SECONDS"])
    if shutil.which("haproxy") is None:
        pytest.skip("HAProxy is not installed (apt-get install haproxy)")
    done = subprocess.run(  # the file compose mounts, with compose's values (addresses resolved here)
        ["haproxy", "-c", "-f", str(DEPLOY / "haproxy.cfg")],
        env={
            **os.environ,
            "LLMSTREAM_BIND": "127.0.0.1:1",
            "LLMSTREAM_REPLICA_1": "127.0.0.1:2",
            "LLMSTREAM_REPLICA_2": "127.0.0.1:3",
        },
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_probe_paths_the_files_name_are_the_ones_the_app_answers(ollama):
    paths = set(
        re.findall(r"/(?:healthz|readyz|metrics)\b", "".join(p.read_text() for p in DEPLOY.rglob("*") if p.is_file()))
    )
    assert paths == {"/healthz", "/readyz", "/metrics"}
    app = AppProcess({"OLLAMA_HOST": ollama.url, "BACKEND": "ollama"})
    try:
        assert {p: httpx.get(app.url + p).status_code for p in sorted(paths)} == dict.fromkeys(sorted(paths), 200)
    finally:
        app.stop()

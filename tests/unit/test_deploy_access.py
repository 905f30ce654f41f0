"""deploy/ says the same as the code about Kafka access: the ACL script and the Strimzi users
are exactly what the registry generates, and every container connects as its own principal."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from services.platform.access import acl_grants, principal_of, strimzi_users

yaml = pytest.importorskip("yaml")
DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def _cli(*args: str) -> str:
    return subprocess.run(
        [sys.executable, "-m", "services.cli", *args], capture_output=True, text=True, check=True
    ).stdout


def test_the_acl_script_is_what_the_registry_generates() -> None:
    assert (DEPLOY / "kafka" / "acls.sh").read_text() == _cli("topics", "--acls", "kafka-acls"), (
        "regenerate: exchange topics --acls kafka-acls > deploy/kafka/acls.sh"
    )


def test_the_strimzi_users_are_what_the_registry_generates() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "kafka-users.yaml").read_text()))
    assert [d for d in docs if d] == json.loads(json.dumps(strimzi_users(acl_grants()))), (
        "regenerate: exchange topics --acls strimzi > deploy/k8s/kafka-users.yaml"
    )


def _principal_for(args: list[str]) -> str:
    return "exchange-admin" if args == ["broker", "restore"] else principal_of(args[-1])


def test_every_kubernetes_container_uses_its_own_principal_and_secret() -> None:
    seen = set()
    for path in (DEPLOY / "k8s").glob("*.yaml"):
        for doc in yaml.safe_load_all(path.read_text()):
            if not doc or doc.get("kind") not in ("Deployment", "Job"):
                continue
            pod: dict[str, Any] = doc["spec"]["template"]["spec"]
            for c in pod["containers"]:
                if c["args"][:1] == ["db"]:
                    continue  # migrate: PostgreSQL only
                env = {e["name"]: e.get("value") for e in c.get("env", [])}
                principal = _principal_for(c["args"])
                assert env["KAFKA_SASL_USERNAME"] == principal, path.name
                secrets = {
                    v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v
                }
                assert secrets["kafka-credentials"] == f"kafka-{principal}", path.name
                seen.add(principal)
    assert seen == {
        "gateway",
        "intake-needs",
        "intake-donations",
        "intake-pledges",
        "matcher",
        "ledger",
        "exchange-admin",
    }


def test_every_compose_container_uses_its_own_principal_and_only_its_password() -> None:
    compose = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    for name, svc in compose["services"].items():
        command = svc.get("command") or []
        if command[:2] == ["services", "run"] or command == ["broker", "restore"]:
            principal = _principal_for(command)
            env = svc["environment"]
            assert env["KAFKA_SECURITY_PROTOCOL"] == "SASL_SSL", name
            assert env["KAFKA_SASL_USERNAME"] == principal, name
            assert svc["secrets"] == [f"kafka-{principal}"], name
            assert env["KAFKA_SASL_PASSWORD_FILE"] == f"/run/secrets/kafka-{principal}", name
    listeners = compose["services"]["kafka-1"]["environment"][
        "KAFKA_LISTENER_SECURITY_PROTOCOL_MAP"
    ]
    assert "PLAINTEXT" not in listeners.replace("SASL_SSL", "")


def test_only_the_gateway_accepts_connections() -> None:
    docs = list(yaml.safe_load_all((DEPLOY / "k8s" / "networkpolicy.yaml").read_text()))
    deny = [d for d in docs if d["spec"]["podSelector"] == {}]
    assert deny and set(deny[0]["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    ingress = [d for d in docs if "Ingress" in d["spec"]["policyTypes"] and d not in deny]
    assert [
        d["spec"]["podSelector"]["matchLabels"]["app.kubernetes.io/component"] for d in ingress
    ] == ["gateway"]

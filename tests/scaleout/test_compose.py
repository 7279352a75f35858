"""The compose file users copy names only settings that exist, and three distinct instances.
(No engine here can pull postgres/redis images, so the file itself is what can be checked.)"""

from __future__ import annotations

from pathlib import Path

import yaml

from loop_server.config import SETTINGS

COMPOSE = Path(__file__).resolve().parents[2] / "deploy" / "scale-out" / "compose.yaml"


def test_the_compose_file_sets_real_settings_for_three_distinct_instances() -> None:
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    known = {s.env for s in SETTINGS if s.env}
    instances = {name: svc for name, svc in services.items() if name.startswith("loop-")}
    assert len(instances) == 3
    ids = set()
    for name, service in instances.items():
        env = service["environment"]
        unknown = sorted(set(env) - known)
        assert not unknown, f"{name} sets settings loop-server does not have: {unknown}"
        assert env["LOOP_DATABASE_URL"].startswith("postgresql://")
        assert env["LOOP_REDIS_URL"].startswith("redis://")
        ids.add(env["LOOP_INSTANCE_ID"])
    assert len(ids) == 3, "every instance needs its own instance id"
    ports = {service["ports"][0] for service in instances.values()}
    assert len(ports) == 3 and all(p.startswith("127.0.0.1:") for p in ports)

"""Running where KFP runs (issue #7): the Dockerfile and the Job manifests, checked without a cluster or
a Docker engine, and the database settings a KFP install provides (host, port, names, user, password
as separate values) turned into working URLs."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import pytest
import yaml
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url

from mlmd2kfp.errors import ConfigError
from mlmd2kfp.sample.kfp_db import create_legacy_tables
from mlmd2kfp.settings import PART_ENVS, url_from_parts

from .helpers import execute, run_cli

ROOT = Path(__file__).resolve().parent.parent
MANIFESTS = sorted((ROOT / "deploy").glob("*.yaml"))
KUBERNETES_VERSION = "1.29.0"
"""The oldest Kubernetes the manifests promise to fit (KFP 2.x supports 1.29 and later)."""


def test_there_is_a_manifest_per_kfp_database():
    assert {p.name for p in MANIFESTS} == {"job-mysql.yaml", "job-postgresql.yaml"}


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_is_a_valid_job_by_the_kubernetes_schema(path):
    kubernetes_validate = pytest.importorskip("kubernetes_validate")
    docs = [d for d in yaml.safe_load_all(path.read_text()) if d]
    assert [d["kind"] for d in docs] == ["Job"]
    kubernetes_validate.validate(docs[0], KUBERNETES_VERSION, strict=True)  # raises on any schema error
    broken = json.loads(json.dumps(docs[0]))
    broken["spec"]["template"]["spec"]["containers"][0]["env"][0]["valueFrom"] = {"configMapKeyRef": {"nme": "x"}}
    with pytest.raises(kubernetes_validate.ValidationError):  # the check can fail
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_manifest_reads_kfp_install_settings_and_runs_safely(path):
    job = yaml.safe_load(path.read_text())
    pod = job["spec"]["template"]["spec"]
    container = pod["containers"][0]
    env = {e["name"]: e for e in container["env"]}
    assert set(env) == set(PART_ENVS)
    config = {n: e["valueFrom"]["configMapKeyRef"] for n, e in env.items() if "configMapKeyRef" in e.get("valueFrom", {})}
    assert {c["name"] for c in config.values()} == {"pipeline-install-config"}
    assert {n: c["key"] for n, c in config.items()} == {
        "MLMD2KFP_DB_HOST": "dbHost", "MLMD2KFP_DB_PORT": "dbPort", "MLMD2KFP_MLMD_DB": "mlmdDb",
        "MLMD2KFP_KFP_DB": "pipelineDb"}
    secret = {env[n]["valueFrom"]["secretKeyRef"]["name"] for n in ("MLMD2KFP_DB_USER", "MLMD2KFP_DB_PASSWORD")}
    expected_secret = "mysql-secret" if "mysql" in path.name else "postgres-secret-extended"
    assert secret == {expected_secret}
    assert env["MLMD2KFP_DB_TYPE"]["value"] == ("mysql" if "mysql" in path.name else "postgresql")
    # non-root, nothing writable but the emptyDirs, no API token, no retries behind the operator's back
    assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["automountServiceAccountToken"] is False
    assert job["spec"]["backoffLimit"] == 0 and pod["restartPolicy"] == "Never"
    assert container["args"][0] == "plan"  # the default step writes nothing


@pytest.mark.parametrize("path", MANIFESTS, ids=lambda p: p.name)
def test_every_step_the_manifest_offers_is_a_real_command(path):
    text = path.read_text()
    job = yaml.safe_load(text)
    steps = [job["spec"]["template"]["spec"]["containers"][0]["args"]]
    steps += [json.loads(m) for m in re.findall(r"^\s*#\s+(\[\".*\"\])\s*$", text, flags=re.M)]
    assert len(steps) >= 7
    for args in steps:
        result = run_cli(args[0], "--help", env={"COLUMNS": "200"})
        assert result.code == 0, (args, result.stderr)
        for option in (a for a in args[1:] if a.startswith("--")):
            assert option in result.stdout, (args, option)


def test_dockerfile_is_slim_non_root_and_installs_this_package():
    text = (ROOT / "Dockerfile").read_text()
    stages = re.findall(r"^FROM (\S+)", text, flags=re.M)
    assert stages and all(s.endswith("-slim") or s.startswith("python:3.11-slim") for s in stages), stages
    final = text[text.rindex("\nFROM "):]
    user = re.findall(r"^USER (\S+)", final, flags=re.M)
    assert user and user[-1].split(":")[0] not in ("0", "root"), user
    assert re.search(r'^ENTRYPOINT \["mlmd2kfp"\]', final, flags=re.M)
    for source in re.findall(r"^COPY (?!--from)(.+) \S+$", text, flags=re.M):
        for name in source.split():
            assert (ROOT / name).exists(), name
    extras = re.search(r'"\.\[([a-z,]+)\]"', text).group(1).split(",")
    pyproject = (ROOT / "pyproject.toml").read_text()
    for extra in extras:
        assert re.search(rf"^{extra} = \[", pyproject, flags=re.M), extra
    assert "mlmd2kfp = \"mlmd2kfp.__main__:run\"" in pyproject


PARTS = {"MLMD2KFP_DB_TYPE": "mysql", "MLMD2KFP_DB_HOST": "mysql.kubeflow", "MLMD2KFP_DB_PORT": "3306",
         "MLMD2KFP_DB_USER": "root", "MLMD2KFP_DB_PASSWORD": "p@ss:w/rd%#?&x", "MLMD2KFP_MLMD_DB": "metadb",
         "MLMD2KFP_KFP_DB": "mlpipeline"}


def test_url_from_parts_escapes_any_password():
    url = make_url(url_from_parts("MLMD", PARTS))
    assert (url.drivername, url.host, url.port, url.database) == ("mysql", "mysql.kubeflow", 3306, "metadb")
    assert url.password == PARTS["MLMD2KFP_DB_PASSWORD"] and url.username == "root"
    assert make_url(url_from_parts("KFP", PARTS)).database == "mlpipeline"
    pg = make_url(url_from_parts("KFP", {**PARTS, "MLMD2KFP_DB_TYPE": "postgres", "MLMD2KFP_DB_PORT": ""}))
    assert (pg.drivername, pg.port, pg.query) == ("postgresql+psycopg", None, {})


def test_url_from_parts_needs_host_and_name_and_rejects_nonsense():
    assert url_from_parts("MLMD", {k: v for k, v in PARTS.items() if k != "MLMD2KFP_MLMD_DB"}) is None
    assert url_from_parts("KFP", {}) is None
    with pytest.raises(ConfigError, match="MLMD2KFP_DB_TYPE='oracle'"):
        url_from_parts("KFP", {**PARTS, "MLMD2KFP_DB_TYPE": "oracle"})
    with pytest.raises(ConfigError, match="not a port number"):
        url_from_parts("KFP", {**PARTS, "MLMD2KFP_DB_PORT": "33o6"})


def test_missing_url_names_every_way_to_give_it():
    result = run_cli("status", env={"MLMD2KFP_KFP_URL": "", **{k: "" for k in PART_ENVS}})
    assert result.code == 2  # a usage error
    assert "--kfp-url is required" in result.stderr and "MLMD2KFP_DB_HOST" in result.stderr


def test_job_style_settings_reach_a_real_server_with_a_hard_password(databases):
    """The Job's way in: separate values, a password full of URL syntax, no URL anywhere."""
    if databases.backend == "sqlite":
        pytest.skip("SQLite has no server settings")
    kfp = make_url(databases.new("kfp"))
    engine = create_engine(kfp)
    with engine.begin() as conn:
        create_legacy_tables(conn)  # a KFP 2.x database before the upgrade
    engine.dispose()
    user, password = f"job_{uuid.uuid4().hex[:8]}", "Jo@b:p/w%#?&1"
    if databases.backend == "mariadb":
        execute(kfp.render_as_string(hide_password=False),
                *(f"CREATE USER '{user}'@'{h}' IDENTIFIED BY '{password}'" for h in ("127.0.0.1", "localhost")),
                *(f"GRANT ALL ON `{kfp.database}`.* TO '{user}'@'{h}'" for h in ("127.0.0.1", "localhost")))
    else:
        execute(kfp.render_as_string(hide_password=False), f"CREATE ROLE {user} LOGIN PASSWORD '{password}'",
                f'GRANT ALL ON DATABASE "{kfp.database}" TO {user}', f"GRANT ALL ON SCHEMA public TO {user}")
    env = {"MLMD2KFP_KFP_URL": "", "MLMD2KFP_DB_TYPE": databases.backend, "MLMD2KFP_DB_HOST": kfp.host,
           "MLMD2KFP_DB_PORT": str(kfp.port), "MLMD2KFP_DB_USER": user, "MLMD2KFP_DB_PASSWORD": password,
           "MLMD2KFP_KFP_DB": kfp.database}
    result = run_cli("schema", "create", env=env)
    assert result.code == 0, result.stderr
    result = run_cli("schema", "check", env=env)  # read back through the same settings
    assert result.code == 1 and "old tasks table present" in result.stdout, result.stderr
    assert password not in result.stdout + result.stderr

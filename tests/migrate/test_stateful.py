"""A model-based test of whole operator sequences (issue #13): Hypothesis drives `migrate` (full,
`--stage-only`, `--namespace`), kills at fault points, `verify`, the source changing before the cutover,
the new API server writing its own runs, tasks (also under migrated parents) and artifacts after it,
`rollback`, `cleanup` and `status --check`, every command through the real CLI. After every step:

- no row KFP wrote is lost or changed;
- exit codes are only 0/1/2/3/130 with their meaning, and never a traceback;
- after a finished migrate, the tool's rows equal what one clean migrate of the current source writes;
- `verify` passes exactly when the model says the target is in step with the source;
- the gate (`status --check`, and `status`'s gate line after every step) is open exactly when the model
  says it should be;
- rollback returns the database to its pre-migration digest (plus KFP's own rows, kept with their runs).

SQLite runs more examples in every CI run (seeded, bounded); MariaDB and PostgreSQL fewer.
"""

from __future__ import annotations

import hashlib
import shutil
import uuid
from pathlib import Path

import pytest

pytest.importorskip("ml_metadata")

from hypothesis import HealthCheck, Phase, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from hypothesis.stateful import (RuleBasedStateMachine, initialize, invariant, precondition, rule,  # noqa: E402
                                 run_state_machine_as_test)
from sqlalchemy import inspect, text  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from mlmd2kfp.migrate.admin import read_status, rollback  # noqa: E402
from mlmd2kfp.migrate.runner import MigrateOptions, migrate  # noqa: E402
from mlmd2kfp.sample import write_sample  # noqa: E402
from tests.helpers import Db, run_cli  # noqa: E402
from tests.migrate.helpers import _canon  # noqa: E402

EXAMPLES = {"sqlite": 6, "mariadb": 1, "postgresql": 1}
STEPS = {"sqlite": 12, "mariadb": 8, "postgresql": 8}
KILL_POINTS = ("read-page:1", "mid-batch:1", "before-checkpoint:2", "after-batch:1", "global-ledger:1",
               "cutover:1", "after-cutover:1")
EXIT_MEANING = {0: "ok", 1: "differences found", 2: "usage error", 3: "operational error", 130: "stopped"}
TARGET = ("tasks", "artifacts", "artifact_tasks", "tasks_migration_tmp")


def _tool_rows(url: str, frozen: set[str]) -> str:
    """A digest of the rows the tool wrote (version-5 ids), outside the runs KFP wrote into."""
    db = Db(url)
    with db.engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
    body = []
    tasks = "tasks" if "tasks_pre_migration" in names or "tasks_migration_tmp" not in names else "tasks_migration_tmp"
    for table in (tasks, "artifacts", "artifact_tasks"):
        if table not in names:
            continue
        for r in db.sql(f"SELECT * FROM {table}"):
            if str(r["UUID"])[14:15] == "5" and r.get("RunUUID") not in frozen:
                body.append(repr(sorted((k, _canon(v)) for k, v in r.items())) + table.replace("_migration_tmp", ""))
    db.engine.dispose()
    return hashlib.sha256(repr(sorted(body)).encode()).hexdigest()


def _pre_migration_digest(url: str) -> str:
    """Every KFP table but the tool's and `run_details` (which the model renames runs in), with the old
    `tasks` under whichever name it has."""
    db = Db(url)
    with db.engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
    out = []
    for name in sorted(names):
        if name.startswith("mlmd2kfp_") or name == "run_details" or name in TARGET or name == "tasks_pre_migration":
            continue
        out.append((name, sorted(repr(sorted((k, _canon(v)) for k, v in r.items())) for r in db.sql(f'SELECT * FROM "{name}"'))))
    old = "tasks_pre_migration" if "tasks_pre_migration" in names else "tasks"
    columns = {c["name"] for c in inspect(db.engine).get_columns(old)} if old in names else set()
    if "MLMDExecutionID" in columns:  # the old form only
        out.append(("old tasks", sorted(repr(sorted((k, _canon(v)) for k, v in r.items()))
                                        for r in db.sql(f'SELECT * FROM "{old}"'))))
    db.engine.dispose()
    return hashlib.sha256(repr(out).encode()).hexdigest()


class World:
    """The databases of one example: MLMD + KFP under test, and a KFP copy migrated clean for comparison."""

    def __init__(self, databases, pristine: dict[str, Path] | None) -> None:
        self.backend = databases.backend
        if self.backend == "sqlite" and pristine:
            folder = Path(databases.tmp_path) / f"w-{uuid.uuid4().hex[:6]}"
            folder.mkdir()
            for path in pristine.values():
                shutil.copy(path, folder / path.name)
            self.m, self.k, self.clean = (f"sqlite:///{folder / pristine[n].name}" for n in ("m", "k", "clean"))
        else:
            self.m, self.k, self.clean = databases.new("m"), databases.new("k"), databases.new("c")
            cm = databases.new("cm")
            write_sample(self.m, self.k, seed=8)
            write_sample(cm, self.clean, seed=8)  # the same KFP rows (MLMD is read from `m`)


@pytest.fixture(scope="module")
def pristine(module_databases):
    if module_databases.backend != "sqlite":
        return None
    m, k = module_databases.new("m"), module_databases.new("k")
    write_sample(m, k, seed=8)
    paths = {"m": Path(make_url(m).database), "k": Path(make_url(k).database)}
    clean = paths["k"].with_name("clean-" + paths["k"].name)
    shutil.copy(paths["k"], clean)
    paths["clean"] = clean
    return paths


def test_operator_sequences(module_databases, pristine):
    backend = module_databases.backend

    class Operator(RuleBasedStateMachine):
        def __init__(self) -> None:
            super().__init__()
            self.w = World(module_databases, pristine)
            self.db = Db(self.w.k)
            self.before = _pre_migration_digest(self.w.k)
            self.kfp_rows: dict[tuple[str, str], dict] = {}  # (table, UUID) → the row as KFP wrote it
            self.frozen: set[str] = set()  # runs KFP wrote into: the tool never rewrites them
            self.renamed: set[str] = set()
            self.in_sync: bool | None = None  # None: the model does not know (after a kill or a filter)
            self.done = False  # cut over
            self.migrated = False  # any migrate ran since the last rollback
            self.verified = False
            self.cleaned = False

        @initialize(start=st.sampled_from(["one namespace pre-run, killed", "in use by the new KFP", "fresh",
                                           "staged", "cut over", "cut over and verified"]))
        def start_from(self, start: str) -> None:
            """Begin where operators spend their time: before anything, after the pre-run, after the cutover,
            or with the new API server already writing (a retry under a migrated run, a run of its own)."""
            if start == "one namespace pre-run, killed":
                self.run_migrate("stage one namespace", "after-batch:2")
                return
            if start != "fresh":
                self.run_migrate("stage" if start == "staged" else "full", None)
            if start in ("cut over and verified", "in use by the new KFP"):
                self.run_verify()
            if start == "in use by the new KFP":
                self.kfp_writes_its_own_rows("task under a migrated root")
                self.kfp_writes_its_own_rows("run")

        # --- helpers -----------------------------------------------------------------------------------
        def cli(self, *args: str, env: dict[str, str] | None = None, killed: bool = False):
            result = run_cli(*args, env=env)
            assert "Traceback" not in result.stderr, result.stderr[-2000:]
            if killed and result.code == -9:
                return result
            assert result.code in EXIT_MEANING, (args, result.code, result.stderr[-1000:])
            if result.code == 3:
                assert result.stderr.startswith("Error: ") and result.stderr.count("Error: ") == 1, result.stderr
            return result

        def new_form_tasks(self) -> bool:
            names = set(inspect(self.db.engine).get_table_names())
            if "tasks" not in names:
                return False
            return "MLMDExecutionID" not in {c["name"] for c in inspect(self.db.engine).get_columns("tasks")}

        def tool_tasks_of(self, run: str) -> int:
            names = set(inspect(self.db.engine).get_table_names())
            total = 0
            for table in ("tasks", "tasks_migration_tmp"):
                if table in names and (table != "tasks" or self.new_form_tasks()):
                    total += sum(1 for r in self.db.sql(f'SELECT "UUID" FROM {table} WHERE "RunUUID" = :r', r=run)
                                 if r["UUID"][14] == "5")
            return total

        def phase(self) -> str | None:
            try:
                return self.db.one("SELECT phase FROM mlmd2kfp_state")["phase"]
            except Exception:
                return None

        # --- the operator --------------------------------------------------------------------------------
        @precondition(lambda self: not self.cleaned)
        @rule(kind=st.sampled_from(["full", "stage", "filtered"]), kill=st.sampled_from([None] * 5 + list(KILL_POINTS)))
        def run_migrate(self, kind: str, kill: str | None) -> None:
            args = ["migrate", "--mlmd-url", self.w.m, "--kfp-url", self.w.k, "--yes", "--batch-rows", "30"]
            args += {"full": [], "stage": ["--stage-only"], "filtered": ["--namespace", "team-b"],
                     "stage one namespace": ["--stage-only", "--namespace", "team-b", "--batch-rows", "1"]}[kind]
            new_form_before = self.new_form_tasks()
            result = self.cli(*args, env={"MLMD2KFP_FAULT_AT": kill} if kill else None, killed=bool(kill))
            self.migrated, self.verified = True, False
            if result.code == -9:
                self.in_sync = None
                self.done = self.phase() == "done"
                return
            assert result.code == 0, result.stderr[-1500:]
            if kind in ("filtered", "stage one namespace"):
                self.in_sync = None if not self.in_sync else True
                return
            self.in_sync = True
            # --stage-only cuts over too where `tasks` is already the new table (nothing left to hold back)
            self.done = self.done or kind == "full" or new_form_before
            assert (self.phase() == "done") == self.done, (kind, self.phase())
            self.compare_with_a_clean_migrate()

        def compare_with_a_clean_migrate(self) -> None:
            """The tool's rows equal those of one clean migrate of the current source and run names."""
            clean = Db(self.w.clean)
            if _has_state(clean):
                rollback(self.w.clean)
            for r in self.db.sql('SELECT "UUID", "DisplayName" FROM run_details'):
                clean.sql('UPDATE run_details SET "DisplayName" = :d WHERE "UUID" = :u', d=r["DisplayName"], u=r["UUID"])
            clean.engine.dispose()
            migrate(self.w.m, self.w.clean, MigrateOptions(stage_only=not self.done))
            assert _tool_rows(self.w.k, self.frozen) == _tool_rows(self.w.clean, self.frozen)

        @precondition(lambda self: not self.cleaned and self.migrated)
        @rule()
        def run_verify(self) -> None:
            result = self.cli("verify", "--mlmd-url", self.w.m, "--kfp-url", self.w.k)
            assert result.code in (0, 1, 3)
            if self.in_sync is not None:
                assert (result.code == 0) == self.in_sync, result.stdout[-3000:]
            self.verified = result.code == 0 and self.phase() == "done"
            status = self.cli("status", "--kfp-url", self.w.k, "--check")  # the gate as a Job's init container sees it
            assert status.code == (0 if self.verified else 1), (self.verified, status.stdout[-800:])

        @invariant()
        def the_gate_is_open_exactly_when_the_model_says(self) -> None:
            if not self.cleaned:
                passed, why = read_status(self.w.k).gate
                assert passed == self.verified, why

        @precondition(lambda self: not self.cleaned and self.migrated)
        @rule()
        def run_rollback(self) -> None:
            result = self.cli("rollback", "--kfp-url", self.w.k, "--yes")
            assert result.code == 0, result.stderr[-1500:]
            self.migrated = self.verified = self.done = False
            self.in_sync = None
            if not self.kfp_rows:
                assert _pre_migration_digest(self.w.k) == self.before

        @precondition(lambda self: not self.cleaned and self.done)
        @rule()
        def run_cleanup(self) -> None:
            before = _tool_rows(self.w.k, set())
            result = self.cli("cleanup", "--kfp-url", self.w.k, "--yes")
            if self.verified:
                assert result.code == 0, result.stderr
                self.cleaned = True
            else:
                assert result.code == 3 and "cleanup refused" in result.stderr
                assert _tool_rows(self.w.k, set()) == before

        @precondition(lambda self: self.cleaned)
        @rule()
        def after_cleanup(self) -> None:
            """Nothing of the tool is left but the migrated rows; the gate has nothing to open."""
            names = set(inspect(self.db.engine).get_table_names())
            assert not {n for n in names if n.startswith("mlmd2kfp_")} and "tasks_pre_migration" not in names
            assert {"tasks", "artifacts", "artifact_tasks"} <= names

        # --- the world around it ----------------------------------------------------------------------------
        @precondition(lambda self: not self.cleaned and not self.done)
        @rule(pick=st.integers(0, 8), name=st.sampled_from(["nightly", "rerun", "ünïcode 🚀"]))
        def rename_a_run_while_the_old_kfp_serves(self, pick: int, name: str) -> None:
            runs = [r["UUID"] for r in self.db.sql('SELECT "UUID" FROM run_details ORDER BY "UUID"')
                    if r["UUID"] not in self.frozen]
            if runs:
                run = runs[pick % len(runs)]
                self.db.sql('UPDATE run_details SET "DisplayName" = :d WHERE "UUID" = :u', d=f"{name} {pick}", u=run)
                self.renamed.add(run)
                if self.in_sync and self.tool_tasks_of(run):  # its ROOT's DisplayName is now stale
                    self.in_sync = False

        @precondition(lambda self: not self.cleaned and self.done)
        @rule(kind=st.sampled_from(["run", "task under a migrated root", "artifact"]))
        def kfp_writes_its_own_rows(self, kind: str) -> None:
            names = set(inspect(self.db.engine).get_table_names())
            if "tasks_pre_migration" not in names:
                return  # the new API server only runs once `tasks` is the new table
            roots = [r for r in self.db.sql('SELECT * FROM tasks WHERE "ParentTaskUUID" IS NULL ORDER BY "UUID"')
                     if r["UUID"][14] == "5"]
            if not roots:
                return
            root = roots[0]
            new = str(uuid.uuid4())
            if kind == "artifact":
                row = {"UUID": new, "Namespace": root["Namespace"], "Type": 1, "URI": f"s3://kfp/{new}", "URIHash": "",
                       "Name": "written-by-kfp", "Description": "", "CreatedAtInSec": 1, "LastUpdateInSec": 1,
                       "Metadata": None, "NumberValue": None, "IdentityKey": None}
                self.db.insert("artifacts", row)
                self.kfp_rows[("artifacts", new)] = row
                return
            run = root["RunUUID"]
            parent: str | None = root["UUID"]
            if kind == "run":
                run = str(uuid.uuid4())
                template = self.db.one('SELECT * FROM run_details WHERE "UUID" = :u', u=root["RunUUID"])
                self.db.insert("run_details", {**template, "UUID": run, "DisplayName": "written by KFP"})
                parent = None
            row = {**root, "UUID": new, "RunUUID": run, "ParentTaskUUID": parent,
                   "Name": "ROOT" if parent is None else "kfp-task", "ScopePath": "root" if parent is None else "root.kfp-task",
                   "Type": 1 if parent is None else 2, "LogicalKey": uuid.uuid4().hex * 2}
            self.db.insert("tasks", row)
            self.kfp_rows[("tasks", new)] = row
            if parent is not None:
                self.frozen.add(run)

        @invariant()
        def nothing_kfp_wrote_was_lost_or_changed(self) -> None:
            for (table, row_id), row in self.kfp_rows.items():
                found = self.db.sql(f'SELECT * FROM {table} WHERE "UUID" = :u', u=row_id)
                assert len(found) == 1, f"KFP's {table} row {row_id} is gone"
                assert {k: _canon(v) for k, v in found[0].items()} == {k: _canon(v) for k, v in row.items()}

        def teardown(self) -> None:
            """Every example ends as an upgrade may: a rollback, a pre-run of one namespace killed mid-way, a
            plain migrate (equal to a clean one: the checkpoint of the other selection is not resumed), the new
            API server retrying a migrated run, and a last rollback (which keeps everything KFP wrote)."""
            try:
                if not self.cleaned:
                    if self.migrated:
                        self.run_rollback()
                    self.run_migrate("stage one namespace", "after-batch:2")
                    self.run_migrate("full", None)
                    self.kfp_writes_its_own_rows("task under a migrated root")
                    self.run_rollback()
                    self.nothing_kfp_wrote_was_lost_or_changed()
            finally:
                self.db.engine.dispose()

    run_state_machine_as_test(Operator, settings=settings(
        max_examples=EXAMPLES[backend], stateful_step_count=STEPS[backend], deadline=None, derandomize=True,
        database=None, phases=[Phase.generate], suppress_health_check=list(HealthCheck)))


def _has_state(db: Db) -> bool:
    with db.engine.connect() as conn:
        return "mlmd2kfp_state" in inspect(conn).get_table_names() and bool(
            conn.execute(text("SELECT COUNT(*) FROM mlmd2kfp_state")).scalar())


"""A model-based test of whole operator sequences (issue #13): Hypothesis drives `migrate` (full,
`--stage-only`, `--namespace`, and a second MLMD database into the same KFP database with
`--source-name`), kills at fault points, `verify`, the source changing before the cutover,
the new API server writing its own runs, tasks (also under migrated parents) and artifacts after it, and
retrying migrated runs in place (issue #27), `tasks_pre_migration` damaged and restored from a backup, a mode
forced against the data, `rollback`, `cleanup` and restarts behind the gate after it (`status --check`), every
command through the real CLI. After every step:

- no row KFP wrote or changed (a retry) is lost or changed;
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
from tests.samples import write_sample  # noqa: E402
from tests.helpers import Db, run_cli  # noqa: E402
from tests.migrate.helpers import _canon, add_second_source, kfp_retry  # noqa: E402

EXAMPLES = {"sqlite": 6, "mariadb": 1, "postgresql": 1}
STEPS = {"sqlite": 12, "mariadb": 8, "postgresql": 8}
KILL_POINTS = ("read-page:1", "mid-batch:1", "before-checkpoint:2", "after-batch:1", "global-ledger:1",
               "cutover:1", "after-cutover:1")
EXIT_MEANING = {0: "ok", 1: "differences found", 2: "usage error", 3: "operational error", 130: "stopped"}
TARGET = ("tasks", "artifacts", "artifact_tasks", "tasks_migration_tmp")
SOURCES = ("", "second")
"""The default source (no --source-name) and a second MLMD database migrated into the same KFP database."""


def _tool_rows(url: str, frozen: set[str], runs: set[str] | None = None) -> str:
    """A digest of the rows the tool wrote (version-5 ids), outside the runs KFP wrote into (and, given
    `runs`, of those runs only; artifacts: those their links use)."""
    db = Db(url)
    with db.engine.connect() as conn:
        names = set(inspect(conn).get_table_names())
    body = []
    tasks = "tasks" if "tasks_pre_migration" in names or "tasks_migration_tmp" not in names else "tasks_migration_tmp"
    used = None
    if runs is not None and "artifact_tasks" in names:
        used = {r["ArtifactID"] for r in db.sql('SELECT "ArtifactID", "RunUUID" FROM artifact_tasks')
                if r["RunUUID"] in runs and r["RunUUID"] not in frozen}
    for table in (tasks, "artifacts", "artifact_tasks"):
        if table not in names:
            continue
        for r in db.sql(f"SELECT * FROM {table}"):
            if str(r["UUID"])[14:15] != "5" or r.get("RunUUID") in frozen:
                continue
            if runs is not None and (r["UUID"] not in (used or set()) if table == "artifacts" else r["RunUUID"] not in runs):
                continue
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
    """The databases of one example: two MLMD stores + the KFP database under test (holding the runs of
    both), and a KFP copy migrated clean for comparison."""

    def __init__(self, databases, pristine: dict[str, Path] | None) -> None:
        self.backend = databases.backend
        if self.backend == "sqlite" and pristine:
            folder = Path(databases.tmp_path) / f"w-{uuid.uuid4().hex[:6]}"
            folder.mkdir()
            for name, path in pristine.items():
                if name != "second_runs":
                    shutil.copy(path, folder / path.name)
            self.m, self.m2, self.k, self.clean = (f"sqlite:///{folder / pristine[n].name}"
                                                   for n in ("m", "m2", "k", "clean"))
            self.second_runs = set(pristine["second_runs"])
        else:
            self.m, self.k, self.clean = databases.new("m"), databases.new("k"), databases.new("c")
            cm = databases.new("cm")
            write_sample(self.m, self.k, seed=8)
            self.m2, second = add_second_source(databases, self.k)
            write_sample(cm, self.clean, seed=8)  # the same KFP rows (MLMD is read from `m` and `m2`)
            add_second_source(databases, self.clean)
            self.second_runs = set(second)

    def mlmd(self, source: str) -> str:
        return self.m2 if source else self.m


@pytest.fixture(scope="module")
def pristine(module_databases):
    if module_databases.backend != "sqlite":
        return None
    m, k = module_databases.new("m"), module_databases.new("k")
    write_sample(m, k, seed=8)
    m2, second = add_second_source(module_databases, k)
    paths = {"m": Path(make_url(m).database), "k": Path(make_url(k).database), "m2": Path(make_url(m2).database),
             "second_runs": second}
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
            # per source: the model of its migration
            self.in_sync: dict[str, bool | None] = dict.fromkeys(SOURCES)  # None: unknown (a kill, a filter)
            self.done = dict.fromkeys(SOURCES, False)  # its migration reached the cutover
            self.migrated = dict.fromkeys(SOURCES, False)  # a state row that is not rolled back
            self.verified = dict.fromkeys(SOURCES, False)
            self.held = dict.fromkeys(SOURCES, False)  # rolled back, but keeping runs KFP wrote into
            self.cleaned = False
            self.copy_aside: dict | None = None  # a row of `tasks_pre_migration` deleted by the world, to restore
            self.forced = dict.fromkeys(SOURCES, False)  # migrated with --single-user --force-mode (the data is multi-user)
            self.chained = dict.fromkeys(SOURCES, False)  # a passing full verify's records stand: verify is then
            # incremental

        @initialize(start=st.sampled_from(["one namespace pre-run, killed", "in use by the new KFP", "fresh",
                                           "staged", "cut over", "cut over and verified",
                                           "both sources cut over and verified"]))
        def start_from(self, start: str) -> None:
            """Begin where operators spend their time: before anything, after the pre-run, after the cutover,
            or with the new API server already writing (a retry under a migrated run, a run of its own)."""
            if start == "one namespace pre-run, killed":
                self.run_migrate("stage one namespace", "after-batch:2", "")
                return
            if start != "fresh":
                self.run_migrate("stage" if start == "staged" else "full", None, "")
            if start == "both sources cut over and verified":
                self.run_migrate("full", None, "second")
                self.run_verify("second")
            if start in ("cut over and verified", "in use by the new KFP", "both sources cut over and verified"):
                self.run_verify("")
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

        def runs_of(self, source: str) -> set[str]:
            everything = {r["UUID"] for r in self.db.sql('SELECT "UUID" FROM run_details')}
            return self.w.second_runs if source else everything - self.w.second_runs

        def tool_tasks_of(self, run: str) -> int:
            names = set(inspect(self.db.engine).get_table_names())
            total = 0
            for table in ("tasks", "tasks_migration_tmp"):
                if table in names and (table != "tasks" or self.new_form_tasks()):
                    total += sum(1 for r in self.db.sql(f'SELECT "UUID" FROM {table} WHERE "RunUUID" = :r', r=run)
                                 if r["UUID"][14] in "85")
            return total

        def phase(self, source: str) -> str | None:
            try:
                found = self.db.sql("SELECT phase FROM mlmd2kfp_state WHERE source_name = :s", s=source)
            except Exception:
                return None
            return found[0]["phase"] if found else None

        def gate_should_open(self) -> bool:
            if any(self.held[s] and not self.migrated[s] for s in SOURCES):
                return False  # its kept rows are unverified: rollback must run again once KFP's rows are gone
            live = [s for s in SOURCES if self.migrated[s]]
            return bool(live) and all(self.verified[s] for s in live)

        # --- the operator --------------------------------------------------------------------------------
        @precondition(lambda self: not self.cleaned)
        @rule(source=st.sampled_from(["", "second"]))
        def migrate_in_a_forced_wrong_mode(self, source: str) -> None:
            """--single-user on namespaced runs: refused naming the runs unless --force-mode (issue #27 item 5); forced,
            it migrates as told, verify passes on what was asked, and every later pass must say it again."""
            if self.migrated[source] or self.held[source]:
                return  # a mode is recorded: another one is refused (tested in test_after_cutover)
            named = ["--source-name", source] if source else []
            before = _tool_rows(self.w.k, set())
            refused = self.cli("migrate", "--mlmd-url", self.w.mlmd(source), "--kfp-url", self.w.k, "--yes",
                               "--single-user", *named)
            assert refused.code == 3 and "--force-mode" in refused.stderr, refused.stderr
            assert _tool_rows(self.w.k, set()) == before
            self.forced[source] = True
            self.run_migrate("full", None, source)

        @precondition(lambda self: not self.cleaned)
        @rule(kind=st.sampled_from(["full", "stage", "filtered"]), kill=st.sampled_from([None] * 5 + list(KILL_POINTS)),
              source=st.sampled_from(["", "", "second"]))
        def run_migrate(self, kind: str, kill: str | None, source: str) -> None:
            args = ["migrate", "--mlmd-url", self.w.mlmd(source), "--kfp-url", self.w.k, "--yes", "--batch-rows", "30"]
            args += ["--single-user", "--force-mode"] if self.forced[source] else []  # the recorded mode, said again
            args += {"full": [], "stage": ["--stage-only"], "filtered": ["--namespace", "team-b"],
                     "stage one namespace": ["--stage-only", "--namespace", "team-b", "--batch-rows", "1"]}[kind]
            args += ["--source-name", source] if source else []
            new_form_before = self.new_form_tasks()
            result = self.cli(*args, env={"MLMD2KFP_FAULT_AT": kill} if kill else None, killed=bool(kill))
            self.migrated[source], self.verified[source] = True, False
            if result.code == -9:
                self.in_sync[source] = None
                self.done[source] = self.phase(source) == "done"
                return
            assert result.code == 0, result.stderr[-1500:]
            if kind in ("filtered", "stage one namespace"):
                self.in_sync[source] = None if not self.in_sync[source] else True
                return
            self.in_sync[source] = True
            # --stage-only cuts over too where `tasks` is already the new table (nothing left to hold back)
            self.done[source] = self.done[source] or kind == "full" or new_form_before
            assert (self.phase(source) == "done") == self.done[source], (kind, source, self.phase(source))
            self.compare_with_a_clean_migrate(source)

        def compare_with_a_clean_migrate(self, source: str) -> None:
            """The source's rows equal those of one clean migrate of it alone, with the current run names."""
            clean = Db(self.w.clean)
            if _has_state(clean):
                for s in clean.sql("SELECT source_name FROM mlmd2kfp_state WHERE phase <> 'rolled_back'"):
                    rollback(self.w.clean, s["source_name"])
            for r in self.db.sql('SELECT "UUID", "DisplayName" FROM run_details'):
                clean.sql('UPDATE run_details SET "DisplayName" = :d WHERE "UUID" = :u', d=r["DisplayName"], u=r["UUID"])
            clean.engine.dispose()
            migrate(self.w.mlmd(source), self.w.clean, MigrateOptions(
                stage_only=not self.done[source], source_name=source,
                **({"multi_user": False, "force_mode": True} if self.forced[source] else {})))
            runs = self.runs_of(source)
            assert _tool_rows(self.w.k, self.frozen, runs) == _tool_rows(self.w.clean, self.frozen, runs)

        @precondition(lambda self: not self.cleaned and any(self.migrated.values()))
        @rule(source=st.sampled_from(SOURCES), full=st.booleans())
        def run_verify(self, source: str, full: bool = False) -> None:
            """Incremental by default once a full verify passed (issue #30), `--full` the whole proof: either way
            the result and the gate are the model's."""
            if not self.migrated[source]:
                return
            result = self.cli("verify", "--mlmd-url", self.w.mlmd(source), "--kfp-url", self.w.k,
                              "--source-name", source, *(["--full"] if full else []))
            assert result.code in (0, 1, 3)
            kind = "incremental" if ", incremental;" in result.stdout else "full"
            if result.code in (0, 1):
                assert kind == ("incremental" if self.chained[source] and not full else "full"), (
                    full, self.chained, result.stdout[:400])
            if result.code in (0, 1) and kind == "full":
                self.chained[source] = result.code == 0
            copy_checked = self.copy_aside is not None and self.phase(source) == "done"
            if copy_checked:  # the rollback copy is damaged: verify says so whatever else holds
                assert result.code == 1 and "rollback copy" in result.stdout, result.stdout[-3000:]
            elif self.in_sync[source] is not None:
                assert (result.code == 0) == self.in_sync[source], result.stdout[-3000:]
            self.verified[source] = result.code == 0 and self.phase(source) == "done"
            status = self.cli("status", "--kfp-url", self.w.k, "--check")  # the gate as a Job's init container sees it
            assert status.code == (0 if self.gate_should_open() else 1), (self.verified, status.stdout[-800:])
            if self.gate_should_open():  # MLMD is as verify compared it: the MLMD check agrees
                mlmd = self.cli("status", "--kfp-url", self.w.k, "--check", "--mlmd-url", self.w.mlmd(source),
                                "--source-name", source)
                assert mlmd.code == 0 and "MLMD unchanged" in mlmd.stdout, mlmd.stdout[-800:]

        @invariant()
        def the_gate_is_open_exactly_when_the_model_says(self) -> None:
            if not self.cleaned:
                passed, why = read_status(self.w.k).gate
                assert passed == self.gate_should_open(), why

        @precondition(lambda self: not self.cleaned and any(self.migrated.values()))
        @rule(source=st.sampled_from(SOURCES))
        def run_rollback(self, source: str) -> None:
            if not self.migrated[source]:
                return
            others = [s for s in SOURCES if s != source and self.migrated[s]]
            named = ["--source-name", source] if others or source else []  # the only one needs no name
            theirs = {s: _tool_rows(self.w.k, set(), self.runs_of(s)) for s in others}
            if self.copy_aside is not None:  # refused with one line, nothing changed; then the backup is restored
                before = (_tool_rows(self.w.k, set()), _pre_migration_digest(self.w.k))
                refused = self.cli("rollback", "--kfp-url", self.w.k, "--yes", *named)
                assert refused.code == 3 and "rollback refused: `tasks_pre_migration`" in refused.stderr, refused.stderr
                assert (_tool_rows(self.w.k, set()), _pre_migration_digest(self.w.k)) == before
                self.restore_the_rollback_copy()
            result = self.cli("rollback", "--kfp-url", self.w.k, "--yes", *named)
            assert result.code == 0, result.stderr[-1500:]
            self.migrated[source] = self.verified[source] = self.done[source] = False
            self.chained[source] = False  # rollback forgets what verify proved of the rows it removed
            self.in_sync[source] = None
            self.held[source] = bool(self.frozen & self.runs_of(source))
            self.forced[source] = self.forced[source] and self.held[source]  # a whole rollback keeps no mode
            if others:  # the other source's rows and the tables stay as they were
                assert "still in them" in result.stderr
                assert {s: _tool_rows(self.w.k, set(), self.runs_of(s)) for s in others} == theirs
            elif not self.kfp_rows:
                assert _pre_migration_digest(self.w.k) == self.before

        @precondition(lambda self: not self.cleaned and any(self.done.values()))
        @rule()
        def run_cleanup(self) -> None:
            before = _tool_rows(self.w.k, set())
            result = self.cli("cleanup", "--kfp-url", self.w.k, "--yes")
            if self.gate_should_open():
                assert result.code == 0, result.stderr
                self.cleaned = True
                self.copy_aside = None  # dropped with the table: nothing to restore any more
            else:
                assert result.code == 3 and "cleanup refused" in result.stderr
                assert _tool_rows(self.w.k, set()) == before

        @precondition(lambda self: self.cleaned)
        @rule()
        def after_cleanup(self) -> None:
            """Nothing of the tool is left but the migrated rows and its state rows, on which the gate stays open
            at every restart of the API server (issue #27 item 1)."""
            names = set(inspect(self.db.engine).get_table_names())
            assert {n for n in names if n.startswith("mlmd2kfp_")} == {"mlmd2kfp_state"}
            assert "tasks_pre_migration" not in names and {"tasks", "artifacts", "artifact_tasks"} <= names
            gate = self.cli("status", "--kfp-url", self.w.k, "--check")
            assert gate.code == 0 and "cleaned up" in gate.stdout, gate.stdout + gate.stderr

        # --- the world around it ----------------------------------------------------------------------------
        @precondition(lambda self: not self.cleaned and not self.new_form_tasks())
        @rule(pick=st.integers(0, 19), name=st.sampled_from(["nightly", "rerun", "ünïcode 🚀"]))
        def rename_a_run_while_the_old_kfp_serves(self, pick: int, name: str) -> None:
            runs = [r["UUID"] for r in self.db.sql('SELECT "UUID" FROM run_details ORDER BY "UUID"')
                    if r["UUID"] not in self.frozen]
            if runs:
                run = runs[pick % len(runs)]
                self.db.sql('UPDATE run_details SET "DisplayName" = :d WHERE "UUID" = :u', d=f"{name} {pick}", u=run)
                self.renamed.add(run)
                source = "second" if run in self.w.second_runs else ""
                if self.in_sync[source] and self.tool_tasks_of(run):  # its ROOT's DisplayName is now stale
                    self.in_sync[source] = False

        @precondition(lambda self: not self.cleaned and any(self.done.values()))
        @rule(kind=st.sampled_from(["run", "task under a migrated root", "artifact"]))
        def kfp_writes_its_own_rows(self, kind: str) -> None:
            names = set(inspect(self.db.engine).get_table_names())
            if "tasks_pre_migration" not in names:
                return  # the new API server only runs once `tasks` is the new table
            roots = [r for r in self.db.sql('SELECT * FROM tasks WHERE "ParentTaskUUID" IS NULL ORDER BY "UUID"')
                     if r["UUID"][14] in "85"]
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

        @precondition(lambda self: not self.cleaned and self.copy_aside is None)
        @rule(pick=st.integers(0, 50))
        def damage_the_rollback_copy(self, pick: int) -> None:
            """A row of the old `tasks` the cutover moved aside goes missing (issue #27 item 3)."""
            if "tasks_pre_migration" not in set(inspect(self.db.engine).get_table_names()):
                return
            old = self.db.sql('SELECT * FROM tasks_pre_migration ORDER BY "UUID"')
            if not old or not self.db.sql("SELECT old_tasks_digest FROM mlmd2kfp_state WHERE old_tasks_digest IS NOT NULL"):
                return
            self.copy_aside = old[pick % len(old)]
            self.db.sql('DELETE FROM tasks_pre_migration WHERE "UUID" = :u', u=self.copy_aside["UUID"])

        @precondition(lambda self: self.copy_aside is not None)
        @rule()
        def restore_the_rollback_copy(self) -> None:
            """The operator restores the row from the backup, as rollback's refusal says."""
            if "tasks_pre_migration" in set(inspect(self.db.engine).get_table_names()):
                self.db.insert("tasks_pre_migration", self.copy_aside)
            self.copy_aside = None

        @precondition(lambda self: not self.cleaned and any(self.done.values()))
        @rule(pick=st.integers(0, 9), new_driver=st.booleans())
        def kfp_retries_a_migrated_run(self, pick: int, new_driver: bool) -> None:
            """A user retries a failed migrated run in the new KFP: its tasks are reset in place, their links
            dropped, the run set running (issue #27 item 2). From then on the run is KFP's: no command of the
            tool may change or delete what KFP made of it."""
            if "tasks_pre_migration" not in set(inspect(self.db.engine).get_table_names()):
                return  # the new API server only runs once `tasks` is the new table
            failed = sorted({r["RunUUID"] for r in self.db.sql(
                'SELECT t."RunUUID" FROM tasks t JOIN run_details d ON d."UUID" = t."RunUUID" '
                'WHERE t."State" = 4 AND d."State" = \'FAILED\'') if r["RunUUID"] not in self.frozen})
            failed = [r for r in failed if self.tool_tasks_of(r)]
            if not failed:
                return
            run = failed[pick % len(failed)]
            kfp_retry(self.w.k, run, new_driver=new_driver)
            for table in ("tasks", "artifact_tasks"):
                for row in self.db.sql(f'SELECT * FROM {table} WHERE "RunUUID" = :r', r=run):
                    self.kfp_rows[(table, row["UUID"])] = row
            self.frozen.add(run)

        @invariant()
        def nothing_kfp_wrote_was_lost_or_changed(self) -> None:
            for (table, row_id), row in self.kfp_rows.items():
                found = self.db.sql(f'SELECT * FROM {table} WHERE "UUID" = :u', u=row_id)
                assert len(found) == 1, f"KFP's {table} row {row_id} is gone"
                assert {k: _canon(v) for k, v in found[0].items()} == {k: _canon(v) for k, v in row.items()}

        def teardown(self) -> None:
            """Every example ends as an upgrade may: a rollback of each source, a pre-run of one namespace killed
            mid-way, a plain migrate (equal to a clean one: the checkpoint of the other selection is not
            resumed), the second source after the cutover, the new API server retrying a migrated run, and a
            rollback of each source (which keeps everything KFP wrote)."""
            try:
                if self.copy_aside is not None:
                    self.restore_the_rollback_copy()
                if not self.cleaned:
                    for source in SOURCES:
                        self.run_rollback(source)
                    self.run_migrate("stage one namespace", "after-batch:2", "")
                    self.run_migrate("full", None, "")
                    self.run_migrate("stage", None, "second")  # after the cutover: writes into `tasks`
                    self.kfp_writes_its_own_rows("task under a migrated root")
                    self.run_rollback("second")
                    self.run_rollback("")
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


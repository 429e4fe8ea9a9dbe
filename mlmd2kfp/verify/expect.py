"""What the target must hold for one run, re-derived from `../shared/spec/mapping.md` (issues #5, #12).

Deliberately independent of `mappers/` and written another way, so that one mistake is unlikely to be
made twice: executions are placed level by level (every execution of one depth, then the next) instead
of the migrator's recursive tree walk; DAG states are settled over the run's tasks sorted by depth;
propagated outputs are *pulled* by each DAG from its children's outputs (the migrator pushes each
producer's outputs up its ancestors). The result is every column of every row the tool must have
written for the run, and every ledger entry (entity, MLMD id, reason) it must have recorded.
"""

from __future__ import annotations

import hashlib
import json
import math
import struct
import time
import uuid
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from .source import KFP_TYPES, SourceArtifact, SourceEvent, SourceExecution, SourceRun

# mapping.md §2: the project's fixed namespace of every row id (the same constant the migrator uses).
ID_NAMESPACE = uuid.UUID("6c2f3a0e-5b7d-5e4a-9a51-6d6c6d64326b")
ARTIFACT_TYPE = {"system.Artifact": 1, "system.Model": 2, "system.Dataset": 3, "system.HTML": 4,
                 "system.Markdown": 5, "system.Metrics": 6, "system.ClassificationMetrics": 7,
                 "system.SlicedClassificationMetrics": 8}
DAG_EXEC, CONTAINER_EXEC = "system.DAGExecution", "system.ContainerExecution"
IMPORTERS = {"system.ImporterExecution", "system.ImporterWorkspaceExecution"}
# TaskType, TaskState and IOType numbers (kfp-native-schema.md §2)
ROOT, RUNTIME, BRANCH, CONDITION, LOOP, IMPORTER, DAG = 1, 2, 3, 4, 5, 7, 8
DAG_LIKE = {ROOT, BRANCH, CONDITION, LOOP, DAG}
RUNNING, SUCCEEDED, SKIPPED, FAILED, CACHED = 1, 2, 3, 4, 5
STATE_NAME = {RUNNING: "RUNNING", SUCCEEDED: "SUCCEEDED", SKIPPED: "SKIPPED", FAILED: "FAILED", CACHED: "CACHED"}
IO = {"COMPONENT_DEFAULT_INPUT": 1, "TASK_OUTPUT_INPUT": 2, "COMPONENT_INPUT": 3, "RUNTIME_VALUE_INPUT": 4,
      "COLLECTED_INPUTS": 5, "ITERATOR_INPUT": 6, "ITERATOR_OUTPUT": 8, "OUTPUT": 9, "ONE_OF_OUTPUT": 10,
      "TASK_FINAL_STATUS_OUTPUT": 11}
IO_NAME = {v: k for k, v in IO.items()}
MLMD_LEAF_STATE = {3: SUCCEEDED, 5: CACHED, 4: FAILED, 6: SKIPPED}  # COMPLETE, CACHED, FAILED, CANCELED
MLMD_CANCELED = 6
EVENT_INPUT, EVENT_OUTPUT = 3, 4
# `run_details.State` as `RuntimeState.ToV2()` reads it (v1 names included)
RUN_STATE_V2 = {"PENDING": "PENDING", "RUNNING": "RUNNING", "SUCCEEDED": "SUCCEEDED", "SKIPPED": "SKIPPED",
                "FAILED": "FAILED", "ERROR": "FAILED", "TERMINATING": "CANCELING", "CANCELING": "CANCELING",
                "CANCELED": "CANCELED", "CANCELLED": "CANCELED", "PAUSED": "PAUSED", "OMITTED": "SKIPPED"}
FINISHED = {"SUCCEEDED", "SKIPPED", "FAILED", "CANCELED"}
FIXED_LABEL = {LOOP: "Loop", BRANCH: "Condition Branch", CONDITION: "Condition"}
FAILED_TEXT = "failed (migrated from ML Metadata; no error text recorded)"
NAME_MAX, NAMESPACE_MAX, KEY_MAX, DISPLAY_MAX, URI_MAX, FINGERPRINT_MAX = 128, 63, 191, 128, 2048, 255
TIME_END_MS = 253_402_300_800_000  # 10000-01-01T00:00:00Z: the first time RFC 3339 cannot write
KFP_PROPS = ("display_name", "store_session_info")

TASK_COLUMNS = ("Namespace", "RunUUID", "pods", "CreatedAtInSec", "StartedInSec", "FinishedInSec", "Fingerprint",
                "Name", "DisplayName", "ParentTaskUUID", "State", "StatusMetadata", "StateHistory",
                "InputParameters", "OutputParameters", "Type", "TypeAttrs", "ScopePath", "LogicalKey")
ARTIFACT_COLUMNS = ("Namespace", "Type", "URI", "URIHash", "Name", "Description", "CreatedAtInSec",
                    "LastUpdateInSec", "Metadata", "NumberValue", "IdentityKey")
LINK_COLUMNS = ("ArtifactID", "TaskID", "Type", "Iteration", "RunUUID", "Producer", "ArtifactKey")
JSON_COLUMNS = {"pods", "StatusMetadata", "StateHistory", "InputParameters", "OutputParameters", "TypeAttrs",
                "Metadata", "Producer"}


def uid_v5(name: str, source_name: str = "") -> str:
    """The id mapping versions up to 3 gave a row (docs/mapping.md I1): the UUIDv5 of the name."""
    return str(uuid.uuid5(ID_NAMESPACE, f"{source_name}|{name}" if source_name else name))


def uid(name: str, source_name: str = "", position: int = 0) -> str:
    """docs/mapping.md §2 (mapping version 4), re-derived: the UUIDv5 of the name with its top 48 bits replaced
    by the position (capped) and its version field set to 8."""
    named = uuid.UUID(uid_v5(name, source_name)).int  # variant bits set
    top = min(max(position, 0), 2 ** 48 - 1) << 80
    version_field = 0xF << 76
    return str(uuid.UUID(int=(top | (named & (2 ** 80 - 1))) & ~version_field | (8 << 76)))


def logical_key(run: str, parent: str | None, scope: str, name: str, task_type: int, iteration: int | None) -> str:
    """kfp-native-schema.md §3.3, re-derived."""
    h = hashlib.sha256()
    for part in (run, parent or "", scope, name):
        raw = part.encode()
        h.update(struct.pack(">I", len(raw)) + raw)
    h.update(struct.pack(">i", task_type))
    h.update(b"\x00" if iteration is None else b"\x01" + struct.pack(">q", iteration))
    return h.hexdigest()


def timestamp(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _go_path_base(p: str) -> str:
    """Go's `path.Base`: "." for "", trailing slashes dropped, "/" for only slashes."""
    if p == "":
        return "."
    p = p.rstrip("/")
    if p == "":
        return "/"
    return p.rsplit("/", 1)[-1]


_HOST_OK = set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]<>\"%")


def _go_unescape(text: str) -> str | None:
    """Go's `url.unescape` for a path or fragment: every `%` must start two hex digits, else an error (None)."""
    pieces = text.split("%")
    if any(len(p) < 2 or any(c not in "0123456789abcdefABCDEF" for c in p[:2]) for p in pieces[1:]):
        return None
    return unquote(text, errors="surrogateescape") if len(pieces) > 1 else text


def _go_url_path(uri: str) -> str | None:
    """`url.Parse(uri).Path` for a URI with a scheme, as Go computes it; None when Go finds no scheme or
    refuses the URI (then the plain-path branch applies: docs/mapping.md M18)."""
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in uri):
        return None
    head, hash_, fragment = uri.partition("#")
    if hash_ and _go_unescape(fragment) is None:
        return None
    end = 0
    for end, c in enumerate(head):
        if c.isascii() and c.isalpha():
            continue
        if c.isascii() and (c.isdigit() or c in "+-.") and end > 0:
            continue
        break
    else:
        return None
    if head[end:end + 1] != ":" or end == 0:
        return None
    rest = head[end + 1:].split("?", 1)[0]
    if not rest.startswith("/"):
        return ""  # opaque (`mailto:x`, `s3:bucket`): no path
    if rest.startswith("//"):
        slash = rest.find("/", 2)
        authority, rest = (rest[2:], "") if slash < 0 else (rest[2:slash], rest[slash:])
        host = authority.rsplit("@", 1)[-1]
        if not set(c for c in host if c.isascii()) <= _HOST_OK or ("%" in host and _go_unescape(host) is None):
            return None
        port = host.rsplit("]", 1)[-1] if host.startswith("[") else host
        if ":" in port and not port.rsplit(":", 1)[1].isdigit() and port.rsplit(":", 1)[1] != "":
            return None
    return _go_unescape(rest)


def infer_artifact_name(uri: str | None) -> str:
    """The runtime importer's `inferArtifactName` (importer_launcher.go), Go semantics: `path.Base` of the
    parsed path when the URI has a scheme, else `path.Base` of the URI without its trailing `/`."""
    if not uri:
        return ""
    path = _go_url_path(uri)
    if path is not None:
        return _go_path_base(path)
    return _go_path_base(uri.rstrip("/"))


def _go_json_text(value: Any) -> str:
    """Go's `json.Marshal` text of a protobuf value: compact, sorted keys, HTML characters escaped."""
    text = json.dumps(whole_numbers(value, 2**53), separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    return "".join(f"\\u{ord(c):04x}" if c in "<>&\u2028\u2029" else c for c in text)


def run_state(run: dict[str, Any]) -> str | None:
    for raw in (run.get("state"), run.get("conditions")):
        name = str(raw or "").strip().upper()
        if name in RUN_STATE_V2:
            return RUN_STATE_V2[name]
    return None


def _d(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass(eq=False)
class Task:
    name: str
    parent: Task | None
    iteration: int | None
    depth: int
    execs: list[SourceExecution] = field(default_factory=list)
    id: str = ""
    type: int = 0
    spec: dict[str, Any] | None = None
    comp: dict[str, Any] | None = None
    children: list[Task] = field(default_factory=list)
    iterations: dict[int, list[SourceExecution]] = field(default_factory=dict)
    loop: bool = False
    """It iterates (a ParallelFor): type LOOP at the top, DAG inside another loop's body (v3)."""
    state: int = 0
    finished: int = 0
    never: str | None = None
    out_params: list[dict[str, Any]] = field(default_factory=list)
    in_params: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, Any]] = field(default_factory=list)
    """Link rows of this task (dicts with the LINK_COLUMNS plus `UUID`, `_event`, `_row`)."""

    @property
    def last(self) -> SourceExecution:
        return self.execs[-1]

    @property
    def created(self) -> int:
        return self.execs[0].create_ms // 1000

    @property
    def scope(self) -> str:
        return "root" if self.parent is None else f"{self.parent.scope}.{self.name}"


@dataclass
class ExpectedRun:
    run_id: str
    namespace: str | None
    skip: str | None = None
    tasks: dict[str, dict[str, Any]] = field(default_factory=dict)
    links: dict[str, dict[str, Any]] = field(default_factory=dict)
    artifacts: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledger: set[tuple[str, int, str]] = field(default_factory=set)
    mlmd_artifacts: set[int] = field(default_factory=set)
    """MLMD artifacts that have a target row through this run (for the global `orphan-artifact` rule)."""
    fingerprints: dict[int, tuple[str, str]] = field(default_factory=dict)
    """MLMD execution id → (task id, Fingerprint) of RUNTIME tasks (the old cache cross-check)."""
    unaccounted: list[str] = field(default_factory=list)
    """MLMD rows of the run that are neither a target row nor a ledger entry (a gap in the rules)."""


def whole_numbers(value: Any, below: float = math.inf) -> Any:
    """`value` with integral floats (under `below` in magnitude) as integers, through dicts and lists."""
    if isinstance(value, float) and value.is_integer() and abs(value) < below:
        return int(value)
    if isinstance(value, dict):
        return {k: whole_numbers(v, below) for k, v in value.items()}
    if isinstance(value, list):
        return [whole_numbers(v, below) for v in value]
    return value


def _not_utf8(text: str) -> bool:
    """MLMD bytes that were not UTF-8 (read as lone surrogates): no target text column holds them."""
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _stored_json(value: Any) -> str:
    """JSON text as KFP stores it (Go's encoder: sorted keys, no spaces, UTF-8, `3` for 3.0 below 2^53),
    for sizes."""
    return json.dumps(whole_numbers(value, 2**53), sort_keys=True, separators=(",", ":"), ensure_ascii=False)


class Skip(Exception):
    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def expect_run(src: SourceRun, run: dict[str, Any] | None, spec: dict[str, Any] | None, multi_user: bool,
               source_name: str = "", max_bytes: int | None = None) -> ExpectedRun:
    """Every target row and ledger entry of one run."""
    ns: str | None = ""
    skip = None
    if run is None:
        skip = "orphan-run"
    elif multi_user:
        ns = run.get("experiment_namespace") or ""
        if not ns or ns != run.get("namespace"):
            skip = "namespace-mismatch"
        elif len(ns) > NAMESPACE_MAX:
            skip = "identifier-too-long"
    if skip is None:
        try:
            return _Derivation(src, run or {}, spec, ns or "", source_name, max_bytes).result()
        except Skip as s:
            skip = s.reason
    out = ExpectedRun(src.run_id, None, skip=skip)
    out.ledger.add(("run", src.context_id, skip))
    out.ledger.update(("execution", e.id, skip) for e in src.executions)
    out.ledger.update(("event", ev.id, skip) for ev in src.events)
    return out


class _Derivation:
    def __init__(self, src: SourceRun, run: dict[str, Any], spec: dict[str, Any] | None, ns: str,
                 source_name: str, max_bytes: int | None = None) -> None:
        self.src, self.run, self.spec, self.ns, self.sn = src, run, spec, ns, source_name
        self.max_bytes = max_bytes
        self.components = _d((spec or {}).get("components"))
        self.out = ExpectedRun(src.run_id, ns)
        self.ledger = self.out.ledger
        self.tasks: list[Task] = []
        self.task_of: dict[int, Task] = {}
        self.flattened: set[int] = set()
        self.made_by: dict[str, Task] | None = None
        self.item_keys: dict[int, str | None] = {}
        self.no_fingerprint: set[int] = set()
        """Executions whose `cache_fingerprint` was not text (ledgered `bad-property`)."""

    # --- the task tree, level by level ------------------------------------------------------------
    def result(self) -> ExpectedRun:
        src = self.src
        if self.spec is None:
            self.ledger.add(("run", src.context_id, "no-spec"))
        def unusable(ms: int) -> bool:  # before 1970, or past 9999 (no RFC 3339 year); docs/mapping.md M17
            return not 0 <= ms < TIME_END_MS

        for e in src.executions:
            if e.bad:
                self.ledger.add(("execution", e.id, "bad-property"))
            if "cache_fingerprint" in e.props and not isinstance(e.props["cache_fingerprint"], str):
                self.ledger.add(("execution", e.id, "bad-property"))  # a bool or number: no fingerprint (M28)
                del e.props["cache_fingerprint"]
                self.no_fingerprint.add(e.id)  # its old cache row cannot agree: not cross-checked
            if unusable(e.create_ms) or unusable(e.update_ms):
                self.ledger.add(("execution", e.id, "bad-time"))
                e.create_ms, e.update_ms = (0 if unusable(ms) else ms for ms in (e.create_ms, e.update_ms))
        for a in src.artifacts.values():
            if unusable(a.create_ms) or unusable(a.update_ms):
                self.ledger.add(("artifact", a.id, "bad-time"))
                a.create_ms, a.update_ms = (0 if unusable(ms) else ms for ms in (a.create_ms, a.update_ms))
        self._place()
        for t in self.tasks:
            if len(t.name) > NAME_MAX:
                raise Skip("identifier-too-long")
            parent = t.parent.id if t.parent else src.run_id
            t.id = uid(f"task:{parent}:{t.name}:{'-' if t.iteration is None else t.iteration}", self.sn,
                       self.src.context_id)
        self._states()
        self._times()
        self._links_and_artifacts()
        self._parameters()
        self._rows()
        return self.out

    def _place(self) -> None:
        """Every KFP execution placed, level by level: an attempt of a task, a flattened iteration DAG, or
        detached (no chain of `parent_dag_id` reaches a root)."""
        src = self.src
        kfp = {e.id: e for e in src.executions if e.type in KFP_TYPES}
        for e in src.executions:
            if e.id not in kfp:
                self.ledger.add(("execution", e.id, "unsupported-type"))
        parent_of = {e.id: _int(e.props.get("parent_dag_id")) for e in kfp.values()}
        tops = [e for e in kfp.values() if e.type == DAG_EXEC and e.props.get("parent_dag_id") is None]
        named = [e for e in tops if e.name == f"run/{src.run_id}"]
        tops = sorted(named or tops, key=lambda e: e.id)
        if not tops:
            raise Skip("no-root-dag")
        levels: dict[int, list[SourceExecution]] = {}
        for eid, d in self._depths(kfp, parent_of, tops).items():
            if d:
                levels.setdefault(d, []).append(kfp[eid])
        self._place_root(tops)
        marker: dict[int, tuple[Task, int]] = {}  # flattened iteration DAG → (LOOP, index)
        for d in sorted(levels):
            self._place_level(levels[d], parent_of, marker)
        for e in kfp.values():
            if e.id not in self.task_of and e.id not in self.flattened:
                self.ledger.add(("execution", e.id, "detached-execution"))

    @staticmethod
    def _depths(kfp: dict[int, SourceExecution], parent_of: dict[int, int | None],
                tops: list[SourceExecution]) -> dict[int, int | None]:
        """Depth of every execution that reaches a root through `parent_dag_id` (cycles and gaps reach none:
        None); the roots are 0."""
        depth: dict[int, int | None] = {e.id: 0 for e in tops}
        for start in kfp:
            chain, cur = [], start
            while cur not in depth:
                if cur in chain or cur not in kfp or parent_of.get(cur) is None:
                    break
                chain.append(cur)
                cur = parent_of[cur] or 0  # not None: checked above
            base = depth.get(cur) if cur in depth and cur not in chain else None
            for n, eid in enumerate(reversed(chain), start=1):
                depth[eid] = None if base is None else base + n
        return depth

    def _place_root(self, tops: list[SourceExecution]) -> None:
        """The ROOT task: every root DAG execution is an attempt, the latest effective."""
        root = Task("ROOT", None, None, 0, sorted(tops, key=lambda e: e.id))
        root.type = ROOT
        root.comp = (self.spec or {}).get("root") if self.spec else None
        self.tasks.append(root)
        for e in tops:
            self.task_of[e.id] = root
        for e in tops[:-1]:
            self.ledger.add(("execution", e.id, "superseded-attempt"))

    def _place_level(self, executions: list[SourceExecution], parent_of: dict[int, int | None],
                     marker: dict[int, tuple[Task, int]]) -> None:
        """The executions of one depth, grouped into tasks by (parent, name, iteration), then settled."""
        groups: dict[tuple[int, str, int | None], Task] = {}
        for e in sorted(executions, key=lambda x: x.id):
            spot = self._spot(e, parent_of[e.id], marker)
            if spot is None:
                continue
            parent, iteration = spot
            name = self._name(e, parent)
            key = (id(parent), name, iteration)
            if key not in groups:
                groups[key] = Task(name, parent, iteration, parent.depth + 1)
            groups[key].execs.append(e)
            self.task_of[e.id] = groups[key]
        for t in groups.values():
            self._settle(t)

    def _spot(self, e: SourceExecution, p: int | None,
              marker: dict[int, tuple[Task, int]]) -> tuple[Task, int | None] | None:
        """Where `e` (child of execution `p`) hangs: its parent task and iteration. None when it hangs under no
        task, or is an iteration DAG of a loop (flattened: its children hang under the loop, `marker` says so)."""
        if p in marker:
            return marker[p]
        if p not in self.task_of:
            return None
        parent = self.task_of[p]
        index = e.props.get("iteration_index")
        if parent.loop and e.type == DAG_EXEC and isinstance(index, int):
            marker[e.id] = (parent, index)
            parent.iterations.setdefault(index, []).append(e)
            self.flattened.add(e.id)
            self.ledger.add(("execution", e.id, "flattened-iteration"))
            return None
        return parent, parent.iteration

    def _name(self, e: SourceExecution, parent: Task) -> str:
        task_name = e.props.get("task_name")
        if not isinstance(task_name, str) or not task_name:
            raise Skip("unresolved-task-key")
        if self.spec is None or parent.comp is None:
            return task_name
        tasks = _d(parent.comp.get("dag")).get("tasks")
        if tasks is None:
            raise Skip("scope-unresolved")
        by_info = [k for k, t in tasks.items() if _d(_d(t).get("taskInfo")).get("name") == task_name]
        if task_name in tasks and (e.type not in IMPORTERS or not by_info):
            return task_name
        if len(by_info) == 1:
            return str(by_info[0])
        raise Skip("unresolved-task-key")

    def _settle(self, t: Task) -> None:
        """Type, spec and component of a task whose attempts are all known."""
        t.execs.sort(key=lambda e: e.id)
        assert t.parent is not None
        t.parent.children.append(t)
        self.tasks.append(t)
        for e in t.execs[:-1]:
            self.ledger.add(("execution", e.id, "superseded-attempt"))
        last = t.last
        if self.spec is not None and t.parent.comp is not None:
            t.spec = _d(_d(_d(t.parent.comp.get("dag")).get("tasks")).get(t.name))
            ref = _d(t.spec.get("componentRef")).get("name")
            t.comp = (_d(self.components.get(ref)) if isinstance(ref, str) else {}) or None
        if last.type == DAG_EXEC:
            t.loop = ("parameterIterator" in t.spec or "artifactIterator" in t.spec) if t.spec is not None \
                else self.spec is None and "iteration_count" in last.props
        if last.type == CONTAINER_EXEC:
            t.type = RUNTIME
        elif last.type in IMPORTERS:
            t.type = IMPORTER
        elif t.loop and t.iteration is None:  # the driver types LOOP only without an iteration index (v3)
            t.type = LOOP
        elif t.spec is not None and _d(t.spec.get("triggerPolicy")).get("condition"):
            t.type = BRANCH
        elif t.name.startswith("condition") and not t.name.startswith("condition-branch"):
            t.type = CONDITION
        else:
            t.type = DAG
        if t.loop and _int(last.props.get("iteration_count")) is None:
            raise Skip("loop-without-count")

    # --- states and times ---------------------------------------------------------------------------
    def _expected_children(self, t: Task) -> int:
        if t.comp is None:
            return len(t.children)
        n = len(_d(_d(t.comp.get("dag")).get("tasks")))
        return n * (_int(t.last.props.get("iteration_count")) or 0) if t.type == LOOP else n

    def _dag_state(self, t: Task) -> int:
        states = {c.state for c in t.children}
        if not t.children:
            if t.last.state == MLMD_CANCELED or (t.loop and _int(t.last.props.get("iteration_count")) == 0):
                return SKIPPED
            if t.comp is not None and not _d(t.comp.get("dag")).get("tasks"):
                return SUCCEEDED
            return RUNNING
        if FAILED in states:  # before RUNNING (v3): one failed child fails the DAG while others still run
            return FAILED
        if RUNNING in states:
            return RUNNING
        if len(t.children) < self._expected_children(t):
            return RUNNING
        if states == {CACHED}:
            return CACHED
        if states == {SKIPPED}:
            return SKIPPED
        return SUCCEEDED

    def _states(self) -> None:
        deepest_first = sorted(self.tasks, key=lambda t: -t.depth)
        for t in deepest_first:
            t.state = MLMD_LEAF_STATE.get(t.last.state or 0, RUNNING) if t.type not in DAG_LIKE else self._dag_state(t)
        finished = run_state(self.run)
        if finished in FINISHED:
            for t in self.tasks:
                if t.type not in DAG_LIKE and t.state == RUNNING:
                    t.state, t.never = FAILED, finished
            for t in deepest_first:  # derived again, as the runtime's propagation would after those updates
                if t.type in DAG_LIKE:
                    t.state = self._dag_state(t)
            for t in self.tasks:  # then every DAG-like still RUNNING, ROOT included (mapping.md §4 State)
                if t.type in DAG_LIKE and t.state == RUNNING:
                    t.state, t.never = FAILED, finished

    def _times(self) -> None:
        run_finished = int(self.run.get("finished_at") or 0)
        for t in sorted(self.tasks, key=lambda t: -t.depth):
            if t.state == RUNNING:
                t.finished = 0
            elif t.never:
                t.finished = run_finished or t.last.update_ms // 1000
            elif t.type not in DAG_LIKE:
                t.finished = t.last.update_ms // 1000
            else:
                t.finished = max([c.finished for c in t.children] or [t.created]) or t.created

    def _history(self, t: Task) -> list[dict[str, str]]:
        def one(state: int, created: int, finished: int, single: bool) -> list[tuple[str, int]]:
            if state in (CACHED, SKIPPED) or single:
                return [(STATE_NAME[state], created)]
            if state == RUNNING:
                return [("RUNNING", created)]
            return [("RUNNING", created), (STATE_NAME[state], finished)]

        if t.type in DAG_LIKE:
            entries = one(t.state, t.created, t.finished, not t.children)
        else:
            entries = []
            for e in t.execs:
                final = e is t.last
                state = t.state if final else MLMD_LEAF_STATE.get(e.state or 0, RUNNING)
                for entry in one(state, e.create_ms // 1000, t.finished if final else e.update_ms // 1000, False):
                    if not entries or entries[-1][0] != entry[0]:
                        entries.append(entry)
        return [{"state": s, "updateTime": timestamp(at)} for s, at in entries]

    # --- artifacts and links --------------------------------------------------------------------------
    def _artifact_rows(self, a: SourceArtifact) -> list[dict[str, Any]]:
        kind = ARTIFACT_TYPE.get(a.type, 1)
        created = a.create_ms // 1000
        if a.bad:
            self.ledger.add(("artifact", a.id, "bad-property"))
        base = {"Namespace": self.ns, "Description": "", "CreatedAtInSec": created, "LastUpdateInSec": created,
                "IdentityKey": None, "_mlmd": a.id}
        if kind == 6:
            rows = []
            for key, value in sorted(a.props.items()):
                if key in KFP_PROPS:
                    continue
                if not isinstance(value, (int, float)) or isinstance(value, bool) or not math.isfinite(value):
                    self.ledger.add(("artifact", a.id, "bad-metric"))
                    continue
                if len(key) > NAME_MAX:
                    self.ledger.add(("artifact", a.id, "truncated"))
                rows.append({**base, "UUID": uid(f"artifact:{a.id}:{self.ns}:metric:{key}", self.sn, a.id), "Type": 6,
                             "URI": None, "URIHash": "", "Name": key[:NAME_MAX], "Metadata": {key: value},
                             "NumberValue": float(value)})
            if not rows:
                self.ledger.add(("artifact", a.id, "empty-metrics"))
            elif len(rows) > 1:
                self.ledger.add(("artifact", a.id, "split"))
            return rows
        if a.first_type in IMPORTERS:
            name = infer_artifact_name(a.uri)
        elif a.first_key:
            name = a.first_key
        else:
            shown = a.props.get("display_name")
            name = shown if isinstance(shown, str) and shown else self._legacy_name(a)
        meta: dict[str, Any] = {}
        for k, v in a.props.items():
            if k == "store_session_info" or (k == "display_name" and v == name):
                continue
            if isinstance(v, dict) and len(v) == 1 and set(v) <= {"list", "struct"}:
                v = next(iter(v.values()))
            meta[k] = v
        if a.type not in ARTIFACT_TYPE:
            meta["_kfp_schema_title"] = a.type
        if len(name) > NAME_MAX:
            self.ledger.add(("artifact", a.id, "truncated"))
        uri = None if kind in (6, 7, 8) else a.uri
        return [{**base, "UUID": uid(f"artifact:{a.id}:{self.ns}", self.sn, a.id), "Type": kind, "URI": uri,
                 "URIHash": hashlib.sha256(uri.encode("utf-8", "surrogateescape")).hexdigest() if uri else "", "Name": name[:NAME_MAX],
                 "Metadata": meta or None, "NumberValue": None}]

    @staticmethod
    def _legacy_name(a: SourceArtifact) -> str:
        """docs/mapping.md M4: the URI's last path segment, else `artifact-<id>`."""
        return infer_artifact_name(a.uri) or f"artifact-{a.id}"

    def _link(self, t: Task, row: dict[str, Any], io: int, key: str, producer: dict[str, Any],
              event: SourceEvent | None, seen: dict[tuple[Any, ...], dict[str, Any]]) -> None:
        iteration = int(producer["iteration"]) if "iteration" in producer else -1
        unique = (t.id, row["UUID"], io, iteration, key)
        if unique in seen:
            first = seen[unique]["_event"]
            if event is not None and (first is None or first != event.id):
                self.ledger.add(("event", event.id, "merged-link"))
            return
        link = {"UUID": uid(f"link:{t.id}:{row['UUID']}:{io}:{iteration}:{key}", self.sn, self.src.context_id),
                "ArtifactID": row["UUID"],
                "TaskID": t.id, "Type": io, "Iteration": iteration, "RunUUID": self.src.run_id, "Producer": producer,
                "ArtifactKey": key, "_event": event.id if event else None, "_row": row["UUID"]}
        seen[unique] = link
        t.links.append(link)

    def _links_and_artifacts(self) -> None:
        src = self.src
        events_of: dict[int, list[SourceEvent]] = {}
        for ev in sorted(src.events, key=lambda e: e.id):
            owner = self.task_of.get(ev.execution_id)
            if owner is not None and ev.execution_id not in self.flattened and ev.type not in (EVENT_INPUT, EVENT_OUTPUT):
                self.ledger.add(("event", ev.id, "unsupported-event-type"))  # only these two are links (M29)
            elif owner is not None and ev.execution_id not in self.flattened:
                events_of.setdefault(ev.execution_id, []).append(ev)
            else:
                reason = ("flattened-iteration" if ev.execution_id in self.flattened else
                          "unsupported-type" if ("execution", ev.execution_id, "unsupported-type") in self.ledger
                          else "detached-execution")
                self.ledger.add(("event", ev.id, reason))
        rows_of: dict[int, list[dict[str, Any]]] = {}
        for artifact_id in sorted({ev.artifact_id for evs in events_of.values() for ev in evs}):
            if artifact_id in src.artifacts:
                rows_of[artifact_id] = self._artifact_rows(src.artifacts[artifact_id])
        for rows in rows_of.values():
            for row in rows:
                self.out.artifacts[row["UUID"]] = row
                self.out.mlmd_artifacts.add(row["_mlmd"])
        self.rows_of = rows_of
        seen: dict[tuple[Any, ...], dict[str, Any]] = {}
        self.events_of = events_of

        def usable(ev: SourceEvent) -> list[dict[str, Any]]:
            if not ev.key:
                self.ledger.add(("event", ev.id, "no-path-key"))
                return []
            if ev.artifact_id not in rows_of:
                self.ledger.add(("event", ev.id, "missing-artifact"))
                return []
            if not rows_of[ev.artifact_id]:
                self.ledger.add(("event", ev.id, "empty-metrics"))
            return rows_of[ev.artifact_id]

        self.usable = usable
        for t in self.tasks:  # own outputs; inside a loop body typed by their iteration index, in any state (v3)
            io = IO["OUTPUT"] if t.iteration is None else IO["ITERATOR_OUTPUT"]
            for e in t.execs:
                for ev in events_of.get(e.id, []):
                    if ev.type == EVENT_OUTPUT:
                        for row in usable(ev):
                            self._link(t, row, io, ev.key or "", self._producer(t.name, t.iteration), ev, seen)
        self.seen = seen
        for t in sorted(self.tasks, key=lambda t: -t.depth):  # propagated outputs, pulled from the children
            if t.type in DAG_LIKE:
                self._pull(t, "artifacts")
        # input links after the parameters (their producers follow the same resolution): see _parameters

    @staticmethod
    def _producer(name: str, iteration: int | None) -> dict[str, Any]:
        return {"taskName": name} if iteration is None else {"taskName": name, "iteration": str(iteration)}

    @staticmethod
    def _produces(t: Task) -> bool:
        return (t.type == RUNTIME and t.state in (SUCCEEDED, CACHED)) or (t.type == IMPORTER and t.state == SUCCEEDED)

    def _selectors(self, t: Task, kind: str) -> dict[str, list[tuple[Any, Any]]]:
        """Output name → [(producer subtask, output key)] of a DAG (the spec's `dag.outputs`, else MLMD's
        `*_producer_task` properties)."""
        out: dict[str, list[tuple[Any, Any]]] = {}  # (producer task, its output key) as the spec or MLMD says
        if self.spec is not None:
            outputs = _d(_d(_d(t.comp).get("dag")).get("outputs")).get(kind)
            for name, sel in _d(outputs).items():
                sel = _d(sel)
                if kind == "parameters":
                    items = [sel["valueFromParameter"]] if "valueFromParameter" in sel else \
                        _d(sel.get("valueFromOneof")).get("parameterSelectors") or []
                    out[name] = [(_d(i).get("producerSubtask"), _d(i).get("outputParameterKey")) for i in items]
                else:
                    out[name] = [(_d(i).get("producerSubtask"), _d(i).get("outputArtifactKey"))
                                 for i in sel.get("artifactSelectors") or []]
            return out
        props = t.last.props
        if kind == "parameters":
            for name, raw in _d(props.get("parameter_producer_task")).items():
                try:
                    sel = _d(json.loads(raw)) if isinstance(raw, str) else {}
                except ValueError:
                    continue
                items = [sel["valueFromParameter"]] if "valueFromParameter" in sel else \
                    _d(sel.get("valueFromOneof")).get("parameterSelectors") or []
                out[name] = [(_d(i).get("producerSubtask"), _d(i).get("outputParameterKey")) for i in items]
        else:
            try:
                raw = json.loads(props["artifact_producer_task"]) if isinstance(props.get("artifact_producer_task"), str) else {}
            except ValueError:
                raw = {}
            for name, sel in _d(raw).items():
                out[name] = [(_d(i).get("producer_subtask"), _d(i).get("output_artifact_key"))
                             for i in _d(sel).get("artifact_selectors") or []]
        return out

    def _declared_list(self, t: Task, kind: str, name: str) -> bool:
        decl = _d(_d(_d(_d(t.comp).get("outputDefinitions")).get(kind)).get(name))
        return decl.get("parameterType") == "LIST" if kind == "parameters" else bool(decl.get("isArtifactList"))

    def _pull(self, t: Task, kind: str) -> None:
        """The outputs `t` declares, each pulled from the child it selects. What a child offers carries the
        type and producer iteration of its own link; a leaf's level counts as OUTPUT with the leaf's index."""
        for name, selectors in sorted(self._selectors(t, kind).items()):
            for child_key, out_key in selectors:
                for child in sorted((c for c in t.children if c.name == child_key), key=lambda c: c.last.id):
                    if child.type in DAG_LIKE:
                        offered = ([(IO[p["type"]], p["value"], None, p["producer"].get("iteration"))
                                    for p in child.out_params if p["parameterKey"] == out_key]
                                   if kind == "parameters" else
                                   [(lk["Type"], None, lk["_row"], lk["Producer"].get("iteration")) for lk in child.links
                                    if lk["_event"] is None and lk["ArtifactKey"] == out_key and lk["Type"] in (8, 9, 10)])
                    elif not self._produces(child):
                        offered = []
                    else:
                        index = None if child.iteration is None else str(child.iteration)
                        if kind == "parameters":
                            outputs = _d(child.last.props.get("outputs")) if child.type == RUNTIME else {}
                            offered = [(IO["OUTPUT"], outputs[out_key], None, index)] if out_key in outputs else []
                        else:
                            offered = [(IO["OUTPUT"], None, lk["_row"], index) for lk in child.links
                                       if lk["_event"] is not None and lk["ArtifactKey"] == out_key and lk["Type"] in (8, 9)]
                    for inner, value, row_id, index in offered:
                        if t.type == LOOP:
                            io = IO["ITERATOR_OUTPUT"]
                        elif t.type == BRANCH and not self._declared_list(t, kind, name):
                            io = IO["ONE_OF_OUTPUT"]
                        else:
                            io = inner
                        producer = {"taskName": child.name}
                        if io == IO["ITERATOR_OUTPUT"] and index is not None:
                            producer["iteration"] = index
                        if kind == "parameters":
                            entry = {"parameterKey": name, "producer": producer, "type": IO_NAME[io], "value": value}
                            if entry not in t.out_params:
                                t.out_params.append(entry)
                        else:
                            self._link(t, self.out.artifacts[str(row_id)], io, name, producer, None, self.seen)

    # --- parameters and input links --------------------------------------------------------------------
    def _item_key(self, t: Task) -> str | None:
        """A LOOP's loop-item input: the spec's `itemInput`; without a spec the key its iteration DAGs have
        in `inputs` and the LOOP has not."""
        if not t.loop:
            return None
        if id(t) in self.item_keys:
            return self.item_keys[id(t)]
        self.item_keys[id(t)] = self._derive_item_key(t)
        return self.item_keys[id(t)]

    def _derive_item_key(self, t: Task) -> str | None:
        if self.spec is not None:
            iterator = _d(_d(t.spec).get("parameterIterator") or _d(t.spec).get("artifactIterator"))
            item = iterator.get("itemInput")
            return item if isinstance(item, str) else None
        own = set(_d(t.last.props.get("inputs")))
        extra = sorted({k for execs in t.iterations.values() for k in _d(execs[-1].props.get("inputs")) if k not in own})
        return extra[0] if len(extra) == 1 else None

    def _sibling(self, t: Task, name: str) -> Task | None:
        if t.parent is None:
            return None
        same = [c for c in t.parent.children if c.name == name]
        return next((c for c in same if c.iteration == t.iteration), same[0] if same else None)

    def _parameters(self) -> None:
        for t in self.tasks:
            if t.type == RUNTIME and t.state in (SUCCEEDED, CACHED):
                io = "ITERATOR_OUTPUT" if t.iteration is not None else "OUTPUT"
                t.out_params = [{"parameterKey": k, "producer": self._producer(t.name, t.iteration), "type": io,
                                 "value": v} for k, v in sorted(_d(t.last.props.get("outputs")).items())]
        for t in sorted(self.tasks, key=lambda t: -t.depth):
            if t.type in DAG_LIKE:
                self._pull(t, "parameters")
        for t in sorted(self.tasks, key=lambda t: t.depth):  # parents first: inputs resolve through them
            t.in_params = self._inputs(t)
            self._input_links(t)

    def _inputs(self, t: Task) -> list[dict[str, Any]]:
        inputs = _d(t.last.props.get("inputs"))
        if t.type == ROOT:
            return [{"parameterKey": k, "producer": {"taskName": "ROOT"}, "type": "RUNTIME_VALUE_INPUT", "value": v}
                    for k, v in inputs.items() if v is not None]
        parent = t.parent
        assert parent is not None
        bindings = _d(_d(_d(t.spec).get("inputs")).get("parameters"))
        definitions = _d(_d(_d(t.comp).get("inputDefinitions")).get("parameters"))
        item = self._item_key(t)
        entries = []

        def add(key: str, io: str, producer: dict[str, Any], value: Any) -> None:
            if t.iteration is not None:
                producer = {**producer, "iteration": str(t.iteration)}
            entries.append({"parameterKey": key, "producer": producer, "type": io, "value": value})

        for key, value in inputs.items():
            if value is None or key == item or _d(definitions.get(key)).get("parameterType") == "TASK_CONFIG":
                continue
            if self.spec is not None and key not in bindings and "defaultValue" in _d(definitions.get(key)):
                add(key, "COMPONENT_DEFAULT_INPUT", {"taskName": parent.name}, value)
                continue
            binding = _d(bindings.get(key)) if self.spec is not None else {}
            if "taskOutputParameter" in binding:
                ref = _d(binding["taskOutputParameter"])
                source = self._sibling(t, ref.get("producerTask", ""))
                offered = [p for p in (source.out_params if source else []) if p["parameterKey"] == ref.get("outputParameterKey")]
                if source is None:
                    add(key, "TASK_OUTPUT_INPUT", {"taskName": ref.get("producerTask", parent.name)}, value)
                elif offered and all(p["type"] == "ITERATOR_OUTPUT" for p in offered):
                    if source.type not in DAG_LIKE:  # one task's value, collected into a list (v3, M21)
                        kind = _d(definitions.get(key)).get("parameterType")
                        value = _go_json_text([value]) if kind == "STRING" else [value]
                    add(key, "COLLECTED_INPUTS", {"taskName": source.name}, value)
                else:
                    add(key, "TASK_OUTPUT_INPUT", {"taskName": offered[0]["producer"]["taskName"] if offered
                                                   else source.name}, value)
            elif "runtimeValue" in binding:
                add(key, "RUNTIME_VALUE_INPUT", {"taskName": parent.name}, value)
            elif "taskFinalStatus" in binding:
                add(key, "TASK_FINAL_STATUS_OUTPUT", {"taskName": parent.name}, value)
            else:  # componentInputParameter, an unbound key, and every input without a spec
                wired = binding.get("componentInputParameter", key) if (not binding or "componentInputParameter" in binding) else None
                if wired is not None and parent.loop and wired == self._item_key(parent):
                    add(key, "COMPONENT_INPUT", {"taskName": parent.name}, value)
                    continue
                upstream = next((p["producer"] for p in parent.in_params
                                 if wired is not None and p["parameterKey"] == wired and p["type"] != "ITERATOR_INPUT"), None)
                add(key, "COMPONENT_INPUT", dict(upstream) if upstream else {"taskName": parent.name}, value)
        if self.spec is not None:
            for key, definition in definitions.items():
                if "defaultValue" in _d(definition) and key not in bindings and key not in inputs:
                    add(key, "COMPONENT_DEFAULT_INPUT", {"taskName": parent.name}, _d(definition)["defaultValue"])
        if item is not None:
            for index, execs in sorted(t.iterations.items()):
                entries.append({"parameterKey": item, "producer": {"iteration": str(index), "taskName": t.name},
                                "type": "ITERATOR_INPUT", "value": _d(execs[-1].props.get("inputs")).get(item)})
        return entries

    def _input_links(self, t: Task) -> None:
        parent = t.parent
        for e in t.execs:
            evs = [ev for ev in self.events_of.get(e.id, []) if ev.type == EVENT_INPUT]
            per_key: dict[str, int] = {}
            for ev in evs:
                per_key[ev.key or ""] = per_key.get(ev.key or "", 0) + 1
            for ev in evs:
                for row in self.usable(ev):
                    io, producer = self._input_kind(t, parent, ev, row, per_key)
                    if t.iteration is not None:
                        producer = {**producer, "iteration": str(t.iteration)}
                    self._link(t, row, io, ev.key or "", producer, ev, self.seen)

    def _input_kind(self, t: Task, parent: Task | None, ev: SourceEvent, row: dict[str, Any],
                    per_key: dict[str, int]) -> tuple[int, dict[str, Any]]:
        parent_name = parent.name if parent else t.name
        binding = _d(_d(_d(_d(t.spec).get("inputs")).get("artifacts")).get(ev.key or "")) if self.spec else {}
        if parent is not None and "componentInputArtifact" in binding:
            up = next((lk for lk in parent.links if lk["ArtifactKey"] == binding["componentInputArtifact"]
                       and lk["_row"] == row["UUID"]), None)
            return IO["COMPONENT_INPUT"], {k: v for k, v in up["Producer"].items()} if up else {"taskName": parent_name}
        if parent is not None and "taskOutputArtifact" in binding:
            ref = _d(binding["taskOutputArtifact"])
            source = self._sibling(t, ref.get("producerTask", ""))
            if source is None:
                return IO["TASK_OUTPUT_INPUT"], {"taskName": ref.get("producerTask", parent_name)}
            offered = [lk for lk in source.links if lk["ArtifactKey"] == ref.get("outputArtifactKey")
                       and lk["Type"] in (8, 9, 10)]
            if any(lk["Type"] == 8 for lk in offered):
                return IO["COLLECTED_INPUTS"], {"taskName": source.name}
            same = next((lk for lk in offered if lk["_row"] == row["UUID"]), None)
            return IO["TASK_OUTPUT_INPUT"], {"taskName": same["Producer"]["taskName"] if same else source.name}
        return self._input_kind_without_spec(t, parent, ev, row, per_key)

    def _input_kind_without_spec(self, t: Task, parent: Task | None, ev: SourceEvent, row: dict[str, Any],
                                 per_key: dict[str, int]) -> tuple[int, dict[str, Any]]:
        """mapping.md §6 without a spec: a collection when the consumer's sibling on the producer's chain is a
        LOOP, or is the producer itself inside a loop body (v3), or the execution has several INPUT events of
        the key (producer: that sibling, docs/mapping.md M19; else the producer); an artifact the parent received is
        a component input (producer: the parent's link's); else a task output (producer: the producing
        task, or the inner child a propagated link names when the producer sits inside a sibling DAG)."""
        parent_name = parent.name if parent else t.name
        if self.made_by is None:
            self.made_by = {}
            for o in self.tasks:
                for lk in o.links:
                    if lk["_event"] is not None and lk["Type"] in (8, 9):
                        self.made_by.setdefault(lk["_row"], o)
        made_by = self.made_by.get(row["UUID"])
        chain = [made_by] if made_by is not None else []
        while chain and chain[-1].parent is not None:
            chain.append(chain[-1].parent)
        # S: the consumer's parent's child on the producer's chain (the producer itself, or a DAG holding it)
        holder = next((c for c in chain if c.parent is parent), None) if parent is not None else None
        sibling_in_iteration = holder is made_by and holder is not None and holder.iteration is not None
        if per_key.get(ev.key or "", 0) > 1 or (holder is not None and holder.type == LOOP) or sibling_in_iteration:
            named = holder or made_by
            return IO["COLLECTED_INPUTS"], {"taskName": named.name if named else parent_name}
        if parent is not None:
            up = next((lk for lk in parent.links if lk["_row"] == row["UUID"] and lk["Type"] in (2, 3, 4, 5)), None)
            if up is not None:
                return IO["COMPONENT_INPUT"], dict(up["Producer"])
        if made_by is None:
            return IO["TASK_OUTPUT_INPUT"], {"taskName": parent_name}
        beside = holder if holder is not made_by else None
        via = next((lk for lk in beside.links if lk["_event"] is None and lk["_row"] == row["UUID"]), None) \
            if beside is not None else None
        return IO["TASK_OUTPUT_INPUT"], {"taskName": via["Producer"]["taskName"] if via else made_by.name}

    # --- rows ----------------------------------------------------------------------------------------
    def _pods(self, t: Task) -> list[dict[str, str]]:
        if t.type != RUNTIME:
            return []
        name = t.last.props.get("pod_name")
        if not isinstance(name, str) or not name:
            return []
        label = _d(t.comp).get("executorLabel")
        executor = _d(_d(_d((self.spec or {}).get("deploymentSpec")).get("executors")).get(label)) if label else {}
        image = _d(executor.get("container")).get("image")
        pod = {"name": name, "type": "DRIVER" if isinstance(image, str) and image.startswith("argostub/") else "EXECUTOR"}
        pod_uid = t.last.props.get("pod_uid")
        if isinstance(pod_uid, str) and pod_uid:
            pod["uid"] = pod_uid
        return [pod]

    def _display(self, t: Task) -> str:
        if t.type == ROOT:
            shown = str(self.run.get("display_name") or "")
        elif t.type in FIXED_LABEL:
            shown = FIXED_LABEL[t.type]
        else:
            info = _d(_d(t.spec).get("taskInfo")).get("name")
            recorded = t.last.props.get("display_name")
            shown = info if isinstance(info, str) and info else (
                recorded if isinstance(recorded, str) and recorded else t.name)
        if len(shown) > DISPLAY_MAX:
            self.ledger.add(("execution", t.last.id, "truncated"))
        return shown[:DISPLAY_MAX]

    def _status(self, t: Task) -> dict[str, Any] | None:
        out: dict[str, Any] = {}
        source: Task | None = t  # whose plugin values: a DAG-like in a loop body shows the nearest holder's above
        while source is not None and source.type in DAG_LIKE and source.iteration is not None:
            source = source.parent
        plugins = {} if source is None or source.type in (ROOT, IMPORTER) else {
            k: v for k, v in source.last.props.items() if k.startswith("plugins.") and isinstance(v, str)}
        if plugins:
            out["customProperties"] = plugins
        if t.never:
            out["message"] = f"never finished (run {t.never})"
        elif t.state == FAILED and t.type in (RUNTIME, IMPORTER):
            out["message"] = FAILED_TEXT
        if out or (t.type == RUNTIME and t.state == CACHED):
            return out
        return None

    def _rows(self) -> None:
        run_id = self.src.run_id
        for t in self.tasks:
            attrs: dict[str, Any] = {}
            if t.loop:  # LOOP, and a nested loop (DAG) beside its iterationIndex (v3)
                attrs["iterationCount"] = str(_int(t.last.props.get("iteration_count")))
            if t.type == IMPORTER:
                attrs["downloadToWorkspace"] = t.last.type == "system.ImporterWorkspaceExecution"
            if t.iteration is not None:
                attrs["iterationIndex"] = str(t.iteration)
            parent = t.parent.id if t.parent else None
            fingerprint = str(t.last.props.get("cache_fingerprint") or "") if t.type == RUNTIME else ""
            self.out.tasks[t.id] = {
                "UUID": t.id, "Namespace": self.ns, "RunUUID": run_id, "pods": self._pods(t),
                "CreatedAtInSec": t.created, "StartedInSec": 0, "FinishedInSec": t.finished, "Fingerprint": fingerprint,
                "Name": t.name, "DisplayName": self._display(t), "ParentTaskUUID": parent, "State": t.state,
                "StatusMetadata": self._status(t), "StateHistory": self._history(t),
                "InputParameters": t.in_params or None, "OutputParameters": t.out_params or None, "Type": t.type,
                "TypeAttrs": {} if t.type == ROOT else (attrs or None), "ScopePath": t.scope,
                "LogicalKey": logical_key(run_id, parent, t.scope, t.name, t.type, t.iteration),
                "_executions": [e.id for e in t.execs],
            }
            if t.type == RUNTIME:
                for e in t.execs:
                    if e.id not in self.no_fingerprint:
                        self.out.fingerprints[e.id] = (t.id, fingerprint)
            for link in t.links:
                if len(link["ArtifactKey"]) > KEY_MAX:
                    raise Skip("identifier-too-long")
                self.out.links[link["UUID"]] = link
        self._storable()
        self._account()

    def _storable(self) -> None:
        """Values the target cannot hold whole skip the run (docs/mapping.md M20); a value too long
        anywhere in the run is the reason even where another value holds a NUL."""
        nul = False
        for table, rows, text_columns in (("tasks", self.out.tasks, ("Name", "DisplayName", "Fingerprint", "ScopePath")),
                                          ("artifacts", self.out.artifacts, ("URI", "Name")),
                                          ("artifact_tasks", self.out.links, ("ArtifactKey",))):
            for row in rows.values():
                if table == "artifacts" and row["URI"] is not None and len(row["URI"]) > URI_MAX:
                    raise Skip("value-too-long")
                if table == "tasks" and len(row["Fingerprint"]) > FINGERPRINT_MAX:
                    raise Skip("value-too-long")
                nul = nul or any(isinstance(row[c], str) and ("\0" in row[c] or _not_utf8(row[c])) for c in text_columns)
                if self.max_bytes is None:
                    continue
                for column, value in row.items():
                    if column.startswith("_"):
                        continue
                    size = len((_stored_json(value) if column in JSON_COLUMNS
                                else value if isinstance(value, str) else "").encode())
                    if size > self.max_bytes:
                        raise Skip("value-too-long")
        if nul:
            raise Skip("unstorable-value")

    def _account(self) -> None:
        """Every execution and event of the run is a target row or a ledger entry (a gap is a verify bug)."""
        noted = {(entity, mlmd_id) for entity, mlmd_id, _ in self.ledger}
        for e in self.src.executions:
            if e.id not in self.task_of and ("execution", e.id) not in noted:
                self.out.unaccounted.append(f"execution {e.id}")
        linked = {lk["_event"] for lk in self.out.links.values()}
        for ev in self.src.events:
            if ev.id not in linked and ("event", ev.id) not in noted:
                self.out.unaccounted.append(f"event {ev.id}")

"""Input and output parameters, artifact links, and propagated DAG outputs (mapping.md §4, §6)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..records import EVENT_INPUT, EVENT_OUTPUT, ArtifactRow, LedgerEntry, MlmdEvent
from .enums import (CACHED, COLLECTED_INPUTS, COMPONENT_INPUT, CONDITION_BRANCH, DAG_LIKE,
                    IMPORTER, IO_TYPE_NAMES, ITERATOR_INPUT, ITERATOR_OUTPUT, LOOP, ONE_OF_OUTPUT, OUTPUT, ROOT,
                    RUNTIME, RUNTIME_VALUE_INPUT, SUCCEEDED, TASK_FINAL_STATUS_OUTPUT, TASK_OUTPUT_INPUT)
from .protojson import dumps
from .tree import TaskNode


@dataclass
class Link:
    """An `artifact_tasks` row under construction."""

    task: TaskNode
    artifact: ArtifactRow
    type: int
    key: str
    producer: dict[str, Any]
    event_id: int | None

    @property
    def iteration(self) -> int:
        """The server's rule: `Producer.iteration`, else -1."""
        it = self.producer.get("iteration")
        return int(it) if it is not None else -1

    def unique(self) -> tuple[str, str, int, int, str]:
        """The UniqueLink tuple."""
        return (self.artifact.uuid, self.task.uuid, self.type, self.iteration, self.key)


def producer(task_name: str, iteration: int | None = None) -> dict[str, Any]:
    """An IOProducer (iteration as an int64 string)."""
    p: dict[str, Any] = {"taskName": task_name}
    if iteration is not None:
        p["iteration"] = str(iteration)
    return p


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def item_input(task: TaskNode) -> str | None:
    """A loop task's `parameterIterator.itemInput` (the loop-item key)."""
    if not task.loop or task.task_spec is None:
        return None
    iterator = task.task_spec.get("parameterIterator") or task.task_spec.get("artifactIterator") or {}
    value = iterator.get("itemInput")
    return value if isinstance(value, str) else None


def loop_item_without_spec(task: TaskNode) -> str | None:
    """Without a spec, a loop task's loop-item key: the one input its iteration DAGs record and it does not."""
    own = _dict(task.effective.props.get("inputs")).keys()
    keys = {k for execs in task.iterations.values() for k in _dict(execs[-1].props.get("inputs")) if k not in own}
    return next(iter(keys)) if len(keys) == 1 else None


def _has_outputs(task: TaskNode) -> bool:
    return (task.type == RUNTIME and task.state in (SUCCEEDED, CACHED)) or (task.type == IMPORTER and task.state == SUCCEEDED)


@dataclass(frozen=True)
class _Output:
    """A producing task's output on its way up the tree (`RunIO.propagate`)."""

    kind: str
    """`parameters` or `artifacts`."""
    value: Any
    """A parameter's value (None for an artifact)."""
    row: ArtifactRow | None
    """An artifact's row (None for a parameter)."""
    has_spec: bool
    """Selectors come from the spec's `dag.outputs`, else from MLMD's `*_producer_task` properties."""


@dataclass(frozen=True)
class _Below:
    """The propagated link one level below (`RunIO._propagate`)."""

    level: int
    """1 for the producing task's own output, then one more per ancestor."""
    type: int
    """Its IOType."""
    iteration: int | None
    """Its producer's iteration."""


class RunIO:
    """Computes parameters and links for one tree, given the run's artifact rows."""

    def __init__(self, root: TaskNode, rows_of: dict[int, list[ArtifactRow]], run_id: str) -> None:
        self.root = root
        self.rows_of = rows_of
        self.run_id = run_id
        self.links: dict[TaskNode, list[Link]] = {t: [] for t in root.walk()}
        self._seen: dict[tuple[str, str, int, int, str], Link] = {}
        self.ledger: list[LedgerEntry] = []
        self._made_by: dict[int, TaskNode] | None = None

    # --- links ---------------------------------------------------------------------------
    def _add_link(self, link: Link) -> bool:
        existing = self._seen.get(link.unique())
        if existing is not None:
            if link.event_id is not None and existing.event_id != link.event_id:
                self.ledger.append(LedgerEntry(self.run_id, "event", link.event_id, "merged-link",
                                               f"same link as event {existing.event_id}"))
            return False
        self._seen[link.unique()] = link
        self.links[link.task].append(link)
        return True

    def _event_rows(self, ev: MlmdEvent) -> list[ArtifactRow]:
        rows = self.rows_of.get(ev.artifact_id)
        if rows is None:
            self.ledger.append(LedgerEntry(self.run_id, "event", ev.id, "missing-artifact",
                                           f"artifact {ev.artifact_id} does not exist"))
            return []
        if not rows:
            self.ledger.append(LedgerEntry(self.run_id, "event", ev.id, "empty-metrics",
                                           f"artifact {ev.artifact_id} has no metric rows"))
        return rows

    def output_links(self, events_of: dict[int, list[MlmdEvent]]) -> None:
        """OUTPUT events of every attempt → producer links: ITERATOR_OUTPUT inside a loop body, in any state
        (the server types a link created with an iteration index so, v3), else OUTPUT."""
        for task in self.root.walk():
            io_type = ITERATOR_OUTPUT if task.iteration is not None else OUTPUT
            for attempt in task.attempts:
                for ev in events_of.get(attempt.id, []):
                    if ev.type != EVENT_OUTPUT or not self._keyed(ev):
                        continue
                    for row in self._event_rows(ev):
                        self._add_link(Link(task, row, io_type, ev.key or "", producer(task.name, task.iteration),
                                            ev.id))

    def input_links(self, events_of: dict[int, list[MlmdEvent]]) -> None:
        """INPUT events → input links, typed from the consumer's task spec (parents first)."""
        for task in self.root.walk():
            inputs = [ev for a in task.attempts for ev in events_of.get(a.id, []) if ev.type == EVENT_INPUT]
            key_counts: dict[tuple[int, str], int] = {}  # per execution: retried attempts are not a collection
            for ev in inputs:
                key_counts[(ev.execution_id, ev.key or "")] = key_counts.get((ev.execution_id, ev.key or ""), 0) + 1
            for ev in inputs:
                if not self._keyed(ev):
                    continue
                for row in self._event_rows(ev):
                    io_type, prod = self._input_kind(task, ev, row, key_counts)
                    if task.iteration is not None:
                        prod = {**prod, "iteration": str(task.iteration)}
                    self._add_link(Link(task, row, io_type, ev.key or "", prod, ev.id))

    def _keyed(self, ev: MlmdEvent) -> bool:
        if ev.key:
            return True
        self.ledger.append(LedgerEntry(self.run_id, "event", ev.id, "no-path-key", "the event path has no key step"))
        return False

    def _input_kind(self, task: TaskNode, ev: MlmdEvent, row: ArtifactRow,
                    key_counts: dict[tuple[int, str], int]) -> tuple[int, dict[str, Any]]:
        parent = task.parent
        parent_name = parent.name if parent else task.name
        binding = _dict(_dict(_dict(task.task_spec).get("inputs")).get("artifacts")).get(ev.key or "")
        if isinstance(binding, dict) and "componentInputArtifact" in binding and parent is not None:
            name = binding["componentInputArtifact"]
            for link in self.links.get(parent, []):
                if link.key == name and link.artifact is row:
                    return COMPONENT_INPUT, dict(link.producer)
            return COMPONENT_INPUT, producer(parent_name)
        if isinstance(binding, dict) and "taskOutputArtifact" in binding and parent is not None:
            ref = binding["taskOutputArtifact"]
            source = self.sibling(task, ref.get("producerTask", ""))
            if source is None:
                return TASK_OUTPUT_INPUT, producer(ref.get("producerTask", parent_name))
            produced = [lk for lk in self.links[source] if lk.key == ref.get("outputArtifactKey")
                        and lk.type in (OUTPUT, ITERATOR_OUTPUT, ONE_OF_OUTPUT)]
            if any(lk.type == ITERATOR_OUTPUT for lk in produced):
                return COLLECTED_INPUTS, producer(source.name)
            for lk in produced:
                if lk.artifact is row:
                    return TASK_OUTPUT_INPUT, {k: v for k, v in lk.producer.items() if k == "taskName"}
            return TASK_OUTPUT_INPUT, producer(source.name)
        # Without a spec (or an unbound key): infer from MLMD alone (mapping.md §6).
        made_by = self._output_producer(row)
        beside = made_by  # S: the child of the consumer's parent that is, or contains, the producing task
        while beside is not None and beside.parent is not parent:
            beside = beside.parent
        if (key_counts.get((ev.execution_id, ev.key or ""), 0) > 1 or
                (beside is not None and (beside.type == LOOP or (beside is made_by and beside.iteration is not None)))):
            # a collection: a LOOP's outputs, a sibling's in the same iteration (v3), or several events;
            # its producer is S (after nested loops the outer loop, v3), never ROOT
            holder = beside or made_by
            return COLLECTED_INPUTS, producer(holder.name if holder is not None else parent_name)
        if parent is not None:
            for lk in self.links[parent]:  # the parent received it: a channel passed down unchanged
                if lk.artifact is row and lk.type in (COMPONENT_INPUT, TASK_OUTPUT_INPUT, COLLECTED_INPUTS,
                                                      RUNTIME_VALUE_INPUT):
                    return COMPONENT_INPUT, dict(lk.producer)
        if made_by is not None:
            if beside is not None and beside is not made_by:  # S's propagated link names its child
                for lk in self.links[beside]:
                    if lk.artifact is row and lk.event_id is None:
                        return TASK_OUTPUT_INPUT, {"taskName": lk.producer["taskName"]}
            return TASK_OUTPUT_INPUT, producer(made_by.name)
        return TASK_OUTPUT_INPUT, producer(parent_name)

    def _output_producer(self, row: ArtifactRow) -> TaskNode | None:
        """The task whose OUTPUT event made this artifact row (the first in tree order)."""
        if self._made_by is None:
            self._made_by = {}
            for task, links in self.links.items():
                for lk in links:
                    if lk.event_id is not None and lk.type in (OUTPUT, ITERATOR_OUTPUT):
                        self._made_by.setdefault(id(lk.artifact), task)
        return self._made_by.get(id(row))

    @staticmethod
    def sibling(task: TaskNode, name: str) -> TaskNode | None:
        """The sibling task `name`, preferring the same loop iteration."""
        if task.parent is None:
            return None
        candidates = [c for c in task.parent.children if c.name == name]
        same = [c for c in candidates if c.iteration == task.iteration]
        return same[0] if same else candidates[0] if candidates else None

    # --- parameters ----------------------------------------------------------------------
    def own_output_params(self) -> None:
        """RUNTIME SUCCEEDED/CACHED: one OUTPUT (in a loop ITERATOR_OUTPUT) entry per `outputs` key."""
        for task in self.root.walk():
            if task.type != RUNTIME or task.state not in (SUCCEEDED, CACHED):
                continue
            outputs = _dict(task.effective.props.get("outputs"))
            io_type = ITERATOR_OUTPUT if task.iteration is not None else OUTPUT
            for key, value in sorted(outputs.items()):
                task.output_params.append({"parameterKey": key, "producer": producer(task.name, task.iteration),
                                           "type": IO_TYPE_NAMES[io_type], "value": value})

    def propagate(self, has_spec: bool) -> None:
        """Propagated DAG outputs: walk each producing task's ancestors while they declare the output."""
        producers = sorted((t for t in self.root.walk() if _has_outputs(t)), key=lambda t: t.effective.id)
        for task in producers:
            for entry in list(task.output_params):
                self._walk(task, "parameters", entry["parameterKey"], entry["value"], None, has_spec)
            for link in [lk for lk in self.links[task] if lk.event_id is not None and lk.type in (OUTPUT, ITERATOR_OUTPUT)]:
                self._walk(task, "artifacts", link.key, None, link.artifact, has_spec)

    def _walk(self, task: TaskNode, kind: str, key: str, value: Any, row: ArtifactRow | None, has_spec: bool) -> None:
        self._propagate(task, key, _Below(1, OUTPUT, task.iteration), _Output(kind, value, row, has_spec))

    def _propagate(self, child: TaskNode, key: str, below: _Below, output: _Output) -> None:
        """One level up from `child`'s output `key`: every output of the parent that selects it, then on from
        each (`below`: level, type and producer iteration of the link below; level 1: T's own)."""
        ancestor = child.parent
        if ancestor is None:
            return
        for name in self._selectors(ancestor, output.kind, child.name, key, output.has_spec):
            io_type = self._propagated_type(ancestor, output.kind, name, below)
            # (v3) only an ITERATOR_OUTPUT link keeps the iteration of the link below it
            it = below.iteration if io_type == ITERATOR_OUTPUT else None
            prod = producer(child.name, it)
            if output.kind == "parameters":
                entry = {"parameterKey": name, "producer": prod, "type": IO_TYPE_NAMES[io_type], "value": output.value}
                if entry not in ancestor.output_params:
                    ancestor.output_params.append(entry)
            else:
                assert output.row is not None
                self._add_link(Link(ancestor, output.row, io_type, name, prod, None))
            self._propagate(ancestor, name, _Below(below.level + 1, io_type, it), output)

    @classmethod
    def _propagated_type(cls, ancestor: TaskNode, kind: str, name: str, below: _Below) -> int:
        """The IOType of `ancestor`'s propagated output `name`."""
        if ancestor.type == LOOP:  # a nested loop is DAG: OUTPUT at level 1 (v3)
            return ITERATOR_OUTPUT
        if ancestor.type == CONDITION_BRANCH and not cls._declared_list(ancestor, kind, name):
            return ONE_OF_OUTPUT
        return OUTPUT if below.level == 1 else below.type

    @staticmethod
    def _declared_list(task: TaskNode, kind: str, name: str) -> bool:
        outputs = _dict(_dict(_dict(task.component).get("outputDefinitions")).get(kind))
        decl = _dict(outputs.get(name))
        return decl.get("parameterType") == "LIST" if kind == "parameters" else bool(decl.get("isArtifactList"))

    @staticmethod
    def _dag_outputs(task: TaskNode, kind: str, has_spec: bool) -> dict[str, Any]:
        """The DAG's output selectors: the spec's `dag.outputs`, else MLMD's `*_producer_task` properties."""
        if has_spec:
            return _dict(_dict(_dict(_dict(task.component).get("dag")).get("outputs")).get(kind))
        props = task.effective.props
        out: dict[str, Any] = {}
        if kind == "parameters":
            for name, text in _dict(props.get("parameter_producer_task")).items():
                try:
                    out[name] = json.loads(text) if isinstance(text, str) else {}
                except ValueError:
                    continue
            return out
        try:
            raw = json.loads(props["artifact_producer_task"]) if isinstance(props.get("artifact_producer_task"), str) else {}
        except ValueError:
            raw = {}
        for name, spec in _dict(raw).items():  # Go encoding/json of the spec: snake_case keys
            out[name] = {"artifactSelectors": [
                {"producerSubtask": _dict(s).get("producer_subtask"), "outputArtifactKey": _dict(s).get("output_artifact_key")}
                for s in _dict(spec).get("artifact_selectors", []) or []]}
        return out

    @classmethod
    def _selectors(cls, task: TaskNode, kind: str, child: str, key: str, has_spec: bool) -> list[str]:
        """Output names of `task` whose selector names (child key, output key)."""
        names = []
        for name, spec in sorted(cls._dag_outputs(task, kind, has_spec).items()):
            spec = _dict(spec)
            if kind == "parameters":
                sels = ([spec["valueFromParameter"]] if "valueFromParameter" in spec
                        else _dict(spec.get("valueFromOneof")).get("parameterSelectors", []))
                key_field = "outputParameterKey"
            else:
                sels, key_field = spec.get("artifactSelectors", []) or [], "outputArtifactKey"
            if any(_dict(s).get("producerSubtask") == child and _dict(s).get(key_field) == key for s in sels):
                names.append(name)
        return names

    def input_params(self, has_spec: bool) -> None:
        """InputParameters, parents first (a COMPONENT_INPUT takes its producer from the parent's entry)."""
        for task in self.root.walk():
            inputs = _dict(task.effective.props.get("inputs"))
            if task.type == ROOT:
                task.input_params = [{"parameterKey": k, "producer": producer("ROOT"),
                                      "type": "RUNTIME_VALUE_INPUT", "value": v}
                                     for k, v in sorted(inputs.items()) if v is not None]
                continue
            parent = task.parent
            assert parent is not None
            bindings = _dict(_dict(_dict(task.task_spec).get("inputs")).get("parameters"))
            definitions = _dict(_dict(_dict(task.component).get("inputDefinitions")).get("parameters"))
            loop_item = item_input(task)
            entries = []
            for key, value in sorted(inputs.items()):
                if value is None or key == loop_item:
                    continue
                if _dict(definitions.get(key)).get("parameterType") == "TASK_CONFIG":
                    continue
                if has_spec and key not in bindings and "defaultValue" in _dict(definitions.get(key)):
                    # a default the driver recorded (a nested pipeline's DAG does): still the component's default
                    entries.append({"parameterKey": key, "producer": producer(parent.name, task.iteration),
                                    "type": "COMPONENT_DEFAULT_INPUT", "value": value})
                    continue
                io_type, prod, single = self._param_kind(task, key, bindings.get(key) if has_spec else None)
                if task.iteration is not None:
                    prod = {**prod, "iteration": str(task.iteration)}
                if single:
                    value = collected_one(value, _dict(definitions.get(key)).get("parameterType"))
                entries.append({"parameterKey": key, "producer": prod, "type": IO_TYPE_NAMES[io_type], "value": value})
            if has_spec:
                for key, definition in sorted(definitions.items()):
                    definition = _dict(definition)
                    if "defaultValue" in definition and key not in bindings and key not in inputs:
                        prod = producer(parent.name, task.iteration)
                        entries.append({"parameterKey": key, "producer": prod, "type": "COMPONENT_DEFAULT_INPUT",
                                        "value": definition["defaultValue"]})
            if task.loop and not has_spec:
                loop_item = loop_item_without_spec(task)
            if task.loop and loop_item:
                for index, iteration_execs in sorted(task.iterations.items()):
                    item = _dict(iteration_execs[-1].props.get("inputs")).get(loop_item)
                    entries.append({"parameterKey": loop_item, "producer": producer(task.name, index),
                                    "type": IO_TYPE_NAMES[ITERATOR_INPUT], "value": item})
            task.input_params = entries

    def _param_kind(self, task: TaskNode, key: str, binding: Any) -> tuple[int, dict[str, Any], bool]:
        """Type and producer of an input parameter, and whether it is one sibling's ITERATOR_OUTPUT value that
        the resolver collects into a one-element list (v3)."""
        parent = task.parent
        assert parent is not None
        binding = _dict(binding)
        if "componentInputParameter" in binding or not binding:
            name = binding.get("componentInputParameter", key)
            if parent.loop and name == item_input(parent):
                return COMPONENT_INPUT, producer(parent.name, task.iteration), False
            for entry in parent.input_params:
                if entry["parameterKey"] == name and entry["type"] != "ITERATOR_INPUT":
                    return COMPONENT_INPUT, {k: v for k, v in entry["producer"].items()}, False
            return COMPONENT_INPUT, producer(parent.name), False
        if "taskOutputParameter" in binding:
            ref = _dict(binding["taskOutputParameter"])
            source = self.sibling(task, ref.get("producerTask", ""))
            if source is None:
                return TASK_OUTPUT_INPUT, producer(ref.get("producerTask", parent.name)), False
            produced = [e for e in source.output_params if e["parameterKey"] == ref.get("outputParameterKey")]
            if produced and all(e["type"] == "ITERATOR_OUTPUT" for e in produced):
                # a loop's collection keeps MLMD's list; a task in the same iteration gives one value
                return COLLECTED_INPUTS, producer(source.name), source.type not in DAG_LIKE
            if produced:
                return TASK_OUTPUT_INPUT, {k: v for k, v in produced[0]["producer"].items() if k == "taskName"}, False
            return TASK_OUTPUT_INPUT, producer(source.name), False
        if "runtimeValue" in binding:
            return RUNTIME_VALUE_INPUT, producer(parent.name), False
        if "taskFinalStatus" in binding:
            return TASK_FINAL_STATUS_OUTPUT, producer(parent.name), False
        return COMPONENT_INPUT, producer(parent.name), False


_GO_HTML_ESCAPES = {"<": "\\u003c", ">": "\\u003e", "&": "\\u0026", "\u2028": "\\u2028", "\u2029": "\\u2029"}


def collected_one(value: Any, parameter_type: Any) -> Any:
    """The value the resolver gives a COLLECTED_INPUTS parameter fed by one ITERATOR_OUTPUT entry: the list
    `[value]`; for a STRING input that list's text as Go's `json.Marshal` writes it (`util.PBValueToText`:
    compact, `<`, `>`, `&` escaped), docs/mapping.md M21."""
    collected = [value]
    if parameter_type != "STRING":
        return collected
    text = dumps(collected)
    for char, escaped in _GO_HTML_ESCAPES.items():
        text = text.replace(char, escaped)
    return text

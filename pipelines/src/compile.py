"""Compile every pipeline in this directory to ../mlmd2kfp/sample/pipelines/<pipeline-name>.yaml
and write ../mlmd2kfp/sample/pipelines/INDEX.md, a structural summary of the compiled IR.

Run through ../compile.sh (which provides the pinned kfp venv).
"""
import importlib
import json
import os
import sys

import yaml
from kfp import compiler

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
# The compiled IR ships inside the package: `mlmd2kfp sample` writes runs of these specs.
OUT_DIR = os.path.join(os.path.dirname(ROOT), 'mlmd2kfp', 'sample', 'pipelines')

MODULES = [
    'training_pipeline',
    'control_flow_pipeline',
    'exit_handler_pipeline',
    'importer_pipeline',
    'loop_io_pipeline',
]


def compile_all():
    sys.path.insert(0, HERE)
    os.makedirs(OUT_DIR, exist_ok=True)
    names = []
    for module_name in MODULES:
        module = importlib.import_module(module_name)
        pipeline = module.PIPELINE
        name = pipeline.pipeline_spec.pipeline_info.name
        out = os.path.join(OUT_DIR, f'{name}.yaml')
        compiler.Compiler().compile(pipeline_func=pipeline, package_path=out)
        print(f'compiled {module_name} -> mlmd2kfp/sample/pipelines/{name}.yaml', flush=True)
        names.append((module_name, name))
    return names


# --------------------------------------------------------------------------
# INDEX.md generation
# --------------------------------------------------------------------------

def _j(value):
    """Compact, deterministic JSON rendering for table cells."""
    return json.dumps(value, sort_keys=True, separators=(', ', ': '))


def _code(text):
    return '`' + str(text).replace('|', '\\|') + '`'


def _describe_input(spec):
    """One input binding of a task -> short text naming its source."""
    if 'componentInputParameter' in spec:
        return f"componentInputParameter {spec['componentInputParameter']}"
    if 'componentInputArtifact' in spec:
        return f"componentInputArtifact {spec['componentInputArtifact']}"
    if 'taskOutputParameter' in spec:
        t = spec['taskOutputParameter']
        return f"taskOutputParameter {t['producerTask']}.{t['outputParameterKey']}"
    if 'taskOutputArtifact' in spec:
        t = spec['taskOutputArtifact']
        return f"taskOutputArtifact {t['producerTask']}.{t['outputArtifactKey']}"
    if 'runtimeValue' in spec:
        return f"runtimeValue.constant {_j(spec['runtimeValue'].get('constant'))}"
    if 'taskFinalStatus' in spec:
        return f"taskFinalStatus producerTask={spec['taskFinalStatus']['producerTask']}"
    return _j(spec)


def _describe_iterator(task):
    for key in ('parameterIterator', 'artifactIterator'):
        if key in task:
            it = task[key]
            items = it.get('items', {})
            if 'raw' in items:
                src = f"items.raw {items['raw']}"
            elif 'inputParameter' in items:
                src = f"items.inputParameter {items['inputParameter']}"
            elif 'inputArtifact' in items:
                src = f"items.inputArtifact {items['inputArtifact']}"
            else:
                src = _j(items)
            return f"{key}: itemInput={it.get('itemInput')}; {src}"
    return ''


def _executor_kind(executor):
    for kind in ('container', 'importer', 'resolver', 'customJob'):
        if kind in executor:
            return kind
    return '?'


def _component_kind(components, executors, comp_name):
    comp = components[comp_name]
    if 'dag' in comp:
        return 'dag'
    label = comp.get('executorLabel')
    return _executor_kind(executors.get(label, {}))


def _io_defs(defs):
    """inputDefinitions/outputDefinitions -> list of 'name: TYPE' strings."""
    out = []
    for name, p in sorted((defs or {}).get('parameters', {}).items()):
        extra = []
        if p.get('isOptional'):
            extra.append('optional')
        if 'defaultValue' in p:
            extra.append(f"default={_j(p['defaultValue'])}")
        suffix = f" ({', '.join(extra)})" if extra else ''
        out.append(f"param {name}: {p.get('parameterType')}{suffix}")
    for name, a in sorted((defs or {}).get('artifacts', {}).items()):
        t = a.get('artifactType', {}).get('schemaTitle')
        lst = ' (isArtifactList)' if a.get('isArtifactList') else ''
        out.append(f"artifact {name}: {t}{lst}")
    return out


def _dag_section(lines, title, dag, components, executors):
    lines.append(f'#### {title}')
    lines.append('')
    tasks = dag.get('tasks', {})
    lines.append('Task keys: ' + ', '.join(_code(k) for k in sorted(tasks)))
    lines.append('')
    lines.append('| task key | taskInfo.name | componentRef | kind | dependentTasks '
                 '| iterator | iteratorPolicy | triggerPolicy | retryPolicy '
                 '| cachingOptions |')
    lines.append('|---|---|---|---|---|---|---|---|---|---|')
    for key in sorted(tasks):
        t = tasks[key]
        comp = t['componentRef']['name']
        kind = _component_kind(components, executors, comp)
        trig = t.get('triggerPolicy', {})
        trig_parts = []
        if 'condition' in trig:
            trig_parts.append('condition: ' + _code(trig['condition']))
        if 'strategy' in trig:
            trig_parts.append('strategy: ' + _code(trig['strategy']))
        cells = [
            _code(key),
            _code(t.get('taskInfo', {}).get('name', '')),
            _code(comp),
            kind,
            ', '.join(_code(d) for d in t.get('dependentTasks', [])),
            _code(_describe_iterator(t)) if _describe_iterator(t) else '',
            _code(_j(t['iteratorPolicy'])) if 'iteratorPolicy' in t else '',
            '<br>'.join(trig_parts),
            _code(_j(t['retryPolicy'])) if 'retryPolicy' in t else '',
            _code(_j(t['cachingOptions'])) if 'cachingOptions' in t else '(none)',
        ]
        lines.append('| ' + ' | '.join(cells) + ' |')
    lines.append('')
    lines.append('Task input bindings:')
    lines.append('')
    for key in sorted(tasks):
        inputs = tasks[key].get('inputs', {})
        binds = []
        for section in ('parameters', 'artifacts'):
            for name, spec in sorted(inputs.get(section, {}).items()):
                binds.append(f'{name} <- {_describe_input(spec)}')
        if binds:
            lines.append(f'- {_code(key)}: ' + '; '.join(_code(b) for b in binds))
        else:
            lines.append(f'- {_code(key)}: (no inputs)')
    lines.append('')
    outputs = dag.get('outputs')
    if outputs:
        lines.append('`dag.outputs`:')
        lines.append('')
        for name, spec in sorted(outputs.get('parameters', {}).items()):
            if 'valueFromParameter' in spec:
                v = spec['valueFromParameter']
                sel = (f"valueFromParameter producerSubtask={v['producerSubtask']} "
                       f"outputParameterKey={v['outputParameterKey']}")
            else:
                sel = _j(spec)
            lines.append(f'- parameter {_code(name)}: {_code(sel)}')
        for name, spec in sorted(outputs.get('artifacts', {}).items()):
            sels = [f"producerSubtask={s['producerSubtask']} "
                    f"outputArtifactKey={s['outputArtifactKey']}"
                    for s in spec.get('artifactSelectors', [])]
            lines.append(f'- artifact {_code(name)}: artifactSelectors '
                         + ', '.join(_code(s) for s in sels))
        lines.append('')
    else:
        lines.append('`dag.outputs`: (none)')
        lines.append('')


def _pipeline_section(lines, module_name, name):
    path = os.path.join(OUT_DIR, f'{name}.yaml')
    with open(path) as f:
        docs = list(yaml.safe_load_all(f))
    spec = docs[0]
    platform = docs[1] if len(docs) > 1 else None
    components = spec.get('components', {})
    executors = spec.get('deploymentSpec', {}).get('executors', {})

    lines.append(f'## `{name}`')
    lines.append('')
    lines.append(f'- Source: `src/{module_name}.py`; compiled: `mlmd2kfp/sample/pipelines/{name}.yaml`')
    lines.append(f"- schemaVersion {spec.get('schemaVersion')}, sdkVersion {spec.get('sdkVersion')}")
    lines.append(f'- YAML documents: {len(docs)}'
                 + (' (document 2 is the PlatformSpec; use `yaml.safe_load_all`)'
                    if platform else ''))
    root_inputs = _io_defs(spec['root'].get('inputDefinitions'))
    lines.append('- Pipeline inputs (root.inputDefinitions): '
                 + (', '.join(_code(x) for x in root_inputs) or '(none)'))
    if platform:
        lines.append('- PlatformSpec: ' + _code(_j(platform)))
    lines.append('')

    lines.append('### DAGs')
    lines.append('')
    _dag_section(lines, '`root`', spec['root']['dag'], components, executors)
    for comp_name in sorted(components):
        comp = components[comp_name]
        if 'dag' in comp:
            _dag_section(lines, f'`{comp_name}`', comp['dag'], components, executors)

    lines.append('### Components')
    lines.append('')
    lines.append('| component | kind | executorLabel | inputDefinitions | outputDefinitions |')
    lines.append('|---|---|---|---|---|')
    for comp_name in sorted(components):
        comp = components[comp_name]
        kind = _component_kind(components, executors, comp_name)
        lines.append('| ' + ' | '.join([
            _code(comp_name), kind, _code(comp.get('executorLabel', '')) if 'executorLabel' in comp else '',
            '<br>'.join(_code(x) for x in _io_defs(comp.get('inputDefinitions'))),
            '<br>'.join(_code(x) for x in _io_defs(comp.get('outputDefinitions'))),
        ]) + ' |')
    lines.append('')

    lines.append('### Executors (deploymentSpec)')
    lines.append('')
    lines.append('| executor | kind | details |')
    lines.append('|---|---|---|')
    for label in sorted(executors):
        ex = executors[label]
        kind = _executor_kind(ex)
        if kind == 'container':
            c = ex['container']
            details = (f"image {_code(c.get('image'))}; "
                       f"function_to_execute {_code(c.get('args', [None] * 4)[3])}")
        elif kind == 'importer':
            imp = ex['importer']
            details = '; '.join([
                f"artifactUri {_code(_j(imp.get('artifactUri')))}",
                f"typeSchema {_code(imp.get('typeSchema', {}).get('schemaTitle'))}",
                f"reimport {_code(_j(imp.get('reimport', False)))}"
                + ('' if 'reimport' in imp else ' (field absent)'),
                f"downloadToWorkspace {_code(_j(imp.get('downloadToWorkspace', False)))}"
                + ('' if 'downloadToWorkspace' in imp else ' (field absent)'),
                f"metadata {_code(_j(imp.get('metadata')))}"
                + ('' if 'metadata' in imp else ' (field absent)'),
            ])
        else:
            details = _code(_j(ex))
        lines.append(f'| {_code(label)} | {kind} | {details} |')
    lines.append('')


HEADER = """# Compiled pipeline index

Generated by `src/compile.py` from the compiled IR in this directory; do not
edit by hand (run `../compile.sh`). It summarises, for each pipeline, every
DAG (the root DAG and each component that has a `dag`), its task keys and the
per-task fields a KFP runtime simulator needs.

Notes that hold for all pipelines:

- A task key (key in `dag.tasks`) is what `producerTask`, `producerSubtask`,
  `dependentTasks` and `taskFinalStatus.producerTask` refer to. `taskInfo.name`
  usually equals the key, except where a group was given a `name=`
  (`exit-handler-1` -> `cleanup-handler`, `condition-2` -> `large-item`).
- Group tasks (`for-loop-N`, `condition-N`, `condition-branches-N`,
  `exit-handler-N`) have no `cachingOptions`; container/importer tasks and the
  nested-pipeline task have `{"enableCache": true}` (caching left at default).
- Integer/float pipeline defaults are serialised as protobuf Values, i.e.
  doubles (`100.0`, `[1.0, 2.0, 3.0]`).
- Loop items reach the loop-body DAG as the component input named by
  `itemInput`. A loop over a `List[int]` pipeline parameter types the item
  `NUMBER_INTEGER` (condition text uses `int(...)`), a bare `list` parameter
  or a raw list types it `STRING`.
- `dsl.Collected` becomes `dag.outputs` on the loop DAG (parameter ->
  `valueFromParameter`, output typed `LIST`; artifact -> `artifactSelectors`,
  output `isArtifactList: true`) consumed at the parent via
  `taskOutputParameter`/`taskOutputArtifact` on the `for-loop-N` task.
- "kind" is `container` / `importer` for executor components (from
  `deploymentSpec.executors[executorLabel]`) and `dag` for DAG components.
"""


def write_index(names):
    lines = HEADER.rstrip('\n').split('\n') + ['']
    for module_name, name in names:
        _pipeline_section(lines, module_name, name)
    text = '\n'.join(lines).rstrip('\n') + '\n'
    with open(os.path.join(OUT_DIR, 'INDEX.md'), 'w') as f:
        f.write(text)
    print('wrote mlmd2kfp/sample/pipelines/INDEX.md')


def main() -> None:
    write_index(compile_all())


if __name__ == '__main__':
    main()

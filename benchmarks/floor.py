"""The floor: the same target rows, precomputed, loaded with each backend's fastest bulk path
(`LOAD DATA LOCAL INFILE` on MariaDB/MySQL, `COPY` on PostgreSQL, one `executemany` on SQLite) into the
same schema with the same indexes and keys."""

from __future__ import annotations

import os
import tempfile
import time
from typing import Any

from sqlalchemy import create_engine, text

from mlmd2kfp.dialects import dialect_for
from mlmd2kfp.target.legacy import RUN_DETAILS
from mlmd2kfp.target.schema import ARTIFACT_TASKS, ARTIFACTS, TASKS, render_create

TABLES = (ARTIFACTS, TASKS, ARTIFACT_TASKS)


def export_rows(kfp_url: str) -> dict[str, tuple[list[str], list[tuple[Any, ...]]]]:
    """The migrated rows of the three tables (tasks parents first), and run_details."""
    engine = create_engine(kfp_url)
    out: dict[str, tuple[list[str], list[tuple[Any, ...]]]] = {}
    with engine.connect() as conn:
        d = dialect_for(conn)
        for spec in (RUN_DETAILS, *TABLES):
            cols = [c.name for c in spec.columns]
            order = f" ORDER BY LENGTH({d.q('ScopePath')})" if spec.name == "tasks" else ""
            # JSON columns as stored text (PostgreSQL would hand back the JSON `null` literal as None).
            exprs = [f"CAST({d.q(c.name)} AS TEXT)" if c.kind == "json" and d.name == "postgresql" else d.q(c.name)
                     for c in spec.columns]
            rows = conn.execute(text(f"SELECT {', '.join(exprs)} FROM {d.q(spec.name)}{order}")).all()
            out[spec.name] = (cols, [tuple(_plain(v) for v in r) for r in rows])
    engine.dispose()
    return out


def _plain(v: Any) -> Any:
    import json

    return json.dumps(v, separators=(",", ":")) if isinstance(v, (dict, list)) else v


def prepare(url: str, rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> None:
    """`run_details` with its rows and the three empty target tables (T§1.8 DDL, keys and indexes)."""
    engine = create_engine(url)
    with engine.begin() as conn:
        d = dialect_for(conn)
        for stmt in render_create(RUN_DETAILS, d):
            conn.exec_driver_sql(stmt)
        cols, data = rows["run_details"]
        conn.execute(text(f"INSERT INTO run_details ({', '.join(d.q(c) for c in cols)}) VALUES "
                          f"({', '.join(':p' + str(i) for i in range(len(cols)))})"),
                     [{f"p{i}": v for i, v in enumerate(r)} for r in data])
        for spec in TABLES:
            for stmt in render_create(spec, d):
                conn.exec_driver_sql(stmt)
    engine.dispose()


def load_floor(url: str, rows: dict[str, tuple[list[str], list[tuple[Any, ...]]]]) -> dict[str, Any]:
    """Prepare (untimed), then time the bulk load of the three tables."""
    prepare(url, rows)
    connect_args = {"local_infile": True} if url.startswith("mysql") else {}
    engine = create_engine(url, connect_args=connect_args)
    total_rows = sum(len(rows[s.name][1]) for s in TABLES)
    start = time.monotonic()
    if engine.dialect.name == "mysql":
        _load_mysql(engine, rows)
    elif engine.dialect.name == "postgresql":
        _load_pg(engine, rows)
    else:
        _load_sqlite(engine, rows)
    seconds = time.monotonic() - start
    with engine.connect() as conn:
        counts = {s.name: conn.execute(text(f"SELECT COUNT(*) FROM {dialect_for(conn).q(s.name)}")).scalar()
                  for s in TABLES}
    engine.dispose()
    return {"seconds": round(seconds, 3), "rows": total_rows, "rows_per_second": round(total_rows / seconds),
            "counts": counts}


def _load_mysql(engine: Any, rows: dict[str, Any]) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        with tempfile.TemporaryDirectory() as tmp:
            for spec in TABLES:
                cols, data = rows[spec.name]
                path = os.path.join(tmp, f"{spec.name}.tsv")
                with open(path, "w", encoding="utf-8", newline="") as f:
                    for r in data:
                        f.write("\t".join("\\N" if v is None else str(v).replace("\\", "\\\\").replace("\t", "\\t")
                                          .replace("\n", "\\n") for v in r) + "\n")
                cur.execute(f"LOAD DATA LOCAL INFILE '{path}' INTO TABLE `{spec.name}` CHARACTER SET utf8mb4 "
                            f"FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' ({', '.join(f'`{c}`' for c in cols)})")
        raw.commit()
    finally:
        raw.close()


def _load_pg(engine: Any, rows: dict[str, Any]) -> None:
    raw = engine.raw_connection()
    try:
        cur = raw.cursor()
        for spec in TABLES:
            cols, data = rows[spec.name]
            with cur.copy(f'COPY "{spec.name}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) FROM STDIN') as copy:
                for r in data:
                    copy.write_row(r)
        raw.commit()
    finally:
        raw.close()


def _load_sqlite(engine: Any, rows: dict[str, Any]) -> None:
    from mlmd2kfp.db import SQLITE_CACHE_PAGES

    with engine.begin() as conn:
        conn.exec_driver_sql(f"PRAGMA cache_size={SQLITE_CACHE_PAGES}")  # the page cache migrate uses
        for spec in TABLES:
            cols, data = rows[spec.name]
            conn.exec_driver_sql(f'INSERT INTO "{spec.name}" ({", ".join(chr(34) + c + chr(34) for c in cols)}) '
                                 f'VALUES ({", ".join("?" for _ in cols)})', data)


"""Everything that differs between the backends, chosen once by dialect name (STYLE.md point 4).

Generic code asks a `Dialect` for capabilities and small SQL pieces; only this module holds
backend-specific SQL.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from sqlalchemy import text
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Dialect:
    """Capabilities and SQL builders of one backend."""

    name: str
    """`mysql`, `postgresql` or `sqlite` (MariaDB is `mysql` with `mariadb=True`)."""
    quote: str
    """Identifier quote character."""
    inline_indexes: bool
    """Indexes are declared inside CREATE TABLE (MySQL) rather than as separate statements."""
    transactional_ddl: bool
    """DDL can be rolled back with the transaction (PostgreSQL, SQLite)."""
    max_bind_params: int
    """Upper bound of bind parameters in one statement."""
    mariadb: bool = False
    """MariaDB stores `json` as LONGTEXT with a `json_valid` CHECK."""
    lower_case_mlmd: bool = False
    """ml-metadata creates its tables unquoted on PostgreSQL, so their names are lower-case there."""
    array_parameters: bool = False
    """One array parameter (`= ANY(:ids)`) costs less than a long IN list (PostgreSQL)."""
    native_booleans: bool = False
    """Boolean columns take only booleans, not 0/1 (PostgreSQL)."""
    typed_columns: bool = True
    """A column holds only values of its declared type (SQLite stores any value in any column)."""
    has_md5: bool = True
    """The server has `MD5()` (SQLite has not)."""
    ddl_default_null: bool = False
    """GORM's MySQL DDL spells out `DEFAULT NULL` on nullable columns that have no default."""

    def q(self, identifier: str) -> str:
        """Quote one identifier."""
        return f"{self.quote}{identifier}{self.quote}"

    @property
    def label(self) -> str:
        """How reports name the backend (`mysql/mariadb` for MariaDB)."""
        return self.name + ("/mariadb" if self.mariadb else "")

    def mlmd_name(self, name: str) -> str:
        """The physical name of MLMD table `name` (as ml-metadata's C++ code spells it)."""
        return name.lower() if self.lower_case_mlmd else name

    def mlmd_table(self, name: str) -> str:
        """MLMD table `name` as it is written in raw SQL."""
        return self.mlmd_name(name) if self.lower_case_mlmd else self.q(name)

    def catalog_type(self, reflected: str) -> str:
        """A reflected column type's name (SQLAlchemy's, lower-case) in the spelling of `column_type`."""
        return _CATALOG_TYPES[self.name].get(reflected, _CATALOG_TYPES["*"].get(reflected, reflected))

    def column_type(self, kind: str) -> str:
        """The DDL type for a logical column kind (see `target.schema.Column.kind`)."""
        if kind.startswith("varchar("):
            return kind
        return _TYPES[self.name][kind]


# Logical kinds → the type GORM's dialectors emit (kfp-native-schema.md §1.8, §1.9).
_TYPES: dict[str, dict[str, str]] = {
    "mysql": {"int32": "int", "int64": "bigint", "text": "text", "json": "json", "double": "double",
              "longtext": "longtext", "string": "varchar(255)"},
    "postgresql": {"int32": "integer", "int64": "bigint", "text": "text", "json": "json", "double": "decimal",
                   "longtext": "text", "string": "text"},
    "sqlite": {"int32": "integer", "int64": "integer", "text": "text", "json": "json", "double": "real",
               "longtext": "text", "string": "text"},
}

# SQLAlchemy's reflected type names → the spelling of `_TYPES`.
_CATALOG_TYPES: dict[str, dict[str, str]] = {
    "*": {"biginteger": "bigint", "double_precision": "double", "numeric": "decimal"},
    "mysql": {"integer": "int"},
    "postgresql": {"int": "integer"},
    "sqlite": {"int": "integer", "float": "real"},
}

_DIALECTS = {
    "mysql": Dialect("mysql", "`", inline_indexes=True, transactional_ddl=False, max_bind_params=65535,
                     ddl_default_null=True),
    "postgresql": Dialect("postgresql", '"', inline_indexes=False, transactional_ddl=True, max_bind_params=65535,
                          lower_case_mlmd=True, array_parameters=True, native_booleans=True),
    "sqlite": Dialect("sqlite", '"', inline_indexes=False, transactional_ddl=True, max_bind_params=32766,
                      typed_columns=False, has_md5=False),
}


def dialect_for(conn: Connection) -> Dialect:
    """The `Dialect` of a live connection (MariaDB detected from the server)."""
    name = conn.dialect.name
    if name == "mariadb":
        name = "mysql"
    base = _DIALECTS[name]
    if name == "mysql" and getattr(conn.dialect, "is_mariadb", False):
        return Dialect(**{**base.__dict__, "mariadb": True})
    return base


def dialect_named(name: str) -> Dialect:
    """The `Dialect` for a name, without a server (compile-only use)."""
    return _DIALECTS["mysql" if name == "mariadb" else name]


@dataclass(frozen=True)
class IndexInfo:
    """One index as the catalog reports it."""

    name: str
    unique: bool
    columns: tuple[tuple[str, bool], ...]
    """(column, descending) in index order."""


def read_indexes(conn: Connection, d: Dialect, table: str) -> list[IndexInfo]:
    """Every secondary index of `table`, with column order and sort direction.

    SQLAlchemy's inspector does not report DESC columns on MySQL or SQLite, and
    `idx_task_cache_lookup` has one, so each backend's catalog is read directly.
    """
    rows: list[tuple[str, bool, int, str, bool]] = []
    if d.name == "mysql":
        result = conn.execute(
            text(
                "SELECT INDEX_NAME, NON_UNIQUE, SEQ_IN_INDEX, COLUMN_NAME, COLLATION "
                "FROM information_schema.STATISTICS "
                "WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = :t AND INDEX_NAME <> 'PRIMARY'"
            ),
            {"t": table},
        )
        rows = [(r[0], not int(r[1]), int(r[2]), r[3], r[4] == "D") for r in result]
    elif d.name == "postgresql":
        result = conn.execute(
            text(
                "SELECT i.relname, ix.indisunique, k.ord, a.attname, "
                "       (ix.indoption[k.ord - 1] & 1) = 1 "
                "FROM pg_index ix "
                "JOIN pg_class t ON t.oid = ix.indrelid "
                "JOIN pg_class i ON i.oid = ix.indexrelid "
                "JOIN pg_namespace n ON n.oid = t.relnamespace "
                "CROSS JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, ord) "
                "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
                "WHERE t.relname = :t AND n.nspname = current_schema() AND NOT ix.indisprimary"
            ),
            {"t": table},
        )
        rows = [(r[0], bool(r[1]), int(r[2]), r[3], bool(r[4])) for r in result]
    else:
        for name, unique, origin in (
            (r[1], bool(r[2]), r[3])
            for r in conn.exec_driver_sql(f"PRAGMA index_list({d.q(table)})")
        ):
            if origin == "pk":
                continue
            for seq, _cid, col, desc, _coll, key in (
                tuple(x) for x in conn.exec_driver_sql(f"PRAGMA index_xinfo({d.q(name)})")
            ):
                if key:
                    rows.append((name, unique, int(seq), col, bool(desc)))
    grouped: dict[str, tuple[bool, list[tuple[int, str, bool]]]] = {}
    for name, unique, seq, col, desc in rows:
        grouped.setdefault(name, (unique, []))[1].append((seq, col, desc))
    return [
        IndexInfo(name, unique, tuple((c, desc) for _, c, desc in sorted(cols)))
        for name, (unique, cols) in sorted(grouped.items())
    ]


def json_checked_columns(conn: Connection, d: Dialect, table: str) -> set[str]:
    """Columns of `table` that MariaDB guards with a `json_valid` CHECK (its JSON type)."""
    if not d.mariadb:
        return set()
    result = conn.execute(
        text(
            "SELECT CHECK_CLAUSE FROM information_schema.CHECK_CONSTRAINTS "
            "WHERE CONSTRAINT_SCHEMA = DATABASE() AND TABLE_NAME = :t"
        ),
        {"t": table},
    )
    found = set()
    for (clause,) in result:
        body = str(clause).replace("`", "").replace(" ", "")
        if body.startswith("json_valid(") and body.endswith(")"):
            found.add(body[len("json_valid("):-1])
    return found


# --- writes ------------------------------------------------------------------------------------

LOCK_NAME = "mlmd2kfp.migrate"
PG_LOCK_KEY = 0x6D6C6D64326B6670  # "mlmd2kfp"; PostgreSQL advisory locks are per database already


def lock_name(database: str | None) -> str:
    """MySQL's `GET_LOCK` names are server-wide: one name per KFP database (at most 64 characters), so two
    KFP databases on one server never block each other."""
    name = f"{LOCK_NAME}.{database or ''}"
    if len(name) <= 64:
        return name
    import hashlib

    return f"{LOCK_NAME}.{hashlib.sha256((database or '').encode()).hexdigest()[:40]}"


def _quoted(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "''") + "'"


def try_lock_sql(d: Dialect, database: str | None = None) -> str | None:
    """SQL that takes the migration lock without waiting and returns 1 when taken (None: no SQL lock)."""
    if d.name == "mysql":
        return f"SELECT GET_LOCK({_quoted(lock_name(database))}, 0)"
    if d.name == "postgresql":
        return f"SELECT CASE WHEN pg_try_advisory_lock({PG_LOCK_KEY}) THEN 1 ELSE 0 END"
    return None


def holds_lock_sql(d: Dialect, database: str | None = None) -> str | None:
    """SQL run on the lock's own connection that returns 1 while it still holds the lock (and, being a
    query, keeps the idle connection from the server's `wait_timeout`)."""
    if d.name == "mysql":
        return f"SELECT CASE WHEN IS_USED_LOCK({_quoted(lock_name(database))}) = CONNECTION_ID() THEN 1 ELSE 0 END"
    if d.name == "postgresql":
        key = PG_LOCK_KEY
        return (f"SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() AND "
                f"granted AND classid = {(key >> 32) & 0xFFFFFFFF} AND objid = {key & 0xFFFFFFFF}")
    return None


def unlock_sql(d: Dialect, database: str | None = None) -> str | None:
    """SQL that releases the lock taken by `try_lock_sql`."""
    if d.name == "mysql":
        return f"SELECT RELEASE_LOCK({_quoted(lock_name(database))})"
    if d.name == "postgresql":
        return f"SELECT pg_advisory_unlock({PG_LOCK_KEY})"
    return None


def upsert(d: Dialect, table: Any, key: str, columns: list[str]) -> Any:
    """An INSERT that updates `columns` when a row with the same primary key exists.

    MySQL's `ON DUPLICATE KEY UPDATE` is only used on tables whose one secondary unique key cannot
    fire for the rows written (mapping.md §2: migrated artifacts keep IdentityKey NULL).
    """
    if d.name == "mysql":
        from sqlalchemy.dialects.mysql import insert as mysql_insert

        mysql_stmt = mysql_insert(table)
        return mysql_stmt.on_duplicate_key_update({c: mysql_stmt.inserted[c] for c in columns})
    if d.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg_stmt = pg_insert(table)
        return pg_stmt.on_conflict_do_update(index_elements=[key], set_={c: pg_stmt.excluded[c] for c in columns})
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    stmt = sqlite_insert(table)
    return stmt.on_conflict_do_update(index_elements=[key], set_={c: stmt.excluded[c] for c in columns})


SQLITE_ROW_HASH, SQLITE_HASH_SUM = "mlmd2kfp_row_hash", "mlmd2kfp_hash_sum"
"""The functions `prepare_row_hashes` gives a SQLite connection (it has no hash function, and its SUM
overflows)."""
SQLITE_MD5_ROW_HASH = "mlmd2kfp_row_md5"
"""SQLite's row hash before issue #30 (the PostgreSQL recipe, five times slower in Python): what a digest
recorded then is checked with."""
SQLITE_SHA256 = "mlmd2kfp_sha256"
"""SQLite's `text_sha256_sql` (added by `prepare_row_hashes`)."""


def row_hash_sql(d: Dialect, columns: list[str], alias: str = "") -> str:
    """A row's 64-bit hash, computed by the server: each column's text hashed on its own (`-` for NULL, so
    NULL is not ''; no string grows with the row, which MySQL would turn into NULL past
    `max_allowed_packet`), the hex hashes joined by ',', hashed again, the first 64 bits taken: SHA-256 on
    MySQL (MD5 may be off there: FIPS mode, MySQL 9.6), MD5 on PostgreSQL and SQLite. Signed on PostgreSQL
    and SQLite, unsigned on MySQL; the text of a value is the server's, so hashes are compared on one
    backend only. Call `prepare_row_hashes` on the connection first."""
    return row_hash_of(d, [f"{alias}.{d.q(c)}" if alias else d.q(c) for c in columns])


def row_hash_of(d: Dialect, values: list[str], md5_on_sqlite: bool = False) -> str:
    """`row_hash_sql` over SQL expressions (columns of several tables of a join). SQLite hashes the `repr` of
    the row's values (Python's text of each, NULL apart from '') with BLAKE2b (`md5_on_sqlite`: the MD5 recipe
    of PostgreSQL, as before issue #30)."""
    if d.name == "mysql":
        parts = ", ".join(f"IFNULL(SHA2({v}, 256), '-')" for v in values)
        return f"CAST(CONV(LEFT(SHA2(CONCAT_WS(',', {parts}), 256), 16), 16, 10) AS UNSIGNED)"
    if d.name == "postgresql":
        parts = ", ".join(f"COALESCE(md5({v}::text), '-')" for v in values)
        return f"('x' || left(md5(concat_ws(',', {parts})), 16))::bit(64)::bigint::numeric"
    return f"{SQLITE_MD5_ROW_HASH if md5_on_sqlite else SQLITE_ROW_HASH}({', '.join(values)})"


def text_sha256_sql(d: Dialect, expr: str) -> str:
    """The SHA-256 of a text's UTF-8 bytes as lowercase hex, computed by the server (NULL hashed as ''): what
    `hashlib.sha256(text.encode()).hexdigest()` gives for it, without shipping the text. Ask
    `can_hash_texts` on the connection first."""
    value = f"COALESCE({expr}, '')"
    if d.name == "mysql":
        return f"SHA2(CONVERT({value} USING utf8mb4), 256)"
    if d.name == "postgresql":
        return f"encode(sha256(convert_to({value}, 'UTF8')), 'hex')"
    return f"{SQLITE_SHA256}({value})"


def hash_sum_sql(d: Dialect, row_hash: str) -> str:
    """The exact sum of `row_hash` over a table or a group (0 for none): what a keyed set of rows hashes to
    in whatever order the server reads it. Read it with `int()` (a Decimal, or text from SQLite)."""
    if d.name == "sqlite":
        return f"{SQLITE_HASH_SUM}({row_hash})"
    return f"COALESCE(SUM({row_hash}), 0)"


def can_hash_texts(conn: Connection) -> bool:
    """Whether this connection can compute `text_sha256_sql`: `prepare_row_hashes`, and on PostgreSQL a server
    of version 11 or later (`sha256()`)."""
    if dialect_for(conn).name == "postgresql":
        return int(conn.exec_driver_sql("SHOW server_version_num").scalar() or 0) >= 110000
    return prepare_row_hashes(conn)


def prepare_row_hashes(conn: Connection) -> bool:
    """Whether this connection can compute `row_hash_sql`: on SQLite after adding the two functions it uses;
    on MySQL if `SHA2` answers (a server without it, or with it switched off, returns NULL or fails)."""
    d = dialect_for(conn)
    if d.name == "sqlite":
        raw: Any = conn.connection.driver_connection
        raw.create_function(SQLITE_ROW_HASH, -1, _row_repr_64, deterministic=True)
        raw.create_function(SQLITE_MD5_ROW_HASH, -1, _row_md5_64, deterministic=True)
        raw.create_aggregate(SQLITE_HASH_SUM, 1, _HashSum)
        raw.create_function(SQLITE_SHA256, 1, _sha256_hex, deterministic=True)
        return True
    if d.name == "mysql":
        try:
            return conn.exec_driver_sql("SELECT SHA2('mlmd2kfp', 256)").scalar() is not None
        except Exception:  # noqa: BLE001 - a failed SELECT leaves a MySQL transaction as it was
            return False
    return True


def _row_repr_64(*values: Any) -> int:
    """SQLite's `row_hash_sql`: the first 64 bits (signed) of BLAKE2b over the `repr` of the row's values."""
    text = repr(values).encode("utf-8", "surrogatepass")
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big", signed=True)


def _sha256_hex(value: Any) -> str:
    """SQLite's `text_sha256_sql`."""
    return hashlib.sha256(_sqlite_text(value)).hexdigest()


def _row_md5_64(*values: Any) -> int:
    """SQLite's `row_hash_sql`, the PostgreSQL recipe over Python's text of each value."""
    parts = ",".join("-" if v is None else hashlib.md5(_sqlite_text(v)).hexdigest() for v in values)
    return int.from_bytes(hashlib.md5(parts.encode()).digest()[:8], "big", signed=True)


def _sqlite_text(value: Any) -> bytes:
    if isinstance(value, bytes):
        return value
    if isinstance(value, float):
        return repr(value).encode()
    return str(value).encode("utf-8", "surrogatepass")


class _HashSum:
    """SQLite aggregate: the exact sum of 64-bit hashes, as text (SQLite's own integers would overflow)."""

    def __init__(self) -> None:
        self.total = 0

    def step(self, value: int | None) -> None:
        self.total += int(value or 0)

    def finalize(self) -> str:
        return str(self.total)


def digest_prefix(d: Dialect, md5_on_sqlite: bool = False) -> str:
    """How a table digest (a sum of `row_hash_of` over its rows) begins: `rowsum2:` on SQLite since issue #30 (its faster row
    hash), `rowsum1:` elsewhere and for SQLite's MD5 recipe (`md5_on_sqlite`)."""
    return "rowsum2:" if d.name == "sqlite" and not md5_on_sqlite else "rowsum1:"


def rename_statements(d: Dialect, renames: list[tuple[str, str]]) -> list[str]:
    """Rename tables; on MySQL one atomic `RENAME TABLE` (DDL auto-commits there)."""
    if d.name == "mysql":
        return ["RENAME TABLE " + ", ".join(f"{d.q(a)} TO {d.q(b)}" for a, b in renames)]
    return [f"ALTER TABLE {d.q(a)} RENAME TO {d.q(b)}" for a, b in renames]


def holds_nul_sql(d: Dialect, column: str) -> str | None:
    """A condition true where text `column` holds a NUL character; None where the server cannot store
    one (PostgreSQL)."""
    if d.name == "mysql":  # bytes, not the collation (which ignores control characters)
        return f"INSTR(CAST({column} AS BINARY), X'00') > 0"
    if d.name == "sqlite":  # text functions stop at a NUL: compare the bytes
        return f"INSTR(CAST({column} AS BLOB), X'00') > 0"
    return None


def can_add_foreign_key(d: Dialect) -> bool:
    """SQLite cannot add a constraint to an existing table."""
    return d.name != "sqlite"


def add_checked_foreign_key(d: Dialect, table: str, name: str, column: str, ref_table: str,
                            ref_column: str) -> tuple[list[str], list[str]]:
    """The statements that add a foreign key whose rows the caller has just checked, without copying the table
    (issue #29), and the statements that must run afterwards whatever happened (restore the session).

    MySQL and MariaDB rebuild the whole table (ALGORITHM=COPY) to add a foreign key while `foreign_key_checks`
    is on, and add it in place, with no scan, while it is off for the session. PostgreSQL adds it `NOT VALID`
    (no scan, a short lock) and `VALIDATE CONSTRAINT` then scans without blocking reads or writes."""
    add = (f"ALTER TABLE {d.q(table)} ADD CONSTRAINT {d.q(name)} FOREIGN KEY ({d.q(column)}) "
           f"REFERENCES {d.q(ref_table)}({d.q(ref_column)})")
    if d.name == "mysql":
        return ["SET SESSION foreign_key_checks = 0", add], ["SET SESSION foreign_key_checks = 1"]
    if d.name == "postgresql":
        return [f"{add} NOT VALID", f"ALTER TABLE {d.q(table)} VALIDATE CONSTRAINT {d.q(name)}"], []
    return [add], []


_TRANSIENT_MYSQL = {1205, 1213, 2006, 2013, 2003, 1040, 1317}
_TRANSIENT_PG_PREFIXES = ("40001", "40P01", "08", "57P01", "57P02", "57P03", "53300")


def is_transient(exc: BaseException) -> bool:
    """Lost connection, deadlock, lock-wait timeout, serialization failure: worth a retry."""
    orig = getattr(exc, "orig", exc)
    code = getattr(orig, "args", [None])[0] if orig is not None else None
    if isinstance(code, int) and code in _TRANSIENT_MYSQL:
        return True
    sqlstate = getattr(orig, "sqlstate", None) or getattr(getattr(orig, "diag", None), "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(_TRANSIENT_PG_PREFIXES):
        return True
    text_ = str(orig).lower()
    if "database is locked" in text_ or "server closed the connection" in text_ or "connection is closed" in text_:
        return True
    return bool(getattr(exc, "connection_invalidated", False))


def missing_privilege(exc: BaseException) -> str | None:
    """The privilege a permission error names, or None when `exc` is not a permission error."""
    import re

    orig = getattr(exc, "orig", exc)
    text_ = str(orig)
    found = re.search(r"([A-Z][A-Z ]*?) command denied", text_)  # MySQL/MariaDB 1142
    if found:
        return found.group(1).strip()
    if re.search(r"\b(1044|1142|1227)\b", text_) and "denied" in text_.lower():
        return "the required"
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate == "42501" or "permission denied" in text_.lower():
        return "CREATE on schema public" if "schema" in text_.lower() else "the required"
    return None


PACKET_MARGIN = 1 << 20
"""Bytes of a MySQL packet left for the rest of a one-row INSERT statement."""


def max_value_bytes(conn: Any) -> int | None:
    """The largest single column value the target server accepts: MySQL's `max_allowed_packet` less a
    margin for the statement around it; None where the limit (1 GB) is far beyond any MLMD value."""
    if conn.dialect.name != "mysql":
        return None
    packet = conn.exec_driver_sql("SELECT @@max_allowed_packet").scalar()
    return max(int(packet or 0) - PACKET_MARGIN, 1 << 16)


def copies_from_stdin(conn: Connection) -> bool:
    """Plain inserts can go through `COPY … FROM STDIN` (PostgreSQL with psycopg 3, mapping.md W10)."""
    return conn.dialect.name == "postgresql" and conn.dialect.driver == "psycopg"


def end_session_sql(conn: Connection) -> str | None:
    """The statement with which a second session ends `conn`'s server session, as a failover or an
    administrator's KILL would (the fault suite); None on SQLite, which has no server session."""
    if conn.dialect.name in ("mysql", "mariadb"):
        return f"KILL {int(conn.exec_driver_sql('SELECT CONNECTION_ID()').scalar_one())}"
    if conn.dialect.name == "postgresql":
        return f"SELECT pg_terminate_backend({int(conn.exec_driver_sql('SELECT pg_backend_pid()').scalar_one())})"
    return None


def untyped_integer_sql(d: Dialect, column: str) -> str | None:
    """A condition true when `column` holds something other than an integer or NULL: possible on SQLite
    only, whose columns take any value; None where the column's type rules it out."""
    if d.typed_columns:
        return None
    return f"typeof({column}) NOT IN ('integer', 'null')"


def sync_sequence_sql(d: Dialect, table: str) -> str | None:
    """After rows were inserted with explicit ids: the statement that moves `table`'s id sequence past
    them (PostgreSQL's serial columns); None where the next id follows the rows by itself."""
    if d.name != "postgresql":
        return None
    return f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT COALESCE(MAX(id), 1) FROM {table}))"

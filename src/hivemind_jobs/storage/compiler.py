"""Conditions and orders compiled to SQL for SQLite, PostgreSQL and MySQL/MariaDB.

The compiler writes the SQL all three understand and asks the backend's
:class:`~hivemind_jobs.storage.dialect.Dialect` wherever they disagree. The SQL text holds only
table names (from the environment's validated prefix), fixed keywords and ``:qN`` placeholders;
every value, property name, pattern and JSON path is a bound parameter. Every leaf compiles to a
predicate that is never NULL, so ``NOT`` means "does not hold", as in the pure-Python semantics.

Property and past-state conditions are ``IN``/``EXISTS`` subqueries, so the planner can drive the
search from the property index (``name, value, job_id``) or from the job table, whichever is
cheaper.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeGuard

from hivemind_jobs.query.conditions import (
    All,
    AnyOf,
    Compare,
    Condition,
    Not,
    Op,
    PastState,
    Target,
    TargetKind,
    ValueKind,
    like_parts,
)
from hivemind_jobs.query.order import Order
from hivemind_jobs.storage.dialect import Dialect
from hivemind_jobs.storage.protocol import JobSearch

__all__ = [
    "Compiled",
    "Tables",
    "compile_count",
    "compile_job_search",
    "compile_lock",
    "compile_queues",
    "compile_search",
]

#: ``"job"`` -> the environment's quoted (and qualified) table name
Tables = Callable[[str], str]

_JOB_COLUMNS = {
    "id": "j.id",
    "queue": "j.queue",
    "function": "j.function_name",
    "priority": "j.priority",
    "created_at": "j.created_at",
    "modified_at": "j.modified_at",
}
_PROPERTY_COLUMNS = {
    ValueKind.TEXT: "text_value",
    ValueKind.INT: "int_value",
    ValueKind.FLOAT: "float_value",
    ValueKind.BOOL: "bool_value",
    ValueKind.DATETIME: "datetime_value",
}
_OPERATORS = {Op.EQ: "=", Op.NE: "<>", Op.LT: "<", Op.LE: "<=", Op.GT: ">", Op.GE: ">="}
_FALSE = "(1=0)"
_TRUE = "(1=1)"


@dataclass
class Compiled:
    sql: str
    params: dict[str, Any] = field(default_factory=dict)


def _merges(item: Condition) -> TypeGuard[Compare]:
    """A comparison with a property value (it can share the property's subquery)."""
    return (
        isinstance(item, Compare)
        and item.target.kind is TargetKind.PROPERTY
        and item.kind is not None
        and not (item.op is Op.IN and not item.value)
    )


class _Compiler:
    def __init__(self, dialect: Dialect, table: Tables) -> None:
        self.d = dialect
        self.table = table
        self.params: dict[str, Any] = {}

    def bind(self, value: Any) -> str:
        key = f"q{len(self.params)}"
        self.params[key] = value
        return f":{key}"

    def stored(self, kind: ValueKind | None, value: Any) -> Any:
        if kind is ValueKind.DATETIME:
            return self.d.bind_dt(value)
        if kind is ValueKind.BOOL:
            return 1 if value else 0
        return value

    # ------------------------------------------------------------------ conditions
    def condition(self, node: Condition, alias: str | None = None) -> str:
        if isinstance(node, All):
            return "(" + " AND ".join(self.all_items(node.items, alias)) + ")" if node.items else _TRUE
        if isinstance(node, AnyOf):
            return "(" + " OR ".join(self.condition(item, alias) for item in node.items) + ")" if node.items else _FALSE
        if isinstance(node, Not):
            return f"(NOT {self.condition(node.item, alias)})"
        if isinstance(node, PastState):
            inner = self.condition(node.condition, "ps")
            return (
                f"EXISTS (SELECT 1 FROM {self.table('job_state')} ps WHERE ps.job_id = j.id "
                f"AND ps.sequence <> j.state_sequence AND {inner})"
            )
        assert isinstance(node, Compare), node
        return self.compare(node, alias)

    def all_items(self, items: tuple[Condition, ...], alias: str | None) -> list[str]:
        """The AND-ed items; comparisons on the same property and type share one subquery (a job
        has one row per property), so ``a <= prop < b`` is one index range, not two scans."""
        groups: dict[tuple[str, ValueKind | None], list[Compare]] = {}
        for item in items:
            if _merges(item):
                groups.setdefault((item.target.name, item.kind), []).append(item)
        parts = []
        for item in items:
            if _merges(item):
                group = groups.pop((item.target.name, item.kind), None)
                if group is not None:
                    parts.append(self.property_values(group))
                continue
            parts.append(self.condition(item, alias))
        return parts

    def compare(self, node: Compare, alias: str | None) -> str:
        target = node.target
        if target.kind is TargetKind.JOB:
            return self.predicate(_JOB_COLUMNS[target.name], node)
        if target.kind is TargetKind.PROPERTY:
            return self.property(node)
        if alias is None:  # the current state
            if target.kind is TargetKind.STATE and target.name == "name":
                return self.predicate("j.state_name", node)
            if target.kind is TargetKind.STATE and target.name == "elected_at":
                return self.predicate("j.state_elected_at", node)
            inner = self.state_level(node, "cs")
            return (
                f"EXISTS (SELECT 1 FROM {self.table('job_state')} cs WHERE cs.job_id = j.id "
                f"AND cs.sequence = j.state_sequence AND {inner})"
            )
        return self.state_level(node, alias)

    def state_level(self, node: Compare, alias: str) -> str:
        target = node.target
        if target.kind is TargetKind.STATE_FIELD:
            return self.state_field(node, alias)
        column = f"{alias}.{target.name}"
        if target.name != "reason":
            return self.predicate(column, node)
        if node.op is Op.EXISTS:
            return f"({column} IS NOT NULL)"
        if node.op is Op.MISSING:
            return f"({column} IS NULL)"
        return f"({column} IS NOT NULL AND {self.predicate(column, node)})"

    def state_field(self, node: Compare, alias: str) -> str:
        """A state field holds (only string JSON values compare; a missing field is null)."""
        field = self.d.json_field(f"{alias}.fields", node.target.name, self.bind)
        if node.op is Op.EXISTS:
            return f"({field.kind} <> {field.null})"
        if node.op is Op.MISSING:
            return f"({field.kind} = {field.null})"
        return f"({field.kind} = {field.text} AND {self.predicate(field.value, node)})"

    def property(self, node: Compare) -> str:
        if node.op in (Op.EXISTS, Op.MISSING):
            return self.has_property(f"p.name = {self.bind(node.target.name)}", negate=node.op is Op.MISSING)
        if node.op is Op.IN and not node.value:
            return _FALSE
        return self.property_values([node])

    def property_values(self, nodes: list[Compare]) -> str:
        """Comparisons of one property with values of one type, all holding on its row."""
        first = nodes[0]
        assert first.kind is not None
        name = self.bind(first.target.name)
        column = f"p.{_PROPERTY_COLUMNS[first.kind]}"
        predicates = " AND ".join(self.predicate(column, node) for node in nodes)
        return self.has_property(f"p.name = {name} AND {column} IS NOT NULL AND {predicates}")

    def has_property(self, where: str, *, negate: bool = False) -> str:
        """The job has (or, negated, has not) a property row matching ``where``.

        A correlated ``EXISTS`` where the dialect plans it better (PostgreSQL: a semi-join or
        anti-join at the top level, an index probe per row under OR/NOT); otherwise the
        uncorrelated ``IN``, which SQLite and MariaDB run once (an ephemeral index,
        materialization).
        """
        table = self.table("job_property")
        if self.d.correlated_property_exists:
            exists = f"EXISTS (SELECT 1 FROM {table} p WHERE p.job_id = j.id AND {where})"
            return f"(NOT {exists})" if negate else f"({exists})"
        return f"(j.id {'NOT ' if negate else ''}IN (SELECT p.job_id FROM {table} p WHERE {where}))"

    def predicate(self, column: str, node: Compare) -> str:
        if node.op is Op.IN:
            if not node.value:
                return _FALSE
            values = ", ".join(self.bind(self.stored(node.kind, item)) for item in node.value)
            return f"({column} IN ({values}))"
        if node.op is Op.LIKE:
            return self.like(column, node.value)
        return f"({column} {_OPERATORS[node.op]} {self.bind(self.stored(node.kind, node.value))})"

    def like(self, column: str, pattern: str) -> str:
        return self.d.like(column, like_parts(pattern), self.bind)

    # ------------------------------------------------------------------ order
    def order_clause(self, order: Order) -> tuple[str, str]:
        """The ORDER BY list, and a join the order needs."""
        direction = " DESC" if order.descending else ""
        if order.property_name is None:
            column = _JOB_COLUMNS[order.key]
            if column == "j.id":
                return f"j.id{direction}", ""
            return f"{column}{direction}, j.id{direction}", ""
        join = (
            f" LEFT JOIN {self.table('job_property')} po ON po.job_id = j.id "
            f"AND po.name = {self.bind(order.property_name)}"
        )
        keys = ["po.type"] + [f"po.{column}" for column in _PROPERTY_COLUMNS.values()] + ["j.id"]
        return "CASE WHEN po.job_id IS NULL THEN 1 ELSE 0 END, " + ", ".join(k + direction for k in keys), join

    def keyset(self, order: Order, after: tuple[Any, int]) -> str:
        value, job_id = after
        comparison = "<" if order.descending else ">"
        last_id = self.bind(job_id)
        if order.key == "id":
            return f"(j.id {comparison} {last_id})"
        column = _JOB_COLUMNS[order.key]
        bound = self.bind(self.d.bind_dt(value) if isinstance(value, datetime) else value)
        if self.d.row_values:
            return f"(({column}, j.id) {comparison} ({bound}, {last_id}))"
        return f"({column} {comparison} {bound} OR ({column} = {bound} AND j.id {comparison} {last_id}))"


def compile_search(
    dialect: Dialect,
    table: Tables,
    condition: Condition | None,
    order: Order,
    *,
    limit: int,
    offset: int = 0,
    after: tuple[Any, int] | None = None,
    lock: bool = False,
) -> Compiled:
    """``SELECT j.id`` of the matching jobs in order; with ``lock``, only unlocked jobs, their rows
    locked and rows other transactions hold skipped (servers)."""
    c = _Compiler(dialect, table)
    clauses = [c.condition(condition)] if condition is not None else []
    order_by, join = c.order_clause(order)
    if after is not None:
        clauses.append(c.keyset(order, after))
    if lock:
        clauses.append("j.locked_by IS NULL")
    where = f" WHERE {' AND '.join(clauses)}" if clauses else ""
    sql = f"SELECT j.id FROM {table('job')} j{join}{where} ORDER BY {order_by} LIMIT {c.bind(limit)}"
    if offset:
        sql += f" OFFSET {c.bind(offset)}"
    if lock:
        sql += dialect.locking_clause
    return Compiled(sql, c.params)


def compile_job_search(dialect: Dialect, table: Tables, search: JobSearch) -> Compiled:
    """:func:`compile_search` for a storage ``job_search`` operation."""
    return compile_search(
        dialect,
        table,
        search.condition,
        search.order or Order(),
        limit=search.limit,
        offset=search.offset,
        after=search.after,
        lock=search.lock_requester is not None,
    )


def compile_count(dialect: Dialect, table: Tables, condition: Condition | None) -> Compiled:
    c = _Compiler(dialect, table)
    where = f" WHERE {c.condition(condition)}" if condition is not None else ""
    return Compiled(f"SELECT COUNT(*) FROM {table('job')} j{where}", c.params)


def compile_lock(dialect: Dialect, table: Tables, job_ids: list[int], requester: str, now: Any) -> Compiled:
    """Lock the still unlocked jobs ``job_ids`` for ``requester`` (``now``: bound time)."""
    c = _Compiler(dialect, table)
    ids = ", ".join(c.bind(job_id) for job_id in job_ids)
    moment = c.bind(now)
    return Compiled(
        f"UPDATE {table('job')} SET locked_by = {c.bind(requester)}, locked_at = {moment}, "
        f"lock_heartbeat = {moment} WHERE id IN ({ids}) AND locked_by IS NULL",
        c.params,
    )


def compile_queues(dialect: Dialect, table: Tables, prefix: str | None, limit: int) -> Compiled:
    """The distinct queue names (starting with ``prefix``), in order."""
    c = _Compiler(dialect, table)
    where = ""
    if prefix:
        node = Compare(Target(TargetKind.JOB, "queue"), Op.LIKE, prefix.replace("\\", "\\\\").replace("*", "\\*") + "*")
        where = f" WHERE {c.predicate('j.queue', node)}"
    return Compiled(
        f"SELECT DISTINCT j.queue FROM {table('job')} j{where} ORDER BY j.queue LIMIT {c.bind(limit)}",
        c.params,
    )

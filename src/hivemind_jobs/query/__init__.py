"""Queries over jobs: typed conditions, orders, pages and keyset cursors (backend-neutral).

Nothing here knows SQL or imports the storage: the storage compiles these trees
(``hivemind_jobs.storage.compiler``, through the backend's ``Dialect``).
"""

from hivemind_jobs.query.colonies import colony, daemon
from hivemind_jobs.query.conditions import (
    MAX_CONDITIONS,
    MAX_IN_VALUES,
    MAX_TEXT,
    Condition,
    any_of,
    job,
    not_,
    past_state,
    prop,
    state,
    where,
)
from hivemind_jobs.query.order import MAX_LOCK, MAX_PAGE, Order, parse_order
from hivemind_jobs.query.recurring import recurring_job

__all__ = [
    "MAX_CONDITIONS",
    "MAX_IN_VALUES",
    "MAX_LOCK",
    "MAX_PAGE",
    "MAX_TEXT",
    "Condition",
    "Order",
    "any_of",
    "colony",
    "daemon",
    "job",
    "not_",
    "parse_order",
    "past_state",
    "prop",
    "recurring_job",
    "state",
    "where",
]

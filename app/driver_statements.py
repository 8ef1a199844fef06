"""A kept statement compiled once for its driver (asyncpg, sqlite3), then sent straight
to it.

SQLAlchemy's execution of one statement (its execution context, the parameters'
processing, the adapter's cursor, and on the async engine the greenlet hops) cost
about 0.2 ms of CPU a statement here, as much as the driver's own work. For the few
writes that are a whole step on their own (a new pledge and all it writes:
``Database.execute_alone`` on PostgreSQL, ``Database.write_at_once`` on SQLite) the
statement is still built and compiled by SQLAlchemy, once; each send then converts
its parameters and its rows with the types' own conversions and hands the SQL text
to the driver.

Statements are kept by identity (``built_once`` keeps each shape's), weakly: one
that is dropped takes its compiled form with it.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.engine import Dialect

Converter = Callable[[Any], Any]
_NOTHING = object()


@dataclass(frozen=True)
class DriverStatement:
    """A statement as its driver takes it: the SQL, its parameters in order, and the
    conversions of its parameters and of its rows' columns."""

    sql: str
    names: tuple[str, ...]
    converters: tuple[Converter | None, ...]
    defaults: tuple[Any, ...]  # _NOTHING where the caller must give the value
    result_converters: tuple[Converter | None, ...]

    def arguments(self, params: Mapping[str, Any]) -> list[Any]:
        values = []
        for name, convert, default in zip(self.names, self.converters, self.defaults, strict=True):
            value = params.get(name, default)
            if value is _NOTHING:
                raise KeyError(f"no value for the parameter {name!r}")
            values.append(value if convert is None else convert(value))
        return values

    def rows(self, names: Sequence[str], rows: Sequence[Sequence[Any]]) -> list[dict[str, Any]]:
        """The driver's rows as dicts of converted values (columns in statement order)."""
        converters = self.result_converters
        if not any(converters):
            return [dict(zip(names, row, strict=True)) for row in rows]
        return [
            {
                name: value if convert is None else convert(value)
                for name, value, convert in zip(names, row, converters, strict=True)
            }
            for row in rows
        ]


class Compiled:
    """Kept statements compiled for one dialect."""

    def __init__(self, dialect: Dialect) -> None:
        self.dialect = dialect
        self._kept: weakref.WeakKeyDictionary[Any, DriverStatement] = weakref.WeakKeyDictionary()

    def __call__(self, statement: Any) -> DriverStatement:
        found = self._kept.get(statement)
        if found is None:
            found = self._kept[statement] = compile_for_driver(statement, self.dialect)
        return found


def compile_for_driver(statement: Any, dialect: Dialect) -> DriverStatement:
    """``statement`` compiled by ``dialect`` (a positional one: asyncpg's, sqlite3's),
    checked to need nothing at execution that only SQLAlchemy's execution would do."""
    compiled = statement.compile(dialect=dialect)
    if compiled.positiontup is None:
        raise ValueError("a statement for the driver needs a positional dialect")
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("a statement for the driver takes no expanding parameters")
    converters, defaults = [], []
    for name in compiled.positiontup:
        bind = compiled.binds[name]
        converters.append(bind.type.dialect_impl(dialect).bind_processor(dialect))
        defaults.append(_NOTHING if bind.required else bind.effective_value)
    columns = getattr(statement, "exported_columns", ())
    return DriverStatement(
        str(compiled),
        tuple(compiled.positiontup),
        tuple(converters),
        tuple(defaults),
        tuple(_result_converter(column, dialect) for column in columns),
    )


def _result_converter(column: Any, dialect: Dialect) -> Converter | None:
    try:
        return column.type.dialect_impl(dialect).result_processor(dialect, None)  # type: ignore[no-any-return]
    except TypeError:  # a conversion chosen by the type the server sends (numbers)
        raise ValueError(f"column {column.name} needs a conversion: read it in a session") from None

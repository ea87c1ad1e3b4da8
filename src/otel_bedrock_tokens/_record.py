"""A base for the small mutable value classes created on every call (:class:`~.usage.Usage`, the
facts): what ``@dataclass(slots=True)`` gave them (``__eq__`` and ``__repr__`` over the fields), without
its cost at import. A dataclass generates and compiles its methods when the class is defined, about
0.3-0.7 ms each, paid by every cold start; these classes write their ``__init__`` by hand (as fast per
call as the generated one) and share the two methods below, which no hot path calls.
"""

from __future__ import annotations


class Record:
    """Fields are the ``__slots__`` of the concrete class, in order."""

    __slots__: tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        if type(other) is not type(self):
            return NotImplemented
        return all(getattr(self, name) == getattr(other, name) for name in self.__slots__)

    # Mutable: unhashable, as a dataclass with eq=True and not frozen.
    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"

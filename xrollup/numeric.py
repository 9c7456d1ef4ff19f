"""Typed unsigned integers, after ethereum/execution-specs' Uint: they refuse to
mix with each other and raise on underflow and overflow, so an amount never
becomes a height and a balance never goes negative silently."""

from __future__ import annotations

from typing import NoReturn, Self, SupportsIndex

from xrollup.errors import ArithmeticOverflow


class Uint64(int):
    """An unsigned 64-bit integer. Arithmetic with a plain int or the same type
    gives the same type; with another Uint64 subclass it raises TypeError."""

    MAX = 2**64 - 1

    def __new__(cls, value: SupportsIndex) -> Self:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError(f"{cls.__name__} needs an int, got {type(value).__name__}")
        if isinstance(value, Uint64) and type(value) is not cls:
            raise TypeError(f"cannot make {cls.__name__} from {type(value).__name__}")
        v = int(value)
        if v < 0:
            raise ArithmeticOverflow(f"{cls.__name__} cannot be negative ({v})")
        if v > cls.MAX:
            raise ArithmeticOverflow(f"{cls.__name__} overflows ({v} > {cls.MAX})")
        return super().__new__(cls, v)

    def _other(self, other: object) -> int:
        if isinstance(other, bool) or not isinstance(other, int):
            raise TypeError(f"cannot combine {type(self).__name__} with {type(other).__name__}")
        if isinstance(other, Uint64) and type(other) is not type(self):
            raise TypeError(f"cannot combine {type(self).__name__} with {type(other).__name__}")
        return int(other)

    def __add__(self, other: object) -> Self:
        return type(self)(int(self) + self._other(other))

    __radd__ = __add__

    def __sub__(self, other: object) -> Self:
        return type(self)(int(self) - self._other(other))

    def __rsub__(self, other: object) -> Self:
        return type(self)(self._other(other) - int(self))

    def __mul__(self, other: object) -> Self:
        return type(self)(int(self) * self._other(other))

    __rmul__ = __mul__

    def __floordiv__(self, other: object) -> Self:
        """Division rounds toward zero (floor, as both are non-negative)."""
        return type(self)(int(self) // self._other(other))

    def _refuse(self, *args: object) -> NoReturn:
        raise TypeError(
            f"{type(self).__name__} supports +, -, * and // only (no floats, no wrapping)"
        )

    __truediv__ = __rtruediv__ = _refuse
    __mod__ = __rmod__ = __divmod__ = __rdivmod__ = _refuse
    __pow__ = __rpow__ = __neg__ = _refuse
    __lshift__ = __rlshift__ = __rshift__ = __rrshift__ = _refuse

    def __repr__(self) -> str:
        return f"{type(self).__name__}({int.__repr__(self)})"

    def __str__(self) -> str:
        return int.__repr__(self)


class Height(Uint64):
    """A block height: the only clock the state machine has."""


class Amount(Uint64):
    """An amount of an asset in integer base units."""


class Term(Uint64):
    """A sequencer leader's term, carried in every signed block header: 0 for a
    single sequencer, else the create revision of the etcd leader key it won
    (positive, increasing). Nodes refuse a block of a lower term than they have
    applied: it is from a superseded leader."""

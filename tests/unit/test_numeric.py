"""Typed integers (xrollup.numeric): same-type and plain-int arithmetic keeps the
type; mixing two typed kinds raises TypeError; leaving the unsigned 64-bit range
raises ArithmeticOverflow instead of wrapping or going negative."""

from __future__ import annotations

import pytest

from xrollup.errors import ArithmeticOverflow, Refused
from xrollup.numeric import Amount, Height, Uint64


def test_arithmetic_with_same_type_or_int_keeps_the_type() -> None:
    assert Amount(5) + Amount(7) == 12 and type(Amount(5) + Amount(7)) is Amount
    assert type(Amount(5) + 1) is Amount
    assert type(1 + Amount(5)) is Amount
    assert Height(10) - 3 == Height(7) and type(Height(10) - 3) is Height
    assert 10 - Height(3) == 7 and type(10 - Height(3)) is Height
    assert Amount(6) * 7 == 42 and type(3 * Amount(2)) is Amount
    assert Amount(7) // 2 == 3 and type(Amount(7) // Amount(2)) is Amount


@pytest.mark.parametrize(
    "op",
    [
        lambda: Amount(1) + Height(1),
        lambda: Height(1) + Amount(1),
        lambda: Amount(5) - Height(1),
        lambda: Height(5) - Amount(1),
        lambda: Amount(2) * Height(2),
        lambda: Amount(4) // Height(2),
        lambda: Amount(Height(3)),
        lambda: Height(Amount(3)),
    ],
)
def test_amounts_and_heights_refuse_to_mix(op) -> None:
    with pytest.raises(TypeError):
        op()


@pytest.mark.parametrize(
    "op",
    [
        lambda: Amount(1) + 1.0,
        lambda: Amount(1.0),  # type: ignore[arg-type]
        lambda: Amount(True),
        lambda: Height(1) + True,
        lambda: Amount("1"),  # type: ignore[arg-type]
    ],
)
def test_floats_bools_and_strings_are_refused(op) -> None:
    with pytest.raises(TypeError):
        op()


def test_underflow_raises() -> None:
    with pytest.raises(ArithmeticOverflow, match="negative"):
        Amount(3) - Amount(4)
    with pytest.raises(ArithmeticOverflow):
        Height(0) - 1
    with pytest.raises(ArithmeticOverflow):
        2 - Amount(3)
    with pytest.raises(ArithmeticOverflow):
        Amount(-1)


def test_overflow_raises() -> None:
    top = Amount(Uint64.MAX)
    assert top == 2**64 - 1
    with pytest.raises(ArithmeticOverflow, match="overflows"):
        top + 1
    with pytest.raises(ArithmeticOverflow):
        Amount(2**63) * 2
    with pytest.raises(ArithmeticOverflow):
        Height(2**64)


def test_out_of_range_is_a_domain_refusal() -> None:
    # Expected errors come from the one tree (FAILED_PRECONDITION), and stay OverflowErrors.
    assert issubclass(ArithmeticOverflow, Refused)
    assert issubclass(ArithmeticOverflow, OverflowError)


def test_failed_operation_leaves_operands_unchanged() -> None:
    balance = Amount(10)
    with pytest.raises(ArithmeticOverflow):
        balance - 11
    assert balance == 10 and type(balance) is Amount


def test_repr_names_the_type() -> None:
    assert repr(Amount(3)) == "Amount(3)"
    assert repr(Height(4)) == "Height(4)"


def test_operators_that_could_leave_the_type_are_refused() -> None:
    a = Amount(5)
    for op in (
        lambda: a / 2,
        lambda: 2 / a,
        lambda: a % 2,
        lambda: divmod(a, 2),
        lambda: a**2,
        lambda: -a,
        lambda: a << 1,
        lambda: a >> 1,
    ):
        with pytest.raises(TypeError):
            op()
    assert a // 2 == Amount(2) and type(a // 2) is Amount

"""Human amounts <-> integer base units, exactly (Decimal parsing, never floats)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from xrollup.errors import InvalidInput

# More digits of base units than any amount can have (2^64 has 20): refused before
# scaling, so a text like 1e999999 costs nothing.
MAX_DIGITS = 30


def parse_units(text: str, decimals: int, what: str = "amount") -> int:
    """'2.5' with 6 decimals -> 2500000. Refuses more precision than the asset has
    (trailing zeros are not precision: '2.500' is 2.5) and more than MAX_DIGITS
    digits of base units. Exact: the digits are scaled as integers, no context
    rounds them."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"{what} {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"{what} {text!r} must be a finite, non-negative number")
    _, digits, exponent = value.as_tuple()
    assert isinstance(exponent, int)  # finite
    significant = "".join(map(str, digits)).rstrip("0")
    if not significant:
        return 0
    exponent += len(digits) - len(significant) + decimals  # of the last significant digit
    if exponent < 0:
        raise InvalidInput(f"{what} {text!r} has more than {decimals} decimals")
    if len(significant) + exponent > MAX_DIGITS:
        raise InvalidInput(f"{what} {text!r} is too large")
    return int(significant + "0" * exponent)


def format_units(amount: int, decimals: int, grouping: bool = True) -> str:
    """2500000 with 6 decimals -> '2.5'; thousands separated unless not `grouping`
    (then parse_units reads it back)."""
    whole, frac = divmod(int(amount), 10**decimals)
    text = f"{whole:,}" if grouping else str(whole)
    if frac:
        text += "." + f"{frac:0{decimals}d}".rstrip("0")
    return text

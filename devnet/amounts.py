"""Human amounts <-> integer base units, exactly (Decimal parsing, never floats)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation

from xrollup.errors import InvalidInput


def parse_units(text: str, decimals: int, what: str = "amount") -> int:
    """'2.5' with 6 decimals -> 2500000. Refuses more precision than the asset has."""
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise InvalidInput(f"{what} {text!r} is not a number") from None
    if not value.is_finite() or value < 0:
        raise InvalidInput(f"{what} {text!r} must be a finite, non-negative number")
    scaled = value.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"{what} {text!r} has more than {decimals} decimals")
    return int(scaled)


def format_units(amount: int, decimals: int) -> str:
    """2500000 with 6 decimals -> '2.5'; thousands separated."""
    whole, frac = divmod(int(amount), 10**decimals)
    text = f"{whole:,}"
    if frac:
        text += "." + f"{frac:0{decimals}d}".rstrip("0")
    return text

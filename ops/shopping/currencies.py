"""Money defaults per currency: the simulated customers' budgets, their bound, and a catalog's highest price.

Budgets and price bounds are amounts of money, so they depend on the shop's currency: a monthly budget
of 20-300 is plausible in pounds and buys almost nothing in rupees. `CURRENCY_DEFAULTS` holds one row
per ISO 4217 code, rounded from the GBP defaults at roughly 2024 exchange rates (an order of magnitude
is what matters); every value is overridable in the assets' run config, and `currency_defaults`
raises for a code without a row, naming the known ones.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CurrencyDefaults:
    """Defaults of one currency: the range monthly budgets are drawn from, their bound, the highest price."""

    code: str
    monthly_budget: tuple[float, float]  # personas draw their budget log-uniformly in this range
    max_monthly_budget: float  # a configured budget above this is refused
    max_price: float  # a catalog price above this is quarantined as absurd


CURRENCY_DEFAULTS: dict[str, CurrencyDefaults] = {
    row.code: row
    for row in (
        CurrencyDefaults("GBP", (20.0, 300.0), 10_000.0, 10_000.0),
        CurrencyDefaults("USD", (25.0, 400.0), 12_500.0, 12_500.0),
        CurrencyDefaults("EUR", (25.0, 350.0), 12_000.0, 12_000.0),
        CurrencyDefaults("CHF", (25.0, 350.0), 12_000.0, 12_000.0),
        CurrencyDefaults("CAD", (35.0, 550.0), 17_500.0, 17_500.0),
        CurrencyDefaults("AUD", (40.0, 600.0), 20_000.0, 20_000.0),
        CurrencyDefaults("INR", (2_000.0, 30_000.0), 1_000_000.0, 1_000_000.0),
        CurrencyDefaults("JPY", (3_500.0, 55_000.0), 2_000_000.0, 2_000_000.0),
        CurrencyDefaults("CNY", (180.0, 2_700.0), 90_000.0, 90_000.0),
        CurrencyDefaults("BRL", (120.0, 1_800.0), 60_000.0, 60_000.0),
        CurrencyDefaults("SEK", (260.0, 4_000.0), 130_000.0, 130_000.0),
    )
}


def currency_defaults(code: str) -> CurrencyDefaults:
    """The defaults of an ISO 4217 code (case-insensitive); a clear error for an unknown one."""
    key = code.strip().upper()
    if key not in CURRENCY_DEFAULTS:
        raise ValueError(
            f"no money defaults for currency {code!r}; known: {', '.join(sorted(CURRENCY_DEFAULTS))}. "
            "Set the budgets and max_price in the run config, or add a row to CURRENCY_DEFAULTS."
        )
    return CURRENCY_DEFAULTS[key]

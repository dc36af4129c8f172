"""The bundled product catalogs as one small frame of facts that missions, drafts and prompts cite.

Product ids are f"{source}:{native id}": "amazon_uk_toys:<uniq_id>" (real Amazon UK listings, GBP)
and "magento_luma:<sku>" (the fictional Magento Luma demo store, USD). `facts` is one line per
product with exactly the listed fields, so a model or a drafter sees what a criterion may check and
nothing invented.

This is not the shopping domain's catalog frame (`ops.shopping.catalog`): that one normalizes and
quarantines products without a price, while missions also ask about unpriced listings ("the price is
not listed") and about Luma sizes, colours, materials, climate and description text, which it drops.
"""

from __future__ import annotations

import csv
import html
import json
from pathlib import Path
from typing import Any

import polars as pl

CATALOG_SCHEMA: dict[str, pl.DataType] = {
    "product_id": pl.String(),
    "source": pl.String(),
    "name": pl.String(),
    "brand": pl.String(),
    "category": pl.String(),
    "price": pl.Float64(),
    "currency": pl.String(),
    "facts": pl.String(),
}
_DESCRIPTION_CHARS = 400


def load_catalog(amazon_csv: str | Path, luma_jsonl: str | Path) -> pl.DataFrame:
    """Both bundled catalogs as CATALOG_SCHEMA rows (prices missing in the source stay null)."""
    rows = [_amazon_row(row) for row in _read_csv(Path(amazon_csv))]
    with Path(luma_jsonl).open(encoding="utf-8") as handle:
        rows += [_luma_row(json.loads(line)) for line in handle if line.strip()]
    return pl.DataFrame(rows, schema=CATALOG_SCHEMA)


def product_facts(catalog: pl.DataFrame) -> dict[str, str]:
    """product_id -> its one-line fact sheet."""
    return dict(zip(catalog["product_id"].to_list(), catalog["facts"].to_list(), strict=True))


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def _price(value: Any) -> float | None:
    try:
        return float(value) if value not in (None, "") else None
    except ValueError:
        return None


def _amazon_row(row: dict[str, str]) -> dict[str, Any]:
    price = _price(row["price"])
    facts = [
        row["product_name"],
        f"brand: {row['manufacturer'] or 'unknown'}",
        f"price: £{price:.2f}" if price is not None else "price: not listed",
        f"category: {row['amazon_category_and_sub_category'] or 'not listed'}",
        f"rating: {row['average_rating'] or 'none'} from {row['number_of_reviews'] or 0} reviews",
    ]
    if row["number_available_in_stock"]:
        facts.append(f"stock: {row['number_available_in_stock'].replace(chr(160), ' ')}")
    return {
        "product_id": f"amazon_uk_toys:{row['uniq_id']}",
        "source": "amazon_uk_toys",
        "name": row["product_name"],
        "brand": row["manufacturer"] or None,
        "category": row["amazon_category_and_sub_category"] or None,
        "price": price,
        "currency": "GBP",
        "facts": "; ".join(facts),
    }


def _luma_row(record: dict[str, Any]) -> dict[str, Any]:
    price = _price(record.get("price"))
    attributes = record.get("attributes") or {}
    variants = record.get("variants") or []
    sizes = sorted({v["size"] for v in variants if v.get("size")})
    colors = sorted({v["color"] for v in variants if v.get("color")})
    name = html.unescape(record["name"]).strip()
    facts = [
        name,
        f"price: ${price:.2f}" if price is not None else "price: not listed",
        f"categories: {', '.join(record.get('categories') or [])}",
    ]
    facts += [f"{key}: {html.unescape(', '.join(map(str, values)))}" for key, values in attributes.items() if values]
    if sizes:
        facts.append(f"sizes: {', '.join(sizes)}")
    if colors:
        facts.append(f"colors: {', '.join(colors)}")
    description = " ".join(html.unescape(record.get("description_text") or "").split())
    if description:
        facts.append(f"description: {description[:_DESCRIPTION_CHARS]}")
    return {
        "product_id": f"magento_luma:{record['sku']}",
        "source": "magento_luma",
        "name": name,
        "brand": "Luma",
        "category": (record.get("categories") or [None])[0],
        "price": price,
        "currency": "USD",
        "facts": "; ".join(facts),
    }

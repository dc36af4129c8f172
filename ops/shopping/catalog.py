"""Load any product catalog (CSV, JSON Lines, Parquet) into the product catalog frame, losing nothing.

A `ColumnMapping` names the source columns, so a catalog never seen before loads with a mapping change
only. Every record ends in exactly one of two frames: `products` (CATALOG_SCHEMA, one row per product)
or `quarantine` (QUARANTINE_SCHEMA: the shared quarantine columns with a `QUARANTINE_REASONS` code,
plus source, record number and native id), the shared `Split`: rows in = rows kept + rows quarantined.

Rules, in the order a record meets them (the first one broken is its quarantine reason):
1. Bytes that are not UTF-8 quarantine that record only ("not valid UTF-8"); a line that is not JSON,
   or a CSV row whose field count differs from the header, is a "malformed record".
2. "missing id", "empty title", "missing price", "unparseable price: <value>", "absurd price: <value>
   (...)" (a price <= 0 after rounding to cents, or above `max_price`, by default the highest price
   of the source's currency in `ops.shopping.currencies`).
3. "duplicate id": among records that pass every other rule, the first occurrence of an id is kept and
   later ones are quarantined, so a broken first copy does not hide a usable second one.
A quarantine row's `reason` is the code, its `detail` the text above with the specifics.

Normalization: titles and brands are NFC with whitespace folded (`normalize_text`); brand spellings that
differ only in case collapse to the most frequent spelling in the file (ties: the first seen), and a
missing brand becomes "Unbranded". Prices accept numbers, currency signs and codes (£ $ € ¥ ₹ Rs. INR
USD ...), thousands separators (1,299 and the Indian 1,29,999; 1.299,00 with a decimal comma), a
trailing "/-" and ranges ("3.42 - 5.99" takes the first number); they are rounded to cents. A category
is a path string split on the mapping's separator, a list (see `category_levels`), or several columns
joined level by level (`ColumnMapping.category_columns`); empty levels are dropped,
and a record without a category is kept under ["Uncategorized"] (counted in `CatalogResult`) rather
than quarantined, because its price and title are still usable (135 of the 2,000 Amazon rows).
A rating outside 1..5 or an unreadable review count becomes null instead of quarantining the product.
CSV files may set their delimiter and encoding (a UTF-8 byte-order mark is always dropped); whether a
product is consumable is a `ConsumableRule` (keywords and category names), with presets per kind of shop.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
import math
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any, NamedTuple

import polars as pl
import pyarrow.parquet as pq

from ops.common.quarantine import QUARANTINE_SCHEMA as SHARED_QUARANTINE_SCHEMA
from ops.common.quarantine import Rejected, Split, quarantine_frame
from ops.common.text import normalize_text
from ops.shopping.currencies import currency_defaults

CATALOG_COLUMNS: dict[str, pl.DataType] = {
    "product_id": pl.String(),
    "source": pl.String(),
    "title": pl.String(),
    "brand": pl.String(),
    "category_path": pl.List(pl.String()),
    "category": pl.String(),
    "top_category": pl.String(),
    "leaf_category": pl.String(),
    "price": pl.Float64(),
    "currency": pl.String(),
    "rating": pl.Float64(),
    "review_count": pl.Int64(),
    "consumable": pl.Boolean(),
}
CATALOG_SCHEMA = pl.Schema(CATALOG_COLUMNS)
# The shared quarantine columns (record_id = "<source>#<record number>") plus where the record came from.
QUARANTINE_COLUMNS: dict[str, pl.DataType] = {
    **SHARED_QUARANTINE_SCHEMA,
    "source": pl.String(),
    "record_number": pl.Int64(),  # line the record starts on (CSV incl. header, JSONL) or 1-based row (Parquet)
    "product_id": pl.String(),  # the native id when it could be read
}
QUARANTINE_SCHEMA = pl.Schema(QUARANTINE_COLUMNS)

# Reason codes, and the words each detail starts with.
REASON_NOT_UTF8 = "not_utf8"
REASON_MALFORMED = "malformed_record"
REASON_MISSING_ID = "missing_id"
REASON_EMPTY_TITLE = "empty_title"
REASON_MISSING_PRICE = "missing_price"
REASON_UNPARSEABLE_PRICE = "unparseable_price"
REASON_ABSURD_PRICE = "absurd_price"
REASON_DUPLICATE_ID = "duplicate_id"
REASON_TEXT: dict[str, str] = {
    REASON_NOT_UTF8: "not valid UTF-8",
    REASON_MALFORMED: "malformed record",
    REASON_MISSING_ID: "missing id",
    REASON_EMPTY_TITLE: "empty title",
    REASON_MISSING_PRICE: "missing price",
    REASON_UNPARSEABLE_PRICE: "unparseable price",
    REASON_ABSURD_PRICE: "absurd price",
    REASON_DUPLICATE_ID: "duplicate id",
}
QUARANTINE_REASONS: tuple[str, ...] = tuple(REASON_TEXT)

UNCATEGORIZED = "Uncategorized"
UNBRANDED = "Unbranded"
CATEGORY_JOINER = " > "
FORMATS: tuple[str, ...] = ("csv", "jsonl", "parquet")
_SUFFIX_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet", ".pq": "parquet"}

# Products bought again and again in a toy shop. Matched case-insensitively as whole words or phrases in
# the title and the category path (so the whole Amazon "Party Supplies" branch counts). Plurals are listed
# explicitly; "cards" is plural only because "card game" names a game, not a pack of cards.
CONSUMABLE_KEYWORDS: tuple[str, ...] = (
    "battery", "batteries", "balloon", "balloons", "paint", "paints", "sticker", "stickers", "cards",
    "refill", "refills", "party", "wrapping", "gift wrap", "crayon", "crayons", "glue", "confetti",
    "candle", "candles", "water bottle", "napkin", "napkins", "streamer", "streamers", "glitter",
    "play-doh", "playdoh", "modelling clay", "slime", "chalk", "felt tips", "markers", "ink",
    "sweets", "chocolate", "bubbles", "tableware", "invitations",
)  # fmt: skip
# A grocery shop: almost everything is used up, except the durable kitchen and home goods.
GROCERY_CONSUMABLE_CATEGORIES: tuple[str, ...] = (
    "Fruits & Vegetables", "Foodgrains, Oil & Masala", "Bakery, Cakes & Dairy", "Beverages", "Snacks & Branded Foods",
    "Beauty & Hygiene", "Cleaning & Household", "Eggs, Meat & Fish", "Gourmet & World Food", "Baby Care",
    "Food", "Grocery", "Groceries", "Dairy", "Drinks", "Household Supplies", "Personal Care", "Pet Food",
)  # fmt: skip
GROCERY_CONSUMABLE_KEYWORDS: tuple[str, ...] = (
    "rice", "flour", "atta", "dal", "oil", "ghee", "sugar", "salt", "tea", "coffee", "milk", "juice", "snack",
    "biscuits", "soap", "shampoo", "detergent", "toothpaste", "tissue", "diapers", "spices", "masala",
)  # fmt: skip


@dataclass(frozen=True)
class ConsumableRule:
    """Which products are used up and bought again: whole-word keywords in the title or category path,
    or a category level equal to one of `categories` (both case-insensitive)."""

    keywords: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()

    def matches(self, title: str, category_path: Sequence[str]) -> bool:
        """True when the title or category path names a consumable."""
        folded = {level.casefold() for level in category_path}
        if folded & {category.casefold() for category in self.categories}:
            return True
        if not self.keywords:
            return False
        return bool(_keyword_pattern(self.keywords).search(" | ".join([title, *category_path]).casefold()))


CONSUMABLE_PRESETS: dict[str, ConsumableRule] = {
    "toys": ConsumableRule(keywords=CONSUMABLE_KEYWORDS),
    "groceries": ConsumableRule(keywords=GROCERY_CONSUMABLE_KEYWORDS, categories=GROCERY_CONSUMABLE_CATEGORIES),
    "none": ConsumableRule(),
}


def consumable_rule(preset: str, keywords: Sequence[str] | None = None, categories: Sequence[str] | None = None):
    """A preset of CONSUMABLE_PRESETS, its keywords or categories replaced where given."""
    if preset not in CONSUMABLE_PRESETS:
        raise ValueError(f"consumables preset {preset!r} is not one of {sorted(CONSUMABLE_PRESETS)}")
    base = CONSUMABLE_PRESETS[preset]
    return ConsumableRule(
        keywords=base.keywords if keywords is None else tuple(keywords),
        categories=base.categories if categories is None else tuple(categories),
    )


_BAD_BYTE = re.compile(r"[\udc80-\udcff]")  # what surrogateescape decoding turns invalid bytes into
_CURRENCY_MARK = re.compile(
    r"[£$€¥₹₨]|\b(?:GBP|USD|EUR|INR|JPY|CNY|RMB|CAD|AUD|CHF|BRL|SEK|US|Rs)\b\.?|(?<=\d)\s*/-", re.IGNORECASE
)
_NUMBER = r"-?(?:\d{1,3}(?:,\d{3})+|\d{1,2}(?:,\d{2})+,\d{3}|\d+)(?:\.\d+)?|-?\.\d+"
_DECIMAL_COMMA = re.compile(r"^(\d{1,3}(?:\.\d{3})*),(\d{1,2})$")  # 1.299,00 and 12,5: a decimal comma
_PRICE = re.compile(rf"^({_NUMBER})(?:\s*(?:-|\u2013|to)\s*(?:{_NUMBER}))?$", re.IGNORECASE)
_LEADING_NUMBER = re.compile(r"^\s*(\d[\d,]*(?:\.\d+)?)")


@dataclass(frozen=True, kw_only=True)
class ColumnMapping:
    """Which source column holds each catalog field; optional fields may be None.

    `category` names a path string (levels joined by `category_separator`) or a list of such paths or
    of levels. `merchandising_roots` are the top levels of store-curated groupings ("Collections/Eco
    Friendly", "Promotions/Pants") that are not where a product lives; list categories skip them.
    `category_columns` instead names several columns holding one level each, top level first
    (category, sub-category, type): their non-empty values are the path. `currency` is a constant for
    the whole file.
    """

    id: str
    title: str
    brand: str | None
    category: str | None
    price: str
    currency: str
    category_separator: str = CATEGORY_JOINER
    rating: str | None = None
    review_count: str | None = None
    merchandising_roots: tuple[str, ...] = ("Collections", "Promotions")
    category_columns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.category is not None and self.category_columns:
            raise ValueError("map the category to one column (`category`) or to several (`category_columns`), not both")

    def columns(self) -> list[str]:
        """The source columns this mapping reads."""
        named = (self.id, self.title, self.brand, self.category, self.price, self.rating, self.review_count)
        return [column for column in named if column is not None] + list(self.category_columns)


@dataclass(frozen=True, kw_only=True)
class CatalogSource:
    """One catalog file: `name` becomes the `source` column and the product id prefix."""

    name: str
    path: Path
    format: str | None = None  # "csv", "jsonl" or "parquet"; None: from the file suffix
    mapping: ColumnMapping
    delimiter: str = ","  # CSV only
    encoding: str = "utf-8"  # CSV and JSON Lines; a UTF-8 byte-order mark is dropped either way
    consumables: ConsumableRule = CONSUMABLE_PRESETS["toys"]

    def __post_init__(self) -> None:
        if not self.name or ":" in self.name:
            raise ValueError(f"catalog source name {self.name!r} must be non-empty and contain no ':'")
        if len(self.delimiter) != 1:
            raise ValueError(f"catalog {self.name}: the CSV delimiter must be one character, got {self.delimiter!r}")
        codecs.lookup(self.encoding)  # LookupError names an unknown encoding
        if self.format is not None and self.format not in FORMATS:
            raise ValueError(f"catalog {self.name}: format {self.format!r} is not one of {FORMATS}")

    @property
    def resolved_format(self) -> str:
        """The format field, or the one the file suffix implies."""
        if self.format is not None:
            return self.format
        suffix = Path(self.path).suffix.lower()
        if suffix not in _SUFFIX_FORMATS:
            raise ValueError(f"catalog {self.name}: cannot tell the format of {self.path}; set `format`")
        return _SUFFIX_FORMATS[suffix]


@dataclass(frozen=True)
class CatalogResult:
    """Products kept and records quarantined (the shared `split`), and the counts an asset reports as metadata."""

    split: Split
    uncategorized: int = 0  # kept products filed under "Uncategorized" (no category in the source)
    unbranded: int = 0  # kept products filed under "Unbranded"
    brand_spellings_merged: int = 0  # brand spellings rewritten to a more frequent case variant

    @property
    def products(self) -> pl.DataFrame:
        return self.split.kept

    @property
    def quarantine(self) -> pl.DataFrame:
        return self.split.quarantined

    @property
    def rows_in(self) -> int:
        return self.split.rows_in

    def metadata(self) -> dict[str, int]:
        """Row counts, quarantine counts by reason code, and the normalization counts."""
        return {
            **self.split.metadata(),
            "uncategorized": self.uncategorized,
            "unbranded": self.unbranded,
            "brand_spellings_merged": self.brand_spellings_merged,
        }


AMAZON_UK_TOYS = ColumnMapping(
    id="uniq_id",
    title="product_name",
    brand="manufacturer",
    category="amazon_category_and_sub_category",
    price="price",
    currency="GBP",
    category_separator=" > ",
    rating="average_rating",
    review_count="number_of_reviews",
)
# The Luma demo store has no brand attribute (every product is the store's own), and its reviews live in
# a separate file, so brand, rating and review count are left unmapped.
MAGENTO_LUMA = ColumnMapping(
    id="sku",
    title="name",
    brand=None,
    category="categories",
    price="price",
    currency="USD",
    category_separator="/",
)


def bundled_sources(catalogs_folder: Path) -> list[CatalogSource]:
    """The two catalogs bundled in `catalogs_folder` (the repository's `samples/shopping`), with their presets."""
    folder = Path(catalogs_folder)
    return [
        CatalogSource(name="amazon_uk_toys", path=folder / "amazon_uk_toys" / "products.csv", mapping=AMAZON_UK_TOYS),
        CatalogSource(name="magento_luma", path=folder / "magento_luma" / "products.jsonl", mapping=MAGENTO_LUMA),
    ]


def _reason_parts(reason: str) -> tuple[str, str]:
    """(code, detail) of an internal "<code>: <specifics>" reason; the detail says it in words."""
    code, _, specifics = reason.partition(": ")
    return code, f"{REASON_TEXT[code]}: {specifics}" if specifics else REASON_TEXT[code]


def load_catalogs(sources: Sequence[CatalogSource], max_price: float | None = None) -> CatalogResult:
    """Load several catalogs into one result; product ids carry the source prefix, so they never collide."""
    names = [source.name for source in sources]
    if len(set(names)) != len(names):
        raise ValueError(f"catalog source names must be unique, got {names}")
    results = [load_catalog(source, max_price=max_price) for source in sources]
    combined = Split(
        kept=pl.concat([r.products for r in results]) if results else CATALOG_SCHEMA.to_frame(),
        quarantined=pl.concat([r.quarantine for r in results]) if results else QUARANTINE_SCHEMA.to_frame(),
        rows_in=sum(r.rows_in for r in results),
    )
    return CatalogResult(
        combined,
        uncategorized=sum(r.uncategorized for r in results),
        unbranded=sum(r.unbranded for r in results),
        brand_spellings_merged=sum(r.brand_spellings_merged for r in results),
    )


def load_catalog(source: CatalogSource, max_price: float | None = None) -> CatalogResult:
    """Read one catalog file into normalized products and quarantined records (see the module rules).

    `max_price` None takes the highest price of the source's currency (`ops.shopping.currencies`).
    Raises ValueError only for problems with the whole file: it is missing, has no header, or lacks a
    column the mapping names. Problems with single records become quarantine rows.
    """
    path = Path(source.path)
    if not path.is_file():
        raise ValueError(f"catalog {source.name}: file {path} does not exist")
    if max_price is None:
        max_price = currency_defaults(source.mapping.currency).max_price
    readers = {"csv": _read_csv, "jsonl": _read_jsonl, "parquet": _read_parquet}
    records = readers[source.resolved_format](path, source)
    mapping = source.mapping
    kept: list[_Product] = []
    quarantined: list[Rejected] = []
    seen_ids: set[str] = set()
    rows_in = 0
    for record in records:
        rows_in += 1
        native_id = _native_id(record.fields.get(mapping.id)) if record.fields is not None else None
        product, reason = (None, record.error) if record.error else _normalize(record.fields or {}, mapping, max_price)
        if product is not None and product.native_id in seen_ids:
            product, reason = None, REASON_DUPLICATE_ID
        if product is None:
            where = {"source": source.name, "record_number": record.number, "product_id": _printable(native_id)}
            record_id = f"{source.name}#{record.number}"
            quarantined.append(Rejected(record_id, *_reason_parts(str(reason)), record.excerpt, where))
            continue
        seen_ids.add(product.native_id)
        kept.append(product)
    brands, merged = _collapse_brand_case([p.brand for p in kept])
    products = _products_frame(source, kept, brands)
    quarantine = quarantine_frame(quarantined, QUARANTINE_REASONS, QUARANTINE_COLUMNS)
    kept_and_quarantined = Split(products, quarantine, rows_in)
    if not kept_and_quarantined.accounted():
        raise AssertionError(
            f"catalog {source.name}: {rows_in} in, {products.height} kept, {quarantine.height} refused"
        )
    return CatalogResult(
        kept_and_quarantined,
        uncategorized=sum(p.category_path == [UNCATEGORIZED] for p in kept),
        unbranded=sum(brand == UNBRANDED for brand in brands),
        brand_spellings_merged=merged,
    )


def parse_price(value: Any) -> float | None:
    """A price in currency units from a number or text such as "£3.42", "$1,299.00", "3.42 - 5.99".

    Returns None when nothing is there (None, blank, NaN) and raises ValueError when something is there
    that is not a price. A range gives its first number; the result is rounded to cents.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"{value!r}")
    if isinstance(value, int | float):
        return None if math.isnan(value) else round(float(value), 2)
    text = " ".join(str(value).split())
    if not text:
        return None
    number = " ".join(_CURRENCY_MARK.sub(" ", text).split())
    decimal_comma = _DECIMAL_COMMA.match(number)
    if decimal_comma:
        return round(float(decimal_comma.group(1).replace(".", "") + "." + decimal_comma.group(2)), 2)
    match = _PRICE.match(number)
    if match is None:
        raise ValueError(f"{text[:50]!r}")
    return round(float(match.group(1).replace(",", "")), 2)


def category_levels(value: Any, separator: str, merchandising_roots: Iterable[str] = ()) -> list[str]:
    """The category levels of a path string or a list; [] when there is none.

    A string is split on `separator` (surrounding spaces ignored). A list whose items contain the
    separator is a list of alternative paths (Magento: ["Men/Tops/Hoodies & Sweatshirts", "Collections/
    Eco Friendly"]): the first path whose top level is not a merchandising root wins. A list of plain
    names is one path given level by level (Magento gear: ["Gear", "Bags", "Collections", "Erin
    Recommends"]): it ends where the first merchandising root begins. Empty levels are dropped.
    """
    split_on = separator.strip() or separator
    roots = {root.casefold() for root in merchandising_roots}
    if value is None:
        return []
    if not isinstance(value, list | tuple):
        return [level for level in (_fold(part) for part in str(value).split(split_on)) if level]
    items = [_fold(str(item)) for item in value if item is not None]
    items = [item for item in items if item]
    if any(split_on in item for item in items):
        paths = [category_levels(item, separator) for item in items]
        paths = [path for path in paths if path]
        return next((path for path in paths if path[0].casefold() not in roots), [])
    levels: list[str] = []
    for item in items:
        if item.casefold() in roots:
            break
        levels.append(item)
    return levels


def is_consumable(title: str, category_path: Sequence[str], rule: ConsumableRule | None = None) -> bool:
    """True when the title or a category level names something used up (by default the toy-shop preset)."""
    return (rule or CONSUMABLE_PRESETS["toys"]).matches(title, category_path)


@cache
def _keyword_pattern(keywords: tuple[str, ...]) -> re.Pattern[str]:
    return re.compile(r"\b(?:" + "|".join(re.escape(k.casefold()) for k in keywords) + r")\b")


class _RawRecord(NamedTuple):
    number: int
    fields: Mapping[str, Any] | None  # None when the record could not be parsed at all
    excerpt: str
    error: str | None  # a read-level quarantine reason


class _Product(NamedTuple):
    native_id: str
    title: str
    brand: str | None
    category_path: list[str]
    price: float
    rating: float | None
    review_count: int | None


def _normalize(
    fields: Mapping[str, Any], mapping: ColumnMapping, max_price: float
) -> tuple[_Product | None, str | None]:
    native_id = _native_id(fields.get(mapping.id))
    if native_id is None:
        return None, REASON_MISSING_ID
    title = _fold(fields.get(mapping.title))
    if not title:
        return None, REASON_EMPTY_TITLE
    try:
        price = parse_price(fields.get(mapping.price))
    except ValueError as exc:
        return None, f"{REASON_UNPARSEABLE_PRICE}: {exc}"
    if price is None:
        return None, REASON_MISSING_PRICE
    if not price > 0 or price > max_price:
        return None, f"{REASON_ABSURD_PRICE}: {price:g} (must be > 0 and <= {max_price:g})"
    if mapping.category_columns:
        category = [fields.get(column) for column in mapping.category_columns]
        path = [level for level in (_fold(value) for value in category) if level]
    else:
        category = fields.get(mapping.category) if mapping.category else None
        path = category_levels(category, mapping.category_separator, mapping.merchandising_roots)
    return (
        _Product(
            native_id=native_id,
            title=title,
            brand=(_fold(fields.get(mapping.brand)) or None) if mapping.brand else None,
            category_path=path or [UNCATEGORIZED],
            price=price,
            rating=_rating(fields.get(mapping.rating)) if mapping.rating else None,
            review_count=_review_count(fields.get(mapping.review_count)) if mapping.review_count else None,
        ),
        None,
    )


def _products_frame(source: CatalogSource, kept: list[_Product], brands: list[str]) -> pl.DataFrame:
    rows = [
        (
            f"{source.name}:{p.native_id}",
            source.name,
            p.title,
            brand,
            p.category_path,
            CATEGORY_JOINER.join(p.category_path),
            p.category_path[0],
            p.category_path[-1],
            p.price,
            source.mapping.currency,
            p.rating,
            p.review_count,
            source.consumables.matches(p.title, p.category_path),
        )
        for p, brand in zip(kept, brands, strict=True)
    ]
    return pl.DataFrame(rows, schema=CATALOG_SCHEMA, orient="row")


def _collapse_brand_case(brands: list[str | None]) -> tuple[list[str], int]:
    """Each brand rewritten to its most frequent case variant (ties: first seen); None -> Unbranded."""
    spellings: dict[str, Counter[str]] = {}
    for brand in brands:
        if brand is not None:
            spellings.setdefault(brand.casefold(), Counter())[brand] += 1
    canonical = {key: counts.most_common(1)[0][0] for key, counts in spellings.items()}
    out = [UNBRANDED if brand is None else canonical[brand.casefold()] for brand in brands]
    merged = sum(before is not None and before != after for before, after in zip(brands, out, strict=True))
    return out, merged


def _fold(value: Any) -> str:
    """Text in NFC with every run of whitespace (newlines too) folded to one space; '' for None."""
    if value is None:
        return ""
    return " ".join(normalize_text(str(value)).split())


def _native_id(value: Any) -> str | None:
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    text = _fold(value)
    return text or None


def _rating(value: Any) -> float | None:
    number = _leading_number(value)
    return number if number is not None and 1.0 <= number <= 5.0 else None


def _review_count(value: Any) -> int | None:
    number = _leading_number(value)
    return int(number) if number is not None and number.is_integer() else None


def _leading_number(value: Any) -> float | None:
    """The number a field starts with ("4.5 out of 5 stars" -> 4.5, "1,204" -> 1204.0), else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value) if math.isfinite(value) else None
    match = _LEADING_NUMBER.match(str(value))
    return float(match.group(1).replace(",", "")) if match else None


def _printable(text: str | None) -> str | None:
    """Text with escaped invalid bytes shown as U+FFFD, so that quarantine rows are valid strings."""
    if text is None:
        return None
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "replace")


def _read_csv(path: Path, source: CatalogSource) -> Iterator[_RawRecord]:
    """CSV rows; invalid bytes are decoded as escapes so that only their own record is quarantined."""
    text = path.read_bytes().decode(source.encoding, errors="surrogateescape").removeprefix("\ufeff")
    lines = list(io.StringIO(text, newline=""))  # split on line ends only, as the csv module expects
    reader = csv.reader(iter(lines), delimiter=source.delimiter)
    try:
        header = [_fold(_printable(name)) for name in next(reader)]
    except StopIteration:
        raise ValueError(f"{path}: empty CSV file (no header)") from None
    missing = [column for column in source.mapping.columns() if column not in header]
    if missing:
        hint = _delimiter_hint(header, source.delimiter)
        raise ValueError(f"{path}: CSV header lacks mapped columns {missing}; it has {header}{hint}")
    consumed = reader.line_num
    while True:
        start = consumed + 1
        try:
            row = next(reader)
            error = None
        except StopIteration:
            return
        except csv.Error as exc:
            row, error = None, f"{REASON_MALFORMED}: {exc}"
        raw = "".join(lines[consumed : reader.line_num]).rstrip("\r\n")
        consumed = reader.line_num
        if row == []:
            continue  # a blank line is not a record
        fields = None if row is None else dict(zip(header, row, strict=False))
        if error is None and row is not None and len(row) != len(header):
            error = f"{REASON_MALFORMED}: {len(row)} fields, the header has {len(header)}"
        if _BAD_BYTE.search(raw):
            error = REASON_NOT_UTF8
        yield _RawRecord(start, fields, _printable(raw) or "", error)


def _delimiter_hint(header: list[str], delimiter: str) -> str:
    """A hint when a one-field header holds another common delimiter (a semicolon or tab CSV read with ',')."""
    if len(header) != 1:
        return ""
    found = [name for mark, name in ((";", "';'"), ("\t", "'\\t'"), ("|", "'|'"), (",", "','")) if mark in header[0]]
    found = [name for name in found if name != repr(delimiter)]
    return f" (one field only: is the delimiter {found[0]}? set `delimiter`)" if found else ""


def _read_jsonl(path: Path, source: CatalogSource) -> Iterator[_RawRecord]:
    """One record per non-blank line; a line that does not decode or is not JSON is quarantined alone."""
    with path.open("rb") as handle:
        for number, raw in enumerate(handle, start=1):
            if not raw.strip():
                continue
            error = None
            if number == 1:
                raw = raw.removeprefix(codecs.BOM_UTF8)
            try:
                line = raw.decode(source.encoding)
            except UnicodeDecodeError:
                line, error = raw.decode(source.encoding, errors="replace"), REASON_NOT_UTF8
            line = line.rstrip("\r\n")
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                yield _RawRecord(number, None, line, error or f"{REASON_MALFORMED}: not JSON ({exc.msg})")
                continue
            if not isinstance(record, dict):
                reason = error or f"{REASON_MALFORMED}: a JSON {type(record).__name__}, not an object"
                yield _RawRecord(number, None, line, reason)
                continue
            yield _RawRecord(number, record, line, error)


def _read_parquet(path: Path, source: CatalogSource) -> Iterator[_RawRecord]:
    """Parquet rows; a binary value that is not UTF-8 quarantines its row."""
    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a corrupt file
        raise ValueError(f"{path}: not a readable Parquet file: {exc}") from exc
    missing = [column for column in source.mapping.columns() if column not in parquet.schema_arrow.names]
    if missing:
        raise ValueError(f"{path}: Parquet file lacks mapped columns {missing}; it has {parquet.schema_arrow.names}")
    number = 0
    for batch in parquet.iter_batches(batch_size=10_000):
        for record in batch.to_pylist():
            number += 1
            fields, error = {}, None
            for key, value in record.items():
                if isinstance(value, bytes):
                    try:
                        value = value.decode("utf-8")
                    except UnicodeDecodeError:
                        value, error = value.decode("utf-8", errors="replace"), REASON_NOT_UTF8
                fields[key] = value
            yield _RawRecord(number, fields, json.dumps(fields, default=str, ensure_ascii=False), error)

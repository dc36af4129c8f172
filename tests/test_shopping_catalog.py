"""Catalog loader: the bundled catalogs, bad records quarantined with reasons, and unseen catalogs."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest

from ops.shopping.catalog import (
    AMAZON_UK_TOYS,
    CATALOG_SCHEMA,
    MAGENTO_LUMA,
    QUARANTINE_SCHEMA,
    REASON_TEXT,
    CatalogResult,
    CatalogSource,
    ColumnMapping,
    bundled_sources,
    category_levels,
    is_consumable,
    load_catalog,
    load_catalogs,
    parse_price,
)

SAMPLES = Path(__file__).resolve().parents[1] / "samples" / "shopping"
SIMPLE = ColumnMapping(id="id", title="title", brand="brand", category="category", price="price", currency="GBP")


@pytest.fixture(scope="module")
def bundled() -> dict[str, CatalogResult]:
    return {source.name: load_catalog(source) for source in bundled_sources(SAMPLES)}


def _balanced(result: CatalogResult) -> None:
    assert result.split.accounted()
    assert result.products.schema == CATALOG_SCHEMA
    assert result.quarantine.schema == QUARANTINE_SCHEMA
    assert result.products["product_id"].is_unique().all()
    assert result.quarantine["record_id"].is_unique().all()


def _reasons(result: CatalogResult) -> dict[int, str]:
    """The detail of each quarantined record by record number; its reason code must name the detail's rule."""
    for row in result.quarantine.iter_rows(named=True):
        assert row["detail"].startswith(REASON_TEXT[row["reason"]]), row
        assert row["record_id"] == f"{row['source']}#{row['record_number']}"
    return dict(zip(result.quarantine["record_number"], result.quarantine["detail"], strict=True))


def test_amazon_slice_counts_and_normalization(bundled: dict[str, CatalogResult]) -> None:
    amazon = bundled["amazon_uk_toys"]
    _balanced(amazon)
    assert (amazon.rows_in, amazon.products.height, amazon.quarantine.height) == (2000, 1727, 273)
    assert amazon.quarantine["reason"].unique().to_list() == ["missing_price"]
    # Third data row (file line 4) is the first without a price; its id is kept for tracing.
    first = amazon.quarantine.row(0, named=True)
    assert (first["record_number"], first["product_id"]) == (4, "5afbaf65680c9f378af5b3a3ae22427e")
    assert first["excerpt"].startswith("5afbaf65680c9f378af5b3a3ae22427e,Learning Curve Chuggington")
    assert amazon.uncategorized == 107  # 135 rows have no category; 28 of those also lack a price
    assert amazon.products.filter(pl.col("category_path") == ["Uncategorized"]).height == 107
    assert amazon.products["top_category"].n_unique() == 29  # 28 real top levels + "Uncategorized"
    assert amazon.products["brand"].str.to_lowercase().eq("bgc").sum() == 3
    assert "bgc" not in amazon.products["brand"].to_list()  # case variant collapsed to "BGC" (2 vs 1)
    assert amazon.brand_spellings_merged == 1
    assert amazon.products["consumable"].sum() == 330
    assert amazon.products["price"].min() == 0.37 and amazon.products["price"].max() == 995.11
    hornby = amazon.products.row(0, named=True)
    assert hornby == {
        "product_id": "amazon_uk_toys:eac7efa5dbd3d667f26eb3d3ab504464",
        "source": "amazon_uk_toys",
        "title": "Hornby 2014 Catalogue",
        "brand": "Hornby",
        "category_path": ["Hobbies", "Model Trains & Railway Sets", "Rail Vehicles", "Trains"],
        "category": "Hobbies > Model Trains & Railway Sets > Rail Vehicles > Trains",
        "top_category": "Hobbies",
        "leaf_category": "Trains",
        "price": 3.42,
        "currency": "GBP",
        "rating": 4.9,
        "review_count": 15,
        "consumable": False,
    }


def test_magento_catalog_categories_and_quarantine(bundled: dict[str, CatalogResult]) -> None:
    luma = bundled["magento_luma"]
    _balanced(luma)
    assert (luma.rows_in, luma.products.height) == (199, 196)
    assert _reasons(luma) == {
        197: "absurd price: 0 (must be > 0 and <= 12500)",  # the USD default of ops.shopping.currencies
        198: "missing price",
        199: "missing price",
    }
    assert luma.quarantine["product_id"].to_list() == ["240-LV09", "24-WG080", "24-WG085_Group"]
    by_id = {row["product_id"]: row for row in luma.products.iter_rows(named=True)}
    hoodie = by_id["magento_luma:MH01"]  # ["Men/Tops/Hoodies & Sweatshirts", "Collections/Eco Friendly"]
    assert hoodie["category_path"] == ["Men", "Tops", "Hoodies & Sweatshirts"]
    assert (hoodie["price"], hoodie["currency"], hoodie["brand"], hoodie["rating"]) == (52.0, "USD", "Unbranded", None)
    assert set(luma.products["top_category"]) == {"Men", "Women", "Gear", "Training"}
    assert luma.products["category"].str.contains("Collections|Promotions").sum() == 0
    assert luma.unbranded == 196
    assert luma.products.filter(pl.col("consumable"))["title"].to_list() == ["Affirm Water Bottle"]


def test_load_catalogs_concatenates_with_prefixed_ids(bundled: dict[str, CatalogResult]) -> None:
    both = load_catalogs(bundled_sources(SAMPLES))
    _balanced(both)
    assert (both.rows_in, both.products.height, both.quarantine.height) == (2199, 1923, 276)
    assert both.metadata()["quarantined_missing_price"] == 275
    assert both.products["product_id"].str.split(":").list.first().eq(both.products["source"]).all()
    source = bundled_sources(SAMPLES)[0]
    with pytest.raises(ValueError, match="unique"):
        load_catalogs([source, source])


def test_max_price_is_configurable() -> None:
    amazon = load_catalog(bundled_sources(SAMPLES)[0], max_price=100.0)
    _balanced(amazon)
    absurd = amazon.quarantine.filter(pl.col("reason") == "absurd_price")
    assert absurd.height == 46
    assert absurd["detail"].str.ends_with("(must be > 0 and <= 100)").all()
    assert amazon.products["price"].max() <= 100.0


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


def test_bad_csv_records_are_quarantined_with_reasons(tmp_path: Path) -> None:
    rows = [
        b"id,title,brand,category,price",
        b"A1,Kite,Acme,Toys > Outdoor,4.50",  # line 2: kept
        b'A2,"Two-line\ntitle",Acme,Toys,"\xc2\xa31,299.00"',  # lines 3-4: kept, title folded
        b"A3,No price,Acme,Toys,",  # line 5
        b"A4,Bad price,Acme,Toys,about four",  # line 6
        b"A5,Free thing,Acme,Toys,0",  # line 7
        b"A6,Too dear,Acme,Toys,20000",  # line 8
        b"A7,   ,Acme,Toys,3.00",  # line 9
        b"A1,Kite again,Acme,Toys,5.00",  # line 10: duplicate of line 2
        b"A8,Caf\xe9 set,Acme,Toys,7.00",  # line 11: Latin-1 byte
        b",No id,Acme,Toys,1.00",  # line 12
        b"A9,Short row,Acme",  # line 13
        b"A10,Negative,Acme,Toys,-2.50",  # line 14
        b"",  # blank line: not a record
        b"A11,Range,acme,,3.42 - 5.99",  # line 16: kept, no category
    ]
    result = load_catalog(CatalogSource(name="shop", path=_write(tmp_path, "c.csv", b"\n".join(rows)), mapping=SIMPLE))
    _balanced(result)
    assert result.rows_in == 13
    assert _reasons(result) == {
        5: "missing price",
        6: "unparseable price: 'about four'",
        7: "absurd price: 0 (must be > 0 and <= 10000)",
        8: "absurd price: 20000 (must be > 0 and <= 10000)",
        9: "empty title",
        10: "duplicate id",
        11: "not valid UTF-8",
        12: "missing id",
        13: "malformed record: 3 fields, the header has 5",
        14: "absurd price: -2.5 (must be > 0 and <= 10000)",
    }
    bad_bytes = result.quarantine.filter(pl.col("record_number") == 11).row(0, named=True)
    assert (bad_bytes["product_id"], bad_bytes["excerpt"]) == ("A8", "A8,Caf\ufffd set,Acme,Toys,7.00")
    products = {row["product_id"]: row for row in result.products.iter_rows(named=True)}
    assert list(products) == ["shop:A1", "shop:A2", "shop:A11"]
    assert products["shop:A1"]["title"] == "Kite"  # the first occurrence wins
    assert (products["shop:A2"]["title"], products["shop:A2"]["price"]) == ("Two-line title", 1299.0)
    assert (products["shop:A11"]["price"], products["shop:A11"]["category_path"]) == (3.42, ["Uncategorized"])
    assert {row["brand"] for row in products.values()} == {"Acme"}  # "acme" collapsed to the majority
    assert result.uncategorized == 1


def test_duplicate_id_keeps_first_usable_record(tmp_path: Path) -> None:
    data = b"id,title,brand,category,price\nB1,Broken,X,Toys,\nB1,Usable,X,Toys,2.00\nB1,Later,X,Toys,3.00\n"
    result = load_catalog(CatalogSource(name="s", path=_write(tmp_path, "d.csv", data), mapping=SIMPLE))
    _balanced(result)
    assert _reasons(result) == {2: "missing price", 4: "duplicate id"}
    assert result.products["title"].to_list() == ["Usable"]


def test_never_seen_catalog_loads_with_a_mapping_change(tmp_path: Path) -> None:
    data = (
        "sku_code,product title,maker,dept path,cost,stars,votes\n"
        'X-1,  Glow   Sticks Cre\u0300me ,ACME,Garden/Lights/,€12.50,4.5 out of 5,"1,204"\n'
        "X-2,Wooden Train,Acme,Toys/Trains,8,9,none\n"
        "X-3,Poster Paint Set,Acme,Arts//Paint,3.10,,\n"
        "X-4,Mystery Box,,,5,,\n"
    ).encode()
    mapping = ColumnMapping(
        id="sku_code",
        title="product title",
        brand="maker",
        category="dept path",
        price="cost",
        currency="EUR",
        category_separator="/",
        rating="stars",
        review_count="votes",
    )
    result = load_catalog(CatalogSource(name="new_shop", path=_write(tmp_path, "items.csv", data), mapping=mapping))
    _balanced(result)
    assert result.quarantine.height == 0
    frame = result.products
    assert frame["product_id"].to_list() == ["new_shop:X-1", "new_shop:X-2", "new_shop:X-3", "new_shop:X-4"]
    assert frame["title"][0] == "Glow Sticks Cr\u00e8me"  # NFC, whitespace folded
    assert frame["brand"].to_list() == ["Acme", "Acme", "Acme", "Unbranded"]
    assert frame["category"].to_list() == ["Garden > Lights", "Toys > Trains", "Arts > Paint", "Uncategorized"]
    assert frame["price"].to_list() == [12.5, 8.0, 3.1, 5.0]
    assert frame["currency"].unique().to_list() == ["EUR"]
    assert frame["rating"].to_list() == [4.5, None, None, None]  # 9 is outside 1..5
    assert frame["review_count"].to_list() == [1204, None, None, None]
    assert frame["consumable"].to_list() == [False, False, True, False]
    with pytest.raises(ValueError, match=r"lacks mapped columns \['sku_code', 'product title'"):
        load_catalog(CatalogSource(name="other", path=_write(tmp_path, "x.csv", b"id,title\n1,a\n"), mapping=mapping))


def test_jsonl_input_with_broken_lines(tmp_path: Path) -> None:
    lines = [
        json.dumps({"sku": "J1", "name": "Mat", "categories": ["Gear", "Fitness Equipment"], "price": 25}),
        "",
        '{"sku": "J2", "name": "Half',
        json.dumps({"sku": "J3", "name": "Tee", "categories": ["Promotions/Tees", "Women/Tops/Tees"], "price": 9}),
        "[1, 2]",
        json.dumps({"sku": "J4", "name": "Caf\u00e9 Tee", "categories": [], "price": "$19.99"}, ensure_ascii=False),
        json.dumps({"sku": "J5", "name": "Shorts", "categories": ["Men/Bottoms/Shorts"], "price": None}),
        json.dumps({"sku": "J6", "name": "Socks", "categories": "Men/Socks", "price": 4.5}),
    ]
    data = "\n".join(lines).encode().replace("Caf\u00e9".encode(), b"Caf\xe9")
    source = CatalogSource(name="luma", path=_write(tmp_path, "p.data", data), format="jsonl", mapping=MAGENTO_LUMA)
    result = load_catalog(source)
    _balanced(result)
    assert result.rows_in == 7
    assert _reasons(result) == {
        3: "malformed record: not JSON (Unterminated string starting at)",
        5: "malformed record: a JSON list, not an object",
        6: "not valid UTF-8",
        7: "missing price",
    }
    assert result.quarantine.filter(pl.col("record_number") == 6)["product_id"].to_list() == ["J4"]
    assert result.products["category"].to_list() == ["Gear > Fitness Equipment", "Women > Tops > Tees", "Men > Socks"]


def test_parquet_input_with_nan_price_and_bad_bytes(tmp_path: Path) -> None:
    path = tmp_path / "catalog.parquet"
    pl.DataFrame(
        {
            "sku": ["P1", "P2", "P3", "P1"],
            "name": [b"Balloons x10", b"Bad \xff bytes", b"Kite", b"Copy"],
            "categories": [["Party/Balloons"], ["Toys"], ["Toys/Outdoor"], ["Toys"]],
            "price": [2.5, 3.0, float("nan"), 1.0],
        },
        schema={"sku": pl.String, "name": pl.Binary, "categories": pl.List(pl.String), "price": pl.Float64},
    ).write_parquet(path)
    result = load_catalog(CatalogSource(name="pq", path=path, mapping=MAGENTO_LUMA))
    _balanced(result)
    assert _reasons(result) == {2: "not valid UTF-8", 3: "missing price", 4: "duplicate id"}
    kept = result.products.row(0, named=True)
    assert (kept["product_id"], kept["title"], kept["category"], kept["consumable"]) == (
        "pq:P1",
        "Balloons x10",
        "Party > Balloons",
        True,
    )


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (3.42, 3.42),
        (7, 7.0),
        ("£3.42", 3.42),
        ("$1,299.00", 1299.0),
        ("3.42 - 5.99", 3.42),
        ("£3.42 \u2013 £5.99", 3.42),
        (" 12 GBP ", 12.0),
        ("0.999", 1.0),
        ("", None),
        (None, None),
        (float("nan"), None),
    ],
)
def test_parse_price(raw: object, expected: float | None) -> None:
    assert parse_price(raw) == expected


@pytest.mark.parametrize("raw", ["abc", "3,4567", "12 apples", True, "1.2.3"])
def test_parse_price_rejects_non_prices(raw: object) -> None:
    with pytest.raises(ValueError):
        parse_price(raw)


def test_category_levels_rules() -> None:
    roots = MAGENTO_LUMA.merchandising_roots
    assert category_levels(" A >  > B ", " > ") == ["A", "B"]
    assert category_levels(["Collections/Eco", "Men/Tops"], "/", roots) == ["Men", "Tops"]
    assert category_levels(["Gear", "Bags", "Collections", "Erin Recommends"], "/", roots) == ["Gear", "Bags"]
    assert category_levels(["Collections/Eco"], "/", roots) == []
    assert category_levels(None, "/") == []


def test_consumable_rule() -> None:
    assert is_consumable("AA Batteries (4 pack)", ["Electronics"])
    assert is_consumable("Pirate hats", ["Party Supplies", "Hats"])
    assert not is_consumable("UNO Card Game", ["Games", "Card Games"])
    assert not is_consumable("Pinky the pig", ["Soft Toys"])  # "ink" only as a whole word


def test_source_and_file_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="contain no ':'"):
        CatalogSource(name="a:b", path=tmp_path / "x.csv", mapping=AMAZON_UK_TOYS)
    with pytest.raises(ValueError, match="cannot tell the format"):
        load_catalog(CatalogSource(name="a", path=_write(tmp_path, "x.txt", b"id\n"), mapping=SIMPLE))
    with pytest.raises(ValueError, match="does not exist"):
        load_catalog(CatalogSource(name="a", path=tmp_path / "missing.csv", mapping=SIMPLE))

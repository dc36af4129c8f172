"""Issue 20, shopping: currencies, a multi-column semicolon CSV with a BOM, consumables as configuration."""

from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from ops.shopping.catalog import (
    CONSUMABLE_PRESETS,
    CatalogSource,
    ColumnMapping,
    ConsumableRule,
    consumable_rule,
    load_catalog,
    parse_price,
)
from ops.shopping.currencies import CURRENCY_DEFAULTS, currency_defaults
from ops.shopping.personas import PersonaConfig, budget_defaults, generate_personas, shop_currency

GROCERY_CSV = (
    "\ufeffproduct;category;sub_category;type;brand;sale_price;currency_note\n"
    "Basmati Rice 5 kg;Foodgrains, Oil & Masala;Rice & Rice Products;Basmati Rice;India Gate;\u20b91,299;x\n"
    "Cold Pressed Groundnut Oil;Foodgrains, Oil & Masala;Edible Oils & Ghee;Groundnut Oils;Gold Drop;Rs. 410;x\n"
    "Non-stick Kadai 28 cm;Kitchen, Garden & Pets;Cookware & Non Stick;Kadai;Prestige;INR 1099;x\n"
    "Espresso Machine Pro;Kitchen, Garden & Pets;Appliances;Espresso Machines;DeLonghi;\u20b910,090;x\n"
    "Steel Water Bottle 1 l;Kitchen, Garden & Pets;Storage;;Milton;549/-;x\n"
    "Whole Wheat Atta 10 kg;Foodgrains, Oil & Masala;Atta, Flours & Sooji;;Aashirvaad;\u20b91,29,999;x\n"
)
GROCERY_MAPPING = ColumnMapping(
    id="product",
    title="product",
    brand="brand",
    category=None,
    category_columns=("category", "sub_category", "type"),
    price="sale_price",
    currency="INR",
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("\u20b91,299", 1299.0),
        ("Rs. 1299", 1299.0),
        ("Rs 1,299.50", 1299.5),
        ("INR 1299", 1299.0),
        ("\u20b91,29,999", 129999.0),
        ("1299/-", 1299.0),
        ("\u20ac12,50", 12.5),
        ("1.299,00 \u20ac", 1299.0),
        ("EUR 8.99", 8.99),
        ("$5", 5.0),
        ("US$ 19.99", 19.99),
        ("\u00a33.42", 3.42),
        ("\u00a51,200", 1200.0),
    ],
)
def test_prices_in_common_currency_notations(raw: str, expected: float) -> None:
    assert parse_price(raw) == expected


def test_a_semicolon_csv_with_a_bom_and_three_category_columns_loads(tmp_path: Path) -> None:
    path = tmp_path / "groceries.csv"
    path.write_bytes(GROCERY_CSV.encode("utf-8"))
    source = CatalogSource(
        name="bigbasket", path=path, mapping=GROCERY_MAPPING, delimiter=";", consumables=CONSUMABLE_PRESETS["groceries"]
    )
    result = load_catalog(source)
    assert (result.rows_in, result.products.height, result.quarantine.height) == (6, 6, 0)
    rows = {row["title"]: row for row in result.products.iter_rows(named=True)}
    rice = rows["Basmati Rice 5 kg"]
    assert rice["category_path"] == ["Foodgrains, Oil & Masala", "Rice & Rice Products", "Basmati Rice"]
    assert (rice["price"], rice["currency"], rice["consumable"]) == (1299.0, "INR", True)
    assert rows["Steel Water Bottle 1 l"]["category_path"] == [
        "Kitchen, Garden & Pets",
        "Storage",
    ]  # empty level dropped
    assert rows["Espresso Machine Pro"]["price"] == 10090.0  # under the INR max_price, not "absurd"
    assert not rows["Non-stick Kadai 28 cm"]["consumable"] and not rows["Espresso Machine Pro"]["consumable"]


def test_the_comma_default_names_the_delimiter_it_probably_is(tmp_path: Path) -> None:
    path = tmp_path / "groceries.csv"
    path.write_bytes(GROCERY_CSV.encode("utf-8"))
    with pytest.raises(ValueError, match="is the delimiter ';'"):
        load_catalog(CatalogSource(name="bigbasket", path=path, mapping=GROCERY_MAPPING))


def test_csv_in_another_encoding(tmp_path: Path) -> None:
    path = tmp_path / "cp1252.csv"
    path.write_bytes(
        "id,title,price\n1,Cr\u00e8me br\u00fbl\u00e9e,\u20ac4,50\n".replace(",\u20ac4,50", ',"\u20ac4,50"').encode(
            "cp1252"
        )
    )
    mapping = ColumnMapping(id="id", title="title", brand=None, category=None, price="price", currency="EUR")
    result = load_catalog(CatalogSource(name="fr", path=path, mapping=mapping, encoding="cp1252"))
    assert result.products.select("title", "price").row(0) == ("Cr\u00e8me br\u00fbl\u00e9e", 4.5)
    assert load_catalog(CatalogSource(name="fr", path=path, mapping=mapping)).quarantine["reason"].to_list() == [
        "not_utf8"
    ]


def test_max_price_follows_the_currency_and_can_be_overridden(tmp_path: Path) -> None:
    path = tmp_path / "g.csv"
    path.write_bytes(GROCERY_CSV.encode("utf-8"))
    source = CatalogSource(name="b", path=path, mapping=GROCERY_MAPPING, delimiter=";")
    assert load_catalog(source).quarantine.height == 0
    strict = load_catalog(source, max_price=10_000.0)
    assert strict.quarantine["reason"].to_list() == ["absurd_price", "absurd_price"]
    gbp = ColumnMapping(**{**GROCERY_MAPPING.__dict__, "currency": "GBP"})
    assert load_catalog(CatalogSource(name="b", path=path, mapping=gbp, delimiter=";")).quarantine.height == 2
    with pytest.raises(ValueError, match="no money defaults for currency 'XYZ'"):
        currency_defaults("XYZ")


def test_consumables_are_configuration() -> None:
    toys = CONSUMABLE_PRESETS["toys"]
    assert toys.matches("AA Batteries (4 pack)", ["Electronics"]) and not toys.matches("Basmati Rice", ["Foodgrains"])
    groceries = consumable_rule("groceries")
    assert groceries.matches("Anything", ["Beverages", "Tea"]) and groceries.matches("Basmati Rice 5 kg", ["Misc"])
    custom = consumable_rule("groceries", keywords=["capsule"], categories=[])
    assert custom.matches("Coffee capsules x10", ["Misc"]) is False  # whole words: "capsules" is not "capsule"
    assert custom.matches("One capsule", ["Misc"]) and not custom.matches("Tea", ["Beverages"])
    assert not ConsumableRule().matches("Batteries", ["Party"])
    with pytest.raises(ValueError, match="not one of"):
        consumable_rule("pharmacy")


def test_budgets_follow_the_shop_currency() -> None:
    assert budget_defaults("GBP")[0] == (20.0, 300.0)  # the old defaults, unchanged for the GBP shop
    inr_range, inr_bounds = budget_defaults("INR")
    assert inr_range == CURRENCY_DEFAULTS["INR"].monthly_budget and inr_bounds.monthly_budget[1] == 1_000_000.0
    realistic = PersonaConfig(cohort_size=3, monthly_budget=(5_000.0, 40_000.0))
    personas = generate_personas("c", 0, realistic, ["Food"], {"Food": ["A"]}, inr_bounds)
    assert personas["monthly_budget"].is_between(5_000.0, 40_000.0).all()
    with pytest.raises(ValueError, match="monthly_budget"):  # the GBP bound refuses a realistic INR budget
        generate_personas("c", 0, realistic, ["Food"], {"Food": ["A"]}, budget_defaults("GBP")[1])
    overridden, bounds = budget_defaults("INR", (100.0, 200.0), 500.0)
    assert overridden == (100.0, 200.0) and bounds.monthly_budget == (1.0, 500.0)
    assert shop_currency(pl.DataFrame({"currency": ["INR", "INR"]})) == "INR"
    with pytest.raises(ValueError, match="one currency"):
        shop_currency(pl.DataFrame({"currency": ["INR", "GBP"]}))


@pytest.mark.slow
def test_an_inr_shop_simulates_customers_who_buy(instance, assay_home, tmp_path: Path, monkeypatch) -> None:
    from pipelines.definitions import build_definitions
    from pipelines.profiles import build_resources

    rows = ["product;category;sub_category;type;brand;sale_price;currency_note"]
    for index in range(60):
        price = f"\u20b9{200 + 97 * index:,}"
        rows.append(f'Item {index};Dept {index % 4};Aisle {index % 7};;Brand {index % 5};"{price}";x')
    path = tmp_path / "shop.csv"
    path.write_bytes(("\ufeff" + "\n".join(rows) + "\n").encode("utf-8"))
    monkeypatch.setenv("ASSAY_SHOPPING_SHOP", "inr_shop")
    monkeypatch.setenv("ASSAY_SHOPPING_CUSTOMERS_PER_COHORT", "4")
    defs = build_definitions(build_resources("local"))
    source = {
        "name": "inr_shop",
        "path": str(path),
        "delimiter": ";",
        "id": "product",
        "title": "product",
        "brand": "brand",
        "category_columns": ["category", "sub_category", "type"],
        "price": "sale_price",
        "currency": "INR",
        "consumables": "groceries",
    }
    job = defs.resolve_implicit_global_asset_job_def()
    keys = [dg.AssetKey(k) for k in ("product_catalog", "product_catalog_quarantine", "product_search_results")]
    run_config = {"ops": {"product_catalog": {"config": {"sources": [source]}}}}
    catalog = job.execute_in_process(instance=instance, asset_selection=keys, run_config=run_config)
    assert catalog.success and all(check.passed for check in catalog.get_asset_check_evaluations())
    products = catalog.output_for_node("product_catalog", "product_catalog")
    assert products.height == 60 and products["price"].max() > 5_000 and products["category_path"].list.len().min() == 2
    cohort = job.execute_in_process(
        instance=instance,
        partition_key="cohort-000",
        asset_selection=[dg.AssetKey("customer_personas"), dg.AssetKey("shopping_trajectories")],
    )
    assert cohort.success
    personas = cohort.output_for_node("customer_personas")
    assert personas["monthly_budget"].is_between(*CURRENCY_DEFAULTS["INR"].monthly_budget).all()
    events = cohort.output_for_node("shopping_trajectories")
    assert (events["event_type"] == "purchase").sum() > 0

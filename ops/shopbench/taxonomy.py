"""The Shopping Reasoning Bench taxonomy: 5 reasoning categories and 15 subcategories.

The paper publishes the five categories and names three subcategories (preference refinement,
trade-off analysis, compatibility assessment) without saying which category holds each; the other
twelve are not public. Our choice (papers/README.md section 1): the three named ones go where their
names point (refining preferences narrows a recommendation, trade-offs are what a comparison weighs,
compatibility is a question about one product and something the user has), and we define three
subcategories per category so that every category has a single-turn and a multi-turn flavour.
`Subcategory.source` says which are the paper's ("paper") and which are ours ("assay").
"""

from __future__ import annotations

from dataclasses import dataclass

CATEGORIES: tuple[str, ...] = (
    "Product Recommendation",
    "Shopping Guidance",
    "Product Comparison",
    "Product Inquiry",
    "Conversational Navigation",
)


@dataclass(frozen=True)
class Subcategory:
    """One subcategory: its name, the category it belongs to, what it tests, and who defined it."""

    name: str
    category: str
    definition: str
    source: str  # "paper" (named by the Shopping Reasoning Bench paper) or "assay" (defined here)


SUBCATEGORIES: tuple[Subcategory, ...] = (
    Subcategory(
        "preference refinement",
        "Product Recommendation",
        "The user adds, tightens or ranks preferences and the assistant narrows its recommendation to match.",
        "paper",
    ),
    Subcategory(
        "budget-constrained selection",
        "Product Recommendation",
        "The user states a price limit and the assistant recommends only products within it.",
        "assay",
    ),
    Subcategory(
        "gift recommendation",
        "Product Recommendation",
        "The assistant recommends for a third person described by age, interests or occasion, not for the user.",
        "assay",
    ),
    Subcategory(
        "needs elicitation",
        "Shopping Guidance",
        "The request is underspecified and the assistant identifies and asks for the facts that decide the choice.",
        "assay",
    ),
    Subcategory(
        "buying criteria education",
        "Shopping Guidance",
        "The assistant explains which features matter for a product type and why, so the user can judge options.",
        "assay",
    ),
    Subcategory(
        "purchase planning",
        "Shopping Guidance",
        "The assistant assembles several complementary products into a plan or kit that meets a goal and a total.",
        "assay",
    ),
    Subcategory(
        "trade-off analysis",
        "Product Comparison",
        "The assistant weighs what the user gains and gives up with each option against the user's priorities.",
        "paper",
    ),
    Subcategory(
        "attribute comparison",
        "Product Comparison",
        "The assistant compares named products side by side on concrete attributes such as price, material or size.",
        "assay",
    ),
    Subcategory(
        "value assessment",
        "Product Comparison",
        "The assistant judges which option gives more for the money using price, contents, ratings or reviews.",
        "assay",
    ),
    Subcategory(
        "compatibility assessment",
        "Product Inquiry",
        "The assistant decides whether a product works with something the user already owns or plans to use.",
        "paper",
    ),
    Subcategory(
        "specification lookup",
        "Product Inquiry",
        "The assistant answers a factual question about one product's listed attributes without inventing any.",
        "assay",
    ),
    Subcategory(
        "suitability check",
        "Product Inquiry",
        "The assistant judges whether one product suits a stated person, age, activity or climate.",
        "assay",
    ),
    Subcategory(
        "constraint revision",
        "Conversational Navigation",
        "The user changes or reverses an earlier requirement and the assistant updates its advice accordingly.",
        "assay",
    ),
    Subcategory(
        "context carry-over",
        "Conversational Navigation",
        "The user refers back to earlier turns ('the second one', 'that bag') and the assistant resolves it.",
        "assay",
    ),
    Subcategory(
        "scope and availability handling",
        "Conversational Navigation",
        "The user asks for something the catalog lacks or outside shopping; the assistant says so and redirects.",
        "assay",
    ),
)

_BY_CATEGORY: dict[str, tuple[str, ...]] = {
    category: tuple(sub.name for sub in SUBCATEGORIES if sub.category == category) for category in CATEGORIES
}


def subcategories_of(category: str) -> tuple[str, ...]:
    """Subcategory names of `category` (empty for an unknown category)."""
    return _BY_CATEGORY.get(category, ())


def is_known(category: str, subcategory: str) -> bool:
    """True when `subcategory` is one of `category`'s subcategories in the taxonomy."""
    return subcategory in subcategories_of(category)


def category_of(subcategory: str) -> str | None:
    """The category holding `subcategory`, or None when the taxonomy has no such subcategory."""
    return next((sub.category for sub in SUBCATEGORIES if sub.name == subcategory), None)

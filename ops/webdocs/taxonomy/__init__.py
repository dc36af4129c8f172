"""The web-document taxonomy as data: Essential-Web's label sets plus two new dimensions, and prompts.

`label_sets.json` holds the codes and labels (transcribed from ../shared/data/eai_taxonomy, with
attribution to Essential AI); `prompts/` holds one system prompt per annotation pass and the user
template. Everything else in the project reads the taxonomy through these functions.
"""

from ops.webdocs.taxonomy.labels import (
    ABSTAIN,
    DIMENSIONS,
    FDC,
    FDC_LEVELS,
    FIELDS,
    PASS_NAMES,
    PASSES,
    condensed_key,
    fdc_levels,
    field_codes,
    label_name,
    label_sets,
    secondary_may_abstain,
    vocabularies,
)
from ops.webdocs.taxonomy.prompt_text import PROMPT_VERSION, system_prompt, user_message

__all__ = [
    "ABSTAIN",
    "DIMENSIONS",
    "FDC",
    "FDC_LEVELS",
    "FIELDS",
    "PASSES",
    "PASS_NAMES",
    "PROMPT_VERSION",
    "condensed_key",
    "fdc_levels",
    "field_codes",
    "label_name",
    "label_sets",
    "secondary_may_abstain",
    "system_prompt",
    "user_message",
    "vocabularies",
]

"""The question taxonomy: every question's theme and subtheme come from it. The KB keeps it as
data (intake's `themes` table); registration checks each question against it."""

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.intake.domain.model import Question, Slug
from shared import reference

Category = Literal["digital_government", "library_services", "other"]


class ThemeDefinition(BaseModel):
    """What the KB sends: PUT /v1/themes/{code} (the category is part of the key)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    category: Category
    label: str = Field(min_length=1, max_length=200)
    # subtheme -> receiving organisation (None: helped at the desk)
    subthemes: dict[Slug, Slug | None] = Field(default_factory=dict, max_length=100)
    default_organisation: Slug | None = None
    retired: bool = False


class Theme(ThemeDefinition):
    code: Slug

    def refuses(self, question: Question) -> str | None:
        """Why this theme does not accept the question's subtheme (None: it does)."""
        if question.subtheme and question.subtheme not in self.subthemes:
            return f"not a subtheme of theme '{self.code}' in the taxonomy; see GET /v1/themes"
        return None


def _theme(category: Category, code: str, label: str, subthemes=(), default_organisation=None) -> Theme:
    subs = subthemes if isinstance(subthemes, dict) else dict.fromkeys(subthemes)
    return Theme(category=category, code=code, label=label, subthemes=subs, default_organisation=default_organisation)


# Seeded on every start (existing rows are left alone: after the first start the data is the KB's).
SEED: list[Theme] = [
    *(
        _theme("digital_government", t.code, t.label, dict(t.subthemes), t.default_organisation)
        for t in reference.THEMES.values()
    ),
    _theme("library_services", "e-books", "E-books en luisterboeken", ("app", "lenen", "e-reader")),
    _theme("library_services", "lidmaatschap", "Lidmaatschap", ("aanmelden", "verlengen", "pas-kwijt", "betalen")),
    _theme("library_services", "printen", "Printen, kopiëren en scannen"),
    _theme("library_services", "wifi", "Wifi en computers"),
    _theme("library_services", "cursussen", "Cursussen en activiteiten"),
    _theme("library_services", "overig", "Overig"),
    _theme("other", "overig", "Overig"),
]

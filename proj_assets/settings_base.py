"""Base class for profile sections: strict (unknown keys and wrong types are errors)."""

from pydantic import BaseModel, ConfigDict


class Section(BaseModel):
    """A profile section. Forbids unknown keys so a typo is an error, not a silent default."""

    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)

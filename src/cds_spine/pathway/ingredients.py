"""Ingredient names found as whole words in free text (a medication's name, as records write it)."""
from __future__ import annotations

import re
from collections.abc import Iterable, Mapping

WORD = re.compile(r"[a-z]+")


class IngredientNames:
    """Finds ingredient names as whole words in free text (case-insensitive), fast: one tokenization,
    then set lookups (a regex alternation of every name costs several times more per text)."""

    def __init__(self, names_to_owner: Mapping[str, str]) -> None:
        self._by_first_word: dict[str, list[tuple[str, str]]] = {}
        for name, owner in names_to_owner.items():
            lowered = name.lower()
            self._by_first_word.setdefault(lowered.split()[0], []).append((lowered, owner))

    def found(self, text: str) -> Iterable[tuple[str, str]]:
        """(name, owner) of every name in the text, in the order they appear."""
        words = WORD.findall(text.lower())
        padded = f" {' '.join(words)} "
        for word in words:
            for name, owner in self._by_first_word.get(word, ()):
                if " " not in name or f" {name} " in padded:
                    yield name, owner

    def owner(self, text: str) -> str | None:
        """The owner (group id) of the first name found in the text, or None."""
        return next((owner for _, owner in self.found(text)), None)

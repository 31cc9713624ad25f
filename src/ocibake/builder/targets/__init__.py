"""Target recipes: what each `--target` puts in the image and how it builds the binary (one module per target).

A recipe answers: how go builds (strip, gcflags), whether the image sits on a base image, which layers go under the
binary, which layers go on top of it (Delve), and the runtime config. bake.py runs the one orchestration for all.
"""

from __future__ import annotations

from ocibake.builder.targets.common import Recipe
from ocibake.builder.targets.development import DEVELOPMENT
from ocibake.builder.targets.production import PRODUCTION
from ocibake.builder.targets.production_alpine import PRODUCTION_ALPINE
from ocibake.errors import InputError

RECIPES: dict[str, Recipe] = {r.name: r for r in (PRODUCTION, PRODUCTION_ALPINE, DEVELOPMENT)}

__all__ = ["RECIPES", "Recipe", "recipe_for"]


def recipe_for(target: str) -> Recipe:
    try:
        return RECIPES[target]
    except KeyError:
        raise InputError(f"unknown target {target!r}", hint=f"targets: {', '.join(RECIPES)}") from None

"""The HTML the commands write, as jinja2 templates in this folder: results.html, the handouts' index, fragments.

Templates named ``*.html`` are autoescaped: every value they insert is escaped
unless it is ``markupsafe.Markup``, and only the sanitizer's output is ever
passed as Markup. ``*.css`` templates (stylesheets filled in from our own
constants) are not escaped; they are only ever included inside ``<style>``.
A name missing from the values is an error (StrictUndefined), never empty text.
"""

from __future__ import annotations

from functools import cache

import jinja2


@cache
def environment() -> jinja2.Environment:
    """The one jinja2 environment for this folder (found through the package, from any working directory)."""
    return jinja2.Environment(
        loader=jinja2.PackageLoader("helpers.commands", "templates"),
        autoescape=jinja2.select_autoescape(enabled_extensions=("html",), disabled_extensions=("css",), default=True),
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


def render(name: str, /, **values: object) -> str:
    """The template ``name`` filled in with ``values``."""
    return environment().get_template(name).render(**values)

"""google.api.http path templates: `/v1/orders/{order_id}:cancel` → a matcher.

Supported: literal segments, `{field}` / `{field.sub}` (one segment), `{field=*}`, `{field=**}`
(the rest of the path) and a trailing `:verb`. Values are matched against the raw (still
percent-encoded) path and decoded afterwards, so `%2F` inside an id never splits a segment.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import unquote

_VARIABLE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_.]*)(?:=([^}]*))?\}")


@dataclass(frozen=True)
class PathTemplate:
    template: str
    regex: re.Pattern[str]
    variables: tuple[str, ...]  # field paths, in order
    verb: str
    # OpenAPI form: `/v1/orders/{order_id}:cancel` (field paths kept as the parameter names).
    openapi_path: str

    def match(self, raw_path: str) -> dict[str, str] | None:
        """The decoded variable values when `raw_path` matches, else None."""
        found = self.regex.fullmatch(raw_path)
        if found is None:
            return None
        return {
            name: unquote(found.group(f"v{index}")) for index, name in enumerate(self.variables)
        }

    @property
    def specificity(self) -> tuple[int, int]:
        """Sort key: verbs and more literal characters first, so `{id}:cancel` wins over `{id}`."""
        literal = len(_VARIABLE.sub("", self.template))
        return (0 if self.verb else 1, -literal)


def parse_template(template: str) -> PathTemplate:
    """Compile a template; raises ValueError when it is not one this gateway understands."""
    if not template.startswith("/"):
        raise ValueError(f"path template {template!r} must start with '/'")
    path, verb = template, ""
    last = template.rsplit("/", 1)[-1]
    if ":" in _VARIABLE.sub("", last):
        # The verb follows the last ':' outside a variable.
        cut = template.rfind(":")
        path, verb = template[:cut], template[cut + 1 :]
    pattern: list[str] = []
    variables: list[str] = []
    openapi: list[str] = []
    position = 0
    for found in _VARIABLE.finditer(path):
        literal = path[position : found.start()]
        pattern.append(re.escape(literal))
        openapi.append(literal)
        name, sub = found.group(1), found.group(2)
        if sub in (None, "*"):
            pattern.append(f"(?P<v{len(variables)}>[^/]+)")
        elif sub == "**":
            pattern.append(f"(?P<v{len(variables)}>.+)")
        else:
            raise ValueError(f"unsupported variable pattern {{{name}={sub}}} in {template!r}")
        variables.append(name)
        openapi.append("{" + name + "}")
        position = found.end()
    pattern.append(re.escape(path[position:]))
    openapi.append(path[position:])
    if verb:
        pattern.append(re.escape(":" + verb))
        openapi.append(":" + verb)
    return PathTemplate(
        template=template,
        regex=re.compile("".join(pattern)),
        variables=tuple(variables),
        verb=verb,
        openapi_path="".join(openapi),
    )

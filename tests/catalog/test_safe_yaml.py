"""The one reader of user-sent YAML refuses what would cost too much, early, with a stable code."""

from __future__ import annotations

import pytest

from apps.catalog.safe_yaml import (
    MAX_ALIASES,
    MAX_DEPTH,
    InvalidYaml,
    YamlTooComplex,
    YamlTooLarge,
    load_yaml_documents,
)


def test_plain_documents_come_back_as_json_data() -> None:
    assert load_yaml_documents("a: [1, yes, 2024-01-01]\n---\nb: {c: true}\n") == [
        {"a": [1, "yes", "2024-01-01"]},
        {"b": {"c": True}},
    ]


def test_size_is_checked_before_parsing() -> None:
    with pytest.raises(YamlTooLarge) as caught:
        load_yaml_documents("[" * 300_000)

    assert (caught.value.status, caught.value.code) == (413, "yaml_too_large")


@pytest.mark.parametrize(
    "text",
    [
        "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1),
        "{a: " * (MAX_DEPTH + 1) + "1" + "}" * (MAX_DEPTH + 1),
        "".join(f"{' ' * level}k{level}:\n" for level in range(MAX_DEPTH + 1)) + " " * (MAX_DEPTH + 1) + "v\n",
    ],
    ids=["flow-list", "flow-mapping", "block-mapping"],
)
def test_nesting_deeper_than_the_limit_is_refused(text: str) -> None:
    with pytest.raises(YamlTooComplex, match=f"deeper than {MAX_DEPTH} levels"):
        load_yaml_documents(text)


def test_nesting_at_the_limit_is_read() -> None:
    text = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)

    assert load_yaml_documents(text)[0] is not None


def test_too_many_aliases_are_refused() -> None:
    text = "a: &a x\nb: [" + ", ".join(["*a"] * (MAX_ALIASES + 1)) + "]\n"

    with pytest.raises(YamlTooComplex, match=f"more than {MAX_ALIASES} YAML aliases"):
        load_yaml_documents(text)


def test_alias_expansion_is_bounded() -> None:
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x, x]"]
    levels += [f"a{i}: &a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, 7)]

    with pytest.raises(YamlTooComplex, match="once YAML aliases are expanded"):
        load_yaml_documents("\n".join(levels) + "\n")


def test_merge_keys_stay_ordinary_keys_as_in_yaml_1_2() -> None:
    assert load_yaml_documents("base: &b {x: 1}\nchild:\n  <<: *b\n  y: 2\n") == [
        {"base": {"x": 1}, "child": {"<<": {"x": 1}, "y": 2}}
    ]


def test_control_characters_are_a_validation_error_with_the_position() -> None:
    with pytest.raises(InvalidYaml, match="control character #x0007 at position 3"):
        load_yaml_documents("ab:\x07")

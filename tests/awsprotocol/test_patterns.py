"""Model patterns compile and keep Java's meaning."""

from __future__ import annotations

import pytest

from shadowlab.awsprotocol import patterns
from shadowlab.awsprotocol.service_models import runtime_model, sagemaker_model


def all_model_patterns() -> set[str]:
    found = set()
    for model in (sagemaker_model(), runtime_model()):
        for name in model.shape_names:
            pattern = model.shape_for(name).metadata.get("pattern")
            if pattern is not None:
                found.add(pattern)
    return found


def test_every_pattern_in_the_models_compiles() -> None:
    found = all_model_patterns()
    assert len(found) > 100
    for pattern in found:
        patterns.compiled(pattern)


def test_compiled_once() -> None:
    assert patterns.compiled("[a-z]+") is patterns.compiled("[a-z]+")


def test_unicode_property_classes() -> None:
    tag = r"([\p{L}\p{Z}\p{N}_.:/=+\-@]*)"
    assert patterns.matches(tag, "Équipe 1/ä=ß")
    assert not patterns.matches(tag, "a#b")


def test_java_posix_classes_are_ascii_only() -> None:
    alnum = r"arn:[\p{Alnum}\-]+:lambda"
    assert patterns.matches(alnum, "arn:aws-cn:lambda")
    assert not patterns.matches(alnum, "arn:aws-é:lambda")
    printable = r"\A\S[\p{Print}]*\z"
    assert patterns.matches(printable, "a b~")
    assert not patterns.matches(printable, "aé")
    assert patterns.to_python(r"\p{Alnum}+") == "[a-zA-Z0-9]+"


def test_surrogate_pair_ranges_become_code_point_ranges() -> None:
    xml_text = r"[\u0020-\uD7FF\uE000-\uFFFD\uD800\uDC00-\uDBFF\uDFFF\t]*"
    assert xml_text in all_model_patterns()
    assert patterns.matches(xml_text, "text\twith emoji 🙂")
    assert not patterns.matches(xml_text, "bell\x07")


@pytest.mark.parametrize(("value", "ok"), [("abc", True), ("abc-", False), ("ab_c", False)])
def test_full_match_semantics(value: str, ok: bool) -> None:
    # Java's String.matches(): the pattern must cover the whole value.
    assert patterns.matches("[a-z]+(-[a-z]+)*", value) is ok

"""Typed references: one way to read `Type/id`."""

import pytest

from referral_service.kit.refs import Ref, id_of


def test_a_local_reference_parses_to_its_type_and_id() -> None:
    ref = Ref.parse("Patient/abc-1")
    assert (ref.rtype, ref.id, str(ref)) == ("Patient", "abc-1", "Patient/abc-1")
    assert ref.element() == {"reference": "Patient/abc-1"}
    assert id_of("Task/t1") == "t1"


@pytest.mark.parametrize(
    "text", ["", "Patient", "Patient/", "/1", "Patient/1/_history/2", "http://x/fhir/Patient/1"]
)
def test_anything_else_is_refused(text: str) -> None:
    with pytest.raises(ValueError):
        Ref.parse(text)


def test_a_reference_element_reads_or_is_none() -> None:
    assert Ref.of({"reference": "Organization/o1"}) == Ref.parse("Organization/o1")
    assert Ref.of({"reference": "urn:uuid:1"}) is None
    assert Ref.of({"display": "x"}) is None
    assert Ref.of(None) is None

"""The one request shape: stored as versioned JSON, read back the same, and read from what older versions stored."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.engine import Size
from bot.engine.types import FILL_CHOICES, MODES, RESOLUTIONS
from bot.spec import SPEC_VERSION, ResizeSpec

_SPECS = st.builds(
    ResizeSpec,
    sizes=st.lists(st.builds(Size, st.integers(16, 8192), st.integers(16, 8192)), min_size=1, max_size=10).map(tuple),
    mode=st.sampled_from(MODES),
    output_format=st.sampled_from(["auto", "png", "jpeg", "webp"]),
    variants=st.integers(1, 10),
    prompt=st.text(max_size=100),
    seed=st.none() | st.integers(0, 2**31 - 1),
    resolution=st.sampled_from(RESOLUTIONS),
    fill=st.sampled_from(FILL_CHOICES),
    focus=st.none() | st.tuples(st.floats(0, 1), st.floats(0, 1)),
)


@given(_SPECS)
def test_a_spec_survives_its_json(spec: ResizeSpec) -> None:
    stored = spec.to_json()
    assert stored["version"] == SPEC_VERSION
    assert ResizeSpec.from_json(stored) == spec


def test_the_stored_sizes_are_the_pairs_the_previous_release_reads() -> None:
    # Rolling back a deploy must not strand the jobs in flight: the previous release reads sizes as [w, h].
    assert ResizeSpec(sizes=(Size(1080, 1350),)).to_json()["sizes"] == [[1080, 1350]]


def test_specs_stored_before_versions_are_read() -> None:
    # What jobs stored before the spec had a version: sizes as [width, height] pairs, options possibly missing.
    legacy = {"sizes": [[1080, 1080], [1200, 630]], "mode": "crop", "variants": 2, "seed": None}
    expected = ResizeSpec(sizes=(Size(1080, 1080), Size(1200, 630)), mode="crop", variants=2)
    assert ResizeSpec.from_json(legacy) == expected


def test_a_spec_from_a_newer_version_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown resize spec version 99"):
        ResizeSpec.from_json({"version": 99, "sizes": [[10, 10]]})


def test_the_engine_request_carries_every_field() -> None:
    spec = ResizeSpec(sizes=(Size(100, 50),), mode="extend", output_format="webp", variants=3, prompt="p", seed=4)
    request = spec.engine_request(explain=True)
    assert (request.sizes, request.mode, request.output_format, request.variants) == (spec.sizes, "extend", "webp", 3)
    assert (request.prompt, request.seed, request.resolution, request.explain) == ("p", 4, "1K", True)


def test_describe_names_sizes_and_alternatives() -> None:
    assert ResizeSpec(sizes=(Size(1, 2), Size(3, 4))).describe() == "1x2, 3x4"
    assert ResizeSpec(sizes=(Size(1, 2),), variants=3).describe() == "1x2 (3 alternatives each)"


@given(_SPECS, _SPECS)
def test_specs_have_equal_digests_exactly_when_they_are_equal(one: ResizeSpec, other: ResizeSpec) -> None:
    assert (one.digest() == other.digest()) == (one == other)
    assert ResizeSpec.from_json(one.to_json()).digest() == one.digest()  # as a stored job reads it back

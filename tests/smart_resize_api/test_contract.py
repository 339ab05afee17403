"""The wire models against the contract's own examples, and every refusal's exact wording."""

from __future__ import annotations

import copy
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.smart_resize_api.contract import (
    MAX_DATA_URI_CHARS,
    MAX_IMAGES_PER_SIZE,
    MAX_OUTPUTS,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_SIDE,
    MAX_TARGET_SIZES,
    MAX_URL_CHARS,
    MIN_SIDE,
    NOT_FOUND,
    ContractError,
    ErrorBody,
    JobOutput,
    ResultRequest,
    SmartResizeRequest,
    Status,
    StatusResponse,
    SubmitResponse,
    parse_target_size,
)

IMAGE = "https://pub-582b7213209642b9b995c96c95a30381.r2.dev/Image.jpeg"
RID = "smart-resize_019dxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"

# The contract's "Full Request (all options)", verbatim.
FULL_REQUEST: dict[str, Any] = {
    "image_url": IMAGE,
    "target_sizes": ["1024x1024", "1920x1080"],
    "prompt": "keep face centered",
    "num_images_per_size": 2,
    "resolution": "2K",
    "output_format": "webp",
    "safety_tolerance": "5",
    "seed": 42,
    "sync_mode": False,
}

# The contract's check-status response, verbatim.
COMPLETED_STATUS: dict[str, Any] = {
    "request_id": RID,
    "status": "COMPLETED",
    "model_id": "smart-resize",
    "error": None,
    "output": {
        "media_url": [
            "https://pub-582b7213209642b9b995c96c95a30381.r2.dev/v1/smart-resize_019dxxxx/output_1024x1024_0.png",
            "https://pub-582b7213209642b9b995c96c95a30381.r2.dev/v1/smart-resize_019dxxxx/output_1920x1080_0.png",
        ],
        "media_type": "image/png",
    },
    "created_at": "2026-03-31T10:00:00.000Z",
    "updated_at": "2026-03-31T10:00:15.000Z",
    "completed_at": "2026-03-31T10:00:15.000Z",
}

FORMAT_ERROR = ("Invalid target_sizes format", "Each item in target_sizes must be in format 'widthxheight'")
RANGE_ERROR = (
    "Invalid target_sizes",
    f"Each width and height in target_sizes must be between {MIN_SIDE} and {MAX_SIDE}",
)
URL_ERROR = ("Invalid image_url", "image_url must be an http(s) URL or a base64 data:image URI")
URL_LENGTH_ERROR = ("Invalid image_url", f"image_url must be at most {MAX_URL_CHARS} characters")
SIZES_ERROR = ("Invalid target_sizes", f"target_sizes must be an array of 1 to {MAX_TARGET_SIZES} items")
PROMPT_ERROR = ("Invalid prompt", f"prompt must be a string of at most {MAX_PROMPT_CHARS} characters")
VARIANTS_ERROR = (
    "Invalid num_images_per_size",
    f"num_images_per_size must be an integer between 1 and {MAX_IMAGES_PER_SIZE}",
)
SEED_ERROR = ("Invalid seed", f"seed must be an integer between 0 and {MAX_SEED}")


def refusal(obj: object) -> tuple[str, str]:
    with pytest.raises(ContractError) as caught:
        SmartResizeRequest.from_json(obj)
    assert caught.value.body.to_json() == {"error": caught.value.error, "details": caught.value.details}
    return caught.value.error, caught.value.details


def with_field(name: str, value: object) -> dict[str, Any]:
    body = copy.deepcopy(FULL_REQUEST)
    body[name] = value
    return body


# --- request ----------------------------------------------------------------------------------------------------


def test_minimum_request_gets_the_documented_defaults() -> None:
    request = SmartResizeRequest.from_json({"image_url": IMAGE, "target_sizes": ["1024x1024"]})
    assert request == SmartResizeRequest(IMAGE, ["1024x1024"])
    assert (request.prompt, request.num_images_per_size, request.resolution) == ("", 1, "1K")
    assert (request.output_format, request.safety_tolerance, request.seed, request.sync_mode) == (
        "png",
        "4",
        None,
        False,
    )
    assert "seed" not in request.to_json()
    assert request.to_json() == {
        "image_url": IMAGE,
        "target_sizes": ["1024x1024"],
        "prompt": "",
        "num_images_per_size": 1,
        "resolution": "1K",
        "output_format": "png",
        "safety_tolerance": "4",
        "sync_mode": False,
    }


def test_full_request_round_trips_exactly() -> None:
    request = SmartResizeRequest.from_json(json.loads(json.dumps(FULL_REQUEST)))
    assert request.seed == 42
    assert request.sizes == [(1024, 1024), (1920, 1080)]
    assert request.to_json() == FULL_REQUEST
    assert SmartResizeRequest.from_json(request.to_json()) == request


def test_request_keeps_its_own_copy_of_the_sizes() -> None:
    sizes = ["100x100"]
    request = SmartResizeRequest(IMAGE, sizes)
    sizes.append("not a size")
    assert request.target_sizes == ["100x100"]


def test_construction_in_code_validates_too() -> None:
    with pytest.raises(ContractError, match="Invalid output_format"):
        SmartResizeRequest(IMAGE, ["20x20"], output_format="gif")  # type: ignore[arg-type]


def test_the_contracts_400_example_is_produced_verbatim() -> None:
    with pytest.raises(ContractError) as caught:
        SmartResizeRequest.from_json(with_field("target_sizes", ["1024*1024"]))
    assert caught.value.status_code == 400
    assert caught.value.body.to_json() == {
        "error": "Invalid target_sizes format",
        "details": "Each item in target_sizes must be in format 'widthxheight'",
    }


def test_not_found_body_is_the_contracts() -> None:
    assert NOT_FOUND.to_json() == {"error": "Resource not found", "details": "The requested endpoint does not exist"}
    assert ErrorBody.from_json(NOT_FOUND.to_json()) == NOT_FOUND


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("image_url", 5, URL_ERROR),
        ("image_url", "", URL_ERROR),
        ("image_url", "file:///etc/passwd", URL_ERROR),
        ("image_url", "https://", URL_ERROR),
        ("image_url", "https://a b.com/x.png", URL_ERROR),
        ("image_url", "data:text/html;base64,PGI+", URL_ERROR),
        ("image_url", "data:image/png,raw", URL_ERROR),
        ("image_url", "https://x.com/" + "a" * MAX_URL_CHARS, URL_LENGTH_ERROR),
        ("target_sizes", "1024x1024", SIZES_ERROR),
        ("target_sizes", [], SIZES_ERROR),
        ("target_sizes", ["16x16"] * (MAX_TARGET_SIZES + 1), SIZES_ERROR),
        ("target_sizes", ["1024x1024", 5], FORMAT_ERROR),
        ("target_sizes", ["8193x100"], RANGE_ERROR),
        ("target_sizes", ["15x100"], RANGE_ERROR),
        ("prompt", None, PROMPT_ERROR),
        ("prompt", "p" * (MAX_PROMPT_CHARS + 1), PROMPT_ERROR),
        ("num_images_per_size", 0, VARIANTS_ERROR),
        ("num_images_per_size", MAX_IMAGES_PER_SIZE + 1, VARIANTS_ERROR),
        ("num_images_per_size", True, VARIANTS_ERROR),
        ("num_images_per_size", 2.0, VARIANTS_ERROR),
        ("num_images_per_size", "2", VARIANTS_ERROR),
        ("resolution", "8K", ("Invalid resolution", "Allowed: 1K, 2K, 4K")),
        ("resolution", "1k", ("Invalid resolution", "Allowed: 1K, 2K, 4K")),
        ("output_format", "gif", ("Invalid output_format", "Allowed: jpeg, png, webp")),
        ("output_format", "jpg", ("Invalid output_format", "Allowed: jpeg, png, webp")),
        ("output_format", None, ("Invalid output_format", "Allowed: jpeg, png, webp")),
        ("safety_tolerance", 7, ("Invalid safety_tolerance", "Allowed: 1, 2, 3, 4, 5, 6")),
        ("safety_tolerance", "7", ("Invalid safety_tolerance", "Allowed: 1, 2, 3, 4, 5, 6")),
        ("seed", -1, SEED_ERROR),
        ("seed", MAX_SEED + 1, SEED_ERROR),
        ("seed", False, SEED_ERROR),
        ("seed", "42", SEED_ERROR),
        ("sync_mode", 0, ("Invalid sync_mode", "sync_mode must be a boolean")),
        ("sync_mode", "false", ("Invalid sync_mode", "sync_mode must be a boolean")),
    ],
)
def test_every_field_refusal_has_its_exact_wording(name: str, value: object, expected: tuple[str, str]) -> None:
    assert refusal(with_field(name, value)) == expected


def test_too_many_images_in_total() -> None:
    sizes = ["20x20"] * (MAX_OUTPUTS // MAX_IMAGES_PER_SIZE + 1)
    body = with_field("target_sizes", sizes) | {"num_images_per_size": MAX_IMAGES_PER_SIZE}
    assert refusal(body) == (
        "Too many images",
        f"The number of target_sizes times num_images_per_size must be at most {MAX_OUTPUTS}",
    )


def test_body_shape_refusals() -> None:
    assert refusal([FULL_REQUEST]) == ("Invalid request body", "The request body must be a JSON object")
    assert refusal({"target_sizes": ["16x16"]}) == ("Missing required field", "image_url is required")
    assert refusal({"image_url": IMAGE}) == ("Missing required field", "target_sizes is required")
    error, details = refusal(with_field("output_fromat", "webp"))
    assert error == "Unknown field"
    assert details.startswith("Unknown field 'output_fromat'. Allowed: image_url, target_sizes, prompt,")


def test_seed_null_means_no_seed_and_data_uris_are_accepted() -> None:
    uri = "data:image/png;base64,iVBORw0KGgo="
    request = SmartResizeRequest.from_json({"image_url": uri, "target_sizes": ["16x16"], "seed": None})
    assert request.seed is None and request.image_url == uri
    too_long = "data:image/png;base64," + "A" * MAX_DATA_URI_CHARS
    assert refusal({"image_url": too_long, "target_sizes": ["16x16"]}) == (
        "Invalid image_url",
        f"A data URI in image_url must be at most {MAX_DATA_URI_CHARS} characters",
    )


# --- target sizes -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    ["1080X1080", "1080 x 1080", " 1080x1080", "1080x1080\n", "1080x", "x1080", "1080", "01080x1080", "0x10", "10x0",
     "-1x10", "10x10x10", "10×10", "１０x１０", "1e3x10", "+5x5", "", 1080, None, ["20x20"]],
)  # fmt: skip
def test_malformed_sizes_use_the_contracts_wording(text: object) -> None:
    with pytest.raises(ContractError) as caught:
        parse_target_size(text)
    assert (caught.value.error, caught.value.details) == FORMAT_ERROR


@pytest.mark.parametrize(
    "text", [f"{MAX_SIDE + 1}x10", f"10x{MAX_SIDE + 1}", "99999x1", "1x" + "9" * 5000, "1x1", "15x16", "16x15"]
)
def test_sizes_out_of_range(text: str) -> None:
    with pytest.raises(ContractError) as caught:
        parse_target_size(text)
    assert (caught.value.error, caught.value.details) == RANGE_ERROR


@given(st.integers(MIN_SIDE, MAX_SIDE), st.integers(MIN_SIDE, MAX_SIDE))
def test_every_valid_size_parses(width: int, height: int) -> None:
    assert parse_target_size(f"{width}x{height}") == (width, height)


@given(st.one_of(st.text(), st.from_regex(r"[0-9]{1,6}x[0-9]{1,6}", fullmatch=True)))
def test_size_parser_either_round_trips_or_refuses(text: str) -> None:
    try:
        width, height = parse_target_size(text)
    except ContractError as error:
        assert (error.error, error.details) in (FORMAT_ERROR, RANGE_ERROR)
    else:
        assert f"{width}x{height}" == text
        assert MIN_SIDE <= width <= MAX_SIDE and MIN_SIDE <= height <= MAX_SIDE


# --- from_json never raises anything but ContractError ----------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
# Mostly-valid request bodies, so that the strategy reaches both outcomes and every validator.
near_requests = st.fixed_dictionaries(
    {
        "image_url": st.sampled_from([IMAGE, "data:image/png;base64,AAAA", "ftp://x", ""]) | json_values,
        "target_sizes": st.lists(st.sampled_from(["16x16", "1024x1024", "8192x8192", "8193x1", "10X10"]), max_size=3)
        | json_values,
    },
    optional={
        "prompt": st.text(max_size=5) | json_values,
        "num_images_per_size": st.integers(-1, 12) | json_values,
        "resolution": st.sampled_from(["1K", "2K", "4K", "3K"]) | json_values,
        "output_format": st.sampled_from(["jpeg", "png", "webp", "gif"]) | json_values,
        "safety_tolerance": st.sampled_from(["1", "4", "6", "0", 4]) | json_values,
        "seed": st.none() | st.integers(-5, MAX_SEED + 5) | json_values,
        "sync_mode": st.booleans() | json_values,
        "extra": json_values,
    },
)


sizes = st.builds("{}x{}".format, st.integers(MIN_SIDE, MAX_SIDE), st.integers(MIN_SIDE, MAX_SIDE))
valid_requests = st.fixed_dictionaries(
    {
        "image_url": st.sampled_from([IMAGE, "data:image/webp;base64,UklG"]),
        "target_sizes": st.lists(sizes, min_size=1, max_size=10),
    },
    optional={
        "prompt": st.text(max_size=MAX_PROMPT_CHARS),
        "num_images_per_size": st.integers(1, MAX_IMAGES_PER_SIZE),
        "resolution": st.sampled_from(["1K", "2K", "4K"]),
        "output_format": st.sampled_from(["jpeg", "png", "webp"]),
        "safety_tolerance": st.sampled_from("123456"),
        "seed": st.none() | st.integers(0, MAX_SEED),
        "sync_mode": st.booleans(),
    },
)


@given(valid_requests)
def test_every_valid_body_parses_and_round_trips(obj: dict[str, Any]) -> None:
    request = SmartResizeRequest.from_json(obj)
    expected = SmartResizeRequest(IMAGE, ["16x16"]).to_json() | obj
    if expected.get("seed", 0) is None:
        del expected["seed"]
    assert request.to_json() == expected
    assert SmartResizeRequest.from_json(json.loads(json.dumps(request.to_json()))) == request


@given(valid_requests | near_requests | json_values)
def test_request_from_json_returns_a_valid_model_or_raises_contract_error(obj: Any) -> None:
    try:
        request = SmartResizeRequest.from_json(obj)
    except ContractError as error:
        assert error.error and error.details
        return
    assert isinstance(request, SmartResizeRequest)
    assert SmartResizeRequest.from_json(json.loads(json.dumps(request.to_json()))) == request


near_statuses = st.fixed_dictionaries(
    {"request_id": st.sampled_from([RID, ""]) | json_values, "status": st.sampled_from([*Status, "DONE"])},
    optional={
        "error": st.none() | st.text(max_size=5) | json_values,
        "output": st.none() | st.just(COMPLETED_STATUS["output"]) | json_values,
        "model_id": st.none() | json_values,
        "completed_at": st.none() | json_values,
    },
)


@given(near_statuses | json_values)
def test_response_parsers_return_models_or_raise_contract_error(obj: Any) -> None:
    for model in (StatusResponse, SubmitResponse, ResultRequest, JobOutput, ErrorBody):
        try:
            parsed = model.from_json(obj)
        except ContractError:
            continue
        assert type(model.from_json(parsed.to_json())) is model
        assert model.from_json(parsed.to_json()) == parsed


# --- responses --------------------------------------------------------------------------------------------------


def test_contract_status_example_parses_and_round_trips() -> None:
    answer = StatusResponse.from_json(COMPLETED_STATUS)
    assert answer.status is Status.COMPLETED and answer.status.terminal
    assert answer.output is not None and answer.output.media_type == "image/png"
    assert len(answer.output.media_url) == 2
    assert answer.to_json() == COMPLETED_STATUS


def test_submit_example_parses_and_round_trips() -> None:
    body = {"request_id": RID, "status": "QUEUED", "polling_url": f"https://gateway.pixazo.ai/v2/requests/status/{RID}"}
    answer = SubmitResponse.from_json(body)
    assert (answer.request_id, answer.status, answer.polling_url) == (RID, Status.QUEUED, body["polling_url"])
    assert answer.to_json() == body


def test_status_terminality() -> None:
    assert [s.value for s in Status if s.terminal] == ["COMPLETED", "FAILED", "ERROR"]
    assert not Status.QUEUED.terminal and not Status.PROCESSING.terminal


def test_responses_tolerate_extra_fields_but_not_wrong_shapes() -> None:
    assert StatusResponse.from_json(COMPLETED_STATUS | {"new_field": 1}).request_id == RID
    statuses = "QUEUED, PROCESSING, COMPLETED, FAILED, ERROR"
    bad_output = {"media_url": "x", "media_type": "image/png"}
    bad = [
        (COMPLETED_STATUS | {"output": None}, "a COMPLETED status must carry output.media_url or images"),
        (COMPLETED_STATUS | {"status": "IN_PROGRESS"}, f"status must be one of {statuses}"),
        (COMPLETED_STATUS | {"error": 5}, "error must be a string or null"),
        (COMPLETED_STATUS | {"request_id": ""}, "request_id must be a non-empty string"),
        (COMPLETED_STATUS | {"output": bad_output}, "output.media_url must be an array of non-empty strings"),
    ]
    for body, details in bad:
        with pytest.raises(ContractError) as caught:
            StatusResponse.from_json(body)
        assert (caught.value.error, caught.value.details) == ("Invalid response", details)


def test_an_output_block_without_media_type_is_read_and_its_type_taken_from_the_links() -> None:
    def media_type(*urls: str, **given: Any) -> str | None:
        output = StatusResponse.from_json(COMPLETED_STATUS | {"output": {"media_url": list(urls), **given}}).output
        assert output is not None and output.media_url == list(urls)
        return output.media_type

    assert media_type("https://cdn.example/v1/r/output_64x64_0.webp") == "image/webp"
    assert media_type("https://cdn.example/r/a.JPG?sig=x.png") == "image/jpeg"  # the path's, not the query's
    assert media_type("data:image/png;base64,AAAA") == "image/png"
    assert media_type("https://cdn.example/r/result") is None  # nothing says: the downloads will
    assert media_type("https://cdn.example/r/a.png", media_type=None) == "image/png"
    assert media_type("https://cdn.example/r/a.png", media_type="image/webp") == "image/webp"  # what it said stands


def test_result_request_is_strict() -> None:
    assert ResultRequest.from_json({"request_id": RID}).to_json() == {"request_id": RID}
    with pytest.raises(ContractError, match="request_id is required"):
        ResultRequest.from_json({})
    with pytest.raises(ContractError, match="Unknown field"):
        ResultRequest.from_json({"request_id": RID, "x": 1})
    with pytest.raises(ContractError, match="Invalid request_id"):
        ResultRequest.from_json({"request_id": 7})

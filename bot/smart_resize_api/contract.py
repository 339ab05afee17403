"""The hosted Smart Resize API's wire contract: request, status and error bodies, in both directions.

The client parses what the service sends with these models, and a self-hosted server that speaks the same contract
validates what it receives with them, so ``SmartResizeRequest.from_json`` is strict (unknown fields, wrong JSON
types and out-of-range values are refused) and every refusal is a ``ContractError`` whose ``body`` is the exact
400 body the contract documents. Response models tolerate extra fields, because the service may add some.

The contract sets no upper limits; the ones below are ours, chosen to match the Slack app's own caps.
"""

from __future__ import annotations

import json
import re
import urllib.parse
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Literal

DEFAULT_BASE_URL = "https://gateway.pixazo.ai/smart-resize/v1"
KEY_HEADER = "Ocp-Apim-Subscription-Key"
SUBMIT_PATH = "smart-resize-request"
RESULT_PATH = "smart-resize-request-result"
# Polling lives at the root of the API host, outside the base path.
STATUS_PATH = ("v2", "requests", "status")

Resolution = Literal["1K", "2K", "4K"]
OutputFormat = Literal["jpeg", "png", "webp"]
SafetyTolerance = Literal["1", "2", "3", "4", "5", "6"]

RESOLUTIONS: tuple[Resolution, ...] = ("1K", "2K", "4K")
OUTPUT_FORMATS: tuple[OutputFormat, ...] = ("jpeg", "png", "webp")
SAFETY_TOLERANCES: tuple[SafetyTolerance, ...] = ("1", "2", "3", "4", "5", "6")

# The engine's range (bot.engine.types.Limits), stated the same by every surface; the hosted service documents none.
MIN_SIDE = 16
MAX_SIDE = 8192
MAX_TARGET_SIZES = 40
MAX_IMAGES_PER_SIZE = 10
# One request makes len(target_sizes) * num_images_per_size images; each is paid for.
MAX_OUTPUTS = 100
MAX_PROMPT_CHARS = 1000
MIN_SEED = 0
MAX_SEED = 2**31 - 1
MAX_URL_CHARS = 2048
# The Slack app sends private images inline as data URIs; this admits a 50 MiB image in base64 plus its header.
MAX_IMAGE_BYTES = 50 * 1024 * 1024
MAX_DATA_URI_CHARS = 4 * -(-MAX_IMAGE_BYTES // 3) + 256
MAX_REQUEST_ID_CHARS = 256
# A request body is one object of a few fields, two levels deep (target_sizes). The size of a body is the server's
# business (413); these bound the work and memory of parsing one: 100 MB of "[0,0,..." would be 50 million values.
MAX_JSON_DEPTH = 16
MAX_JSON_ITEMS = 8192  # commas, "[" and "{": every value but the first of each array or object needs one

# ASCII digits only (``\d`` would accept other scripts' digits) and no leading zeros, so that a parsed size
# always serialises back to the exact same text.
_SIZE_PATTERN = re.compile(r"([1-9][0-9]*)x([1-9][0-9]*)")
_MAX_SIDE_DIGITS = len(str(MAX_SIDE))


class Status(StrEnum):
    QUEUED = "QUEUED"
    PROCESSING = "PROCESSING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    ERROR = "ERROR"  # a system error; the contract says the request was not charged

    @property
    def terminal(self) -> bool:
        return self in (Status.COMPLETED, Status.FAILED, Status.ERROR)


@dataclass(frozen=True, slots=True)
class ErrorBody:
    """The body of every 4xx the contract documents: ``{"error": ..., "details": ...}``."""

    error: str
    details: str

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "details": self.details}

    @classmethod
    def from_json(cls, obj: object) -> ErrorBody:
        if not isinstance(obj, dict):
            raise _invalid_response("an error body must be a JSON object")
        return cls(error=_response_str(obj, "error"), details=_response_str(obj, "details"))


# Verbatim from the contract.
NOT_FOUND = ErrorBody("Resource not found", "The requested endpoint does not exist")
# The contract's error, for a request id this key has no request by: a client matching it by text still does.
REQUEST_NOT_FOUND = ErrorBody("Resource not found", "No request with this request_id exists for this API key")
INVALID_TARGET_SIZES_FORMAT = ErrorBody(
    "Invalid target_sizes format", "Each item in target_sizes must be in format 'widthxheight'"
)


class ContractError(ValueError):
    """A body that breaks the contract; ``body`` is what a server answers with HTTP 400."""

    status_code = 400

    def __init__(self, error: str, details: str) -> None:
        super().__init__(f"{error}: {details}")
        self.error = error
        self.details = details

    @property
    def body(self) -> ErrorBody:
        return ErrorBody(self.error, self.details)


def parse_target_size(text: object) -> tuple[int, int]:
    """``"1080x1080"`` -> ``(1080, 1080)``. Raises ContractError with the contract's wording."""
    match = _SIZE_PATTERN.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        raise ContractError(INVALID_TARGET_SIZES_FORMAT.error, INVALID_TARGET_SIZES_FORMAT.details)
    width_text, height_text = match.groups()
    # Compare digit counts first: int() of a huge digit string is slow, or refused past 4300 digits.
    if any(len(t) > _MAX_SIDE_DIGITS or not MIN_SIDE <= int(t) <= MAX_SIDE for t in (width_text, height_text)):
        raise ContractError(
            "Invalid target_sizes", f"Each width and height in target_sizes must be between {MIN_SIDE} and {MAX_SIDE}"
        )
    return int(width_text), int(height_text)


@dataclass(frozen=True, slots=True)
class SmartResizeRequest:
    """POST /smart-resize-request. Construction validates, so an instance always serialises to a valid body."""

    image_url: str
    target_sizes: list[str]
    prompt: str = ""
    num_images_per_size: int = 1
    resolution: Resolution = "1K"
    output_format: OutputFormat = "png"
    safety_tolerance: SafetyTolerance = "4"
    seed: int | None = None
    sync_mode: bool = False

    def __post_init__(self) -> None:
        _check_image_url(self.image_url)
        if not isinstance(self.target_sizes, list) or not 1 <= len(self.target_sizes) <= MAX_TARGET_SIZES:
            raise ContractError(
                "Invalid target_sizes", f"target_sizes must be an array of 1 to {MAX_TARGET_SIZES} items"
            )
        for item in self.target_sizes:
            parse_target_size(item)
        # A private copy: the caller's list must not be able to change a validated request afterwards.
        object.__setattr__(self, "target_sizes", list(self.target_sizes))
        if not isinstance(self.prompt, str) or len(self.prompt) > MAX_PROMPT_CHARS:
            raise ContractError("Invalid prompt", f"prompt must be a string of at most {MAX_PROMPT_CHARS} characters")
        if not _is_int(self.num_images_per_size) or not 1 <= self.num_images_per_size <= MAX_IMAGES_PER_SIZE:
            raise ContractError(
                "Invalid num_images_per_size",
                f"num_images_per_size must be an integer between 1 and {MAX_IMAGES_PER_SIZE}",
            )
        if len(self.target_sizes) * self.num_images_per_size > MAX_OUTPUTS:
            raise ContractError(
                "Too many images",
                f"The number of target_sizes times num_images_per_size must be at most {MAX_OUTPUTS}",
            )
        _check_choice("resolution", self.resolution, RESOLUTIONS)
        _check_choice("output_format", self.output_format, OUTPUT_FORMATS)
        if _is_int(self.safety_tolerance):  # the document's enum is of strings, but 5 means "5" just as well
            object.__setattr__(self, "safety_tolerance", str(self.safety_tolerance))
        _check_choice("safety_tolerance", self.safety_tolerance, SAFETY_TOLERANCES)
        if self.seed is not None and (not _is_int(self.seed) or not MIN_SEED <= self.seed <= MAX_SEED):
            raise ContractError("Invalid seed", f"seed must be an integer between {MIN_SEED} and {MAX_SEED}")
        if not isinstance(self.sync_mode, bool):
            raise ContractError("Invalid sync_mode", "sync_mode must be a boolean")

    @property
    def sizes(self) -> list[tuple[int, int]]:
        return [parse_target_size(size) for size in self.target_sizes]

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "image_url": self.image_url,
            "target_sizes": list(self.target_sizes),
            "prompt": self.prompt,
            "num_images_per_size": self.num_images_per_size,
            "resolution": self.resolution,
            "output_format": self.output_format,
            "safety_tolerance": self.safety_tolerance,
            "sync_mode": self.sync_mode,
        }
        if self.seed is not None:
            body["seed"] = self.seed
        return body

    @classmethod
    def from_json(cls, obj: object) -> SmartResizeRequest:
        fields = _request_object(obj, required=("image_url", "target_sizes"), allowed=_REQUEST_FIELDS)
        return cls(**fields)


_REQUEST_FIELDS: tuple[str, ...] = (
    "image_url",
    "target_sizes",
    "prompt",
    "num_images_per_size",
    "resolution",
    "output_format",
    "safety_tolerance",
    "seed",
    "sync_mode",
)


@dataclass(frozen=True, slots=True)
class ResultRequest:
    """POST /smart-resize-request-result: ``{"request_id": ...}``."""

    request_id: str

    def __post_init__(self) -> None:
        if not _is_request_id(self.request_id):
            raise ContractError(
                "Invalid request_id",
                f"request_id must be a non-empty string of at most {MAX_REQUEST_ID_CHARS} characters",
            )

    def to_json(self) -> dict[str, Any]:
        return {"request_id": self.request_id}

    @classmethod
    def from_json(cls, obj: object) -> ResultRequest:
        return cls(**_request_object(obj, required=("request_id",), allowed=("request_id",)))


@dataclass(frozen=True, slots=True)
class SubmitResponse:
    """The answer to a submit: where to poll for the job."""

    request_id: str
    status: Status
    polling_url: str | None = None  # the client can derive it from request_id when it is missing

    def to_json(self) -> dict[str, Any]:
        body: dict[str, Any] = {"request_id": self.request_id, "status": self.status.value}
        if self.polling_url is not None:
            body["polling_url"] = self.polling_url
        return body

    @classmethod
    def from_json(cls, obj: object) -> SubmitResponse:
        if not isinstance(obj, dict):
            raise _invalid_response("a submit response must be a JSON object")
        return cls(
            request_id=_response_request_id(obj),
            status=_response_status(obj),
            polling_url=_response_optional_str(obj, "polling_url"),
        )


@dataclass(frozen=True, slots=True)
class JobOutput:
    media_url: list[str] = field(default_factory=list)  # CDN URLs, or data URIs when sync_mode was true
    # None: the service did not say, and the first URL's extension (or data URI) does not either; the downloads
    # then say what each image is.
    media_type: str | None = "image/png"

    def to_json(self) -> dict[str, Any]:
        return {"media_url": list(self.media_url), "media_type": self.media_type}

    @classmethod
    def from_json(cls, obj: object) -> JobOutput:
        if not isinstance(obj, dict):
            raise _invalid_response("output must be a JSON object")
        urls = obj.get("media_url")
        if not isinstance(urls, list) or not all(isinstance(url, str) and url for url in urls):
            raise _invalid_response("output.media_url must be an array of non-empty strings")
        # A paid result whose block leaves out media_type (or sends null) is still a result: its URLs are usable.
        media_type = _response_optional_str(obj, "media_type") or (_media_type_of(urls[0]) if urls else None)
        return cls(media_url=list(urls), media_type=media_type)


_MEDIA_TYPES_BY_EXTENSION = {
    "png": "image/png",
    "jpg": "image/jpeg",
    "jpeg": "image/jpeg",
    "webp": "image/webp",
    "gif": "image/gif",
    "avif": "image/avif",
}


def _media_type_of(url: str) -> str | None:
    """What a result link says it is: a data URI's type, or an http URL's path extension; None when neither."""
    if url[:5].lower() == "data:":
        kind = url[5:].split(",", 1)[0].split(";", 1)[0].strip().lower()
        return kind if kind.startswith("image/") else None
    path = urllib.parse.urlsplit(url).path
    name = path.rsplit("/", 1)[-1]
    if "." not in name:
        return None
    return _MEDIA_TYPES_BY_EXTENSION.get(name.rsplit(".", 1)[-1].lower())


@dataclass(frozen=True, slots=True)
class OutputImage:
    """One image of the document's "Output" block: ``{"file_name", "content_type", "url"}``."""

    file_name: str
    content_type: str
    url: str

    def to_json(self) -> dict[str, Any]:
        return {"file_name": self.file_name, "content_type": self.content_type, "url": self.url}

    @classmethod
    def from_json(cls, obj: object) -> OutputImage:
        if not isinstance(obj, dict):
            raise _invalid_response("each of images must be a JSON object")
        url = _response_str(obj, "url")
        if not url:
            raise _invalid_response("images[].url must be a non-empty string")
        return cls(
            file_name=_response_optional_str(obj, "file_name") or "",
            content_type=_response_optional_str(obj, "content_type") or "",
            url=url,
        )


@dataclass(frozen=True, slots=True)
class StatusResponse:
    """GET {polling_url} or POST /smart-resize-request-result. Timestamps stay ISO 8601 text, as sent.

    The document shows the finished images in two shapes: ``output.media_url`` / ``output.media_type`` in the
    status response, and an "Output" block ``{"images": [{"file_name", "content_type", "url"}], "description"}``.
    Both are read (a body that is only the Output block counts as COMPLETED); ``media_urls`` gives them as one list.
    """

    request_id: str
    status: Status
    model_id: str | None = None
    error: str | None = None
    output: JobOutput | None = None
    created_at: str | None = None
    updated_at: str | None = None
    completed_at: str | None = None
    images: list[OutputImage] | None = None
    description: str | None = None

    @property
    def media_urls(self) -> list[str]:
        if self.output is not None and self.output.media_url:
            return list(self.output.media_url)
        return [image.url for image in self.images or []]

    @property
    def media_type(self) -> str | None:
        if self.output is not None and self.output.media_url:
            return self.output.media_type
        return self.images[0].content_type or None if self.images else None

    def to_json(self) -> dict[str, Any]:
        # The contract sends nulls rather than omitting fields.
        body: dict[str, Any] = {
            "request_id": self.request_id,
            "status": self.status.value,
            "model_id": self.model_id,
            "error": self.error,
            "output": None if self.output is None else self.output.to_json(),
            "created_at": self.created_at,
            "updated_at": self.updated_at,
            "completed_at": self.completed_at,
        }
        if self.images is not None:
            body["images"] = [image.to_json() for image in self.images]
            body["description"] = self.description or ""
        return body

    @classmethod
    def from_json(cls, obj: object, *, request_id: str | None = None) -> StatusResponse:
        """``request_id``: the id asked about, for a body that is only the Output block (it names none)."""
        if not isinstance(obj, dict):
            raise _invalid_response("a status response must be a JSON object")
        raw_images = obj.get("images")
        if raw_images is not None and not isinstance(raw_images, list):
            raise _invalid_response("images must be an array")
        images = None if raw_images is None else [OutputImage.from_json(item) for item in raw_images]
        description = _response_optional_str(obj, "description")
        if "status" not in obj and images is not None and request_id is not None:
            return cls(request_id, Status.COMPLETED, images=images, description=description)
        status = _response_status(obj)
        raw_output = obj.get("output")
        output = None if raw_output is None else JobOutput.from_json(raw_output)
        if status is Status.COMPLETED and output is None and images is None:
            raise _invalid_response("a COMPLETED status must carry output.media_url or images")
        return cls(
            request_id=_response_request_id(obj),
            status=status,
            model_id=_response_optional_str(obj, "model_id"),
            error=_response_optional_str(obj, "error"),
            output=output,
            created_at=_response_optional_str(obj, "created_at"),
            updated_at=_response_optional_str(obj, "updated_at"),
            completed_at=_response_optional_str(obj, "completed_at"),
            images=images,
            description=description,
        )


def load_json_body(raw: bytes) -> object:
    """A request body as JSON, refused with the contract's 400 when it is not JSON, is nested more than
    MAX_JSON_DEPTH deep, or holds more than MAX_JSON_ITEMS values. Linear in the body, and never a 500: Python's
    parser would otherwise recurse into 5,000 nested arrays until RecursionError."""
    # Counted before parsing, in C: base64 and http URLs have no brackets, and a prompt at most 1,000 commas.
    if raw.count(b",") + raw.count(b"[") + raw.count(b"{") > MAX_JSON_ITEMS:
        raise ContractError(
            "Invalid JSON", f"The request body holds more than {MAX_JSON_ITEMS} JSON values; send one object of fields"
        )
    try:
        value = json.loads(raw)
    except RecursionError:
        raise _too_deep() from None
    except (ValueError, UnicodeDecodeError):  # also int() of a number of more than 4,300 digits
        raise ContractError("Invalid JSON", "The request body must be a JSON object") from None
    if _depth(value) > MAX_JSON_DEPTH:
        raise _too_deep()
    return value


def _too_deep() -> ContractError:
    return ContractError("Invalid JSON", f"The request body is nested more than {MAX_JSON_DEPTH} levels deep")


def _depth(value: object) -> int:
    """How deeply arrays and objects nest in ``value``, without recursion (the values are already bounded)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        children = item.values() if isinstance(item, dict) else item if isinstance(item, list) else None
        if children is None:
            continue
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in children)
    return deepest


def _request_object(obj: object, *, required: tuple[str, ...], allowed: tuple[str, ...]) -> dict[str, Any]:
    if not isinstance(obj, dict):
        raise ContractError("Invalid request body", "The request body must be a JSON object")
    for name in required:
        if name not in obj:
            raise ContractError("Missing required field", f"{name} is required")
    unknown = [key for key in obj if key not in allowed]
    if unknown:
        # Refused rather than ignored: a misspelt optional field would otherwise silently fall back to its default.
        raise ContractError("Unknown field", f"Unknown field {str(unknown[0])[:64]!r}. Allowed: {', '.join(allowed)}")
    return dict(obj)


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_request_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= MAX_REQUEST_ID_CHARS and value.strip() == value


def _check_choice(name: str, value: object, allowed: tuple[str, ...]) -> None:
    if not isinstance(value, str) or value not in allowed:
        raise ContractError(f"Invalid {name}", f"Allowed: {', '.join(allowed)}")


def _check_image_url(value: object) -> None:
    details = "image_url must be an http(s) URL or a base64 data:image URI"
    if not isinstance(value, str):
        raise ContractError("Invalid image_url", details)
    head = value[:256].lower()
    if head.startswith("data:"):
        if not head.startswith("data:image/") or ";base64," not in head:
            raise ContractError("Invalid image_url", details)
        if len(value) > MAX_DATA_URI_CHARS:
            raise ContractError(
                "Invalid image_url", f"A data URI in image_url must be at most {MAX_DATA_URI_CHARS} characters"
            )
        return
    if len(value) > MAX_URL_CHARS:
        raise ContractError("Invalid image_url", f"image_url must be at most {MAX_URL_CHARS} characters")
    try:
        parts = urllib.parse.urlsplit(value)
        host = parts.hostname
    except ValueError:
        raise ContractError("Invalid image_url", details) from None
    if parts.scheme.lower() not in ("http", "https") or not host or any(c.isspace() for c in value):
        raise ContractError("Invalid image_url", details)


def _invalid_response(details: str) -> ContractError:
    return ContractError("Invalid response", details)


def _response_str(obj: dict[Any, Any], name: str) -> str:
    value = obj.get(name)
    if not isinstance(value, str):
        raise _invalid_response(f"{name} must be a string")
    return value


def _response_optional_str(obj: dict[Any, Any], name: str) -> str | None:
    value = obj.get(name)
    if value is not None and not isinstance(value, str):
        raise _invalid_response(f"{name} must be a string or null")
    return value


def _response_request_id(obj: dict[Any, Any]) -> str:
    value = obj.get("request_id")
    if not _is_request_id(value):
        raise _invalid_response("request_id must be a non-empty string")
    assert isinstance(value, str)
    return value


def _response_status(obj: dict[Any, Any]) -> Status:
    value = obj.get("status")
    if not isinstance(value, str) or value not in Status.__members__:
        raise _invalid_response(f"status must be one of {', '.join(Status)}")
    return Status(value)

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config import ConfigError, load_limits, load_server_settings, load_settings
from bot.engine import Size

SOCKET = {"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_APP_TOKEN": "xapp-1-abc"}


def test_defaults_in_socket_mode() -> None:
    settings = load_settings(SOCKET)
    assert settings.socket_mode
    assert settings.backend == "local"
    assert settings.slack_api_url == "https://slack.com/api/"
    assert settings.database_path == Path("data/smart-resize.db")
    assert settings.default_sizes == (Size(1080, 1080), Size(1080, 1350), Size(1080, 1920), Size(1200, 630))
    assert settings.resize_reaction == "frame_with_picture"
    assert settings.job_retention_days == 30
    assert "xoxb" not in repr(settings) and "xapp" not in repr(settings)


def test_hosted_backend_is_chosen_by_its_key() -> None:
    assert load_settings({**SOCKET, "PIXAZO_API_KEY": "k"}).backend == "hosted"
    # "pixazo", the value earlier releases documented, still names the hosted backend.
    assert load_settings({**SOCKET, "PIXAZO_API_KEY": "k", "SMART_RESIZE_BACKEND": "pixazo"}).backend == "hosted"
    assert load_settings({**SOCKET, "PIXAZO_API_KEY": "k", "SMART_RESIZE_BACKEND": "hosted"}).backend == "hosted"
    assert load_settings({**SOCKET, "PIXAZO_API_KEY": "k", "SMART_RESIZE_BACKEND": "local"}).backend == "local"


def test_every_problem_is_reported_at_once() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings(
            {
                "SLACK_BOT_TOKEN": "xoxp-user-token",
                "PORT": "eighty",
                "SMART_RESIZE_BACKEND": "pixazo",
                "FETCH_ALLOW_PRIVATE_NETWORKS": "10.0.0.1/8",
                "DEFAULT_SIZES": "social 5x5",
                "DATABASE_URL": "mysql://db/jobs",
                "JOB_RETENTION_DAYS": "0",
            }
        )
    problems = caught.value.problems
    assert len(problems) == 8, problems
    assert any(p.startswith("SLACK_BOT_TOKEN must be the bot token") for p in problems)
    assert any(p.startswith("SLACK_APP_TOKEN is missing") and "SLACK_SIGNING_SECRET" in p for p in problems)
    assert any(p.startswith("PORT='eighty'") for p in problems)
    assert any("PIXAZO_API_KEY" in p for p in problems)
    assert any("10.0.0.1/8" in p for p in problems)
    assert any(p.startswith("DEFAULT_SIZES: 5x5") for p in problems)
    assert any("mysql" in p for p in problems)
    assert "JOB_RETENTION_DAYS=0 is out of range; use a number from 1 to 3650." in problems


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ({"PIXAZO_API_KEY": "k12 3"}, "PIXAZO_API_KEY has spaces or control characters; paste the key again"),
        ({"PIXAZO_API_KEY": "k1", "PIXAZO_BASE_URL": "ftp://x"}, "PIXAZO_BASE_URL='ftp://x' is not an http(s) URL"),
        ({"DEFAULT_SIZES": ","}, "DEFAULT_SIZES=',' names no size; give sizes or presets"),
    ],
)
def test_settings_the_app_would_trip_on_later_are_refused_at_start(settings: dict[str, str], said: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({"SLACK_BOT_TOKEN": "xoxb-1-2-abc", "SLACK_SIGNING_SECRET": "s", **settings})
    [problem] = caught.value.problems
    assert problem.startswith(said)
    assert "k12 3" not in problem  # a key is never echoed


def test_slack_api_url_override_gets_a_trailing_slash() -> None:
    settings = load_settings({**SOCKET, "SLACK_API_URL": "http://127.0.0.1:9/api"})
    assert settings.slack_api_url == "http://127.0.0.1:9/api/"


def test_python_m_bot_without_tokens_says_what_is_missing(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(Path(__file__).parents[1])},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "SLACK_BOT_TOKEN is missing" in result.stderr
    assert "Bot User OAuth Token" in result.stderr


def test_each_surface_reads_its_own_output_pixel_cap() -> None:
    # The app and the CLI read MAX_OUTPUT_MEGAPIXELS; smart-resize serve its own setting, and only that.
    assert load_limits({"MAX_OUTPUT_MEGAPIXELS": "30"}).max_output_pixels == 30_000_000
    server = load_server_settings({"MAX_OUTPUT_MEGAPIXELS": "lots", "SMART_RESIZE_MAX_OUTPUT_MEGAPIXELS": "40"})
    assert server.limits.max_output_pixels == 40_000_000


def test_default_sizes_must_fit_in_one_request() -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**SOCKET, "DEFAULT_SIZES": "social instagram", "MAX_OUTPUTS_PER_REQUEST": "4"})
    assert caught.value.problems == [
        "DEFAULT_SIZES has 5 sizes, more than one request may make (MAX_SIZES_PER_REQUEST=10, "
        "MAX_OUTPUTS_PER_REQUEST=4); name fewer sizes or raise those limits."
    ]
    with pytest.raises(ConfigError) as caught:
        load_settings({**SOCKET, "DEFAULT_SIZES": "4000x3000,1920x1080", "MAX_OUTPUT_MEGAPIXELS": "12"})
    assert caught.value.problems == [
        "DEFAULT_SIZES make 14.1 megapixels of images in all, more than one request may make "
        "(MAX_OUTPUT_MEGAPIXELS=12); name fewer or smaller sizes, or raise that limit."
    ]


def test_the_server_and_the_cli_read_the_same_caps() -> None:
    env = {"MAX_OUTPUTS_PER_REQUEST": "7", "MAX_IMAGE_MEGAPIXELS": "3", "MAX_DOWNLOAD_MB": "2", "ENGINE_WORKERS": "3"}
    server = load_server_settings(env)
    assert server.limits == load_limits(env) == load_settings({**SOCKET, **env}).limits
    assert (server.limits.max_outputs, server.limits.max_pixels, server.max_image_bytes) == (7, 3_000_000, 2 << 20)
    assert server.workers == load_settings({**SOCKET, **env}).engine_workers == 3
    with pytest.raises(ConfigError) as caught:
        load_server_settings({"ENGINE_WORKERS": "two", "SMART_RESIZE_PUBLIC_URL": "resize.example.com"})
    assert caught.value.problems == [
        "SMART_RESIZE_PUBLIC_URL='resize.example.com' is not an http(s) URL; use the address clients reach this "
        "server at, like https://resize.example.com.",
        "ENGINE_WORKERS='two' is not a whole number; use a number from 1 to 64.",
    ]
    assert load_server_settings({"SMART_RESIZE_API_KEYS": "a, b"}).queue_share == 50
    assert load_server_settings({"SMART_RESIZE_QUEUE_PER_KEY": "7"}).queue_share == 7


@pytest.mark.parametrize("keys", ["key-one key-two", "key-one,key\x7ftwo", "key-one,\tkey two"])
def test_server_keys_no_client_could_send_stop_the_start_without_being_shown(keys: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_server_settings({"SMART_RESIZE_API_KEYS": keys})
    assert caught.value.problems == [
        "SMART_RESIZE_API_KEYS has a key with spaces or control characters; separate keys with commas, like "
        "key-one,key-two."
    ]
    assert load_server_settings({"SMART_RESIZE_API_KEYS": " key-one , key-two "}).keys == {"key-one", "key-two"}


def test_source_links_have_a_stable_key_of_their_own() -> None:
    http = {"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_SIGNING_SECRET": "secret-1"}
    plain = load_settings(http)
    assert plain.public_base_url is None and plain.source_link_ttl_s == 900
    linked = load_settings({**http, "PUBLIC_BASE_URL": "https://resize.example.com/", "SOURCE_LINK_MINUTES": "5"})
    assert (linked.public_base_url, linked.source_link_ttl_s) == ("https://resize.example.com", 300)
    # Derived from the signing secret, so every replica and every restart signs alike; an explicit key wins.
    assert linked.source_link_key == load_settings(http).source_link_key != b""
    assert load_settings({**http, "SOURCE_LINK_KEY": "k" * 40}).source_link_key != linked.source_link_key
    assert "secret-1" not in repr(linked) and str(linked.source_link_key) not in repr(linked)
    with pytest.raises(ConfigError) as caught:
        load_settings({**http, "PUBLIC_BASE_URL": "resize.example.com"})
    assert caught.value.problems[0].startswith("PUBLIC_BASE_URL='resize.example.com' is not an http(s) URL")


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        # A line break in a token would crash the HTTP client at the first call to Slack, with a traceback.
        ({"SLACK_BOT_TOKEN": "xoxb-1-2\nabc"}, "SLACK_BOT_TOKEN holds spaces, line breaks or other characters"),
        ({"SLACK_APP_TOKEN": "xapp-1-A1\r\n-2"}, "SLACK_APP_TOKEN holds spaces, line breaks or other characters"),
        ({"SLACK_BOT_TOKEN": "xoxb-1-2 abc"}, "SLACK_BOT_TOKEN holds spaces, line breaks or other characters"),
        # Quotes kept as part of the value, as Docker's --env-file keeps them.
        ({"SLACK_BOT_TOKEN": '"xoxb-1-2-abc"'}, "SLACK_BOT_TOKEN has quotes around it, kept as part of its value"),
        ({"SLACK_APP_TOKEN": "'xapp-1-A1-2'"}, "SLACK_APP_TOKEN has quotes around it, kept as part of its value"),
        ({"SLACK_BOT_TOKEN": "xoxp-1-2-abc"}, "SLACK_BOT_TOKEN must be the bot token starting with xoxb-, not a user"),
        ({"SLACK_APP_TOKEN": "xoxb-1-2-abc"}, "SLACK_APP_TOKEN must be an app-level token starting with xapp-, not a"),
        (
            {"SLACK_APP_TOKEN": "", "SLACK_SIGNING_SECRET": "abc def"},
            "SLACK_SIGNING_SECRET holds spaces, line breaks or other characters",
        ),
    ],
)
def test_a_token_pasted_wrong_is_refused_at_start_in_one_line_saying_where_to_copy_it(
    settings: dict[str, str], said: str
) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings({**SOCKET, **settings})
    [problem] = caught.value.problems
    assert problem.startswith(said), problem
    assert "https://api.slack.com/apps" in problem
    assert "abc" not in problem and "A1" not in problem  # the value is never echoed


@given(st.text(max_size=30))
def test_a_token_that_starts_the_app_can_go_in_an_http_header(tail: str) -> None:
    try:
        settings = load_settings({"SLACK_BOT_TOKEN": "xoxb-" + tail, "SLACK_APP_TOKEN": "xapp-" + tail})
    except ConfigError as error:
        assert all("SLACK_" in problem for problem in error.problems)
        return
    for token in (settings.slack_bot_token, settings.slack_app_token):
        assert token is not None and token.isascii() and token.isprintable() and " " not in token


def test_the_example_tokens_of_env_example_are_refused_with_where_to_get_real_ones() -> None:
    example = dict(
        line.split("=", 1)
        for line in (Path(__file__).parents[1] / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    )
    with pytest.raises(ConfigError) as caught:
        load_settings({k: v for k, v in example.items() if v})
    assert len(caught.value.problems) == 2
    assert caught.value.problems[0].startswith("SLACK_BOT_TOKEN is still the example value from .env.example")
    assert caught.value.problems[1].startswith("SLACK_APP_TOKEN is still the example value from .env.example")


def test_env_example_lists_every_setting_the_readme_documents() -> None:
    root = Path(__file__).parents[1]
    readme = (root / "README.md").read_text()
    table = readme[readme.index("All from the environment or `.env`") :]
    documented = re.findall(r"^\| `([A-Z][A-Z0-9_]+)`", table, re.MULTILINE)
    example = (root / ".env.example").read_text()
    assert len(documented) > 20  # the table was found
    assert [name for name in documented if not re.search(rf"^#? ?{name}=", example, re.MULTILINE)] == []


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:Xk3#9vQ2pLm@db.internal:5432/jobs",  # the '#' starts a fragment: the port reads 'Xk3'
        "postgresql://app:Xk3/9vQ2pLm@db.internal:5432/jobs",  # the '/' starts the path
        "postgresql://app:12/9vQ2pLm@db.internal:5432/jobs",  # the same, with a port that does read as a number
        "postgresql://app:Xk3?9vQ2pLm@db.internal/jobs",
        "postgresql://app:9vQ2pLm@db.internal:99999/jobs",  # was a traceback (OverflowError) at the first connect
        "postgresql://app:9vQ2pLm@[::1/jobs",
    ],
)
def test_a_database_url_asyncpg_would_misread_is_refused_without_its_password(url: str) -> None:
    for load, env in ((load_settings, SOCKET), (load_server_settings, {"SMART_RESIZE_MEDIA_DIR": "/srv/media"})):
        with pytest.raises(ConfigError) as caught:
            load({**env, "DATABASE_URL": url})
        (problem,) = caught.value.problems
        assert problem.startswith("DATABASE_URL can't be read as a URL: percent-encode any / ? # @ : [ ]")
        assert "Xk3" not in problem and "9vQ2" not in problem


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://app:Xk3%239vQ2pLm@db.internal:5432/jobs",
        "postgresql://app:pw@db1:5432,db2/jobs",  # asyncpg's list of hosts, the last one on the default port
        "postgresql://app@[::1]:5432/jobs",
        "postgresql:///jobs?host=/var/run/postgresql",
        "postgres://db.internal/jobs",
    ],
)
def test_database_urls_asyncpg_reads_are_taken(url: str) -> None:
    assert load_settings({**SOCKET, "DATABASE_URL": url}).postgres_url == url


@given(
    user=st.text(min_size=1, max_size=12),
    password=st.text(min_size=1, max_size=24),
    port=st.integers(1, 65535),
)
def test_any_password_percent_encoded_is_taken(user: str, password: str, port: int) -> None:
    """What the refusal tells people to do always works: whatever the name and password hold, encoded they pass."""
    url = f"postgresql://{quote(user, safe='')}:{quote(password, safe='')}@db.internal:{port}/jobs"
    assert load_settings({**SOCKET, "DATABASE_URL": url}).postgres_url == url

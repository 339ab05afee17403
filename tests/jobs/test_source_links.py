"""Signed source links: only the job and expiry they were made for, checkable with the key alone."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from bot.jobs.source_links import PATH_PREFIX, SourceLinks, derive_key

KEY = derive_key("signing-secret")
JOB = uuid.uuid4().hex


def _token(link: str) -> str:
    return link.rsplit(PATH_PREFIX, 1)[1]


def test_a_link_names_its_job_until_it_expires() -> None:
    now = [1_000_000.0]
    links = SourceLinks("https://resize.example.com/", KEY, ttl_s=900, clock=lambda: now[0])
    link = links.link(JOB)
    assert link.startswith("https://resize.example.com/sources/")
    assert links.job_of(_token(link)) == JOB
    now[0] += 899
    assert links.job_of(_token(link)) == JOB
    now[0] += 2
    assert links.job_of(_token(link)) is None


def test_a_tampered_or_foreign_token_names_nothing() -> None:
    links = SourceLinks("https://r.example", KEY)
    job_id, expiry, signature = _token(links.link(JOB)).split(".")
    other_job = uuid.uuid4().hex
    forged = [
        f"{other_job}.{expiry}.{signature}",  # another job
        f"{job_id}.{int(expiry) + 3600}.{signature}",  # a later expiry
        f"{job_id}.{expiry}.{signature[:-1]}A" if signature[-1] != "A" else f"{job_id}.{expiry}.{signature[:-1]}B",
        f"{job_id}.{expiry}",
        "",
    ]
    assert all(links.job_of(token) is None for token in forged)
    # A link signed with another key (another installation, or a guessed secret) is refused too.
    assert SourceLinks("https://r.example", derive_key("another")).job_of(_token(links.link(JOB))) is None


def test_the_key_comes_from_the_secret_and_not_from_chance() -> None:
    assert derive_key("s") == derive_key("s") != derive_key("t")
    key = derive_key("s")
    shown = repr(SourceLinks("https://r.example", key))
    assert key.hex() not in shown and str(key) not in shown


@given(st.text(max_size=120))
def test_any_text_is_refused_without_an_error(token: str) -> None:
    assert SourceLinks("https://r.example", KEY).job_of(token) is None

"""The one rule for an API root a credential is sent to, as both clients apply it (the ShopiMind
resource's check and the pull's settings)."""

from __future__ import annotations

import pytest

from loyalty_pipeline.httpapi.urls import api_root_problem
from loyalty_pipeline.ingest.pull.client import PullError
from loyalty_pipeline.ingest.pull.run import resolve
from loyalty_pipeline.outbound.shopimind.resources import URL_ENV, ShopiMindConfigError, ShopiMindResource
from loyalty_pipeline.program import load_program
from loyalty_pipeline_tests.ingest.helpers import program_for


@pytest.mark.parametrize("url", ["https://core.shopimind.com", "http://127.0.0.1:8765", "http://localhost:1",
                                 "http://[::1]:8080"])
def test_https_anywhere_and_plain_http_to_this_machine_are_fine(url: str):
    assert api_root_problem(url, "X") is None


@pytest.mark.parametrize(("url", "says"), [
    ("http://api.example.com", "plain http is only allowed to 127.0.0.1/localhost"),
    ("http://10.0.0.1", "plain http is only allowed"),
    ("ftp://api.example.com", "is not an http(s) URL"),
    ("api.example.com", "is not an http(s) URL"),
    ("https://user:s3cret-pass@api.example.com", "carries credentials"),
    ("https://token-only@api.example.com", "carries credentials"),
])
def test_what_is_refused_is_named_and_a_credential_is_never_repeated(url: str, says: str):
    problem = api_root_problem(url, "X")
    assert problem is not None and problem.startswith("X ") and says in problem
    assert "s3cret" not in problem and "token-only" not in problem


def test_both_clients_apply_it(tmp_path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("SHOPIMIND_API_KEY", "a-good-looking-key-0123456789")
    monkeypatch.setenv(URL_ENV, "http://core.shopimind.com")
    with pytest.raises(ShopiMindConfigError, match="plain http is only allowed"):
        ShopiMindResource.from_env().check()
    program = load_program(program_for(tmp_path, "loyaltylion",
                                       pull={"enabled": True, "base_url": "http://api.loyaltylion.com"}))
    with pytest.raises(PullError, match="plain http is only allowed"):
        resolve(program)

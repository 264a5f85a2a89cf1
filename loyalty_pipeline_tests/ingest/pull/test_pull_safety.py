"""The platform's credentials never appear in the export, its manifest, the staging, logs, run metadata,
errors or the warehouse, even from an API that echoes them back in every form (as ShopiMind's key:
outbound/shopimind/test_safety.py)."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from urllib.parse import quote, quote_plus

import pytest

from loyalty_pipeline.devtools.standins import LoyaltyLionStandIn, VoucherifyStandIn
from loyalty_pipeline.ingest.pull.client import PullError
from loyalty_pipeline.ingest.pull.run import pull_export
from loyalty_pipeline_tests.harness import Pipeline, failure_messages
from loyalty_pipeline_tests.ingest.helpers import program_for
from loyalty_pipeline_tests.ingest.pull.helpers import D1, D2, FAST, objects, pull_program

KEY = 'pat_odd"key/with+plus&back\\slash-0123456789'  # every echoed form differs from the raw one
WRONG = "pat_wrong-key-0123456789-abcdef"


def forms(secret: str) -> tuple[str, ...]:
    return (secret, json.dumps(secret)[1:-1], quote(secret, safe=""), quote_plus(secret),
            quote(secret, safe="").lower())


def echoing(stand_in: type, *headers: str):
    """The stand-in, echoing the credential headers in every form into each object and error it sends."""
    class Echoing(stand_in):
        def answer(self, method, path, query, request_headers):
            reply = super().answer(method, path, query, request_headers)
            if reply is None:
                return None
            status, body, *rest = reply
            echo = " ".join(f for h in headers for f in forms(request_headers.get(h, "")))
            body = json.loads(json.dumps(body))
            for item in (body.get("customers") or body.get("vouchers") or body.get("data") or []):
                item["metadata"] = {"echo": echo, echo: "as a key"}
            if status >= 400:
                body["message"] = body["details"] = f"refused {echo}"
                body["error"] = {"message": f"refused {echo}"}
            return (status, body, *rest)
    return Echoing


def everything_under(root: Path) -> bytes:
    return b"\n".join(p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file())


def test_loyaltylion_key_never_reaches_files_logs_metadata_errors_or_the_warehouse(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    records: list[str] = []
    handler = logging.Handler(level=logging.DEBUG)
    handler.emit = lambda record: records.append(logging.Formatter().format(record))
    logging.getLogger().addHandler(handler)
    previous_level = logging.getLogger().level
    logging.getLogger().setLevel(logging.DEBUG)
    try:
        with echoing(LoyaltyLionStandIn, "Authorization")(objects("loyaltylion", D2), api_key=KEY) as api:
            api.inject("429", "500", "drop")
            program = program_for(tmp_path, "loyaltylion", pull={
                "enabled": True, "base_url": api.base_url, "requests_per_second": 1000, "page_size": 3})
            pipe = Pipeline(tmp_path, program_path=program, today=D2.isoformat())
            monkeypatch.setenv("LOYALTYLION_API_KEY", KEY)
            pulled = pipe.defs.resolve_job_def("pull_job").execute_in_process(instance=pipe.instance)
            daily = pipe.run(D2.isoformat())
            monkeypatch.setenv("LOYALTYLION_API_KEY", WRONG)  # refused, and echoed back in the refusal
            refused = pipe.defs.resolve_job_def("pull_job").execute_in_process(instance=pipe.instance,
                                                                                 raise_on_error=False)
            base_url = api.base_url
    finally:
        logging.getLogger().removeHandler(handler)
        logging.getLogger().setLevel(previous_level)
    assert pulled.success and daily.success and not refused.success
    assert "check LOYALTYLION_API_KEY" in failure_messages(refused)
    export = (pipe.exports / D2.isoformat() / "accounts.jsonl").read_text()
    assert export.count('"echo": "***') == len(objects("loyaltylion", D2))  # the echo arrived, masked

    seen = [*records, failure_messages(refused), export]
    for run in pipe.instance.get_runs():
        seen += [repr(run), *(repr(entry) for entry in pipe.instance.all_logs(run.run_id))]
    for table in [t for (t,) in pipe.query("SELECT table_name FROM information_schema.tables")]:
        seen.append(repr(pipe.query(f"SELECT * FROM {table}")))
    blob = "\n".join(seen).encode() + everything_under(pipe.exports) + pipe.warehouse.read_bytes()
    assert b"loyalty_api_pull" in blob and base_url.encode() in blob
    assert not [f for secret in (KEY, WRONG) for f in forms(secret) if f.encode() in blob]


def test_voucherify_credentials_are_scrubbed_from_what_is_pulled_and_from_a_failed_pull(tmp_path: Path):
    app_id, token = "app-id/with+odd&chars-0001", 'token"with/odd+chars&0002'
    environ = {"VOUCHERIFY_APP_ID": app_id, "VOUCHERIFY_APP_TOKEN": token}
    with echoing(VoucherifyStandIn, "X-App-Id", "X-App-Token")(
            objects("voucherify_v1", D1), campaign_id="camp_1", app_id=app_id, app_token=token) as api:
        program = pull_program(tmp_path, "voucherify", api.base_url, campaign_id="camp_1", page_size=4)
        pulled = pull_export(program, tmp_path / "exports", D1, today=D1, environ=environ, **FAST)
        api.down = True  # a pull that fails: its error quotes the (echoing) answer
        with pytest.raises(PullError) as info:
            pull_export(program, tmp_path / "exports", D2, today=D2, environ=environ, max_retries=1, **FAST)
    blob = everything_under(tmp_path / "exports") + str(info.value).encode() + json.dumps(pulled.manifest).encode()
    assert b'"echo": "***' in blob
    assert not [f for secret in (app_id, token) for f in forms(secret) if f.encode() in blob]


def test_a_credential_with_a_trailing_newline_is_refused_naming_the_variable_only(tmp_path: Path):
    # A key read from a file often ends with "\n": sent as a header, httpx would refuse it quoting the value.
    with LoyaltyLionStandIn(objects("loyaltylion", D1), api_key=KEY) as api:
        program = pull_program(tmp_path, "loyaltylion", api.base_url)
        with pytest.raises(PullError) as info:
            pull_export(program, tmp_path / "exports", D1, today=D1,
                        environ={"LOYALTYLION_API_KEY": KEY + "\n"}, **FAST)
        assert api.requests == []
    assert "LOYALTYLION_API_KEY holds whitespace or a control character" in str(info.value)
    assert KEY not in str(info.value) and not (tmp_path / "exports" / D1.isoformat()).exists()

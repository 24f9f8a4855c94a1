from __future__ import annotations

from typing import Any

import schemathesis
import schemathesis.specs.openapi.checks as C
from hypothesis import settings
from schemathesis.config import SchemathesisConfig

from jobmock import Mock, ScaledClock, VirtualClock, resolve_spec
from jobmock.asgi import create_app

import os
EXCL0 = [C.unsupported_method]
EXTRA = {"croma": [C.positive_data_acceptance], "cloro": [C.negative_data_rejection], "docimprint": [C.ignored_auth, C.negative_data_rejection]}

def pda(ctx, response, case):
    if response.status_code == 422 and "X-Job-Id" in response.headers:
        return None
    return C.positive_data_acceptance(ctx, response, case)



def _load(api: str) -> Any:
    spec = resolve_spec(api)
    headers = spec.auth.headers_for(spec.demo_tenants()[0][1])
    cfg: dict[str, Any] = {}
    if api == "croma":
        cfg["parameters"] = {"header.Prefer": "wait=0"}
    if api == "docimprint":
        cfg["checks"] = {"negative_data_rejection": {"expected-statuses": ["400","401","402","403","404","405","406","409","415","422","428","429","5xx"]},
                         "missing_required_header": {"expected-statuses": ["400","401","402","403","406","415","422"]}}
    config = SchemathesisConfig.from_dict(cfg)
    clock = ScaledClock(1000) if api == "docimprint" else VirtualClock()
    app = create_app(Mock(spec, clock=clock))
    schema = schemathesis.openapi.from_asgi("/_jobmock/spec", app, config=config)

    @schema.auth(refresh_interval=None)
    class Demo:
        def get(self, case: Any, ctx: Any) -> dict[str, str]:
            return headers

        def set(self, case: Any, data: dict[str, str], ctx: Any) -> None:
            case.headers.update(data)

    return schema


def _make(api: str) -> Any:
    schema = _load(api)

    @schema.parametrize()
    @settings(max_examples=25, derandomize=True, deadline=None)
    def test(case: Any) -> None:
        case.call_and_validate(additional_checks=[pda] if api=='docimprint' else [], excluded_checks=EXCL0 + ([C.positive_data_acceptance] if api=='docimprint' else []) + (EXTRA.get(api, []) if os.environ.get('X') else []))

    return test


test_enrich = _make("enrich")
test_croma = _make("croma")
test_bronid = _make("bronid")
test_cloro = _make("cloro")
test_docimprint = _make("docimprint")

from __future__ import annotations

from typing import Any

import schemathesis
from hypothesis import settings
from schemathesis.config import SchemathesisConfig

from jobmock import Mock, VirtualClock, resolve_spec
from jobmock.asgi import create_app


from schemathesis.openapi.checks import *  # noqa
import schemathesis.specs.openapi.checks as C
EXCL=[C.unsupported_method]

def _load(api: str) -> Any:
    spec = resolve_spec(api)
    headers = spec.auth.headers_for(spec.demo_tenants()[0][1])
    config = SchemathesisConfig.from_dict({"headers": headers})
    app = create_app(Mock(spec, clock=VirtualClock()))
    return schemathesis.openapi.from_asgi("/_jobmock/spec", app, config=config)


def _make(api: str) -> Any:
    schema = _load(api)

    @schema.parametrize()
    @settings(max_examples=25, derandomize=True, deadline=None)
    def test(case: Any) -> None:
        if api == "croma":
            case.headers = {**(case.headers or {}), "Prefer": "wait=0"}
        case.call_and_validate(excluded_checks=EXCL)

    return test


test_enrich = _make("enrich")
test_croma = _make("croma")
test_bronid = _make("bronid")
test_cloro = _make("cloro")


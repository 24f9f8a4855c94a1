"""cloro over HTTP: the mock's answers judged against openapi/cloro.yaml.

Driven with starlette's TestClient; the virtual clock and forced outcomes go through the
control plane, which also shows the queue (concurrency, FIFO). Expected statuses,
headers, limits, costs and error bodies are read from the spec; every JSON body is
validated against the schema the spec documents for it (formats checked).
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.testclient import TestClient

from apihelpers import BASE, ApiHelpers, advance, force, json_values, statuses
from jobmock import Mock, VirtualClock, resolve_spec
from jobmock.asgi import create_app
from jobmock.spec import build_spec

SPEC = resolve_spec("cloro")
SUBMIT = SPEC.submit_operations[0]
STATUS = SPEC.status_operation
LC = SPEC.lifecycle
VALIDATION = SPEC.errors["validation"]
NOT_FOUND = SPEC.errors["not_found"]
ACCEPTED = SUBMIT.responses["pending"].status
LONGEST = SPEC.timing.queued[1] + SPEC.timing.running[1]
CONCURRENCY = SPEC.limits.concurrency_max
COST = SPEC.credits_cost
TASK = {"taskType": "CHATGPT", "payload": {"prompt": "What is the weather in New York?",
                                           "country": "US"}}


# -- helpers --------------------------------------------------------------------------------

H = ApiHelpers(SPEC, noun="task")
check, error_body, assert_retry_after, status_url = H.check, H.error_body, H.assert_retry_after, H.status_url
A, B = H.creds(0), H.creds(1)


def task_id_of(response: httpx.Response) -> str:
    return H.job_id(SUBMIT, response)


def submit(client: TestClient, body: Any = None, headers: dict[str, str] = A) -> httpx.Response:
    return client.post(SUBMIT.path, json=TASK if body is None else body, headers=headers)


def poll(client: TestClient, task_id: str) -> dict[str, Any]:
    r = client.get(status_url(task_id), headers=A)
    assert r.status_code == 200, r.text
    body = check(STATUS, r)
    assert_retry_after(r, body["task"]["status"])
    return body


# -- submit, poll, credits ----------------------------------------------------------------------


def test_submit_answers_the_documented_acknowledgment(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    r = submit(client)
    assert r.status_code == ACCEPTED
    body = check(SUBMIT, r)
    task_id = task_id_of(r)
    assert body["task"]["status"] == LC.queued and body["task"]["taskType"] == TASK["taskType"]
    assert body["credits"] == {"creditsToCharge": COST, "creditsCharged": 0}
    assert "idempotencyKey" not in body["task"]
    assert_retry_after(r, LC.queued)
    assert task_id in statuses(client)


def test_poll_to_terminal_every_answer_documented(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    task_id = task_id_of(submit(client))
    seen: list[str] = []
    body: dict[str, Any] = {}
    for _ in range(int(LONGEST) + 3):
        body = poll(client, task_id)
        word = body["task"]["status"]
        if not seen or seen[-1] != word:
            seen.append(word)
        if not LC.is_terminal(word):
            assert body["credits"]["creditsCharged"] == 0
            assert "response" not in body and "error" not in body
        if LC.is_terminal(word):
            break
        advance(client, 1)
    assert LC.is_terminal(seen[-1]) and seen[0] == LC.queued, seen
    advance(client, 3600)
    assert client.get(status_url(task_id), headers=A).json() == body


@pytest.mark.parametrize("word", sorted(LC.terminal_words))
def test_credits_are_charged_only_on_the_charging_status(make_client: Any, word: str) -> None:
    _mock, client = make_client("cloro")
    task_id = task_id_of(submit(client))
    force(client, task_id, word)
    body = poll(client, task_id)
    assert body["task"]["status"] == word
    charged = COST if word in SPEC.credits_charge_on else 0
    assert body["credits"] == {"creditsToCharge": COST, "creditsCharged": charged}
    role = LC.states[word]
    assert ("response" in body) == (role == "completed")
    assert ("error" in body) == (role == "failed")
    if role == "completed":
        assert TASK["payload"]["prompt"] in body["response"]["text"]


def test_running_task_is_not_charged(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    task_id = task_id_of(submit(client))
    force(client, task_id, LC.running or "")
    body = poll(client, task_id)
    assert body["task"]["status"] == LC.running
    assert body["credits"]["creditsCharged"] == 0


# Issue 11, item 6: "we verify you have enough credits" at submission, a balance per tenant.

LOW = next(t for t, b in SPEC.credits_balances.items() if COST and b < 10 * COST)
LOW_KEY = SPEC.auth.headers_for(SPEC.auth.tenants[LOW][0])
SHORT = SPEC.errors["insufficient_credits"]


def credits_of(client: TestClient, tenant: str) -> dict[str, Any]:
    r = client.get("/_jobmock/credits")
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["cost"] == COST
    return body["credits"][tenant]  # type: ignore[no-any-return]


def test_the_spec_gives_demo_tenants_plenty_of_credits_and_one_tenant_few() -> None:
    assert COST is not None and COST > 0
    for tenant, _ in SPEC.demo_tenants():
        assert SPEC.credits_balances[tenant] >= 10_000 * COST
    assert SPEC.credits_balances[LOW] // COST == 2, "the low tenant can pay for two tasks"
    documented = H.resolve(H.resolve(SPEC.document["paths"][SUBMIT.path])["post"]["responses"]["403"])
    assert SHORT.status == 403
    example = next(iter(documented["content"]["application/json"]["examples"].values()))["value"]
    assert SHORT.body({}) == example


def test_a_tenant_short_of_credits_gets_the_documented_403_and_no_task(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    balance = SPEC.credits_balances[LOW]
    first, second = (task_id_of(submit(client, headers=LOW_KEY)) for _ in range(2))
    # two tasks in flight hold all the credits (none charged yet): a third can't be paid for
    assert credits_of(client, LOW) == {"balance": balance, "held": 2 * COST,
                                       "available": balance - 2 * COST}
    before = statuses(client)
    r = submit(client, headers=LOW_KEY)
    assert r.status_code == SHORT.status
    assert check(SUBMIT, r) == SHORT.body({})
    assert statuses(client) == before, "a refused submission creates no task"
    assert submit(client).status_code == ACCEPTED, "other organizations are not affected"
    # a FAILED task charges nothing and releases its hold; a COMPLETED one is charged
    force(client, first, LC.word("failed") or "")
    force(client, second, LC.word("completed") or "")
    assert credits_of(client, LOW) == {"balance": balance - COST, "held": 0,
                                       "available": balance - COST}
    third = task_id_of(submit(client, headers=LOW_KEY))
    assert submit(client, headers=LOW_KEY).status_code == SHORT.status
    force(client, third, LC.word("completed") or "")
    assert credits_of(client, LOW)["balance"] == 0
    assert submit(client, headers=LOW_KEY).status_code == SHORT.status


def test_the_balance_is_charged_only_on_completion(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    tenant = SPEC.demo_tenants()[0][0]
    start = credits_of(client, tenant)["balance"]
    task_id = task_id_of(submit(client))
    force(client, task_id, LC.running or "")
    assert credits_of(client, tenant) == {"balance": start, "held": COST,
                                          "available": start - COST}
    advance(client, LONGEST + 1)
    charged = poll(client, task_id)["credits"]["creditsCharged"]
    assert credits_of(client, tenant)["balance"] == start - charged


def test_control_plane_sets_balances_and_reset_restores_the_specs(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    tenant = SPEC.demo_tenants()[1][0]
    r = client.post("/_jobmock/credits", json={"tenant": tenant, "balance": COST - 1})
    assert r.status_code == 200, r.text
    assert r.json()["credits"][tenant]["balance"] == COST - 1
    assert submit(client, headers=B).status_code == SHORT.status
    client.post("/_jobmock/credits", json={"tenant": tenant, "balance": COST})
    assert submit(client, headers=B).status_code == ACCEPTED
    assert client.post("/_jobmock/reset", json={}).status_code == 200
    assert credits_of(client, tenant) == {"balance": SPEC.credits_balances[tenant], "held": 0,
                                          "available": SPEC.credits_balances[tenant]}


@pytest.mark.parametrize("body", [
    {"tenant": "nobody", "balance": 5}, {"balance": 5}, {"tenant": LOW},
    {"tenant": LOW, "balance": -1}, {"tenant": LOW, "balance": 1.5}, {"tenant": LOW, "balance": "9"},
    {"tenant": LOW, "balance": True}, {"tenant": LOW, "balance": 10**16},
])
def test_control_plane_refuses_a_bad_balance_and_changes_nothing(make_client: Any,
                                                                  body: Any) -> None:
    _mock, client = make_client("cloro")
    before = client.get("/_jobmock/credits").json()
    r = client.post("/_jobmock/credits", json=body)
    assert r.status_code == 400 and "error" in r.json()
    assert client.get("/_jobmock/credits").json() == before


def test_an_api_without_credits_has_no_credits_endpoint(make_client: Any) -> None:
    _mock, client = make_client("croma")
    assert client.get("/_jobmock/credits").status_code == 404


# -- idempotency -----------------------------------------------------------------------------------


def test_idempotency_key_returns_the_same_task_in_its_current_state(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    keyed = {**TASK, "idempotencyKey": "your-custom-identifier-123"}
    first = submit(client, keyed)
    task_id = task_id_of(first)
    assert check(SUBMIT, first)["task"]["idempotencyKey"] == keyed["idempotencyKey"]
    # the same key with another body: the earlier task, no new one
    replay = submit(client, {**keyed, "taskType": "GEMINI"})
    assert replay.status_code == ACCEPTED
    assert task_id_of(replay) == task_id
    assert check(SUBMIT, replay)["task"]["taskType"] == TASK["taskType"]
    assert list(statuses(client)) == [task_id]
    # after it completes, a replay shows it completed (and charged)
    force(client, task_id, LC.word("completed") or "")
    done = submit(client, keyed)
    body = check(SUBMIT, done)
    assert task_id_of(done) == task_id and body["task"]["status"] == LC.word("completed")
    assert body["credits"]["creditsCharged"] == COST
    assert_retry_after(done, body["task"]["status"])
    assert len(statuses(client)) == 1


def test_idempotency_key_is_per_organization_and_absent_key_never_dedupes(
        make_client: Any) -> None:
    _mock, client = make_client("cloro")
    keyed = {**TASK, "idempotencyKey": "k-1"}
    a = task_id_of(submit(client, keyed))
    b = task_id_of(submit(client, keyed, headers=B))
    assert a != b
    c, d = task_id_of(submit(client)), task_id_of(submit(client))
    assert len({a, b, c, d}) == 4
    assert task_id_of(submit(client, {**TASK, "idempotencyKey": "k-2"})) not in {a, b, c, d}


# -- concurrency and FIFO (seen through the control plane) ----------------------------------------


def variant(name: str, change: Callable[[dict[str, Any]], None]) -> Mock:
    """A Mock of a copy of the cloro spec with ``change`` applied to its x-jobmock block."""
    doc = copy.deepcopy(dict(SPEC.document))
    change(doc["x-jobmock"])
    return Mock(build_spec(doc, name), clock=VirtualClock())


def _slow(ext: dict[str, Any]) -> None:
    ext["timing"]["running"] = [1000.0, 2000.0]


def test_at_most_the_concurrency_limit_runs_and_the_queue_is_fifo() -> None:
    # Tasks that run long, so none ends while the queue fills: only the limit is at work.
    assert CONCURRENCY is not None
    mock = variant("cloro-slow.yaml", _slow)
    with TestClient(create_app(mock), base_url=BASE) as client:
        ids = [task_id_of(submit(client)) for _ in range(CONCURRENCY + 2)]
        other = task_id_of(submit(client, headers=B))
        advance(client, SPEC.timing.queued[1])
        now = statuses(client, SPEC.demo_tenants()[0][0])
        assert [now[i] for i in ids] == [LC.running] * CONCURRENCY + [LC.queued] * 2
        processing = client.get("/_jobmock/jobs", params={"status": LC.running}).json()["jobs"]
        assert sorted(j["id"] for j in processing) == sorted([*ids[:CONCURRENCY], other])
        # another organization's task is not held by this one's limit
        assert statuses(client)[other] == LC.running
        # one ends: exactly the head of the queue starts
        force(client, ids[3], LC.word("completed") or "")
        now = statuses(client)
        assert now[ids[CONCURRENCY]] == LC.running and now[ids[CONCURRENCY + 1]] == LC.queued
        assert poll(client, ids[CONCURRENCY])["task"]["status"] == LC.running
        assert poll(client, ids[CONCURRENCY + 1])["task"]["status"] == LC.queued
        # and a failure frees a slot just the same
        force(client, ids[4], LC.word("failed") or "")
        assert statuses(client)[ids[CONCURRENCY + 1]] == LC.running


def test_queue_starts_in_submission_order_and_never_over_the_limit(make_client: Any) -> None:
    assert CONCURRENCY is not None
    _mock, client = make_client("cloro")
    ids = [task_id_of(submit(client)) for _ in range(CONCURRENCY + 4)]
    planned = [client.get(f"/_jobmock/jobs/{i}").json()["planned"]["queued_for"] for i in ids]
    assert planned != sorted(planned), "the draw is already in order: this proves nothing"
    started: list[str] = []
    step = 0.1
    for _ in range(int((LONGEST + SPEC.timing.running[1]) / step) + 2):
        advance(client, step)
        now = statuses(client)
        assert sum(1 for i in ids if now[i] == LC.running) <= CONCURRENCY
        started += [i for i in ids if now[i] != LC.queued and i not in started]
        if all(LC.is_terminal(now[i]) for i in ids):
            break
    assert started == ids
    assert all(LC.is_terminal(w) for w in statuses(client).values())


# -- the queue limit -----------------------------------------------------------------------------


def test_queue_limit_answers_429_and_creates_no_task() -> None:
    def small(ext: dict[str, Any]) -> None:
        ext["limits"]["queue"]["max"] = 2

    mock = variant("cloro-small.yaml", small)
    name = mock.spec.limits.queue_error
    assert name is not None
    error = mock.spec.errors[name]
    with TestClient(create_app(mock), base_url=BASE) as client:
        keyed = {**TASK, "idempotencyKey": "first"}
        first = task_id_of(submit(client, keyed))
        task_id_of(submit(client))
        before = statuses(client)
        r = submit(client)
        assert r.status_code == error.status
        assert check(SUBMIT, r) == mock.spec.errors[name].body({})
        for header, value in error.headers.items():
            assert r.headers[header] == value({})
        assert re.fullmatch(r"[0-9]+", r.headers["Retry-After"])
        assert statuses(client) == before
        # the limit is per organization
        assert submit(client, headers=B).status_code == ACCEPTED
        # a replayed key creates nothing, so it is answered even with a full queue
        replay = submit(client, keyed)
        assert replay.status_code == ACCEPTED and task_id_of(replay) == first
        # once the queued tasks start, there is room again
        advance(client, mock.spec.timing.queued[1])
        assert submit(client).status_code == ACCEPTED


# -- authentication ----------------------------------------------------------------------------


@pytest.mark.parametrize(("headers", "error"), [
    ({}, SPEC.auth.missing),
    ({"Authorization": ""}, SPEC.auth.missing),
    ({"Authorization": "Bearer sk_test_cloro_expired"}, SPEC.auth.invalid),
    ({"Authorization": "Bearer"}, SPEC.auth.invalid),
    ({"Authorization": "Token " + SPEC.demo_tenants()[0][1]}, SPEC.auth.invalid),
    ({"Authorization": "Basic !!!"}, SPEC.auth.invalid),
    ({"Authorization": SPEC.demo_tenants()[0][1]}, SPEC.auth.invalid),
])
def test_bad_credentials_get_the_documented_401(make_client: Any, headers: dict[str, str],
                                               error: str) -> None:
    _mock, client = make_client("cloro")
    task_id = task_id_of(submit(client))
    expected = SPEC.errors[error]
    r = submit(client, headers=headers)
    assert r.status_code == expected.status
    assert check(SUBMIT, r) == error_body(error)
    assert list(statuses(client)) == [task_id]
    r = client.get(status_url(task_id), headers=headers)
    assert r.status_code == expected.status
    assert check(STATUS, r) == error_body(error)


def test_another_organizations_task_reads_exactly_like_an_unknown_one(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    task_id = task_id_of(submit(client))
    foreign = client.get(status_url(task_id), headers=B)
    unknown = client.get(status_url("b27a21e1-7c39-4aa2-a347-23e828c426f9"), headers=B)
    expected = SPEC.errors[SPEC.auth.foreign_job]
    assert foreign.status_code == unknown.status_code == expected.status
    assert check(STATUS, foreign) == check(STATUS, unknown) == error_body(SPEC.auth.foreign_job)
    assert task_id not in foreign.text and "Retry-After" not in foreign.headers


def test_unknown_task_in_any_format_is_not_found(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    for task_id in ("b27a21e1-7c39-4aa2-a347-23e828c426f9", "42", "not a uuid"):
        r = client.get(status_url(task_id), headers=A)
        assert r.status_code == NOT_FOUND.status
        assert check(STATUS, r) == error_body("not_found")


# -- validation ----------------------------------------------------------------------------------


def _max_key() -> int:
    schema = H.resolve(H.resolve(SUBMIT.body_schema)["properties"]["idempotencyKey"])
    return int(schema["maxLength"])


@pytest.mark.parametrize("body", [
    {},
    {"taskType": "CHATGPT"},
    {"payload": {"prompt": "x"}},
    {"taskType": "NOPE", "payload": {"prompt": "x"}},
    {"taskType": "CHATGPT", "payload": {}},
    {"taskType": "CHATGPT", "payload": {"prompt": ""}},
    {"taskType": "CHATGPT", "payload": {"prompt": "x", "country": "usa"}},
    {"taskType": "CHATGPT", "payload": {"prompt": "x"}, "idempotencyKey": ""},
    {"taskType": "CHATGPT", "payload": {"prompt": "x"}, "idempotencyKey": "k" * (_max_key() + 1)},
    {"taskType": "CHATGPT", "payload": {"prompt": "x"}, "webhook": {}},
    {"taskType": "CHATGPT", "payload": {"prompt": "x"}, "webhook": {"url": "http://a.example.com/h"}},
    {"taskType": "CHATGPT", "payload": {"prompt": "x"}, "webhook": {"secret": "s"}},
    {"taskType": "CHATGPT", "payload": "x"},
    [TASK], "CHATGPT", None,
])
def test_bad_body_is_the_validation_error(make_client: Any, body: Any) -> None:
    _mock, client = make_client("cloro")
    r = client.post(SUBMIT.path, content=httpx.Request("POST", "/", json=body).content,
                    headers={**A, "Content-Type": "application/json"})
    assert r.status_code == VALIDATION.status, r.text
    out = check(SUBMIT, r)
    assert out == error_body("validation", message=out["error"]["message"])
    assert statuses(client) == {}


@pytest.mark.parametrize("body", [
    {"taskType": "CHATGPT", "payload": {"prompt": "x"}, "extra": 1},
    {"taskType": "CHATGPT", "payload": {"prompt": "x"}, "webhook": {"url": "https://a.example.com",
                                                                   "secret": "s"}},
])
def test_unknown_fields_are_accepted_and_ignored(make_client: Any, body: Any) -> None:
    """The spec's Assumed: choice: fields the document does not name are ignored, not refused."""
    _mock, client = make_client("cloro")
    r = client.post(SUBMIT.path, json=body, headers=A)
    assert r.status_code == 200, r.text
    task = check(SUBMIT, r)["task"]
    assert statuses(client) == {task["id"]: "QUEUED"}


@pytest.mark.parametrize("content", [b"{not json", b'{"taskType": "CHATGPT",}', b"\xff", b""])
def test_unparsable_body_is_the_validation_error(make_client: Any, content: bytes) -> None:
    _mock, client = make_client("cloro")
    r = client.post(SUBMIT.path, content=content, headers={**A, "Content-Type": "application/json"})
    assert r.status_code == VALIDATION.status
    check(SUBMIT, r)
    assert statuses(client) == {}


def test_https_webhook_is_accepted_and_stored(make_client: Any) -> None:
    _mock, client = make_client("cloro")
    url = "https://your-app.com/webhook-handler"
    task_id = task_id_of(submit(client, {**TASK, "webhook": {"url": url}}))
    assert client.get(f"/_jobmock/jobs/{task_id}").json()["callback_url"] == url


_json = json_values(text=10, items=3, keys=3, leaves=10)
_tasks = st.fixed_dictionaries(
    {"taskType": st.sampled_from(["CHATGPT", "GEMINI", "chatgpt", ""]),
     "payload": st.fixed_dictionaries({"prompt": st.text(max_size=12)},
                                      optional={"country": st.text(max_size=3)})},
    optional={"idempotencyKey": st.text(max_size=6), "webhook": _json, "x": _json},
)


def test_any_json_body_gets_a_documented_answer(make_client: Any) -> None:
    _mock, client = make_client("cloro")

    @settings(max_examples=60, derandomize=True, deadline=None,
              suppress_health_check=[HealthCheck.too_slow])
    @given(body=_json | _tasks)
    def one(body: Any) -> None:
        r = client.post(SUBMIT.path, json=body, headers=A)
        assert r.status_code in (ACCEPTED, VALIDATION.status), r.text
        check(SUBMIT, r)

    one()

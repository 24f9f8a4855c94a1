"""Faults (jobmock.faults): what a switched-on fault remembers stays bounded."""

from __future__ import annotations

import httpx

from jobmock import faults, resolve_spec
from jobmock.inprocess import InProcessMock, mock

CROMA = resolve_spec("croma")
SICAAC = next(op for op in CROMA.submit_operations if op.path.endswith("/sicaac"))
PERSON = {"document_type": "CC", "document_number": "1020304050"}
CREDS = CROMA.auth.headers_for(CROMA.demo_tenants()[0][1])


def _finished_job(api: InProcessMock, client: httpx.Client) -> str:
    r = client.post(SICAAC.path, json=PERSON, headers={**CREDS, "Prefer": "wait=0"})
    job_id = str(r.json()["id"])
    api.force(job_id, "completed")
    return job_id


def _status(client: httpx.Client, job_id: str) -> str:
    return str(client.get(f"/jobs/{job_id}", headers=CREDS).json()["status"])


def test_the_fault_memory_keeps_only_the_latest_jobs() -> None:
    assert faults.MEMORY_SIZE == 10_000
    with mock("croma", faults=["terminal_changes"]) as api, \
            httpx.Client(base_url=api.base_url) as client:
        switch = faults.switch(api.mock)
        switch.memory_size = 3
        ids = [_finished_job(api, client) for _ in range(8)]
        for job_id in ids:
            assert _status(client, job_id) == "completed"  # the first terminal answer is honest
            assert len(switch.memory) <= 3
        assert list(switch.memory) == ids[-3:]
        # A remembered job still gets the fault; one that fell off is honest once more.
        assert _status(client, ids[-1]) != "completed"
        assert _status(client, ids[0]) == "completed"
        assert len(switch.memory) == 3 and list(switch.memory)[-1] == ids[0]
        api.reset()
        assert not switch.memory


def test_the_fault_memory_never_grows_past_its_default_size() -> None:
    with mock("croma", faults=["terminal_changes"]) as api:
        switch = faults.switch(api.mock)
        for n in range(faults.MEMORY_SIZE + 50):
            switch._remember(f"job-{n}")
        assert len(switch.memory) == faults.MEMORY_SIZE
        assert next(iter(switch.memory)) == "job-50"

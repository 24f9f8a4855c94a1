"""QA scenarios: make a mocked API do one hard thing on purpose, every time.

A scenario file (YAML; checked when it loads by ``jobmock/schemas/scenario.schema.json``
and against the API's spec) names an API and holds:

- ``rules``: each ``match``es requests (operation, method, path, query, headers, body
  fields by JSON pointer, tenant, the Nth match, the answer's status) and forces what
  happens: to the job the request creates (``job``: outcome, error, result, timings, polls
  per step, manual, progress steps), to the answer (``response``: latency, a status with
  a literal body or one of the spec's named errors, added or removed headers, a dropped
  connection, a malformed body), or refuses the request with one of the spec's limit
  errors (``limit``). ``times`` caps how often a rule applies. A ``latency`` is at most
  :data:`MAX_LATENCY` (3600 clock seconds); a larger one is refused at load.
- settings: ``seed``, ``clock``, ``advance`` (the policy), ``limits`` (queue and
  concurrency overrides), ``allow_private_callbacks``, ``webhook_receiver`` (how the
  receiver misbehaves: the story's loopback receiver is set up so);
- an optional ``story``: steps (``submit``, ``request``, ``poll``, ``advance``,
  ``force``, ``expect``, ``note``) that show the behaviour and check it, so the file is an
  executable example. :func:`jobmock.testing.run_story` runs it in-process, or against a
  live ``jobmock serve API --clock virtual --scenario FILE``; :func:`run_story` here runs
  it through an httpx client (and webhook receiver) the caller started.

A file that breaks the schema gets one :class:`~jobmock.errors.ScenarioError` naming every
key that does (``problems``), the best match first.

Loading: ``jobmock serve API --scenario FILE``, ``POST /_jobmock/scenario`` (the file as
JSON), ``install_scenario(mock, path_or_mapping)``. Loading starts from a clean state: jobs,
the journal and webhook deliveries are forgotten; the clock keeps its time. A mock holds
one scenario at a time; loading another replaces it. ``GET /_jobmock/scenario`` shows how
often each rule matched and applied.

How rules apply:

- A rule with ``job`` or ``limit`` is checked when a job is about to be created, that is
  for a submit that passed authentication and validation. Its ``nth`` counts the jobs
  created among the requests matching its other conditions (a submit the API refuses,
  say at its queue limit, is not counted). Job fields from several matching rules
  combine, the earlier rule winning a field; the first matching ``limit`` refuses the
  request with the spec's error (and no job is created).
- A rule with only ``response`` is checked on every API answer (not the control plane);
  its ``nth`` counts the matching answers. Its ``match`` may test ``status``, the status
  the mock was about to send.
- A ``response`` on a job or limit rule changes the answer to that same request.

Story steps, and what each checks:

=========  ==================================================================================
submit     ``{operation, body?, headers?, query?, params?, tenant?|credential?|auth?, as?}``:
           call a submit operation (default body: the operation's example) as the
           ``tenant``'s demo credential (default: the first tenant), a literal
           ``credential``, or none (``auth: false``). The job id is read where the spec
           says (``job_id_from``). A request the mock holds (an inline wait, a latency)
           lets the virtual clock run to each next due entry until the answer comes.
request    ``{method, path, ...}``: any request, same options.
poll       ``{job, tenant?, ...}``: GET the status operation for a submitted job (default
           tenant: the one that submitted it).
advance    ``seconds``: move the virtual clock, entry by entry, letting webhook attempts
           finish at each step (so retries are scheduled exactly).
force      ``{job, status, error?, result?, when?}``: force an outcome (control plane).
expect     ``{of?, status?, json?, headers?, dropped?, malformed?, elapsed?, job?,
           webhooks?}``: check the last (or ``of``) answer, the job as the control plane
           shows it, and webhook deliveries (count, events, attempts, state, statuses,
           intervals between attempts, what the receiver got, signatures).
note       a comment for the log.
=========  ==================================================================================

Strings in a story may hold ``{NAME.id}`` (a submitted job's id) and ``{receiver.url}``.
Expected values may be matchers: ``{$present: bool}``, ``{$len: n}``, ``{$in: [...]}``,
``{$gte: n}``, ``{$lte: n}``, ``{$contains: x}``, ``{$pluck: field, $equals: [...]}``, and
references ``{$sent: "NAME#/pointer"}`` (the body sent) or ``{$received: "NAME#/pointer"}``.
A body value ``{$repeat: n, $item: "TXN {i}"}`` builds a list of n items.

The package: :mod:`.format` (the file format: schema, loading with file-and-key errors,
the model, matchers, the catalog), :mod:`.runtime` (a scenario installed in a mock as its
hooks), :mod:`.story` (the story runner). Starting servers and receivers for a story is
the test harness's job (:mod:`jobmock.testing`); nothing here depends on an adapter.
"""

from __future__ import annotations

from ._common import MISSING, compare, pointer_get
from .format import (
    MAX_LATENCY,
    Scenario,
    catalog,
    fixtures_dir,
    load_scenario,
    scenario_files,
    scenario_schema,
)
from .runtime import ActiveScenario, active_scenario, install_scenario, scenario_mock
from .story import StoryFailure, StoryRunner, run_story, run_story_async

__all__ = [
    "MAX_LATENCY",
    "MISSING",
    "ActiveScenario",
    "Scenario",
    "StoryFailure",
    "StoryRunner",
    "active_scenario",
    "catalog",
    "compare",
    "fixtures_dir",
    "install_scenario",
    "load_scenario",
    "pointer_get",
    "run_story",
    "run_story_async",
    "scenario_files",
    "scenario_mock",
    "scenario_schema",
]

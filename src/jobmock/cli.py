"""The ``jobmock`` command line: ``apis``, ``validate``, ``serve``."""

from __future__ import annotations

import copy
import json
import shlex
import sys
from collections.abc import Callable
from typing import Any

import click

from .bundled import bundled_names, resolve_spec, spec_path
from .errors import SpecError
from .pointers import without
from .spec import ApiSpec, Operation

__all__ = ["main"]


def _load(api: str) -> ApiSpec:
    try:
        return resolve_spec(api)
    except SpecError as exc:
        from pathlib import Path

        from .hints import did_you_mean

        hint = "" if Path(api).suffix or Path(api).exists() else did_you_mean(api, bundled_names())
        raise click.ClickException(str(exc) + (f".{hint}" if hint else "")) from exc


def _api_record(spec: ApiSpec) -> dict[str, Any]:
    auth = spec.auth
    return {
        "name": spec.name,
        "title": spec.title,
        "spec": str(spec_path(spec.name) if spec.name in bundled_names() else spec.file),
        "auth": {"scheme": auth.scheme, "kind": auth.kind, "in": auth.location,
                 "name": auth.param},
        "tenants": [
            {"tenant": tenant, "credential": credential,
             "headers": auth.headers_for(credential), "query": auth.query_for(credential)}
            for tenant, credential in spec.demo_tenants()
        ],
        "statuses": dict(spec.lifecycle.states),
        "submit": [f"{o.method} {o.path}" for o in spec.submit_operations],
        "status": f"{spec.status_operation.method} {spec.status_operation.path}",
        "webhook_signature": _signing(spec),
    }


def _signing(spec: ApiSpec) -> dict[str, Any] | None:
    """How the spec signs webhooks: header, demo secret, signed tenants (None: unsigned)."""
    sig = spec.webhooks.signature if spec.webhooks is not None else None
    if sig is None:
        return None
    signed = sig.enabled_for if sig.enabled_for is not None else tuple(spec.auth.tenants)
    return {"header": sig.header, "format": sig.format, "secret": sig.secret,
            "signed_tenants": list(signed)}


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobmock")
def main() -> None:
    """jobmock: contract tests and a stateful mock server for asynchronous job APIs."""


@main.command()
@click.argument("api", required=False)
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with auth and demo credentials.")
@click.option("--diagram", is_flag=True,
              help="Print API's lifecycle as a Mermaid state diagram: status words, "
                   "transitions, outcome weights and timings from its spec.")
def apis(api: str | None, as_json: bool, diagram: bool) -> None:
    """List the bundled APIs (or only API: a bundled name or a spec file)."""
    if diagram:
        if api is None:
            raise click.UsageError("--diagram draws one API's lifecycle: jobmock apis croma --diagram")
        from .diagram import mermaid

        click.echo(mermaid(_load(api)), nl=False)
        return
    specs = [_load(api)] if api is not None else [_load(name) for name in bundled_names()]
    if as_json:
        click.echo(json.dumps([_api_record(s) for s in specs], indent=2))
        return
    width = max(len(s.name) for s in specs)
    for s in specs:
        click.echo(f"{s.name:<{width}}  {s.title}  ({spec_path(s.name)})")


@main.command()
def reference() -> None:
    """Print the x-jobmock reference (every key, from the schema that checks it)."""
    from .reference import render

    click.echo(render(), nl=False)


@main.command()
@click.argument("specs", nargs=-1, required=True)
def validate(specs: tuple[str, ...]) -> None:
    """Check spec files (OpenAPI 3.1 and x-jobmock); name, file and key of each error."""
    failed = False
    for item in specs:
        try:
            spec = resolve_spec(item)
        except SpecError as exc:
            failed = True
            click.echo(f"FAIL {exc}", err=True)
            continue
        click.echo(f"ok   {spec.name}: {spec.file}")
    if failed:
        sys.exit(1)


def _curl(spec: ApiSpec, base: str, op: Operation, credential: str, path: str,
          body: Any = None, extra: dict[str, str] | None = None) -> str:
    parts = ["curl", "-i", "-X", op.method]
    headers = {**spec.auth.headers_for(credential), **(extra or {})}
    query = spec.auth.query_for(credential)
    url = base + path + ("?" + "&".join(f"{k}={v}" for k, v in query.items()) if query else "")
    for k, v in headers.items():
        parts += ["-H", f"{k}: {v}"]
    if body is not None:
        parts += ["-H", "Content-Type: application/json", "-d", json.dumps(body)]
    parts.append(url)
    return " ".join(shlex.quote(p) for p in parts)


def _example_value(spec: ApiSpec, param: Any) -> str:
    """A value the spec accepts for a path parameter: its enum's first (``$ref``s followed),
    its example, else ``demo-NAME``."""
    schema: Any = param.schema
    for _ in range(32):  # a chain of $refs, bounded
        ref = schema.get("$ref") if isinstance(schema, dict) else None
        if not (isinstance(ref, str) and ref.startswith("#/")):
            break
        schema = spec.document
        for part in ref[2:].split("/"):
            schema = schema.get(part.replace("~1", "/").replace("~0", "~"), {})
    schema = schema if isinstance(schema, dict) else {}
    if schema.get("enum"):
        return str(schema["enum"][0])
    if "example" in schema:
        return str(schema["example"])
    return f"demo-{param.name}"


def _example_path(spec: ApiSpec, op: Operation, skip: str | None = None) -> str:
    """``op``'s path with an accepted value in each path parameter but ``skip``."""
    path = op.path
    for p in op.parameters:
        if p.location == "path" and p.name != skip:
            path = path.replace("{" + p.name + "}", _example_value(spec, p))
    return path


def banner(spec: ApiSpec, base: str, clock: str, speed: float, seed: int,
           webhook_secret: str | None = None) -> str:
    """What ``serve`` prints at start: where, credentials, the webhook secret (the spec's
    demo one; never one given with ``--webhook-secret``), and curl lines to paste."""
    lines = [f"jobmock serving {spec.name} ({spec.title}) at {base}",
             f"clock: {clock}" + (f" x{speed:g}" if clock == "real" and speed != 1 else "")
             + f"   seed: {seed}   control plane: {base}/_jobmock/health"]
    for tenant, credential in spec.demo_tenants():
        lines.append(f"tenant {tenant}: {credential}")
    signing = _signing(spec)
    if signing is not None:
        secret = "the one given with --webhook-secret" if webhook_secret else signing["secret"]
        lines.append(f"webhook secret: {secret}   ({signing['header']}; signed for "
                     f"{', '.join(signing['signed_tenants']) or 'no tenant'})")
    op = spec.submit_operations[0]
    status = spec.status_operation
    credential = spec.demo_tenants()[0][1]
    extra = {"Prefer": "wait=0"} if op.wait.prefer_header else None
    body = op.body_example
    if spec.webhooks is not None and body is not None:
        # The example's callback URL is a third party's: the banner's curl sends none.
        body = without(copy.deepcopy(body), spec.webhooks.url_pointer)
    lines.append("submit:")
    lines.append("  " + _curl(spec, base, op, credential, _example_path(spec, op), body, extra))
    job_param = status.job_id_param or "id"
    poll_path = _example_path(spec, status, skip=job_param).replace("{" + job_param + "}", "JOB_ID")
    lines.append("poll (JOB_ID from the answer above):")
    lines.append("  " + _curl(spec, base, status, credential, poll_path))
    return "\n".join(lines)


@main.command()
@click.argument("api")
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True, type=int)
@click.option("--clock", "clock_kind", type=click.Choice(["real", "virtual"]), default="real",
              show_default=True, help="virtual: time moves only via POST /_jobmock/clock/advance.")
@click.option("--speed", default=1.0, show_default=True, type=float,
              help="Clock seconds per wall second for the real clock.")
@click.option("--seed", default=None, type=int,
              help="Seeds timings, outcomes, ids: the same seed repeats them, ids included "
                   "(default: a random seed per start, printed in the banner).")
@click.option("--journal-size", default=10_000, show_default=True, type=int,
              help="Requests kept in the journal (a ring buffer).")
@click.option("--retain", default=None, type=click.FloatRange(min=0), metavar="SECONDS",
              help="Clock seconds a finished job is kept, then forgotten (its polls answer "
                   "not-found); 0 keeps every job (default: 3600 on a real clock, 0 on a "
                   "virtual one, where time moves only when a test says).")
@click.option("--store", "store", default="memory", show_default=True, metavar="URL",
              help="Where the mock's state lives: memory, or redis://host:port/db to share it "
                   "between replicas (every `serve` on one Redis is one mock) and keep it "
                   "across restarts.")
@click.option("--max-sessions", default=256, show_default=True, type=click.IntRange(min=0),
              metavar="N", help="Sessions (X-Jobmock-Session: NAME, each an isolated mock with "
                                "its own clock, jobs and reset) open at once; 0: no sessions.")
@click.option("--session-idle", default=1800.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Wall seconds after which an unused session is dropped.")
@click.option("--max-body", default=None, type=click.IntRange(min=1), metavar="BYTES",
              help="Largest request body accepted; larger is refused 413 (default: 4 MiB).")
@click.option("--read-timeout", default=30.0, show_default=True,
              type=click.FloatRange(min=0, min_open=True), metavar="SECONDS",
              help="Time a client has to send a request's head, then its body (408).")
@click.option("--allow-private-callbacks", is_flag=True,
              help="Accept callback URLs on localhost and private ranges (local development).")
@click.option("--webhook-secret", default=None,
              help="HMAC secret for signed webhooks (default: the spec's demo secret).")
@click.option("--webhook-timeout", default=None, type=float,
              help="Seconds to wait for a webhook receiver (default: the spec's).")
@click.option("--webhooks", "webhook_mode", type=click.Choice(["deliver", "record", "off"]),
              default="deliver", show_default=True,
              help="deliver: send webhooks; record: list each attempt as answered "
                   "--webhook-record-status and send nothing (fuzzing, demos); off: none.")
@click.option("--webhook-record-status", default=200, show_default=True,
              type=click.IntRange(100, 599), help="The status --webhooks record answers with.")
@click.option("--webhook-allow", "webhook_allow", default=None, metavar="HOST[,HOST]",
              help="Send webhooks only to these hosts (host or host:port); an attempt to any "
                   "other is recorded as refused and never sent.")
@click.option("--scenario", "scenario", default=None, metavar="FILE",
              help="Load a QA scenario file (see fixtures/ and `jobmock scenarios`).")
@click.option("--fault", "faults", multiple=True, metavar="NAME",
              help="Switch on a deliberate contract violation (repeatable; see GET /_jobmock/faults).")
@click.option("--server", type=click.Choice(["granian", "uvicorn"]), default="granian",
              show_default=True, help="The ASGI server: granian (fast, the default) or uvicorn.")
@click.option("--control", "control", type=click.Choice(["on", "off"]), default="on",
              show_default=True, help="off: no control plane (/_jobmock/ paths are the API's 404).")
@click.option("--control-token", default=None, envvar="JOBMOCK_CONTROL_TOKEN", metavar="TOKEN",
              help="Every control-plane call but GET /_jobmock/health needs 'Authorization: "
                   "Bearer TOKEN' (env JOBMOCK_CONTROL_TOKEN). Required with a --host that "
                   "is not loopback.")
@click.option("--journal-secrets", is_flag=True,
              help="Keep credentials and webhook signatures in the journal and the control "
                   "plane's answers (debugging; hidden by default).")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"]),
              default="warning", show_default=True,
              help="info: an access-log line per request (method, path, status, job, tenant, "
                   "duration) and one per webhook attempt, on stderr.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text",
              show_default=True, help="json: one JSON object per log line.")
@click.option("--cors", "cors", multiple=True, metavar="ORIGIN",
              help="Let a browser app on ORIGIN call the API (repeatable; '*' for any): "
                   "preflights answered, headers exposed. The control plane stays same-origin.")
def serve(api: str, host: str, port: int, clock_kind: str, speed: float, seed: int | None,
          journal_size: int, allow_private_callbacks: bool, webhook_secret: str | None,
          webhook_timeout: float | None, scenario: str | None, faults: tuple[str, ...],
          server: str, control: str, control_token: str | None, journal_secrets: bool,
          webhook_mode: str = "deliver", webhook_record_status: int = 200,
          webhook_allow: str | None = None, log_level: str = "warning", log_format: str = "text",
          cors: tuple[str, ...] = (), retain: float | None = None, max_body: int | None = None,
          read_timeout: float = 30.0, max_sessions: int = 256,
          session_idle: float = 1800.0, store: str = "memory") -> None:
    """Serve a stateful mock of API (a bundled name or a spec file)."""
    from .control import configure_control, is_loopback_host

    if control_token is not None and not control_token.strip():
        control_token = None  # an empty JOBMOCK_CONTROL_TOKEN is no token
    if control == "on" and control_token is None and not is_loopback_host(host):
        click.echo(f"jobmock serve: refusing to serve the control plane on {host}, which is not "
                   f"loopback, without a token: give --control-token TOKEN (or set "
                   f"JOBMOCK_CONTROL_TOKEN), or --control off", err=True)
        sys.exit(2)
    from .asgi import create_app
    from .clock import make_clock
    from .dispatch import Mock

    spec = _load(api)
    from .redisstore import check_store_url

    problem = check_store_url(store)
    if problem is not None:
        raise click.BadParameter(problem, param_hint="--store")
    shared_store: Any = None
    if store != "memory":
        from .redisstore import RedisStore

        shared_store = RedisStore(store)
    if speed <= 0:
        raise click.BadParameter("must be positive", param_hint="--speed")
    plan = None
    if scenario is not None:  # the scenario's clock and seed, unless given here
        import dataclasses

        from click.core import ParameterSource

        from .errors import ScenarioError
        from .scenarios import load_scenario

        try:
            plan = load_scenario(scenario)
        except ScenarioError as exc:
            raise click.ClickException(str(exc)) from exc
        ctx = click.get_current_context()
        if plan.clock_given and ctx.get_parameter_source("clock_kind") is ParameterSource.DEFAULT:
            clock_kind = plan.clock
            if ctx.get_parameter_source("speed") is ParameterSource.DEFAULT:
                speed = plan.speed
        if ctx.get_parameter_source("seed") is not ParameterSource.DEFAULT:
            plan = dataclasses.replace(plan, seed=seed)
        elif plan.seed is not None:
            seed = plan.seed
    if seed is None:  # a fresh run: ids never repeat those of an earlier start
        import secrets

        seed = secrets.randbelow(2**31)
    def make_mock(mock_seed: int) -> Mock:
        """A mock with this server's options (no faults, no scenario): the default session's
        and each named session's."""
        made = Mock(spec, clock=make_clock(clock_kind, speed), seed=mock_seed,
                    journal_size=journal_size, allow_private_callbacks=allow_private_callbacks,
                    webhook_secret=webhook_secret, webhook_timeout=webhook_timeout)
        _configure_webhooks(made, webhook_secret, webhook_mode, webhook_record_status,
                            webhook_allow)
        configure_control(made, token=control_token, loopback_only=control_token is None,
                          keep_secrets=journal_secrets)
        made.engine.retain = (retain if retain is not None
                              else 0.0 if clock_kind == "virtual" else 3600.0)
        return made

    mock = make_mock(seed)
    from .faults import set_faults

    try:
        set_faults(mock, faults)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--fault") from exc
    if scenario is not None:
        from .errors import ScenarioError
        from .scenarios import install_scenario

        try:
            install_scenario(mock, plan if plan is not None else scenario)
        except ScenarioError as exc:
            raise click.ClickException(str(exc)) from exc
    from .asgi import DEFAULT_MAX_BODY, Limits

    limits = Limits(max_body=max_body or DEFAULT_MAX_BODY, read_timeout=read_timeout)
    jobmock_app: Any = create_app(mock, control=control == "on", limits=limits)
    if shared_store is not None:
        jobmock_app.shared = shared_store.attach(mock)
    if max_sessions > 0:
        from .sessionapp import SessionApp
        from .sessions import session_seed

        def make_session(name: str) -> Any:
            session_mock = make_mock(session_seed(seed, name))
            app = create_app(session_mock, control=control == "on", limits=limits)
            if shared_store is not None:
                app.shared = shared_store.attach(session_mock, name, idle=session_idle)
            return app

        jobmock_app = SessionApp(jobmock_app, make_session, idle=session_idle,
                                 limit=max_sessions)
    app: Any = _wrap(jobmock_app, mock, log_level, log_format, cors)
    _run_server(app, jobmock_app, mock, server, host, port, read_timeout,
                lambda base: banner(spec, base, clock_kind, speed, seed, webhook_secret))


def _run_server(app: Any, jobmock_app: Any, mock: Any, server: str, host: str, port: int,
                read_timeout: float, banner_for: Callable[[str], str]) -> None:
    """Listen (a failure is one line on stderr and exit code 2, before any banner), print
    the banner, serve until SIGINT or SIGTERM (see jobmock.serving), print the summary."""
    from .behaviour import client_summary
    from .serving import ListenError, listen, run

    try:
        sock = listen(host, port)
    except ListenError as exc:
        click.echo(f"jobmock serve: {exc}", err=True)
        sys.exit(2)
    url_host = f"[{host}]" if ":" in host else host
    base = f"http://{url_host}:{sock.getsockname()[1]}"
    printed = False

    def started() -> None:
        nonlocal printed
        click.echo(banner_for(base))
        sys.stdout.flush()
        printed = True

    try:
        run(app, jobmock_app, sock, server, host=host, read_timeout=read_timeout, started=started)
    except ListenError as exc:
        click.echo(f"jobmock serve: {exc}", err=True)
        sys.exit(2)
    finally:
        if printed:
            click.echo(client_summary(mock))
            click.echo("jobmock stopped.")
    # Every request is answered, every socket closed, everything printed: end the process
    # now. The interpreter's teardown of what jobmock imported takes a second or more on a
    # busy machine, and one signal must stop the server within a second or two.
    import logging
    import os

    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def _configure_webhooks(mock: Any, secret: str | None, mode: str, record_status: int,
                        allow: str | None) -> None:
    """``serve``'s webhook options onto the mock's delivery book."""
    book = mock.webhooks
    sig = mock.spec.webhooks.signature if mock.spec.webhooks is not None else None
    if secret is not None and sig is not None:
        from .signing import secret_problem

        problem = secret_problem(sig.scheme, secret)
        if problem:
            raise click.BadParameter(f"{problem} ({sig.scheme})", param_hint="--webhook-secret")
    if book is None:
        return
    hosts = [h for h in (allow or "").split(",") if h.strip()] if allow is not None else None
    try:
        book.configure(mode=mode, record_status=record_status, allow_hosts=hosts)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--webhook-allow") from exc


def _wrap(app: Any, mock: Any, log_level: str, log_format: str, cors: tuple[str, ...]) -> Any:
    """``app`` with CORS (``--cors``) and the access log (``--log-level info``) around it."""
    from .middleware import AccessLog, Cors, configure_logging

    configure_logging(log_level, log_format)
    if cors:
        app = Cors(app, cors)
    if log_level in ("debug", "info"):
        app = AccessLog(app, mock)
    return app


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("api")
@click.option("--base-url", default=None, help="The server to judge (default: the suite starts the mock).")
@click.option("--credential-a", default=None, help="First tenant's credential (env JOBMOCK_CREDENTIAL_A).")
@click.option("--credential-b", default=None, help="Second tenant's credential (env JOBMOCK_CREDENTIAL_B).")
@click.option("--webhook-secret", default=None, help="Secret that verifies webhook signatures.")
@click.option("--receiver-url", default=None,
              help="A URL the server can reach that forwards to the suite's local receiver.")
@click.option("--receiver-port", default=None, type=click.IntRange(0, 65535),
              help="Port of the suite's receiver on 127.0.0.1 (default: a free one; printed "
                   "at the start): pin it to forward a --receiver-url tunnel to it.")
@click.option("--examples", default=None, type=int, help="Hypothesis examples (default 6).")
@click.option("--steps", default=None, type=int, help="Steps per example (default 25).")
@click.option("--budget", default=None, type=float,
              help="Wall-clock seconds for the whole run (default 300); it ends within this "
                   "plus a stated margin, reporting what it could not finish.")
@click.option("--seed", default=None, type=int,
              help="Hypothesis seed (default 0): another seed explores other runs; a failure "
                   "prints the seed that reproduces it.")
@click.option("--webhook-schedule-budget", default=None, type=float,
              help="Real-time seconds to watch a failing webhook's retries against a server "
                   "without jobmock's virtual clock (default: only where the first retry fits).")
@click.option("--junitxml", default=None, help="Write a JUnit XML report here.")
@click.option("--report", default=None, metavar="PATH",
              help="Write a self-contained HTML report here (checks, failures with curl lines, "
                   "job timelines, lifecycle coverage).")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def contract(api: str, base_url: str | None, credential_a: str | None, credential_b: str | None,
             webhook_secret: str | None, receiver_url: str | None, examples: int | None,
             steps: int | None, budget: float | None, seed: int | None,
             webhook_schedule_budget: float | None, junitxml: str | None, report: str | None,
             pytest_args: tuple[str, ...], receiver_port: int | None = None) -> None:
    """Judge a server (or the mock) against API's spec: the contract suite, via pytest."""
    from pathlib import Path

    import pytest

    from .contract import suite

    _load(api)
    here = Path(suite.__file__).resolve().parent
    args = [str(here), "-c", str(here / "pytest.ini"), "--rootdir", str(here), "--api", api]
    for flag, value in (("--base-url", base_url), ("--credential-a", credential_a),
                        ("--credential-b", credential_b), ("--webhook-secret", webhook_secret),
                        ("--receiver-url", receiver_url), ("--receiver-port", receiver_port),
                        ("--contract-examples", examples),
                        ("--contract-steps", steps), ("--contract-budget", budget),
                        ("--contract-seed", seed),
                        ("--contract-webhook-schedule-budget", webhook_schedule_budget),
                        ("--junitxml", junitxml), ("--jobmock-report", report)):
        if value is not None:
            args += [flag, str(value)]
    sys.exit(int(pytest.main([*args, *pytest_args])))


@main.group(invoke_without_command=True)
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def scenarios(ctx: click.Context, as_json: bool) -> None:
    """List the QA scenarios in fixtures/ with their one-line descriptions
    (`jobmock scenarios run FILE` runs one's story)."""
    if ctx.invoked_subcommand is not None:
        return
    from .scenarios import catalog

    items = catalog()
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for item in items:
        click.echo(f"{item['api']:<11} {item['file']:<48} {item['description']}")


@scenarios.command("run")
@click.argument("file")
@click.option("--base-url", default=None,
              help="Run against this live `jobmock serve API --clock virtual --scenario FILE` "
                   "(default: in-process, on a fresh mock).")
@click.option("--load", is_flag=True, help="With --base-url: load the scenario there first.")
def scenarios_run(file: str, base_url: str | None, load: bool) -> None:
    """Run the story of FILE (a path, or a name `jobmock scenarios` prints) and report each
    step; exit 1 at the first step that fails."""
    from .errors import ScenarioError
    from .scenarios import StoryFailure, load_scenario
    from .testing import run_story

    try:
        scenario = load_scenario(file)
    except ScenarioError as exc:
        raise click.ClickException(str(exc)) from exc
    if not scenario.story:
        click.echo(f"{scenario.name}: no story to run ({scenario.file})")
        return
    click.echo(f"{scenario.name} ({scenario.spec.name}): {scenario.description}")
    try:
        log = run_story(scenario, base_url=base_url, load=load)
    except StoryFailure as exc:
        for index, step in enumerate(scenario.story[:max(0, exc.index)]):
            click.echo(f"  ok   {index:>2} {next(iter(step), '?')}")
        click.echo(f"  FAIL {exc}", err=True)
        sys.exit(1)
    for line in log:
        click.echo(f"  ok   {line}")
    click.echo(f"passed: {len(log)} steps")


if __name__ == "__main__":  # pragma: no cover
    main()

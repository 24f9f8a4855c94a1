"""The ``jobmock`` command line: ``apis``, ``validate``, ``serve``."""

from __future__ import annotations

import copy
import json
import shlex
import signal
import sys
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
        raise click.ClickException(str(exc)) from exc


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
    }


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="jobmock")
def main() -> None:
    """jobmock: contract tests and a stateful mock server for asynchronous job APIs."""


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON, with auth and demo credentials.")
def apis(as_json: bool) -> None:
    """List the bundled APIs."""
    specs = [_load(name) for name in bundled_names()]
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


def _example_path(op: Operation) -> str:
    path = op.path
    for p in op.parameters:
        if p.location == "path":
            enum = p.schema.get("enum")
            value = enum[0] if enum else f"demo-{p.name}"
            path = path.replace("{" + p.name + "}", str(value))
    return path


def banner(spec: ApiSpec, base: str, clock: str, speed: float, seed: int) -> str:
    """What ``serve`` prints at start: where, credentials, and curl lines to paste."""
    lines = [f"jobmock serving {spec.name} ({spec.title}) at {base}",
             f"clock: {clock}" + (f" x{speed:g}" if clock == "real" and speed != 1 else "")
             + f"   seed: {seed}   control plane: {base}/_jobmock/health"]
    for tenant, credential in spec.demo_tenants():
        lines.append(f"tenant {tenant}: {credential}")
    op = spec.submit_operations[0]
    status = spec.status_operation
    credential = spec.demo_tenants()[0][1]
    extra = {"Prefer": "wait=0"} if op.wait.prefer_header else None
    body = op.body_example
    if spec.webhooks is not None and body is not None:
        # The example's callback URL is a third party's: the banner's curl sends none.
        body = without(copy.deepcopy(body), spec.webhooks.url_pointer)
    lines.append("submit:")
    lines.append("  " + _curl(spec, base, op, credential, _example_path(op), body, extra))
    poll_path = status.path.replace("{" + (status.job_id_param or "id") + "}", "JOB_ID")
    for p in status.parameters:
        if p.location == "path" and p.name != status.job_id_param:
            enum = p.schema.get("enum")
            poll_path = poll_path.replace("{" + p.name + "}", str(enum[0]) if enum else f"demo-{p.name}")
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
@click.option("--seed", default=0, show_default=True, type=int, help="Seeds timings, outcomes, ids.")
@click.option("--journal-size", default=10_000, show_default=True, type=int,
              help="Requests kept in the journal (a ring buffer).")
@click.option("--allow-private-callbacks", is_flag=True,
              help="Accept callback URLs on localhost and private ranges (local development).")
@click.option("--webhook-secret", default=None,
              help="HMAC secret for signed webhooks (default: the spec's demo secret).")
@click.option("--webhook-timeout", default=None, type=float,
              help="Seconds to wait for a webhook receiver (default: the spec's).")
@click.option("--scenario", "scenario", default=None, metavar="FILE",
              help="Load a QA scenario file (see fixtures/ and `jobmock scenarios`).")
@click.option("--fault", "faults", multiple=True, metavar="NAME",
              help="Switch on a deliberate contract violation (repeatable; see GET /_jobmock/faults).")
@click.option("--server", type=click.Choice(["granian", "uvicorn"]), default="granian",
              show_default=True, help="The ASGI server: granian (fast, the default) or uvicorn.")
def serve(api: str, host: str, port: int, clock_kind: str, speed: float, seed: int,
          journal_size: int, allow_private_callbacks: bool, webhook_secret: str | None,
          webhook_timeout: float | None, scenario: str | None, faults: tuple[str, ...],
          server: str) -> None:
    """Serve a stateful mock of API (a bundled name or a spec file)."""
    from .asgi import create_app
    from .clock import make_clock
    from .dispatch import Mock

    spec = _load(api)
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
    mock = Mock(spec, clock=make_clock(clock_kind, speed), seed=seed, journal_size=journal_size,
                allow_private_callbacks=allow_private_callbacks, webhook_secret=webhook_secret,
                webhook_timeout=webhook_timeout)
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
    app = create_app(mock)
    base = f"http://{host}:{port}"
    click.echo(banner(spec, base, clock_kind, speed, seed))
    sys.stdout.flush()
    from .behaviour import client_summary

    # uvicorn stops gracefully on SIGTERM too, then re-raises it: end with a clean exit, so
    # the summary below is printed as it is after Ctrl-C. (granian: see _serve_granian.)
    signal.signal(signal.SIGTERM, _exit_quietly)
    try:
        if server == "granian":
            _serve_granian(app, host, port)
            signal.signal(signal.SIGTERM, _exit_quietly)  # the loop restored the default
        else:
            import uvicorn

            uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False,
                        lifespan="on")
    finally:
        click.echo(client_summary(mock))
        click.echo("jobmock stopped.")


def _exit_quietly(signum: int, frame: object) -> None:
    raise SystemExit(0)


def _serve_granian(app: Any, host: str, port: int) -> None:
    """Serve ``app`` on granian's embedded server, in this process, on this event loop.

    The embedded server installs no signal handlers: SIGINT and SIGTERM call its
    ``stop()``, which stops accepting, ends the worker and runs the ASGI lifespan
    shutdown, as uvicorn does on either signal.
    """
    try:
        from granian.constants import Interfaces
        from granian.log import LogLevels
        from granian.server.embed import Server
    except ImportError as exc:
        raise click.ClickException(
            "--server granian needs granian: pip install granian, or use --server uvicorn"
        ) from exc
    import asyncio
    import contextlib
    import logging

    # The same level as uvicorn's (warning), without the notice granian logs on every start.
    server = Server(app, address=host, port=port, interface=Interfaces.ASGI,
                    log_level=LogLevels.warning)
    logging.getLogger("_granian").addFilter(
        lambda record: record.getMessage() != "Embedded server is experimental!")

    async def run() -> None:
        loop = asyncio.get_running_loop()
        serving = asyncio.current_task()
        signals = 0

        def stop() -> None:
            # The first signal stops gracefully (held requests, like an inline wait, may
            # still finish); a second one stops at once, as a second Ctrl-C does on uvicorn.
            nonlocal signals
            signals += 1
            if signals == 1:
                server.stop()
            elif serving is not None:
                loop.set_exception_handler(lambda _loop, _context: None)  # teardown noise
                serving.cancel()

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop)
        with contextlib.suppress(asyncio.CancelledError):
            await server.serve()

    try:
        asyncio.run(run())
    except (OSError, RuntimeError) as exc:
        # granian reports a socket it cannot bind (address in use, not ours) as a
        # RuntimeError "... (os error N)" from its Rust core; anything else is a bug.
        first = str(exc).splitlines()[0] if str(exc) else repr(exc)
        if isinstance(exc, RuntimeError) and "(os error" not in first:
            raise
        raise click.ClickException(f"cannot listen on {host}:{port}: {first}") from exc


@main.command(context_settings={"ignore_unknown_options": True})
@click.argument("api")
@click.option("--base-url", default=None, help="The server to judge (default: the suite starts the mock).")
@click.option("--credential-a", default=None, help="First tenant's credential (env JOBMOCK_CREDENTIAL_A).")
@click.option("--credential-b", default=None, help="Second tenant's credential (env JOBMOCK_CREDENTIAL_B).")
@click.option("--webhook-secret", default=None, help="Secret that verifies webhook signatures.")
@click.option("--receiver-url", default=None,
              help="A URL the server can reach that forwards to the suite's local receiver.")
@click.option("--examples", default=None, type=int, help="Hypothesis examples (default 6).")
@click.option("--steps", default=None, type=int, help="Steps per example (default 25).")
@click.option("--budget", default=None, type=float,
              help="Wall-clock seconds the suite may sleep against a real-time server (default 300).")
@click.option("--junitxml", default=None, help="Write a JUnit XML report here.")
@click.argument("pytest_args", nargs=-1, type=click.UNPROCESSED)
def contract(api: str, base_url: str | None, credential_a: str | None, credential_b: str | None,
             webhook_secret: str | None, receiver_url: str | None, examples: int | None,
             steps: int | None, budget: float | None, junitxml: str | None,
             pytest_args: tuple[str, ...]) -> None:
    """Judge a server (or the mock) against API's spec: the contract suite, via pytest."""
    from pathlib import Path

    import pytest

    from .contract import suite

    _load(api)
    here = Path(suite.__file__).resolve().parent
    args = [str(here), "-c", str(here / "pytest.ini"), "--rootdir", str(here), "--api", api]
    for flag, value in (("--base-url", base_url), ("--credential-a", credential_a),
                        ("--credential-b", credential_b), ("--webhook-secret", webhook_secret),
                        ("--receiver-url", receiver_url), ("--contract-examples", examples),
                        ("--contract-steps", steps), ("--contract-budget", budget),
                        ("--junitxml", junitxml)):
        if value is not None:
            args += [flag, str(value)]
    sys.exit(int(pytest.main([*args, *pytest_args])))


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
def scenarios(as_json: bool) -> None:
    """List the QA scenarios in fixtures/ with their one-line descriptions."""
    from .scenarios import catalog

    items = catalog()
    if as_json:
        click.echo(json.dumps(items, indent=2))
        return
    for item in items:
        click.echo(f"{item['api']:<11} {item['file']:<48} {item['description']}")


if __name__ == "__main__":  # pragma: no cover
    main()

"""The suite's rules and checks for the operations beyond submit and status: cancel, list
and delete.

:class:`RoleRules` is mixed into the state machine (:mod:`jobmock.contract.machine`). Every
judgement comes from the spec and from what the suite itself saw, never from timing:

- **cancel**: the answer is one the spec documents; a job that had already ended (a poll
  showed a terminal word, which never changes) gets the spec's ``when_terminal`` error or
  stays as it was; a job canceled in flight ends in the cancel's word, passes through its
  transient ``via`` word, or ended on its own first (the race is the server's to decide).
- **list**: only the caller's jobs are listed, each at most once, and a job the suite saw
  end is listed with that terminal word. Paged through (the spec's ``page``: a next-page
  token or an ``after`` cursor, a small ``limit``), no page is longer than asked, no job
  shows on two pages, and every job the suite submitted as that tenant (and did not delete)
  is on some page.
- **delete**: the answer is one the spec documents; after a 2xx the job is gone (a poll no
  longer reads it, and gets the spec's ``not_found`` answer, judged by ``errors``).
- **result**: the answer is the spec's ``response`` for a completed job, its
  ``when_unfinished`` answer for an unfinished one and its ``when_ended`` answer for one that
  ended otherwise; where the job moved between the last poll and the one after, either.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st
from hypothesis.stateful import Bundle, RuleBasedStateMachine, consumes, precondition, rule

from .. import idsource
from ..spec import Operation
from ..templates import template_pointers
from .checks import fail, observe_poll, register, run_checks
from .client import Exchange
from .context import JobRecord, Observation, SuiteContext
from .specview import pointer_get

__all__ = ["ResultRules", "RoleRules", "params_for"]


def params_for(ctx: SuiteContext, op: Operation, job: JobRecord) -> dict[str, Any]:
    """Path parameters that name ``job`` on ``op`` (a status, cancel or delete operation)."""
    params: dict[str, Any] = {op.job_id_param or "id": job.id}
    tctx = {"job": {"id": job.id, "params": job.params, "type": job.job_type, "request": job.body}}
    for name, tpl in op.match.items():
        value = tpl(tctx)
        if value not in (None, ""):
            params[name] = value
    for p in op.parameters:
        if p.location == "path" and p.name not in params:
            params[p.name] = job.params.get(p.name) or (
                (ctx.view.resolve(p.schema) or {}).get("enum") or ["contract"])[0]
    return params


def _documented(op: Operation, status: int | None) -> bool:
    codes = op.documented_statuses
    return str(status) in codes or f"{str(status)[0]}XX" in codes or "default" in codes


@register("cancel", "A cancel is not answered or applied as the spec says", "cancel")
def check_cancel(ctx: SuiteContext, obs: Observation) -> None:
    ex, job, op = obs.exchange, obs.job, obs.extra["op"]
    assert job is not None
    if not _documented(op, ex.status):
        raise fail(ctx, "cancel", f"cancel of job {job.id} answered {ex.status}, which the spec "
                                  f"does not document for {op.operation_id}")
    ended_before = obs.extra["ended_before"]
    after: str | None = obs.extra["after"]
    if ended_before is not None:
        if op.when_terminal_error is not None:
            want = ctx.view.error_status(op.when_terminal_error)
            if ex.status != want:
                raise fail(ctx, "cancel", f"cancel of job {job.id}, which had ended "
                                          f"({ended_before}), answered {ex.status}; the spec says "
                                          f"{want} ({op.when_terminal_error})")
        if after is not None and after != ended_before:
            raise fail(ctx, "cancel", f"job {job.id} had ended {ended_before!r}; after a cancel "
                                      f"it reads {after!r} (a terminal job never changes)")
        return
    if ex.status is None or not 200 <= ex.status < 300 or after is None:
        return
    allowed_now = {op.cancel_to, op.cancel_via}
    if after not in allowed_now and not ctx.view.is_terminal(after):
        raise fail(ctx, "cancel", f"job {job.id} was canceled ({ex.status}) but then reads "
                                  f"{after!r}, neither {op.cancel_to!r}"
                                  + (f", {op.cancel_via!r}" if op.cancel_via else "")
                                  + " nor another terminal status")


@register("list", "A list does not agree with the caller's jobs", "list")
def check_list(ctx: SuiteContext, obs: Observation) -> None:
    ex, op = obs.exchange, obs.extra["op"]
    if ex.status is None or not 200 <= ex.status < 300:
        raise fail(ctx, "list", f"{op.operation_id} answered {ex.status} to the owner of jobs")
    ids: list[tuple[str, Any]] = obs.extra["items"]
    tenant = obs.extra["tenant"]
    seen: set[str] = set()
    for job_id, word in ids:
        if job_id in seen:
            raise fail(ctx, "list", f"job {job_id} is listed twice on one page")
        seen.add(job_id)
        known = ctx.jobs_by_id.get(job_id)
        if known is None:
            continue
        if known.tenant is not tenant:
            raise fail(ctx, "list", f"job {job_id} of tenant {known.tenant.name} is listed to "
                                    f"tenant {tenant.name}")
        final = known.statuses[-1] if known.statuses else None
        if final is not None and ctx.view.is_terminal(final) and word is not None and word != final:
            raise fail(ctx, "list", f"job {job_id} ended {final!r}, but the list shows {word!r}")


@register("delete", "A delete is not answered or applied as the spec says", "delete")
def check_delete(ctx: SuiteContext, obs: Observation) -> None:
    ex, job, op, after = obs.exchange, obs.job, obs.extra["op"], obs.extra["after"]
    assert job is not None
    if not _documented(op, ex.status):
        raise fail(ctx, "delete", f"delete of job {job.id} answered {ex.status}, which the spec "
                                  f"does not document for {op.operation_id}")
    if 200 <= ex.status < 300 and after.status == ctx.spec.status.status:
        raise fail(ctx, "delete", f"job {job.id} was deleted ({ex.status}) but a poll then "
                                  f"answered {after.status}: it is still there")


def _result_class(ctx: SuiteContext, word: str | None) -> str:
    if word is None or not ctx.view.is_terminal(word):
        return "when_unfinished"
    return "response" if ctx.view.role(word) == "completed" else "when_ended"


@register("result", "A result resource does not answer as the spec says for the job's state",
          "result")
def check_result(ctx: SuiteContext, obs: Observation) -> None:
    ex, job, op = obs.exchange, obs.job, obs.extra["op"]
    before, after = obs.extra["before"], obs.extra["after"]
    assert job is not None
    if not _documented(op, ex.status):
        raise fail(ctx, "result", f"result of job {job.id} answered {ex.status}, which the spec "
                                  f"does not document for {op.operation_id}")
    if after is None:
        return  # the poll after did not read the job: its state is unknown
    # A terminal word seen before never changes; else the job may have moved up to `after`.
    classes = {_result_class(ctx, before)} if before is not None and ctx.view.is_terminal(before) \
        else {"when_unfinished", _result_class(ctx, after)}
    answers = {"response": op.answer, "when_unfinished": op.when_unfinished,
               "when_ended": op.when_ended}
    allowed: set[int] = set()
    for key in classes:
        answer = answers[key]
        where = f"{ctx.view.operation_pointer(op)}/x-jobmock/{key}"
        if ctx.view.assumed.covers(where) or (isinstance(answer, str)
                                              and ctx.view.error_status_assumed(answer)):
            return  # an assumed answer is not demanded
        allowed.add(ctx.view.error_status(answer) if isinstance(answer, str)
                    else answer.status if answer is not None else ex.status)
    if ex.status not in allowed:
        raise fail(ctx, "result", f"result of job {job.id} (read {before!r} before, {after!r} "
                                  f"after) answered {ex.status}; the spec says {sorted(allowed)} "
                                  f"({', '.join(sorted(classes))})")


@register("list_pages", "Paging through a list loses, repeats or oversizes pages", "list_pages")
def check_list_pages(ctx: SuiteContext, obs: Observation) -> None:
    pages: list[list[tuple[str, Any]]] = obs.extra["pages"]
    limit, tenant, op = obs.extra["limit"], obs.extra["tenant"], obs.extra["op"]
    seen: dict[str, int] = {}
    for n, page in enumerate(pages, 1):
        if len(page) > limit:
            raise fail(ctx, "list_pages", f"page {n} of {op.operation_id} has {len(page)} items; "
                                          f"{limit} were asked ({op.paging.limit_param})")
        for job_id, _ in page:
            if job_id in seen:
                raise fail(ctx, "list_pages", f"job {job_id} is on page {seen[job_id]} and again "
                                              f"on page {n}")
            seen[job_id] = n
    if not obs.extra["complete"]:
        return
    missing = sorted(j.id for j in ctx.jobs_by_id.values()
                     if j.tenant is tenant and j.id not in seen)
    if missing:
        raise fail(ctx, "list_pages", f"paging through {op.operation_id} as {tenant.name} "
                                      f"({len(pages)} pages of {limit}) never showed its jobs "
                                      f"{missing[:5]}")


class RoleRules(RuleBasedStateMachine):
    """Rules for cancel, list and delete operations; mixed into the suite's state machine."""

    jobs = Bundle("jobs")
    ctx: SuiteContext

    @precondition(lambda self: bool(self.ctx.spec.operations_with("cancel")))
    @rule(job=jobs, data=st.data())
    def cancel(self, job: JobRecord, data: st.DataObject) -> None:
        ctx = self.ctx
        op = data.draw(st.sampled_from(ctx.spec.operations_with("cancel")), label="cancel op")
        ended = job.statuses[-1] if job.statuses and ctx.view.is_terminal(job.statuses[-1]) \
            else None
        ex = ctx.client.call(op, tenant=job.tenant, params=params_for(ctx, op, job),
                             note="cancel" + (" a job that has ended" if ended else ""))
        after = ctx.poll(job, note="after the cancel")
        word = ctx.spec.lifecycle.status_of(after.json()) \
            if after.status == ctx.spec.status.status else None
        run_checks(ctx, Observation("cancel", ex, job, {
            "op": op, "ended_before": ended, "after": word}))
        if word is not None:
            observe_poll(ctx, job, after)

    @precondition(lambda self: bool(self.ctx.spec.operations_with("list")))
    @rule(data=st.data(), tenant_index=st.integers(0, 1))
    def list_jobs(self, data: st.DataObject, tenant_index: int) -> None:
        ctx = self.ctx
        op = data.draw(st.sampled_from(ctx.spec.operations_with("list")), label="list op")
        tenant = ctx.tenants[tenant_index]
        ex = ctx.client.call(op, tenant=tenant, note="list my jobs")
        run_checks(ctx, Observation("list", ex, None, {
            "op": op, "tenant": tenant, "items": _listed(ctx, op, ex)}))


    @precondition(lambda self: any(o.paging is not None
                                   for o in self.ctx.spec.operations_with("list")))
    @rule(data=st.data(), tenant_index=st.integers(0, 1), limit=st.integers(1, 3))
    def page_through(self, data: st.DataObject, tenant_index: int, limit: int) -> None:
        """Every page of a list, following the spec's cursor, at most 60 pages."""
        ctx = self.ctx
        ops = [o for o in ctx.spec.operations_with("list") if o.paging is not None]
        op = data.draw(st.sampled_from(ops), label="list op")
        paging = op.paging
        assert paging is not None and op.answer is not None and op.answer.render is not None
        limit = min(limit, paging.max_limit)
        tenant = ctx.tenants[tenant_index]
        page_tpl = ctx.view.render_template(op.answer.render)
        where_next = template_pointers(page_tpl, "page.next")
        where_more = template_pointers(page_tpl, "page.has_more")
        pages: list[list[tuple[str, Any]]] = []
        cursor: str | None = None
        complete = False
        for _ in range(60):
            query = {paging.limit_param: str(limit)}
            if cursor is not None:
                query[paging.cursor_param] = cursor
            ex = ctx.client.call(op, tenant=tenant, query=query,
                                 note=f"list page {len(pages) + 1}, {limit} a page")
            items = _listed(ctx, op, ex)
            run_checks(ctx, Observation("list", ex, None, {
                "op": op, "tenant": tenant, "items": items}))
            pages.append(items)
            body = ex.json()
            if paging.style == "token":
                token = pointer_get(body, where_next[0])[1] if where_next else None
                cursor = token if isinstance(token, str) and token else None
            else:
                more = pointer_get(body, where_more[0])[1] if where_more else bool(items)
                cursor = items[-1][0] if more is True and items else None
            if cursor is None:
                complete = True
                break
        run_checks(ctx, Observation("list_pages", ctx.client.exchanges[-1], None, {
            "op": op, "tenant": tenant, "limit": limit, "pages": pages, "complete": complete}))

    @precondition(lambda self: bool(self.ctx.spec.operations_with("delete")))
    @rule(job=consumes(jobs), data=st.data())
    def delete(self, job: JobRecord, data: st.DataObject) -> None:
        ctx = self.ctx
        op = data.draw(st.sampled_from(ctx.spec.operations_with("delete")), label="delete op")
        ex = ctx.client.call(op, tenant=job.tenant, params=params_for(ctx, op, job),
                             note="delete")
        after = ctx.poll(job, note="after the delete")
        if 200 <= ex.status < 300:
            ctx.jobs_by_id.pop(job.id, None)  # gone: later rules and the settle skip it
        run_checks(ctx, Observation("delete", ex, job, {"op": op, "after": after}))
        if 200 <= ex.status < 300:
            # A deleted job is an unknown one: the poll gets the spec's not_found answer.
            run_checks(ctx, Observation("unknown", after, None))
        elif after.status == ctx.spec.status.status:
            observe_poll(ctx, job, after)



class ResultRules(RuleBasedStateMachine):
    """The rule for result operations, mixed in only for a spec that has one (so that the
    rules drawn for every other spec stay as they were)."""

    jobs = Bundle("jobs")
    ctx: SuiteContext

    @rule(job=jobs, data=st.data())
    def result(self, job: JobRecord, data: st.DataObject) -> None:
        ctx = self.ctx
        op = data.draw(st.sampled_from(ctx.spec.operations_with("result")), label="result op")
        before = job.statuses[-1] if job.statuses else None
        ex = ctx.client.call(op, tenant=job.tenant, params=params_for(ctx, op, job),
                             note="read the result")
        after = ctx.poll(job, note="after reading the result")
        word = ctx.spec.lifecycle.status_of(after.json()) \
            if after.status == ctx.spec.status.status else None
        run_checks(ctx, Observation("result", ex, job, {"op": op, "before": before, "after": word}))
        if word is not None:
            observe_poll(ctx, job, after)


def _listed(ctx: SuiteContext, op: Operation, ex: Exchange) -> list[tuple[str, Any]]:
    """(job id, status word) of each item on a list page, read where the spec's templates
    put them."""
    assert op.answer is not None and op.answer.render is not None
    page_tpl = ctx.view.render_template(op.answer.render)
    item_tpl = ctx.view.render_template(op.item_render or ctx.spec.status_render)
    where_items = template_pointers(page_tpl, "page.items")
    where_id = template_pointers(item_tpl, "job.id")
    where_status = template_pointers(item_tpl, "job.status")
    # No bare {job.id} in an item (Google's name: operations/{job.id}): where the item is
    # rendered as a submit answer is, read it the way job_id_from reads that answer.
    item_render = op.item_render or ctx.spec.status_render
    sources = tuple(dict.fromkeys(
        src for o in ctx.spec.submit_operations for r in o.responses.values()
        if r.render == item_render for src in o.job_id_from if src.startswith("body:")))
    body = ex.json()
    out: list[tuple[str, Any]] = []
    for pointer in where_items[:1]:
        found, items = pointer_get(body, pointer)
        if not found or not isinstance(items, list):
            continue
        for item in items:
            job_id = (pointer_get(item, where_id[0])[1] if where_id else
                      idsource.read(sources, lambda _name: None, item) if sources else None)
            word = pointer_get(item, where_status[0])[1] if where_status else None
            if isinstance(job_id, str):
                out.append((job_id, word))
    return out

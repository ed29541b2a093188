"""``POST /tx/{gid}/act``: a repair action with a reason, a confirmation and the login as actor."""

from __future__ import annotations

from urllib.parse import quote

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from console.admin_client import Action, AdminError
from console.auth import checked_form, current_user
from console.present import status_name
from console.views.common import flash, render, state_of
from console.views.pages import detail_context

MAX_REASON_LEN = 500


async def _refused(request: Request, status_code: int, message: str) -> Response:
    """The detail page again with why the action was refused."""
    try:
        context = await detail_context(request)
    except AdminError as error:
        context = {"tx": None, "load_error": f"{error.code}: {error.details}"}
    return render(request, "detail.html", status_code, refused=message, actions=list(Action), **context)


async def act(request: Request) -> Response:
    """Run the chosen action; redirect to the detail page with the result, or show why it was refused."""
    form = await checked_form(request)
    gid = request.path_params["gid"]
    try:
        action = Action(str(form.get("action", "")))
    except ValueError:
        return await _refused(request, 400, "action: one of " + ", ".join(a.value for a in Action))
    reason = str(form.get("reason", "")).strip()
    if not reason:
        return await _refused(request, 400, "reason is required: say why (it goes to the history)")
    if len(reason) > MAX_REASON_LEN:
        return await _refused(request, 400, f"reason: at most {MAX_REASON_LEN} characters")
    if form.get("confirm") != "yes":
        return await _refused(request, 400, "confirm: tick the confirmation box to run the action")
    actor = current_user(request) or "console"
    try:
        tx = await state_of(request).admin.act(action, gid, reason=reason, actor=actor)
    except AdminError as error:
        return await _refused(
            request, error.http_status, f"{action.label} refused - {error.meaning}: {error.details}"
        )
    flash(request, "ok", f"{action.label}: done, the transaction is now {status_name(tx.status)}")
    return RedirectResponse(f"/tx/{quote(gid, safe='')}", status_code=303)

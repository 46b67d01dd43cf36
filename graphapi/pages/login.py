"""``/login``: the token form. With a token configured, a page asked for without one comes here;
the token given is kept in a cookie (HttpOnly, SameSite=Strict) that the pages accept instead of
an ``Authorization`` header."""

from __future__ import annotations

from flask import current_app, redirect, render_template, request, url_for

from graphapi.auth import COOKIE, is_token
from graphapi.pages.blueprint import bp

COOKIE_SECONDS = 12 * 3600  # an on-call shift


def safe_next(target: str | None) -> str:
    """Where to go after logging in: a path of this server only (never another site)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return url_for("pages.overview")


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Ask for the token; keep it in a cookie when it is right."""
    target = safe_next(request.values.get("next"))
    if not current_app.config.get("TOKEN"):
        return redirect(target)
    if request.method == "POST":
        given = request.form.get("token", "")
        if is_token(given):
            response = redirect(target)
            response.set_cookie(
                COOKIE, given.strip(), max_age=COOKIE_SECONDS, httponly=True,
                samesite="Strict", secure=request.is_secure,
            )  # fmt: skip
            return response
        return render_template("pages/login.html", next=target, wrong=True), 401
    return render_template("pages/login.html", next=target, wrong=False)

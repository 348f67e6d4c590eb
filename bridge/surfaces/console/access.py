"""Who is signed in, and which shop a request is about: a shop the user does not belong to is a 404."""

from __future__ import annotations

import ipaddress
from functools import wraps
from urllib.parse import urlsplit

from flask import abort, g, redirect, request, session, url_for

from bridge.audit import Who
from bridge.models import MerchantUser
from bridge.surfaces.web.runtime import reading, services
from bridge.usecases import merchants
from bridge.users import session_fingerprint, shop_for_user, user_shops


def sign_in_session(user: MerchantUser) -> None:
    """A fresh session (nothing carried over from before sign-in) bound to the user's password and to their
    session generation."""
    session.clear()
    session.permanent = True
    session["user_id"] = user.id
    session["fp"] = session_fingerprint(user)
    session["generation"] = user.session_generation


def sign_out() -> None:
    """Ends every session of the user, this one and any copy of its cookie: the cookie is signed, not stored,
    so only the database (which every web process reads on each request) can make it worthless."""
    user = load_user()
    if user is not None:
        merchants.sign_out_everywhere(services().sessions, user.id)
    session.clear()


def load_user() -> MerchantUser | None:
    if "user" in g:
        return g.user
    g.user = None
    user_id = session.get("user_id")
    if isinstance(user_id, int):
        with reading() as db:
            user = db.get(MerchantUser, user_id)
        if _session_is_current(user):
            g.user = user
        else:
            session.clear()
    return g.user


def _session_is_current(user: MerchantUser | None) -> bool:
    return (
        user is not None
        and session.get("fp") == session_fingerprint(user)
        and session.get("generation") == user.session_generation
    )


def who() -> Who:
    return Who.of(g.user)


def login_required(view):
    @wraps(view)
    def wrapper(*args, **kwargs):
        if load_user() is None:
            return redirect(url_for("console.login", next=request.full_path.rstrip("?")))
        return view(*args, **kwargs)

    return wrapper


def shop_view(view):
    """Signed in, and a member of the shop in the URL (else 404). Sets g.shop and g.shops (the switcher)."""

    @wraps(view)
    @login_required
    def wrapper(shop_id: int, *args, **kwargs):
        with reading() as db:
            shop = shop_for_user(db, g.user.id, shop_id)
            if shop is None:
                abort(404)
            g.shop = shop
            g.shops = user_shops(db, g.user.id)
        return view(shop_id, *args, **kwargs)

    return wrapper


def safe_next(target: str | None) -> str | None:
    """Only a path on this site (never //other.host or a scheme): no open redirect after sign-in. No control
    character either: urlsplit drops some (and a Location header cannot carry a line break)."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return None
    if any(ord(character) < 32 or ord(character) == 127 for character in target):
        return None
    parts = urlsplit(target)
    return target if not parts.scheme and not parts.netloc else None


def client_ip() -> str:
    """The client's address. X-Forwarded-For is believed only from a proxy on this host (loopback), and
    then only its last hop, which that proxy wrote itself."""
    peer = request.remote_addr or "unknown"
    forwarded = request.headers.get("X-Forwarded-For", "")
    try:
        trusted = ipaddress.ip_address(peer).is_loopback
    except ValueError:
        trusted = False
    if trusted and forwarded:
        return forwarded.split(",")[-1].strip()[:64] or peer
    return peer


def from_this_host() -> bool:
    """The client is on the bridge's own host (a browser there, or an SSH tunnel to it), as `client_ip` sees it:
    behind nginx, the address nginx saw."""
    try:
        return ipaddress.ip_address(client_ip()).is_loopback
    except ValueError:
        return False

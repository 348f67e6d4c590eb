"""A customer's personal data: the export of everything the bridge holds about them (an access request) and
its erasure (an erasure request), each written to the audit trail without the data itself."""

from __future__ import annotations

import json

from flask import Response, flash, redirect, request, url_for

from bridge.surfaces.console import console
from bridge.surfaces.console.access import shop_view, who
from bridge.surfaces.web.runtime import services
from bridge.usecases import wallets


@console.get("/shops/<int:shop_id>/customers/<external_id>/personal-data.json")
@shop_view
def personal_data(shop_id: int, external_id: str):
    data = wallets.personal_data(services().sessions, shop_id, external_id, who())
    name = f"customer-{shop_id}-{external_id}-personal-data.json"
    return Response(
        json.dumps(data, indent=2, ensure_ascii=False),
        mimetype="application/json",
        headers={"Content-Disposition": f'attachment; filename="{name}"', "Cache-Control": "no-store"},
    )


@console.post("/shops/<int:shop_id>/customers/<external_id>/erase")
@shop_view
def erase_personal_data(shop_id: int, external_id: str):
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm: erasing cannot be undone.", "error")
        return redirect(url_for("console.customer", shop_id=shop_id, external_id=external_id) + "#privacy")
    wallets.erase(services().sessions, shop_id, external_id, who())
    flash(
        "Personal data erased: name, e-mail address and stored webhook details. The wallet's balance and its "
        "movements stay (the balance is still owed to the customer).",
        "success",
    )
    return redirect(url_for("console.customer", shop_id=shop_id, external_id=external_id))

"""A customer's personal data: the export of everything the bridge holds about them (an access request) and
its erasure (an erasure request), each written to the audit trail without the data itself."""

from __future__ import annotations

import json

from flask import Response, flash, g, redirect, request, url_for

from bridge import audit
from bridge.privacy import customer_data, erase_customer
from bridge.surfaces.console import console
from bridge.surfaces.console.access import shop_view, who
from bridge.surfaces.web.runtime import transaction


@console.get("/shops/<int:shop_id>/customers/<external_id>/personal-data.json")
@shop_view
def personal_data(shop_id: int, external_id: str):
    with transaction() as db:
        data = customer_data(db, g.shop, external_id)
        audit.record(db, who(), "customer.export", shop_id=shop_id, target=external_id, field="personal data",
                     new="exported")  # fmt: skip
    name = f"customer-{shop_id}-{external_id}-personal-data.json"
    return Response(json.dumps(data, indent=2, ensure_ascii=False), mimetype="application/json",
                    headers={"Content-Disposition": f'attachment; filename="{name}"',
                             "Cache-Control": "no-store"})  # fmt: skip


@console.post("/shops/<int:shop_id>/customers/<external_id>/erase")
@shop_view
def erase_personal_data(shop_id: int, external_id: str):
    if request.form.get("confirm") != "yes":
        flash("Tick the box to confirm: erasing cannot be undone.", "error")
        return redirect(url_for("console.customer", shop_id=shop_id, external_id=external_id) + "#privacy")
    with transaction() as db:
        erased = erase_customer(db, g.shop, external_id)
        audit.record(db, who(), "customer.erase", shop_id=shop_id, target=external_id, field="personal data",
                     new=f"erased; {erased.deliveries_scrubbed} stored webhook bodies scrubbed")  # fmt: skip
    flash("Personal data erased: name, e-mail address and stored webhook details. The wallet's balance and its "
          "movements stay (the balance is still owed to the customer).", "success")  # fmt: skip
    return redirect(url_for("console.customer", shop_id=shop_id, external_id=external_id))

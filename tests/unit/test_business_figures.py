"""Business figures against a population whose answers were worked out by hand.

Five customers, first seen in January 2026 (the window), through the real pure core
(effects → reference store → funnel rows) and the metrics accumulator:

==========  ===========================================================  ======== =======
customer    events                                                       purchase revenue
==========  ===========================================================  ======== =======
ada         page; Order Completed revenue 100; Subscription Started 50   yes      150
bob         Subscription Started value 30 (the default rules: purchase)  yes      30
cy          page only                                                    no       0
dee         Trial Converted total 20                                     yes      20
eve         Order Completed, no revenue property                         yes      0
==========  ===========================================================  ======== =======

customers_seen 5, purchasers 4, conversion 0.8, revenue 200, per purchasing customer 50.0,
per customer 40.0; by channel: web (ada, cy, eve) 3 customers, 2 purchasers, 150;
email (bob, dee) 2, 2, 50.
"""

from __future__ import annotations

from typing import Any

from api.business import business_figures
from api.rows import parse_row
from tests.reference import ReferenceStore, make_event
from touchpath.funnel_rows import funnel_row
from touchpath.stages import load_stage_model, parse_stage_model

MODEL = load_stage_model()
JAN = 1_767_225_600_000  # 2026-01-01
DAY = 86_400_000


def order(user: str, message_id: str, day: int, name: str, channel: str, **props: Any) -> Any:
    return make_event(
        "track",
        message_id,
        JAN + day * DAY,
        userId=user,
        event=name,
        channel=channel,
        properties=props,
    )


def page(user: str, message_id: str, day: int) -> Any:
    return make_event("page", message_id, JAN + day * DAY, userId=user, properties={"path": "/"})


POPULATION = [
    page("ada", "a1", 1),
    order("ada", "a2", 2, "Order Completed", "web", revenue=100),
    order("ada", "a3", 3, "Subscription Started", "web", revenue=50),
    order("bob", "b1", 4, "Subscription Started", "email", value=30),
    page("cy", "c1", 5),
    order("dee", "d1", 6, "Trial Converted", "email", total=20),
    order("eve", "e1", 7, "Order Completed", "web"),
]


def figures(model: Any = MODEL) -> dict[str, Any]:
    store = ReferenceStore(model)
    store.apply_batch(POPULATION)
    raws = [__import__("orjson").dumps(funnel_row(p)) for p in store.profiles.values()]
    rows = [parse_row(raw, model.stages) for raw in raws]
    purchase = model.index(model.purchase_stage)
    return business_figures([r for r in rows if r], JAN, JAN + 31 * DAY, purchase)


def test_lifetime_value_counts_every_event_the_rules_call_a_purchase() -> None:
    answer = figures()
    assert (answer["customers_seen"], answer["purchasers"]) == (5, 4)
    assert answer["conversion_rate"] == 0.8
    value = answer["lifetime_value"]
    assert value["revenue"] == 200.0
    assert value["per_purchasing_customer"] == 50.0
    assert value["per_customer"] == 40.0
    channels = value["by_first_touch_channel"]
    assert (channels["web"]["customers"], channels["web"]["purchasers"]) == (3, 2)
    assert channels["web"]["revenue"] == 150.0
    assert (channels["email"]["customers"], channels["email"]["revenue"]) == (2, 50.0)


def test_the_revenue_properties_and_the_purchase_stage_come_from_the_rules() -> None:
    text = __import__("importlib.resources").resources.files("touchpath")
    rules = text.joinpath("rules/default.yaml").read_text()
    model = parse_stage_model(rules + "\nrevenue: {stage: purchase, properties: [total]}\n")
    assert model.revenue_properties == ("total",)
    assert figures(model)["lifetime_value"]["revenue"] == 20.0  # only dee's total counts


FEB = JAN + 31 * DAY  # 2026-02-01: the period is February, the previous one the 28 days before
RETENTION = [
    page("pia", "p1", 4),  # Jan 5
    page("pia", "p2", 40),  # Feb 10: active in both periods
    order("raj", "r1", 9, "Order Completed", "web", revenue=10),  # Jan 10: purchase
    order("raj", "r2", 33, "Order Completed", "web", revenue=20),  # Feb 3: a repeat order
    page("sol", "s1", 7),  # Jan 8
    order("sol", "s2", 42, "Email Opened", "email", machine_open=True),  # Feb 12: a machine
    page("tom", "t1", 19),  # Jan 20 only
    page("uma", "u1", -31),  # Dec 1, 2025: before the previous period
]


def test_retention_counts_any_event_as_activity() -> None:
    """Previous period [Jan 4, Feb 1): pia, raj, sol and tom were active in it (uma's last
    event was in December). Of them pia (a page) and raj (a repeat order, which changes no
    stage) were active in February; sol's only February event is a machine email open,
    which the rules ignore: 2 of 4 = 0.5 (counting stage entries only gave 0, counting
    every event 0.75)."""
    store = ReferenceStore(MODEL)
    store.apply_batch(RETENTION)
    rows = [
        parse_row(__import__("orjson").dumps(funnel_row(p)), MODEL.stages)
        for p in store.profiles.values()
    ]
    purchase = MODEL.index(MODEL.purchase_stage)
    answer = business_figures([r for r in rows if r], FEB, FEB + 28 * DAY, purchase)
    assert answer["retention"] == {"active_previous_period": 4, "retained": 2, "rate": 0.5}

"""The store invariants, two processors (their resolutions interleaved too), a processor killed
with SIGKILL, the API and a rules re-evaluation, on a real three-master Redis Cluster
(``TOUCHPATH_REDIS_CLUSTER=true``).

The tests are those of tests/e2e, run again here with ``redis_url`` naming the cluster
(tests/cluster/conftest.py); stacks for it are cluster stacks (tests/e2e/conftest.py
``stack_env``). Every key of one installation lives under one hash tag, so the keys sit in
one slot: the test below checks they do, and that the cluster really has three masters.
"""

from __future__ import annotations

from typing import Any

import httpx
import redis
from redis.cluster import RedisCluster

from tests.e2e import (
    test_api,
    test_processor_crash,
    test_rules_versions,
    test_store_concurrency,
    test_store_invariants,
)

# collected here again, on the cluster, in their modules' order (the erasure test comes last)
stack, population, envs = test_api.stack, test_api.population, test_rules_versions.envs
client = test_store_invariants.client
test_store_ends_the_same = (
    test_store_invariants.test_the_store_ends_the_same_whatever_the_order_redelivery_and_batching
)
test_two_processors_interleaving = (
    test_store_concurrency.test_two_processors_interleaving_their_rounds_end_as_one_processor
)
test_trait_conditions = test_store_invariants.test_trait_conditions_end_the_same_whatever_the_order
test_stale_read_does_not_overwrite = test_store_concurrency.test_a_resolution_read_before_another_processors_change_does_not_overwrite_it  # noqa: E501
test_announced_once = test_store_concurrency.test_a_stage_change_is_announced_once_when_two_processors_resolve_it_at_once  # noqa: E501
test_resolver_announces = (
    test_store_invariants.test_the_resolver_announces_what_the_reference_announces
)
test_stage_by_every_kind_of_identifier = test_api.test_stage_by_every_kind_of_identifier
test_stage_as_of_a_past_time = test_api.test_stage_as_of_a_past_time
test_unknown_customer = test_api.test_unknown_customer_is_a_404_problem
test_profile = test_api.test_profile
test_journey_pages = test_api.test_journey_pages_newest_first_and_filters
test_stages_and_segments = test_api.test_stages_and_segments
test_funnel = test_api.test_funnel
test_business_figures = test_api.test_business_figures
test_access_control = test_api.test_access_control
test_windows = test_api.test_every_window_takes_one_instant_and_refuses_since_after_until
test_erase = test_api.test_erase_is_complete_and_replays_do_not_resurrect
test_sigkill = test_processor_crash.test_sigkill_mid_stream_loses_nothing_and_double_counts_nothing
test_webhook_outbox_while_subscribed = (
    test_store_invariants.test_the_webhook_outbox_is_written_only_while_there_are_subscriptions
)
test_trigger_webhooks_while_subscribed = (
    test_store_invariants.test_trigger_firings_reach_webhooks_only_while_subscribed
)
test_rules_changed = (
    test_rules_versions.test_a_changed_rules_file_re_evaluates_everyone_in_the_background
)


def test_the_keys_of_an_installation_share_one_slot_of_a_three_master_cluster(
    stack: dict[str, Any],
    population: None,
    redis_client: redis.Redis,
) -> None:
    assert isinstance(redis_client, RedisCluster)
    assert len(redis_client.get_primaries()) == 3
    prefix = stack["env"]["TOUCHPATH_REDIS_PREFIX"]
    body = {"url": "https://example.com/hook"}  # the API's subscriptions (the scripts' IFEXISTS)
    made = httpx.post(f"{stack['api']}/v1/subscriptions", json=body, headers=test_api.ADMIN)
    assert made.status_code == 201, made.text
    assert redis_client.exists(f"{prefix}:wh:subs")
    keys = list(redis_client.scan_iter(match=f"{prefix}:*"))
    assert len(keys) > 20
    assert {redis_client.keyslot(key) for key in keys} == {redis_client.keyslot(prefix)}
    gone = httpx.delete(
        f"{stack['api']}/v1/subscriptions/{made.json()['id']}", headers=test_api.ADMIN
    )
    assert gone.status_code in (200, 204) and not redis_client.exists(f"{prefix}:wh:subs")

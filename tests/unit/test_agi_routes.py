"""AGI routes: which handler a script path reaches, with what parameters."""

import pytest

from callcore.agi.routes import RESOLVED_PATHS, AgiRoute, AgiRouteRegistry
from callcore.errors import DuplicateNameError


async def inbound(session, params):
    return None


async def special(session, params):
    return None


def registry_with(*routes, plugin="acme"):
    registry = AgiRouteRegistry()
    add(registry, plugin, *routes)
    return registry


def add(registry, plugin, *routes):
    with registry.adding_for(plugin, {}):
        for route in routes:
            registry.add(route)


def test_a_literal_segment_beats_a_placeholder_and_segments_are_percent_decoded():
    registry = registry_with(AgiRoute("inbound/{did}", inbound), AgiRoute("inbound/vip", special))

    route, params = registry.resolve("inbound/%2B33140000000")
    assert (route.handler, params) == (inbound, {"did": "+33140000000"})
    assert registry.resolve("inbound/vip")[0].handler is special
    assert registry.resolve("inbound") is None
    assert registry.resolve("inbound/") is None
    assert registry.resolve("outbound/123") is None


def test_remembered_paths_hand_each_caller_its_own_parameters():
    registry = registry_with(AgiRoute("inbound/{did}", inbound))
    _, first = registry.resolve("inbound/100")
    first["did"] = "changed by a handler"
    _, second = registry.resolve("inbound/100")
    assert second == {"did": "100"}
    for number in range(RESOLVED_PATHS + 5):
        assert registry.resolve(f"inbound/{number}")[1] == {"did": str(number)}
    assert registry.resolve("inbound/100")[1] == {"did": "100"}


def test_a_route_added_after_paths_were_resolved_is_found():
    registry = registry_with(AgiRoute("inbound/{did}", inbound))
    assert registry.resolve("flow/7") is None
    assert registry.resolve("inbound/vip")[0].handler is inbound
    add(registry, "other", AgiRoute("flow/{flow_id}", inbound), AgiRoute("inbound/vip", special))
    assert registry.resolve("flow/7")[1] == {"flow_id": "7"}
    assert registry.resolve("inbound/vip")[0].handler is special


def test_routes_of_a_plugin_that_failed_halfway_are_not_served():
    registry = registry_with(AgiRoute("inbound/{did}", inbound))
    assert registry.resolve("flow/7") is None
    with pytest.raises(DuplicateNameError):
        broken = (AgiRoute("flow/{flow_id}", special), AgiRoute("inbound/{x}", special))
        add(registry, "broken", *broken)
    assert registry.resolve("flow/7") is None
    assert registry.resolve("inbound/1")[0].handler is inbound

"""Private networking as the default, read from the Bicep (pycep; no Bicep compiler here): the
Flex Consumption app joins a VNet; Storage (blob, queue), Cosmos DB and Key Vault each have a
private endpoint registered in its private DNS zone; their public network access is Disabled unless
the documented first-trial parameter opens it, and then only to the listed addresses; and no
checkov network skip is left."""

from __future__ import annotations

import re
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from tests.bicep import parse_bicep

ROOT = Path(__file__).resolve().parents[2]
INFRA = ROOT / "infra"
MODULES = INFRA / "modules"
PRIVATE_ENDPOINT = "Microsoft.Network/privateEndpoints"
DNS_GROUP = "Microsoft.Network/privateEndpoints/privateDnsZoneGroups"
# Private endpoint group id -> private DNS zone (learn.microsoft.com/azure/private-link/private-endpoint-dns).
ZONES = {
    "blob": "privatelink.blob.core.windows.net",
    "queue": "privatelink.queue.core.windows.net",
    "table": "privatelink.table.core.windows.net",
    "Sql": "privatelink.documents.azure.com",
    "vault": "privatelink.vaultcore.azure.net",
}
# checkov's network checks on the three data services: none may be skipped any more.
NETWORK_CHECKS = {
    "CKV_AZURE_35",
    "CKV_AZURE_59",
    "CKV_AZURE_99",
    "CKV_AZURE_101",
    "CKV_AZURE_109",
    "CKV_AZURE_189",
}
SKIP = re.compile(r"//\s*checkov:skip=([A-Z0-9_]+)(?::(.*))?")


@cache
def _parse(name: str) -> dict[str, Any]:
    path = INFRA / name if name == "main.bicep" else MODULES / name
    return parse_bicep(path)  # once per session, for every infra test


def _body(resource: dict[str, Any]) -> dict[str, Any]:
    """A resource's own properties, whether it is looped or conditional or neither."""
    config: dict[str, Any] = resource["config"]
    return (
        config["config"]
        if "config" in config and ("loop_type" in config or "condition" in config)
        else config
    )


def _of_type(module: str, kind: str) -> dict[str, dict[str, Any]]:
    return {name: r for name, r in _parse(module)["resources"].items() if r["type"] == kind}


def _ref(expression: Any) -> tuple[Any, Any]:
    operands = expression["operator"]["operands"]
    return operands["operand_1"], operands["operand_2"]


def test_the_vnet_has_a_delegated_app_subnet_and_an_endpoint_subnet_behind_nsgs() -> None:
    [vnet] = _of_type("network.bicep", "Microsoft.Network/virtualNetworks").values()
    subnets = {s["name"]: s["properties"] for s in _body(vnet)["properties"]["subnets"]}
    assert set(subnets) == {"app", "private-endpoints"}
    [delegation] = subnets["app"]["delegations"]
    assert delegation["properties"]["serviceName"] == "Microsoft.App/environments"  # Flex Consumption
    nsgs = set(_of_type("network.bicep", "Microsoft.Network/networkSecurityGroups"))
    for subnet in subnets.values():
        assert _ref(subnet["networkSecurityGroup"]["id"])[0] in nsgs


def test_private_dns_zones_are_linked_to_the_vnet_and_output_by_group_id() -> None:
    network = _parse("network.bicep")
    zones = network["variables"]["zones"]["value"]
    assert sorted(zones) == sorted(ZONES.values())
    [links] = _of_type("network.bicep", "Microsoft.Network/privateDnsZones/virtualNetworkLinks").values()
    assert links["config"]["loop_type"]["detail"]["array_name"] == "zones"
    assert _body(links)["properties"]["registrationEnabled"] is False
    output = network["outputs"]["dnsZoneIds"]["value"]
    for group, zone in ZONES.items():
        index = _ref(output[group])[0]["operator"]["operands"]["operand_2"]
        assert zones[int(index)] == zone, group


def _endpoint_groups(module: str) -> tuple[list[str], Any]:
    """The group ids a module's private endpoints serve and the DNS zone ids they register in."""
    [endpoint] = _of_type(module, PRIVATE_ENDPOINT).values()
    [dns] = _of_type(module, DNS_GROUP).values()
    connection = _body(endpoint)["properties"]["privateLinkServiceConnections"][0]["properties"]
    groups = connection["groupIds"]
    zone = _body(dns)["properties"]["privateDnsZoneConfigs"][0]["properties"]["privateDnsZoneId"]
    if "loop_type" in endpoint["config"]:
        loop = endpoint["config"]["loop_type"]["detail"]
        assert groups == [loop["item_name"]]
        default = _parse(module)["parameters"][loop["array_name"]]["default"]
        return list(default), zone
    return list(groups), zone


@pytest.mark.parametrize(
    ("module", "groups"),
    [("storage.bicep", ["blob", "queue"]), ("cosmos.bicep", ["Sql"]), ("keyvault.bicep", ["vault"])],
)
def test_each_data_service_has_private_endpoints_and_public_access_disabled(
    module: str, groups: list[str]
) -> None:
    found, zone = _endpoint_groups(module)
    assert found == groups
    if module == "storage.bicep":  # privateDnsZoneIds[service]: the zone of each endpoint's group
        assert _ref(zone) == ("privateDnsZoneIds", "service")
    else:
        assert zone == "privateDnsZoneId"
    [account] = [
        r
        for r in _parse(module)["resources"].values()
        if r["type"]
        in (
            "Microsoft.Storage/storageAccounts",
            "Microsoft.DocumentDB/databaseAccounts",
            "Microsoft.KeyVault/vaults",
        )
        and not r["existing"]
    ]
    properties = account["config"]["properties"]
    assert properties["publicNetworkAccess"] == "publicNetworkAccess"
    parameter = _parse(module)["parameters"]["publicNetworkAccess"]
    assert parameter["default"] == "Disabled"
    allowed = [d for d in parameter["decorators"] if d["type"] == "allowed"]
    assert allowed and sorted(allowed[0]["argument"]) == ["Disabled", "Enabled"]
    if module != "cosmos.bicep":
        # Even with the trial's public endpoint on, the firewall denies all but the listed addresses.
        assert properties["networkAcls"]["defaultAction"] == "Deny"
        assert properties["networkAcls"]["ipRules"]["loop_type"]["detail"]["array_name"] == "allowedIpRanges"
    else:
        assert properties["ipRules"]["loop_type"]["detail"]["array_name"] == "allowedIpRanges"


def test_main_keeps_public_access_off_and_wires_the_endpoints() -> None:
    main = _parse("main.bicep")
    parameter = main["parameters"]["publicNetworkAccess"]
    assert parameter["default"] == "Disabled"
    assert main["parameters"]["trialAllowedIpRanges"]["default"] == []
    modules = main["modules"]
    for name in ("hostStorage", "dataStorage", "cosmos", "keyVault"):
        params = modules[name]["config"]["params"]
        assert params["publicNetworkAccess"] == "publicNetworkAccess", name
        assert params["allowedIpRanges"] == "trialAllowedIpRanges", name
        assert _ref(_ref(params["privateEndpointSubnetId"])[1]) == ("outputs", "privateEndpointSubnetId"), (
            name
        )
    # The runtime account also serves the host's queues and tables privately.
    assert modules["hostStorage"]["config"]["params"]["privateEndpointServices"] == ["blob", "queue", "table"]
    assert "privateEndpointServices" not in modules["dataStorage"]["config"]["params"]  # blob and queue
    for name, group in (("cosmos", "Sql"), ("keyVault", "vault")):
        zone = modules[name]["config"]["params"]["privateDnsZoneId"]
        assert _ref(zone)[0] == "network" and group in str(zone), name
    app = modules["functionApp"]["config"]["params"]["virtualNetworkSubnetId"]
    assert _ref(_ref(app)[1]) == ("outputs", "appSubnetId")


def test_the_function_app_joins_the_vnet() -> None:
    [site] = _of_type("functionapp.bicep", "Microsoft.Web/sites").values()
    properties = site["config"]["properties"]
    assert properties["virtualNetworkSubnetId"] == "virtualNetworkSubnetId"


def test_no_network_skip_is_left_and_every_skip_says_why() -> None:
    skipped = {}
    for bicep in sorted(INFRA.rglob("*.bicep")):
        for line in bicep.read_text(encoding="utf-8").splitlines():
            match = SKIP.search(line)
            if match:
                skipped[match.group(1)] = match.group(2) or ""
    assert not NETWORK_CHECKS & set(skipped), sorted(NETWORK_CHECKS & set(skipped))
    assert all(len(reason.strip()) > 20 for reason in skipped.values())
    security = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    for check in skipped:
        assert check in security, f"{check} is skipped but docs/security.md does not say why"

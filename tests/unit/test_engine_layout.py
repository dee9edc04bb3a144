"""MarginEngine forwards unknown selectors to MarginEngineExtension by
delegatecall: both must see the same storage, and no call may reach the
extension's own storage."""

import json
import subprocess
import sys

import boa
import pytest
from eth.exceptions import Revert

from tests.protocol import CONTRACTS, ROOT, ZERO_ADDRESS, AssetSpec, Protocol, deployer


def _vyper(name: str, output: str):
    """`vyper -f <output>` of a contract, parsed as JSON."""
    out = subprocess.run(
        [sys.executable, "-m", "vyper", "-f", output, str(CONTRACTS / name)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def test_engine_and_extension_share_storage_and_lock_layout():
    engine, extension = _vyper("MarginEngine.vy", "layout"), _vyper("MarginEngineExtension.vy", "layout")
    assert engine["storage_layout"] == extension["storage_layout"]
    assert engine["transient_storage_layout"] == extension["transient_storage_layout"]
    # Everything lives in the ledger module: neither contract declares storage.
    assert list(engine["storage_layout"]) == ["ledger"]


def test_engine_and_extension_selectors_are_disjoint():
    core_abi, ext_abi = _vyper("MarginEngine.vy", "abi"), _vyper("MarginEngineExtension.vy", "abi")
    core = {f["name"] for f in core_abi if f["type"] == "function"}
    ext = {f["name"] for f in ext_abi if f["type"] == "function"}
    # Only the immutables' getters are shared (the engine answers them itself).
    assert core & ext == {"CONFIGURATOR", "SEQUENCER_FEED", "SEQUENCER_GRACE_PERIOD"}
    # Extension functions return nothing: the forwarding fallback returns no data.
    for f in ext_abi:
        if f["type"] == "function" and f["name"] not in core:
            assert f["outputs"] == [], f["name"]


def test_extension_refuses_direct_calls():
    p = Protocol.deploy()
    with boa.reverts("engine: call through the engine"):
        p.extension.set_operator(boa.env.generate_address("operator"), True)
    with boa.env.prank(p.owner), boa.reverts("engine: call through the engine"):
        p.extension.set_guardian(p.owner)


def test_forwarded_calls_write_the_engines_storage():
    p = Protocol.deploy()
    owner, operator = boa.env.generate_address("owner"), boa.env.generate_address("operator")
    with boa.env.prank(owner):
        p.engine.set_operator(operator, True)
    (log,) = p.engine.get_logs()
    assert (log.owner, log.operator, log.approved) == (owner, operator, True)
    assert p.engine.operators(owner, operator) is True


def test_engine_refuses_an_extension_deployed_with_other_arguments():
    p = Protocol.deploy()
    other = deployer("MarginEngineExtension.vy").deploy(p.configurator.address, p.guardian, ZERO_ADDRESS, 60)
    with boa.reverts("config: extension deployed with other arguments"):
        deployer("MarginEngine.vy").deploy(p.configurator.address, p.guardian, ZERO_ADDRESS, 0, other.address, p.engine.PLANNER())


def test_unknown_selector_reverts_and_ether_is_refused():
    p = Protocol.deploy()
    p.list_asset(AssetSpec("WETH", price=2000))
    with pytest.raises(Revert) as unknown:
        boa.env.raw_call(p.engine.address, data=bytes.fromhex("deadbeef"))
    assert unknown.value.args[0] == b""  # the extension has no such function either
    boa.env.set_balance(boa.env.eoa, 10**18)
    with pytest.raises(Revert) as paid:
        boa.env.raw_call(p.engine.address, data=bytes.fromhex("deadbeef"), value=1)
    assert b"engine: no ether" in paid.value.args[0]
    assert boa.env.get_balance(p.engine.address) == 0

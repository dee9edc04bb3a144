"""Fixtures shared by the account tests: the protocol with a USDC and a WETH
market, and role-named actors."""

import boa
import pytest

from tests.protocol import AssetSpec, Protocol


@pytest.fixture
def protocol():
    return Protocol.deploy()


@pytest.fixture
def usdc(protocol):
    return protocol.list_asset(AssetSpec("USDC", decimals=6, price=1.0))


@pytest.fixture
def weth(protocol, usdc):
    return protocol.list_asset(AssetSpec("WETH", decimals=18, price=2000.0))


@pytest.fixture
def lender():
    return boa.env.generate_address("lender")


@pytest.fixture
def borrower():
    return boa.env.generate_address("borrower")


@pytest.fixture
def operator():
    return boa.env.generate_address("operator")


@pytest.fixture
def attacker():
    return boa.env.generate_address("attacker")


@pytest.fixture
def payer():
    return boa.env.generate_address("payer")

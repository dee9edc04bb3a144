"""Fixtures of the differential tests (see helpers.py for the isolation
rules: deployments shared by hypothesis examples live in fixtures)."""

import pytest

from .scenario import deploy_world


@pytest.fixture
def world():
    """The protocol with six listed assets and three funded users (scenario.World)."""
    return deploy_world()

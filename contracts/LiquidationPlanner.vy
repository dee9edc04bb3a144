# pragma version 0.4.3
# pragma optimize gas
"""
@title LiquidationPlanner
@license MIT
@notice The liquidation plan (modules/liquidation.vy `plan_for`: the
        health-scaled bonus, the repay to the liquidation-end target, the
        dust rules and the solvency cap in token units) as a stateless
        contract. MarginEngine calls it with staticcall: the plan's code
        does not fit in the engine under EIP-170 (24,576 bytes). MarginLens
        compiles the same module, so a preview equals the liquidation.
@custom:security Stateless and view (it reads only block.timestamp, for
        weight ramps); the engine passes the health, prices and amounts it
        has computed and validated.
"""

from .modules import liquidation


@view
@external
def plan_for(
    collateral_maintenance: uint256,
    debt_maintenance: uint256,
    le_health: int256,
    risk_repay: uint256,
    ramp_repay: uint256,
    risk_seize: uint256,
    ramp_seize: uint256,
    liquidation_word: uint256,
    price_repay: uint256,
    price_seize: uint256,
    debt: uint256,
    deposit: uint256,
    dust: uint256,
    requested: uint256,
    solvent: bool,
    indexes: uint256,
) -> liquidation.Plan:
    """
    @notice `liquidation.plan_for` (parameters, units and rounding there).
    @return The plan: repay and seize in token units, to_insurance (part of
            seize), bonus (WAD) and the refusal flags.
    """
    return liquidation.plan_for(
        collateral_maintenance,
        debt_maintenance,
        le_health,
        risk_repay,
        ramp_repay,
        risk_seize,
        ramp_seize,
        liquidation_word,
        price_repay,
        price_seize,
        debt,
        deposit,
        dust,
        requested,
        solvent,
        indexes,
    )

"""The mutants: one deliberate bug each, in the form (file, exact search
text, replacement, description), plus for a bug of two sites (defences in
depth, each of which alone keeps the property) further (search,
replacement) edits of the same file in `also`. Every search text must
occur exactly once in contracts/<file> (tests/exploits/test_mutant_catalogue.py checks it, so the
catalogue cannot silently rot when the contracts change). `targets` names
what the bug breaks (a known attack, a named invariant or a rule of
docs/risk-model.md); docs/mutation.md shows which tests and invariants
actually catch each one.
"""

from __future__ import annotations

from dataclasses import dataclass, replace


@dataclass(frozen=True)
class Mutant:
    name: str  # kebab-case, unique; also the copy's directory name
    file: str  # relative to contracts/
    search: str  # exact text, occurs once in the file
    replacement: str
    description: str  # the bug, in one sentence
    targets: str = ""  # the attack or rule it re-opens
    # Named invariants (tests/invariants/machine.py) the bug is aimed at:
    # `python -m tools.mutation attribute` runs the machine once per name
    # with only that invariant checked (docs/mutation.md, "Attribution").
    invariants: tuple[str, ...] = ()
    # Further edits of the same file, applied in order after the first.
    also: tuple[tuple[str, str], ...] = ()

    @property
    def edits(self) -> tuple[tuple[str, str], ...]:
        return ((self.search, self.replacement), *self.also)


ENGINE = "MarginEngine.vy"
EXTENSION = "MarginEngineExtension.vy"
LEDGER = "modules/ledger.vy"
LIQUIDATION = "modules/liquidation.vy"
ORACLE = "modules/oracle.vy"
MARGIN = "modules/margin.vy"
INTEREST = "modules/interest_rate.vy"
LENS = "MarginLens.vy"

# The two defences of a solvent account's health ratio (modules/liquidation.vy),
# each skipped by its own mutant and both by `solvency-caps-both-skipped`.
_BONUS_CAP_SKIPPED = (
    "    if aw_seize != 0:\n        cap: uint256 = ratio * lw_repay // aw_seize",
    "    if aw_seize == max_value(uint256):\n        cap: uint256 = ratio * lw_repay // aw_seize",
)
_TOKEN_UNIT_CAP_SKIPPED = (
    "    if aw != 0 and p.repay != 0:\n        # The solvency cap in token units.",
    "    if False:\n        # The solvency cap in token units.",
)

MUTANTS: tuple[Mutant, ...] = (
    # --- liquidation path (MarginEngine.liquidate / _plan) -----------------
    Mutant(
        "liquidation-skips-cool-off",
        ENGINE,
        '    self._check((header >> 128) & ledger.MASK64 != block.number, "liquidation: cool-off (same block as a health-lowering action)")\n',
        "",
        "Liquidation allowed in the same block as the account's borrow/withdraw/transfer.",
        "Mango 2022 (price moved within a block)",
    ),
    Mutant(
        "liquidation-allows-self",
        ENGINE,
        '    self._check(msg.sender != owner, "liquidation: self-liquidation")\n',
        "",
        "An owner may liquidate its own account.",
        "Euler 2023",
    ),
    Mutant(
        "liquidation-skips-health-check",
        ENGINE,
        '    assert h.collateral[1] < h.debt[1], "liquidation: account is healthy"\n',
        "",
        "A healthy account can be liquidated.",
        "liquidation only below maintenance",
    ),
    Mutant(
        "liquidation-skips-sequencer-check",
        ENGINE,
        "    ledger._require_sequencer()\n    p: liquidation.Plan",
        "    p: liquidation.Plan",
        "Liquidation ignores the L2 sequencer status and grace period.",
        "sequencer downtime",
    ),
    Mutant(
        "liquidation-skips-price-grace",
        ENGINE,
        "ledger._health(key, header, 14, True, (settings >> 128) & ledger.MASK32, id_r, id_s)",
        "ledger._health(key, header, 14, True, 0, id_r, id_s)",
        "Liquidation ignores the grace period after a stale feed resumes.",
        "Venus 2022 (stale prices)",
    ),
    Mutant(
        "liquidation-allows-dust-rest",
        ENGINE,
        '    self._check(not p.leaves_dust, "liquidation: leaves dust")\n',
        "",
        "A partial liquidation may leave a debt or deposit rest below the dust threshold.",
        "dust liquidations",
    ),
    Mutant(
        "liquidation-allows-zero-share-repay",
        ENGINE,
        '    self._check(repaid_shares != 0, "liquidation: repay below one share")\n',
        "",
        "A repay worth less than one borrow share burns no debt but still seizes collateral.",
        "zero-amount and dust liquidations",
    ),
    Mutant(
        "liquidation-keeps-total-borrow-shares",
        ENGINE,
        "ledger._totals[id_r] = m.deposit_shares | (m.borrow_shares - repaid_shares) << 128",
        "ledger._totals[id_r] = m.deposit_shares | m.borrow_shares << 128",
        "Liquidation burns the account's borrow shares but not the market total.",
        "sum of account shares equals the totals",
    ),
    Mutant(
        "liquidation-burns-shares-rounded-up",
        ENGINE,
        "repaid_shares: uint256 = p.repay * ledger.WAD // m.borrow_index",
        "repaid_shares: uint256 = fixed_point.mul_div_up(p.repay, ledger.WAD, m.borrow_index)",
        "Liquidation burns borrow shares rounded up (in the borrower's favour).",
        "rounding favours the protocol",
    ),
    # --- liquidation math (modules/liquidation.vy) ---------------------------
    Mutant(
        "bonus-uncapped-for-solvent",
        LIQUIDATION,
        *_BONUS_CAP_SKIPPED,
        "The bonus is not capped so that a solvent account's health ratio never falls.",
        "Euler 2023 (liquidation deepens insolvency)",
    ),
    Mutant(
        "bonus-capped-for-insolvent",
        LIQUIDATION,
        "        aw = 0  # no ratio cap: see the glossary\n",
        "        pass\n",
        "An insolvent account's bonus is capped too, which makes it zero: no incentive to liquidate in a crash.",
        "MakerDAO 2020-03-12 (liquidations fail in a crash)",
    ),
    Mutant(
        "repay-not-capped-to-target",
        LIQUIDATION,
        "        cap = min(debt, value * WAD // price_repay)",
        "        cap = debt",
        "A liquidation may repay the whole debt instead of stopping at the liquidation-end target.",
        "partial liquidation to the target",
    ),
    Mutant(
        "dust-threshold-off-by-one",
        LIQUIDATION,
        "    if fixed_point.mul_div_up(debt - cap, price_repay, WAD) < dust:",
        "    if fixed_point.mul_div_up(debt - cap, price_repay, WAD) <= dust:",
        "A debt rest exactly at the dust threshold counts as dust.",
        "off-by-one in dust",
    ),
    Mutant(
        "insurance-share-ignored",
        LIQUIDATION,
        "        to_insurance = (seize - base) * insurance_share // WAD",
        "        to_insurance = 0",
        "The insurance fund's share of the bonus goes to the liquidator.",
        "insurance share of the bonus",
    ),
    Mutant(
        "seize-rounds-up",
        LIQUIDATION,
        "    return fixed_point.mul_div_down(fixed_point.mul_div_down(value, WAD + b, WAD), WAD, price_seize)",
        "    return fixed_point.mul_div_up(fixed_point.mul_div_down(value, WAD + b, WAD), WAD, price_seize)",
        "The seized amount rounds up (in the liquidator's favour).",
        "rounding favours the protocol",
    ),
    # --- accounts (modules/ledger.vy, MarginEngine, extension) ---------------
    Mutant(
        "borrow-skips-health-check",
        ENGINE,
        "    ledger._require_initial_health(key)\n    return shares",
        "    return shares",
        "Borrow does not check initial health.",
        "health: below initial margin",
    ),
    Mutant(
        "withdraw-skips-health-check",
        ENGINE,
        "    if check:\n        ledger._require_initial_health(key)\n    return sent",
        "    return sent",
        "Withdraw does not check initial health.",
        "health: below initial margin",
    ),
    Mutant(
        "transfer-skips-health-check",
        EXTENSION,
        "    shares, check = ledger._transfer(owner, from_sub_id, to_sub_id, key, asset, amount)\n    if check:\n        ledger._require_initial_health(key)",
        "    shares, check = ledger._transfer(owner, from_sub_id, to_sub_id, key, asset, amount)",
        "Moving collateral out of a sub-account with debt does not check its health (an unchecked donation).",
        "Euler 2023 (donateToReserves without a health check)",
    ),
    Mutant(
        "withdraw-rounds-shares-down",
        LEDGER,
        "        shares = fixed_point.mul_div_up(amount, WAD, m.deposit_index)\n        assert shares <= held",
        "        shares = fixed_point.mul_div_down(amount, WAD, m.deposit_index)\n        assert shares <= held",
        "Withdraw burns deposit shares rounded down.",
        "Radiant 2024, Hundred 2023 (rounding on withdraw)",
    ),
    Mutant(
        "borrow-rounds-shares-down",
        LEDGER,
        "    shares: uint256 = fixed_point.mul_div_up(amount, WAD, m.borrow_index)",
        "    shares: uint256 = fixed_point.mul_div_down(amount, WAD, m.borrow_index)",
        "Borrow mints borrow shares rounded down.",
        "Radiant 2024 (index rounding loops)",
    ),
    Mutant(
        "deposit-rounds-shares-up",
        LEDGER,
        "    shares: uint256 = amount * WAD // m.deposit_index",
        "    shares: uint256 = fixed_point.mul_div_up(amount, WAD, m.deposit_index)",
        "Deposit mints deposit shares rounded up.",
        "rounding favours the protocol",
    ),
    Mutant(
        "deposit-shares-priced-by-balance",
        LEDGER,
        "    shares: uint256 = amount * WAD // m.deposit_index",
        "    shares: uint256 = amount * max(m.deposit_shares, 1) // max(staticcall IERC20(asset).balanceOf(self), 1)",
        "Deposit shares are priced from the token balance (cash / supply, as cTokens), so a donation moves them.",
        "Hundred 2023, Sonne 2024 (donation inflation)",
    ),
    Mutant(
        "repay-burns-shares-rounded-up",
        LEDGER,
        "        shares = amount * WAD // m.borrow_index",
        "        shares = fixed_point.mul_div_up(amount, WAD, m.borrow_index)",
        "Repay burns borrow shares rounded up (in the borrower's favour).",
        "rounding favours the protocol",
    ),
    Mutant(
        "supply-cap-ignored",
        LEDGER,
        '        assert fixed_point.mul_div_down(total_shares, m.deposit_index, WAD) <= cap, "cap: supply cap exceeded"\n',
        "        pass\n",
        "Deposits ignore the supply cap.",
        "Mango 2022 (unbounded collateral of a thin asset)",
    ),
    Mutant(
        "borrow-cap-ignored",
        LEDGER,
        '        assert total_borrow <= cap, "cap: borrow cap exceeded"\n',
        "        pass\n",
        "Borrows ignore the borrow cap.",
        "borrow cap",
    ),
    Mutant(
        "withdraw-skips-liquidity-check",
        LEDGER,
        "    total_shares: uint256 = m.deposit_shares - shares\n    if m.borrow_shares != 0:",
        "    total_shares: uint256 = m.deposit_shares - shares\n    if False:",
        "Withdraw may take deposits that are lent out (total borrows > total deposits).",
        "total borrows <= total deposits",
    ),
    Mutant(
        "accrual-drops-borrow-index",
        LEDGER,
        "    b = (b & ~(MASK96 | MASK40 << 96)) | m.borrow_index | block.timestamp << 96",
        "    b = (b & ~(MASK40 << 96)) | block.timestamp << 96",
        "Accrual stores the new deposit index but not the new borrow index.",
        "interest paid = interest earned + reserves",
    ),
    Mutant(
        "transfer-in-unmeasured",
        LEDGER,
        '    assert staticcall IERC20(asset).balanceOf(self) == before + amount, "token: balance change differs from amount"\n',
        "",
        "Incoming transfers are credited at the requested amount, not the measured one.",
        "fee-on-transfer tokens",
    ),
    Mutant(
        "transfer-out-requires-return-value",
        LEDGER,
        "extcall IERC20(asset).transfer(receiver, amount, default_return_value=True)",
        "extcall IERC20(asset).transfer(receiver, amount)",
        "Outgoing transfers require a boolean return value, which USDT does not give.",
        "tokens that return nothing (USDT)",
    ),
    Mutant(
        "health-initial-uses-maintenance-weight",
        MARGIN,
        "            aw = (risk & MASK16) * BPS_TO_WAD\n        return aw,",
        "            aw = ((risk >> 16) & MASK16) * BPS_TO_WAD\n        return aw,",
        "Initial health weighs collateral with the maintenance asset weight.",
        "wrong weight in health",
    ),
    Mutant(
        "health-weights-initial-uses-maintenance",
        MARGIN,
        "        aw = (risk & MASK16) * BPS_TO_WAD\n    lw: uint256 = ((risk >> 32) & MASK16) * BPS_TO_WAD\n",
        "        aw = ((risk >> 16) & MASK16) * BPS_TO_WAD\n    lw: uint256 = ((risk >> 32) & MASK16) * BPS_TO_WAD\n",
        "Initial health (`health_weights`, the path health takes) weighs collateral with the maintenance asset weight.",
        "wrong weight in health",
        ("model_health_equals_contract_health",),
    ),
    Mutant(
        "price-exponent-assumes-8-decimal-feed",
        LEDGER,
        "        36 - feed_decimals - ((risk >> 112) & 31),",
        "        28 - ((risk >> 112) & 31),",
        "Unit prices in the engine's health assume an 8-decimal feed.",
        "precision across decimals",
    ),
    # --- oracle --------------------------------------------------------------
    Mutant(
        "oracle-skips-bounds",
        ORACLE,
        "    if raw < min_answer or raw > max_answer:\n        return price, ERR_BOUNDS\n",
        "",
        "Answers outside [min_answer, max_answer] are accepted.",
        "Venus 2022 (floored price), Mango 2022 (pumped price)",
    ),
    Mutant(
        "oracle-skips-staleness",
        ORACLE,
        "    if block.timestamp > updated_at + max_staleness:\n        return price, ERR_STALE\n",
        "",
        "Stale rounds are accepted.",
        "Venus 2022 (stale price)",
    ),
    Mutant(
        "sequencer-down-ignored",
        ORACLE,
        "    if not ok or answer != 0 or started_at == 0",
        "    if not ok or started_at == 0",
        "A sequencer feed reporting 'down' counts as up.",
        "sequencer downtime",
    ),
    Mutant(
        "sequencer-grace-ignored",
        ORACLE,
        "    return block.timestamp - started_at > grace_period, False",
        "    return True, False",
        "No grace period after the sequencer comes back up.",
        "sequencer downtime",
    ),
    # --- bad debt (extension) -----------------------------------------------
    Mutant(
        "socialisation-keeps-index",
        EXTENSION,
        "            m.deposit_index -= cut\n",
        "            m.deposit_index -= 0\n",
        "Bad debt beyond the insurance fund is written off without lowering the deposit index.",
        "socialised loss lowers the deposit index",
    ),
    Mutant(
        "settlement-ignores-insurance-fund",
        EXTENSION,
        "            used = min(convert(fund, uint256), debt)",
        "            used = 0",
        "Bad debt is socialised in full even when the insurance fund could cover it.",
        "insurance fund first",
    ),
    # --- re-entrancy --------------------------------------------------------
    Mutant(
        "health-view-reentrant",
        ENGINE,
        "@view\n@external\ndef health(owner: address",
        "@view\n@external\n@reentrant\ndef health(owner: address",
        "The engine's `health` view takes no re-entrancy lock (read-only re-entry).",
        "Cream 2021 / read-only re-entry",
    ),
    Mutant(
        "borrow-reentrant",
        ENGINE,
        "@external\ndef borrow(",
        "@external\n@reentrant\ndef borrow(",
        "`borrow` takes no re-entrancy lock, so a token hook can call it mid-operation.",
        "Cream 2021 (re-entry through token hooks)",
    ),
    # --- aimed at one named invariant each (docs/mutation.md, "Attribution") -
    Mutant(
        "withdraw-sends-one-unit-less",
        LEDGER,
        "        self._transfer_out(asset, receiver, sent)\n",
        "        self._transfer_out(asset, receiver, sent - 1)\n",
        "Withdraw sends one token unit less than it reports (and burns shares for).",
        "tokens move exactly as reported",
        ("engine_token_balance_matches_token_flows", "wallets_change_only_by_modelled_flows"),
    ),
    Mutant(
        "repay-takes-no-tokens",
        LEDGER,
        "    self._transfer_in(asset, msg.sender, paid)\n",
        "",
        "Repay burns the debt without pulling the payment.",
        "debt is only forgiven against tokens",
        ("token_balance_covers_deposits_minus_borrows", "insurance_fund_never_falls_except_to_cover_bad_debt"),
    ),
    Mutant(
        "transfer-credits-an-extra-share",
        LEDGER,
        "    self._positions[to_pkey] = unsafe_add(to_pos, shares)\n",
        "    self._positions[to_pkey] = unsafe_add(to_pos, shares + 1)\n",
        "A collateral transfer credits the destination one deposit share more than it takes from the source.",
        "no share minted off the books",
        ("deposit_shares_sum_to_total",),
    ),
    Mutant(
        "repay-keeps-total-borrow-shares",
        LEDGER,
        "    self._totals[id] = m.deposit_shares | (m.borrow_shares - shares) << 128\n",
        "    self._totals[id] = m.deposit_shares | m.borrow_shares << 128\n",
        "Repay burns the account's borrow shares but not the market total.",
        "no debt invented off the books",
        ("borrow_shares_sum_to_total",),
    ),
    Mutant(
        "accrual-writes-zero-borrow-index",
        LEDGER,
        "    b = (b & ~(MASK96 | MASK40 << 96)) | m.borrow_index | block.timestamp << 96",
        "    b = (b & ~(MASK96 | MASK40 << 96)) | block.timestamp << 96",
        "Accrual clears the stored borrow index instead of writing the new one (debt becomes zero).",
        "debt is never forgiven by index arithmetic",
        ("debt_shares_zero_exactly_when_debt_zero", "borrow_index_never_falls", "debt_without_collateral_is_settled"),
    ),
    Mutant(
        "repay-keeps-debt-bit",
        LEDGER,
        "    if shares == owed_shares:\n        self._headers[key] = self._headers[key] & ~(1 << (64 + id))\n",
        "",
        "A full repayment leaves the asset's debt bit set in the account header.",
        "header bitmaps match positions",
        ("bitmaps_match_positions", "no_profit_from_same_block_round_trip", "debt_without_collateral_is_settled"),
    ),
    Mutant(
        "lens-market-unaccrued-indexes",
        LENS,
        "    di, bi = interest_rate.indexes_now(s.market_a, s.market_b, s.totals, s.rate_model)\n    total_deposit: uint256",
        "    di = s.market_a & MASK96\n    bi = s.market_b & MASK96\n    total_deposit: uint256",
        "The lens's market view shows the stored indexes, not the indexes accrued to now.",
        "views accrue to now",
        ("accrued_views_match_model",),
    ),
    Mutant(
        "lens-market-swaps-indexes",
        LENS,
        "    di, bi = interest_rate.indexes_now(s.market_a, s.market_b, s.totals, s.rate_model)\n    total_deposit: uint256",
        "    bi, di = interest_rate.indexes_now(s.market_a, s.market_b, s.totals, s.rate_model)\n    total_deposit: uint256",
        "The lens's market view swaps the deposit and borrow indexes.",
        "views accrue to now",
        ("accrued_views_match_model",),
    ),
    Mutant(
        "lens-balances-nets-debt",
        LENS,
        "                deposit=fixed_point.mul_div_down(deposit_shares, di, WAD),\n",
        "                deposit=fixed_point.mul_div_down(deposit_shares, di, WAD) - fixed_point.mul_div_up(borrow_shares, bi, WAD),\n",
        "The lens's balances view nets the debt off the deposit: it reverts (underflow) when an asset's debt exceeds its deposit.",
        "views never revert",
        ("views_never_revert",),
    ),
    Mutant(
        "lens-balances-debt-rounds-down",
        LENS,
        "                borrow=fixed_point.mul_div_up(borrow_shares, bi, WAD),\n",
        "                borrow=fixed_point.mul_div_down(borrow_shares, bi, WAD),\n",
        "The lens's balances view rounds debts down (a borrower is shown less than it owes).",
        "views answer what the engine holds",
        ("views_never_revert",),
    ),
    Mutant(
        "lens-preview-skips-health-gate",
        LENS,
        "    if h.collateral[1] >= h.debt[1] or not h.prices_valid:\n",
        "    if not h.prices_valid:\n",
        "The lens's liquidation preview plans a liquidation of a healthy account (no health gate): it answers a plan, or reverts, where the engine refuses.",
        "views never revert and answer what the engine would do",
        ("views_never_revert",),
    ),
    Mutant(
        "repay-requires-initial-health",
        ENGINE,
        "    return ledger._repay(owner, sub_id, ledger._account_key(owner, sub_id), asset, amount)\n",
        "    paid: uint256 = ledger._repay(owner, sub_id, ledger._account_key(owner, sub_id), asset, amount)\n"
        "    ledger._require_initial_health(ledger._account_key(owner, sub_id))\n    return paid\n",
        "Repay requires initial health with every price accepted, so a stale feed (or an under-margined account) blocks repayment.",
        "repay never blocked by feeds",
        ("deposit_and_repay_never_blocked_by_feeds", "stale_price_blocks_borrow_and_withdraw_never_repay"),
    ),
    Mutant(
        "deposit-requires-initial-health",
        ENGINE,
        "    return ledger._deposit(owner, sub_id, key, asset, amount)\n",
        "    shares: uint256 = ledger._deposit(owner, sub_id, key, asset, amount)\n"
        "    ledger._require_initial_health(key)\n    return shares\n",
        "Deposit requires initial health with every price accepted, so a stale feed blocks adding collateral.",
        "deposit never blocked by feeds",
        ("deposit_and_repay_never_blocked_by_feeds",),
    ),
    Mutant(
        "borrow-ignores-pause",
        LEDGER,
        '    assert (info >> 8) & PAUSE_BORROW == 0, "pause: borrow paused"\n',
        "",
        "Borrows ignore the asset's borrow pause.",
        "pause",
        ("paused_actions_blocked_and_repay_never_paused",),
    ),
    Mutant(
        "deposit-credits-sub-account-zero",
        ENGINE,
        "    key: uint256 = ledger._authorize(owner, sub_id)\n    return ledger._deposit(owner, sub_id, key, asset, amount)\n",
        "    ledger._authorize(owner, sub_id)\n    return ledger._deposit(owner, sub_id, ledger._account_key(owner, 0), asset, amount)\n",
        "A deposit into any sub-account is credited to sub-account 0.",
        "cross-margin isolation",
        ("action_never_changes_another_accounts_health",),
    ),
    Mutant(
        "liquidation-full-repay-leaves-shares",
        ENGINE,
        "    if p.repay >= fixed_point.mul_div_up(pos >> 128, m.borrow_index, ledger.WAD):\n        repaid_shares = pos >> 128\n",
        "",
        "A liquidation that repays the whole debt burns only the shares the repayment buys (rounded down), leaving a remainder.",
        "full liquidation leaves no remainder",
        ("full_liquidation_leaves_no_remainder",),
    ),
    Mutant(
        "settlement-keeps-header",
        EXTENSION,
        "    ledger._headers[key] = header & (ledger.MASK64 << 128)\n",
        "    ledger._headers[key] = header\n",
        "Bad-debt settlement zeroes the positions but leaves the header's deposit and debt bits.",
        "settled account is empty",
        ("settled_account_is_empty",),
    ),
    Mutant(
        "insurance-fund-used-event-overstated",
        EXTENSION,
        "            log ledger.InsuranceFundUsed(asset=asset, amount=used)",
        "            log ledger.InsuranceFundUsed(asset=asset, amount=convert(fund, uint256))",
        "The InsuranceFundUsed event reports the whole fund, not the part used.",
        "settlement events add up",
        ("socialised_loss_equals_debt_minus_fund_used",),
    ),
    Mutant(
        "liquidation-seize-all-leaves-shares",
        ENGINE,
        "    if not p.seize_all:\n        seized_shares = min(",
        "    if True:\n        seized_shares = min(",
        "A liquidation that takes the whole deposit burns only the shares its amount buys at the accrued index, "
        "leaving a remainder of deposit shares.",
        "full liquidation leaves no remainder",
        ("full_liquidation_leaves_no_remainder",),
    ),
    Mutant(
        "view-accrual-elapsed-wraps-daily",
        INTEREST,
        "        block.timestamp - last,\n    )",
        "        (block.timestamp - last) % 86400,\n    )",
        "The accrued-to-now views count the time since the last accrual modulo a day, so an unaccrued debt "
        "shown by the lens falls when a day boundary passes.",
        "debt never falls with time alone",
        ("debt_never_falls_with_time_alone",),
    ),
    Mutant(
        "accrual-returns-stale-deposit-index",
        LEDGER,
        "            self._market_a[id] = (a & ~MASK96) | new_di\n            m.deposit_index = new_di\n",
        "            self._market_a[id] = (a & ~MASK96) | new_di\n",
        "The call that accrues a market stores the new deposit index but prices its own action at the old one, "
        "so an action's result depends on whether someone accrued first in the same block.",
        "accruing first never changes results",
        ("accruing_first_never_changes_results",),
    ),
    Mutant(
        "solvency-cap-in-token-units-skipped",
        LIQUIDATION,
        *_TOKEN_UNIT_CAP_SKIPPED,
        "The plan skips the solvency cap in token units (the share and value roundings), keeping only the "
        "bonus's cap in value.",
        "liquidation never lowers a solvent account's health ratio",
        ("liquidation_never_lowers_solvent_health_ratio",),
    ),
    Mutant(
        "solvency-caps-both-skipped",
        LIQUIDATION,
        *_BONUS_CAP_SKIPPED,
        "Both defences of a solvent account's health ratio are gone: the bonus's cap in value "
        "(bonus-uncapped-for-solvent) and the solvency cap in token units (solvency-cap-in-token-units-skipped); "
        "each alone keeps the ratio.",
        "Euler 2023 (liquidation deepens insolvency)",
        ("liquidation_never_lowers_solvent_health_ratio",),
        also=(
            _TOKEN_UNIT_CAP_SKIPPED,
        ),
    ),
    Mutant(
        "liquidation-settings-view-misreads-grace",
        ENGINE,
        "    return settings & ledger.MASK128, (settings >> 128) & ledger.MASK32, settings >> 160",
        "    return settings & ledger.MASK128, (settings >> 128) & ledger.MASK64, settings >> 160",
        "The locked `liquidation_settings` view reads the grace period with a 64-bit mask (it takes in the pause time).",
        "locked views answer correctly",
        ("reentrancy_lock_free_after_every_call",),
    ),
)

# The invariants the earlier mutants (listed before `invariants` existed)
# are aimed at.
_AIMED: dict[str, tuple[str, ...]] = {
    "liquidation-skips-health-check": ("healthy_account_cannot_be_liquidated",),
    "liquidation-allows-dust-rest": ("liquidation_leaves_no_collateral_dust",),
    "liquidation-keeps-total-borrow-shares": ("borrow_shares_sum_to_total",),
    "liquidation-burns-shares-rounded-up": ("reference_model_matches_contract_storage",),
    "bonus-uncapped-for-solvent": ("liquidation_never_lowers_solvent_health_ratio",),
    "repay-not-capped-to-target": ("liquidation_stops_at_target",),
    "borrow-skips-health-check": ("risk_increasing_actions_leave_initial_health_nonnegative",),
    "withdraw-skips-health-check": ("only_price_interest_ramp_or_liquidation_make_unhealthy",),
    "transfer-skips-health-check": ("only_price_interest_ramp_or_liquidation_make_unhealthy",),
    "borrow-rounds-shares-down": ("lens_healths_equal_model",),
    "supply-cap-ignored": ("caps_hold_whenever_totals_rise",),
    "borrow-cap-ignored": ("caps_hold_whenever_totals_rise",),
    "withdraw-skips-liquidity-check": ("borrows_never_exceed_deposits_after_borrow_withdraw_or_seize",),
    "accrual-drops-borrow-index": ("reference_model_matches_contract_storage",),
    "health-initial-uses-maintenance-weight": ("model_health_equals_contract_health",),
    "oracle-skips-staleness": ("stale_price_blocks_borrow_and_withdraw_never_repay",),
    "socialisation-keeps-index": ("deposit_index_falls_only_by_socialised_loss",),
    "settlement-ignores-insurance-fund": ("insurance_fund_drawn_before_loss_socialised",),
}
MUTANTS = tuple(replace(m, invariants=m.invariants or _AIMED.get(m.name, ())) for m in MUTANTS)


def by_name(name: str) -> Mutant:
    for mutant in MUTANTS:
        if mutant.name == name:
            return mutant
    raise KeyError(f"no mutant named {name!r}")


assert len({m.name for m in MUTANTS}) == len(MUTANTS), "mutant names must be unique"

from collections import Counter
import pytest
from scripts._xmargin_sim.seed import seeded_state
from tests.keeper.conftest import MASS_POPULATION, start_scenario, stop_scenario
from tests.keeper.harness.keeper_driver import events

def test_mass(tmp_path, keeper_account):
    sc = start_scenario(seeded_state(**MASS_POPULATION), tmp_path, keeper_account, gas_limit=2_000_000_000)
    try:
        keeper = sc.keeper(strategy={"max_candidates_per_block": 5_000})
        receipt = sc.sim.set_price("WETH", sc.sim.price("WETH") * 8 / 10)
        price_block = int(receipt["blockNumber"], 16)
        expected = set(sc.liquidatable())
        import time; t=time.time()
        keeper.wait_step(price_block, timeout=600)
        print("handler seconds", time.time()-t)
        ents = keeper.logs.entries
        print(Counter(e["event"] for e in ents))
        print(Counter(e.get("reason") for e in ents if e["event"]=="liquidation_skipped"))
        print([e for e in ents if e["event"] in ("liquidation_skipped","send_error")][:5])
        print("pool", sc.node.rpc.call("txpool_status"))
        sc.node.mine(1)
        print("pool after mine", sc.node.rpc.call("txpool_status"))
    finally:
        stop_scenario(sc)

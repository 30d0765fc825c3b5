"""Speed of the routing statistics: exact values over the article grid, and Monte Carlo throughput.

Prints two kinds of lines, each with its goal and a PASS/FAIL ratio:

    exact:  seconds for routing_exact.comparison_frame() over the article's
            252 (B, Q, D) points,            goal <= 1 s,   ratio = goal / seconds
    Monte Carlo: routed tokens per second of simulate_routing per mode,
            goal >= 1e7 tokens/s,            ratio = rate / goal

The goal applies to the "uniform" mode because the sweep and the checks use it
most. The other modes are printed against the same goal for comparison. A
routed token is one token with all K of its expert picks placed and counted.
Each number is the best of ``--reps`` runs of wall-clock time on a machine that
may be shared; the printed load average shows how busy it was.

Usage: PYTHONPATH=src python benchmarks/routing_speed.py [--reps 3] [--tokens 4000000]
"""

from __future__ import annotations

import argparse
import os

import torch

from moe_groupgemm import routing_exact
from moe_groupgemm.engine_config import EngineConfig
from moe_groupgemm.routing_montecarlo import SIMULATION_MODES, simulate_routing
from moe_groupgemm.timing import best_wall_clock_seconds

GOAL_EXACT_SECONDS = 1.0
GOAL_TOKENS_PER_SECOND = 1e7
# One large decode step of the article's grid: D = 8 ranks of B = 256, Q = 4.
MONTE_CARLO_CONFIG = EngineConfig(batch_size=256, q_len=4, dp_size=8)


def verdict(ratio: float) -> str:
    return "PASS" if ratio >= 1.0 else "FAIL"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="runs per measurement (best taken)")
    parser.add_argument("--tokens", type=int, default=4_000_000, help="routed tokens per uniform Monte Carlo run")
    arguments = parser.parse_args()
    print(f"torch threads: {torch.get_num_threads()}, load average: {os.getloadavg()[0]:.2f}")

    routing_exact.comparison_frame()  # warm-up: imports and first-call allocation
    grid_size = len(routing_exact.article_grid())

    def cold_grid() -> None:
        # The exact terms of E[max m] are memoised, so clear them to time a cold run.
        routing_exact.clear_caches()
        routing_exact.comparison_frame()

    seconds = best_wall_clock_seconds(cold_grid, arguments.reps)
    ratio = GOAL_EXACT_SECONDS / seconds
    print(f"exact statistics, {grid_size} grid points: {seconds:.3f} s "
          f"(goal <= {GOAL_EXACT_SECONDS:.1f} s, ratio {ratio:.2f}) {verdict(ratio)}")

    config = MONTE_CARLO_CONFIG
    for mode in SIMULATION_MODES:
        # The slower modes run a tenth of the tokens to keep the script short.
        tokens = arguments.tokens if mode == "uniform" else arguments.tokens // 10
        steps = max(1, tokens // config.tokens_total)
        simulate_routing(config, mode, steps=1, seed=0)
        seconds = best_wall_clock_seconds(lambda: simulate_routing(config, mode, steps=steps, seed=1), arguments.reps)
        rate = steps * config.tokens_total / seconds
        ratio = rate / GOAL_TOKENS_PER_SECOND
        label = "goal" if mode == "uniform" else "reference only"
        print(f"Monte Carlo {mode:<13} B={config.batch_size} Q={config.q_len} D={config.dp_size}: "
              f"{rate:.3e} routed tokens/s ({label} >= {GOAL_TOKENS_PER_SECOND:.0e}, ratio {ratio:.2f}) {verdict(ratio)}")


if __name__ == "__main__":
    main()

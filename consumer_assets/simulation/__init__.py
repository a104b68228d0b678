"""The project's own event simulator: a shop with known true purchase propensities."""

from consumer_assets.simulation.landing import LANDING_PREFIX, TRUTH_DATASET, land_day, landing_prefix, simulate_to_landing, true_probabilities
from consumer_assets.simulation.world import DayEvents, Drift, ShopSimulator, SimulationConfig

__all__ = [
    "LANDING_PREFIX",
    "TRUTH_DATASET",
    "DayEvents",
    "Drift",
    "ShopSimulator",
    "SimulationConfig",
    "land_day",
    "landing_prefix",
    "simulate_to_landing",
    "true_probabilities",
]

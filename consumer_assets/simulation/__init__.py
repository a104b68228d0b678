"""The project's own event simulator: a shop with known true purchase propensities."""

from consumer_assets.simulation.land import TRUTH_DATASET, land_day, simulate_to_landing, true_probabilities
from consumer_assets.simulation.world import DayEvents, Drift, ShopSimulator, SimulationConfig

__all__ = [
    "TRUTH_DATASET",
    "DayEvents",
    "Drift",
    "ShopSimulator",
    "SimulationConfig",
    "land_day",
    "simulate_to_landing",
    "true_probabilities",
]

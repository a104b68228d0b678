"""The gate's thresholds as a Dagster resource, derived field by field from GateConfig (defaults and descriptions)."""

from dataclasses import fields

import dagster as dg
from pydantic import Field, create_model

from consumer_assets.validation.gate import GateConfig


class _GateSettings(dg.ConfigurableResource):
    """Thresholds of the blocking checks that keep bad models out of service (launchpad: resources.gate)."""

    def config(self) -> GateConfig:
        return GateConfig(**{f.name: getattr(self, f.name) for f in fields(GateConfig)})


GateResource = create_model(
    "GateResource",
    __base__=_GateSettings,
    __module__=__name__,
    __doc__=_GateSettings.__doc__,
    **{
        f.name: (type(f.default), Field(default=f.default, description=f.metadata["description"]))
        for f in fields(GateConfig)
    },
)

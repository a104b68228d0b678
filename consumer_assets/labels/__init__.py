"""Labels: did a profile of the snapshot at D order in (D, D+H]. Their own stage, since they mature H days after the
features."""

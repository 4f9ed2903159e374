"""The national hub: verify batches and apply them exactly once to the consolidated database."""

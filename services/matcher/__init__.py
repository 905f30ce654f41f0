"""The matcher service: re-keys supply and demand by zone, then decides matches in order."""

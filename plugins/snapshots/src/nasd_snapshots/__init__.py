"""nasd plugin: snapshot schedules with retention, and restore by clone."""

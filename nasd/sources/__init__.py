"""Built-in sources of desired state; each is a plugin implementing ``supply_desired_state``."""

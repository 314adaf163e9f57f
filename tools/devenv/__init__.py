"""Developer-environment helpers for rollguard (workload simulator and friends)."""

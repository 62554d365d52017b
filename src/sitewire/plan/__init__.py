"""The pure planning stage: what every site and client should be."""

from sitewire.plan.planner import Plan, plan_network

__all__ = ["Plan", "plan_network"]

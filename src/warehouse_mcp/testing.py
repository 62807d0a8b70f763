"""Pytest fixtures for agent test harnesses (registered as a pytest plugin)."""

"""Tests of the framework and container integrations (hivemind_jobs.contrib)."""

"""Workflows: DAGs of jobs with dependencies (built by the workflows issue)."""
